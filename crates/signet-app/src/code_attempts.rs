//! The failure rules of a typed code that the server checks itself (an
//! authenticator app's TOTP code, a recovery code), the same as for an
//! emailed code ([`crate::throttle`]): each comparison is reserved first on
//! the account's run of failures (backoff, NIST SP 800-63B rev. 4 §3.2.2,
//! cleared only by a success, never by a new code) and on the flow; five
//! wrong codes end the flow for good.
//!
//! The account's run is keyed by the flow's identifier hash when the flow
//! was started with one (so email codes, TOTP and recovery codes share one
//! run per account), else by the account's id.

use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::Timestamp;
use signet_core::flow::Flow;
use signet_core::store::{Failures, Store};
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

/// A reserved comparison: it counts as a failure unless [`Attempt::succeeded`].
pub struct Attempt {
    key: String,
    account: Failures,
}

/// Reserves one comparison on the account and on the flow (429 while the
/// account backs off, 410 past the flow's limit).
pub async fn reserve(store: &dyn Store, flow: &Flow, now: Timestamp) -> Result<Attempt> {
    let mut tx = store.begin().await?;
    let reserved = reserve_in(&mut *tx, flow, now).await;
    tx.commit().await?;
    reserved
}

/// [`reserve`] in the caller's unit of work `tx`: the account's run, then
/// the flow's, in that order. On a refusal what was reserved so far is in
/// `tx` all the same (a refused flow reservation still counted on the
/// account, as it always has): commit `tx` before answering.
pub async fn reserve_in(tx: &mut dyn Transaction, flow: &Flow, now: Timestamp) -> Result<Attempt> {
    let key = account_key(flow).ok_or_else(|| {
        Error::invalid(
            ErrorCode::IdentifierRequired,
            "start the sign-in with your email address to use a code",
        )
    })?;
    let account = throttle::reserve_account_attempt_in(tx, now, &key).await?;
    throttle::reserve_attempt(tx, now, flow.id).await?;
    Ok(Attempt { key, account })
}

impl Attempt {
    /// A right code: the account's run of failures ends, in the unit of
    /// work that consumes the code (so the step stays one commit after the
    /// reservation).
    pub async fn succeeded_in(self, tx: &mut dyn Transaction) -> Result<()> {
        throttle::clear_account_in(tx, &self.key).await
    }

    /// A wrong code: counted on the flow (the account counted it when it was
    /// reserved); the fifth ends the flow, the account's hundredth locks it
    /// (audited). Returns the error to answer with.
    pub async fn failed(self, store: &dyn Store, now: Timestamp, flow: &Flow, origin: &Origin, wrong: Error) -> Error {
        match self.count(store, now, flow, origin).await {
            Ok(None) => wrong,
            Ok(Some(e)) | Err(e) => e,
        }
    }

    async fn count(self, store: &dyn Store, now: Timestamp, flow: &Flow, origin: &Origin) -> Result<Option<Error>> {
        let wrong = throttle::record_wrong(store, now, flow.id, self.account).await?;
        if wrong.locks_account() {
            let mut ev = AuditEvent::new(EventType::LoginLocked, Actor::Anonymous, Outcome::Denied)
                .from_origin(origin)
                .details(json!({ "flow_id": flow.id.0, "failures": wrong.account.count }));
            if let Some(u) = flow.state.user_id {
                ev = ev.user(u);
            }
            crate::audit::record(store, now, &ev).await?;
        }
        if wrong.kills_flow() {
            let mut tx = store.begin().await?;
            tx.finish_flow(flow.id, crate::journeys::remembered_until(flow)).await?;
            tx.revoke_flow_secrets(flow.id, now).await?;
            tx.commit().await?;
            return Ok(Some(Error::gone(
                ErrorCode::TooManyAttempts,
                "too many wrong codes; start signing in again",
            )));
        }
        Ok(None)
    }
}
