//! A user's credentials of every kind: list, rename, remove, and what all
//! kinds share.
//!
//! Each method with a credential kind ([`CredentialKind`]) stores its own
//! credentials; the rules that hold whatever the kind live here, once:
//! - **Binding assurance** (NIST SP 800-63B rev. 4 §4.1.2.1 and §3.1.4):
//!   once the account holds an authenticator that proves aal2 on its own,
//!   binding or removing one is the sensitive action `add_credential` /
//!   `remove_credential` ([`step_up::require`]: a full session at the
//!   action's level within its `max_age`), and never below aal2 whatever
//!   the policy says. Before that, the account's first credential may be
//!   bound by the session that exists (an invitation's, a recovery's).
//! - **The last way in**: a removal that would leave the account no way to
//!   sign in at its tier's level is refused (409 `last_credential`). The
//!   kind decides and deletes in one unit of work, under a lock on the
//!   user, so two removals racing for the last two credentials cannot both
//!   win.
//! - **Sessions resting on a removed credential end with it.**
//! - **Enrollment** (`begin`, `finish`) runs a method's ceremony under these
//!   rules: binding assurance first, then the new credential, its
//!   `credential.added` record and its notices in one unit of work; a
//!   refused answer is recorded as `credential.refused`.
//! - **Every change is audited and notified** on every channel the account
//!   has (§4.1.2.1, §6.1.2.1), in the change's own unit of work, with the
//!   kind's own words.

use crate::messages::{self, CredentialChange, Requester};
use serde_json::{json, Map, Value};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::credential::Removal;
use signet_core::error::StepUp;
use signet_core::method::{CredentialInfo, CredentialKind, EnrollContext, Enrollment, MethodName, StepInput};
use signet_core::session::{Aal, SessionScope};
use signet_core::unit_of_work::Transaction;
use signet_core::user::User;
use signet_core::{Error, Result};
use signet_core::{ErrorCode, Status};
use uuid::Uuid;

use crate::sessions::Current;
use crate::{step_up, App};

/// The longest credential name we keep, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A user-chosen name: trimmed, 1 to 64 characters, no control characters.
pub fn valid_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            ErrorCode::InvalidName,
            "a name is 1 to 64 characters, without control characters",
        ));
    }
    Ok(name.to_owned())
}

fn not_found() -> Error {
    Error::not_found(ErrorCode::CredentialNotFound, "no such credential")
}

/// The user's credentials of every kind, oldest first within a kind.
pub async fn list(app: &App, user: &User) -> Result<Vec<CredentialInfo>> {
    let mut all = Vec::new();
    for method in app.registry.credential_kinds() {
        if let Some(kind) = method.credentials() {
            all.extend(kind.list(user.id).await?);
        }
    }
    Ok(all)
}

/// The credential `id` of the user and the kind that holds it.
async fn find<'a>(
    app: &'a App,
    user: &User,
    id: Uuid,
) -> Result<(CredentialInfo, &'a dyn CredentialKind, Vec<CredentialInfo>)> {
    let all = list(app, user).await?;
    let target = all.iter().find(|c| c.id == id).cloned().ok_or_else(not_found)?;
    let kind = app
        .registry
        .get(target.kind)
        .and_then(|m| m.credentials())
        .ok_or_else(not_found)?;
    Ok((target, kind, all))
}

/// Binding assurance (module docs): whether `current` may add or remove a
/// credential now, given the account's `existing` ones.
pub fn require_binding_assurance(
    app: &App,
    current: &Current,
    existing: &[CredentialInfo],
    action: &str,
) -> Result<()> {
    // A recovery session *is* the binding assurance: its journey proved a
    // recovery path at the tier's level (or a help desk vouched), which is
    // what the account's lost authenticators can no longer prove.
    if !existing.iter().any(|c| c.aal >= Aal::Aal2) || current.session.scope == SessionScope::Recovery {
        return Ok(());
    }
    step_up::require(app, current, action)?;
    if current.session.aal < Aal::Aal2 {
        let tier = app.policy.tier_for_roles(&current.user.roles).1;
        return Err(Error::StepUpRequired(Box::new(StepUp {
            required_aal: Aal::Aal2,
            max_age: tier.step_up_max_age.as_secs(),
            methods: step_up::methods(app, tier),
        })));
    }
    Ok(())
}

