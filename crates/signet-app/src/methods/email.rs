//! What the email methods (`email_otp`, `magic_link`) share: the email
//! channel's adapter on the out-of-band code engine ([`super::oob`]), which
//! holds the code rules for every channel (digits, lifetime, single use,
//! binding to the flow, wrong-code and account limits). What is the email
//! channel's own: the address (the account's), the letter (with a magic
//! link next to the code for `magic_link`), and the link's own check.
//!
//! **Issuing.** A send is counted against the address and IP limits first,
//! then every earlier code and link of the flow is revoked, so only the
//! newest message works ([`OobCodes::open_send`]). The link token has 256
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
//! **Checking.** [`OobCodes::check`]: consumed with the atomic
//! one-time-secret primitive, counted on the account's run of failures and
//! on the flow (5 wrong codes end it).

use crate::messages::{self, Requester};
use serde_json::{json, Map};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::SharedClock;
use signet_core::flow::Flow;
use signet_core::method::{Channel, Input, MethodName, Offer, Verified};
use signet_core::secret::{PlainToken, TokenKind};
use signet_core::session::{device_label, Proof};
use signet_core::store::{OneTimeSecret, SecretPurpose, Store};
use signet_core::unit_of_work::Transaction;
use signet_core::user::UserId;
use signet_core::ErrorCode;
use signet_core::{Error, Result};
use signet_courier::Courier;
use std::sync::Arc;

use super::oob::{self, OobCodes};
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
    oob::proof(amr)
}

impl Mailbox {
    /// The out-of-band code engine on this mailbox's handles.
    pub fn codes(&self) -> OobCodes {
        OobCodes {
            store: self.store.clone(),
            clock: self.clock.clone(),
            settings: self.settings.clone(),
        }
    }

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
    pub async fn send(
        &self,
        flow: &mut Flow,
        origin: &Origin,
        tx: &mut dyn Transaction,
        with_link: bool,
    ) -> Result<()> {
        self.codes().open_send(flow, origin, tx).await?;
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
    pub async fn check_code(&self, flow: &Flow, presented: &str, origin: &Origin) -> Result<Verified> {
        self.codes()
            .check(flow, presented, origin, SecretPurpose::EmailCode, &AMR_CODE)
            .await
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
        // The code and the link are issued together, replacing whatever the
        // flow had, in one unit of work.
        let link = self
            .token
            .as_ref()
            .map(|token| m.settings.link(&format!("/login/magic/{}", token.expose_secret())));
        let issued = m
            .codes()
            .issue(&self.flow, user.id, SecretPurpose::EmailCode, |now, expires_at| {
                self.token
                    .iter()
                    .map(|token| OneTimeSecret {
                        hash: token.hash(),
                        purpose: SecretPurpose::MagicLink,
                        user_id: user.id,
                        flow_id: Some(self.flow.id),
                        created_at: now,
                        expires_at,
                        consumed_at: None,
                        issued_by: "system".into(),
                    })
                    .collect()
            })
            .await?;
        let (plain, mut tx, expires_at, ttl) = (issued.code, issued.tx, issued.expires_at, issued.valid_for);
        let now = m.clock.now();
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
        // The code, the email carrying it and the record commit together;
        // the email goes to this node's courier without waiting for a
        // claim (`signet_courier::handoff`).
        let queued = m.courier.enqueue_leased_in(&mut *tx, draft).await?;
        let ev = AuditEvent::new(EventType::LoginCodeSent, Actor::Anonymous, Outcome::Success)
            .user(user.id)
            .from_origin(&self.origin)
            .details(json!({
                "flow_id": self.flow.id.0,
                "link": self.token.is_some(),
                "expires_at": expires_at.to_rfc3339(),
                "message_id": queued.id,
            }));
        tx.append_audit(&ev, signet_core::ids::time_ordered(), now).await?;
        tx.commit().await?;
        m.courier.hand_over(queued);
        Ok(())
    }
}
