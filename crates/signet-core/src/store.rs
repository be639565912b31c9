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
//! - the audit log is appended under a lock on the head of the record's
//!   lane, held to the commit, so each lane's chain stays linear even with
//!   several nodes, and a record commits together with its lane's head
//!   (ADR 0036: one lane with dense numbers on SQLite, sixteen on
//!   PostgreSQL).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admin_token::AdminToken;
use crate::audit::{AuditRecord, ChainEnds};
use crate::clock::Timestamp;
use crate::credential::{Ceremony, Passkey, PasskeyUse};
use crate::flow::{Flow, FlowId};
use crate::outbox::{Lease, Message};
use crate::secret::TokenHash;
use crate::session::{Session, SessionId};
use crate::user::{User, UserId};

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint was hit; the code names which one.
    #[error("conflict: {0}")]
    Conflict(crate::error::ErrorCode),
    /// The database cannot be reached.
    #[error("storage unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Storage cannot take a write because it is out of space (disk full,
    /// quota). Answered 503 `storage_full` with `Retry-After`, never 500.
    #[error("storage full")]
    Full(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Storage cannot take a write now because a lock was held too long.
    /// Answered 503 `storage_busy` with `Retry-After`, never 500.
    #[error("storage busy")]
    Busy(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    #[error("storage error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A write the unit needed to change exactly one row changed none: the
    /// engine refused the unit (ADR 0035). Answered as [`Refusal::error`].
    #[error("refused: {}", .0.name())]
    Refused(Refusal),
}

/// What a unit of work can be refused for when one of its writes finds the
/// row not as it expected: the loser of a race. Such a write may be sent
/// with the unit's later statements and checked inside the engine (ADR
/// 0035), so the refusal shows at the unit's next call or its commit; the
/// client hears the same answer either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The flow was finished already (a concurrent completion won).
    FlowFinished,
    /// The passkey's counter moved since it was read (a concurrent login
    /// with it won), or the passkey is gone.
    PasskeyRaced,
    /// The TOTP credential's last accepted step is at or past this code's
    /// (a concurrent submission of the same code won: RFC 6238 §5.2), or
    /// the credential is gone.
    CodeReplayed,
    /// The flow's one-time code was used, replaced or expired since it was
    /// read (a concurrent submission won), or it is not this flow's.
    CodeUsed,
    /// The refresh token was rotated out, revoked, or its grant or user
    /// ended since it was read (a concurrent use won).
    RefreshRaced,
}

/// `Ok` if the write `won`, else the unit is refused for `refusal`.
pub fn refuse_unless(won: bool, refusal: Refusal) -> StoreResult<()> {
    if won {
        Ok(())
    } else {
        Err(StoreError::Refused(refusal))
    }
}

impl Refusal {
    pub const ALL: [Refusal; 5] = [
        Refusal::FlowFinished,
        Refusal::PasskeyRaced,
        Refusal::CodeReplayed,
        Refusal::CodeUsed,
        Refusal::RefreshRaced,
    ];

    /// Its name, as the engine reports it.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::FlowFinished => "flow_finished",
            Refusal::PasskeyRaced => "passkey_raced",
            Refusal::CodeReplayed => "code_replayed",
            Refusal::CodeUsed => "code_used",
            Refusal::RefreshRaced => "refresh_raced",
        }
    }

    /// What the client is told.
    pub fn error(self) -> crate::error::Error {
        use crate::error::{Error, ErrorCode};
        match self {
            Refusal::FlowFinished => Error::gone(
                ErrorCode::FlowExpired,
                "this sign-in was already completed or has expired",
            ),
            Refusal::PasskeyRaced => Error::conflict(
                ErrorCode::CredentialInUse,
                "this passkey was used at the same moment elsewhere; try again",
            ),
            Refusal::CodeReplayed => Error::conflict(
                ErrorCode::CodeReplayed,
                "this code was already used; wait for the next one in your authenticator app",
            ),
            Refusal::CodeUsed => Error::gone(
                ErrorCode::CodeUsed,
                "this code was already used or replaced by a newer one",
            ),
            // The token endpoint takes the locked path instead
            // (`oidc::refresh`); this answer is for any other caller.
            Refusal::RefreshRaced => Error::conflict(
                ErrorCode::CredentialInUse,
                "this refresh token was used at the same moment elsewhere",
            ),
        }
    }
}

