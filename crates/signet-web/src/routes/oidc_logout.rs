//! OpenID Connect RP-initiated logout (RP-Initiated Logout 1.0): the
//! end-session endpoint (`GET`/`POST /oauth2/logout`) and the confirmation
//! page's form (`POST /oauth2/logout/confirm`). Thin handlers over
//! `signet_app::oidc::logout`, which decides; this module renders.
//!
//! The confirmation form must come from Signet's own origin (the same rule
//! as every cookie-authenticated change), so a cross-site form cannot sign
//! anyone out. Every answer is `Cache-Control: no-store`.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Redirect, Response};
use signet_app::oidc::authorize::Params;
use signet_app::oidc::logout::{self, LogoutAnswer, LogoutRequest, Via};
use signet_core::{Error, ErrorCode};

use crate::extract::{is_same_origin, Client, MaybeAuth};
use crate::pages::{render, PageError};
use crate::AppState;

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct ConfirmPage<'a> {
    product: &'a str,
    client_name: Option<String>,
    confirm_path: &'a str,
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage<'a> {
    product: &'a str,
}

fn request_of(raw: &[u8]) -> Result<LogoutRequest, String> {
    LogoutRequest::from_params(Params::new(url::form_urlencoded::parse(raw).into_owned().collect()))
}

/// `GET /oauth2/logout` (the parameters in the query) and `POST` (a form).
/// A cross-site `POST` carries no `SameSite=Lax` cookie, so not seeing a
/// session there proves nothing: the person is asked.
pub async fn end_session(
    State(state): State<AppState>,
    Client(origin): Client,
    MaybeAuth(auth): MaybeAuth,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let cookieless = method == Method::POST;
    let request = match cookieless {
        true => request_of(&body),
        false => request_of(query.unwrap_or_default().as_bytes()),
    };
    let current = auth.as_ref().map(|a| &a.current);
    let answer = logout::end_session(&state.app, &origin, request, current, Via::EndSession { cookieless }).await;
    respond(&state, answer, auth.is_some())
}

/// `POST /oauth2/logout/confirm`: the confirmation page's button.
pub async fn confirm(
    State(state): State<AppState>,
    Client(origin): Client,
    MaybeAuth(auth): MaybeAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_same_origin(&headers, &state) {
        let refused = Error::forbidden(
            ErrorCode::CrossOriginRequest,
            "this form must be submitted from this site",
        );
        return no_store(PageError(refused).into_response());
    }
    let current = auth.as_ref().map(|a| &a.current);
    let answer = logout::end_session(&state.app, &origin, request_of(&body), current, Via::Confirmation).await;
    respond(&state, answer, auth.is_some())
}

/// Renders the decision. When a session was ended (`had_session` and the
/// answer is not a question or a refusal), the cookie is cleared too.
fn respond(state: &AppState, answer: signet_core::Result<LogoutAnswer>, had_session: bool) -> Response {
    let product = state.app.settings.product_name.as_str();
    let (resp, signed_out) = match answer {
        Ok(LogoutAnswer::Redirect(to)) => (Redirect::to(&to).into_response(), true),
        Ok(LogoutAnswer::SignedOut) => (page(render(&SignedOutPage { product })), true),
        Ok(LogoutAnswer::Confirm { client_name, request }) => {
            let csp = request
                .post_logout_redirect_uri
                .as_deref()
                .and_then(crate::headers::csp_allowing_form_target);
            let page_ = ConfirmPage {
                product,
                client_name,
                confirm_path: logout::CONFIRM_PATH,
                id_token_hint: request.id_token_hint,
                client_id: request.client_id,
                post_logout_redirect_uri: request.post_logout_redirect_uri,
                state: request.state,
            };
            let mut resp = page(render(&page_));
            if let Some(csp) = csp {
                resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
            }
            (resp, false)
        }
        Ok(LogoutAnswer::ErrorPage(message)) => {
            let e = Error::invalid(ErrorCode::InvalidRequest, message.trim_end_matches('.').to_owned());
            (PageError(e).into_response(), false)
        }
        Err(e) => (PageError(e).into_response(), false),
    };
    let mut resp = no_store(resp);
    if signed_out && had_session {
        if let Some(v) = state.cookies.set(state.cookies.session, "", None) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    resp
}

fn page(rendered: Result<Response, PageError>) -> Response {
    rendered.unwrap_or_else(IntoResponse::into_response)
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
