//! One unit of work: a database transaction that use cases write through.
//!
//! A change and its audit record commit together or not at all (DESIGN.md,
//! "Storage: one unit of work"; NIST SP 800-63B rev. 4 §3.1.4 wants every
//! authenticator binding, use and loss recorded, and a record that can be
//! lost between two commits is no record). So every write that a security
//! event describes happens on a [`Transaction`], and the audit log can be
//! appended to *only* through one ([`AuditAppend`] is a transaction
//! capability; the pool-level [`crate::store::AuditStore`] only reads).
//!
//! The handle exposes each aggregate's writes as a narrow trait
//! ([`UserWrites`], [`SessionWrites`], ...): a use case that only rotates a
//! session takes `&mut dyn SessionWrites`, and anything that needs the whole
//! unit takes the [`Transaction`]. Nothing is visible to other connections
//! until [`Transaction::commit`] returns `Ok`; a transaction dropped without
//! a commit (an early `?`, a client that hung up) is rolled back.
//!
//! While a unit of work is open, its caller touches storage only through
//! it: on SQLite the unit holds the one writer connection, so a write
//! through the pool would wait for it until the pool times out (and with an
//! in-memory database, a read would too). Read what the unit needs before
//! opening it.
//!
//! Implementations must keep the invariants of [`crate::store`] inside a
//! transaction too: a one-time secret or a flow is consumed by one
//! conditional write, so of two racing transactions exactly one sees it.
//! An error other than [`StoreError::Conflict`] poisons the transaction:
//! every later operation and the commit fail, because the engine may have
//! rolled the work back already (SQLite does on a full disk).
//!
//! [`StoreError::Conflict`]: crate::store::StoreError::Conflict

use uuid::Uuid;

use crate::admin_token::AdminToken;
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::credential::{Passkey, PasskeyUse, PhoneCredential, Removal};
use crate::flow::{Flow, FlowId};
use crate::outbox::{Lease, Message};
use crate::secret::TokenHash;
use crate::session::{Session, SessionId};
use crate::store::{Failures, OneTimeSecret, SecretPurpose, StoreResult, WindowCount};
use crate::user::{User, UserId, UserStatus};

#[async_trait::async_trait]
pub trait UserWrites: Send {
    /// Fails with `Conflict("email_taken")` if the normalised email exists.
    async fn insert_user(&mut self, user: &User) -> StoreResult<()>;
    /// Sets the status; disabling also ends every session of the user.
    /// `false` (nothing written) when there is no such user.
    async fn set_user_status(&mut self, id: UserId, status: UserStatus, now: Timestamp) -> StoreResult<bool>;
}

#[async_trait::async_trait]
pub trait SessionWrites: Send {
    async fn insert_session(&mut self, session: &Session) -> StoreResult<()>;
    async fn delete_session(&mut self, id: SessionId) -> StoreResult<bool>;
    /// Deletes a session only if it belongs to `user` (for "end my session X").
    async fn delete_user_session(&mut self, user: UserId, id: SessionId) -> StoreResult<bool>;
    async fn delete_user_sessions(&mut self, user: UserId) -> StoreResult<u64>;
    /// Deletes `user`'s sessions proven with `credential_id` (that credential
    /// is being removed). Found through the user's sessions: no index on
    /// the credential, which every sign-in would have to write (ADR 0034).
    /// Answers the ids of the sessions it deleted, so that their apps can be
    /// told (back-channel logout).
    async fn delete_credential_sessions(&mut self, user: UserId, credential_id: Uuid) -> StoreResult<Vec<SessionId>>;
    /// Deletes session `id` only if it is past its idle or absolute
    /// lifetime at `now` (the janitor's end of a timed-out session: a
    /// request that renewed it a moment ago keeps it).
    async fn delete_timed_out_session(&mut self, id: SessionId, now: Timestamp) -> StoreResult<bool>;
}

