//! Step-up: a fresh, stronger authentication before a sensitive action.
//!
//! NIST SP 800-63B rev. 4 §2.x (reauthentication) and §4.1.2.1 (binding a
//! new authenticator at aal2) ask for a recent proof at a given level before
//! some actions. Policy names the actions under `[actions.NAME]` (`aal`,
//! `max_age`); Signet guards its own built-in actions
//! ([`signet_core::policy::BUILTIN_ACTIONS`]).
//!
//! `start` opens a step-up flow bound to the presenting session (and to the
//! action, if one is named) that offers the tier's second factors. Its steps
//! run through the same engine as a login. Completing it consumes the flow
//! and *rotates* the session into a raised one: new id and token, the
//! stronger assurance, a fresh `auth_time`, same absolute expiry. A step-up
//! that named an action is good for that action only, within its `max_age`.
//!
//! [`require`] is the one check a sensitive operation calls; it answers
//! 403 `step_up_required` with the level, the window and the methods.

use serde_json::{json, Map};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::Timestamp;
use signet_core::error::StepUp;
use signet_core::flow::{Continuation, Demand, Flow, FlowState, Journey, FLOW_STATE_VERSION};
use signet_core::policy::{Action, Tier};
use signet_core::secret::TokenHash;
use signet_core::session::{Proof, Session, SessionScope};
use signet_core::unit_of_work::Transaction;
use signet_core::ErrorCode;
use signet_core::{Error, Result};

use crate::journeys::Started;
use crate::sessions::{self, Current, Issued};
use crate::App;

fn tier_of<'a>(app: &'a App, current: &Current) -> (&'a str, &'a Tier) {
    app.policy.tier_for_roles(&current.user.roles)
}

/// What `action` demands of this session in its tier; `None` asks for a
/// general step-up (the tier's level, at least aal2, within
/// `step_up_max_age`). The level is never below the session's own: a
/// raised session keeps the higher level with a fresh `auth_time`, which
/// must not vouch for a stronger, older proof.
fn demand(app: &App, tier: &Tier, current: &Current, action: Option<&str>) -> Result<Action> {
    let mut need = match action {
        Some(name) => app
            .policy
            .action(name, tier)
            .ok_or_else(|| Error::invalid(ErrorCode::UnknownAction, "no such action in the policy"))?,
        None => Action {
            aal: tier.required_aal.max(signet_core::session::Aal::Aal2),
            max_age: tier.step_up_max_age,
        },
    };
    need.aal = need.aal.max(current.session.aal);
    Ok(need)
}

/// Whether the session may perform `action` now; otherwise 403
/// `step_up_required`.
pub fn require(app: &App, current: &Current, action: &str) -> Result<()> {
    let (_, tier) = tier_of(app, current);
    let need = demand(app, tier, current, Some(action))?;
    let s = &current.session;
    let fresh = app.clock.now() < s.auth_time.plus(need.max_age);
    let for_this = s.step_up_action.as_deref().is_none_or(|a| a == action);
    if s.scope == SessionScope::Full && s.aal >= need.aal && fresh && for_this {
        return Ok(());
    }
    Err(Error::StepUpRequired(Box::new(StepUp {
        required_aal: need.aal,
        max_age: need.max_age.as_secs(),
        methods: methods(app, tier),
    })))
}

/// The methods a step-up in `tier` can use: its second factors that this
/// server implements (a policy may name methods not built yet).
pub(crate) fn methods(app: &App, tier: &Tier) -> Vec<String> {
    app.registry
        .available(&tier.second_factor)
        .map(|m| m.name().as_str().to_owned())
        .collect()
}

/// `POST /api/v1/step-up`: opens a step-up flow for the current session.
pub async fn start(
    app: &App,
    current: &Current,
    action: Option<&str>,
    binding: Option<TokenHash>,
    origin: &Origin,
) -> Result<Started> {
    full_scope(current)?;
    let (_, tier) = tier_of(app, current);
    let need = demand(app, tier, current, action)?;
    // A step-up proves something now, at the action's level, within the
    // action's window: every step must be younger than `max_age` when the
    // flow completes (the raised session's `auth_time` is its oldest step's
    // time, which `require` then holds to the same window).
    let step_up_demand = Demand {
        fresh: true,
        max_age_secs: Some(need.max_age.as_secs()),
        ..Demand::level(need.aal)
    };
    open(
        app,
        current,
        action,
        step_up_demand,
        Continuation::None,
        binding,
        origin,
    )
    .await
}

