//! The out-of-band code engine: the rules of a one-time code sent over a
//! channel the person controls (email, SMS), written once for every channel.
//!
//! NIST SP 800-63B rev. 4 treats a code sent by email or SMS as an
//! out-of-band secret (§3.1.3; SMS over the PSTN is a *restricted*
//! authenticator, §3.2.9). What it asks of the verifier, and where it lives
//! here:
//!
//! - **Six digits from an approved random generator** (§3.1.3.1: at least
//!   20 bits of entropy; `[login] code_digits`, 6 by default, 6 to 8):
//!   [`OneTimeCode::generate`].
//! - **Valid for a short time** (§3.1.3.1: 10 minutes for a code typed back;
//!   `[login] code_ttl`, 10 minutes by default), and never beyond its flow.
//! - **Used once** (§3.1.3.1): redeemed with the store's one conditional
//!   write ([`signet_core::store::SecretStore::consume_secret`]), in the
//!   step's unit of work: of any number of concurrent submissions exactly
//!   one wins.
//! - **Bound to its flow** (§3.1.3.1, "the authentication secret is bound to
//!   the session"): the stored hash covers the flow id, and a newer code
//!   replaces the older one (revoked when a new send starts).
//! - **Rate limited** (§3.2.2): five wrong codes end the flow
//!   ([`throttle::FLOW_MAX_WRONG`]); the account's run of consecutive
//!   failures spans flows, backs off and locks at 100, and a new code never
//!   resets it (only a success does).
//!
//! A channel is a thin adapter on top ([`super::email`], [`super::sms_code`]):
//! whom to address (a mailbox, a verified phone), the message, and the
//! checks its delivery needs (SMS pumping protection). It calls
//! [`OobCodes::open_send`] when a send is asked for, [`OobCodes::issue`]
//! when it knows the account and is about to queue the message, and
//! [`OobCodes::check`] for a typed code. So the guarantees above hold on
//! every channel by construction.

use std::sync::Arc;

use crate::code_attempts;
use std::time::Duration;

use signet_core::audit::Origin;
use signet_core::clock::{SharedClock, Timestamp};
use signet_core::flow::{Flow, FlowId};
use signet_core::method::{StepEffect, Verified};
use signet_core::secret::{OneTimeCode, TokenHash};
use signet_core::session::{Aal, Proof};
use signet_core::store::{OneTimeSecret, Refusal, SecretPurpose, Store};
use signet_core::unit_of_work::{Transaction, Tx};
use signet_core::user::UserId;
use signet_core::ErrorCode;
use signet_core::{Error, Result};

use crate::one_time::issue_replacing;
use crate::{throttle, Settings};

/// The engine: the handles every channel's codes need.
#[derive(Clone)]
pub struct OobCodes {
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub settings: Arc<Settings>,
}

/// A code issued in an open unit of work: the caller adds the message that
/// carries it and its record, then commits.
pub struct Issued {
    pub code: OneTimeCode,
    pub tx: Tx,
    /// When the code stops working (what the message must say).
    pub expires_at: Timestamp,
    /// `expires_at - now`, for "valid for 10 minutes".
    pub valid_for: Duration,
}

/// A one-time code's proof: aal1, never phishing-resistant (an
/// out-of-band code can be relayed by a phishing page, §3.2.5).
pub fn proof(amr: &[&str]) -> Proof {
    Proof {
        aal: Aal::Aal1,
        amr: amr.iter().map(|a| (*a).to_owned()).collect(),
        phishing_resistant: false,
        credential_id: None,
        user_id: None,
    }
}

impl OobCodes {
    /// Digits in a code.
    pub fn digits(&self) -> u8 {
        self.settings.email_login.code_digits
    }

    /// The start of every send, for known and unknown accounts alike (so the
    /// answer tells nobody which it was): counts the send against the
    /// address and IP limits (429 when over), revokes the flow's earlier
    /// codes and links (only the newest message works), and keeps the flow
    /// alive as long as the new code, within
    /// [`crate::journeys::FLOW_MAX_LIFETIME`] of its start. All of it in the
    /// caller's unit `tx`, which also stores the flow: one commit per send. Returns the identifier hash the flow was started
    /// with.
    pub async fn open_send(&self, flow: &mut Flow, origin: &Origin, tx: &mut dyn Transaction) -> Result<()> {
        let identifier = flow
            .state
            .identifier_hash
            .as_deref()
            .ok_or_else(code_attempts::identifier_required)?;
        let now = self.clock.now();
        let limits = &self.settings.email_login;
        // In the caller's unit, with the flow: a refused send (429) rolls
        // its hits back, which changes nothing, since the window was full.
        throttle::check_send(tx, limits, now, identifier, origin.ip.as_deref()).await?;
        // The code and link sent before stop working now, even if this
        // send's own issue (which replaces them too) comes later or never.
        tx.revoke_flow_secrets(flow.id, now).await?;
        let wanted = now
            .plus(limits.ttl)
            .min(flow.created_at.plus(crate::journeys::FLOW_MAX_LIFETIME));
        flow.expires_at = flow.expires_at.max(wanted);
        Ok(())
    }

