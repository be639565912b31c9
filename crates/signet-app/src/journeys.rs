//! The journey engine: the flows that methods plug into.
//!
//! A flow carries its [`Journey`] (login, step-up, recovery), a [`Demand`]
//! and a [`Continuation`] (see [`signet_core::flow`]). The engine does what
//! every journey shares: it stores the flow, offers the methods the next
//! step allows, dispatches the step a request names (no "try every
//! strategy" loop), records what each step proved in one typed list, and
//! once the steps meet the demand completes the journey in one unit of work.
//! A step is one durable commit: what a method leaves to write (a passkey's
//! counter) goes into the same unit as the flow's consumption or update.
//! What differs between journeys is in [`rules`], one `match` each, instead
//! of an `if kind ==` ladder:
//! - which methods a first step offers (a login: the tier's `login`; a
//!   step-up: its `second_factor`; a recovery: the methods of its `recovery`
//!   paths), and which capability of a method serves it ([`Method::login`]
//!   or [`Method::recovery`]);
//! - whether the first step may name the account (usernameless login) and
//!   settle the flow in that account's tier;
//! - what completion yields: a full session, a raised session, or a
//!   session that may only enroll a credential.
//!
//! The flow lives in storage, so any node can serve any step. Browser-mode
//! flows are bound to a cookie of the browser that started them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::flow::{combined, Continuation, Demand, Flow, FlowId, FlowState, FlowStep, Journey};
use signet_core::method::{LoginStep, Method, MethodName, Offer, StepContext, StepEffect, StepInput, Verified};
use signet_core::policy::Tier;
use signet_core::secret::TokenHash;
use signet_core::session::{Aal, SessionId, SessionMode, SessionScope};
use signet_core::store::FlowLookup;
use signet_core::unit_of_work::Transaction;
use signet_core::user::{User, UserId};
use signet_core::ErrorCode;
use signet_core::{Error, Result};

use crate::fallback::Governed;
use crate::sessions::{self, Grant, Issued};
use crate::App;

/// The longest a flow can live: sending a code extends it to the code's
/// lifetime, but never beyond this from its start. The browser's
/// flow-binding cookie lasts as long.
pub const FLOW_MAX_LIFETIME: Duration = Duration::from_secs(2 * 3600);

/// Until when a finished flow's id must be remembered: as long as any
/// handle of it, or its stored row, could still be live.
pub(crate) fn remembered_until(flow: &Flow) -> signet_core::clock::Timestamp {
    flow.created_at.plus(FLOW_MAX_LIFETIME)
}

/// A started flow, its handle (the `flow_id` its client uses) and its
/// first offers.
pub struct Started {
    pub flow: Flow,
    pub handle: String,
    pub methods: Vec<Offer>,
}

/// How a request names a flow: by the handle its client holds, or (a
/// magic link, whose secret is bound to the flow) by its id, for a flow
/// that is stored.
#[derive(Clone, Copy, Debug)]
pub enum FlowRef<'a> {
    Handle(&'a str),
    Stored(FlowId),
}

/// The result of a completed step.
pub enum StepOutcome {
    Complete {
        issued: Box<Issued>,
        /// The account signed in, as read for this step (before its unit
        /// of work): the answer describes it without reading it again.
        user: Box<User>,
        /// Where the journey goes now.
        continuation: Continuation,
    },
    Continue {
        /// The handle of the flow to continue (the caller may not have one:
        /// a magic link names only its token).
        handle: String,
        required_aal: Aal,
        methods: Vec<Offer>,
    },
}

/// Each journey's rules.
pub mod rules {
    use super::*;
    use signet_core::clock::Timestamp;
    use signet_core::flow::FlowState;
    use signet_core::policy::{check, RecoveryPath, RecoveryProof};

