//! Flows: the server-side record of a journey in progress.
//!
//! The grid's journey axis (DESIGN.md, "Flows x methods"). A flow has a
//! [`Journey`] (login, step-up of a session, recovery), a [`Demand`] (what the
//! journey must prove: a minimum level, phishing resistance, a maximum age,
//! a fresh proof), a [`Continuation`] (where it goes when it completes), and
//! one typed list of the [`FlowStep`]s proven so far. Policy actions,
//! step-up, and OIDC `acr_values`, `max_age` and `prompt=login` all become
//! demands (OIDC Core §3.1.2.1; NIST SP 800-63B rev. 4 §2.2 and §7.2 on
//! reauthentication). Illegal states are unrepresentable: a step-up always
//! names its session, a login never does (after Kanidm's `AuthIntent`).
//!
//! A flow has an expiry, a version for compare-and-swap updates, and
//! optionally the hash of a browser-binding cookie so that only the browser
//! that started it can finish it. The whole state is in storage, so a flow
//! begun on one node finishes on any other, and the continuation survives a
//! node change.
//!
//! **Rolling upgrades.** The stored state carries a schema version
//! ([`FLOW_STATE_VERSION`]). A node reads every version up to its own (a
//! version-1 state in flight while the cluster is upgraded is upgraded in
//! memory); a state written by a newer version is answered with 503, so the
//! client retries, on a newer node, rather than have an older node act on a
//! demand it does not understand or write the state back stripped. A flow is
//! never lost or weakened while two versions run side by side.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::assurance::{self, Step};
use crate::clock::Timestamp;
use crate::method::MethodName;
use crate::secret::TokenHash;
use crate::session::{Aal, Proof, SessionId, SessionMode};
use crate::user::UserId;

/// The schema version this build writes. Readers accept every version up
/// to it; fields of later versions are kept, not understood.
pub const FLOW_STATE_VERSION: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FlowId(pub Uuid);

impl FlowId {
    pub fn new() -> Self {
        Self(crate::ids::time_ordered())
    }
}

impl Default for FlowId {
    fn default() -> Self {
        Self::new()
    }
}

/// The journey's name, stored in its own column (for queries and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    Login,
    StepUp,
    Recovery,
}

impl FlowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::Login => "login",
            FlowKind::StepUp => "step_up",
            FlowKind::Recovery => "recovery",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "login" => Some(FlowKind::Login),
            "step_up" => Some(FlowKind::StepUp),
            "recovery" => Some(FlowKind::Recovery),
            _ => None,
        }
    }
}

/// What a flow is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Journey {
    /// Signing in: completes with a new full session.
    Login,
    /// Raising a live session, for an action or in general: completes by
    /// replacing that session with a raised one.
    StepUp {
        session_id: SessionId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<String>,
    },
    /// Regaining access: completes with a session that can only enroll a
    /// new credential.
    Recovery { via: RecoveryVia },
}

/// How a recovery was started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RecoveryVia {
    /// The person started it (`POST /api/v1/recovery`).
    SelfService,
    /// A help-desk ticket's link.
    Helpdesk { ticket: Uuid },
}

impl Journey {
    pub fn kind(&self) -> FlowKind {
        match self {
            Journey::Login => FlowKind::Login,
            Journey::StepUp { .. } => FlowKind::StepUp,
            Journey::Recovery { .. } => FlowKind::Recovery,
        }
    }

    /// The session a step-up raises.
    pub fn raises(&self) -> Option<SessionId> {
        match self {
            Journey::StepUp { session_id, .. } => Some(*session_id),
            _ => None,
        }
    }

    /// Whether the first step may establish who the user is (a
    /// discoverable passkey naming its owner) and settle the flow in that
    /// account's tier. A step-up already knows its user.
    pub fn identifies(&self) -> bool {
        !matches!(self, Journey::StepUp { .. })
    }
}

/// What a journey must prove before it completes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demand {
    /// The least assurance level the steps must reach together.
    pub aal: Aal,
    /// At least one step must be phishing-resistant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub phishing_resistant: bool,
    /// Every step must have happened within this many seconds of the
    /// completion (OIDC `max_age` applied to a fresh flow, a policy
    /// action's window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
    /// The journey must prove something now, even if a session exists
    /// (OIDC `prompt=login`, a step-up).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh: bool,
}

