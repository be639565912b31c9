//! Cooling-off: a credential bound through recovery stays restricted for
//! the tier's `[helpdesk] cooling_off` (issue 11, item 4).
//!
//! Recovery is the hidden front door: whoever fooled the recovery (a help
//! desk, a stolen mailbox and recovery code) binds a credential of their
//! own. The owner is told on every channel at once, with a "this wasn't me"
//! link ([`crate::recovery::recovered`]); cooling-off gives them the time to
//! use it before the new credential is worth anything sensitive.
//!
//! **Exact semantics.**
//! - *Starts* when a `recovery` session binds a credential
//!   ([`crate::credentials::finish`]), in the same unit of work, in tiers
//!   whose `[helpdesk] cooling_off` is set and not zero, whichever recovery
//!   path (self-service or help desk) made the session. It lasts that long
//!   from the binding, and applies to that credential only: the account's
//!   other credentials are not restricted.
//! - *While it lasts*, a proof resting on the credential counts as aal1:
//!   - a **login** with it completes (the person is not locked out), but the
//!     session is aal1 whatever the tier's `required_aal`
//!     ([`crate::journeys`] caps the session's proof), so every action that
//!     needs aal2 (adding or removing a credential, an `[actions]` entry, an
//!     OIDC request for a higher `acr`) answers `step_up_required`;
//!   - a **step-up** step with it counts as aal1, so it never raises a
//!     session to aal2 on its own;
//!   - a **recovery** step with it counts as aal1, so it cannot recover the
//!     account again (no chaining one recovery into the next).
//! - *Ends* by itself at `restricted_until`: the next proof with the
//!   credential counts in full. Nothing is written then.
//!
//! NIST SP 800-63B rev. 4 (account recovery) asks that recovery be followed
//! by notification; the waiting period is Signet's addition, after the
//! help-desk attacks it answers (MGM, 2023).

use signet_core::clock::Timestamp;
use signet_core::method::CredentialInfo;
use signet_core::session::{Aal, Proof, SessionScope};
use signet_core::unit_of_work::Transaction;
use signet_core::Result;

use crate::sessions::Current;
use crate::App;

/// Starts the cooling-off of `credential` if `current` is a recovery
/// session and the tier sets one, in the binding's unit of work `tx`.
/// Returns when it ends.
pub(crate) async fn start(
    app: &App,
    tx: &mut dyn Transaction,
    current: &Current,
    credential: &CredentialInfo,
) -> Result<Option<Timestamp>> {
    if current.session.scope != SessionScope::Recovery {
        return Ok(None);
    }
    let tier = app.policy.tier_for_roles(&current.user.roles).1;
    let Some(period) = tier.helpdesk.as_ref().map(|h| h.cooling_off).filter(|p| !p.is_zero()) else {
        return Ok(None);
    };
    let until = app.clock.now().plus(period);
    tx.start_cooling_off(credential.id, current.user.id, until).await?;
    Ok(Some(until))
}

/// Whether `proof` rests on a credential in its cooling-off now. `known`
/// is the end of that credential's cooling-off when the method read it
/// beside the credential (`Verified::cooling_off`): then nothing is read
/// again; `None` reads it.
pub async fn restricted_known(app: &App, proof: &Proof, known: Option<Option<Timestamp>>) -> Result<bool> {
    let until = until_known(app, proof, known).await?;
    Ok(until.is_some_and(|until| until > app.clock.now()))
}

/// The end of the cooling-off of the credential `proof` rests on (`None`:
/// it has none, or the proof names no credential), `known` when the
/// method read it already, else read now.
pub async fn until_known(app: &App, proof: &Proof, known: Option<Option<Timestamp>>) -> Result<Option<Timestamp>> {
    let Some(credential) = proof.credential_id else {
        return Ok(None);
    };
    Ok(match known {
        Some(until) => until,
        None => app.store.cooling_off_until(credential).await?,
    })
}

/// Caps `proof` at aal1 (what a restricted credential proves), and takes
/// away its phishing resistance: an app asking for `acr_values=phr` (aal1
/// plus phishing resistance) must not be satisfied by a credential that is
/// still cooling off.
pub fn cap(proof: &mut Proof) {
    proof.aal = proof.aal.min(Aal::Aal1);
    proof.phishing_resistant = false;
}