#[async_trait::async_trait]
pub trait FlowWrites: Send {
    /// Stores a flow that so far lived only in its sealed handle (its first
    /// progress: a step that continues, a code sent). A flow of that id
    /// stored meanwhile (a concurrent first progress) is `Conflict`.
    async fn insert_flow(&mut self, flow: &Flow) -> StoreResult<()>;
    /// Finishes a flow for good: records its id as finished (until
    /// `expires_at`) and deletes its stored row, if any. `false` if it was
    /// finished already: of concurrent completions exactly one gets `true`.
    async fn finish_flow(&mut self, id: FlowId, expires_at: Timestamp) -> StoreResult<bool>;
    /// [`FlowWrites::finish_flow`] for a unit that goes on only if it wins:
    /// losing is `Refused(FlowFinished)`, here or, where the engine checks
    /// it with the unit's later statements (SQLite, ADR 0035), at the
    /// unit's next call or its commit.
    async fn finish_flow_or_refuse(&mut self, id: FlowId, expires_at: Timestamp) -> StoreResult<()> {
        let won = self.finish_flow(id, expires_at).await?;
        crate::store::refuse_unless(won, crate::store::Refusal::FlowFinished)
    }
    /// Compare-and-swap on `flow.version`, as [`crate::store::FlowStore::update_flow`].
    async fn update_flow(&mut self, flow: &Flow, now: Timestamp) -> StoreResult<bool>;
}

