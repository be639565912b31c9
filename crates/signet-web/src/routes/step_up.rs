//! Step-up endpoints. Starting one has the same shape as a login; its steps
//! are served by the login step handlers (also mounted under
//! `/api/v1/step-up/{flow_id}/...`), which check that the flow belongs to the
//! presented session.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, Auth, Client};
use crate::routes::login::{browser_binding, started_response};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    action: Option<String>,
    /// An OIDC authorization request's resume path: step up to what it
    /// demands and continue there (docs/oidc.md).
    return_to: Option<String>,
}

/// `POST /api/v1/step-up {"action"?}`
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    auth: Auth,
    Client(origin): Client,
    ApiJson(body): ApiJson<StartBody>,
) -> ApiResult<Response> {
    let (bind_hash, new_cookie) = browser_binding(&state, &headers, auth.current.session.mode);
    let started = match body.return_to.as_deref() {
        Some(path) => {
            let Some(request) = signet_app::oidc::authorize::resume_id(path) else {
                return Err(signet_core::Error::invalid(
                    signet_core::ErrorCode::InvalidRequest,
                    "return_to must be an authorization request's resume path",
                )
                .into());
            };
            if body.action.is_some() {
                return Err(signet_core::Error::invalid(
                    signet_core::ErrorCode::InvalidRequest,
                    "a step-up for an app's sign-in names no action",
                )
                .into());
            }
            signet_app::step_up::start_for_authorization(&state.app, &auth.current, request, bind_hash, &origin).await?
        }
        None => {
            signet_app::step_up::start(&state.app, &auth.current, body.action.as_deref(), bind_hash, &origin).await?
        }
    };
    Ok(started_response(&state, started, new_cookie))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    action: String,
}

/// `GET /api/v1/step-up?action=NAME`: 200 when the session may perform the
/// action now, otherwise 403 `step_up_required` (so an app can ask before
/// showing a sensitive form).
pub async fn check(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<CheckQuery>,
) -> ApiResult<Json<Value>> {
    signet_app::step_up::require(&state.app, &auth.current, &q.action)?;
    let s = &auth.current.session;
    Ok(Json(json!({
        "action": q.action,
        "satisfied": true,
        "aal": s.aal,
        "auth_time": s.auth_time.to_rfc3339(),
    })))
}
