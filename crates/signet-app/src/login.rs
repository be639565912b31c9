//! The login flow engine that methods plug into.
//!
//! `start` creates a server-side flow for an identifier (or none, for
//! usernameless login) and lists the methods the user's tier allows *and*
//! this server implements. An unknown identifier is answered exactly like a
//! user of the default tier: same tier, same method list, same shape, one
//! database read either way. (An account of another tier is offered that
//! tier's methods, as the contract requires; see docs/policy.md for what
//! that shows and how to keep it invisible.) A usernameless flow starts in
//! the default tier and settles in the account's own tier once a
//! discoverable passkey names its owner. `step` dispatches to the method the request
//! names, records what it proved, and either completes the flow with a new
//! (rotated) session or asks for more until the tier's `required_aal` is met.
//!
//! The flow lives in storage, so any node can serve any step. Browser-mode
//! flows are bound to a cookie of the browser that started them.

use serde_json::{json, Map, Value};
use signet_core::assurance::{self, Step};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::flow::{Flow, FlowId, FlowKind, FlowState};
use signet_core::ErrorCode;
use std::sync::Arc;
use std::time::Duration;

use signet_core::method::{LoginMethod, MethodName, StepContext};
use signet_core::policy::Tier;
use signet_core::secret::TokenHash;
use signet_core::session::{Aal, SessionId, SessionMode, SessionScope};
use signet_core::user::Email;
use signet_core::{Error, Result};

use crate::fallback::Governed;
use crate::sessions::{self, Grant, Issued};
use crate::App;

/// The longest a login flow can live: sending a code extends it to the
/// code's lifetime, but never beyond this from its start. The browser's
/// flow-binding cookie lasts as long.
pub const FLOW_MAX_LIFETIME: Duration = Duration::from_secs(2 * 3600);

/// Where a flow keeps the steps completed so far (in its scratch map).
const STEPS: &str = "steps";

pub struct Start {
    pub identifier: Option<String>,
    pub mode: SessionMode,
    pub return_to: Option<String>,
    /// Hash of the browser-binding cookie (browser mode).
    pub binding: Option<TokenHash>,
    pub origin: Origin,
}

pub struct Started {
    pub flow: Flow,
    pub methods: Vec<Value>,
}

/// Checks that `return_to` is a URL on our own origin and returns it in
/// absolute form. Anything else is an open redirect and is refused.
pub fn same_origin_return_to(app: &App, raw: &str) -> Result<String> {
    let bad = || Error::invalid(ErrorCode::InvalidReturnTo, "return_to must be a URL on this server");
    if raw.len() > 2048 || raw.chars().any(char::is_control) || raw.contains('\\') {
        return Err(bad());
    }
    let url = app.settings.public_url.join(raw).map_err(|_| bad())?;
    if url.origin() != app.settings.public_url.origin() {
        return Err(bad());
    }
    Ok(url.to_string())
}

fn tier<'a>(app: &'a App, name: &str) -> Result<&'a Tier> {
    app.policy
        .tier(name)
        .ok_or_else(|| Error::internal_msg(format!("flow refers to unknown tier {name}")))
}

/// Methods of `names` this server implements and the flow's mode permits.
fn usable(app: &App, names: &[MethodName], mode: SessionMode) -> Vec<MethodName> {
    app.registry
        .available(names)
        .map(|m| m.name())
        .filter(|m| !(mode == SessionMode::Api && *m == MethodName::MagicLink))
        .collect()
}

/// The methods a flow may use next: login methods first, then the tier's
/// second factors (excluding those already used).
fn next_methods(app: &App, flow: &Flow) -> Result<Vec<MethodName>> {
    let t = tier(app, &flow.state.tier)?;
    // A step-up proves something *in addition* to the session it raises, so
    // it offers the tier's second factors from the first step on.
    let names: Vec<MethodName> = if flow.state.completed.is_empty() && flow.kind != FlowKind::StepUp {
        t.login.clone()
    } else {
        t.second_factor
            .iter()
            .copied()
            .filter(|m| !flow.state.completed.iter().any(|c| c == m.as_str()))
            .collect()
    };
    Ok(usable(app, &names, flow.state.mode))
}

async fn offers(app: &App, flow: &mut Flow, names: &[MethodName], ctx: StepContext<'_>) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(method) = app.registry.get(*name) {
            let mut entry = method.offer(flow, ctx).await?;
            entry.insert("method".into(), Value::String(name.as_str().into()));
            out.push(Value::Object(entry));
        }
    }
    Ok(out)
}

