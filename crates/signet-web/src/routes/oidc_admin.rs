//! The admin API for OIDC clients (`/api/v1/admin/oidc/clients`). Writes
//! are audited by the use cases; reads are audited here, like every admin
//! read.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use signet_app::oidc::clients::{self, ClientChanges, NewClient};
use signet_core::audit::{AuditEvent, EventType, Outcome};
use signet_core::oidc_client::{ClientAssurance, ClientSettings, ClientSource, GrantType};

use crate::error::ApiResult;
use crate::extract::{Admin, ApiJson, Client};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    name: String,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    scopes: Option<Vec<String>>,
    grant_types: Option<Vec<GrantType>>,
    #[serde(default)]
    first_party: bool,
    id_token_ttl_secs: Option<u64>,
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    backchannel_logout_session_required: bool,
    #[serde(default)]
    assurance: ClientAssurance,
    id_token_signed_response_alg: Option<String>,
}

async fn audit_read(
    state: &AppState,
    actor: &signet_app::Actor,
    origin: &signet_app::Origin,
    what: &str,
) -> ApiResult<()> {
    let ev = AuditEvent::new(EventType::AdminAccess, actor.clone(), Outcome::Success)
        .from_origin(origin)
        .details(json!({ "read": what }));
    state.app.audit().record(ev).await?;
    Ok(())
}

/// `POST /api/v1/admin/oidc/clients`: 201 `{"client_id", "client_secret"?, "client"}`.
pub async fn create(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    ApiJson(body): ApiJson<CreateClient>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let defaults = ClientSettings::default();
    let settings = ClientSettings {
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        scopes: body.scopes.unwrap_or(defaults.scopes),
        grant_types: body.grant_types.unwrap_or(defaults.grant_types),
        first_party: body.first_party,
        id_token_ttl_secs: body.id_token_ttl_secs.unwrap_or(defaults.id_token_ttl_secs),
        access_token_ttl_secs: body.access_token_ttl_secs.unwrap_or(defaults.access_token_ttl_secs),
        refresh_token_ttl_secs: body.refresh_token_ttl_secs.unwrap_or(defaults.refresh_token_ttl_secs),
        backchannel_logout_uri: body.backchannel_logout_uri,
        backchannel_logout_session_required: body.backchannel_logout_session_required,
        assurance: body.assurance,
        id_token_signed_response_alg: body.id_token_signed_response_alg,
    };
    let new = NewClient {
        name: body.name,
        public: body.public,
        settings,
    };
    let (client, secret) = clients::register(&state.app, &actor, &origin, new, ClientSource::Admin).await?;
    let mut out = json!({ "client_id": client.client_id, "client": clients::view(&client) });
    if let (Some(secret), Some(obj)) = (&secret, out.as_object_mut()) {
        obj.insert("client_secret".into(), secret.expose_secret().into());
    }
    Ok((StatusCode::CREATED, Json(out)))
}

/// `GET /api/v1/admin/oidc/clients`
pub async fn list(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
) -> ApiResult<Json<Value>> {
    audit_read(&state, &actor, &origin, "oidc_clients").await?;
    let all = state
        .app
        .store
        .list_oidc_clients()
        .await
        .map_err(signet_core::Error::from)?;
    Ok(Json(
        json!({ "clients": all.iter().map(clients::view).collect::<Vec<_>>() }),
    ))
}

/// `GET /api/v1/admin/oidc/clients/{client_id}`
pub async fn show(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    Path(client_id): Path<String>,
) -> ApiResult<Json<Value>> {
    audit_read(&state, &actor, &origin, "oidc_client").await?;
    let client = clients::get(&state.app, &client_id).await?;
    Ok(Json(clients::view(&client)))
}

/// `DELETE /api/v1/admin/oidc/clients/{client_id}`: 204.
pub async fn delete(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    Path(client_id): Path<String>,
) -> ApiResult<StatusCode> {
    clients::delete(&state.app, &actor, &origin, &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateClient {
    name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    grant_types: Option<Vec<GrantType>>,
    first_party: Option<bool>,
    id_token_ttl_secs: Option<u64>,
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    /// `null` removes it; absent keeps it.
    #[serde(default, deserialize_with = "present")]
    backchannel_logout_uri: Option<Option<String>>,
    assurance: Option<ClientAssurance>,
    id_token_signed_response_alg: Option<String>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent member (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/admin/oidc/clients/{client_id}`: the members sent replace
/// the client's; 200 CLIENT.
pub async fn update(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    Path(client_id): Path<String>,
    ApiJson(body): ApiJson<UpdateClient>,
) -> ApiResult<Json<Value>> {
    let changes = ClientChanges {
        name: body.name,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        scopes: body.scopes,
        grant_types: body.grant_types,
        first_party: body.first_party,
        id_token_ttl_secs: body.id_token_ttl_secs,
        access_token_ttl_secs: body.access_token_ttl_secs,
        refresh_token_ttl_secs: body.refresh_token_ttl_secs,
        backchannel_logout_uri: body.backchannel_logout_uri,
        assurance: body.assurance,
        id_token_signed_response_alg: body.id_token_signed_response_alg,
    };
    let client = clients::update(&state.app, &actor, &origin, &client_id, changes).await?;
    Ok(Json(clients::view(&client)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    grace_secs: Option<u64>,
}

/// `POST /api/v1/admin/oidc/clients/{client_id}/secret` (body optional):
/// 201 `{"client_id", "client_secret", "previous_secret_expires_at"}`.
pub async fn rotate_secret(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Client(origin): Client,
    Path(client_id): Path<String>,
    body: Option<ApiJson<RotateSecret>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let grace = body
        .and_then(|ApiJson(b)| b.grace_secs)
        .map(std::time::Duration::from_secs);
    let (client, secret) = clients::rotate_secret(&state.app, &actor, &origin, &client_id, grace).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "client_id": client.client_id,
            "client_secret": secret.expose_secret(),
            "previous_secret_expires_at": client.previous_secret.as_ref().map(|p| p.expires_at.to_rfc3339()),
        })),
    ))
}