#[async_trait::async_trait]
pub trait UserStore: Send + Sync {
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    /// Looks up by the normalised (lower-cased) address.
    async fn user_by_email(&self, email_normalized: &str) -> StoreResult<Option<User>>;
    /// Users ordered by normalised email, after the given one (keyset paging).
    async fn list_users(&self, after_email: Option<&str>, limit: u32) -> StoreResult<Vec<User>>;
}

#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// The session with this token and its user (`None` if the account is
    /// gone), in one read: every authenticated request needs both.
    async fn session_with_user_by_token(&self, token: &TokenHash) -> StoreResult<Option<(Session, Option<User>)>>;
    /// The session with this token.
    async fn session_by_token(&self, token: &TokenHash) -> StoreResult<Option<Session>> {
        Ok(self.session_with_user_by_token(token).await?.map(|(s, _)| s))
    }
    async fn touch_session(&self, id: SessionId, now: Timestamp) -> StoreResult<()>;
    async fn list_user_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<Session>>;
    /// One live session of `user` by id (what a step-up raises): one row,
    /// not every session the account has.
    async fn user_session(&self, user: UserId, id: SessionId, now: Timestamp) -> StoreResult<Option<Session>> {
        Ok(self
            .list_user_sessions(user, now)
            .await?
            .into_iter()
            .find(|s| s.id == id))
    }
    /// Deletes the sessions past their idle or absolute lifetime at `now`,
    /// except those an OIDC client redeemed a code of and has not been told
    /// the end of: [`SessionStore::timed_out_sessions_with_apps`] finds
    /// those, and the janitor ends each with its back-channel logout notice.
    async fn purge_expired_sessions(&self, now: Timestamp) -> StoreResult<u64>;
    /// Up to `limit` sessions past their idle or absolute lifetime at `now`
    /// that an OIDC client redeemed a code of and has not been told the end
    /// of (back-channel logout), by id, from just after `after` on.
    async fn timed_out_sessions_with_apps(
        &self,
        now: Timestamp,
        after: Option<SessionId>,
        limit: u32,
    ) -> StoreResult<Vec<(UserId, SessionId)>>;
}

/// What storage knows of a flow id ([`FlowStore::flow_or_finished`]).
#[derive(Debug)]
pub enum FlowLookup {
    /// A live stored copy.
    Stored(Box<Flow>),
    /// Finished, and remembered as such.
    Finished,
    /// Neither: never stored (a flow that lives in its handle), or expired.
    Absent,
}

/// A passkey as a login reads it ([`Store::passkey_and_owner`]).
#[derive(Clone, Debug)]
pub struct PasskeyForLogin {
    pub passkey: Passkey,
    /// `None` if the account is gone.
    pub owner: Option<User>,
    /// The end of its cooling-off, if it was bound through recovery.
    pub cooling_off_until: Option<Timestamp>,
}

#[async_trait::async_trait]
pub trait FlowStore: Send + Sync {
    async fn insert_flow(&self, flow: &Flow) -> StoreResult<()>;
    /// A live (unexpired) flow by id.
    async fn flow(&self, id: FlowId, now: Timestamp) -> StoreResult<Option<Flow>>;
    /// Whether the flow `id` was finished (completed, or ended for good)
    /// and is still remembered as such.
    async fn is_finished(&self, id: FlowId) -> StoreResult<bool>;
    /// [`FlowStore::flow`] and, when there is no live stored copy,
    /// [`FlowStore::is_finished`], in one read where the engine allows it
    /// (a step's flow is looked up on every step).
    async fn flow_or_finished(&self, id: FlowId, now: Timestamp) -> StoreResult<FlowLookup> {
        Ok(match self.flow(id, now).await? {
            Some(flow) => FlowLookup::Stored(Box::new(flow)),
            None if self.is_finished(id).await? => FlowLookup::Finished,
            None => FlowLookup::Absent,
        })
    }
    /// Writes `flow.state` and `flow.expires_at` if the stored version still
    /// equals `flow.version`, and bumps the version. Returns false if someone else got there first
    /// or the flow is gone.
    async fn update_flow(&self, flow: &Flow, now: Timestamp) -> StoreResult<bool>;
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
    /// A security notice's "this wasn't me" link.
    NotMe,
}

