//! Storage traits, one per aggregate (DESIGN.md habit 5).
//!
//! `signet-store` implements every trait for SQLite and PostgreSQL, and one
//! conformance suite runs against both. Domain code only ever sees these
//! traits, so it never branches on the backend.
//!
//! Invariants every implementation must keep:
//! - one-time secrets are consumed by a single conditional write: of any
//!   number of concurrent callers, exactly one gets `Some`;
//! - flow updates are compare-and-swap on `version`;
//! - the audit log is appended under a lock on its chain head, so sequence
//!   numbers stay dense and the chain linear even with several nodes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admin_token::AdminToken;
use crate::audit::{AuditEvent, AuditRecord};
use crate::clock::Timestamp;
use crate::credential::{Ceremony, Passkey, PasskeyUse, Removal};
use crate::flow::{Flow, FlowId};
use crate::outbox::Message;
use crate::secret::TokenHash;
use crate::session::{Session, SessionId};
use crate::user::{User, UserId, UserStatus};

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint was hit; the code names which one.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The database cannot be reached.
    #[error("storage unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    #[error("storage error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait::async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `Conflict("email_taken")` if the normalised email exists.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    /// Looks up by the normalised (lower-cased) address.
    async fn user_by_email(&self, email_normalized: &str) -> StoreResult<Option<User>>;
    /// Users ordered by normalised email, after the given one (keyset paging).
    async fn list_users(&self, after_email: Option<&str>, limit: u32) -> StoreResult<Vec<User>>;
    /// Sets the status and appends `audit`, in one transaction; disabling
    /// also ends every session of the user there. `false` (nothing written)
    /// when there is no such user.
    async fn set_user_status(
        &self,
        id: UserId,
        status: UserStatus,
        now: Timestamp,
        audit: Audited<'_>,
    ) -> StoreResult<bool>;
}

/// An audit event appended in the same transaction as the write it
/// describes, so that both happen or neither does: a session, for example,
/// never exists without the record of how it was obtained.
#[derive(Clone, Copy, Debug)]
pub struct Audited<'a> {
    pub event: &'a AuditEvent,
    pub id: Uuid,
    pub at: Timestamp,
}

#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    /// Inserts `session`, deletes `replaces` (if any) and appends `audit`, in
    /// one transaction: session rotation on authentication.
    async fn rotate_session(
        &self,
        session: &Session,
        replaces: Option<SessionId>,
        audit: Audited<'_>,
    ) -> StoreResult<()>;
    /// Replaces the live session `old` by `session` and appends `audit`, in
    /// one transaction, only if `old` still exists: a raised session must
    /// not outlive the one it raises (ended meanwhile, or already replaced
    /// by a concurrent step-up). `false` means nothing was written.
    async fn replace_session(&self, session: &Session, old: SessionId, audit: Audited<'_>) -> StoreResult<bool>;
    async fn session_by_token(&self, token: &TokenHash) -> StoreResult<Option<Session>>;
    async fn touch_session(&self, id: SessionId, now: Timestamp) -> StoreResult<()>;
    async fn delete_session(&self, id: SessionId) -> StoreResult<bool>;
    /// Deletes a session only if it belongs to `user` (for "end my session X").
    async fn delete_user_session(&self, user: UserId, id: SessionId) -> StoreResult<bool>;
    async fn list_user_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<Session>>;
    async fn delete_user_sessions(&self, user: UserId) -> StoreResult<u64>;
    async fn delete_credential_sessions(&self, credential_id: Uuid) -> StoreResult<u64>;
    async fn purge_expired_sessions(&self, now: Timestamp) -> StoreResult<u64>;
}

