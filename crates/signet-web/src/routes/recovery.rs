//! `POST /api/v1/recovery`: starting a self-service recovery. Its steps
//! (`/api/v1/recovery/{flow_id}/{method}/send` and `.../{method}`) are the
//! journey engine's, served by the same handlers as a login's. And
//! `POST /api/v1/recovery/redeem`: a help-desk recovery link
//! ([`signet_app::recovery_links`]).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use signet_core::session::SessionMode;

use crate::error::ApiResult;
use crate::extract::{ApiJson, Client, MaybeAuth};
use crate::routes::invitations::{redeemed, RedeemBody};
use crate::routes::login::{browser_binding, started_response};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    identifier: String,
    #[serde(default)]
    mode: SessionMode,
}

/// `POST /api/v1/recovery`
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(origin): Client,
    ApiJson(body): ApiJson<StartBody>,
) -> ApiResult<Response> {
    let (binding, new_cookie) = browser_binding(&state, &headers, body.mode);
    let started = signet_app::recovery::start(
        &state.app,
        signet_app::recovery::Start {
            identifier: body.identifier,
            mode: body.mode,
            binding,
            origin,
        },
    )
    .await?;
    Ok(started_response(&state, started, new_cookie))
}

/// `POST /api/v1/recovery/redeem {"token", "mode"}`: redeems a help-desk
/// recovery link for a recovery session (the same answer as an invitation's).
pub async fn redeem(
    State(state): State<AppState>,
    MaybeAuth(prior): MaybeAuth,
    Client(origin): Client,
    ApiJson(body): ApiJson<RedeemBody>,
) -> ApiResult<Response> {
    let replaces = prior.as_ref().map(|a| a.current.session.id);
    let issued = signet_app::recovery_links::redeem(&state.app, &body.token, body.mode, &origin, replaces).await?;
    redeemed(&state, &issued).await
}
