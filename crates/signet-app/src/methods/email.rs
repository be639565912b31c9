//! What the email methods (`email_otp`, `magic_link`) share: issuing a code
//! (and, for a magic link, a link) bound to a flow, composing and queueing
//! the email, and checking a typed code.
//!
//! **Issuing.** A send is counted against the address and IP limits first
//! ([`crate::throttle::check_send`]), then every earlier code and link of the
//! flow is revoked, so only the newest message works. The code is
//! `code_digits` digits, uniform from the CSPRNG; the link token has 256
//! random bits. Only hashes are stored, each as a one-time secret bound to
//! the flow: the code's hash covers the flow id, and the link records its
//! flow, so neither can finish another flow.
//!
//! **No enumeration.** Known and unknown addresses run the same code path
//! and the same storage writes up to the point where a message would be
//! composed. What only a real account needs (reading the user, storing the
//! secrets, queueing the mail through the durable outbox, auditing) runs
//! after the response is decided, in a task of its own, so the response's
//! status, body, headers and timing are the same either way. Nothing is
//! ever sent to an unknown address.
//!
//! **Checking.** A typed code is consumed with the atomic one-time-secret
//! primitive: of any number of concurrent attempts exactly one wins. A code
//! that matches a secret which is already used or expired is reported as
//! such before anything is counted; any other code is a comparison, first
//! reserved on the account's run of failures (backoff, NIST SP 800-63B
//! §5.2.2, cleared only by a success) and on the flow (5 wrong codes end
//! it).

use signet_core::ErrorCode;
use std::sync::Arc;
use std::time::Duration;

use crate::messages::{self, Requester};
use serde_json::{json, Map};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::{SharedClock, Timestamp};
use signet_core::flow::Flow;
use signet_core::method::{Channel, Input, MethodName, Offer};
use signet_core::secret::{OneTimeCode, PlainToken, TokenHash, TokenKind};
use signet_core::session::{device_label, Aal, Proof};
use signet_core::store::{OneTimeSecret, SecretPurpose, Store};
use signet_core::user::UserId;
use signet_core::{Error, Result};
use signet_courier::Courier;
use uuid::Uuid;

use crate::one_time::issue_replacing;
use crate::{throttle, Settings};

/// `amr` of a session proven by a typed email code: RFC 8176 `otp`, plus
/// Signet's `mail` for the channel.
pub const AMR_CODE: [&str; 2] = ["otp", "mail"];
/// `amr` of a session proven by opening an emailed link (Signet-defined,
/// as for invitations: RFC 8176 registers no value for email).
pub const AMR_LINK: [&str; 1] = ["mail"];

/// The handles the email methods need, shared by both.
#[derive(Clone)]
pub struct Mailbox {
    /// To check, in the background, that the account's real tier allows the
    /// method before anything is sent (the response never depends on it).
    pub policy: Arc<signet_core::policy::Policy>,
    pub store: Arc<dyn Store>,
    pub courier: Arc<Courier>,
    pub clock: SharedClock,
    pub settings: Arc<Settings>,
}

/// Email proves control of a mailbox and nothing more: never above aal1,
/// never phishing-resistant.
fn proof(amr: &[&str]) -> Proof {
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
        "start the sign-in with your email address to use an emailed code or link",
    )
}

impl Mailbox {
    /// A method's entry in a flow's `methods` list: a code of the
    /// configured length, sent by email first. Identical for every account.
    pub fn offer(&self, method: MethodName, label: &'static str, sent: &'static str) -> Offer {
        Offer {
            method,
            label,
            input: Input::Code {
                code_length: self.settings.email_login.code_digits,
            },
            send: true,
            channel: Some(Channel::Email),
            sent: Some(sent),
            extra: Map::new(),
        }
    }