    /// The recovery paths a recovery flow in `tier` may use: the tier's
    /// self-service paths that are not weaker than its login (the rule
    /// `signet policy check` calls `recovery-weaker-than-login`, applied at
    /// run time: in an aal2 tier `email` alone is never offered nor
    /// accepted, `recovery_code+email` is). A help-desk ticket is a journey
    /// of its own (its link), never a step of a flow.
    pub fn recovery_paths(tier: &Tier) -> impl Iterator<Item = &RecoveryPath> {
        tier.recovery
            .iter()
            .filter(|p| !p.includes(RecoveryProof::Helpdesk) && !check::weaker_than_login(p, tier))
    }

    /// Whether every step so far proves one of `path`'s parts: the flow is
    /// still on its way along it.
    fn on_path(path: &RecoveryPath, steps: &[FlowStep]) -> bool {
        steps
            .iter()
            .all(|s| path.parts().iter().any(|part| part.proven_by(s.method)))
    }

    fn proven(part: RecoveryProof, steps: &[FlowStep]) -> bool {
        steps.iter().any(|s| part.proven_by(s.method))
    }

    fn push_unique(out: &mut Vec<MethodName>, methods: impl IntoIterator<Item = MethodName>) {
        for m in methods {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }

    /// The methods a journey's first step may use in `tier`.
    pub fn first_methods(journey: &Journey, tier: &Tier) -> Vec<MethodName> {
        match journey {
            Journey::Login => tier.login.clone(),
            // A step-up proves something *in addition* to the session it
            // raises, so it offers the second factors from the first step.
            Journey::StepUp { .. } => tier.second_factor.clone(),
            Journey::Recovery { .. } => {
                let mut out = Vec::new();
                for path in recovery_paths(tier) {
                    push_unique(&mut out, path.methods());
                }
                out
            }
        }
    }

    /// The methods a journey's later steps may use after `steps`: a login
    /// or a step-up, the tier's second factors not used yet; a recovery,
    /// the methods of the parts still missing on every path the steps so
    /// far are on (never a second factor: a recovery is proven by its
    /// paths, not by the account's usual authenticators).
    pub fn later_methods(journey: &Journey, tier: &Tier, steps: &[FlowStep]) -> Vec<MethodName> {
        match journey {
            Journey::Login | Journey::StepUp { .. } => tier
                .second_factor
                .iter()
                .copied()
                .filter(|m| !steps.iter().any(|s| s.method == *m))
                .collect(),
            Journey::Recovery { .. } => {
                let mut out = Vec::new();
                for path in recovery_paths(tier).filter(|p| on_path(p, steps)) {
                    for part in path.parts().iter().filter(|part| !proven(**part, steps)) {
                        push_unique(&mut out, part.methods().iter().copied());
                    }
                }
                out
            }
        }
    }

    /// What a journey in `tier` demands of its steps, before anything the
    /// caller asked for: the tier's level; for a recovery also phishing
    /// resistance when every login method of the tier has it (recovery is
    /// never weaker than login).
    pub fn tier_demand(journey: &Journey, tier: &Tier) -> Demand {
        let level = Demand::level(tier.required_aal);
        match journey {
            Journey::Recovery { .. } => Demand {
                phishing_resistant: check::login_phishing_resistant_only(tier),
                ..level
            },
            Journey::Login | Journey::StepUp { .. } => level,
        }
    }

    /// Whether `state`'s steps complete its journey at `now`. A login or a
    /// step-up: the steps together meet the demand. A recovery: one
    /// allowed path is fully proven (every part of it by a step), and the
    /// steps that prove it meet the demand together: what they actually
    /// proved, not what the path could prove at best (a passkey without
    /// user verification is aal1).
    pub fn complete(state: &FlowState, tier: &Tier, now: Timestamp) -> bool {
        match state.journey {
            Journey::Login | Journey::StepUp { .. } => state.demand.met_by(&state.steps, now),
            Journey::Recovery { .. } => proven_path(state, tier, now).is_some(),
        }
    }

    /// The first allowed recovery path `state`'s steps fully prove and
    /// that meets the demand (see [`complete`]).
    pub fn proven_path<'t>(state: &FlowState, tier: &'t Tier, now: Timestamp) -> Option<&'t RecoveryPath> {
        recovery_paths(tier).find(|path| {
            if !path.parts().iter().all(|part| proven(*part, &state.steps)) {
                return false;
            }
            let on: Vec<FlowStep> = state
                .steps
                .iter()
                .filter(|s| path.parts().iter().any(|part| part.proven_by(s.method)))
                .cloned()
                .collect();
            state.demand.met_by(&on, now)
        })
    }

    /// The capability of `method` that serves this journey's steps.
    pub fn step_of<'a>(journey: &Journey, method: &'a dyn Method) -> Option<&'a dyn LoginStep> {
        match journey {
            Journey::Login | Journey::StepUp { .. } => method.login(),
            Journey::Recovery { .. } => method.recovery(),
        }
    }

    /// What completing the journey records, and the scope of the session
    /// it yields (a step-up keeps its session's scope).
    pub fn completion(journey: &Journey) -> (EventType, SessionScope) {
        match journey {
            Journey::Login => (EventType::LoginSucceeded, SessionScope::Full),
            Journey::StepUp { .. } => (EventType::SessionSteppedUp, SessionScope::Full),
            Journey::Recovery { .. } => (EventType::RecoveryCompleted, SessionScope::Recovery),
        }
    }
}