impl SecretPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretPurpose::Invitation => "invitation",
            SecretPurpose::MagicLink => "magic_link",
            SecretPurpose::EmailCode => "email_code",
            SecretPurpose::SmsCode => "sms_code",
            SecretPurpose::RecoveryLink => "recovery_link",
            SecretPurpose::NotMe => "not_me",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            SecretPurpose::Invitation,
            SecretPurpose::MagicLink,
            SecretPurpose::EmailCode,
            SecretPurpose::SmsCode,
            SecretPurpose::RecoveryLink,
            SecretPurpose::NotMe,
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
    /// Deletes secrets that expired or were consumed before `before`: they
    /// can never be redeemed again. Returns how many.
    async fn purge_spent_secrets(&self, before: Timestamp) -> StoreResult<u64>;
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
    /// An unrevoked token by hash.
    async fn admin_token_by_hash(&self, hash: &TokenHash) -> StoreResult<Option<AdminToken>>;
    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminToken>>;
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
    async fn query_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;
    /// Records with `seq > after_seq` in ascending order, for verification.
    async fn audit_range(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRecord>>;
    /// Where the log ends (ADR 0036): every lane's head (the `seq` and hash
    /// of its last record, 0 and GENESIS while it has none, in lane order)
    /// and the highest `seq` of each lane's records, read in one statement
    /// so that they describe one moment.
    async fn audit_ends(&self) -> StoreResult<ChainEnds>;
}

#[async_trait::async_trait]
pub trait OutboxStore: Send + Sync {
    async fn enqueue_message(&self, message: &Message) -> StoreResult<()>;
    // Claiming and recording outcomes are unit-of-work operations only
    // ([`crate::unit_of_work::OutboxWrites`]): the courier records what it
    // sent and claims the next in one unit.
    /// Extends the lease of a message still held by `lease.token` to
    /// `lease.until`. False if the message is no longer this worker's (its
    /// lease ran out and another worker claimed it, or it was recorded).
    async fn renew_message_lease(&self, id: Uuid, lease: Lease) -> StoreResult<bool>;
    async fn recent_messages(&self, limit: u32) -> StoreResult<Vec<Message>>;
    /// Deletes sent and dead messages created before `before`. Returns how many.
    async fn purge_finished_messages(&self, before: Timestamp) -> StoreResult<u64>;
    async fn message(&self, id: Uuid) -> StoreResult<Option<Message>>;
    /// What the outbox holds undelivered, in one read.
    async fn outbox_depth(&self) -> StoreResult<crate::outbox::OutboxDepth>;
}

/// Passkeys, their enrollment ceremonies, and secrets shared by all nodes.
/// A user's verified phones (`sms_otp` credentials), read outside a unit
/// of work; writes are [`crate::unit_of_work::PhoneWrites`].
#[async_trait::async_trait]
pub trait PhoneStore: Send + Sync {
    /// The user's verified phones, oldest first.
    async fn phones_of(&self, user: UserId) -> StoreResult<Vec<crate::credential::PhoneCredential>>;
}

/// See [`crate::credential`] for the invariants.
#[async_trait::async_trait]
pub trait CredentialStore: Send + Sync {
    /// A user's passkeys, oldest first.
    async fn passkeys_of(&self, user: UserId) -> StoreResult<Vec<Passkey>>;
    /// A passkey by its authenticator credential id (base64url).
    async fn passkey_by_credential_id(&self, credential_id: &str) -> StoreResult<Option<Passkey>>;
    /// Records a login: counter, backup state and last use in one write,
    /// only if the stored counter still equals `previous_counter`. Returns
    /// false if another login got there first.
    async fn record_passkey_use(&self, used: &PasskeyUse) -> StoreResult<bool>;
    async fn insert_ceremony(&self, ceremony: &Ceremony) -> StoreResult<()>;
    /// Deletes and returns a live ceremony begun by `session`: one caller
    /// wins; another session's attempt leaves it in place.
    async fn take_ceremony(&self, id: Uuid, session: SessionId, now: Timestamp) -> StoreResult<Option<Ceremony>>;
    async fn purge_expired_ceremonies(&self, now: Timestamp) -> StoreResult<u64>;
    /// The secret stored under `name`, storing `candidate` first if there is
    /// none: every node ends up with the value of whichever wrote first.
    async fn server_secret(&self, name: &str, candidate: &[u8], now: Timestamp) -> StoreResult<Vec<u8>>;
}

