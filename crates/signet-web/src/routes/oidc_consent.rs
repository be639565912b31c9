//! The consent page for third-party OIDC clients and the apps a user has
//! let in ([`signet_app::oidc::consent`]). The page's form and the account
//! page's revoke buttons are same-origin posts by the signed-in browser
//! (the `Origin` is checked here, as for every page form); the JSON API
//! follows the usual session rules.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::json;
use signet_app::oidc::authorize::RESUME_PATH;
use signet_app::oidc::consent;
use signet_core::session::SessionScope;
use signet_core::{Error, ErrorCode};

use crate::error::ApiResult;
use crate::extract::{is_same_origin, Auth, Client, MaybeAuth};
use crate::pages::{render, PageError, PageResult};
use crate::AppState;

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    request_id: String,
    client_name: String,
    redirect_host: String,
    scopes: Vec<String>,
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn parse_request_id(id: &str) -> Result<uuid::Uuid, PageError> {
    uuid::Uuid::parse_str(id)
        .map_err(|_| Error::invalid(ErrorCode::InvalidRequest, "this sign-in request is not known").into())
}

/// `GET /oauth2/consent/{id}`: the consent page of a stored authorization
/// request. Without a full session, sign in first (the request resumes).
pub async fn page(State(state): State<AppState>, MaybeAuth(auth): MaybeAuth, Path(id): Path<String>) -> PageResult {
    let id = parse_request_id(&id)?;
    if !auth.is_some_and(|a| a.current.session.scope == SessionScope::Full) {
        return Ok(Redirect::to(&format!("/login?return_to={RESUME_PATH}{id}")).into_response());
    }
    match consent::pending(&state.app, id).await? {
        Ok(p) => {
            let csp = crate::headers::csp_allowing_form_target(&p.redirect_uri);
            let mut resp = no_store(render(&ConsentPage {
                request_id: id.to_string(),
                client_name: p.client_name,
                redirect_host: p.redirect_host,
                scopes: p.scopes,
            })?);
            if let Some(csp) = csp {
                resp.headers_mut()
                    .insert(axum::http::header::CONTENT_SECURITY_POLICY, csp);
            }
            Ok(resp)
        }
        Err(answer) => Ok(super::oidc::authorization_answer(Ok(answer))),
    }
}

#[derive(Deserialize)]
pub struct Decision {
    decision: String,
}

/// `POST /oauth2/consent/{id}` with `decision=allow|deny`: same origin and
/// a full session only.
pub async fn decide(
    State(state): State<AppState>,
    MaybeAuth(auth): MaybeAuth,
    Client(origin): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Decision>,
) -> PageResult {
    if !is_same_origin(&headers, &state) {
        return Err(Error::forbidden(
            ErrorCode::CrossOriginRequest,
            "this form must be submitted from this site",
        )
        .into());
    }
    let id = parse_request_id(&id)?;
    let Some(auth) = auth.filter(|a| a.current.session.scope == SessionScope::Full) else {
        return Ok(Redirect::to(&format!("/login?return_to={RESUME_PATH}{id}")).into_response());
    };
    let approve = match form.decision.as_str() {
        "allow" => true,
        "deny" => false,
        _ => return Err(Error::invalid(ErrorCode::InvalidRequest, "decision is allow or deny").into()),
    };
    let answer = consent::decide(&state.app, &origin, id, &auth.current, approve).await;
    Ok(super::oidc::authorization_answer(answer))
}

/// `GET /api/v1/oidc/apps`: the apps with access to the caller's account.
pub async fn apps(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<serde_json::Value>> {
    let apps = consent::authorized_apps(&state.app, auth.current.user.id).await?;
    Ok(Json(json!({ "apps": apps })))
}

/// `DELETE /api/v1/oidc/apps/{client_id}`: revokes an app's access.
pub async fn revoke(
    State(state): State<AppState>,
    auth: Auth,
    Client(origin): Client,
    Path(client_id): Path<String>,
) -> ApiResult<StatusCode> {
    consent::revoke(&state.app, &origin, auth.current.user.id, &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /account/apps/{client_id}/revoke`: the account page's button.
pub async fn revoke_from_page(
    State(state): State<AppState>,
    MaybeAuth(auth): MaybeAuth,
    Client(origin): Client,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> PageResult {
    if !is_same_origin(&headers, &state) {
        return Err(Error::forbidden(
            ErrorCode::CrossOriginRequest,
            "this form must be submitted from this site",
        )
        .into());
    }
    let Some(auth) = auth.filter(|a| a.current.session.scope == SessionScope::Full) else {
        return Ok(Redirect::to("/login").into_response());
    };
    consent::revoke(&state.app, &origin, auth.current.user.id, &client_id).await?;
    Ok(Redirect::to("/account").into_response())
}
