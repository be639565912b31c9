//! The OpenID Provider's HTTP surface: discovery, the JWK Set, the token
//! endpoint and introspection. Thin handlers over `signet_app::oidc`.
//!
//! The token endpoint answers errors in the RFC 6749 §5.2 shape
//! (`{"error","error_description"}`), always with `Cache-Control: no-store`
//! (§5.1); [`OAuthResponse`] is the one place that mapping lives. Storage
//! trouble still answers Signet's 503 with `Retry-After`.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use signet_app::oidc::authorize::{self, Answer, Params};
use signet_app::oidc::clients::ClientAuth;
use signet_app::oidc::error::{OAuthCode, OAuthError};
use signet_app::oidc::tokens::{self, TokenForm};

use crate::error::ApiError;
use crate::extract::{BackChannel, Client, MaybeAuth};
use crate::pages::PageError;
use crate::AppState;
use signet_core::flow::Continuation;
use signet_core::{Error, ErrorCode};

/// How long relying parties may cache discovery and the JWK Set. Short, so
/// a key published ahead of a rotation is picked up well before it signs.
const METADATA_MAX_AGE: &str = "public, max-age=300";

/// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4).
pub async fn discovery(State(state): State<AppState>) -> Response {
    let doc = signet_app::oidc::discovery::document(&state.app.settings);
    cacheable(Json(doc).into_response())
}

/// `GET /oauth2/jwks`: the public signing keys (RFC 7517 §5).
pub async fn jwks(State(state): State<AppState>) -> Response {
    cacheable(Json(state.app.oidc.keys.jwks()).into_response())
}

fn cacheable(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(METADATA_MAX_AGE));
    resp
}

/// `POST /oauth2/token` (RFC 6749 §3.2), `application/x-www-form-urlencoded`.
pub async fn token(
    State(state): State<AppState>,
    BackChannel(origin): BackChannel,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let form = Form::parse(&headers, &body)?;
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let auth = ClientAuth::from_request(authorization, form.get("client_id"), form.get("client_secret"));
        let token_form = TokenForm {
            grant_type: form.get("grant_type").map(str::to_owned),
            scope: form.get("scope").map(str::to_owned),
            code: form.get("code").map(str::to_owned),
            redirect_uri: form.get("redirect_uri").map(str::to_owned),
            code_verifier: form.get("code_verifier").map(str::to_owned),
            refresh_token: form.get("refresh_token").map(str::to_owned),
        };
        tokens::exchange(&state.app, &origin, auth, &token_form).await
    }
    .await;
    OAuthResponse(
        result.map(|r| Json(r).into_response()),
        authorization_was_basic(&headers),
    )
    .into_response()
}

/// `POST /oauth2/introspect` (RFC 7662 §2.1), for confidential clients.
pub async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let form = Form::parse(&headers, &body)?;
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let auth = ClientAuth::from_request(authorization, form.get("client_id"), form.get("client_secret"))?;
        signet_app::oidc::introspection::introspect(&state.app, &auth, form.get("token")).await
    }
    .await;
    OAuthResponse(
        result.map(|r| Json(r).into_response()),
        authorization_was_basic(&headers),
    )
    .into_response()
}

/// `POST /oauth2/revoke` (RFC 7009 §2.1): 200 with an empty body whether
/// or not the token was known (§2.2); refusals in the RFC 6749 §5.2 shape.
pub async fn revoke(
    State(state): State<AppState>,
    BackChannel(origin): BackChannel,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let form = Form::parse(&headers, &body)?;
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let auth = ClientAuth::from_request(authorization, form.get("client_id"), form.get("client_secret"))?;
        signet_app::oidc::revocation::revoke(&state.app, &origin, &auth, form.get("token")).await
    }
    .await;
    OAuthResponse(
        result.map(|()| StatusCode::OK.into_response()),
        authorization_was_basic(&headers),
    )
    .into_response()
}

fn authorization_was_basic(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() >= 6 && v[..6].eq_ignore_ascii_case("basic "))
}

/// A form body with each parameter at most once (RFC 6749 §3.2: "MUST NOT
/// be included more than once"); empty values count as absent (§3.1).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::new(
                OAuthCode::InvalidRequest,
                "send the request as application/x-www-form-urlencoded",
            ));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            if v.is_empty() {
                continue;
            }
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(OAuthError::new(
                    OAuthCode::InvalidRequest,
                    format!("parameter {k:?} appears more than once"),
                ));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Form(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The token endpoint's answer: a success as given, an OAuth refusal in
/// the RFC 6749 §5.2 shape, a platform error as every other Signet error.
/// Always `Cache-Control: no-store` and `Pragma: no-cache` (§5.1).
struct OAuthResponse(Result<Response, OAuthError>, bool);

impl IntoResponse for OAuthResponse {
    fn into_response(self) -> Response {
        let OAuthResponse(result, basic) = self;
        let mut resp = match result {
            Ok(resp) => resp,
            Err(OAuthError::Refused { code, description }) => {
                let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
                let body = serde_json::json!({ "error": code.as_str(), "error_description": description });
                let mut resp = (status, Json(body)).into_response();
                // RFC 6749 §5.2: a 401 to a client that tried HTTP Basic
                // names the scheme it must use.
                if code == OAuthCode::InvalidClient && basic {
                    resp.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"signet\""),
                    );
                }
                resp
            }
            Err(OAuthError::Platform(e)) => ApiError(e).into_response(),
        };
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        resp
    }
}

