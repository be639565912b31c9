//! Row shapes shared by both backends, and their conversion to domain types.
//! `sqlx::FromRow` derives generic implementations, so each struct decodes
//! from a SQLite row and a PostgreSQL row alike.

use std::time::Duration;

use signet_core::admin_token::AdminToken;
use signet_core::audit::AuditRecord;
use signet_core::clock::Timestamp;
use signet_core::flow::{Flow, FlowDecodeError, FlowId, FlowKind, FlowState};
use signet_core::outbox::{Channel, DeliveryStatus, Message};
use signet_core::secret::TokenHash;
use signet_core::session::{Aal, Session, SessionId, SessionMode, SessionScope};
use signet_core::store::{OneTimeSecret, SecretPurpose, StoreError, StoreResult};
use signet_core::user::{Email, Phone, User, UserId, UserStatus};
use uuid::Uuid;

fn corrupt(what: &str, value: impl std::fmt::Debug) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value:?}"))
}

pub(crate) fn uuid(s: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| corrupt("uuid", s))
}

pub(crate) fn hash(bytes: &[u8]) -> StoreResult<TokenHash> {
    TokenHash::from_bytes(bytes).ok_or_else(|| corrupt("token hash length", bytes.len()))
}

fn hash32(bytes: &[u8]) -> StoreResult<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).map_err(|_| corrupt("hash length", bytes.len()))
}

fn ms(t: i64) -> Timestamp {
    Timestamp::from_millis(t)
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) phone: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) roles: String,
    pub(crate) status: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

/// A user read beside another row (`user_email`, ... `user_updated_at`,
/// each NULL when the account is gone), by a join or by
/// `oidc_grants::user_of!`.
#[derive(sqlx::FromRow)]
pub(crate) struct OwnerColumns {
    user_email: Option<String>,
    user_phone: Option<String>,
    user_name: Option<String>,
    user_roles: Option<String>,
    user_status: Option<String>,
    user_created_at: Option<i64>,
    user_updated_at: Option<i64>,
}

impl OwnerColumns {
    /// The user `id` these columns describe, or `None` if it is gone.
    pub(crate) fn into_user(self, id: String) -> StoreResult<Option<User>> {
        match (
            self.user_email,
            self.user_roles,
            self.user_status,
            self.user_created_at,
            self.user_updated_at,
        ) {
            (Some(email), Some(roles), Some(status), Some(created_at), Some(updated_at)) => {
                Ok(Some(User::try_from(UserRow {
                    id,
                    email,
                    phone: self.user_phone,
                    name: self.user_name,
                    roles,
                    status,
                    created_at,
                    updated_at,
                })?))
            }
            _ => Ok(None),
        }
    }
}

/// The owner's columns of a join with `users` aliased `u` (see
/// [`OwnerColumns`]).
macro_rules! owner_columns {
    () => {
        "u.email AS user_email, u.phone AS user_phone, u.name AS user_name, u.roles AS user_roles, \
         u.status AS user_status, u.created_at AS user_created_at, u.updated_at AS user_updated_at"
    };
}
pub(crate) use owner_columns;

