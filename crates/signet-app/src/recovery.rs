//! The self-service recovery journey: regaining access to an account whose
//! authenticators are lost.
//!
//! A recovery flow is a flow of the journey engine ([`crate::journeys`])
//! whose first methods are those of the tier's recovery paths
//! (`backup_passkey` → `passkey`, `recovery_code`, `email` → `email_otp` or
//! `magic_link`, `sms` → `sms_otp`, and `+` combinations of them). A method
//! takes part by its [`signet_core::method::Method::recovery`] capability;
//! nothing here names one. The engine's rules ([`crate::journeys::rules`])
//! offer only paths that are not weaker than the tier's login (NIST SP
//! 800-63B rev. 4, account recovery: an aal2 account is recovered with two
//! recovery secrets by different means, or a secret and a remaining
//! authenticator; the same rule `signet policy check` applies as
//! `recovery-weaker-than-login`), and complete the flow only once one such
//! path is fully proven at the tier's level.
//!
//! **Starting reveals nothing.** As for a login, an unknown (or disabled)
//! identifier is answered exactly like an account of the default tier,
//! with one account read either way and nothing stored (the flow lives in
//! its sealed handle). Starts are limited per client address (the login
//! start budget, `[login] starts_per_ip`) and per account: at most
//! [`STARTS_PER_ACCOUNT`] a minute for one identifier, counted by the hash
//! of the normalised identifier, so an unknown address is limited exactly
//! like a real one.
//!
//! **Completing** ([`recovered`], in the completion's unit of work): every
//! session of the account ends ([`crate::sessions::end_everywhere`], which
//! also revokes what hangs on sessions), every channel on file is told, the
//! path used is audited, and the new session has the `recovery` scope: it
//! may only bind a new credential, and ends when it has (see
//! [`crate::credentials::finish`]).

use serde_json::{json, Map};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::flow::{Continuation, Demand, FlowState, Journey, RecoveryVia, FLOW_STATE_VERSION};
use signet_core::method::{CredentialInfo, MethodName};
use signet_core::policy::RecoveryProof;
use signet_core::secret::TokenHash;
use signet_core::session::{Aal, SessionMode};
use signet_core::unit_of_work::Transaction;
use signet_core::user::{Email, User};
use signet_core::ErrorCode;
use signet_core::{Error, Result};

use crate::journeys::{open, rules, tier, Started};
use crate::messages::{self, Requester};
use crate::App;

/// Recovery starts allowed per identifier in a minute (any client).
pub const STARTS_PER_ACCOUNT: u32 = 5;

/// A request to start recovering an account.
pub struct Start {
    pub identifier: String,
    pub mode: SessionMode,
    /// Hash of the browser-binding cookie (browser mode).
    pub binding: Option<TokenHash>,
    pub origin: Origin,
}

/// `POST /api/v1/recovery`: opens a recovery flow for `identifier`.
pub async fn start(app: &App, req: Start) -> Result<Started> {
    app.starts
        .check(req.origin.ip.as_deref(), app.settings.email_login.starts_per_ip)?;
    let email = Email::parse(&req.identifier)
        .map_err(|_| Error::invalid(ErrorCode::InvalidIdentifier, "the identifier must be an email address"))?;
    let normalized = email.normalized();
    let hash = TokenHash::of(normalized.as_bytes()).to_hex();
    // Keyed apart from client addresses in the same table.
    app.starts
        .check(Some(&format!("recovery:{hash}")), STARTS_PER_ACCOUNT)?;
    let (user_id, tier_name) = match app.store.user_by_email(&normalized).await? {
        Some(u) if u.is_active() => (Some(u.id), app.policy.tier_for_roles(&u.roles).0.to_owned()),
        _ => (None, app.policy.default_tier().0.to_owned()),
    };
    let t = tier(app, &tier_name)?;
    let journey = Journey::Recovery {
        via: RecoveryVia::SelfService,
    };
    let asked = Demand::level(Aal::Aal1);
    let state = FlowState {
        v: FLOW_STATE_VERSION,
        demand: asked.clone().and(rules::tier_demand(&journey, t)),
        journey,
        asked,
        continuation: Continuation::None,
        user_id,
        identified: true,
        identifier_hash: Some(hash),
        tier: tier_name,
        mode: req.mode,
        steps: Vec::new(),
        scratch: Map::new(),
    };
    open(app, state, req.binding, &req.origin).await
}