pub(crate) fn tier<'a>(app: &'a App, name: &str) -> Result<&'a Tier> {
    app.policy
        .tier(name)
        .ok_or_else(|| Error::internal_msg(format!("flow refers to unknown tier {name}")))
}

/// Of `names`, the methods this server implements that serve `journey` in
/// `mode`, in the order given.
fn usable(app: &App, journey: &Journey, names: &[MethodName], mode: SessionMode) -> Vec<Arc<dyn Method>> {
    app.registry
        .available(names)
        .filter(|m| m.modes().contains(&mode) && rules::step_of(journey, m.as_ref()).is_some())
        .cloned()
        .collect()
}

/// The methods a flow may use next: the journey's first methods, then the
/// tier's second factors not used yet. When the demand asks for phishing
/// resistance the steps have not shown, only phishing-resistant methods.
fn next_methods(app: &App, flow: &Flow) -> Result<Vec<Arc<dyn Method>>> {
    let state = &flow.state;
    let t = tier(app, &state.tier)?;
    let names: Vec<MethodName> = if state.steps.is_empty() {
        rules::first_methods(&state.journey, t)
    } else {
        rules::later_methods(&state.journey, t, &state.steps)
    };
    let shown = combined(&state.steps).is_some_and(|p| p.phishing_resistant);
    let need_pr = state.demand.phishing_resistant && !shown;
    Ok(usable(app, &state.journey, &names, state.mode)
        .into_iter()
        .filter(|m| !need_pr || m.facts().phishing_resistant)
        .collect())
}

async fn offers(app: &App, flow: &mut Flow, ctx: StepContext<'_>) -> Result<Vec<Offer>> {
    let methods = next_methods(app, flow)?;
    let mut out = Vec::with_capacity(methods.len());
    for method in methods {
        if let Some(step) = rules::step_of(&flow.state.journey, method.as_ref()) {
            out.push(step.offer(flow, ctx).await?);
        }
    }
    Ok(out)
}

/// Creates a flow with `state` and offers the methods its first step
/// allows. Every journey starts here. Nothing is stored: the flow lives in
/// its sealed handle until it progresses ([`crate::flow_handles`]).
pub(crate) async fn open(app: &App, state: FlowState, binding: Option<TokenHash>, origin: &Origin) -> Result<Started> {
    let now = app.clock.now();
    let binding = if state.mode == SessionMode::Browser {
        binding
    } else {
        None
    };
    let mut flow = Flow {
        id: FlowId::new(),
        kind: state.journey.kind(),
        state,
        version: 0,
        binding,
        created_at: now,
        // Never beyond the longest a flow may live: its finished id is
        // remembered only that long.
        expires_at: now.plus(app.settings.flow_ttl.min(FLOW_MAX_LIFETIME)),
        stored: false,
    };
    let methods = offers(app, &mut flow, StepContext { origin }).await?;
    let handle = crate::flow_handles::seal(&app.sealing, &flow)?;
    Ok(Started { flow, handle, methods })
}

