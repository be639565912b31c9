//! Adding a phone (`sms_otp`): `POST /api/v1/credentials/phone {"phone"}`
//! texts a code to the number, `POST /api/v1/credentials/phone/verify
//! {"code"}` binds it. A number becomes a way in only once its owner typed
//! back the code sent to it (NIST SP 800-63B rev. 4 §4.1.2.1: an
//! authenticator is bound after the subscriber proves possession of it).
//!
//! **The number.** Parsed and classified by [`crate::phone_numbers`]
//! (`400 invalid_phone` for input that is not an assigned number), then
//! held to pumping protection ([`crate::sms_pumping`]): a country off the
//! allow-list or a range that is not one person's handset is `400
//! phone_not_allowed`, a send limit `429 rate_limited`. The person is signed
//! in and typed the number, so the answer may say why (no account can be
//! probed here); every refusal is still counted and audited.
//!
//! **The pending number** lives in an enrollment ceremony bound to the
//! session, under an id derived from the session's (the contract's verify
//! body has no ceremony id): a new `phone` request replaces it. The code is
//! the out-of-band engine's ([`crate::methods::oob`]): same digits, same
//! lifetime, single use; its hash covers the ceremony and the number, so a
//! code texted to one number can never confirm another, and a new code
//! revokes the user's earlier one.
//!
//! **Checking** takes the ceremony out of storage (one `DELETE ...
//! RETURNING`), so attempts on one enrollment run one at a time and a
//! concurrent one finds nothing (`410 no_phone_pending`, not a guess). A
//! wrong code puts it back with its count; the fifth ends the enrollment
//! (`410 too_many_attempts`). Each attempt is first reserved on the
//! account's run of failures, the one sign-in codes use, so enrolling
//! cannot be used to guess around it and a new code never resets it.
//! Binding then goes through [`crate::credentials::finish`]: binding
//! assurance, the `credential.added` record and the notices.
//!
//! **`users.phone`** (`signet user add --phone`, the admin API's `phone`)
//! is a contact number for security notices, set by an administrator and
//! never verified: it is never a way in. To sign in by SMS, the person adds
//! the number here and confirms it.

use serde_json::{json, Map, Value};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::Timestamp;
use signet_core::credential::{Ceremony, PhoneCredential};
use signet_core::method::{CredentialInfo, EnrollContext, Enrollment, MethodName, NewCredential, StepInput};
use signet_core::secret::{OneTimeCode, TokenHash};
use signet_core::session::{Aal, SessionId};
use signet_core::store::{OneTimeSecret, SecretPurpose};
use signet_core::unit_of_work::Transaction;
use signet_core::user::{Phone, UserId};
use signet_core::{Error, ErrorCode, Result};
use uuid::Uuid;

use crate::methods::sms_code::{SmsChannel, SmsCode};
use crate::phone_numbers::{self, Number};
use crate::sessions::Current;
use crate::sms_pumping::{self, Blocked};
use crate::{credentials, messages, throttle, App};

/// Wrong codes that end an enrollment (as for a sign-in flow).
pub const MAX_WRONG: u32 = throttle::FLOW_MAX_WRONG;