    /// Sends a code, and with `with_link` a magic link too, for this flow.
    /// The flow is kept alive as long as the code (`login.code_ttl` from
    /// now), within [`crate::journeys::FLOW_MAX_LIFETIME`] of its start; the
    /// caller stores it.
    pub async fn send(&self, flow: &mut Flow, origin: &Origin, with_link: bool) -> Result<()> {
        let identifier = flow.state.identifier_hash.as_deref().ok_or_else(no_identifier)?;
        let now = self.clock.now();
        let limits = &self.settings.email_login;
        throttle::check_send(&*self.store, limits, now, identifier, origin.ip.as_deref()).await?;
        // The code and link sent before stop working now, even if this
        // send's own issue (which replaces them too) comes later or never.
        let mut tx = self.store.begin().await?;
        tx.revoke_flow_secrets(flow.id, now).await?;
        tx.commit().await?;
        let wanted = now
            .plus(limits.ttl)
            .min(flow.created_at.plus(crate::journeys::FLOW_MAX_LIFETIME));
        flow.expires_at = flow.expires_at.max(wanted);
        let issue = Issue {
            mailbox: self.clone(),
            flow: flow.clone(),
            origin: origin.clone(),
            token: with_link.then(|| PlainToken::generate(TokenKind::MagicLink)),
        };
        if let Some(user) = flow.state.user_id {
            tokio::spawn(async move {
                if let Err(e) = issue.deliver(user).await {
                    tracing::error!(flow = %issue.flow.id.0, error = %e, "issuing a sign-in email failed");
                }
            });
        }
        Ok(())
    }

    /// Checks a typed code for this flow.
    pub async fn check_code(&self, flow: &Flow, presented: &str, origin: &Origin) -> Result<Proof> {
        let identifier = flow.state.identifier_hash.as_deref().ok_or_else(no_identifier)?;
        let now = self.clock.now();
        let digits = self.settings.email_login.code_digits;
        let code = OneTimeCode::parse(presented, digits)
            .ok_or_else(|| Error::invalid(ErrorCode::InvalidCode, format!("the code is {digits} digits")))?;
        let hash = code.hash_for(flow.id.0.as_bytes());
        // The right digits for this flow, but already used (or replaced by a
        // newer code) or expired: not a guess, so told apart before anything
        // is counted.
        self.spent(flow, &hash, now).await?;
        let account = throttle::reserve_account_attempt(&*self.store, now, identifier).await?;
        throttle::reserve_attempt(&*self.store, now, flow.id).await?;
        if let Some(secret) = self.store.consume_secret(SecretPurpose::EmailCode, &hash, now).await? {
            if secret.flow_id == Some(flow.id) && Some(secret.user_id) == flow.state.user_id {
                throttle::clear_account(&*self.store, identifier).await?;
                return Ok(proof(&AMR_CODE));
            }
        }
        // A concurrent request with the same right code won since the check
        // above (this attempt was counted, and the winner cleared the run).
        self.spent(flow, &hash, now).await?;
        let wrong = throttle::record_wrong(&*self.store, now, flow.id, account).await?;
        if wrong.locks_account() {
            let mut ev = AuditEvent::new(EventType::LoginLocked, Actor::Anonymous, Outcome::Denied)
                .from_origin(origin)
                .details(json!({ "flow_id": flow.id.0, "failures": wrong.account.count }));
            if let Some(u) = flow.state.user_id {
                ev = ev.user(u);
            }
            crate::audit::record(&*self.store, now, &ev).await?;
        }
        if wrong.kills_flow() {
            let mut tx = self.store.begin().await?;
            // Ended for good: its handle cannot bring it back.
            tx.finish_flow(flow.id, crate::journeys::remembered_until(flow)).await?;
            tx.revoke_flow_secrets(flow.id, now).await?;
            tx.commit().await?;
            return Err(Error::gone(
                ErrorCode::TooManyAttempts,
                "too many wrong codes; start signing in again",
            ));
        }
        Err(Error::invalid(ErrorCode::InvalidCode, "that code is not right"))
    }