pub async fn start(app: &App, req: Start) -> Result<Started> {
    let return_to = req
        .return_to
        .as_deref()
        .map(|r| same_origin_return_to(app, r))
        .transpose()?;
    let (user_id, tier_name, identifier_hash) = match req.identifier.as_deref() {
        Some(raw) => {
            let email = Email::parse(raw)
                .map_err(|_| Error::invalid(ErrorCode::InvalidIdentifier, "the identifier must be an email address"))?;
            let normalized = email.normalized();
            let hash = Some(TokenHash::of(normalized.as_bytes()).to_hex());
            match app.store.user_by_email(&normalized).await? {
                // A known account is offered its own tier's methods (the
                // contract lists "the methods the user's tier allows").
                Some(u) if u.is_active() => (Some(u.id), app.policy.tier_for_roles(&u.roles).0.to_owned(), hash),
                // Unknown and disabled accounts look exactly like an account
                // of the default tier.
                _ => (None, app.policy.default_tier().0.to_owned(), hash),
            }
        }
        None => (None, app.policy.default_tier().0.to_owned(), None),
    };
    let t = tier(app, &tier_name)?;
    let state = FlowState {
        user_id,
        identified: req.identifier.is_some(),
        identifier_hash,
        tier: tier_name.clone(),
        mode: req.mode,
        required_aal: t.required_aal,
        completed: Vec::new(),
        return_to,
        methods: Map::new(),
        step_up: None,
    };
    let started = open(app, FlowKind::Login, state, req.binding, &req.origin).await?;
    app.metrics
        .login_flows
        .get_or_create(&crate::metrics::ResultLabel { result: "started" })
        .inc();
    Ok(started)
}

/// Creates and stores a flow of `kind` with `state`, and offers the methods
/// its first step allows. Login and step-up both start here.
pub(crate) async fn open(
    app: &App,
    kind: FlowKind,
    state: FlowState,
    binding: Option<TokenHash>,
    origin: &Origin,
) -> Result<Started> {
    let now = app.clock.now();
    let binding = if state.mode == SessionMode::Browser {
        binding
    } else {
        None
    };
    let mut flow = Flow {
        id: FlowId::new(),
        kind,
        state,
        version: 0,
        binding,
        created_at: now,
        expires_at: now.plus(app.settings.flow_ttl),
    };
    let names = next_methods(app, &flow)?;
    let methods = offers(app, &mut flow, &names, StepContext { origin }).await?;
    app.store.insert_flow(&flow).await?;
    Ok(Started { flow, methods })
}

/// The result of a completed step.
pub enum StepOutcome {
    Complete {
        issued: Box<Issued>,
        return_to: Option<String>,
    },
    Continue {
        /// The flow to continue (the caller may not have named it: a magic
        /// link names only its token).
        flow_id: FlowId,
        required_aal: Aal,
        methods: Vec<Value>,
    },
}

/// Loads a live flow and checks it belongs to this browser and, for a
/// step-up, to the session presented with the request.
async fn load(app: &App, id: FlowId, binding: Option<&TokenHash>, session: Option<SessionId>) -> Result<Flow> {
    let flow = app
        .store
        .flow(id, app.clock.now())
        .await?
        .ok_or_else(|| Error::gone(ErrorCode::FlowExpired, "this sign-in attempt has expired; start again"))?;
    if let Some(expected) = &flow.binding {
        if !binding.is_some_and(|b| b.ct_eq(expected)) {
            return Err(Error::forbidden(
                ErrorCode::FlowBindingMismatch,
                "this sign-in was started in another browser",
            ));
        }
    }
    if let Some(target) = &flow.state.step_up {
        // A step-up raises a live session: without one (it ended, or a
        // concurrent step-up replaced it) the caller is not signed in.
        let Some(session) = session else {
            return Err(Error::Unauthenticated);
        };
        if session != target.session_id {
            return Err(Error::forbidden(
                ErrorCode::StepUpSessionMismatch,
                "this step-up belongs to another session",
            ));
        }
    }
    Ok(flow)
}

/// The method a request names, if it exists and this step of the flow allows it.
fn method_for<'a>(app: &'a App, flow: &Flow, raw: &str) -> Result<(MethodName, &'a Arc<dyn LoginMethod>)> {
    let unknown = || Error::not_found(ErrorCode::UnknownMethod, "no such method");
    let name = MethodName::parse(raw).ok_or_else(unknown)?;
    if !next_methods(app, flow)?.contains(&name) {
        return Err(Error::invalid(
            ErrorCode::MethodNotAllowed,
            "this method is not allowed at this step",
        ));
    }
    Ok((name, app.registry.get(name).ok_or_else(unknown)?))
}