macro_rules! user_columns {
    () => {
        "id, email, phone, name, roles, status, created_at, updated_at"
    };
}
pub(crate) use user_columns;

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> StoreResult<User> {
        Ok(User {
            id: UserId(uuid(&r.id)?),
            email: Email::from_trusted(r.email),
            phone: r.phone.map(Phone::from_trusted),
            name: r.name,
            roles: serde_json::from_str(&r.roles).map_err(|_| corrupt("roles", &r.roles))?,
            status: UserStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?,
            created_at: ms(r.created_at),
            updated_at: ms(r.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: String,
    pub(crate) user_id: String,
    token_hash: Vec<u8>,
    aal: String,
    amr: String,
    phishing_resistant: bool,
    auth_time: i64,
    created_at: i64,
    last_seen_at: i64,
    idle_timeout_ms: i64,
    absolute_expires_at: i64,
    tier: String,
    scope: String,
    mode: String,
    ip: Option<String>,
    device: String,
    credential_id: Option<String>,
    step_up_action: Option<String>,
}

/// The columns of `sessions`, in [`SessionRow`]'s order; with a prefix
/// (`"s."`) for a join.
macro_rules! session_columns {
    () => {
        $crate::rows::session_columns!("")
    };
    ($p:literal) => {
        concat!(
            $p,
            "id, ",
            $p,
            "user_id, ",
            $p,
            "token_hash, ",
            $p,
            "aal, ",
            $p,
            "amr, ",
            $p,
            "phishing_resistant, ",
            $p,
            "auth_time, ",
            $p,
            "created_at, ",
            $p,
            "last_seen_at, ",
            $p,
            "idle_timeout_ms, ",
            $p,
            "absolute_expires_at, ",
            $p,
            "tier, ",
            $p,
            "scope, ",
            $p,
            "mode, ",
            $p,
            "ip, ",
            $p,
            "device, ",
            $p,
            "credential_id, ",
            $p,
            "step_up_action"
        )
    };
}
pub(crate) use session_columns;

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> StoreResult<Session> {
        Ok(Session {
            id: SessionId(uuid(&r.id)?),
            user_id: UserId(uuid(&r.user_id)?),
            token_hash: hash(&r.token_hash)?,
            aal: Aal::parse(&r.aal).ok_or_else(|| corrupt("aal", &r.aal))?,
            amr: serde_json::from_str(&r.amr).map_err(|_| corrupt("amr", &r.amr))?,
            phishing_resistant: r.phishing_resistant,
            auth_time: ms(r.auth_time),
            created_at: ms(r.created_at),
            last_seen_at: ms(r.last_seen_at),
            idle_timeout: Duration::from_millis(u64::try_from(r.idle_timeout_ms).unwrap_or(0)),
            absolute_expires_at: ms(r.absolute_expires_at),
            tier: r.tier,
            scope: SessionScope::parse(&r.scope).ok_or_else(|| corrupt("scope", &r.scope))?,
            mode: SessionMode::parse(&r.mode).ok_or_else(|| corrupt("mode", &r.mode))?,
            ip: r.ip,
            device: r.device,
            credential_id: r.credential_id.as_deref().map(uuid).transpose()?,
            step_up_action: r.step_up_action,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct FlowRow {
    id: String,
    kind: String,
    state: String,
    version: i64,
    binding: Option<Vec<u8>>,
    created_at: i64,
    expires_at: i64,
}

macro_rules! flow_columns {
    () => {
        "id, kind, state, version, binding, created_at, expires_at"
    };
}
pub(crate) use flow_columns;

impl TryFrom<FlowRow> for Flow {
    type Error = StoreError;
    fn try_from(r: FlowRow) -> StoreResult<Flow> {
        Ok(Flow {
            id: FlowId(uuid(&r.id)?),
            kind: FlowKind::parse(&r.kind).ok_or_else(|| corrupt("flow kind", &r.kind))?,
            state: FlowState::from_stored(&r.state, ms(r.created_at)).map_err(|e| match e {
                // Another node, or this one once upgraded, reads it: 503.
                FlowDecodeError::Newer(_) => StoreError::Unavailable(Box::new(e)),
                FlowDecodeError::Corrupt(msg) => corrupt("flow state", msg),
            })?,
            version: r.version,
            binding: r.binding.as_deref().map(hash).transpose()?,
            created_at: ms(r.created_at),
            expires_at: ms(r.expires_at),
            stored: true,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SecretRow {
    purpose: String,
    hash: Vec<u8>,
    user_id: String,
    flow_id: Option<String>,
    created_at: i64,
    expires_at: i64,
    consumed_at: Option<i64>,
    issued_by: String,
}

macro_rules! secret_columns {
    () => {
        "purpose, hash, user_id, flow_id, created_at, expires_at, consumed_at, issued_by"
    };
}
pub(crate) use secret_columns;

impl TryFrom<SecretRow> for OneTimeSecret {
    type Error = StoreError;
    fn try_from(r: SecretRow) -> StoreResult<OneTimeSecret> {
        Ok(OneTimeSecret {
            hash: hash(&r.hash)?,
            purpose: SecretPurpose::parse(&r.purpose).ok_or_else(|| corrupt("purpose", &r.purpose))?,
            user_id: UserId(uuid(&r.user_id)?),
            flow_id: r.flow_id.as_deref().map(uuid).transpose()?.map(FlowId),
            created_at: ms(r.created_at),
            expires_at: ms(r.expires_at),
            consumed_at: r.consumed_at.map(ms),
            issued_by: r.issued_by,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AdminTokenRow {
    id: String,
    name: String,
    token_hash: Vec<u8>,
    created_at: i64,
    revoked_at: Option<i64>,
    ceiling: Option<String>,
}

macro_rules! admin_token_columns {
    () => {
        "id, name, token_hash, created_at, revoked_at, ceiling"
    };
}
pub(crate) use admin_token_columns;

impl TryFrom<AdminTokenRow> for AdminToken {
    type Error = StoreError;
    fn try_from(r: AdminTokenRow) -> StoreResult<AdminToken> {
        Ok(AdminToken {
            id: uuid(&r.id)?,
            name: r.name,
            token_hash: hash(&r.token_hash)?,
            created_at: ms(r.created_at),
            revoked_at: r.revoked_at.map(ms),
            ceiling: r.ceiling,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    seq: i64,
    lane: i16,
    id: String,
    at: i64,
    #[sqlx(rename = "type")]
    event_type: String,
    actor: String,
    user_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    outcome: String,
    details: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

/// The columns an append writes (`$1`..`$12`); SQLite leaves `lane` to its
/// default, lane 1 (ADR 0036).
macro_rules! audit_columns {
    () => {
        "seq, id, at, type, actor, user_id, ip, user_agent, outcome, details, prev_hash, hash"
    };
}
pub(crate) use audit_columns;

/// The columns a read returns ([`AuditRow`]).
macro_rules! audit_read_columns {
    () => {
        "seq, lane, id, at, type, actor, user_id, ip, user_agent, outcome, details, prev_hash, hash"
    };
}
pub(crate) use audit_read_columns;

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> StoreResult<AuditRecord> {
        Ok(AuditRecord {
            seq: r.seq,
            lane: r.lane,
            id: uuid(&r.id)?,
            at: ms(r.at),
            event_type: r.event_type,
            actor: r.actor,
            user_id: r.user_id.as_deref().map(uuid).transpose()?,
            ip: r.ip,
            user_agent: r.user_agent,
            outcome: r.outcome,
            details: r.details,
            prev_hash: hash32(&r.prev_hash)?,
            hash: hash32(&r.hash)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    id: String,
    channel: String,
    recipient: String,
    subject: String,
    text_body: Option<String>,
    html_body: Option<String>,
    template: String,
    status: String,
    attempts: i32,
    created_at: i64,
    next_attempt_at: i64,
    sent_at: Option<i64>,
    last_error: Option<String>,
    expires_at: Option<i64>,
}

macro_rules! message_columns {
    () => {
        "id, channel, recipient, subject, text_body, html_body, template, status, \
     attempts, created_at, next_attempt_at, sent_at, last_error, expires_at"
    };
}
pub(crate) use message_columns;

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> StoreResult<Message> {
        Ok(Message {
            id: uuid(&r.id)?,
            channel: Channel::parse(&r.channel).ok_or_else(|| corrupt("channel", &r.channel))?,
            recipient: r.recipient,
            subject: r.subject,
            text_body: r.text_body,
            html_body: r.html_body,
            template: r.template,
            status: DeliveryStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?,
            attempts: r.attempts,
            created_at: ms(r.created_at),
            next_attempt_at: ms(r.next_attempt_at),
            sent_at: r.sent_at.map(ms),
            last_error: r.last_error,
            expires_at: r.expires_at.map(ms),
        })
    }
}

/// Converts a list of rows, failing on the first corrupt one.
pub(crate) fn convert_all<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> StoreResult<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}