#[async_trait::async_trait]
pub trait SecretWrites: Send {
    /// Revokes the secrets `secrets` replace and inserts them, as
    /// [`crate::store::SecretStore`] documents for `issue_secrets`: at most
    /// one live secret per flow (or per invitee); a racing issue is
    /// `Conflict`, after which the whole unit of work is retried.
    async fn issue_secrets(&mut self, secrets: &[OneTimeSecret], now: Timestamp) -> StoreResult<()>;
    /// Marks the secret consumed if it is unconsumed and unexpired, in one
    /// conditional write: of any number of racing callers exactly one gets
    /// `Some`.
    async fn consume_secret(
        &mut self,
        purpose: SecretPurpose,
        hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<OneTimeSecret>>;
    /// Consumes the code `hash` of `flow`, issued to `user`, for a unit that
    /// goes on only if it lands: `Refused(CodeUsed)` when it was used,
    /// replaced or expired since it was read, or is not that flow's and
    /// user's; here or at the unit's next call or its commit (ADR 0035).
    /// A code that is not the flow's and user's is left unconsumed.
    async fn consume_flow_code_or_refuse(
        &mut self,
        purpose: SecretPurpose,
        hash: &TokenHash,
        flow: FlowId,
        user: Option<UserId>,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Revokes every unconsumed secret bound to `flow` (a flow that fails
    /// for good takes its code and link with it). Returns how many.
    async fn revoke_flow_secrets(&mut self, flow: FlowId, now: Timestamp) -> StoreResult<u64>;
}

#[async_trait::async_trait]
pub trait CredentialWrites: Send {
    /// A credential id registered to anyone is `Conflict("credential_already_registered")`.
    async fn insert_passkey(&mut self, passkey: &Passkey) -> StoreResult<()>;
    /// Renames one of `user`'s passkeys; `false` if there is no such passkey.
    async fn rename_passkey(&mut self, user: UserId, id: Uuid, name: &str) -> StoreResult<bool>;
    /// Removes one of `user`'s passkeys unless fewer than `keep` would
    /// remain (the user's row is locked first, so racing removals serialise).
    async fn remove_passkey(&mut self, user: UserId, id: Uuid, keep: u32) -> StoreResult<Removal>;
    /// Locks `user`'s row (so removals of any kind serialise until this
    /// unit ends) and counts their credentials of every kind.
    async fn lock_ways_in(&mut self, user: UserId) -> StoreResult<crate::credential::WaysIn>;
    /// Counter, backup state and last use, only if the stored counter still
    /// equals `previous_counter`; `false` if another login got there first.
    async fn record_passkey_use(&mut self, used: &PasskeyUse) -> StoreResult<bool>;
    /// [`CredentialWrites::record_passkey_use`] for a unit that goes on only
    /// if the use lands: `Refused(PasskeyRaced)` otherwise, here or at the
    /// unit's next call or its commit (ADR 0035).
    async fn record_passkey_use_or_refuse(&mut self, used: &PasskeyUse) -> StoreResult<()> {
        let won = self.record_passkey_use(used).await?;
        crate::store::refuse_unless(won, crate::store::Refusal::PasskeyRaced)
    }
}

/// TOTP credentials and recovery codes, in a unit of work.
#[async_trait::async_trait]
pub trait OtpCredentialWrites: Send {
    async fn insert_totp(&mut self, totp: &crate::credential::TotpCredential) -> StoreResult<()>;
    /// Renames one of `user`'s TOTP credentials; `false` if there is none.
    async fn rename_totp(&mut self, user: UserId, id: Uuid, name: &str) -> StoreResult<bool>;
    /// Removes one of `user`'s TOTP credentials unless fewer than `keep`
    /// would remain (under a lock on the user's row).
    async fn remove_totp(&mut self, user: UserId, id: Uuid, keep: u32) -> StoreResult<Removal>;
    /// Records an accepted code: `last_step = step` and the last use, only
    /// if the stored `last_step` is below `step` (RFC 6238 §5.2). `false`
    /// when the step (or a later one) was accepted already: a replay.
    async fn advance_totp_step(&mut self, id: Uuid, step: i64, at: Timestamp) -> StoreResult<bool>;
    /// [`OtpCredentialWrites::advance_totp_step`] for a unit that goes on
    /// only if the step lands: `Refused(CodeReplayed)` otherwise, here or at
    /// the unit's next call or its commit (ADR 0035).
    async fn advance_totp_step_or_refuse(&mut self, id: Uuid, step: i64, at: Timestamp) -> StoreResult<()>;
    /// Replaces the user's recovery codes with `hashes` (one set, `set_id`).
    /// Returns how many unused codes of the old set were discarded.
    async fn replace_recovery_codes(
        &mut self,
        user: UserId,
        set_id: Uuid,
        hashes: &[TokenHash],
        now: Timestamp,
    ) -> StoreResult<u64>;
    /// Marks `user`'s unused code `hash` used, in one conditional write: of
    /// racing uses exactly one gets `Some`, with how many unused codes the
    /// user has left after it. Uses of one user's codes are serialised (the
    /// user's row is locked first), so two codes used at once never both
    /// report the same count.
    async fn use_recovery_code(&mut self, user: UserId, hash: &TokenHash, now: Timestamp) -> StoreResult<Option<u32>>;
    /// Deletes the user's recovery-code set `set_id` unless that would
    /// leave fewer than `keep` ways in (see [`Removal`]).
    async fn remove_recovery_codes(&mut self, user: UserId, set_id: Uuid, keep: u32) -> StoreResult<Removal>;
}

#[async_trait::async_trait]
pub trait PhoneWrites: Send {
    /// The user's verified phones, oldest first, read inside the unit (a
    /// notice queued in a unit must not wait on the pool for a read).
    async fn phones_in_unit(&mut self, user: UserId) -> StoreResult<Vec<crate::credential::PhoneCredential>>;
    /// Stores a verified phone. The user already holding one is
    /// `Conflict("phone_exists")` (the user's row is locked first, so two
    /// verifications racing for one account serialise).
    async fn insert_phone(&mut self, phone: &PhoneCredential) -> StoreResult<()>;
    /// Renames one of `user`'s phones; `false` if there is no such phone.
    async fn rename_phone(&mut self, user: UserId, id: Uuid, name: &str) -> StoreResult<bool>;
    /// Removes one of `user`'s phones unless fewer than `keep` would remain
    /// (under the user's row lock, as for passkeys).
    async fn remove_phone(&mut self, user: UserId, id: Uuid, keep: u32) -> StoreResult<Removal>;
    /// Records a sign-in with the phone.
    async fn touch_phone(&mut self, id: Uuid, at: Timestamp) -> StoreResult<()>;
}

#[async_trait::async_trait]
pub trait AdminTokenWrites: Send {
    /// Fails with `Conflict("admin_token_name_taken")` on a duplicate name.
    async fn insert_admin_token(&mut self, token: &AdminToken) -> StoreResult<()>;
    async fn revoke_admin_token(&mut self, name: &str, now: Timestamp) -> StoreResult<bool>;
}

/// Help-desk recovery tickets ([`crate::recovery_ticket`]).
#[async_trait::async_trait]
pub trait RecoveryTicketWrites: Send {
    async fn insert_ticket(&mut self, ticket: &crate::recovery_ticket::RecoveryTicket) -> StoreResult<()>;
    /// Records that `actor` is involved in `ticket` (its creator, or an
    /// approver): one row per (ticket, actor). Returns the number of people
    /// involved after it, or `None` when `actor` already was.
    async fn add_ticket_actor(&mut self, ticket: Uuid, actor: Uuid, at: Timestamp) -> StoreResult<Option<u32>>;
    /// Flips a pending, unexpired ticket to approved. False if it was not
    /// pending or has expired (another approval got there first).
    async fn approve_ticket(&mut self, ticket: Uuid, now: Timestamp) -> StoreResult<bool>;
    /// Restricts a credential bound through recovery until `until`
    /// (cooling-off, docs/recovery.md): while it lasts, the credential
    /// proves at most aal1.
    async fn start_cooling_off(&mut self, credential: Uuid, user: UserId, until: Timestamp) -> StoreResult<()>;
}

/// The browsers an account has signed in from (their device cookies'
/// hashes), to tell a new device from a known one.
#[async_trait::async_trait]
pub trait DeviceWrites: Send {
    /// Records that `user` signed in from `device` now. Returns whether the
    /// device is new to the account, and how many other devices it knew.
    async fn remember_device(&mut self, user: UserId, device: &TokenHash, now: Timestamp) -> StoreResult<(bool, u64)>;
}

#[async_trait::async_trait]
pub trait OutboxWrites: Send {
    /// Queues a message; it becomes visible to the workers at commit. With
    /// a `lease`, it is queued already held by that lease, as a claim
    /// would leave it (`attempts` is the caller's to set): the courier hands
    /// it to its own worker after the commit, and no other worker takes it
    /// while the lease lasts.
    async fn enqueue_message(&mut self, message: &Message, lease: Option<Lease>) -> StoreResult<()>;
    /// Marks a message whose content expired as dead (bodies erased), only
    /// while `lease_token` holds it, so the record of it commits with it.
    /// False (and nothing written) if the lease was lost.
    async fn expire_message(&mut self, id: Uuid, lease_token: Uuid, now: Timestamp) -> StoreResult<bool>;
    /// `signet outbox retry`: every pending message not yet due becomes due
    /// at `now`. Returns how many were moved.
    async fn make_pending_messages_due(&mut self, now: Timestamp) -> StoreResult<u64>;
    /// Leases up to `limit` due pending messages to `lease` (its token and
    /// end) so no other worker (on this or another node) takes them
    /// meanwhile; the lease holds from the commit on. Each returned message
    /// has its `attempts` already incremented. A worker asks only for what
    /// it is about to send. Expired messages are returned too: the worker
    /// records them as dead.
    async fn claim_due_messages(&mut self, now: Timestamp, lease: Lease, limit: u32) -> StoreResult<Vec<Message>>;
    /// Marks delivered, only while `lease_token` holds the message; with
    /// `scrub`, the bodies are erased. False (and nothing written) if the
    /// lease was lost.
    async fn mark_message_sent(
        &mut self,
        id: Uuid,
        lease_token: Uuid,
        now: Timestamp,
        scrub: bool,
    ) -> StoreResult<bool>;
    /// Records a failed attempt, only while `lease_token` holds the
    /// message: retry at `next_attempt_at`, or mark dead. False (and
    /// nothing written) if the lease was lost.
    async fn mark_message_failed(
        &mut self,
        id: Uuid,
        lease_token: Uuid,
        error: &str,
        next_attempt_at: Timestamp,
        dead: bool,
    ) -> StoreResult<bool>;
}

#[async_trait::async_trait]
pub trait ThrottleWrites: Send {
    /// Counts one hit on `key`, as [`crate::store::ThrottleStore::hit`],
    /// for a count that must stand or fall with the unit (a fallback use
    /// counts only if the login it belongs to commits).
    async fn hit(&mut self, key: &str, now: Timestamp, window: std::time::Duration) -> StoreResult<WindowCount>;
    /// [`crate::store::ThrottleStore::record_failure`] in the unit.
    async fn record_failure(&mut self, key: &str, now: Timestamp) -> StoreResult<Failures>;
    /// [`crate::store::ThrottleStore::failures`], read in the unit (a
    /// reservation's read and its compare-and-swap, without leaving it).
    async fn failures(&mut self, key: &str) -> StoreResult<Option<Failures>>;
    /// [`crate::store::ThrottleStore::swap_failures`] in the unit.
    async fn swap_failures(&mut self, key: &str, expected: Option<Failures>, new: Failures) -> StoreResult<bool>;
    /// [`crate::store::ThrottleStore::clear_failures`] in the unit.
    async fn clear_failures(&mut self, key: &str) -> StoreResult<()>;
    /// Ends the run of failures `run` (deletes it, answering what it was)
    /// and then counts one attempt on `attempt` (as
    /// [`ThrottleWrites::record_failure`]), in that order: the order in
    /// which every code path takes an account's run and a flow's count, so
    /// that two units of one flow cannot deadlock on PostgreSQL. A right
    /// code's admission (ADR 0033): the caller decides on the run as it
    /// was and, if that refuses, fails the unit, which puts the run back.
    /// On SQLite both statements are one call on the writer.
    async fn end_run_and_count(
        &mut self,
        run: &str,
        attempt: &str,
        now: Timestamp,
    ) -> StoreResult<(Option<Failures>, Failures)>;
}

#[async_trait::async_trait]
pub trait OidcClientWrites: Send {
    /// Registers a client; a `client_id` taken already is
    /// `Conflict("oidc_client_id_taken")`.
    async fn insert_oidc_client(&mut self, client: &crate::oidc_client::OidcClient) -> StoreResult<()>;
    /// Writes a client declared in configuration: inserts it, or replaces
    /// the name, secret hash and settings of the client with its
    /// `client_id` (keeping its `id` and `created_at`). A `client_id`
    /// registered by other means is `Conflict("oidc_client_id_taken")`
    /// rather than silently taken over.
    async fn put_config_oidc_client(&mut self, client: &crate::oidc_client::OidcClient) -> StoreResult<()>;
    /// Deletes the client with this `client_id`; `false` if there is none.
    async fn delete_oidc_client(&mut self, client_id: &str) -> StoreResult<bool>;
    /// Replaces the name and settings of a client that did not come from
    /// the configuration file (`updated_at` too); `false` if there is no
    /// such client.
    async fn update_oidc_client(&mut self, client: &crate::oidc_client::OidcClient) -> StoreResult<bool>;
    /// Makes `new_hash` the secret of a confidential client that did not
    /// come from the configuration file, keeping the secret it replaces as
    /// the previous one until `previous_expires_at`; `false` if there is no
    /// such client.
    async fn rotate_oidc_client_secret(
        &mut self,
        client_id: &str,
        new_hash: &TokenHash,
        previous_expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Revokes every code and refresh token of a client (of one user of it
    /// when `user` is given), and with them the access tokens issued from
    /// them; returns how many were revoked.
    async fn revoke_oidc_client_grants(
        &mut self,
        client_id: &str,
        user: Option<UserId>,
        now: Timestamp,
    ) -> StoreResult<u64>;
    /// Records that `user` approved `consent.scopes` for the client, adding
    /// them to what was approved before.
    async fn put_oidc_consent(&mut self, user: UserId, consent: &crate::oidc_client::OidcConsent) -> StoreResult<()>;
    /// Forgets what `user` approved for the client; `false` if nothing.
    async fn delete_oidc_consent(&mut self, user: UserId, client_id: &str) -> StoreResult<bool>;
}

/// The OpenID Provider's signing keys, kept as sealed rows of
/// `server_secrets` so that `signet keys rotate-sealing` re-seals them with
/// every other server secret. A rotation writes its new key and its audit
/// record in one unit.
#[async_trait::async_trait]
pub trait OidcKeyWrites: Send {
    /// Stores a sealed signing key under `name` unless a row of that name
    /// exists; `false` if one did (another rotation won the race).
    async fn insert_signing_key(&mut self, name: &str, sealed: &[u8], now: Timestamp) -> StoreResult<bool>;
    /// Deletes the row `name` (a retired key); `false` if there is none.
    async fn delete_signing_key(&mut self, name: &str) -> StoreResult<bool>;
}

/// What redeeming an authorization code found (OpenID Connect Core
/// §3.1.3.2, RFC 6749 §4.1.2: single use).
#[derive(Clone, Debug)]
pub enum CodeRedemption {
    /// The code's id is taken, yet no row has it (cannot happen while code
    /// rows are kept; answered as an unknown code).
    Unknown,
    /// This call redeemed it: the one insert of its row that won.
    Redeemed {
        /// The user it was issued to, read by the same statement (the ID
        /// token's claims and the "still active" check need no second
        /// read); `None` if the account is gone.
        user: Option<crate::user::User>,
        /// Whether the session it was issued from is still live (read by
        /// the same statement). A grant from an ended session could never be
        /// told of that end (back-channel logout), so it is refused.
        session_live: bool,
        /// The scopes the user has approved for the code's client (its
        /// consent, read by the same statement), if any: a consent revoked
        /// after the code was issued takes the code with it.
        consented: Option<Vec<String>>,
        /// Whether the code's client is still registered (read by the same
        /// statement): a node that remembers a deleted client a moment
        /// longer grants it nothing from a code.
        client_live: bool,
    },
    /// It had been redeemed before: it is now revoked, and with it every
    /// token issued from it.
    Reused { id: Uuid, client_id: String },
}

/// Authorization requests waiting for a login, and authorization codes.
#[async_trait::async_trait]
pub trait OidcGrantWrites: Send {
    /// Stores an authorization request (its parameters as one JSON document)
    /// while the user signs in.
    async fn insert_oidc_request(
        &mut self,
        id: Uuid,
        client_id: &str,
        request: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()>;
    /// The stored request with this id, unless it has expired.
    async fn oidc_request(&mut self, id: Uuid, now: Timestamp) -> StoreResult<Option<String>>;
    /// Forgets a stored request (it was answered).
    async fn delete_oidc_request(&mut self, id: Uuid) -> StoreResult<()>;
    /// Deletes the stored request `id` as the one conditional write that
    /// answers it: `true` for exactly one of any number of concurrent
    /// callers, `false` if it was answered (or expired and purged) before.
    async fn take_oidc_request(&mut self, id: Uuid) -> StoreResult<bool>;
    /// Redeems a code: its row is inserted, already redeemed, by one
    /// statement that does nothing if a row has its id (or hash) already,
    /// so of any number of redemptions exactly one inserts it. The others
    /// revoke the row instead (a reuse). The winner comes back with the
    /// code's user, its session's standing and the user's consent for the
    /// client, read by the same statement.
    async fn redeem_oidc_code(&mut self, code: &NewCode<'_>, now: Timestamp) -> StoreResult<CodeRedemption>;
    /// Marks a code just redeemed and then refused as spent for nothing:
    /// revoked, and with no relying party to tell of its session's end.
    async fn burn_oidc_code(&mut self, id: Uuid, now: Timestamp) -> StoreResult<()>;
    /// Whether the tokens issued from code `id` still stand: `None` if there
    /// is no such code, `Some(false)` once it was revoked.
    async fn oidc_code_standing(&mut self, id: Uuid) -> StoreResult<Option<bool>>;
    /// Stores a refresh token of `family` (the id of the code it descends
    /// from), by its hash only.
    async fn insert_oidc_refresh(&mut self, token: &NewRefreshToken<'_>) -> StoreResult<()>;
    /// Rotates a refresh token out with one conditional write: of
    /// concurrent uses exactly one gets `Rotated`, with whether its grant
    /// still stands and its user is active, read by the same statement.
    async fn rotate_oidc_refresh(&mut self, hash: &TokenHash, now: Timestamp) -> StoreResult<RefreshRotation>;
    /// Rotates out a refresh token read as committed
    /// ([`crate::store::OidcClientStore::oidc_refresh_token`]) and found
    /// usable, with one checked write (ADR 0035): refused
    /// [`crate::store::Refusal::RefreshRaced`] unless the token was still
    /// `client_id`'s, unexpired at `now`, not rotated out nor revoked, its
    /// family's code unrevoked and its user active. Of concurrent uses at
    /// most one is not refused. On SQLite the write waits for the unit's
    /// next call, so the refusal may come at the commit.
    async fn rotate_oidc_refresh_checked(
        &mut self,
        hash: &TokenHash,
        client_id: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Revokes a family: its code (so the access tokens issued from it) and
    /// every refresh token in it. Returns the refresh tokens revoked.
    async fn revoke_oidc_family(&mut self, family: Uuid, now: Timestamp) -> StoreResult<u64>;
    /// Revokes every code and refresh token of a user (signed out
    /// everywhere). Returns the refresh tokens revoked.
    async fn revoke_oidc_user(&mut self, user: UserId, now: Timestamp) -> StoreResult<u64>;
    /// The family and client of the refresh token with this hash, rotated
    /// out or not, without changing it (revocation, RFC 7009).
    async fn oidc_refresh_owner(&mut self, hash: &TokenHash) -> StoreResult<Option<(Uuid, String)>>;
    /// Claims, with one conditional write, the redeemed codes of `user`
    /// (riding on `session` only, when given) whose relying parties have not
    /// yet been told of the end of their session, and returns each distinct
    /// `(client_id, sid)` pair once, `sid` being the session named in the
    /// code's ID token. A code is claimed once, so a
    /// session's end is announced to a client at most once.
    async fn claim_oidc_logouts(
        &mut self,
        user: UserId,
        session: Option<Uuid>,
        now: Timestamp,
    ) -> StoreResult<Vec<(String, Uuid)>>;
    /// The session `from` of `user` was replaced by `to` (a step-up, a new
    /// sign-in): the codes riding on it now ride on `to`, keeping their
    /// `sid`. Returns how many moved.
    async fn move_oidc_session(&mut self, user: UserId, from: Uuid, to: Uuid) -> StoreResult<u64>;
    /// The client with this `client_id`, read inside the unit of work (a
    /// unit that ends sessions reads who to notify without a second
    /// connection, which a single-connection store does not have).
    async fn oidc_client_in_tx(&mut self, client_id: &str) -> StoreResult<Option<crate::oidc_client::OidcClient>>;
}

/// An authorization code being redeemed, to store (by its hash only) as
/// the anchor of what is issued from it.
#[derive(Clone, Debug)]
pub struct NewCode<'a> {
    pub hash: &'a TokenHash,
    pub id: Uuid,
    pub client_id: &'a str,
    pub user_id: Uuid,
    /// The session it was issued for: the ID token's `sid`.
    pub session_id: Uuid,
    /// What the code stands for, as one JSON document.
    pub grant: &'a str,
    pub expires_at: Timestamp,
}

/// A refresh token to store.
#[derive(Clone, Debug)]
pub struct NewRefreshToken<'a> {
    pub hash: &'a TokenHash,
    pub id: Uuid,
    pub family: Uuid,
    pub client_id: &'a str,
    pub user_id: Uuid,
    pub grant: &'a str,
    pub expires_at: Timestamp,
}

/// What using a refresh token found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshRotation {
    /// No refresh token has this hash.
    Unknown,
    /// This call rotated it out (`revoked` if its family was revoked).
    /// `grant_standing` and `user_active` are read by the same statement:
    /// whether the family's code is still unrevoked, and whether its user
    /// still exists and is active.
    Rotated {
        family: Uuid,
        client_id: String,
        grant: String,
        expires_at: Timestamp,
        revoked: bool,
        grant_standing: bool,
        user_active: bool,
    },
    /// It had been rotated out before: a replay.
    Reused { family: Uuid, client_id: String },
}

/// A refresh token as committed, read outside any unit of work
/// ([`crate::store::OidcClientStore::oidc_refresh_token`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRefresh {
    pub family: Uuid,
    pub client_id: String,
    pub grant: String,
    pub expires_at: Timestamp,
    pub revoked: bool,
    pub rotated: bool,
    /// The family's code is unrevoked.
    pub grant_standing: bool,
    /// Its user exists and is active.
    pub user_active: bool,
}

#[async_trait::async_trait]
pub trait AuditAppend: Send {
    /// Appends one record to the unit. It is chained to the head, under a
    /// lock on it, when the unit commits, after every other write of the
    /// unit (so the head is always the last lock a unit takes, and is held
    /// for the shortest time); it commits with the unit's change or not at
    /// all, and a failure to chain it fails the commit.
    async fn append_audit(&mut self, event: &AuditEvent, id: Uuid, at: Timestamp) -> StoreResult<()>;
}

/// The unit of work: every aggregate's writes, the audit log, and the end.
#[async_trait::async_trait]
pub trait Transaction:
    UserWrites
    + SessionWrites
    + FlowWrites
    + SecretWrites
    + CredentialWrites
    + PhoneWrites
    + OtpCredentialWrites
    + AdminTokenWrites
    + RecoveryTicketWrites
    + DeviceWrites
    + OutboxWrites
    + ThrottleWrites
    + OidcClientWrites
    + OidcKeyWrites
    + OidcGrantWrites
    + AuditAppend
    + Send
{
    /// Makes everything durable (on SQLite, `synchronous=FULL`: it survives
    /// power loss) or fails and keeps nothing. Only after `Ok` may a caller
    /// acknowledge the change.
    async fn commit(self: Box<Self>) -> StoreResult<()>;
    /// Discards everything written so far. Dropping the handle does the
    /// same, later; this returns the connection at once.
    async fn rollback(self: Box<Self>) -> StoreResult<()>;
    /// Whether this unit queued a message in the outbox, so that the
    /// caller wakes the courier after the commit only when there is
    /// something to send (a wake-up costs the courier a claim on the
    /// writer). An implementation that cannot tell says `true`.
    fn queued_messages(&self) -> bool {
        true
    }
}

/// A transaction handle.
pub type Tx = Box<dyn Transaction>;

/// Opens units of work.
#[async_trait::async_trait]
pub trait UnitOfWork: Send + Sync {
    async fn begin(&self) -> StoreResult<Tx>;
}