/// `POST .../{method}/send`: asks the method to send its code or link.
pub async fn send(
    app: &App,
    id: FlowId,
    raw_method: &str,
    binding: Option<&TokenHash>,
    origin: &Origin,
    session: Option<SessionId>,
) -> Result<()> {
    let mut flow = load(app, id, binding, session).await?;
    let (_, method) = method_for(app, &flow, raw_method)?;
    method.send(&mut flow, StepContext { origin }).await?;
    if !app.store.update_flow(&flow, app.clock.now()).await? {
        return Err(Error::conflict(
            ErrorCode::FlowConflict,
            "the sign-in changed meanwhile; try again",
        ));
    }
    Ok(())
}

/// A method identified the account itself (a discoverable passkey names its
/// owner). A usernameless flow becomes that user's flow (its tier is then
/// settled like any first step's). A flow that already has a user (or was
/// started for an unknown identifier) must not change hands.
async fn adopt_user(app: &App, flow: &mut Flow, proven: signet_core::user::UserId) -> Result<()> {
    let mismatch = || Error::forbidden(ErrorCode::UserMismatch, "this credential belongs to another account");
    match flow.state.user_id {
        Some(u) if u == proven => return Ok(()),
        Some(_) => return Err(mismatch()),
        None if flow.state.identified || !flow.state.completed.is_empty() => return Err(mismatch()),
        None => {}
    }
    let user = app
        .store
        .user_by_id(proven)
        .await?
        .filter(|u| u.is_active())
        .ok_or_else(|| Error::invalid(ErrorCode::PasskeyNotRegistered, "this passkey is not registered here"))?;
    flow.state.user_id = Some(user.id);
    Ok(())
}

/// After the first step proved who the user is, the flow moves to the
/// account's own tier (a usernameless flow was offered the default tier's
/// methods; an identified one already is in it, unless the account's roles
/// changed meanwhile): that tier decides what the login needs from here on,
/// and the method just used must be one it allows to log in.
fn settle_tier(app: &App, flow: &mut Flow, method: MethodName, user: &signet_core::user::User) -> Result<()> {
    let (tier_name, t) = app.policy.tier_for_roles(&user.roles);
    if !usable(app, &t.login, flow.state.mode).contains(&method) {
        return Err(Error::invalid(
            ErrorCode::MethodNotAllowed,
            "this method is not allowed at this step",
        ));
    }
    flow.state.tier = tier_name.to_owned();
    flow.state.required_aal = t.required_aal;
    Ok(())
}

/// `POST .../{method}`: verifies one step.
pub async fn step(
    app: &App,
    id: FlowId,
    raw_method: &str,
    input: Value,
    binding: Option<&TokenHash>,
    origin: &Origin,
    replaces: Option<SessionId>,
) -> Result<StepOutcome> {
    let mut flow = load(app, id, binding, replaces).await?;
    let (name, method) = method_for(app, &flow, raw_method)?;
    let (flow_id, user) = (flow.id, flow.state.user_id);
    let proof = match method.verify(&mut flow, input, StepContext { origin }).await {
        Ok(p) => p,
        Err(e) => return Err(failed(app, name, flow_id, user, origin, e).await),
    };
    // A proof that still ends in a refusal (another account's credential, a
    // method the account's tier forbids, a lost completion race, a user
    // disabled meanwhile) is a failed login too, and is recorded as one.
    // The audit record names the account the proof points at, even when the
    // flow had none yet (a discoverable passkey names its owner).
    let proven = proof.user_id.or(user);
    match complete_step(app, flow, name, proof, origin, replaces).await {
        // Counted once the step's outcome is stored: a lost race or a
        // refusal after the proof counts as the failure it is, never as both.
        Ok(outcome) => {
            app.metrics.login(name.as_str(), "success");
            Ok(outcome)
        }
        Err(e) => Err(failed(app, name, flow_id, proven, origin, e).await),
    }
}