fn expired() -> Error {
    Error::gone(ErrorCode::FlowExpired, "this sign-in attempt has expired; start again")
}

/// Loads a live flow and checks it belongs to this browser and, for a
/// step-up, to the session presented with the request. A handle's flow is
/// its stored row once it has one (it progressed), else the handle itself.
async fn load(app: &App, which: FlowRef<'_>, binding: Option<&TokenHash>, session: Option<SessionId>) -> Result<Flow> {
    let now = app.clock.now();
    let flow = match which {
        FlowRef::Stored(id) => app.store.flow(id, now).await?.ok_or_else(expired)?,
        FlowRef::Handle(handle) => {
            let sealed = crate::flow_handles::open(&app.sealing, handle).ok_or_else(expired)?;
            match app.store.flow_or_finished(sealed.id, now).await? {
                FlowLookup::Stored(stored) => *stored,
                // Not stored: live, unless it was finished (its row, if it
                // had one, went with it).
                FlowLookup::Absent if sealed.is_live(now) => sealed,
                FlowLookup::Absent | FlowLookup::Finished => return Err(expired()),
            }
        }
    };
    if let Some(expected) = &flow.binding {
        if !binding.is_some_and(|b| b.ct_eq(expected)) {
            return Err(Error::forbidden(
                ErrorCode::FlowBindingMismatch,
                "this sign-in was started in another browser",
            ));
        }
    }
    if let Some(target) = flow.state.journey.raises() {
        // A step-up raises a live session: without one (it ended, or a
        // concurrent step-up replaced it) the caller is not signed in.
        let Some(session) = session else {
            return Err(Error::Unauthenticated);
        };
        if session != target {
            return Err(Error::forbidden(
                ErrorCode::StepUpSessionMismatch,
                "this step-up belongs to another session",
            ));
        }
    }
    Ok(flow)
}

/// The method a request names, if it exists and this step of the flow
/// allows it.
fn method_for<'a>(app: &'a App, flow: &Flow, raw: &str) -> Result<(MethodName, &'a dyn LoginStep)> {
    let unknown = || Error::not_found(ErrorCode::UnknownMethod, "no such method");
    let name = MethodName::parse(raw).ok_or_else(unknown)?;
    if !next_methods(app, flow)?.iter().any(|m| m.name() == name) {
        return Err(Error::invalid(
            ErrorCode::MethodNotAllowed,
            "this method is not allowed at this step",
        ));
    }
    let method = app.registry.get(name).ok_or_else(unknown)?;
    let step = rules::step_of(&flow.state.journey, method.as_ref()).ok_or_else(unknown)?;
    Ok((name, step))
}

/// `POST .../{method}/send`: asks the method to send its code or link.
pub async fn send(
    app: &App,
    which: FlowRef<'_>,
    raw_method: &str,
    binding: Option<&TokenHash>,
    origin: &Origin,
    session: Option<SessionId>,
) -> Result<()> {
    let mut flow = load(app, which, binding, session).await?;
    let (_, step) = method_for(app, &flow, raw_method)?;
    // One unit for the whole send: the method's writes and the flow's.
    let mut tx = app.store.begin().await?;
    step.send(&mut flow, StepContext { origin }, &mut *tx).await?;
    save(&mut *tx, &flow, app.clock.now()).await?;
    Ok(tx.commit().await?)
}

/// Writes a flow's progress in `tx`: its first progress stores it, a later
/// one is a compare-and-swap on its version. Either way, of two concurrent
/// progresses of one flow only one lands (`flow_conflict`).
async fn save(tx: &mut dyn Transaction, flow: &Flow, now: signet_core::clock::Timestamp) -> Result<()> {
    if flow.stored {
        if !tx.update_flow(flow, now).await? {
            return Err(conflict());
        }
        return Ok(());
    }
    match tx.insert_flow(flow).await {
        Ok(()) => Ok(()),
        Err(signet_core::store::StoreError::Conflict(_)) => Err(conflict()),
        Err(e) => Err(e.into()),
    }
}