#[async_trait::async_trait]
pub trait FlowStore: Send + Sync {
    async fn insert_flow(&self, flow: &Flow) -> StoreResult<()>;
    /// A live (unexpired) flow by id.
    async fn flow(&self, id: FlowId, now: Timestamp) -> StoreResult<Option<Flow>>;
    /// Writes `flow.state` and `flow.expires_at` if the stored version still
    /// equals `flow.version`, and bumps the version. Returns false if someone else got there first
    /// or the flow is gone.
    async fn update_flow(&self, flow: &Flow, now: Timestamp) -> StoreResult<bool>;
    /// Deletes and returns a live flow: the single winner of a race finishes it.
    async fn consume_flow(&self, id: FlowId, now: Timestamp) -> StoreResult<Option<Flow>>;
    async fn purge_expired_flows(&self, now: Timestamp) -> StoreResult<u64>;
}

/// What a one-time secret is for. Part of the key: a secret for one purpose
/// can never be redeemed as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretPurpose {
    Invitation,
    MagicLink,
    EmailCode,
    SmsCode,
    RecoveryLink,
}

impl SecretPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretPurpose::Invitation => "invitation",
            SecretPurpose::MagicLink => "magic_link",
            SecretPurpose::EmailCode => "email_code",
            SecretPurpose::SmsCode => "sms_code",
            SecretPurpose::RecoveryLink => "recovery_link",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            SecretPurpose::Invitation,
            SecretPurpose::MagicLink,
            SecretPurpose::EmailCode,
            SecretPurpose::SmsCode,
            SecretPurpose::RecoveryLink,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// A stored one-time secret (only its hash).
#[derive(Clone, Debug)]
pub struct OneTimeSecret {
    pub hash: TokenHash,
    pub purpose: SecretPurpose,
    pub user_id: UserId,
    pub flow_id: Option<FlowId>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub consumed_at: Option<Timestamp>,
    /// Who issued it (`cli`, `admin:<name>`, `system`).
    pub issued_by: String,
}

#[async_trait::async_trait]
pub trait SecretStore: Send + Sync {
    /// Stores a secret. At most one unconsumed secret may exist per flow
    /// and purpose (or, for a secret without a flow, per user and purpose):
    /// a second one, like a hash that exists already, is `Conflict`.
    async fn insert_secret(&self, secret: &OneTimeSecret) -> StoreResult<()>;
    /// Issues `secrets` in place of the earlier ones, in one transaction:
    /// revokes every unconsumed secret bound to the same flow (any purpose:
    /// a new message replaces the whole previous one) or, for a secret
    /// without a flow, every unconsumed secret of its user and purpose
    /// without a flow; then inserts `secrets`. When two issues race, the
    /// uniqueness above makes one of them fail with `Conflict` instead of
    /// leaving two live secrets; the caller may issue again.
    async fn issue_secrets(&self, secrets: &[OneTimeSecret], now: Timestamp) -> StoreResult<()>;
    /// Reads a secret without consuming it (to decide what to show).
    async fn peek_secret(&self, purpose: SecretPurpose, hash: &TokenHash) -> StoreResult<Option<OneTimeSecret>>;
    /// The atomic primitive: marks the secret consumed if it is unconsumed and
    /// unexpired, in one conditional write. Exactly one concurrent caller gets
    /// `Some`.
    async fn consume_secret(
        &self,
        purpose: SecretPurpose,
        hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<OneTimeSecret>>;
    /// Consumes the secret, inserts `session` and appends `audit`, in one
    /// transaction. If the secret is not redeemable, or belongs to another
    /// user than `session.user_id`, nothing is written and `None` is
    /// returned.
    async fn consume_secret_into_session(
        &self,
        purpose: SecretPurpose,
        hash: &TokenHash,
        now: Timestamp,
        session: &Session,
        audit: Audited<'_>,
    ) -> StoreResult<Option<OneTimeSecret>>;
    /// Deletes secrets that expired or were consumed before `before`: they
    /// can never be redeemed again. Returns how many.
    async fn purge_spent_secrets(&self, before: Timestamp) -> StoreResult<u64>;
    /// Revokes every unconsumed secret bound to `flow` (a new code or link
    /// replaces the ones sent before in the same flow). Returns how many.
    async fn revoke_flow_secrets(&self, flow: FlowId, now: Timestamp) -> StoreResult<u64>;
}

/// A fixed-window counter after one more hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowCount {
    /// When the current window began (the first hit after the last window ended).
    pub window_start: Timestamp,
    /// Hits in the current window, this one included.
    pub hits: u32,
}