    /// `410 code_used` or `410 code_expired` when `hash` is this flow's code
    /// and can no longer be redeemed.
    async fn spent(&self, flow: &Flow, hash: &TokenHash, now: Timestamp) -> Result<()> {
        let Some(secret) = self.store.peek_secret(SecretPurpose::EmailCode, hash).await? else {
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

    /// Checks a magic-link token for this flow. The token is consumed only
    /// if it belongs to this flow, so a link can never burn another flow's.
    pub async fn check_link(&self, flow: &Flow, presented: &str) -> Result<Proof> {
        let invalid = || {
            Error::gone(
                ErrorCode::LinkInvalid,
                "this sign-in link is invalid, already used or expired",
            )
        };
        let token = PlainToken::parse(TokenKind::MagicLink, presented).ok_or_else(invalid)?;
        let hash = token.hash();
        let ours = self
            .store
            .peek_secret(SecretPurpose::MagicLink, &hash)
            .await?
            .is_some_and(|s| s.flow_id == Some(flow.id));
        if !ours {
            return Err(invalid());
        }
        let now = self.clock.now();
        let secret = self
            .store
            .consume_secret(SecretPurpose::MagicLink, &hash, now)
            .await?
            .ok_or_else(invalid)?;
        if Some(secret.user_id) != flow.state.user_id {
            return Err(invalid());
        }
        if let Some(identifier) = flow.state.identifier_hash.as_deref() {
            throttle::clear_account(&*self.store, identifier).await?;
        }
        Ok(proof(&AMR_LINK))
    }
}

/// Everything a send decided, delivered for a real account only.
struct Issue {
    mailbox: Mailbox,
    flow: Flow,
    origin: Origin,
    token: Option<PlainToken>,
}

impl Issue {
    async fn deliver(&self, user_id: UserId) -> Result<()> {
        let m = &self.mailbox;
        let Some(user) = m.store.user_by_id(user_id).await?.filter(|u| u.is_active()) else {
            return Ok(());
        };
        // The flow was offered the account's tier's methods, but its roles
        // may have changed since: an account whose tier no longer allows this
        // method is treated like an unknown address, and nothing is sent.
        let method = if self.token.is_some() {
            MethodName::MagicLink
        } else {
            MethodName::EmailOtp
        };
        if !m.policy.tier_for_roles(&user.roles).1.login.contains(&method) {
            return Ok(());
        }
        let now = m.clock.now();
        // The code lives `code_ttl`, but never beyond its flow: what the email
        // says is what holds.
        let expires_at = now.plus(m.settings.email_login.ttl).min(self.flow.expires_at);
        let ttl = Duration::from_millis(u64::try_from(expires_at.as_millis() - now.as_millis()).unwrap_or(0));
        let secret = |hash, purpose| OneTimeSecret {
            hash,
            purpose,
            user_id: user.id,
            flow_id: Some(self.flow.id),
            created_at: now,
            expires_at,
            consumed_at: None,
            issued_by: "system".into(),
        };
        // The code and the link are issued together, replacing whatever the
        // flow had, in one transaction (a redrawn code after a conflict: see
        // `one_time`).
        let link = self
            .token
            .as_ref()
            .map(|token| m.settings.link(&format!("/login/magic/{}", token.expose_secret())));
        let (plain, mut tx) = issue_replacing(&*m.store, now, || {
            let plain = OneTimeCode::generate(m.settings.email_login.code_digits);
            let mut issued = vec![secret(
                plain.hash_for(self.flow.id.0.as_bytes()),
                SecretPurpose::EmailCode,
            )];
            if let Some(token) = &self.token {
                issued.push(secret(token.hash(), SecretPurpose::MagicLink));
            }
            (plain, issued)
        })
        .await?;
        let device = device_label(self.origin.user_agent.as_deref());
        let draft = messages::sign_in(
            &user.email,
            plain.expose_secret(),
            link.as_deref(),
            expires_at,
            ttl,
            &Requester {
                device: &device,
                ip: self.origin.ip.as_deref(),
            },
            &m.settings.product_name,
        );
        // The code, the email carrying it and the record commit together.
        let message_id = m.courier.enqueue_in(&mut *tx, draft).await?;
        let ev = AuditEvent::new(EventType::LoginCodeSent, Actor::Anonymous, Outcome::Success)
            .user(user.id)
            .from_origin(&self.origin)
            .details(json!({
                "flow_id": self.flow.id.0,
                "link": self.token.is_some(),
                "expires_at": expires_at.to_rfc3339(),
                "message_id": message_id,
            }));
        tx.append_audit(&ev, Uuid::new_v4(), now).await?;
        tx.commit().await?;
        m.courier.wake();
        Ok(())
    }
}