/// How many credentials of `kind` must remain after a removal: none if the
/// account has another way in at its tier's level, else one. Another way in
/// is, across kinds:
/// - a credential of another kind its tier lets log in;
/// - a credential of another kind its tier takes as a second factor (an
///   authenticator app), when the tier also logs in with an email method:
///   the two are distinct factors, aal2 together (SP 800-63B rev. 4 §2.2);
/// - an email method alone, when the tier asks for no more than aal1.
///
/// `held` are the kinds the user holds, counted in the removal's unit of
/// work after locking the user's row ([`signet_core::credential::WaysIn`]), so two removals of
/// different kinds racing from two sessions cannot each count on the other
/// credential and leave the account with no way in.
fn keep(app: &App, user: &User, kind: MethodName, held: &[MethodName]) -> u32 {
    let tier = app.policy.tier_for_roles(&user.roles).1;
    let implemented = |m: &MethodName| app.registry.get(*m).is_some_and(|m| m.login().is_some());
    let email_login = tier
        .login
        .iter()
        .any(|m| implemented(m) && app.registry.get(*m).is_some_and(|m| m.facts().email_based));
    let other_kind = held.iter().any(|c| {
        *c != kind && implemented(c) && (tier.login.contains(c) || (email_login && tier.second_factor.contains(c)))
    });
    let by_email = tier.required_aal == Aal::Aal1 && email_login;
    u32::from(!(other_kind || by_email))
}

/// `PATCH /api/v1/credentials/{id}`: renames one of the caller's credentials.
pub async fn rename(app: &App, current: &Current, origin: &Origin, id: Uuid, raw_name: &str) -> Result<CredentialInfo> {
    let name = valid_name(raw_name)?;
    let user = &current.user;
    let (mut target, kind, _) = find(app, user, id).await?;
    let mut tx = app.store.begin().await?;
    kind.rename(&mut *tx, user.id, id, &name).await?.ok_or_else(not_found)?;
    let record = AuditEvent::new(EventType::CredentialRenamed, Actor::User(user.id), Outcome::Success)
        .user(user.id)
        .from_origin(origin)
        .details(json!({ "credential_id": id, "type": target.kind, "name": name }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    target.name = name;
    Ok(target)
}

/// `DELETE /api/v1/credentials/{id}`: removes one of the caller's
/// credentials, unless it is the last way in.
pub async fn remove(app: &App, current: &Current, origin: &Origin, id: Uuid) -> Result<()> {
    let user = &current.user;
    let (target, kind, all) = find(app, user, id).await?;
    require_binding_assurance(app, current, &all, "remove_credential")?;
    let mut tx = app.store.begin().await?;
    let held = tx.lock_ways_in(user.id).await?.methods();
    let keep = keep(app, user, target.kind, &held);
    match kind.remove(&mut *tx, user.id, id, keep).await? {
        Removal::Removed => {}
        Removal::NotFound => return Err(not_found()),
        Removal::LastCredential => {
            return Err(Error::conflict(
                ErrorCode::LastCredential,
                format!(
                    "this is your last way to sign in; add another {} before removing this one",
                    kind.noun()
                ),
            ))
        }
    }
    // The sessions this credential proved end with it, and the apps that
    // hold them are told, as for any other end (back-channel logout).
    let ended = tx.delete_credential_sessions(user.id, id).await?;
    for session in &ended {
        crate::oidc::logout::notify_in(app, &mut *tx, user.id, Some(*session)).await?;
    }
    let record = AuditEvent::new(EventType::CredentialRemoved, Actor::User(user.id), Outcome::Success)
        .user(user.id)
        .from_origin(origin)
        .details(json!({
            "credential_id": id,
            "type": target.kind,
            "name": target.name,
            "sessions_ended": ended.len(),
        }));
    app.audit().append(&mut *tx, &record).await?;
    notify(
        app,
        &mut *tx,
        user,
        kind,
        CredentialChange::Removed,
        &target.name,
        origin,
    )
    .await?;
    tx.commit().await?;
    app.courier.wake();
    Ok(())
}

/// The method `raw` names, if it binds credentials of a kind.
fn enrolling<'a>(app: &'a App, raw: &str) -> Result<(&'a dyn Enrollment, &'a dyn CredentialKind)> {
    let unknown = || Error::not_found(ErrorCode::UnknownMethod, "no such way to sign in can be added here");
    let method = MethodName::parse(raw)
        .and_then(|m| app.registry.get(m))
        .ok_or_else(unknown)?;
    match (method.enrollment(), method.credentials()) {
        (Some(e), Some(k)) => Ok((e, k)),
        _ => Err(unknown()),
    }
}

/// `POST /api/v1/credentials/{method}/begin`: starts binding a credential
/// of `method`, once binding assurance holds.
pub async fn begin(app: &App, current: &Current, method: &str, name: Option<&str>) -> Result<Map<String, Value>> {
    let (enrollment, _) = enrolling(app, method)?;
    let name = name.map(valid_name).transpose()?;
    require_binding_assurance(app, current, &list(app, &current.user).await?, "add_credential")?;
    enrollment.begin(context(current), name).await
}

/// `POST /api/v1/credentials/{method}/finish`: checks the answer to the
/// ceremony and binds the credential, with its record and notices, in one
/// unit of work. A refused answer (a forged or disallowed authenticator, a
/// credential registered already) is recorded as `credential.refused`.
pub async fn finish(
    app: &App,
    current: &Current,
    origin: &Origin,
    method: &str,
    ceremony_id: &str,
    input: StepInput,
) -> Result<CredentialInfo> {
    let (enrollment, kind) = enrolling(app, method)?;
    // The ceremony first (a used or foreign one is 410 whoever asks), then
    // binding assurance again: another session may have added a
    // credential since `begin`.
    let new = match enrollment.finish(context(current), ceremony_id, input).await {
        Ok(new) => new,
        Err(e) => return Err(refused(app, current, origin, method, e).await),
    };
    require_binding_assurance(app, current, &list(app, &current.user).await?, "add_credential")?;
    let info = new.info();
    let mut details = new.details();
    let mut tx = app.store.begin().await?;
    if let Err(e) = new.store(&mut *tx).await {
        tx.rollback().await?;
        return Err(refused(app, current, origin, method, e).await);
    }
    if let Some(until) = crate::cooling_off::start(app, &mut *tx, current, &info).await? {
        details.insert("cooling_off_until".into(), json!(until.to_rfc3339()));
    }
    added(app, &mut *tx, current, origin, kind, &info, details).await?;
    // A recovery session exists to bind one new credential: it ends with
    // it, in the same commit, so that it cannot bind a second one.
    if current.session.scope == SessionScope::Recovery {
        tx.delete_session(current.session.id).await?;
    }
    tx.commit().await?;
    app.courier.wake();
    Ok(info)
}

fn context(current: &Current) -> EnrollContext<'_> {
    EnrollContext {
        user: &current.user,
        session: &current.session,
    }
}