/// A run of consecutive failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failures {
    pub count: u32,
    pub last_at: Timestamp,
}

/// Counters behind rate limits and failed-attempt limits. Keys are opaque
/// text chosen by the caller (never a raw email address: callers hash it).
/// Every increment is one atomic statement, so concurrent callers on any
/// number of nodes each see a distinct count.
#[async_trait::async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Counts one hit on `key`. If the key's window began at or before
    /// `now - window` a new window starts now with this hit as its first.
    async fn hit(&self, key: &str, now: Timestamp, window: std::time::Duration) -> StoreResult<WindowCount>;
    /// Adds one to the consecutive-failure run of `key` and returns it.
    async fn record_failure(&self, key: &str, now: Timestamp) -> StoreResult<Failures>;
    /// The current run of `key`, if any.
    async fn failures(&self, key: &str) -> StoreResult<Option<Failures>>;
    /// Sets the run of `key` to `new` if it still is `expected` (`None`: no
    /// run yet), in one conditional write; `false` if it changed meanwhile.
    /// The compare-and-swap that lets a caller decide from the run it read
    /// (a backoff delay, say) without a concurrent caller deciding the same.
    async fn swap_failures(&self, key: &str, expected: Option<Failures>, new: Failures) -> StoreResult<bool>;
    /// Ends the run of `key` (a success).
    async fn clear_failures(&self, key: &str) -> StoreResult<()>;
    /// Deletes windows that began and failure runs that last grew before
    /// `before`. Returns how many rows went.
    async fn purge_throttles(&self, before: Timestamp) -> StoreResult<u64>;
}

#[async_trait::async_trait]
pub trait AdminTokenStore: Send + Sync {
    /// Fails with `Conflict("admin_token_name_taken")` on a duplicate name.
    async fn insert_admin_token(&self, token: &AdminToken) -> StoreResult<()>;
    /// An unrevoked token by hash.
    async fn admin_token_by_hash(&self, hash: &TokenHash) -> StoreResult<Option<AdminToken>>;
    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminToken>>;
    async fn revoke_admin_token(&self, name: &str, now: Timestamp) -> StoreResult<bool>;
}

/// Filter for reading the audit log, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub user_id: Option<UserId>,
    pub event_type: Option<String>,
    /// Only records with `seq` below this (keyset paging backwards).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one record, chaining it to the current head atomically.
    async fn append_audit(&self, event: &AuditEvent, id: Uuid, at: Timestamp) -> StoreResult<AuditRecord>;
    async fn query_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;
    /// Records with `seq > after_seq` in ascending order, for verification.
    async fn audit_range(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRecord>>;
    /// The chain head: the last sequence number and hash (0 and GENESIS when empty).
    async fn audit_head(&self) -> StoreResult<(i64, [u8; 32])>;
}

#[async_trait::async_trait]
pub trait OutboxStore: Send + Sync {
    async fn enqueue_message(&self, message: &Message) -> StoreResult<()>;
    /// Leases up to `limit` due messages until `lease_until` so no other
    /// worker (on this or another node) takes them meanwhile. Each returned
    /// message has its `attempts` already incremented.
    async fn claim_due_messages(&self, now: Timestamp, lease_until: Timestamp, limit: u32)
        -> StoreResult<Vec<Message>>;
    /// Marks delivered; with `scrub`, the bodies are erased.
    async fn mark_message_sent(&self, id: Uuid, now: Timestamp, scrub: bool) -> StoreResult<()>;
    /// Records a failed attempt: retry at `next_attempt_at`, or mark dead.
    async fn mark_message_failed(
        &self,
        id: Uuid,
        error: &str,
        next_attempt_at: Timestamp,
        dead: bool,
    ) -> StoreResult<()>;
    async fn recent_messages(&self, limit: u32) -> StoreResult<Vec<Message>>;
    /// Deletes sent and dead messages created before `before`. Returns how many.
    async fn purge_finished_messages(&self, before: Timestamp) -> StoreResult<u64>;
    async fn message(&self, id: Uuid) -> StoreResult<Option<Message>>;
}