impl Demand {
    /// A demand for `aal` alone.
    pub fn level(aal: Aal) -> Self {
        Self {
            aal,
            phishing_resistant: false,
            max_age_secs: None,
            fresh: false,
        }
    }

    /// The stricter of two demands, field by field (a client's floor and a
    /// request's `acr_values`: the stricter wins).
    pub fn and(self, other: Demand) -> Demand {
        Demand {
            aal: self.aal.max(other.aal),
            phishing_resistant: self.phishing_resistant || other.phishing_resistant,
            max_age_secs: match (self.max_age_secs, other.max_age_secs) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            fresh: self.fresh || other.fresh,
        }
    }

    /// Whether `steps` meet this demand at `now`.
    pub fn met_by(&self, steps: &[FlowStep], now: Timestamp) -> bool {
        let Some(proof) = combined(steps) else { return false };
        let recent = self.max_age_secs.is_none_or(|secs| {
            steps.iter().all(|s| {
                now.as_millis() - s.at.as_millis() <= i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
            })
        });
        proof.aal >= self.aal && (!self.phishing_resistant || proof.phishing_resistant) && recent
    }

    /// The window as a duration, if any.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age_secs.map(Duration::from_secs)
    }
}

/// Where a journey goes when it completes. Stored with the flow, so it
/// survives a node change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "to", content = "at")]
pub enum Continuation {
    /// Nowhere in particular (an API client decides).
    #[default]
    None,
    /// A same-origin URL (checked when the flow was started).
    Url(String),
    /// A stored OpenID Connect authorization request, by id.
    Authorization(Uuid),
}

impl Continuation {
    /// The URL to go to, for the browser.
    pub fn url(&self) -> Option<&str> {
        match self {
            Continuation::Url(u) => Some(u),
            _ => None,
        }
    }
}

/// One proven step: the method, what it proved, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowStep {
    pub method: MethodName,
    pub proof: Proof,
    pub at: Timestamp,
}

/// What `steps` prove together ([`assurance::combine`]).
pub fn combined(steps: &[FlowStep]) -> Option<Proof> {
    let plain: Vec<Step> = steps
        .iter()
        .map(|s| Step {
            method: s.method,
            proof: s.proof.clone(),
        })
        .collect();
    assurance::combine(&plain)
}

/// The typed state of a flow, stored as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowState {
    /// The schema version that wrote it ([`FLOW_STATE_VERSION`]).
    #[serde(default = "legacy_version")]
    pub v: u32,
    pub journey: Journey,
    /// What the journey must prove: what the caller asked for and what the
    /// tier requires, together.
    pub demand: Demand,
    /// What the caller asked for, beyond any tier (an OIDC client's floor,
    /// a step-up's action), kept apart so that settling a usernameless flow
    /// in its account's tier recomputes `demand` from it.
    #[serde(default = "no_demand")]
    pub asked: Demand,
    #[serde(default)]
    pub continuation: Continuation,
    /// The account the flow is for, if the identifier matched one. `None`
    /// both for usernameless flows and for unknown identifiers: the two are
    /// answered identically.
    pub user_id: Option<UserId>,
    /// Whether an identifier was given (as opposed to a usernameless flow).
    pub identified: bool,
    /// Hex SHA-256 of the normalised identifier, for known and unknown
    /// accounts alike: per-address send limits and failure counters key on
    /// it, so an unknown address is throttled exactly like a real one. The
    /// address itself is never stored in the flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier_hash: Option<String>,
    pub tier: String,
    pub mode: SessionMode,
    /// The steps proven so far, in order (RFC 8176 `amr` is derived from
    /// them).
    #[serde(default)]
    pub steps: Vec<FlowStep>,
    /// Per-method scratch state (a WebAuthn challenge), keyed by method.
    #[serde(default)]
    pub scratch: Map<String, Value>,
}

fn legacy_version() -> u32 {
    1
}

fn no_demand() -> Demand {
    Demand::level(Aal::Aal1)
}

/// Why a stored flow state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FlowDecodeError {
    /// Written by a newer Signet in a form this one cannot read: another
    /// node (or this one, once upgraded) can. Not corruption.
    #[error("flow state version {0} is newer than this server reads ({FLOW_STATE_VERSION})")]
    Newer(u64),
    #[error("corrupt flow state: {0}")]
    Corrupt(String),
}

