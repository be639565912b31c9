//! The admin API. Every call, reads included, is audited with the token's
//! name as the actor.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use signet_app::{Actor, Origin};
use signet_core::audit::{AuditEvent, AuditRecord, EventType, Outcome};
use signet_core::store::AuditQuery;
use signet_core::user::{NewUser, UserId, UserStatus};
use signet_core::ErrorCode;

use crate::error::ApiResult;
use crate::extract::{Admin, ApiJson, ApiQuery, Client};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    email: String,
    #[serde(default)]
    roles: Vec<String>,
    phone: Option<String>,
    name: Option<String>,
}

fn user_id(raw: &str) -> Result<UserId, signet_core::Error> {
    Ok(UserId(super::parse_id(raw, ErrorCode::UserNotFound)?))
}

/// Records a read by an admin (writes are audited by the use case itself).
async fn audit_read(
    state: &AppState,
    actor: &Actor,
    origin: &Origin,
    what: &str,
    user: Option<UserId>,
) -> ApiResult<()> {
    let mut ev = AuditEvent::new(EventType::AdminAccess, actor.clone(), Outcome::Success)
        .from_origin(origin)
        .details(json!({ "read": what }));
    if let Some(u) = user {
        ev = ev.user(u);
    }
    state.app.audit().record(ev).await?;
    Ok(())
}

/// `POST /api/v1/admin/users`
pub async fn create_user(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let new = NewUser::parse(&body.email, body.phone.as_deref(), body.name.as_deref(), &body.roles)?;
    let user = signet_app::users::create(&state.app, &actor, &origin, new).await?;
    Ok((StatusCode::CREATED, Json(json!(user))))
}

/// `GET /api/v1/admin/users/{id}`
pub async fn get_user(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = user_id(&id)?;
    let user = signet_app::users::get(&state.app, id).await?;
    audit_read(&state, &actor, &origin, "user", Some(id)).await?;
    Ok(Json(json!(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/admin/users?after=&limit=` (ordered by email)
pub async fn list_users(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let users = signet_app::users::list(&state.app, q.after.as_deref(), q.limit.unwrap_or(100)).await?;
    audit_read(&state, &actor, &origin, "user_list", None).await?;
    Ok(Json(json!({ "users": users })))
}

async fn set_status(
    state: AppState,
    actor: Actor,
    origin: Origin,
    id: String,
    status: UserStatus,
) -> ApiResult<Json<Value>> {
    let user = signet_app::users::set_status(&state.app, &actor, &origin, user_id(&id)?, status).await?;
    Ok(Json(json!(user)))
}

/// `POST /api/v1/admin/users/{id}/disable`: also ends all their sessions.
pub async fn disable_user(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_status(state, actor, origin, id, UserStatus::Disabled).await
}

/// `POST /api/v1/admin/users/{id}/enable`
pub async fn enable_user(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    set_status(state, actor, origin, id, UserStatus::Active).await
}

/// `POST /api/v1/admin/users/{id}/invitations`: sends the invitation. The
/// link goes to the user's mailbox only, never into this response.
pub async fn invite_user(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let issued = signet_app::invitations::invite(&state.app, &actor, &origin, user_id(&id)?).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "status": "queued", "expires_at": issued.expires_at.to_rfc3339(), "message_id": issued.message_id }),
        ),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    user_id: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    limit: Option<u32>,
    before: Option<i64>,
}

fn event_json(r: &AuditRecord) -> Value {
    json!({
        "id": r.id,
        "seq": r.seq,
        "at": r.at.to_rfc3339(),
        "type": r.event_type,
        "actor": r.actor,
        "user_id": r.user_id,
        "ip": r.ip,
        "user_agent": r.user_agent,
        "outcome": r.outcome,
        "details": serde_json::from_str::<Value>(&r.details).unwrap_or(Value::Null),
    })
}

/// `GET /api/v1/admin/audit?user_id=&type=&limit=&before=` (newest first;
/// `before` is a `seq` for paging).
pub async fn audit(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> ApiResult<Json<Value>> {
    let user = p.user_id.as_deref().filter(|s| !s.is_empty()).map(|s| {
        uuid::Uuid::parse_str(s)
            .map(UserId)
            .map_err(|_| signet_core::Error::invalid(ErrorCode::InvalidUserId, "user_id must be a UUID"))
    });
    let user = user.transpose()?;
    let event_type = p.event_type.filter(|s| !s.is_empty());
    if let Some(t) = &event_type {
        if EventType::parse(t).is_none() {
            return Err(signet_core::Error::invalid(ErrorCode::InvalidEventType, "unknown audit event type").into());
        }
    }
    let q = AuditQuery {
        user_id: user,
        event_type,
        before_seq: p.before,
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
    };
    let records = state.app.audit().query(&q).await?;
    audit_read(&state, &actor, &origin, "audit", user).await?;
    Ok(Json(
        json!({ "events": records.iter().map(event_json).collect::<Vec<_>>() }),
    ))
}

/// `POST /api/v1/admin/outbox/retry`: every queued message is due now.
/// Audited as `outbox.retried` by the use case.
pub async fn retry_outbox(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
) -> ApiResult<Json<Value>> {
    let rescheduled = signet_app::outbox::retry_now(&state.app, &actor, &origin).await?;
    Ok(Json(json!({ "rescheduled": rescheduled })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    kind: String,
    reference: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTicket {
    user_id: String,
    reason: String,
    evidence: Evidence,
}

/// `POST /api/v1/admin/recovery-tickets`: opens a help-desk recovery
/// ticket. The answer never carries a link or a secret.
pub async fn create_recovery_ticket(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    ApiJson(body): ApiJson<CreateTicket>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let new = signet_app::recovery_tickets::NewTicket {
        user_id: user_id(&body.user_id)?,
        reason: body.reason,
        evidence_kind: body.evidence.kind,
        evidence_reference: body.evidence.reference,
    };
    let ticket = signet_app::recovery_tickets::create(&state.app, &actor, &origin, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": ticket.id,
            "status": ticket.status.as_str(),
            "approvals_required": ticket.approvals_required,
            "expires_at": ticket.expires_at.to_rfc3339(),
        })),
    ))
}

/// `POST /api/v1/admin/recovery-tickets/{id}/approve`
pub async fn approve_recovery_ticket(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = super::parse_id(&id, ErrorCode::TicketNotFound)?;
    let status = signet_app::recovery_tickets::approve(&state.app, &actor, &origin, id).await?;
    Ok(Json(json!({ "status": status.as_str() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketParams {
    user_id: Option<String>,
}

/// `GET /api/v1/admin/recovery-tickets?user_id=`: tickets, newest first
/// (at most 200), with the admin tokens involved. Never a link.
pub async fn list_recovery_tickets(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiQuery(p): ApiQuery<TicketParams>,
) -> ApiResult<Json<Value>> {
    let user = match p.user_id.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            uuid::Uuid::parse_str(s)
                .map(UserId)
                .map_err(|_| signet_core::Error::invalid(ErrorCode::InvalidUserId, "user_id must be a UUID"))?,
        ),
        None => None,
    };
    let tickets = signet_app::recovery_tickets::list(&state.app, &actor, user).await?;
    let rows: Vec<Value> = tickets
        .iter()
        .map(|(t, people)| signet_app::recovery_tickets::view(t, people))
        .collect();
    Ok(Json(json!({ "tickets": rows })))
}