/// Passkeys, their enrollment ceremonies, and secrets shared by all nodes.
/// See [`crate::credential`] for the invariants.
#[async_trait::async_trait]
pub trait CredentialStore: Send + Sync {
    /// Fails with `Conflict("credential_already_registered")` if the
    /// credential id is registered to anyone.
    /// Stores a new passkey and appends `audit` (its `credential.added`) in
    /// one transaction. A credential id registered to anyone is
    /// `Conflict`, and then nothing is written.
    async fn insert_passkey(&self, passkey: &Passkey, audit: Audited<'_>) -> StoreResult<()>;
    /// A user's passkeys, oldest first.
    async fn passkeys_of(&self, user: UserId) -> StoreResult<Vec<Passkey>>;
    /// A passkey by its authenticator credential id (base64url).
    async fn passkey_by_credential_id(&self, credential_id: &str) -> StoreResult<Option<Passkey>>;
    /// Records a login: counter, backup state and last use in one write,
    /// only if the stored counter still equals `previous_counter`. Returns
    /// false if another login got there first.
    async fn record_passkey_use(&self, used: &PasskeyUse) -> StoreResult<bool>;
    /// Renames one of `user`'s passkeys. Returns false if there is no such passkey.
    async fn rename_passkey(&self, user: UserId, id: Uuid, name: &str) -> StoreResult<bool>;
    /// Removes one of `user`'s passkeys unless fewer than `keep` would
    /// remain, deciding and deleting in one transaction.
    async fn remove_passkey(&self, user: UserId, id: Uuid, keep: u32) -> StoreResult<Removal>;
    async fn insert_ceremony(&self, ceremony: &Ceremony) -> StoreResult<()>;
    /// Deletes and returns a live ceremony begun by `session`: one caller
    /// wins; another session's attempt leaves it in place.
    async fn take_ceremony(&self, id: Uuid, session: SessionId, now: Timestamp) -> StoreResult<Option<Ceremony>>;
    async fn purge_expired_ceremonies(&self, now: Timestamp) -> StoreResult<u64>;
    /// The secret stored under `name`, storing `candidate` first if there is
    /// none: every node ends up with the value of whichever wrote first.
    async fn server_secret(&self, name: &str, candidate: &[u8], now: Timestamp) -> StoreResult<Vec<u8>>;
}

/// Everything Signet stores, behind one handle.
#[async_trait::async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + FlowStore
    + SecretStore
    + AdminTokenStore
    + AuditStore
    + OutboxStore
    + ThrottleStore
    + CredentialStore
    + Send
    + Sync
    + 'static
{
    /// Checks the database answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
    /// `sqlite` or `postgres`, for logs and metrics.
    fn backend(&self) -> &'static str;
}

/// A row of `server_secrets` as stored: sealed ([`crate::sealing`]), or
/// plaintext written by a version before sealing. `Debug` shows the length
/// only.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub name: String,
    pub value: Vec<u8>,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredSecret({}, {} bytes)", self.name, self.value.len())
    }
}

/// Sealed values at rest, as `signet keys rotate-sealing` and the
/// plaintext-to-sealed migration need them. Every rewrite is a
/// compare-and-swap, so several nodes (or a node and the CLI) can re-seal at
/// once and no value is lost: the loser re-reads.
#[async_trait::async_trait]
pub trait SealedSecretStore: Send + Sync {
    /// Every row of `server_secrets`, ordered by name.
    async fn stored_server_secrets(&self) -> StoreResult<Vec<StoredSecret>>;
    /// Replaces the value of `name` only if it still equals `expected`.
    /// Returns false if it changed meanwhile or there is no such row.
    async fn swap_server_secret(&self, name: &str, expected: &[u8], new: &[u8]) -> StoreResult<bool>;
}
