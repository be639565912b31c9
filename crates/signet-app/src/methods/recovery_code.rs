//! `recovery_code`: a set of ten single-use codes, shown once (look-up
//! secrets, NIST SP 800-63B rev. 4 §3.1.2): aal1 alone, never
//! phishing-resistant. With a distinct factor the tier engine combines it to
//! aal2. `amr` is `["rc"]`: RFC 8176 registers no value for a look-up
//! secret, and a recovery code is not an OTP device's output (`otp`) nor
//! something the person knows (`kba`), so Signet names it itself, as it
//! does `mail` for email (docs/otp.md).
//!
//! **Codes.** 24 characters drawn uniformly from the CSPRNG over a
//! 32-symbol alphabet without look-alikes (no 0/O, 1/I): 120 bits each.
//! §3.1.2.1 asks at least 64 bits of a verifier-chosen look-up secret; the
//! extra length is for storage: §3.1.2.2 lets look-up secrets of at least
//! 112 bits be stored with an approved one-way hash (SHA-256 here), where
//! shorter ones would need a salted password-hashing scheme (ADR 0020).
//! Shown grouped `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`; typed in any case, with or
//! without spaces and dashes. Each code is stored as its own row, hashed
//! with the account's id (so equal codes of two accounts never collide), and
//! works once: its use is one `UPDATE ... WHERE used_at IS NULL` in the
//! step's unit of work, so of racing submissions exactly one commits.
//! Regeneration replaces the whole set in one unit of work, with its record
//! and notice.
//!
//! **Failures.** The same limits as the other typed codes
//! ([`crate::code_attempts`]): each attempt is reserved on the account and
//! the flow first; five wrong codes end the flow; a new set never resets
//! the account's run.
//!
//! **Notice.** Every use queues an email and a text to every phone on file
//! (in the use's unit of work) saying how many codes are left, with a
//! warning from two left down, and the "this wasn't me" link (ADR 0017).

use std::sync::Arc;

use serde_json::{json, Map};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::{SharedClock, Timestamp};
use signet_core::credential::Removal;
use signet_core::flow::{Flow, FlowId};
use signet_core::method::{
    CredentialInfo, CredentialKind, Input, LoginStep, Method, MethodName, Offer, StepContext, StepEffect, StepInput,
    Verified,
};
use signet_core::secret::{random_below, TokenHash};
use signet_core::session::{device_label, Aal, Proof};
use signet_core::store::Store;
use signet_core::unit_of_work::Transaction;
use signet_core::user::{User, UserId};
use signet_core::{Error, ErrorCode, Result};
use signet_courier::Courier;
use uuid::Uuid;

use crate::code_attempts;
use crate::messages::{self, Requester};
use crate::sessions::Current;
use crate::{App, Settings};

/// Codes in a set.
pub const CODES_PER_SET: usize = 10;
/// Symbols per code (24 × 5 bits = 120 bits).
pub const CODE_CHARS: usize = 24;
/// No 0/O or 1/I: what a person copies from paper reads back the same.
pub const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// `amr` of a recovery-code step (Signet-defined; see the module docs).
pub const AMR: [&str; 1] = ["rc"];
/// From this many codes left down, the notice warns.
pub const WARN_AT: u32 = 2;

/// A fresh code, grouped for reading.
fn generate() -> String {
    let mut out = String::with_capacity(CODE_CHARS + 3);
    for i in 0..CODE_CHARS {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let idx = usize::try_from(random_below(ALPHABET.len() as u64)).unwrap_or(0);
        out.push(char::from(ALPHABET[idx % ALPHABET.len()]));
    }
    out
}

/// A code as typed: spaces and dashes dropped, letters upper-cased; `None`
/// unless exactly [`CODE_CHARS`] symbols of the alphabet remain.
pub fn normalize(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let cleaned: String = typed
        .trim()
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (cleaned.len() == CODE_CHARS && cleaned.bytes().all(|b| ALPHABET.contains(&b))).then_some(cleaned)
}

/// What is stored for `code` of `user`.
pub fn hash(user: UserId, normalized: &str) -> TokenHash {
    TokenHash::of(format!("signet recovery code v1:{}:{normalized}", user.0).as_bytes())
}

pub struct RecoveryCodes {
    store: Arc<dyn Store>,
    clock: SharedClock,
    courier: Arc<Courier>,
    settings: Arc<Settings>,
}

impl RecoveryCodes {
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, courier: Arc<Courier>, settings: Arc<Settings>) -> Self {
        Self {
            store,
            clock,
            courier,
            settings,
        }
    }
}

impl Method for RecoveryCodes {
    fn name(&self) -> MethodName {
        MethodName::RecoveryCode
    }

    fn login(&self) -> Option<&dyn LoginStep> {
        Some(self)
    }

    /// The `recovery_code` recovery path.
    fn recovery(&self) -> Option<&dyn LoginStep> {
        Some(self)
    }

    fn credentials(&self) -> Option<&dyn CredentialKind> {
        Some(self)
    }
}

