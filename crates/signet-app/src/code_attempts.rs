//! The failure rules of a typed code that the server checks itself (an
//! authenticator app's TOTP code, a recovery code), the same as for an
//! emailed code ([`crate::throttle`]): each comparison is reserved on the
//! account's run of failures (backoff, NIST SP 800-63B rev. 4 §3.2.2,
//! cleared only by a success, never by a new code) and on the flow, in the
//! unit of work that stores its outcome; five wrong codes end the flow for
//! good.
//!
//! The account's run is keyed by the flow's identifier hash when the flow
//! was started with one (so email codes, TOTP and recovery codes share one
//! run per account), else by the account's id.

use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::Timestamp;
use signet_core::flow::{Flow, FlowId};
use signet_core::store::Store;
use signet_core::unit_of_work::Transaction;
use signet_core::{Error, ErrorCode, Result};

use crate::throttle;

/// The key of the account's run of failures for this flow.
pub fn account_key(flow: &Flow) -> Option<String> {
    match (&flow.state.identifier_hash, flow.state.user_id) {
        (Some(h), _) => Some(h.clone()),
        (None, Some(u)) => Some(format!("user:{}", u.0)),
        (None, None) => None,
    }
}

/// A comparison of a typed code, counted on the account's run of failures
/// and on the flow **in the same unit of work as its outcome**: a right
/// code in the step's completion unit ([`Attempt::succeeded_in`]), a wrong
/// one in a unit of its own ([`Attempt::failed`]). Either way the answer
/// is given only once the count is committed, so no answer is ever known
/// to the client without its attempt being counted (and a refused
/// reservation, 429 while the account backs off or 410 past the flow's
/// limit, is the answer instead, right code or not). One commit per step,
/// not a reservation's commit and then the outcome's (ADR 0033).
pub struct Attempt {
    key: String,
}

/// The attempt a code step makes on `flow` (400 `identifier_required`
/// when the flow names no account: a code is bound to one).
pub fn prepare(flow: &Flow) -> Result<Attempt> {
    let key = account_key(flow).ok_or_else(identifier_required)?;
    Ok(Attempt { key })
}

/// `400 identifier_required`: a code is bound to the account the sign-in
/// was started for.
pub fn identifier_required() -> Error {
    Error::invalid(
        ErrorCode::IdentifierRequired,
        "start the sign-in with your email address to use a code",
    )
}

impl Attempt {
    /// A right code, in the unit of work that consumes it: the comparison
    /// is counted (a refusal fails the unit: the code is not consumed and
    /// the step answers the refusal), then the account's run of failures
    /// ends. A unit that fails for another reason (a replay that lost its
    /// race) counts nothing: it was a right code, not a guess, and the
    /// journey audits the failed step.
    pub async fn succeeded_in(self, tx: &mut dyn Transaction, flow: FlowId, now: Timestamp) -> Result<()> {
        throttle::admit_success(tx, now, flow, &self.key).await
    }

    /// A wrong code, counted in one unit of work: the reservation, the
    /// flow's count of wrong codes, and what they lead to (the fifth ends
    /// the flow; the account's hundredth locks it, audited). Returns the
    /// error to answer with: `wrong`, or the refusal that came first.
    pub async fn failed(self, store: &dyn Store, now: Timestamp, flow: &Flow, origin: &Origin, wrong: Error) -> Error {
        match self.count(store, now, flow, origin).await {
            Ok(None) => wrong,
            Ok(Some(e)) | Err(e) => e,
        }
    }

    async fn count(self, store: &dyn Store, now: Timestamp, flow: &Flow, origin: &Origin) -> Result<Option<Error>> {
        let mut tx = store.begin().await?;
        let account = match throttle::reserve_comparison(&mut *tx, now, flow.id, &self.key).await {
            Ok(account) => account,
            Err(refused) => {
                // What was reserved before the refusal stands (a refused
                // flow reservation still counted on the account).
                tx.commit().await?;
                return Ok(Some(refused));
            }
        };
        let wrong = throttle::record_wrong(&mut *tx, now, flow.id, account).await?;
        if wrong.locks_account() {
            let mut ev = AuditEvent::new(EventType::LoginLocked, Actor::Anonymous, Outcome::Denied)
                .from_origin(origin)
                .details(json!({ "flow_id": flow.id.0, "failures": wrong.account.count }));
            if let Some(u) = flow.state.user_id {
                ev = ev.user(u);
            }
            tx.append_audit(&ev, signet_core::ids::time_ordered(), now).await?;
        }
        let ended = wrong.kills_flow();
        if ended {
            tx.finish_flow(flow.id, crate::journeys::remembered_until(flow)).await?;
            tx.revoke_flow_secrets(flow.id, now).await?;
        }
        tx.commit().await?;
        Ok(ended.then(throttle::too_many_attempts))
    }
}
