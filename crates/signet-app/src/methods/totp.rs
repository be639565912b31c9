//! `totp`: a code from an authenticator app (RFC 6238), a single-factor OTP
//! device (NIST SP 800-63B rev. 4 §3.1.4): aal1 alone, `amr` `["otp"]`
//! (RFC 8176 §2), never phishing-resistant. With a distinct factor (an
//! email code, a passkey) the tier engine combines it to aal2.
//!
//! **Enrollment** (`/api/v1/credentials/totp/begin|finish`). `begin` draws a
//! 160-bit seed from the CSPRNG (RFC 4226 §4 R6 recommends 160 bits), keeps
//! it sealed in a ceremony bound to the session (10 minutes) and returns it
//! once: base32, as an `otpauth://` URI (issuer, account, SHA1, 6 digits,
//! 30 s, what every app supports) and as a QR code in inline SVG. `finish`
//! needs a first valid code (±1 step): only then is the credential stored,
//! its seed sealed with the key ring for its own row
//! ([`TotpCredential::binding`]), and its `last_step` set to the step that
//! confirmed it, so the enrollment code cannot sign in. A wrong code keeps
//! the ceremony for up to five tries. The seed is never shown again.
//!
//! **Verify.** A code of 6 ASCII digits (spaces and dashes dropped) is
//! checked against each of the account's TOTP credentials at the current
//! step and one step either side (RFC 6238 §5.2's allowance for clock drift
//! and delay). Each comparison is an attempt counted on the account and the
//! flow ([`crate::code_attempts`]), like an emailed code, in the unit of
//! work that stores its outcome.
//!
//! **Replay (RFC 6238 §5.2).** A code whose step is not above the
//! credential's `last_step` is refused (`409 code_replayed`). The accepted
//! step is written by the step's effect, in the journey's unit of work, as
//! one `UPDATE ... WHERE last_step < $step`, checked inside the engine
//! (ADR 0035: on SQLite it travels with the unit's last call): of any
//! number of requests racing with the same code, on any node and in any
//! flow, exactly one commits, the others fail with `code_replayed`. Every replay is a failed
//! step, which the journey engine records as `login.failed` with that code.

use std::sync::Arc;

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use signet_core::clock::{SharedClock, Timestamp};
use signet_core::credential::{Ceremony, Removal, TotpCredential};
use signet_core::flow::{Flow, FlowId};
use signet_core::method::{
    CredentialInfo, CredentialKind, EnrollContext, Enrollment, Input, LoginStep, Method, MethodName, NewCredential,
    Offer, StepContext, StepEffect, StepInput, Verified,
};
use signet_core::sealing::{Binding, KeyRing, SecretBytes};
use signet_core::secret::{fill_random, OneTimeCode};
use signet_core::session::{Aal, Proof};
use signet_core::store::{Refusal, Store};
use signet_core::unit_of_work::Transaction;
use signet_core::user::UserId;
use signet_core::{Error, ErrorCode, Result};
use uuid::Uuid;

use crate::code_attempts;
use crate::rfc6238::{self, Algorithm, STEP_SECONDS};

/// 160 bits (RFC 4226 §4 R6; the length of a SHA-1 output).
pub const SEED_BYTES: usize = 20;
/// The digits real apps show.
pub const DIGITS: u8 = 6;
/// How long an enrollment may take between begin and finish.
const CEREMONY_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 60);
/// Wrong codes an enrollment ceremony takes before it is gone.
const CEREMONY_TRIES: u32 = 5;
/// `amr` of a TOTP step (RFC 8176 §2: "otp").
pub const AMR: [&str; 1] = ["otp"];

pub struct TotpMethod {
    store: Arc<dyn Store>,
    clock: SharedClock,
    ring: Arc<KeyRing>,
    issuer: String,
}