fn conflict() -> Error {
    Error::conflict(ErrorCode::FlowConflict, "the sign-in changed meanwhile; try again")
}

/// `POST .../{method}`: verifies one step. `input` is the request's typed
/// input or why it is malformed; that is reported only after the flow and
/// the method are found, so an expired flow or an unknown method is what a
/// request for one hears first.
pub async fn step(
    app: &App,
    which: FlowRef<'_>,
    raw_method: &str,
    input: Result<StepInput>,
    binding: Option<&TokenHash>,
    origin: &Origin,
    session: Option<SessionId>,
) -> Result<StepOutcome> {
    let mut flow = load(app, which, binding, session).await?;
    let (name, method) = method_for(app, &flow, raw_method)?;
    let input = input?;
    let (flow_id, user) = (flow.id, flow.state.user_id);
    let scratch_before = flow.state.scratch.clone();
    let verified = match method.verify(&mut flow, input, StepContext { origin }).await {
        Ok(v) => v,
        Err(e) => return Err(failed(app, name, flow_id, user, origin, e).await),
    };
    // A proof that still ends in a refusal (another account's credential, a
    // method the account's tier forbids, a lost completion race, a user
    // disabled meanwhile) is a failed step too, and is recorded as one. The
    // record names the account the proof points at, even when the flow had
    // none yet (a discoverable passkey names its owner).
    let proven = verified.proof.user_id.or(user);
    // What the method used up (a WebAuthn challenge) stays used up even if
    // the step's unit of work then fails: the spent flow is written back.
    let spent = (flow.state.scratch != scratch_before).then(|| flow.clone());
    match after_proof(app, flow, name, verified, origin, session).await {
        // Counted once the step's outcome is stored: a lost race or a
        // refusal after the proof counts as the failure it is, never as both.
        Ok(outcome) => {
            app.metrics.login(name.as_str(), "success");
            Ok(outcome)
        }
        Err(e) => {
            if let Some(spent) = spent {
                // Best effort: a flow finished or changed meanwhile (the race
                // this step lost) is already past this challenge.
                if let Err(burn) = retire(app, &spent).await {
                    tracing::warn!(flow = %spent.id.0, error = %burn, "could not retire a used challenge");
                }
            }
            Err(failed(app, name, flow_id, proven, origin, e).await)
        }
    }
}

/// Stores `spent` (a flow whose challenge a step used up).
async fn retire(app: &App, spent: &Flow) -> Result<()> {
    let mut tx = app.store.begin().await?;
    save(&mut *tx, spent, app.clock.now()).await?;
    Ok(tx.commit().await?)
}

