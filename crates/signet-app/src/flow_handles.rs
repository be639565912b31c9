//! Sealed flow handles: a flow that has not progressed lives in its handle,
//! not in storage (ADR 0014).
//!
//! Starting a sign-in is the one thing anyone may do without limit: an
//! unknown address must be answered like a real one, and a usernameless
//! start needs no address at all. Storing a row for each start let an
//! outsider grow the database at will and cost a durable commit per start.
//! Instead the flow's whole state (its journey, demand, continuation, tier,
//! a passkey challenge) is sealed into the `flow_id` the client gets back:
//! XChaCha20-Poly1305 under the server's key ring, bound to its purpose, so
//! it can be neither read nor forged nor moved elsewhere. Any node with the
//! key ring opens it. The flow is stored only when it first progresses (a
//! code is sent, a step continues), and a completion records the flow's id
//! as finished in the same unit of work, so a handle completes once, like a
//! stored flow.
//!
//! **Nothing about the account shows in the handle's length.** The account
//! id is carried in a fixed-width field (the nil id for none) and the
//! plaintext is padded to a multiple of [`BUCKET`] bytes, so a handle for an
//! unknown address is the same size as one for a real account with the same
//! offer (what the offer itself shows is documented in docs/policy.md).

use serde::{Deserialize, Serialize};
use signet_core::clock::Timestamp;
use signet_core::flow::{Flow, FlowId, FlowKind, FlowState};
use signet_core::sealing::KeyRing;
use signet_core::secret::TokenHash;
use signet_core::user::UserId;
use signet_core::Result;
use uuid::Uuid;

use crate::sealing::Envelope;

/// Every handle starts with this (like the other token kinds' prefixes).
pub const PREFIX: &str = "sgf_";

/// The plaintext is padded to a multiple of this many bytes.
pub const BUCKET: usize = 512;

/// The longest handle accepted, in characters (a guard before any work).
pub const MAX_LEN: usize = 16 * 1024;

const ENVELOPE: Envelope = Envelope {
    prefix: PREFIX,
    purpose: "flow_handle",
    max_len: MAX_LEN,
    bucket: BUCKET,
};

#[derive(Serialize, Deserialize)]
struct Payload {
    id: FlowId,
    kind: FlowKind,
    /// The account, or the nil id: fixed width either way.
    account: Uuid,
    state: FlowState,
    binding: Option<String>,
    created_at: i64,
    expires_at: i64,
}

/// The handle for `flow`: its state as it is now, sealed.
pub fn seal(ring: &KeyRing, flow: &Flow) -> Result<String> {
    let mut state = flow.state.clone();
    let account = state.user_id.take().map_or(Uuid::nil(), |u| u.0);
    let payload = Payload {
        id: flow.id,
        kind: flow.kind,
        account,
        state,
        binding: flow.binding.as_ref().map(TokenHash::to_hex),
        created_at: flow.created_at.as_millis(),
        expires_at: flow.expires_at.as_millis(),
    };
    ENVELOPE.seal(ring, &payload)
}

/// The flow in `handle`, if it is a handle this server sealed. (Whether it
/// is still live, stored since or finished is the caller's question.)
pub fn open(ring: &KeyRing, handle: &str) -> Option<Flow> {
    let payload: Payload = ENVELOPE.open(ring, handle)?;
    let mut state = payload.state;
    state.user_id = (!payload.account.is_nil()).then_some(UserId(payload.account));
    let binding = match payload.binding {
        Some(hex) => Some(TokenHash::from_bytes(&hex::decode(hex).ok()?)?),
        None => None,
    };
    Some(Flow {
        id: payload.id,
        kind: payload.kind,
        state,
        version: 0,
        binding,
        created_at: Timestamp::from_millis(payload.created_at),
        expires_at: Timestamp::from_millis(payload.expires_at),
        stored: false,
    })
}