/// Authenticator-app secrets and recovery codes (reads). See
/// [`crate::credential::TotpCredential`] for the invariants.
#[async_trait::async_trait]
pub trait OtpCredentialStore: Send + Sync {
    /// A user's TOTP credentials, oldest first.
    async fn totps_of(&self, user: UserId) -> StoreResult<Vec<crate::credential::TotpCredential>>;
    /// The user's current recovery-code set, if they have one.
    async fn recovery_codes_of(&self, user: UserId) -> StoreResult<Option<crate::credential::RecoveryCodeSet>>;
    /// Whether `user` has the code `hash`: `None` if not, else whether it
    /// is used already. A read only: the use is
    /// [`crate::unit_of_work::OtpCredentialWrites::use_recovery_code`].
    async fn recovery_code_used(&self, user: UserId, hash: &TokenHash) -> StoreResult<Option<bool>>;
}

/// Registered OIDC clients ([`crate::oidc_client`]).
#[async_trait::async_trait]
pub trait OidcClientStore: Send + Sync {
    /// A client by the `client_id` it presents.
    async fn oidc_client(&self, client_id: &str) -> StoreResult<Option<crate::oidc_client::OidcClient>>;
    /// Every client, ordered by `client_id`.
    async fn list_oidc_clients(&self) -> StoreResult<Vec<crate::oidc_client::OidcClient>>;
    /// What `user` approved for the client, if anything.
    async fn oidc_consent(&self, user: UserId, client_id: &str)
        -> StoreResult<Option<crate::oidc_client::OidcConsent>>;
    /// Every client `user` approved, ordered by `client_id`.
    async fn list_oidc_consents(&self, user: UserId) -> StoreResult<Vec<crate::oidc_client::OidcConsent>>;
    /// The clients holding a live refresh token of `user` at `now`.
    async fn oidc_clients_with_grants(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<String>>;
    /// The clients `user` approved or that hold a live refresh token of
    /// theirs at `now`, ordered by `client_id`: the account page's apps in
    /// one read, however many there are.
    async fn oidc_clients_of(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<crate::oidc_client::OidcClient>>;
    /// Whether the tokens issued from code `id` still stand, as committed:
    /// `None` if there is no such code, `Some(false)` once it was revoked.
    /// (Introspection and UserInfo read it without opening a unit of work,
    /// which on SQLite would wait for the single writer.)
    async fn oidc_grant_standing(&self, id: Uuid) -> StoreResult<Option<bool>>;
    /// The refresh token with this hash as committed, rotated out or not,
    /// with its family's standing and its user's, read without opening a
    /// unit of work: what a rotation checks before its checked write
    /// ([`crate::unit_of_work::OidcGrantWrites::rotate_oidc_refresh_checked`]).
    async fn oidc_refresh_token(
        &self,
        hash: &crate::secret::TokenHash,
    ) -> StoreResult<Option<crate::unit_of_work::StoredRefresh>>;
}

/// Help-desk recovery tickets (reads).
#[async_trait::async_trait]
pub trait RecoveryTicketStore: Send + Sync {
    async fn ticket(&self, id: Uuid) -> StoreResult<Option<crate::recovery_ticket::RecoveryTicket>>;
    /// The admin tokens involved in a ticket (creator and approvers), in order.
    async fn ticket_actors(&self, id: Uuid) -> StoreResult<Vec<Uuid>>;
    /// Tickets, newest first, of one user or of everyone, at most `limit`.
    async fn list_tickets(
        &self,
        user: Option<UserId>,
        limit: u32,
    ) -> StoreResult<Vec<crate::recovery_ticket::RecoveryTicket>>;
    /// Until when `credential` is in its cooling-off, if it ever was.
    async fn cooling_off_until(&self, credential: Uuid) -> StoreResult<Option<Timestamp>>;
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
    + PhoneStore
    + OtpCredentialStore
    + OidcClientStore
    + RecoveryTicketStore
    + crate::unit_of_work::UnitOfWork
    + Send
    + Sync
    + 'static
{
    /// Checks the database answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
    /// Commits one tiny write through the writer, as every acknowledged
    /// change must: fails while writes fail (a full disk, a writer held
    /// past its timeout), for `/readyz`.
    async fn probe_write(&self, now: crate::clock::Timestamp) -> StoreResult<()>;
    /// `sqlite` or `postgres`, for logs and metrics.
    fn backend(&self) -> &'static str;
    /// Whether every unit of work queues on one writer (SQLite), so that a
    /// unit that only writes is handed to it with others' while one that
    /// reads through it holds it (ADR 0040): a use case may then read
    /// outside its unit first. On PostgreSQL the read inside the unit is
    /// one round trip fewer.
    fn single_writer(&self) -> bool {
        self.backend() == "sqlite"
    }
    /// A passkey by its credential id (base64url) with its owner and the
    /// end of its cooling-off, in one read where the engine allows it: a
    /// passkey login needs all three, on every login.
    async fn passkey_and_owner(&self, credential_id: &str) -> StoreResult<Option<PasskeyForLogin>> {
        let Some(passkey) = self.passkey_by_credential_id(credential_id).await? else {
            return Ok(None);
        };
        let owner = self.user_by_id(passkey.user_id).await?;
        let cooling_off_until = self.cooling_off_until(passkey.id).await?;
        Ok(Some(PasskeyForLogin {
            passkey,
            owner,
            cooling_off_until,
        }))
    }
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
    /// Every sealed value of `kind`, ordered by name (for a TOTP seed, the
    /// credential id).
    async fn stored_sealed(&self, kind: SealedKind) -> StoreResult<Vec<StoredSecret>>;
    /// Replaces the value of `kind` named `name` only if it still equals
    /// `expected`. Returns false if it changed meanwhile or there is no such
    /// row.
    async fn swap_sealed(&self, kind: SealedKind, name: &str, expected: &[u8], new: &[u8]) -> StoreResult<bool>;

    /// Every row of `server_secrets`, ordered by name.
    async fn stored_server_secrets(&self) -> StoreResult<Vec<StoredSecret>> {
        self.stored_sealed(SealedKind::ServerSecret).await
    }
    /// [`Self::swap_sealed`] for `server_secrets`.
    async fn swap_server_secret(&self, name: &str, expected: &[u8], new: &[u8]) -> StoreResult<bool> {
        self.swap_sealed(SealedKind::ServerSecret, name, expected, new).await
    }
}

/// The kinds of values stored sealed, each in its own table. Every one is
/// re-sealed by `signet keys rotate-sealing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealedKind {
    /// `server_secrets`: the passkey decoy key, the OIDC signing keys.
    ServerSecret,
    /// `totp_credentials.seed`: authenticator-app seeds (RFC 6238).
    TotpSeed,
}

impl SealedKind {
    pub const ALL: [SealedKind; 2] = [SealedKind::ServerSecret, SealedKind::TotpSeed];

    /// The table, as `table/name` labels in reports use it.
    pub fn table(self) -> &'static str {
        match self {
            SealedKind::ServerSecret => "server_secrets",
            SealedKind::TotpSeed => "totp_credentials",
        }
    }

    /// What the value named `name` is bound to when sealed, so a value
    /// copied to another row does not open there.
    pub fn binding(self, name: &str) -> crate::sealing::Binding {
        match self {
            SealedKind::ServerSecret => crate::sealing::Binding::server_secret(name),
            SealedKind::TotpSeed => crate::sealing::Binding::new("totp_seed", name),
        }
    }
}