/// What every completed recovery does, in its completion's unit of work
/// `tx`: ends every session of `user` (and whatever hangs on them), audits
/// the path that proved the recovery and how it was started, and tells
/// every channel on file. The caller then issues the recovery session.
/// Self-service flows and help-desk links ([`crate::recovery_links`]) both
/// complete through here; `helpdesk` is what the audit record says of a
/// help-desk recovery's ticket (its id, people and evidence reference).
pub(crate) async fn recovered(
    app: &App,
    tx: &mut dyn Transaction,
    user: &User,
    path: &str,
    via: &RecoveryVia,
    helpdesk: Option<serde_json::Value>,
    origin: &Origin,
) -> Result<()> {
    let ended = crate::sessions::end_everywhere(app, tx, user.id).await?;
    let via = match (via, helpdesk) {
        (RecoveryVia::SelfService, _) => json!({ "kind": "self_service" }),
        (RecoveryVia::Helpdesk { .. }, Some(mut ticket)) => {
            ticket["kind"] = json!("helpdesk");
            ticket
        }
        (RecoveryVia::Helpdesk { ticket }, None) => json!({ "kind": "helpdesk", "ticket": ticket }),
    };
    let record = AuditEvent::new(EventType::SessionEnded, Actor::User(user.id), Outcome::Success)
        .user(user.id)
        .from_origin(origin)
        .details(json!({ "reason": "recovery", "path": path, "via": via, "sessions_ended": ended }));
    app.audit().append(tx, &record).await?;
    let device = signet_core::session::device_label(origin.user_agent.as_deref());
    let not_me = crate::not_me::issue(app, tx, user).await?;
    let draft = messages::account_recovered(
        &user.email,
        path,
        app.clock.now(),
        &Requester {
            device: &device,
            ip: origin.ip.as_deref(),
        },
        &app.settings.product_name,
        &not_me,
    );
    crate::notices::security_notice(
        app,
        tx,
        user,
        draft,
        "your account was recovered and every session was signed out.",
    )
    .await
}

/// How a person reads one part of a recovery path.
fn part_phrase(part: RecoveryProof) -> &'static str {
    match part {
        RecoveryProof::BackupPasskey => "a backup passkey",
        RecoveryProof::RecoveryCode => "your recovery codes",
        RecoveryProof::Email => "a code sent to your email",
        RecoveryProof::Sms => "a code sent to your phone",
        RecoveryProof::Helpdesk => "the help desk",
    }
}

/// The self-service ways back into `user`'s account, as a person reads
/// them ("your recovery codes and a code sent to your email"): the tier's
/// paths that a recovery would offer ([`rules::recovery_paths`]), whose
/// every part this server implements and the account can prove today. A
/// backup passkey needs two passkeys (one may be the lost one); recovery
/// codes need codes; SMS needs a verified phone. `/account` shows them and warns
/// when there are none (NIST SP 800-63B rev. 4 encourages binding more than
/// one authenticator, so a loss is not a lockout).
pub fn ways_back(app: &App, user: &User, credentials: &[CredentialInfo]) -> Vec<String> {
    let t = app.policy.tier_for_roles(&user.roles).1;
    let count = |kind: MethodName| credentials.iter().filter(|c| c.kind == kind).count();
    let implemented = |part: RecoveryProof| {
        part.methods()
            .iter()
            .any(|m| app.registry.get(*m).is_some_and(|m| m.recovery().is_some()))
    };
    let holds = |part: RecoveryProof| match part {
        RecoveryProof::BackupPasskey => count(MethodName::Passkey) >= 2,
        RecoveryProof::RecoveryCode => count(MethodName::RecoveryCode) >= 1,
        RecoveryProof::Email => true,
        RecoveryProof::Sms => count(MethodName::SmsOtp) >= 1,
        RecoveryProof::Helpdesk => false,
    };
    rules::recovery_paths(t)
        .filter(|p| p.parts().iter().all(|part| implemented(*part) && holds(*part)))
        .map(|p| {
            p.parts()
                .iter()
                .map(|part| part_phrase(*part))
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .collect()
}

/// Whether the account's tier lets the help desk recover it.
pub fn helpdesk_listed(app: &App, user: &User) -> bool {
    let t = app.policy.tier_for_roles(&user.roles).1;
    t.recovery.iter().any(|p| p.is(RecoveryProof::Helpdesk))
}
