//! Issuing one-time secrets that replace the previous ones.
//!
//! A new email code or link replaces whatever its flow had, and a new
//! invitation replaces the user's previous one
//! ([`signet_core::unit_of_work::SecretWrites::issue_secrets`]: revoke and
//! insert in one transaction, at most one live secret per flow or per invitee). Two
//! issues at the same moment make one of them fail with `Conflict`, as does
//! drawing the digits of a code this flow already had; either way the
//! answer is to draw again, and the new issue replaces the one that won.

use signet_core::clock::Timestamp;
use signet_core::store::{OneTimeSecret, Store, StoreError};
use signet_core::unit_of_work::Tx;
use signet_core::Result;

/// Issues after a `Conflict` before giving up (each conflict means another
/// issue for the same flow or invitee landed, or a one-in-10^digits draw).
const TRIES: usize = 4;

/// Issues what `draw` produces (a value for the caller, such as the plain
/// code, and the secrets to store) in a new unit of work, drawing again in
/// a fresh one after a `Conflict`. The caller adds what belongs with the
/// secrets (the message that carries them, the audit record) and commits.
pub(crate) async fn issue_replacing<T>(
    store: &dyn Store,
    now: Timestamp,
    mut draw: impl FnMut() -> (T, Vec<OneTimeSecret>),
) -> Result<(T, Tx)> {
    let mut tries = 1;
    loop {
        let (value, secrets) = draw();
        let mut tx = store.begin().await?;
        match tx.issue_secrets(&secrets, now).await {
            Ok(()) => return Ok((value, tx)),
            // Dropping `tx` rolls the failed attempt back.
            Err(StoreError::Conflict(_)) if tries < TRIES => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
}