/// Counts and audits a failed step; returns the error to give the client
/// (or the audit failure, which fails closed).
async fn failed(
    app: &App,
    name: MethodName,
    flow_id: FlowId,
    user: Option<signet_core::user::UserId>,
    origin: &Origin,
    e: Error,
) -> Error {
    app.metrics.login(name.as_str(), "failure");
    let mut ev = AuditEvent::new(EventType::LoginFailed, Actor::Anonymous, Outcome::Failure)
        .from_origin(origin)
        .details(json!({ "method": name.as_str(), "flow_id": flow_id.0, "error": e.code() }));
    if let Some(u) = user {
        ev = ev.user(u);
    }
    match app.audit().record(ev).await {
        Ok(_) => e,
        Err(audit) => audit,
    }
}

/// What follows a verified proof: settle the account, combine the steps, and
/// either complete the flow or ask for more.
async fn complete_step(
    app: &App,
    mut flow: Flow,
    name: MethodName,
    proof: signet_core::session::Proof,
    origin: &Origin,
    replaces: Option<SessionId>,
) -> Result<StepOutcome> {
    if let Some(proven) = proof.user_id {
        adopt_user(app, &mut flow, proven).await?;
    }
    if flow.kind == FlowKind::Login && flow.state.completed.is_empty() {
        if let Some(u) = flow.state.user_id {
            let user = app
                .store
                .user_by_id(u)
                .await?
                .filter(|u| u.is_active())
                .ok_or(Error::Unauthenticated)?;
            settle_tier(app, &mut flow, name, &user)?;
        }
    }
    flow.state.completed.push(name.as_str().to_owned());
    let mut steps: Vec<Step> = match flow.state.methods.get(STEPS) {
        Some(v) => serde_json::from_value(v.clone()).map_err(Error::internal)?,
        None => Vec::new(),
    };
    steps.push(Step { method: name, proof });
    let combined = assurance::combine(&steps).ok_or_else(|| Error::internal_msg("no proof recorded"))?;
    let user_id = flow
        .state
        .user_id
        .ok_or_else(|| Error::internal_msg("a method verified a flow without a user"))?;

    if combined.aal >= flow.state.required_aal {
        // One unit of work completes the flow: consuming it (only the single
        // winner of a race goes on), the fallback count's record and notice,
        // the new session and its record. Nothing of it is acknowledged
        // unless all of it is stored.
        // Read first: the unit holds the writer until it ends.
        let user = app
            .store
            .user_by_id(user_id)
            .await?
            .filter(|u| u.is_active())
            .ok_or(Error::Unauthenticated)?;
        let raising = match flow.kind {
            FlowKind::StepUp => Some(crate::step_up::target_session(app, &flow).await?),
            _ => None,
        };
        let mut tx = app.store.begin().await?;
        // The stored copy is discarded: the in-memory flow carries this
        // request's changes (the settled tier).
        tx.consume_flow(flow.id, app.clock.now()).await?.ok_or_else(|| {
            Error::gone(
                ErrorCode::FlowExpired,
                "this sign-in was already completed or has expired",
            )
        })?;
        let t = tier(app, &flow.state.tier)?;
        if let Governed::Refused(record) = crate::fallback::govern(app, &mut *tx, t, &user, &steps, origin).await? {
            tx.rollback().await?;
            app.audit().record(*record).await?;
            return Err(crate::fallback::limit_reached());
        }
        let outcome = if let Some(old) = raising {
            crate::step_up::complete(app, &mut *tx, flow, old, combined, origin).await?
        } else {
            let grant = Grant {
                user: &user,
                proof: combined,
                scope: SessionScope::Full,
                mode: flow.state.mode,
                origin,
            };
            let issued = sessions::establish_in(app, &mut *tx, grant, replaces, EventType::LoginSucceeded).await?;
            app.metrics.sessions_created.inc();
            app.metrics
                .login_flows
                .get_or_create(&crate::metrics::ResultLabel { result: "completed" })
                .inc();
            StepOutcome::Complete {
                issued: Box::new(issued),
                return_to: flow.state.return_to,
            }
        };
        tx.commit().await?;
        app.courier.wake();
        return Ok(outcome);
    }

    flow.state
        .methods
        .insert(STEPS.into(), serde_json::to_value(&steps).map_err(Error::internal)?);
    let names = next_methods(app, &flow)?;
    let methods = offers(app, &mut flow, &names, StepContext { origin }).await?;
    if !app.store.update_flow(&flow, app.clock.now()).await? {
        return Err(Error::conflict(
            ErrorCode::FlowConflict,
            "the sign-in changed meanwhile; try again",
        ));
    }
    Ok(StepOutcome::Continue {
        flow_id: flow.id,
        required_aal: flow.state.required_aal,
        methods,
    })
}