/// The state as version 1 (before typed journeys) stored it.
#[derive(Deserialize)]
struct LegacyState {
    user_id: Option<UserId>,
    identified: bool,
    #[serde(default)]
    identifier_hash: Option<String>,
    tier: String,
    mode: SessionMode,
    required_aal: Aal,
    return_to: Option<String>,
    #[serde(default)]
    methods: Map<String, Value>,
    #[serde(default)]
    step_up: Option<LegacyStepUp>,
}

#[derive(Deserialize)]
struct LegacyStepUp {
    session_id: SessionId,
    action: Option<String>,
}

impl FlowState {
    /// Reads a stored state of any version this build knows, upgrading a
    /// version-1 state (in flight while a cluster is upgraded) in memory;
    /// `created_at` stands in for the time of its steps, which version 1
    /// did not record.
    pub fn from_stored(json: &str, created_at: Timestamp) -> Result<FlowState, FlowDecodeError> {
        let raw: Value = serde_json::from_str(json).map_err(|e| FlowDecodeError::Corrupt(e.to_string()))?;
        let version = raw.get("v").and_then(Value::as_u64).unwrap_or(1);
        if version > u64::from(FLOW_STATE_VERSION) {
            // Acting on a state this build only partly understands could
            // drop a demand a newer build added: leave it to a node that
            // reads it.
            return Err(FlowDecodeError::Newer(version));
        }
        if version >= 2 {
            return serde_json::from_value(raw).map_err(|e| FlowDecodeError::Corrupt(e.to_string()));
        }
        let old: LegacyState = serde_json::from_value(raw).map_err(|e| FlowDecodeError::Corrupt(e.to_string()))?;
        let mut scratch = old.methods;
        let steps: Vec<Step> = match scratch.remove("steps") {
            Some(v) => serde_json::from_value(v).map_err(|e| FlowDecodeError::Corrupt(e.to_string()))?,
            None => Vec::new(),
        };
        Ok(FlowState {
            v: FLOW_STATE_VERSION,
            journey: match old.step_up {
                Some(t) => Journey::StepUp {
                    session_id: t.session_id,
                    action: t.action,
                },
                None => Journey::Login,
            },
            demand: Demand::level(old.required_aal),
            asked: no_demand(),
            continuation: old.return_to.map(Continuation::Url).unwrap_or_default(),
            user_id: old.user_id,
            identified: old.identified,
            identifier_hash: old.identifier_hash,
            tier: old.tier,
            mode: old.mode,
            steps: steps
                .into_iter()
                .map(|s| FlowStep {
                    method: s.method,
                    proof: s.proof,
                    at: created_at,
                })
                .collect(),
            scratch,
        })
    }

    /// The methods used so far.
    pub fn used(&self, method: MethodName) -> bool {
        self.steps.iter().any(|s| s.method == method)
    }
}

#[derive(Clone, Debug)]
pub struct Flow {
    pub id: FlowId,
    pub kind: FlowKind,
    pub state: FlowState,
    /// Incremented by every update; updates are compare-and-swap on it.
    pub version: i64,
    /// SHA-256 of the browser-binding cookie for browser-mode flows.
    pub binding: Option<TokenHash>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// Whether the flow has a stored row. A flow that has not progressed
    /// lives only in its sealed handle (ADR 0014); its first progress
    /// stores it.
    pub stored: bool,
}

impl Flow {
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(journey: Journey) -> FlowState {
        FlowState {
            v: FLOW_STATE_VERSION,
            journey,
            demand: Demand::level(Aal::Aal2),
            asked: no_demand(),
            continuation: Continuation::Url("https://id.example.com/account".into()),
            user_id: Some(UserId(Uuid::new_v4())),
            identified: true,
            identifier_hash: None,
            tier: "standard".into(),
            mode: SessionMode::Browser,
            steps: Vec::new(),
            scratch: Map::new(),
        }
    }

