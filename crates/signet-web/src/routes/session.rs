use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use signet_app::sessions::{SessionSummary, SessionView};
use signet_core::session::SessionId;
use signet_core::ErrorCode;

use crate::error::ApiResult;
use crate::extract::{AnySession, Auth, Client, Presented};
use crate::AppState;

/// `GET /api/v1/session`
pub async fn current(auth: AnySession) -> Json<serde_json::Value> {
    Json(json!(SessionView::new(&auth.current.session, &auth.current.user)))
}

/// `DELETE /api/v1/session`: logout.
pub async fn logout(State(state): State<AppState>, auth: AnySession, Client(origin): Client) -> ApiResult<Response> {
    signet_app::sessions::end(&state.app, &auth.current, &origin).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if auth.presented == Presented::Cookie {
        if let Some(v) = state.cookies.set(state.cookies.session, "", None) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

/// `GET /api/v1/sessions`: the caller's own live sessions.
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<serde_json::Value>> {
    let sessions = signet_app::sessions::list_own(&state.app, auth.current.user.id).await?;
    let current = auth.current.session.id;
    let rows: Vec<_> = sessions.iter().map(|s| SessionSummary::new(s, current)).collect();
    Ok(Json(json!({ "sessions": rows })))
}

/// `DELETE /api/v1/sessions/{id}`: end one of the caller's own sessions.
pub async fn end_one(
    State(state): State<AppState>,
    auth: Auth,
    Client(origin): Client,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = SessionId(super::parse_id(&id, ErrorCode::SessionNotFound)?);
    signet_app::sessions::end_own(&state.app, &auth.current, &origin, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
