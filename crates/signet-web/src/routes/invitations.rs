use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use signet_app::sessions::{Issued, SessionView};
use signet_core::session::SessionMode;
use signet_core::user::User;

use crate::error::ApiResult;
use crate::extract::{ApiJson, Client, MaybeAuth};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    pub token: String,
    #[serde(default)]
    pub mode: SessionMode,
}

/// `POST /api/v1/invitations/redeem`
pub async fn redeem(
    State(state): State<AppState>,
    MaybeAuth(prior): MaybeAuth,
    Client(origin): Client,
    ApiJson(body): ApiJson<RedeemBody>,
) -> ApiResult<Response> {
    let replaces = prior.as_ref().map(|a| a.current.session.id);
    let issued = signet_app::invitations::redeem(&state.app, &body.token, body.mode, &origin, replaces).await?;
    redeemed(&state, &issued).await
}

/// The answer to a redeemed link (an invitation, a help-desk recovery
/// link): the new session, as [`session_response`] gives it.
pub async fn redeemed(state: &AppState, issued: &Issued) -> ApiResult<Response> {
    let user = signet_app::users::get(&state.app, issued.session.user_id).await?;
    Ok(session_response(state, issued, &user, json!({})))
}

/// The 200 answer that hands out a new session: the token in the body in
/// api mode, an HttpOnly cookie in browser mode. `extra` fields are merged in.
pub fn session_response(state: &AppState, issued: &Issued, user: &User, mut extra: serde_json::Value) -> Response {
    extra["session"] = json!(SessionView::new(&issued.session, user));
    match issued.session.mode {
        SessionMode::Api => {
            extra["session_token"] = json!(issued.token.expose_secret());
            Json(extra).into_response()
        }
        SessionMode::Browser => {
            let mut resp = Json(extra).into_response();
            if let Some(v) = state.cookies.for_session(issued) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
    }
}