impl TotpMethod {
    /// `issuer` is what the app shows next to the account (the product name).
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, ring: Arc<KeyRing>, issuer: String) -> Self {
        Self {
            store,
            clock,
            ring,
            issuer,
        }
    }

    fn step_now(&self) -> i64 {
        rfc6238::step_at(self.clock.now().as_millis().div_euclid(1000), STEP_SECONDS)
    }

    fn open_seed(&self, t: &TotpCredential) -> Result<SecretBytes> {
        self.ring
            .open(&t.sealed_seed, &TotpCredential::binding(t.id))
            .map(|o| o.plaintext)
            .map_err(|e| Error::internal_msg(format!("TOTP credential {}: {e}", t.id)))
    }
}

/// The steps a code is accepted for around `now` (RFC 6238 §5.2: one step
/// of drift either way), the current one first.
fn window(now: i64) -> [i64; 3] {
    [now, now - 1, now + 1]
}

/// The step among `window(now)` that `code` is the value of, if any.
fn matching_step(seed: &[u8], code: &str, now: i64) -> Option<i64> {
    window(now).into_iter().find(|step| {
        rfc6238::matches(
            &rfc6238::totp_at_step(Algorithm::Sha1, seed, *step, u32::from(DIGITS)),
            code,
        )
    })
}

fn parse_code(input: StepInput) -> Result<OneTimeCode> {
    let StepInput::Code(raw) = input else {
        return Err(Error::invalid(ErrorCode::InvalidRequest, "send {\"code\": \"...\"}"));
    };
    OneTimeCode::parse(&raw, DIGITS).ok_or_else(|| {
        Error::invalid(
            ErrorCode::InvalidCode,
            "the code from your authenticator app is 6 digits",
        )
    })
}

fn replayed() -> Error {
    Refusal::CodeReplayed.error()
}

fn wrong() -> Error {
    Error::invalid(ErrorCode::InvalidCode, "that code is not right")
}

impl Method for TotpMethod {
    fn name(&self) -> MethodName {
        MethodName::Totp
    }

    fn login(&self) -> Option<&dyn LoginStep> {
        Some(self)
    }

    fn credentials(&self) -> Option<&dyn CredentialKind> {
        Some(self)
    }

    fn enrollment(&self) -> Option<&dyn Enrollment> {
        Some(self)
    }
}

/// The accepted step, written in the step's unit of work.
struct AdvanceStep {
    id: Uuid,
    step: i64,
    at: Timestamp,
    flow: FlowId,
    /// The comparison, counted on the account's run of failures in the
    /// same unit (which a right code then ends): one commit per step.
    attempt: code_attempts::Attempt,
}

#[async_trait::async_trait]
impl StepEffect for AdvanceStep {
    async fn apply(self: Box<Self>, tx: &mut dyn Transaction) -> Result<()> {
        // Counted first: while the account backs off even a right code is
        // refused, and the step is not used up.
        self.attempt.succeeded_in(tx, self.flow, self.at).await?;
        // Checked in the engine, and on SQLite sent with the unit's last
        // call: a lost race is refused there as `code_replayed` (ADR 0035).
        Ok(tx.advance_totp_step_or_refuse(self.id, self.step, self.at).await?)
    }
}

#[async_trait::async_trait]
impl LoginStep for TotpMethod {
    async fn offer(&self, _flow: &mut Flow, _ctx: StepContext<'_>) -> Result<Offer> {
        let mut extra = Map::new();
        extra.insert("code_hint".into(), json!("Code from your authenticator app"));
        Ok(Offer {
            method: MethodName::Totp,
            label: "Use an authenticator app",
            input: Input::Code { code_length: DIGITS },
            send: false,
            channel: None,
            sent: None,
            extra,
        })
    }

