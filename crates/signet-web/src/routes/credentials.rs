//! `/api/v1/credentials`: the caller's own credentials, of every kind, and
//! binding new ones (`{method}/begin`, `{method}/finish`), all through
//! `signet_app::credentials`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use signet_app::{credentials, phone_enrollment};
use signet_core::method::StepInput;
use signet_core::ErrorCode;

use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth, Client, Enroller};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeginBody {
    name: Option<String>,
}

/// The ceremony and the answer to it: a WebAuthn `credential`, or a `code`
/// (as for a login step, exactly one).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishBody {
    ceremony_id: String,
    credential: Option<Value>,
    code: Option<Value>,
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

/// `POST /api/v1/credentials/{method}/begin` (`passkey/begin` in the contract)
pub async fn begin(
    State(state): State<AppState>,
    auth: Enroller,
    Path(method): Path<String>,
    ApiJson(body): ApiJson<BeginBody>,
) -> ApiResult<Json<Value>> {
    let begun = credentials::begin(&state.app, &auth.current, &method, body.name.as_deref()).await?;
    Ok(Json(Value::Object(begun)))
}

/// `POST /api/v1/credentials/{method}/finish`: 201 with the new credential.
pub async fn finish(
    State(state): State<AppState>,
    auth: Enroller,
    Client(origin): Client,
    Path(method): Path<String>,
    ApiJson(body): ApiJson<FinishBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input = match (body.credential, body.code) {
        (Some(c), None) => StepInput::Credential(c),
        (None, Some(Value::String(code))) => StepInput::Code(code),
        _ => {
            return Err(signet_core::Error::invalid(
                ErrorCode::InvalidRequest,
                "send the ceremony_id and exactly one of \"credential\" or \"code\" (a string)",
            )
            .into())
        }
    };
    let added = credentials::finish(&state.app, &auth.current, &origin, &method, &body.ceremony_id, input).await?;
    Ok((StatusCode::CREATED, Json(json!(added))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneBody {
    phone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyPhoneBody {
    code: Value,
}

/// `POST /api/v1/credentials/phone {"phone": "+E164"}`: 202, a code is
/// texted to the number (`signet_app::phone_enrollment`).
pub async fn add_phone(
    State(state): State<AppState>,
    auth: Enroller,
    Client(origin): Client,
    ApiJson(body): ApiJson<PhoneBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    phone_enrollment::begin(&state.app, &auth.current, &origin, &body.phone).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({}))))
}

/// `POST /api/v1/credentials/phone/verify {"code"}`: 201 with the phone.
pub async fn verify_phone(
    State(state): State<AppState>,
    auth: Enroller,
    Client(origin): Client,
    ApiJson(body): ApiJson<VerifyPhoneBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Value::String(code) = body.code else {
        return Err(
            signet_core::Error::invalid(ErrorCode::InvalidRequest, "send {\"code\": \"...\"} (a string)").into(),
        );
    };
    let added = phone_enrollment::verify(&state.app, &auth.current, &origin, code).await?;
    Ok((StatusCode::CREATED, Json(json!(added))))
}

/// `POST /api/v1/credentials/recovery-codes`: 201 `{"codes": [...]}`, ten
/// new recovery codes replacing any earlier set, shown this once.
pub async fn recovery_codes(
    State(state): State<AppState>,
    auth: Enroller,
    Client(origin): Client,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let codes = signet_app::methods::recovery_code::regenerate(&state.app, &auth.current, &origin).await?;
    Ok((StatusCode::CREATED, Json(json!({ "codes": codes }))))
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