/// Records a refused enrollment (`credential.refused`) when `e` is the
/// client's answer being refused; a ceremony that is gone, or a failure on
/// our side, is not a refusal. Returns the error to answer with (or the
/// record's own failure: fail closed).
async fn refused(app: &App, current: &Current, origin: &Origin, method: &str, e: Error) -> Error {
    let client_error = (400..500).contains(&e.status().http_status());
    if !client_error || e.status() == Status::Gone || matches!(e, Error::StepUpRequired(_)) {
        return e;
    }
    let ev = AuditEvent::new(
        EventType::CredentialRefused,
        Actor::User(current.user.id),
        Outcome::Denied,
    )
    .user(current.user.id)
    .from_origin(origin)
    .details(json!({ "type": method, "error": e.code() }));
    match app.audit().record(ev).await {
        Ok(()) => e,
        Err(audit) => audit,
    }
}

/// Records a newly bound credential in `tx`, its enrollment's unit of work:
/// the `credential.added` record (with the kind's `details`) and the
/// notices. The caller has inserted the credential in `tx` and commits.
async fn added(
    app: &App,
    tx: &mut dyn Transaction,
    current: &Current,
    origin: &Origin,
    kind: &dyn CredentialKind,
    credential: &CredentialInfo,
    mut details: Map<String, Value>,
) -> Result<()> {
    let user = &current.user;
    details.insert("credential_id".into(), json!(credential.id));
    details.insert("type".into(), json!(credential.kind));
    details.insert("name".into(), json!(credential.name));
    details.insert("session_id".into(), json!(current.session.id.0));
    details.insert("scope".into(), json!(current.session.scope));
    let record = AuditEvent::new(EventType::CredentialAdded, Actor::User(user.id), Outcome::Success)
        .user(user.id)
        .from_origin(origin)
        .details(Value::Object(details));
    app.audit().append(tx, &record).await?;
    notify(app, tx, user, kind, CredentialChange::Added, &credential.name, origin).await
}

/// Queues the change notices (email, and SMS when the account has a
/// phone), worded for the credential's kind.
async fn notify(
    app: &App,
    tx: &mut dyn Transaction,
    user: &User,
    kind: &dyn CredentialKind,
    change: CredentialChange,
    name: &str,
    origin: &Origin,
) -> Result<()> {
    let device = signet_core::session::device_label(origin.user_agent.as_deref());
    let noun = kind.noun();
    let not_me = crate::not_me::issue(app, tx, user).await?;
    let draft = messages::credential_changed(
        &user.email,
        messages::ChangedCredential { change, noun, name },
        app.clock.now(),
        &Requester {
            device: &device,
            ip: origin.ip.as_deref(),
        },
        &app.settings.product_name,
        &not_me,
    );
    let what = match change {
        CredentialChange::Added => format!("a {noun} \"{name}\" was added to your account."),
        CredentialChange::Removed => format!("a {noun} \"{name}\" was removed from your account."),
    };
    crate::notices::security_notice(app, tx, user, draft, &what).await
}