/// Counts and audits a failed step; returns the error to give the client
/// (or the audit failure, which fails closed).
async fn failed(
    app: &App,
    name: MethodName,
    flow_id: FlowId,
    user: Option<UserId>,
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

/// A method identified the account itself (a discoverable passkey names its
/// owner). A usernameless flow becomes that user's flow. A flow that already
/// has a user (or was started for an unknown identifier) must not change
/// hands.
async fn adopt_user(app: &App, flow: &mut Flow, proven: UserId, known: Option<&User>) -> Result<()> {
    let mismatch = || Error::forbidden(ErrorCode::UserMismatch, "this credential belongs to another account");
    match flow.state.user_id {
        Some(u) if u == proven => return Ok(()),
        Some(_) => return Err(mismatch()),
        None if flow.state.identified || !flow.state.steps.is_empty() => return Err(mismatch()),
        None => {}
    }
    let active = match known.filter(|u| u.id == proven) {
        Some(user) => user.is_active(),
        None => app.store.user_by_id(proven).await?.is_some_and(|u| u.is_active()),
    };
    if !active {
        return Err(Error::invalid(
            ErrorCode::PasskeyNotRegistered,
            "this passkey is not registered here",
        ));
    }
    flow.state.user_id = Some(proven);
    Ok(())
}

/// After the first step proved who the user is, the flow moves to the
/// account's own tier (a usernameless flow was offered the default tier's
/// methods; an identified one already is in it, unless the account's roles
/// changed meanwhile): that tier decides what the journey needs from here
/// on, and the method just used must be one the tier's first step allows.
/// The demand becomes what the caller asked for and the account's tier
/// requires (not the default tier's level, which only stood in for an
/// account not yet known).
fn settle_tier(app: &App, flow: &mut Flow, method: MethodName, user: &User) -> Result<()> {
    let (tier_name, t) = app.policy.tier_for_roles(&user.roles);
    let first = rules::first_methods(&flow.state.journey, t);
    let allowed = usable(app, &flow.state.journey, &first, flow.state.mode);
    if !allowed.iter().any(|m| m.name() == method) {
        return Err(Error::invalid(
            ErrorCode::MethodNotAllowed,
            "this method is not allowed at this step",
        ));
    }
    flow.state.tier = tier_name.to_owned();
    flow.state.demand = flow.state.asked.clone().and(rules::tier_demand(&flow.state.journey, t));
    Ok(())
}

/// What follows a verified proof: settle the account, record the step, and
/// either complete the journey or ask for more. Either way the step is one
/// unit of work: the method's effect with the flow's consumption (complete)
/// or with its compare-and-swap update (continue).
async fn after_proof(
    app: &App,
    mut flow: Flow,
    name: MethodName,
    verified: Verified,
    origin: &Origin,
    session: Option<SessionId>,
) -> Result<StepOutcome> {
    let Verified {
        mut proof,
        effect,
        owner,
        cooling_off,
    } = verified;
    // A credential in its cooling-off proves aal1 in a step-up or a
    // recovery; a login with it completes and its session is capped
    // instead ([`complete`]). Read once: [`complete`] is told what was read.
    let cooling_off = if flow.state.journey == Journey::Login {
        cooling_off
    } else {
        let known = Some(crate::cooling_off::until_known(app, &proof, cooling_off).await?);
        if crate::cooling_off::restricted_known(app, &proof, known).await? {
            crate::cooling_off::cap(&mut proof);
        }
        known
    };
    if let Some(proven) = proof.user_id {
        adopt_user(app, &mut flow, proven, owner.as_ref()).await?;
    }
    let user_id = flow
        .state
        .user_id
        .ok_or_else(|| Error::internal_msg("a method verified a flow without a user"))?;
    // Read before any unit of work opens (it holds the writer until it
    // ends), unless the method has just read it.
    let user = match owner.filter(|u| u.id == user_id) {
        Some(user) => Some(user),
        None => app.store.user_by_id(user_id).await?,
    }
    .filter(User::is_active)
    .ok_or(Error::Unauthenticated)?;
    if flow.state.journey.identifies() && flow.state.steps.is_empty() {
        settle_tier(app, &mut flow, name, &user)?;
    }
    let now = app.clock.now();
    // A step older than the demand's window no longer counts: the person
    // proves it again (a step-up's first factor left for too long).
    if let Some(max_age) = flow.state.demand.max_age() {
        flow.state
            .steps
            .retain(|s| now.as_millis() - s.at.as_millis() <= i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX));
    }
    flow.state.steps.push(FlowStep {
        method: name,
        proof,
        at: now,
    });
    if rules::complete(&flow.state, tier(app, &flow.state.tier)?, now) {
        return complete(app, flow, effect, cooling_off, &user, origin, session).await;
    }
    // Offers first: they read, and the unit holds the writer until it ends.
    let methods = offers(app, &mut flow, StepContext { origin }).await?;
    let handle = crate::flow_handles::seal(&app.sealing, &flow)?;
    let mut tx = app.store.begin().await?;
    if let Some(effect) = effect {
        effect.apply(&mut *tx).await?;
    }
    save(&mut *tx, &flow, now).await?;
    tx.commit().await?;
    Ok(StepOutcome::Continue {
        handle,
        required_aal: flow.state.demand.aal,
        methods,
    })
}

