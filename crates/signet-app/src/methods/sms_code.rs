//! `sms_otp`: a one-time code texted to the account's verified phone, typed
//! back into the flow. The SMS channel's adapter on the out-of-band code
//! engine ([`super::oob`]): the code rules are the engine's, the same as
//! for `email_otp`; what is this channel's own is the recipient (the
//! account's verified phone, [`crate::phone_enrollment`]), the text, and
//! pumping protection ([`crate::sms_pumping`]) before anything is sent.
//!
//! Proves aal1 with `amr` `["sms", "otp"]` (RFC 8176 §2: `sms`,
//! confirmation by text message; `otp`, a one-time password). NIST SP
//! 800-63B rev. 4 calls SMS a *restricted* authenticator (§3.2.9): a tier
//! offers it only where its policy lists it, and `signet policy check`
//! warns when a tier above aal1 does (`sms-in-high-tier`).
//!
//! **No enumeration.** A sign-in's send answers 202 whether the address is
//! an account, whether it has a phone, and whether pumping protection let
//! the text go: everything after [`super::oob::OobCodes::open_send`] runs in
//! a task of its own. A login offer therefore names no recipient; a
//! step-up's offer (the person is signed in) shows the number masked.
//!
//! It is also a recovery step (`recovery()`), for the tier's recovery path
//! `sms`.

use std::sync::Arc;

use serde_json::{json, Map};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::flow::{Flow, Journey};
use signet_core::method::{
    Channel, CredentialInfo, CredentialKind, Input, LoginStep, Method, MethodName, Offer, StepContext, StepEffect,
    StepInput, Verified,
};
use signet_core::policy::Policy;
use signet_core::session::Aal;
use signet_core::store::{SecretPurpose, Store};
use signet_core::unit_of_work::Transaction;
use signet_core::user::UserId;
use signet_core::ErrorCode;
use signet_core::{Error, Result};
use signet_courier::Courier;
use uuid::Uuid;

use super::oob::OobCodes;
use crate::metrics::Metrics;
use crate::{messages, phone_numbers, sms_pumping, Settings};

/// `amr` of a session proven by a texted code (RFC 8176 §2).
pub const AMR: [&str; 2] = ["sms", "otp"];

/// The handles the SMS channel needs.
#[derive(Clone)]
pub struct SmsChannel {
    pub policy: Arc<Policy>,
    pub store: Arc<dyn Store>,
    pub courier: Arc<Courier>,
    pub clock: signet_core::clock::SharedClock,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
}

impl SmsChannel {
    pub fn codes(&self) -> OobCodes {
        OobCodes {
            store: self.store.clone(),
            clock: self.clock.clone(),
            settings: self.settings.clone(),
        }
    }

    /// The host for the origin-bound code line of the text.
    pub fn host(&self) -> Option<String> {
        self.settings.public_url.host_str().map(str::to_owned)
    }

    /// Pumping protection for a text to `number`: `Ok(true)` when it may go,
    /// `Ok(false)` when it was refused (counted and audited here).
    pub async fn admit(
        &self,
        number: &phone_numbers::Number,
        user: Option<UserId>,
        purpose: &'static str,
        origin: &Origin,
    ) -> Result<std::result::Result<(), sms_pumping::Blocked>> {
        let now = self.clock.now();
        let verdict = sms_pumping::admit(&*self.store, &self.settings.sms, now, number, origin.ip.as_deref()).await?;
        if let Err(reason) = verdict {
            sms_pumping::record_blocked(&*self.store, &self.metrics, now, reason, number, user, purpose, origin)
                .await?;
        }
        Ok(verdict)
    }
}

/// The `sms_otp` method.
pub struct SmsCode {
    channel: SmsChannel,
}

impl SmsCode {
    pub fn new(channel: SmsChannel) -> Self {
        Self { channel }
    }

    pub fn channel(&self) -> SmsChannel {
        self.channel.clone()
    }

    /// Everything a sign-in's send does once the answer is decided, for a
    /// real account only: the tier check, the phone, pumping protection,
    /// the code and its text in one unit of work.
    async fn deliver(&self, flow: Flow, origin: Origin, user_id: UserId) -> Result<()> {
        let c = &self.channel;
        let Some(user) = c.store.user_by_id(user_id).await?.filter(|u| u.is_active()) else {
            return Ok(());
        };
        // The account's roles may have changed since the flow was offered
        // its tier's methods: then nothing is sent, as for an unknown address.
        if !c
            .policy
            .tier_for_roles(&user.roles)
            .1
            .login
            .contains(&MethodName::SmsOtp)
        {
            return Ok(());
        }
        // Only a verified phone is a way in (never `users.phone`).
        let Some(phone) = c.store.phones_of(user.id).await?.into_iter().next() else {
            return Ok(());
        };
        let number = phone_numbers::parse(phone.phone.as_str())?;
        if c.admit(&number, Some(user.id), "login", &origin).await?.is_err() {
            return Ok(());
        }
        let issued = c
            .codes()
            .issue(&flow, user.id, SecretPurpose::SmsCode, |_, _| Vec::new())
            .await?;
        let mut tx = issued.tx;
        let draft = messages::sms_code(
            &phone.phone,
            issued.code.expose_secret(),
            "sign-in",
            issued.valid_for,
            &c.settings.product_name,
            c.host().as_deref(),
            messages::SMS_CODE,
            issued.expires_at,
        );
        // Handed to this node's courier without waiting for a claim.
        let queued = c.courier.enqueue_leased_in(&mut *tx, draft).await?;
        let now = c.clock.now();
        let ev = AuditEvent::new(EventType::LoginCodeSent, Actor::Anonymous, Outcome::Success)
            .user(user.id)
            .from_origin(&origin)
            .details(json!({
                "flow_id": flow.id.0,
                "channel": "sms",
                "to": sms_pumping::mask(phone.phone.as_str()),
                "expires_at": issued.expires_at.to_rfc3339(),
                "message_id": queued.id,
            }));
        tx.append_audit(&ev, signet_core::ids::time_ordered(), now).await?;
        tx.commit().await?;
        c.courier.hand_over(queued);
        Ok(())
    }
}

