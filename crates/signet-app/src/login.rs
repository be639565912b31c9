//! The login journey: signing in.
//!
//! `start` creates a server-side flow for an identifier (or none, for
//! usernameless login) and lists the methods the user's tier allows *and*
//! this server implements. An unknown identifier is answered exactly like a
//! user of the default tier: same tier, same method list, same shape, one
//! database read either way. (An account of another tier is offered that
//! tier's methods, as the contract requires; see docs/policy.md for what
//! that shows and how to keep it invisible.) A usernameless flow starts in
//! the default tier and settles in the account's own tier once a
//! discoverable passkey names its owner. The steps run through the journey
//! engine ([`crate::journeys`]), which completes the flow with a new
//! (rotated) session once the demand is met: the tier's `required_aal`,
//! and whatever the caller asked for on top (an OIDC client's floor).

use serde_json::Map;
use signet_core::audit::Origin;
use signet_core::flow::{Continuation, Demand, FlowState, Journey, FLOW_STATE_VERSION};
use signet_core::secret::TokenHash;
use signet_core::session::{Aal, SessionMode};
use signet_core::user::Email;
use signet_core::ErrorCode;
use signet_core::{Error, Result};

use crate::journeys::{open, tier};
pub use crate::journeys::{send, step, Started, StepOutcome, FLOW_MAX_LIFETIME};
use crate::App;

pub struct Start {
    pub identifier: Option<String>,
    pub mode: SessionMode,
    pub return_to: Option<String>,
    /// What the caller needs beyond the tier's level (none for a plain
    /// sign-in; an OIDC authorization request's `acr_values` and `max_age`).
    pub demand: Demand,
    /// Hash of the browser-binding cookie (browser mode).
    pub binding: Option<TokenHash>,
    pub origin: Origin,
}

impl Start {
    /// A plain sign-in, demanding only what the tier does.
    pub fn new(identifier: Option<String>, mode: SessionMode, return_to: Option<String>, origin: Origin) -> Self {
        Self {
            identifier,
            mode,
            return_to,
            demand: Demand::level(Aal::Aal1),
            binding: None,
            origin,
        }
    }
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

pub async fn start(app: &App, req: Start) -> Result<Started> {
    // Limited by the client's address only: the same for known and
    // unknown identifiers, before anything looks at the identifier.
    app.starts
        .check(req.origin.ip.as_deref(), app.settings.email_login.starts_per_ip)?;
    let return_to = req
        .return_to
        .as_deref()
        .map(|r| same_origin_return_to(app, r))
        .transpose()?;
    // A login started for a stored OIDC authorization request continues to
    // it, and must prove what that request demands (ADR 0022).
    let authorization = return_to.as_deref().and_then(crate::oidc::authorize::resume_id);
    let asked = match authorization {
        Some(id) => match crate::oidc::authorize::stored_demand(app, id).await? {
            Some(d) => req.demand.and(d),
            None => req.demand,
        },
        None => req.demand,
    };
    let continuation = match authorization {
        Some(id) => Continuation::Authorization(id),
        None => return_to.map(Continuation::Url).unwrap_or_default(),
    };
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
        v: FLOW_STATE_VERSION,
        journey: Journey::Login,
        demand: asked.clone().and(Demand::level(t.required_aal)),
        asked,
        continuation,
        user_id,
        identified: req.identifier.is_some(),
        identifier_hash,
        tier: tier_name.clone(),
        mode: req.mode,
        steps: Vec::new(),
        scratch: Map::new(),
    };
    let started = open(app, state, req.binding, &req.origin).await?;
    app.metrics
        .login_flows
        .get_or_create(&crate::metrics::ResultLabel { result: "started" })
        .inc();
    Ok(started)
}
