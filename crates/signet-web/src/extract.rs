//! Extractors: what a handler needs from a request, with its authentication
//! requirement stated in the handler's signature.

use signet_core::ErrorCode;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use signet_app::sessions::Current;
use signet_app::{Actor, Origin};
use signet_core::session::SessionScope;
use signet_core::Error;

use crate::cookies;
use crate::error::ApiError;
use crate::AppState;

/// JSON body whose rejections become the contract's 4xx errors.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(v))
    }
}

/// An optional JSON body: an empty body is `None`; anything else must be
/// the JSON an [`ApiJson`] takes.
impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| ApiError::from(axum::extract::rejection::JsonRejection::from(e)))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        <Self as FromRequest<S>>::from_request(req, state).await.map(Some)
    }
}

/// A query string whose rejections become the contract's 400 `invalid_query`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(v) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(v))
    }
}

/// Where the request came from: IP and User-Agent, for audit and sessions.
pub struct Client(pub Origin);

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Client(client_origin(parts, state)))
    }
}

/// Where a relying party's back-channel call (the token and revocation
/// endpoints) came from: IP and User-Agent. No device: a server
/// calling has no browser to tell apart, and asking would mint a device
/// cookie for a response that never carries one.
pub struct BackChannel(pub Origin);

impl FromRequestParts<AppState> for BackChannel {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(BackChannel(address(parts, state)))
    }
}

pub fn client_origin(parts: &Parts, state: &AppState) -> Origin {
    Origin {
        device: crate::cookies::device(&parts.headers, &parts.extensions, &state.cookies),
        ..address(parts, state)
    }
}

/// The request's IP address and User-Agent, and no device.
fn address(parts: &Parts, state: &AppState) -> Origin {
    let forwarded = state
        .web
        .trust_forwarded_for
        .then(|| parts.headers.get("x-forwarded-for"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        // The rightmost entry is the one our own proxy appended; anything to
        // its left was sent by the client and could be forged.
        .and_then(|v| v.rsplit(',').next())
        .map(|s| s.trim().to_owned())
        .filter(|s| s.parse::<std::net::IpAddr>().is_ok());
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect());
    Origin {
        ip: forwarded.or(peer),
        user_agent,
        device: None,
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// How the session was presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented {
    Cookie,
    Bearer,
}

/// Any valid session, whatever its scope (session by bearer token or
/// cookie). 401 otherwise. Only for endpoints about the session itself
/// (`GET`/`DELETE /api/v1/session`) and rotation; everything a user does
/// states its scope with [`Auth`] or [`Enroller`].
pub struct AnySession {
    pub current: Current,
    pub presented: Presented,
}

impl FromRequestParts<AppState> for AnySession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (token, presented) = match bearer(parts) {
            Some(t) => (t, Presented::Bearer),
            None => (
                cookies::read(&parts.headers, state.cookies.session).ok_or(Error::Unauthenticated)?,
                Presented::Cookie,
            ),
        };
        let current = signet_app::sessions::authenticate(&state.app, token).await?;
        Ok(AnySession { current, presented })
    }
}

fn restricted_scope() -> Error {
    Error::forbidden(
        ErrorCode::InsufficientScope,
        "this session can only set up a way to sign in; sign in to do anything else",
    )
}

/// A signed-in user with a full session (scope `full`). Fails closed:
/// enrollment and recovery sessions get 403 `insufficient_scope`.
pub struct Auth {
    pub current: Current,
    pub presented: Presented,
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let AnySession { current, presented } = AnySession::from_request_parts(parts, state).await?;
        if current.session.scope != SessionScope::Full {
            return Err(restricted_scope().into());
        }
        Ok(Auth { current, presented })
    }
}

/// A session that may enroll a credential: a full session, or the
/// enrollment-only session of an invitation (or a recovery session).
pub struct Enroller {
    pub current: Current,
    pub presented: Presented,
}

impl FromRequestParts<AppState> for Enroller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let AnySession { current, presented } = AnySession::from_request_parts(parts, state).await?;
        match current.session.scope {
            SessionScope::Full | SessionScope::Enrollment | SessionScope::Recovery => {
                Ok(Enroller { current, presented })
            }
        }
    }
}

/// The session the client presented, if any and if valid, whatever its
/// scope (for rotation).
pub struct MaybeAuth(pub Option<AnySession>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match AnySession::from_request_parts(parts, state).await {
            Ok(a) => Ok(MaybeAuth(Some(a))),
            Err(ApiError(Error::Unauthenticated)) => Ok(MaybeAuth(None)),
            Err(e) => Err(e),
        }
    }
}

/// An admin token (`Authorization: Bearer sga_...`). 401 otherwise.
pub struct Admin(pub Actor);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(Error::Unauthenticated)?;
        Ok(Admin(signet_app::admin::authenticate(&state.app, token).await?))
    }
}

/// A scraper allowed to read `/metrics`: anyone when no `[metrics] token`
/// is configured, otherwise only a request presenting it as a bearer token
/// (compared by hash, in constant time). 401 otherwise.
pub struct MetricsScraper;

impl FromRequestParts<AppState> for MetricsScraper {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(expected) = &state.web.metrics_token else {
            return Ok(MetricsScraper);
        };
        let presented = bearer(parts).map(|t| signet_core::secret::TokenHash::of(t.as_bytes()));
        match presented {
            Some(p) if p.ct_eq(expected) => Ok(MetricsScraper),
            _ => Err(Error::Unauthenticated.into()),
        }
    }
}

/// Whether the request comes from one of our own pages: its `Origin`
/// header is exactly our public origin, or it is `null` and the browser
/// itself vouches that the request is same-origin (`Sec-Fetch-Site`).
///
/// Why the second case: our pages send `Referrer-Policy: no-referrer` (they
/// show one-time links), and for a form `POST` under that policy browsers
/// replace the `Origin` with `null` (Fetch standard, "append a request
/// `Origin` header"). `Sec-Fetch-Site` is a forbidden header that page
/// script cannot set; a cross-site or opaque-origin sender (another site, a
/// sandboxed frame, a `data:` page) gets `cross-site` or `none`, never
/// `same-origin`. A browser that sends neither proof is refused.
pub fn is_same_origin(headers: &axum::http::HeaderMap, state: &AppState) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match value(header::ORIGIN.as_str()) {
        Some("null") => value("sec-fetch-site") == Some("same-origin"),
        Some(o) => o == state.app.settings.origin(),
        None => false,
    }
}

/// Refuses state-changing requests that carry our cookies unless they come
/// from our own origin (the contract's CSRF rule). Bearer-token clients send
/// no cookies and are unaffected.
pub async fn same_origin_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && cookies::has_ours(req.headers(), &state.cookies) && !is_same_origin(req.headers(), &state) {
        return ApiError(Error::forbidden(
            ErrorCode::CrossOriginRequest,
            "cookie-authenticated changes must come from this site",
        ))
        .into_response();
    }
    next.run(req).await
}