    #[test]
    fn a_version_1_state_in_flight_during_an_upgrade_is_read() {
        let sid = Uuid::new_v4();
        let v1 = serde_json::json!({
            "user_id": Uuid::new_v4(), "identified": true, "tier": "standard", "mode": "browser",
            "required_aal": "aal2", "completed": ["email_otp"], "return_to": "https://id.example.com/account",
            "methods": { "passkey": { "state": "x", "expires_at": 1 }, "steps": [
                { "method": "email_otp", "proof": { "aal": "aal1", "amr": ["otp"], "phishing_resistant": false, "credential_id": null } }
            ] },
            "step_up": { "session_id": sid, "action": "add_credential" }
        });
        let s = FlowState::from_stored(&v1.to_string(), Timestamp::from_millis(7)).unwrap();
        assert_eq!(s.journey.raises(), Some(SessionId(sid)));
        assert_eq!(s.demand.aal, Aal::Aal2);
        assert_eq!(s.continuation.url(), Some("https://id.example.com/account"));
        assert_eq!(s.steps.len(), 1);
        assert_eq!(s.steps[0].at, Timestamp::from_millis(7));
        assert!(s.scratch.contains_key("passkey") && !s.scratch.contains_key("steps"));
    }

    #[test]
    fn a_state_of_a_newer_version_is_left_to_a_node_that_reads_it() {
        let mut json = serde_json::to_value(state(Journey::Login)).unwrap();
        json["v"] = (FLOW_STATE_VERSION + 1).into();
        assert!(matches!(
            FlowState::from_stored(&json.to_string(), Timestamp::from_millis(0)),
            Err(FlowDecodeError::Newer(_))
        ));
        json["v"] = FLOW_STATE_VERSION.into();
        assert!(FlowState::from_stored(&json.to_string(), Timestamp::from_millis(0)).is_ok());
    }

    #[test]
    fn a_state_this_version_cannot_read_is_newer_not_corrupt() {
        let json = serde_json::json!({ "v": 9, "journey": { "kind": "teleport" } }).to_string();
        assert!(matches!(
            FlowState::from_stored(&json, Timestamp::from_millis(0)),
            Err(FlowDecodeError::Newer(9))
        ));
        assert!(matches!(
            FlowState::from_stored("{\"v\": 2}", Timestamp::from_millis(0)),
            Err(FlowDecodeError::Corrupt(_))
        ));
    }

    #[test]
    fn a_step_up_always_names_its_session() {
        let id = SessionId(Uuid::new_v4());
        let s = state(Journey::StepUp {
            session_id: id,
            action: Some("add_credential".into()),
        });
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["journey"]["kind"], "step_up");
        let back: FlowState = serde_json::from_value(json).unwrap();
        assert_eq!(back.journey.raises(), Some(id));
        let broken = serde_json::json!({ "kind": "step_up" });
        assert!(serde_json::from_value::<Journey>(broken).is_err());
    }

    #[test]
    fn the_stricter_demand_wins_field_by_field() {
        let client = Demand {
            aal: Aal::Aal2,
            phishing_resistant: true,
            max_age_secs: Some(600),
            fresh: false,
        };
        let request = Demand {
            aal: Aal::Aal1,
            phishing_resistant: false,
            max_age_secs: Some(60),
            fresh: true,
        };
        let both = client.and(request);
        assert_eq!(both.aal, Aal::Aal2);
        assert!(both.phishing_resistant && both.fresh);
        assert_eq!(both.max_age_secs, Some(60));
    }

    fn step(method: MethodName, aal: Aal, pr: bool, at: i64) -> FlowStep {
        FlowStep {
            method,
            proof: Proof {
                aal,
                amr: vec![],
                phishing_resistant: pr,
                credential_id: None,
                user_id: None,
            },
            at: Timestamp::from_millis(at),
        }
    }

    #[test]
    fn a_demand_is_met_only_by_what_it_asks_for() {
        let mut d = Demand::level(Aal::Aal2);
        let otp = step(MethodName::EmailOtp, Aal::Aal1, false, 0);
        let key = step(MethodName::Passkey, Aal::Aal2, true, 0);
        assert!(!d.met_by(std::slice::from_ref(&otp), Timestamp::from_millis(0)));
        assert!(d.met_by(std::slice::from_ref(&key), Timestamp::from_millis(0)));
        d.phishing_resistant = true;
        let totp = step(MethodName::Totp, Aal::Aal1, false, 0);
        assert!(
            !d.met_by(&[otp.clone(), totp], Timestamp::from_millis(0)),
            "aal2 without phishing resistance"
        );
        d.max_age_secs = Some(60);
        assert!(d.met_by(std::slice::from_ref(&key), Timestamp::from_millis(60_000)));
        assert!(
            !d.met_by(&[key], Timestamp::from_millis(60_001)),
            "a step older than max_age"
        );
    }
}