fn invalid_shape() -> Error {
    Error::invalid(
        ErrorCode::InvalidCode,
        "a recovery code is 24 letters and digits, like ABCD-EFGH-JKLM-NPQR-STUV-WXYZ",
    )
}

fn used() -> Error {
    Error::gone(ErrorCode::CodeUsed, "this recovery code was already used")
}

/// The code's use and its notice, in the step's unit of work: the count
/// left comes from the use itself, so two codes used at once each tell
/// their own count.
struct UseCode {
    /// The comparison, counted on the account's run of failures in this
    /// unit, which then ends the run (see the TOTP method's effect).
    attempt: code_attempts::Attempt,
    flow: FlowId,
    user: User,
    hash: TokenHash,
    at: Timestamp,
    device: String,
    ip: Option<String>,
    courier: Arc<Courier>,
    settings: Arc<Settings>,
}

#[async_trait::async_trait]
impl StepEffect for UseCode {
    async fn apply(self: Box<Self>, tx: &mut dyn Transaction) -> Result<()> {
        self.attempt.succeeded_in(tx, self.flow, self.at).await?;
        let Some(left) = tx.use_recovery_code(self.user.id, &self.hash, self.at).await? else {
            return Err(used());
        };
        let (link, not_me) = crate::not_me::prepare(&self.settings, &self.user, self.at);
        tx.issue_secrets(&[link], self.at).await?;
        let email = messages::recovery_code_used(
            &self.user.email,
            left,
            self.at,
            &Requester {
                device: &self.device,
                ip: self.ip.as_deref(),
            },
            &self.settings.product_name,
            &not_me,
        );
        let what = format!(
            "a recovery code was used to sign in; {left} left.{}",
            if left <= WARN_AT {
                " Generate a new set soon."
            } else {
                ""
            }
        );
        crate::notices::Notifier {
            courier: &self.courier,
            product_name: &self.settings.product_name,
        }
        .notify(tx, &self.user, email, &what)
        .await
    }
}

#[async_trait::async_trait]
impl LoginStep for RecoveryCodes {
    async fn offer(&self, _flow: &mut Flow, _ctx: StepContext<'_>) -> Result<Offer> {
        let mut extra = Map::new();
        // For the page: letters and digits, grouped with dashes.
        extra.insert("code_charset".into(), json!("alphanumeric"));
        extra.insert(
            "code_hint".into(),
            json!("Recovery code (like ABCD-EFGH-JKLM-NPQR-STUV-WXYZ)"),
        );
        Ok(Offer {
            method: MethodName::RecoveryCode,
            label: "Use a recovery code",
            input: Input::Code {
                code_length: CODE_CHARS as u8,
            },
            send: false,
            channel: None,
            sent: None,
            extra,
        })
    }

    async fn verify(&self, flow: &mut Flow, input: StepInput, ctx: StepContext<'_>) -> Result<Verified> {
        let StepInput::Code(raw) = input else {
            return Err(Error::invalid(ErrorCode::InvalidRequest, "send {\"code\": \"...\"}"));
        };
        let code = normalize(&raw).ok_or_else(invalid_shape)?;
        let now = self.clock.now();
        let attempt = code_attempts::prepare(flow)?;
        let user = match flow.state.user_id {
            Some(u) => Some(self.store.user_by_id(u).await?.filter(|u| u.is_active())),
            None => None,
        }
        .flatten();
        let state = match &user {
            Some(u) => self.store.recovery_code_used(u.id, &hash(u.id, &code)).await?,
            None => None,
        };
        let (Some(user), Some(false)) = (user, state) else {
            let refusal = if state == Some(true) {
                used()
            } else {
                Error::invalid(ErrorCode::InvalidCode, "that recovery code is not right")
            };
            return Err(attempt.failed(&*self.store, now, flow, ctx.origin, refusal).await);
        };
        Ok(Verified {
            proof: Proof {
                aal: Aal::Aal1,
                amr: AMR.iter().map(|a| (*a).to_owned()).collect(),
                phishing_resistant: false,
                credential_id: None,
                user_id: None,
            },
            effect: Some(Box::new(UseCode {
                attempt,
                flow: flow.id,
                user: user.clone(),
                hash: hash(user.id, &code),
                at: now,
                device: device_label(ctx.origin.user_agent.as_deref()),
                ip: ctx.origin.ip.clone(),
                courier: self.courier.clone(),
                settings: self.settings.clone(),
            })),
            owner: Some(user),
            cooling_off: None,
        })
    }
}