    async fn verify(&self, flow: &mut Flow, input: StepInput, ctx: StepContext<'_>) -> Result<Verified> {
        let code = parse_code(input)?;
        let now = self.clock.now();
        let attempt = code_attempts::prepare(flow)?;
        // An identifier nobody has: no credential, so a wrong code (counted
        // like any other).
        let credentials = match flow.state.user_id {
            Some(user) => self.store.totps_of(user).await?,
            None => Vec::new(),
        };
        let step_now = self.step_now();
        let mut replay = false;
        for credential in &credentials {
            let seed = self.open_seed(credential)?;
            let Some(step) = matching_step(seed.expose_secret(), code.expose_secret(), step_now) else {
                continue;
            };
            if step <= credential.last_step {
                replay = true;
                continue;
            }
            return Ok(Verified {
                proof: Proof {
                    aal: Aal::Aal1,
                    amr: AMR.iter().map(|a| (*a).to_owned()).collect(),
                    phishing_resistant: false,
                    credential_id: Some(credential.id),
                    user_id: None,
                },
                effect: Some(Box::new(AdvanceStep {
                    id: credential.id,
                    step,
                    at: now,
                    flow: flow.id,
                    attempt,
                })),
                owner: None,
                cooling_off: None,
            });
        }
        let refusal = if replay { replayed() } else { wrong() };
        Err(attempt.failed(&*self.store, now, flow, ctx.origin, refusal).await)
    }
}

/// What the ceremony keeps between begin and finish.
#[derive(Serialize, Deserialize)]
struct Pending {
    /// The seed sealed for this ceremony, base32.
    seed: String,
    tries: u32,
}

fn ceremony_binding(id: Uuid) -> Binding {
    Binding::new("totp_ceremony", &id.to_string())
}

fn ceremony_gone() -> Error {
    Error::gone(
        ErrorCode::CeremonyExpired,
        "this authenticator app setup has expired or was already used; start again",
    )
}

/// `otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`
/// (the Key Uri Format authenticator apps read), with each part
/// percent-encoded.
pub fn otpauth_uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let enc = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm={}&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer),
        enc(account),
        enc(issuer),
        Algorithm::Sha1.uri_name(),
    )
}

