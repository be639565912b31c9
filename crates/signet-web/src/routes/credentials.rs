//! `/api/v1/credentials`: the caller's own credentials (passkeys today).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use signet_app::passkeys::{self, CredentialView};
use signet_core::ErrorCode;

use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth, Client, Enroller};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeginBody {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishBody {
    ceremony_id: String,
    credential: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameBody {
    name: String,
}

/// `GET /api/v1/credentials`
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    let all = passkeys::list(&state.app, &auth.current.user).await?;
    let rows: Vec<_> = all.iter().map(CredentialView::new).collect();
    Ok(Json(json!({ "credentials": rows })))
}

/// `POST /api/v1/credentials/passkey/begin`
pub async fn begin(
    State(state): State<AppState>,
    auth: Enroller,
    ApiJson(body): ApiJson<BeginBody>,
) -> ApiResult<Json<Value>> {
    let begun = passkeys::begin(&state.app, &auth.current, body.name.as_deref()).await?;
    Ok(Json(json!(begun)))
}

/// `POST /api/v1/credentials/passkey/finish`
pub async fn finish(
    State(state): State<AppState>,
    auth: Enroller,
    Client(origin): Client,
    ApiJson(body): ApiJson<FinishBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let passkey = passkeys::finish(&state.app, &auth.current, &origin, &body.ceremony_id, body.credential).await?;
    Ok((StatusCode::CREATED, Json(json!(CredentialView::new(&passkey)))))
}

/// `PATCH /api/v1/credentials/{id}` (extension): rename.
pub async fn rename(
    State(state): State<AppState>,
    auth: Auth,
    Client(origin): Client,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RenameBody>,
) -> ApiResult<Json<Value>> {
    let id = super::parse_id(&id, ErrorCode::CredentialNotFound)?;
    let passkey = passkeys::rename(&state.app, &auth.current, &origin, id, &body.name).await?;
    Ok(Json(json!(CredentialView::new(&passkey))))
}

/// `DELETE /api/v1/credentials/{id}`
pub async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    Client(origin): Client,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = super::parse_id(&id, ErrorCode::CredentialNotFound)?;
    passkeys::remove(&state.app, &auth.current, &origin, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
