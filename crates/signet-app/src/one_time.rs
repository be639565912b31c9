//! Issuing one-time secrets that replace the previous ones.
//!
//! A new email code or link replaces whatever its flow had, and a new
//! invitation replaces the user's previous one
//! ([`signet_core::unit_of_work::SecretWrites::issue_secrets`]: revoke and
//! insert in one transaction, at most one live secret per flow or per invitee). Two
//! issues at the same moment make one of them fail with `Conflict`, as does
//! drawing the digits of a code this flow already had; either way the
//! answer is to draw again, and the new issue replaces the one that won.

use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::Timestamp;
use signet_core::secret::{PlainToken, TokenKind};
use signet_core::store::{OneTimeSecret, SecretPurpose, Store, StoreError};
use signet_core::unit_of_work::Tx;
use signet_core::user::{User, UserId};
use signet_core::{Error, Result};

use crate::App;

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

/// A link a person redeems for a session (an invitation, a help-desk
/// recovery link) that is live now: `presented` parses as a token of `kind`,
/// its secret of `purpose` is unconsumed and unexpired, and its user is
/// active. Anything else is `invalid()`. Only a look: the redemption
/// consumes the secret with one conditional write in its unit of work.
pub(crate) async fn live_link(
    app: &App,
    kind: TokenKind,
    purpose: SecretPurpose,
    presented: &str,
    invalid: fn() -> Error,
) -> Result<(PlainToken, OneTimeSecret, User)> {
    let token = PlainToken::parse(kind, presented).ok_or_else(invalid)?;
    let secret = app
        .store
        .peek_secret(purpose, &token.hash())
        .await?
        .filter(|s| s.consumed_at.is_none() && s.expires_at > app.clock.now())
        .ok_or_else(invalid)?;
    let user = app
        .store
        .user_by_id(secret.user_id)
        .await?
        .filter(User::is_active)
        .ok_or_else(invalid)?;
    Ok((token, secret, user))
}

/// Records a refused redemption of a link (`event`, outcome `denied`,
/// `reason` `invalid_used_or_expired` or `already_redeemed`).
pub(crate) async fn record_rejection(
    app: &App,
    event: EventType,
    origin: &Origin,
    user: Option<UserId>,
    reason: &str,
) -> Result<()> {
    let mut record = AuditEvent::new(event, Actor::Anonymous, Outcome::Denied)
        .from_origin(origin)
        .details(json!({ "reason": reason }));
    if let Some(u) = user {
        record = record.user(u);
    }
    app.audit().record(record).await
}
