//! Flows: the server-side record of a journey in progress (login, step-up,
//! recovery, ...). A flow has an expiry, typed state, a version for
//! compare-and-swap updates, and optionally the hash of a browser-binding
//! cookie so that only the browser that started it can finish it.
//!
//! Because the whole state is in storage, a flow begun on one node can be
//! finished on any other. The state is kept small (a few hundred bytes of
//! JSON) so that reading and writing it stays cheap.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::secret::TokenHash;
use crate::session::{Aal, SessionMode};
use crate::user::UserId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FlowId(pub Uuid);

impl FlowId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl Default for FlowId {
    fn default() -> Self {
        Self::new()
    }
}

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

/// The typed state of an authentication flow. Serialised as JSON in storage;
/// unknown fields are refused when reading it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowState {
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
    pub required_aal: Aal,
    /// Methods completed so far, in order (RFC 8176 `amr` is derived from them).
    pub completed: Vec<String>,
    /// Same-origin URL to go to after completion (browser mode).
    pub return_to: Option<String>,
    /// Per-method scratch state (e.g. a WebAuthn challenge), keyed by method.
    #[serde(default)]
    pub methods: serde_json::Map<String, serde_json::Value>,
    /// For step-up flows: the session being raised and the action asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up: Option<StepUpTarget>,
}

/// What a step-up flow is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpTarget {
    pub session_id: crate::session::SessionId,
    pub action: Option<String>,
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
}

impl Flow {
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }
}