/// The enrollment ceremony of `session`: one at a time per session.
pub fn ceremony_id(session: SessionId) -> Uuid {
    let digest = TokenHash::of(format!("signet phone enrollment {}", session.0).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_bytes()[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn code_scope(ceremony: Uuid, phone: &Phone) -> Vec<u8> {
    let mut scope = ceremony.as_bytes().to_vec();
    scope.extend_from_slice(phone.as_str().as_bytes());
    scope
}

/// What the ceremony remembers.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    phone: String,
    wrong: u32,
}

fn channel(app: &App) -> SmsChannel {
    SmsChannel {
        policy: app.policy.clone(),
        store: app.store.clone(),
        courier: app.courier.clone(),
        clock: app.clock.clone(),
        settings: app.settings.clone(),
        metrics: app.metrics.clone(),
    }
}

fn refusal(reason: Blocked, window_secs: u64) -> Error {
    match reason {
        Blocked::Country => Error::invalid(
            ErrorCode::PhoneNotAllowed,
            "this service does not send text messages to that country",
        ),
        Blocked::NumberType => Error::invalid(
            ErrorCode::PhoneNotAllowed,
            "that number cannot receive sign-in codes (use a mobile number)",
        ),
        _ => Error::RateLimited {
            retry_after_secs: window_secs,
        },
    }
}

/// `POST /api/v1/credentials/phone`: texts a code to `raw_phone` and
/// remembers it, pending, for this session.
pub async fn begin(app: &App, current: &Current, origin: &Origin, raw_phone: &str) -> Result<()> {
    if app.registry.get(MethodName::SmsOtp).is_none() {
        return Err(Error::not_found(
            ErrorCode::UnknownMethod,
            "this server does not sign in with text messages",
        ));
    }
    let number: Number = phone_numbers::parse(raw_phone)?;
    let user = &current.user;
    let existing = credentials::list(app, user).await?;
    credentials::require_binding_assurance(app, current, &existing, "add_credential")?;
    if existing.iter().any(|c| c.kind == MethodName::SmsOtp) {
        return Err(Error::conflict(
            ErrorCode::PhoneExists,
            "your account has a phone number already; remove it to add another",
        ));
    }
    let sms = channel(app);
    if let Err(reason) = sms.admit(&number, Some(user.id), "enroll", origin).await? {
        return Err(refusal(reason, app.settings.sms.window.as_secs()));
    }
    let now = app.clock.now();
    let id = ceremony_id(current.session.id);
    // A pending number of this session is replaced.
    app.store.take_ceremony(id, current.session.id, now).await?;
    let expires_at = now.plus(app.settings.email_login.ttl);
    let state = serde_json::to_string(&Pending {
        phone: number.e164.as_str().to_owned(),
        wrong: 0,
    })
    .map_err(|e| Error::Internal(Box::new(e)))?;
    app.store
        .insert_ceremony(&Ceremony {
            id,
            session_id: current.session.id,
            user_id: user.id,
            state,
            name: None,
            created_at: now,
            expires_at,
        })
        .await?;
    let code = OneTimeCode::generate(app.settings.email_login.code_digits);
    let secret = OneTimeSecret {
        hash: code.hash_for(&code_scope(id, &number.e164)),
        purpose: SecretPurpose::SmsCode,
        user_id: user.id,
        flow_id: None,
        created_at: now,
        expires_at,
        consumed_at: None,
        issued_by: "system".into(),
    };
    let mut tx = app.store.begin().await?;
    // Revokes the user's earlier enrollment code, in this unit of work.
    tx.issue_secrets(&[secret], now).await?;
    let draft = messages::sms_code(
        &number.e164,
        code.expose_secret(),
        "phone confirmation",
        app.settings.email_login.ttl,
        &app.settings.product_name,
        sms.host().as_deref(),
        messages::SMS_PHONE_CODE,
        expires_at,
    );
    // Handed to this node's courier without waiting for a claim.
    let queued = app.courier.enqueue_leased_in(&mut *tx, draft).await?;
    let ev = AuditEvent::new(EventType::LoginCodeSent, Actor::User(user.id), Outcome::Success)
        .user(user.id)
        .from_origin(origin)
        .details(json!({
            "purpose": "phone_enrollment",
            "channel": "sms",
            "to": sms_pumping::mask(number.e164.as_str()),
            "expires_at": expires_at.to_rfc3339(),
            "message_id": queued.id,
        }));
    app.audit().append(&mut *tx, &ev).await?;
    tx.commit().await?;
    app.courier.hand_over(queued);
    Ok(())
}

/// `POST /api/v1/credentials/phone/verify`: binds the pending number of
/// this session if `code` is the one texted to it.
pub async fn verify(app: &App, current: &Current, origin: &Origin, code: String) -> Result<CredentialInfo> {
    let id = ceremony_id(current.session.id).to_string();
    credentials::finish(
        app,
        current,
        origin,
        MethodName::SmsOtp.as_str(),
        &id,
        StepInput::Code(code),
    )
    .await
}

fn nothing_pending() -> Error {
    Error::gone(
        ErrorCode::NoPhonePending,
        "no phone number is waiting for a code here; add it again",
    )
}

/// A confirmed phone, ready to store.
struct NewPhone {
    phone: PhoneCredential,
    number: Number,
}

#[async_trait::async_trait]
impl NewCredential for NewPhone {
    fn info(&self) -> CredentialInfo {
        let mut extra = Map::new();
        extra.insert("phone".into(), json!(sms_pumping::mask(self.phone.phone.as_str())));
        CredentialInfo {
            id: self.phone.id,
            kind: MethodName::SmsOtp,
            name: self.phone.name.clone(),
            created_at: self.phone.created_at,
            last_used_at: None,
            aal: Aal::Aal1,
            extra,
        }
    }

    fn details(&self) -> Map<String, Value> {
        let mut d = Map::new();
        d.insert("phone".into(), json!(sms_pumping::mask(self.phone.phone.as_str())));
        d.insert("country".into(), json!(self.number.region));
        d.insert("number_type".into(), json!(self.number.kind));
        d
    }

    async fn store(self: Box<Self>, tx: &mut dyn Transaction) -> Result<()> {
        Ok(tx.insert_phone(&self.phone).await?)
    }
}

/// The phone's default name: its masked number, as the account page shows it.
fn default_name(phone: &Phone) -> String {
    format!("Phone {}", sms_pumping::mask(phone.as_str()))
}

#[async_trait::async_trait]
impl Enrollment for SmsCode {
    /// A phone is added with its number (`POST /api/v1/credentials/phone`),
    /// which the generic `begin` body has no room for.
    async fn begin(&self, _ctx: EnrollContext<'_>, _name: Option<String>) -> Result<Map<String, Value>> {
        Err(Error::invalid(
            ErrorCode::InvalidRequest,
            "add a phone with POST /api/v1/credentials/phone {\"phone\": \"+E164\"}",
        ))
    }

    async fn finish(
        &self,
        ctx: EnrollContext<'_>,
        ceremony_id: &str,
        input: StepInput,
    ) -> Result<Box<dyn NewCredential>> {
        let StepInput::Code(presented) = input else {
            return Err(Error::invalid(ErrorCode::InvalidRequest, "send {\"code\": \"...\"}"));
        };
        let c = self.channel();
        let digits = c.settings.email_login.code_digits;
        let code = OneTimeCode::parse(&presented, digits)
            .ok_or_else(|| Error::invalid(ErrorCode::InvalidCode, format!("the code is {digits} digits")))?;
        let id = Uuid::parse_str(ceremony_id).map_err(|_| nothing_pending())?;
        let now = c.clock.now();
        let ceremony = c
            .store
            .take_ceremony(id, ctx.session.id, now)
            .await?
            .ok_or_else(nothing_pending)?;
        let mut pending: Pending = serde_json::from_str(&ceremony.state).map_err(|e| Error::Internal(Box::new(e)))?;
        let phone = Phone::parse(&pending.phone)?;
        let identifier = TokenHash::of(ctx.user.email.normalized().as_bytes()).to_hex();
        // Reserved on the account's run before the comparison; if the run
        // is backing off, the enrollment stays as it was.
        let account = match throttle::reserve_account_attempt(&*c.store, now, &identifier).await {
            Ok(a) => a,
            Err(e) => {
                c.store.insert_ceremony(&ceremony).await?;
                return Err(e);
            }
        };
        let hash = code.hash_for(&code_scope(id, &phone));
        let consumed = c.store.consume_secret(SecretPurpose::SmsCode, &hash, now).await?;
        if consumed.is_some_and(|s| s.user_id == ctx.user.id && s.flow_id.is_none()) {
            throttle::clear_account(&*c.store, &identifier).await?;
            let number = phone_numbers::parse(phone.as_str())?;
            let name = ceremony.name.clone().unwrap_or_else(|| default_name(&phone));
            return Ok(Box::new(NewPhone {
                phone: PhoneCredential {
                    id: Uuid::new_v4(),
                    user_id: ctx.user.id,
                    phone,
                    name,
                    created_at: now,
                    last_used_at: None,
                },
                number,
            }));
        }
        pending.wrong += 1;
        if account.count == throttle::ACCOUNT_MAX_FAILURES {
            locked(&c, ctx.user.id, now, account.count).await?;
        }
        if pending.wrong >= MAX_WRONG {
            return Err(Error::gone(
                ErrorCode::TooManyAttempts,
                "too many wrong codes; add the phone number again",
            ));
        }
        let state = serde_json::to_string(&pending).map_err(|e| Error::Internal(Box::new(e)))?;
        c.store.insert_ceremony(&Ceremony { state, ..ceremony }).await?;
        Err(Error::invalid(ErrorCode::InvalidCode, "that code is not right"))
    }
}

/// The account reached the failure ceiling while enrolling a phone.
async fn locked(c: &SmsChannel, user: UserId, now: Timestamp, failures: u32) -> Result<()> {
    let ev = AuditEvent::new(EventType::LoginLocked, Actor::User(user), Outcome::Denied)
        .user(user)
        .details(json!({ "purpose": "phone_enrollment", "failures": failures }));
    crate::audit::record(&*c.store, now, &ev).await
}