impl Method for SmsCode {
    fn name(&self) -> MethodName {
        MethodName::SmsOtp
    }

    fn login(&self) -> Option<&dyn LoginStep> {
        Some(self)
    }

    /// The `sms` recovery path: a code to the account's verified phone.
    fn recovery(&self) -> Option<&dyn LoginStep> {
        Some(self)
    }

    fn credentials(&self) -> Option<&dyn CredentialKind> {
        Some(self)
    }

    /// Finishing only: a phone is added through `credentials/phone`
    /// ([`crate::phone_enrollment`]).
    fn enrollment(&self) -> Option<&dyn signet_core::method::Enrollment> {
        Some(self)
    }
}

/// Records the phone's last use with the step that it proved.
struct Touch {
    phone: Uuid,
    at: signet_core::clock::Timestamp,
}

#[async_trait::async_trait]
impl StepEffect for Touch {
    async fn apply(self: Box<Self>, tx: &mut dyn Transaction) -> Result<()> {
        Ok(tx.touch_phone(self.phone, self.at).await?)
    }
}

#[async_trait::async_trait]
impl LoginStep for SmsCode {
    async fn offer(&self, flow: &mut Flow, _ctx: StepContext<'_>) -> Result<Offer> {
        let mut extra = Map::new();
        // Only a signed-in person (a step-up) learns which number: a login
        // offer is the same for every address.
        if let (Journey::StepUp { .. }, Some(user)) = (&flow.state.journey, flow.state.user_id) {
            if let Some(phone) = self.channel.store.phones_of(user).await?.into_iter().next() {
                extra.insert("recipient".into(), json!(sms_pumping::mask(phone.phone.as_str())));
            }
        }
        Ok(Offer {
            method: MethodName::SmsOtp,
            label: "Text me a code",
            input: Input::Code {
                code_length: self.channel.settings.email_login.code_digits,
            },
            send: true,
            channel: Some(Channel::Sms),
            sent: Some("If your account has a verified phone, we texted it a code. Type it here."),
            extra,
        })
    }

    async fn send(&self, flow: &mut Flow, ctx: StepContext<'_>, tx: &mut dyn Transaction) -> Result<()> {
        self.channel.codes().open_send(flow, ctx.origin, tx).await?;
        if let Some(user) = flow.state.user_id {
            let this = SmsCode {
                channel: self.channel.clone(),
            };
            let (flow, origin) = (flow.clone(), ctx.origin.clone());
            tokio::spawn(async move {
                let id = flow.id.0;
                if let Err(e) = this.deliver(flow, origin, user).await {
                    tracing::error!(flow = %id, error = %e, "issuing a sign-in text failed");
                }
            });
        }
        Ok(())
    }

    async fn verify(&self, flow: &mut Flow, input: StepInput, ctx: StepContext<'_>) -> Result<Verified> {
        let StepInput::Code(code) = input else {
            return Err(Error::invalid(ErrorCode::InvalidRequest, "send {\"code\": \"...\"}"));
        };
        let mut verified = self
            .channel
            .codes()
            .check(flow, &code, ctx.origin, SecretPurpose::SmsCode, &AMR)
            .await?;
        if let Some(user) = flow.state.user_id {
            if let Some(phone) = self.channel.store.phones_of(user).await?.into_iter().next() {
                verified = verified.and_then(Box::new(Touch {
                    phone: phone.id,
                    at: self.channel.clock.now(),
                }));
            }
        }
        Ok(verified)
    }
}

#[async_trait::async_trait]
impl CredentialKind for SmsCode {
    fn noun(&self) -> &'static str {
        "phone number"
    }

    async fn list(&self, user: UserId) -> Result<Vec<CredentialInfo>> {
        let phones = self.channel.store.phones_of(user).await?;
        Ok(phones
            .into_iter()
            .map(|p| {
                let mut extra = Map::new();
                extra.insert("phone".into(), json!(sms_pumping::mask(p.phone.as_str())));
                CredentialInfo {
                    id: p.id,
                    kind: MethodName::SmsOtp,
                    name: p.name,
                    created_at: p.created_at,
                    last_used_at: p.last_used_at,
                    aal: Aal::Aal1,
                    extra,
                }
            })
            .collect())
    }

    async fn rename(&self, tx: &mut dyn Transaction, user: UserId, id: Uuid, name: &str) -> Result<Option<()>> {
        Ok(tx.rename_phone(user, id, name).await?.then_some(()))
    }

    async fn remove(
        &self,
        tx: &mut dyn Transaction,
        user: UserId,
        id: Uuid,
        keep: u32,
    ) -> Result<signet_core::credential::Removal> {
        Ok(tx.remove_phone(user, id, keep).await?)
    }
}