/// The URI as a QR code, inline SVG.
fn qr_svg(uri: &str) -> Result<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| Error::internal_msg(format!("QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

#[async_trait::async_trait]
impl Enrollment for TotpMethod {
    async fn begin(&self, ctx: EnrollContext<'_>, name: Option<String>) -> Result<Map<String, Value>> {
        let mut raw = vec![0u8; SEED_BYTES];
        fill_random(&mut raw);
        let seed = SecretBytes::new(raw);
        let secret = BASE32_NOPAD.encode(seed.expose_secret());
        let now = self.clock.now();
        let id = Uuid::new_v4();
        let sealed = self
            .ring
            .seal(seed.expose_secret(), &ceremony_binding(id))
            .map_err(Error::internal)?;
        let pending = Pending {
            seed: BASE32_NOPAD.encode(&sealed),
            tries: 0,
        };
        self.store
            .insert_ceremony(&Ceremony {
                id,
                session_id: ctx.session.id,
                user_id: ctx.user.id,
                state: serde_json::to_string(&pending).map_err(Error::internal)?,
                name,
                created_at: now,
                expires_at: now.plus(CEREMONY_TTL),
            })
            .await?;
        let uri = otpauth_uri(&self.issuer, ctx.user.email.as_str(), &secret);
        let mut begun = Map::new();
        begun.insert("ceremony_id".into(), json!(id));
        begun.insert("qr_svg".into(), json!(qr_svg(&uri)?));
        begun.insert("otpauth_uri".into(), json!(uri));
        begun.insert("secret".into(), json!(secret));
        Ok(begun)
    }

    async fn finish(
        &self,
        ctx: EnrollContext<'_>,
        ceremony_id: &str,
        input: StepInput,
    ) -> Result<Box<dyn NewCredential>> {
        let code = parse_code(input)?;
        let id = Uuid::parse_str(ceremony_id).map_err(|_| ceremony_gone())?;
        let now = self.clock.now();
        let ceremony = self
            .store
            .take_ceremony(id, ctx.session.id, now)
            .await?
            .filter(|c| c.user_id == ctx.user.id)
            .ok_or_else(ceremony_gone)?;
        let pending: Pending = serde_json::from_str(&ceremony.state).map_err(|_| ceremony_gone())?;
        let sealed = BASE32_NOPAD
            .decode(pending.seed.as_bytes())
            .map_err(|_| ceremony_gone())?;
        let seed = self
            .ring
            .open(&sealed, &ceremony_binding(id))
            .map_err(|_| ceremony_gone())?
            .plaintext;
        let Some(step) = matching_step(seed.expose_secret(), code.expose_secret(), self.step_now()) else {
            // Put the ceremony back for another try, up to a limit: a typo
            // should not cost the person the QR code they just scanned.
            let tries = pending.tries + 1;
            if tries < CEREMONY_TRIES {
                let state = serde_json::to_string(&Pending { tries, ..pending }).map_err(Error::internal)?;
                self.store.insert_ceremony(&Ceremony { state, ..ceremony }).await?;
            }
            return Err(wrong());
        };
        let credential_id = Uuid::new_v4();
        let sealed_seed = self
            .ring
            .seal(seed.expose_secret(), &TotpCredential::binding(credential_id))
            .map_err(Error::internal)?;
        Ok(Box::new(NewTotp(TotpCredential {
            id: credential_id,
            user_id: ctx.user.id,
            name: ceremony.name.unwrap_or_else(|| "Authenticator app".to_owned()),
            sealed_seed,
            last_step: step,
            created_at: now,
            last_used_at: None,
        })))
    }
}

struct NewTotp(TotpCredential);

#[async_trait::async_trait]
impl NewCredential for NewTotp {
    fn info(&self) -> CredentialInfo {
        info(&self.0)
    }

    fn details(&self) -> Map<String, Value> {
        let mut details = Map::new();
        details.insert("algorithm".into(), json!(Algorithm::Sha1.uri_name()));
        details.insert("digits".into(), json!(DIGITS));
        details.insert("period".into(), json!(STEP_SECONDS));
        details
    }

    async fn store(self: Box<Self>, tx: &mut dyn Transaction) -> Result<()> {
        Ok(tx.insert_totp(&self.0).await?)
    }
}

/// A TOTP credential as `/api/v1/credentials` lists it.
fn info(t: &TotpCredential) -> CredentialInfo {
    CredentialInfo {
        id: t.id,
        kind: MethodName::Totp,
        name: t.name.clone(),
        created_at: t.created_at,
        last_used_at: t.last_used_at,
        aal: Aal::Aal1,
        extra: Map::new(),
    }
}

#[async_trait::async_trait]
impl CredentialKind for TotpMethod {
    fn noun(&self) -> &'static str {
        "authenticator app"
    }

    async fn list(&self, user: UserId) -> Result<Vec<CredentialInfo>> {
        Ok(self.store.totps_of(user).await?.iter().map(info).collect())
    }

    async fn rename(&self, tx: &mut dyn Transaction, user: UserId, id: Uuid, name: &str) -> Result<Option<()>> {
        Ok(tx.rename_totp(user, id, name).await?.then_some(()))
    }

    async fn remove(&self, tx: &mut dyn Transaction, user: UserId, id: Uuid, keep: u32) -> Result<Removal> {
        Ok(tx.remove_totp(user, id, keep).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otpauth_uri_names_issuer_account_and_parameters() {
        let uri = otpauth_uri("Signet Co", "ada@example.com", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            uri,
            "otpauth://totp/Signet%20Co:ada%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Signet%20Co\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn the_window_is_one_step_either_side() {
        let seed = b"12345678901234567890";
        let at = |step| rfc6238::totp_at_step(Algorithm::Sha1, seed, step, 6);
        assert_eq!(matching_step(seed, &at(100), 100), Some(100));
        assert_eq!(matching_step(seed, &at(99), 100), Some(99));
        assert_eq!(matching_step(seed, &at(101), 100), Some(101));
        assert_eq!(matching_step(seed, &at(98), 100), None);
        assert_eq!(matching_step(seed, &at(102), 100), None);
    }

    #[test]
    fn qr_is_svg() {
        let svg = qr_svg("otpauth://totp/x:y?secret=A").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
    }
}