    /// Issues a new code of `purpose` for `flow`'s account `user`, replacing
    /// whatever the flow had, with `extra` secrets issued alongside (a magic
    /// link), in a new unit of work. The code lives `code_ttl`, but never
    /// beyond its flow: what the message says is what holds.
    pub async fn issue(
        &self,
        flow: &Flow,
        user: UserId,
        purpose: SecretPurpose,
        extra: impl Fn(Timestamp, Timestamp) -> Vec<OneTimeSecret>,
    ) -> Result<Issued> {
        let now = self.clock.now();
        let expires_at = now.plus(self.settings.email_login.ttl).min(flow.expires_at);
        let valid_for = Duration::from_millis(u64::try_from(expires_at.as_millis() - now.as_millis()).unwrap_or(0));
        let digits = self.digits();
        let (code, tx) = issue_replacing(&*self.store, now, || {
            let code = OneTimeCode::generate(digits);
            let mut issued = vec![OneTimeSecret {
                hash: code.hash_for(flow.id.0.as_bytes()),
                purpose,
                user_id: user,
                flow_id: Some(flow.id),
                created_at: now,
                expires_at,
                consumed_at: None,
                issued_by: "system".into(),
            }];
            issued.extend(extra(now, expires_at));
            (code, issued)
        })
        .await?;
        Ok(Issued {
            code,
            tx,
            expires_at,
            valid_for,
        })
    }

    /// Checks a typed code of `purpose` for this flow. A right code is
    /// proven with an effect that redeems it in the step's unit of work
    /// ([`Redeem`]): the attempt counted, the code consumed (of concurrent
    /// submissions exactly one wins) and the account's run of failures
    /// ended, with the journey's own writes: one durable commit per step.
    /// A wrong code is counted in a unit of its own before it is answered.
    pub async fn check(
        &self,
        flow: &Flow,
        presented: &str,
        origin: &Origin,
        purpose: SecretPurpose,
        amr: &[&str],
    ) -> Result<Verified> {
        // A code is bound to an account named at the start.
        flow.state
            .identifier_hash
            .as_deref()
            .ok_or_else(code_attempts::identifier_required)?;
        let attempt = code_attempts::prepare(flow)?;
        let now = self.clock.now();
        let digits = self.digits();
        let code = OneTimeCode::parse(presented, digits)
            .ok_or_else(|| Error::invalid(ErrorCode::InvalidCode, format!("the code is {digits} digits")))?;
        let hash = code.hash_for(flow.id.0.as_bytes());
        // The right digits for this flow, but already used (or replaced by a
        // newer code) or expired: not a guess, so told apart before anything
        // is counted.
        let live = self.spent(flow, purpose, &hash, now).await?;
        if !live.is_some_and(|user| Some(user) == flow.state.user_id) {
            // The same failure rules as every other typed code (account
            // backoff, five wrong codes end the flow): one implementation.
            let wrong = Error::invalid(ErrorCode::InvalidCode, "that code is not right");
            return Err(attempt.failed(&*self.store, now, flow, origin, wrong).await);
        }
        let mut verified = Verified::from(proof(amr));
        verified.effect = Some(Box::new(Redeem {
            attempt,
            purpose,
            hash,
            flow: flow.id,
            user: flow.state.user_id,
            at: now,
        }));
        Ok(verified)
    }

    /// `410 code_used` or `410 code_expired` when `hash` is this flow's code
    /// and can no longer be redeemed; else the account of the flow's live
    /// code `hash` is, if it is one.
    async fn spent(
        &self,
        flow: &Flow,
        purpose: SecretPurpose,
        hash: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<UserId>> {
        let Some(secret) = self.store.peek_secret(purpose, hash).await? else {
            return Ok(None);
        };
        if secret.flow_id != Some(flow.id) {
            return Ok(None);
        }
        if secret.consumed_at.is_some() {
            return Err(code_used());
        }
        if secret.expires_at <= now {
            return Err(Error::gone(
                ErrorCode::CodeExpired,
                "this code has expired; send a new one",
            ));
        }
        Ok(Some(secret.user_id))
    }
}

fn code_used() -> Error {
    Refusal::CodeUsed.error()
}

/// A right code's redemption, in the step's unit of work.
struct Redeem {
    attempt: code_attempts::Attempt,
    purpose: SecretPurpose,
    hash: TokenHash,
    flow: FlowId,
    user: Option<UserId>,
    at: Timestamp,
}

#[async_trait::async_trait]
impl StepEffect for Redeem {
    async fn apply(self: Box<Self>, tx: &mut dyn Transaction) -> Result<()> {
        // Counted first: while the account backs off even a right code is
        // refused, and stays unused.
        self.attempt.succeeded_in(tx, self.flow, self.at).await?;
        // The one conditional write that picks the single winner. A code
        // used, replaced or expired since it was read (a concurrent
        // submission won) refuses the unit, which then writes nothing
        // (checked in the engine; on SQLite with the unit's last call, ADR
        // 0035).
        Ok(tx
            .consume_flow_code_or_refuse(self.purpose, &self.hash, self.flow, self.user, self.at)
            .await?)
    }
}