/// Completes the journey in one unit of work: consuming the flow (only the
/// single winner of a race goes on), the fallback count's record and
/// notice, the new session and its record. Nothing of it is acknowledged
/// unless all of it is stored.
async fn complete(
    app: &App,
    flow: Flow,
    effect: Option<Box<dyn StepEffect>>,
    cooling_off: Option<Option<signet_core::clock::Timestamp>>,
    user: &User,
    origin: &Origin,
    session: Option<SessionId>,
) -> Result<StepOutcome> {
    let mut proof = combined(&flow.state.steps).ok_or_else(|| Error::internal_msg("no proof recorded"))?;
    // A login resting on a credential in its cooling-off completes, at
    // aal1 (crate::cooling_off). The last step is this request's, whose
    // method may have read its credential's cooling-off already.
    let last = flow.state.steps.len().saturating_sub(1);
    for (i, step) in flow.state.steps.iter().enumerate() {
        let known = if i == last { cooling_off } else { None };
        if crate::cooling_off::restricted_known(app, &step.proof, known).await? {
            crate::cooling_off::cap(&mut proof);
        }
    }
    // The session is as fresh as its oldest proof.
    let proven_at = flow
        .state
        .steps
        .iter()
        .map(|s| s.at)
        .min()
        .unwrap_or_else(|| app.clock.now());
    let raising = match flow.state.journey.raises() {
        Some(_) => Some(crate::step_up::target_session(app, &flow).await?),
        None => None,
    };
    let t = tier(app, &flow.state.tier)?;
    let mut tx = app.store.begin().await?;
    // The method's effect first: a code's attempt is counted (and refused
    // while the account backs off or past the flow's limit) before anything
    // here can refuse, so a right code hears what a wrong one would (ADR
    // 0033). It all rolls back with the unit if the flow was finished.
    if let Some(effect) = effect {
        effect.apply(&mut *tx).await?;
    }
    // Finished once: the id recorded as finished (its stored copy, if any,
    // deleted) picks the single winner. The in-memory flow carries this
    // request's changes (the settled tier, the last step).
    tx.finish_flow_or_refuse(flow.id, remembered_until(&flow)).await?;
    let fallback = match crate::fallback::govern(app, &mut *tx, t, user, &flow.state.steps, origin).await? {
        Governed::Allowed(used) => used,
        Governed::Refused(record) => {
            tx.rollback().await?;
            app.audit().record(*record).await?;
            return Err(crate::fallback::limit_reached());
        }
    };
    if let Journey::Recovery { via } = &flow.state.journey {
        let path = rules::proven_path(&flow.state, t, app.clock.now())
            .ok_or_else(|| Error::internal_msg("a recovery completed without a proven path"))?;
        crate::recovery::recovered(app, &mut *tx, user, &path.to_string(), via, None, origin).await?;
    }
    let continuation = flow.state.continuation.clone();
    let (event, scope) = rules::completion(&flow.state.journey);
    let issued = match raising {
        Some(old) => crate::step_up::raise(app, &mut *tx, &flow, old, proof, proven_at, origin).await?,
        None => {
            let grant = Grant {
                user,
                proof,
                proven_at,
                scope,
                mode: flow.state.mode,
                origin,
            };
            // A login replaces the session the browser had, if any.
            sessions::establish_in(app, &mut *tx, grant, session, event).await?
        }
    };
    let notices = tx.queued_messages();
    tx.commit().await?;
    if notices {
        app.courier.wake();
    }
    if let Some(method) = fallback {
        crate::fallback::count_use(app, method, "allowed");
    }
    if flow.state.journey.raises().is_none() {
        app.metrics.sessions_created.inc();
    }
    if flow.state.journey == Journey::Login {
        app.metrics
            .login_flows
            .get_or_create(&crate::metrics::ResultLabel { result: "completed" })
            .inc();
    }
    Ok(StepOutcome::Complete {
        issued: Box::new(issued),
        user: Box::new(user.clone()),
        continuation,
    })
}