#[async_trait::async_trait]
impl CredentialKind for RecoveryCodes {
    fn noun(&self) -> &'static str {
        "set of recovery codes"
    }

    async fn list(&self, user: UserId) -> Result<Vec<CredentialInfo>> {
        let Some(set) = self.store.recovery_codes_of(user).await? else {
            return Ok(Vec::new());
        };
        let mut extra = Map::new();
        extra.insert("remaining".into(), json!(set.left));
        extra.insert("total".into(), json!(set.total));
        Ok(vec![CredentialInfo {
            id: set.id,
            kind: MethodName::RecoveryCode,
            name: "Recovery codes".to_owned(),
            created_at: set.created_at,
            last_used_at: set.last_used_at,
            aal: Aal::Aal1,
            extra,
        }])
    }

    async fn rename(&self, _tx: &mut dyn Transaction, _user: UserId, _id: Uuid, _name: &str) -> Result<Option<()>> {
        Err(Error::invalid(
            ErrorCode::InvalidRequest,
            "a set of recovery codes has no name of its own",
        ))
    }

    async fn remove(&self, tx: &mut dyn Transaction, user: UserId, id: Uuid, keep: u32) -> Result<Removal> {
        Ok(tx.remove_recovery_codes(user, id, keep).await?)
    }
}

/// `POST /api/v1/credentials/recovery-codes`: a new set of ten codes,
/// replacing any earlier set, in one unit of work with its record
/// (`credential.added`, type `recovery_code`) and notice. The codes are in
/// the answer only; the store keeps their hashes. Making a set is binding
/// an authenticator: once the account holds an aal2 one, it needs a fresh
/// aal2 step-up (`regenerate_recovery_codes`).
pub async fn regenerate(app: &App, current: &Current, origin: &Origin) -> Result<Vec<String>> {
    if app.registry.get(MethodName::RecoveryCode).is_none() {
        return Err(Error::not_found(
            ErrorCode::UnknownMethod,
            "no such way to sign in can be added here",
        ));
    }
    let user = &current.user;
    let existing = crate::credentials::list(app, user).await?;
    crate::credentials::require_binding_assurance(app, current, &existing, "regenerate_recovery_codes")?;
    let codes: Vec<String> = (0..CODES_PER_SET).map(|_| generate()).collect();
    let hashes: Vec<TokenHash> = codes
        .iter()
        .filter_map(|c| normalize(c))
        .map(|c| hash(user.id, &c))
        .collect();
    if hashes.len() != CODES_PER_SET {
        return Err(Error::internal_msg("a generated recovery code did not read back"));
    }
    let now = app.clock.now();
    let set_id = Uuid::new_v4();
    let mut tx = app.store.begin().await?;
    let discarded = tx.replace_recovery_codes(user.id, set_id, &hashes, now).await?;
    let record = AuditEvent::new(EventType::CredentialAdded, Actor::User(user.id), Outcome::Success)
        .user(user.id)
        .from_origin(origin)
        .details(json!({
            "credential_id": set_id,
            "type": MethodName::RecoveryCode,
            "name": "Recovery codes",
            "codes": CODES_PER_SET,
            "unused_codes_replaced": discarded,
            "session_id": current.session.id.0,
            "scope": current.session.scope,
        }));
    app.audit().append(&mut *tx, &record).await?;
    let device = device_label(origin.user_agent.as_deref());
    let not_me = crate::not_me::issue(app, &mut *tx, user).await?;
    let draft = messages::recovery_codes_generated(
        &user.email,
        now,
        &Requester {
            device: &device,
            ip: origin.ip.as_deref(),
        },
        &app.settings.product_name,
        &not_me,
    );
    crate::notices::security_notice(app, &mut *tx, user, draft, "new recovery codes were generated.").await?;
    tx.commit().await?;
    app.courier.wake();
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_from_the_alphabet_and_read_back() {
        for _ in 0..100 {
            let code = generate();
            assert_eq!(code.len(), CODE_CHARS + CODE_CHARS / 4 - 1);
            assert_eq!(code.matches('-').count(), CODE_CHARS / 4 - 1);
            let normalized = normalize(&code).unwrap();
            assert_eq!(normalize(&normalized.to_lowercase()), Some(normalized.clone()));
            assert_eq!(normalize(&code.replace('-', " ")), Some(normalized));
        }
    }

    #[test]
    fn look_alikes_and_wrong_lengths_are_refused() {
        assert_eq!(
            normalize("ABCD-EFGH-JKLM-NPQR-STUV-WXY0"),
            None,
            "0 is not in the alphabet"
        );
        assert_eq!(normalize("ABCD-EFGH-JKLM-NPQR-STUV-WXY"), None);
        assert_eq!(normalize("ABCD-EFGH-JKLM-NPQR-STUV-WXYZ2"), None);
        assert_eq!(normalize("ABCD-EFGH-JKLM-NPQR-STUV-WXY٢"), None);
        assert!(normalize("abcd efgh jklm npqr stuv wxyz").is_some());
    }

    #[test]
    fn a_code_carries_at_least_112_bits() {
        let bits = (CODE_CHARS as f64) * (ALPHABET.len() as f64).log2();
        assert!(
            bits >= 112.0,
            "{bits}: plain hashing needs 112 bits (SP 800-63B §3.1.2.2)"
        );
    }

    #[test]
    fn hashes_differ_per_account() {
        let a = hash(UserId(Uuid::from_u128(1)), "ABCDEFGHJKLMNPQRSTUVWXYZ");
        let b = hash(UserId(Uuid::from_u128(2)), "ABCDEFGHJKLMNPQRSTUVWXYZ");
        assert_ne!(a, b);
    }
}
