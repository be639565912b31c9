//! `/api/v1/credentials`: the caller's own credentials, of every kind
//! (through `signet_app::credentials`), and passkey enrollment.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use signet_app::methods::passkey::info;
use signet_app::{credentials, passkeys};
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
    let all = credentials::list(&state.app, &auth.current.user).await?;
    Ok(Json(json!({ "credentials": all })))
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
    Ok((StatusCode::CREATED, Json(json!(info(&passkey)))))
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
    let renamed = credentials::rename(&state.app, &auth.current, &origin, id, &body.name).await?;
    Ok(Json(json!(renamed)))
}

/// `DELETE /api/v1/credentials/{id}`
pub async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    Client(origin): Client,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = super::parse_id(&id, ErrorCode::CredentialNotFound)?;
    credentials::remove(&state.app, &auth.current, &origin, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