/// `GET /oauth2/authorize` (OpenID Connect Core §3.1.2.1): the parameters
/// in the query.
pub async fn authorize_get(
    State(state): State<AppState>,
    Client(origin): Client,
    MaybeAuth(auth): MaybeAuth,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::new(pairs(query.unwrap_or_default().as_bytes()));
    let answer = authorize::authorize(&state.app, &origin, params, auth.as_ref().map(|a| &a.current)).await;
    authorization_answer(answer)
}

/// `POST /oauth2/authorize` (Core §3.1.2.1): the parameters as a form.
pub async fn authorize_post(
    State(state): State<AppState>,
    Client(origin): Client,
    MaybeAuth(auth): MaybeAuth,
    body: Bytes,
) -> Response {
    let params = Params::new(pairs(&body));
    let answer = authorize::authorize(&state.app, &origin, params, auth.as_ref().map(|a| &a.current)).await;
    authorization_answer(answer)
}

/// `GET /oauth2/authorize/resume/{id}`: where a login started for a stored
/// authorization request returns to.
pub async fn authorize_resume(
    State(state): State<AppState>,
    Client(origin): Client,
    MaybeAuth(auth): MaybeAuth,
    Path(id): Path<String>,
) -> Response {
    let answer = match uuid::Uuid::parse_str(&id) {
        Ok(id) => authorize::resume(&state.app, &origin, id, auth.as_ref().map(|a| &a.current)).await,
        Err(_) => Ok(Answer::ErrorPage("This sign-in request is not known.".into())),
    };
    authorization_answer(answer)
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

/// The browser's answer: an error page at Signet, a redirect to the client,
/// or the login page that resumes the request. Never cached.
pub(crate) fn authorization_answer(answer: signet_core::Result<Answer>) -> Response {
    let mut resp = match answer {
        Ok(Answer::Redirect(to)) => Redirect::to(&to).into_response(),
        Ok(Answer::Login { request_id, login_hint }) => {
            let mut to = url::form_urlencoded::Serializer::for_suffix(String::from("/login?"), "/login?".len());
            to.append_pair(
                "return_to",
                &format!("{}{request_id}", signet_app::oidc::authorize::RESUME_PATH),
            );
            if let Some(hint) = login_hint {
                to.append_pair("login_hint", &hint);
            }
            Redirect::to(&to.finish()).into_response()
        }
        Ok(Answer::StepUp { request_id }) => {
            let mut to = url::form_urlencoded::Serializer::new(String::from("/login?"));
            to.append_pair("step_up", "1");
            to.append_pair(
                "return_to",
                &format!("{}{request_id}", signet_app::oidc::authorize::RESUME_PATH),
            );
            Redirect::to(&to.finish()).into_response()
        }
        Ok(Answer::Consent { request_id }) => {
            Redirect::to(&format!("{}{request_id}", signet_app::oidc::authorize::CONSENT_PATH)).into_response()
        }
        Ok(Answer::ErrorPage(message)) => PageError(Error::invalid(
            ErrorCode::InvalidRequest,
            message.trim_end_matches('.').to_owned(),
        ))
        .into_response(),
        Err(e) => PageError(e).into_response(),
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Where a completed login goes: its URL, or the resume path of the
/// authorization request it was started for.
pub(crate) fn continuation_target(c: &Continuation) -> Option<String> {
    match c {
        Continuation::Url(u) => Some(u.clone()),
        Continuation::Authorization(id) => Some(format!("{}{id}", signet_app::oidc::authorize::RESUME_PATH)),
        Continuation::None => None,
    }
}

/// `GET`/`POST /oauth2/userinfo` (Core §5.3): the bearer token in the
/// `Authorization` header, or (POST) the `access_token` form field (RFC
/// 6750 §2.2). A refusal is 401 with `WWW-Authenticate: Bearer
/// error="invalid_token"` (RFC 6750 §3).
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| (v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ")).then(|| v[7..].trim().to_owned()));
    let from_form = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned());
    let token = match (from_header, from_form) {
        (Some(t), None) | (None, Some(t)) => Some(t),
        _ => None,
    };
    let result = match token {
        Some(t) => signet_app::oidc::userinfo::userinfo(&state.app, &t).await,
        None => Ok(None),
    };
    let mut resp = match result {
        Ok(Some(claims)) => Json(claims).into_response(),
        Ok(None) => {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({ "error": "invalid_token", "error_description": "the access token is not valid" })),
            )
                .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"signet\", error=\"invalid_token\""),
            );
            r
        }
        Err(e) => ApiError(e).into_response(),
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
