//! Signet's HTTP surface.
//!
//! Handlers are thin: extract the input, state the authentication
//! requirement as an extractor on the first line, make one call into
//! `signet-app`, map the result. Errors become HTTP in exactly one place,
//! [`error`]. Cross-cutting rules (body limit, security headers, same-origin
//! checks for cookie-authenticated writes, request ids, tracing, admission
//! control and the request deadline) are layers
//! applied in [`router`].

pub mod admission;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod headers;
pub mod pages;
pub mod routes;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::Router;
use signet_app::App;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Requests larger than this are refused with 413 `payload_too_large`.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Web-only settings.
#[derive(Clone, Debug)]
pub struct WebSettings {
    /// Mount `/dev/outbox` (only when no real delivery is configured).
    pub dev_outbox: bool,
    /// Take the client IP from the rightmost `X-Forwarded-For` entry, the
    /// one your proxy appended (only behind a proxy you control).
    pub trust_forwarded_for: bool,
    /// SHA-256 of the `[metrics] token`; `None` leaves `/metrics` open
    /// (restrict it at the proxy then).
    pub metrics_token: Option<signet_core::secret::TokenHash>,
    /// Admission control: in-flight budgets and the request deadline.
    pub budgets: admission::Budgets,
}

/// Shared state of every handler: one `Arc`, because axum clones the
/// state into every layer of every request (four `Arc`s cloned and dropped
/// per layer cost about 2 % of a `client_credentials` grant's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares; its fields read as the state's own
/// (`state.app`).
pub struct Shared {
    pub app: Arc<App>,
    pub web: WebSettings,
    pub cookies: cookies::CookieNames,
    pub admission: admission::Admission,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(app: App, web: WebSettings) -> Self {
        let secure = app.settings.public_url.scheme() == "https";
        Self(Arc::new(Shared {
            app: Arc::new(app),
            admission: admission::Admission::new(&web.budgets),
            web,
            cookies: cookies::CookieNames::new(secure),
        }))
    }
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application router with its layers.
///
/// The layers wrap the routed application once, as a whole, rather than
/// through `Router::layer`, which wraps every route in each of them and
/// boxes each wrapping: a request then cloned (and dropped) the boxed chain
/// below each layer, about 5 % of a `client_credentials` grant's CPU
/// samples (`docs/benchmarks.md`, fifteenth section). Wrapped outside, a
/// layer's clone of what it wraps is a few `Arc`s. Every request, unrouted ones
/// (404, 405) included, goes through every layer, as before; the order is
/// unchanged: the first named here is the outermost.
///
/// The router returned holds only that layered application, as its
/// fallback: a route added to it afterwards would skip every layer (the
/// security headers, the same-origin guard, admission control). Routes
/// belong in `routes::api` or `pages::routes`, inside the layers.
pub fn router(state: AppState) -> Router {
    let mut app = routes::api(state.clone()).merge(pages::routes());
    if state.web.dev_outbox {
        app = app.merge(routes::dev_outbox::routes());
    }
    let app = app.fallback(error::not_found).with_state(state.clone());
    let layered = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            let path = loggable_path(req.uri().path());
            tracing::info_span!("http", method = %req.method(), path = %path, request_id = %id)
        }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            headers::security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            headers::count_responses,
        ))
        .layer(axum::middleware::from_fn(headers::json_errors))
        // Admission control and the request deadline (ADR 0013): inside
        // the JSON, counting and header layers, so a shed request still gets
        // the contract's body, is counted, and carries the security headers.
        .layer(axum::middleware::from_fn_with_state(state.clone(), admission::admit))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            extract::same_origin_guard,
        ))
        .layer(axum::middleware::from_fn_with_state(state, cookies::device_cookie))
        .service(app);
    Router::new().fallback_service(layered)
}

/// The request path as it may appear in logs: the one-time token in a link
/// path (`/invite/{token}`, and the magic-link and recovery links to come)
/// is replaced, so a log line never carries a usable secret.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    for prefix in ["/invite/", "/login/magic/", "/recover/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            if !rest.is_empty() {
                return std::borrow::Cow::Owned(format!("{prefix}<redacted>"));
            }
        }
    }
    std::borrow::Cow::Borrowed(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn link_tokens_never_reach_the_log() {
        assert_eq!(super::loggable_path("/invite/sgi_secret"), "/invite/<redacted>");
        assert_eq!(super::loggable_path("/login/magic/sgm_x"), "/login/magic/<redacted>");
        assert_eq!(super::loggable_path("/api/v1/session"), "/api/v1/session");
    }
}