/// `POST /api/v1/step-up {"return_to": "/oauth2/authorize/resume/{id}"}`:
/// a signed-in session falls short of what a stored OIDC authorization
/// request demands (the app's assurance, `acr_values`, `max_age`), so it is
/// raised instead of the user signing in again. The flow demands what the
/// request does, proven now and never below the session's level, and
/// continues to the request, which then issues its code; the ID token's
/// `acr`/`amr` state what the raised session proved.
pub async fn start_for_authorization(
    app: &App,
    current: &Current,
    request: uuid::Uuid,
    binding: Option<TokenHash>,
    origin: &Origin,
) -> Result<Started> {
    full_scope(current)?;
    let Some(asked) = crate::oidc::authorize::stored_demand(app, request).await? else {
        return Err(Error::invalid(
            ErrorCode::InvalidRequest,
            "this sign-in request has expired; go back to the app and start again",
        ));
    };
    let step_up_demand = asked.and(Demand {
        fresh: true,
        ..Demand::level(current.session.aal)
    });
    open(
        app,
        current,
        None,
        step_up_demand,
        Continuation::Authorization(request),
        binding,
        origin,
    )
    .await
}

fn full_scope(current: &Current) -> Result<()> {
    if current.session.scope != SessionScope::Full {
        return Err(Error::forbidden(
            ErrorCode::InsufficientScope,
            "sign in before stepping up",
        ));
    }
    Ok(())
}

async fn open(
    app: &App,
    current: &Current,
    action: Option<&str>,
    step_up_demand: Demand,
    continuation: Continuation,
    binding: Option<TokenHash>,
    origin: &Origin,
) -> Result<Started> {
    let (tier_name, _) = tier_of(app, current);
    let state = FlowState {
        v: FLOW_STATE_VERSION,
        journey: Journey::StepUp {
            session_id: current.session.id,
            action: action.map(str::to_owned),
        },
        demand: step_up_demand.clone(),
        asked: step_up_demand,
        continuation,
        user_id: Some(current.user.id),
        identified: true,
        // The same key a login for this address uses, so email methods as
        // step-up factors share its send limits and failure counters.
        identifier_hash: Some(TokenHash::of(current.user.email.normalized().as_bytes()).to_hex()),
        tier: tier_name.to_owned(),
        mode: current.session.mode,
        steps: Vec::new(),
        scratch: Map::new(),
    };
    crate::journeys::open(app, state, binding, origin).await
}

/// The live session a step-up flow raises, read before the flow's unit of
/// work opens.
pub(crate) async fn target_session(app: &App, flow: &Flow) -> Result<Session> {
    let target = flow
        .state
        .journey
        .raises()
        .ok_or_else(|| Error::internal_msg("a step-up flow without a target"))?;
    let user = flow
        .state
        .user_id
        .ok_or_else(|| Error::internal_msg("a step-up flow without a user"))?;
    app.store
        .user_session(user, target, app.clock.now())
        .await?
        .ok_or(Error::Unauthenticated)
}

/// Completes a step-up in the flow's unit of work `tx` (the caller has
/// consumed the flow there, one winner, and commits): the session `old` is
/// replaced by a raised one.
pub(crate) async fn raise(
    app: &App,
    tx: &mut dyn Transaction,
    flow: &Flow,
    old: Session,
    proof: Proof,
    proven_at: Timestamp,
    origin: &Origin,
) -> Result<Issued> {
    let action = match &flow.state.journey {
        Journey::StepUp { action, .. } => action.clone(),
        _ => {
            return Err(Error::internal_msg(
                "raising a session from a flow that is not a step-up",
            ))
        }
    };
    let user = old.user_id;
    let issued = sessions::raised(app, &old, &proof, proven_at, action.clone(), origin);
    let record = AuditEvent::new(EventType::SessionSteppedUp, Actor::User(user), Outcome::Success)
        .user(user)
        .from_origin(origin)
        .details(json!({
            "old_session_id": old.id.0,
            "session_id": issued.session.id.0,
            "action": action,
            "aal": issued.session.aal,
            "amr": issued.session.amr,
        }));
    // The session may have ended (logout, disabled account) or been raised by
    // another step-up since it was read: then there is nothing to raise.
    if !tx.delete_session(old.id).await? {
        return Err(Error::Unauthenticated);
    }
    tx.insert_session(&issued.session).await?;
    // The relying parties' sessions ride on the raised session now, under
    // the `sid` their ID tokens carry (back-channel logout).
    tx.move_oidc_session(user, old.id.0, issued.session.id.0).await?;
    app.audit().append(tx, &record).await?;
    Ok(issued)
}
