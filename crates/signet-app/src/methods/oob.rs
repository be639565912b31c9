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
//!   write ([`signet_core::store::SecretStore::consume_secret`]): of any
//!   number of concurrent submissions exactly one wins.
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
use signet_core::flow::Flow;
use signet_core::secret::{OneTimeCode, TokenHash};
use signet_core::session::{Aal, Proof};
use signet_core::store::{OneTimeSecret, SecretPurpose, Store};
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

fn no_identifier() -> Error {
    Error::invalid(
        ErrorCode::IdentifierRequired,
        "start the sign-in with your email address to use a code",
    )
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
        let identifier = flow.state.identifier_hash.as_deref().ok_or_else(no_identifier)?;
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

    /// Checks a typed code of `purpose` for this flow; on success the
    /// account's run of failures ends and the proof carries `amr`.
    pub async fn check(
        &self,
        flow: &Flow,
        presented: &str,
        origin: &Origin,
        purpose: SecretPurpose,
        amr: &[&str],
    ) -> Result<Proof> {
        // A code is bound to an account named at the start.
        flow.state.identifier_hash.as_deref().ok_or_else(no_identifier)?;
        let now = self.clock.now();
        let digits = self.digits();
        let code = OneTimeCode::parse(presented, digits)
            .ok_or_else(|| Error::invalid(ErrorCode::InvalidCode, format!("the code is {digits} digits")))?;
        let hash = code.hash_for(flow.id.0.as_bytes());
        // The right digits for this flow, but already used (or replaced by a
        // newer code) or expired: not a guess, so told apart before anything
        // is counted.
        self.spent(flow, purpose, &hash, now).await?;
        // The same failure rules as every other typed code (account backoff,
        // five wrong codes end the flow): one implementation. The attempt is
        // reserved, the code consumed and, if it was right, the account's
        // run cleared in one unit of work: one durable commit, and the
        // reservation is never durable without its comparison's outcome
        // (nor the other way round). The journey's completion is the step's
        // other commit.
        let mut tx = self.store.begin().await?;
        let attempt = match code_attempts::reserve_in(&mut *tx, flow, now).await {
            Ok(attempt) => attempt,
            Err(refused) => {
                tx.commit().await?;
                return Err(refused);
            }
        };
        let won = tx
            .consume_secret(purpose, &hash, now)
            .await?
            .is_some_and(|secret| secret.flow_id == Some(flow.id) && Some(secret.user_id) == flow.state.user_id);
        if won {
            attempt.succeeded_in(&mut *tx).await?;
            tx.commit().await?;
            return Ok(proof(amr));
        }
        tx.commit().await?;
        // A concurrent request with the same right code won since the check
        // above (this attempt was counted, and the winner cleared the run).
        self.spent(flow, purpose, &hash, now).await?;
        let wrong = Error::invalid(ErrorCode::InvalidCode, "that code is not right");
        Err(attempt.failed(&*self.store, now, flow, origin, wrong).await)
    }

    /// `410 code_used` or `410 code_expired` when `hash` is this flow's code
    /// and can no longer be redeemed.
    async fn spent(&self, flow: &Flow, purpose: SecretPurpose, hash: &TokenHash, now: Timestamp) -> Result<()> {
        let Some(secret) = self.store.peek_secret(purpose, hash).await? else {
            return Ok(());
        };
        if secret.flow_id != Some(flow.id) {
            return Ok(());
        }
        if secret.consumed_at.is_some() {
            return Err(Error::gone(
                ErrorCode::CodeUsed,
                "this code was already used or replaced by a newer one",
            ));
        }
        if secret.expires_at <= now {
            return Err(Error::gone(
                ErrorCode::CodeExpired,
                "this code has expired; send a new one",
            ));
        }
        Ok(())
    }
}
