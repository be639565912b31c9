//! Response headers every answer carries, and response counting.
//!
//! The CSP allows only our own scripts and styles (no inline script, no
//! third party, nothing framed us: `frame-ancestors 'none'`). Pages that show
//! one-time links must not leak them through the Referer header, so the
//! policy is `no-referrer` everywhere. API answers and pages are `no-store`:
//! they carry personal data or one-time state.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use signet_core::ErrorCode;

use crate::AppState;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The CSP for a page whose form posts to us and is then redirected to a
/// registered URI of an app (the consent page, the logout confirmation):
/// browsers apply `form-action` to every redirect after the submission, so
/// the app's origin (or its private-use scheme) must be allowed too. `None`
/// when `target` is not a URL: the page keeps the default policy.
pub fn csp_allowing_form_target(target: &str) -> Option<HeaderValue> {
    let url = url::Url::parse(target).ok()?;
    let source = match url.origin() {
        url::Origin::Tuple(..) => url.origin().ascii_serialization(),
        // A native app's private-use scheme (RFC 8252 §7.1).
        url::Origin::Opaque(_) => format!("{}:", url.scheme()),
    };
    if source
        .chars()
        .any(|c| c.is_whitespace() || c == ';' || c == ',' || c == '\'')
    {
        return None;
    }
    HeaderValue::from_str(&CSP.replace("form-action 'self'", &format!("form-action 'self' {source}"))).ok()
}

pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // A page may have set a narrower variant (see `csp_allowing_form_target`).
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    if state.app.settings.public_url.scheme() == "https" {
        // Only meaningful (and only honoured by browsers) over https.
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if !is_static && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Gives every error response the contract's JSON body, including the ones
/// the framework produces itself (405, 408, a malformed path segment, a
/// tower layer's 503 or 504), which would otherwise be empty or plain text.
/// A framework 503 or 504 is overload or a timeout, never `internal`, and
/// gets `Retry-After` like every 503 of ours. Pages (HTML) are left alone.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return resp;
    }
    let mut retry_after = None;
    let (code, message) = match status.as_u16() {
        400 => (ErrorCode::InvalidRequest, "the request could not be understood"),
        404 => (ErrorCode::NotFound, "no such resource"),
        405 => (
            ErrorCode::HttpMethodNotAllowed,
            "this method is not allowed on this resource",
        ),
        408 => (ErrorCode::RequestTimeout, "the request took too long"),
        413 => (ErrorCode::PayloadTooLarge, "the request body is too large"),
        415 => (ErrorCode::UnsupportedMediaType, "send the body as application/json"),
        503 => {
            retry_after = Some(crate::admission::OVERLOADED_RETRY_AFTER_SECS);
            (
                ErrorCode::Overloaded,
                "the server is at capacity; try again in a moment",
            )
        }
        504 => {
            retry_after = Some(crate::admission::DEADLINE_RETRY_AFTER_SECS);
            (
                ErrorCode::DeadlineExceeded,
                "the request took too long and was cancelled; try again shortly",
            )
        }
        s if s >= 500 => (ErrorCode::Internal, "something went wrong on our side"),
        _ => (ErrorCode::InvalidRequest, "the request was refused"),
    };
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Some(secs) = retry_after {
        parts.status = axum::http::StatusCode::SERVICE_UNAVAILABLE;
        if !parts.headers.contains_key(header::RETRY_AFTER) {
            parts.headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
    }
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = serde_json::json!({ "error": code.as_str(), "message": message }).to_string();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Counts responses by status class for `/metrics`.
pub async fn count_responses(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let class = match resp.status().as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    state
        .app
        .metrics
        .http_responses
        .get_or_create(&signet_app::metrics::HttpLabels { class })
        .inc();
    resp
}

#[cfg(test)]
mod tests {
    use axum::http::{header, Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    async fn answer(status: StatusCode) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let app = Router::new()
            .route("/", get(move || async move { status }))
            .layer(axum::middleware::from_fn(super::json_errors));
        let resp = app
            .oneshot(Request::get("/").body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 16).await.unwrap();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_framework_overload_or_timeout_is_a_503_with_retry_after_never_internal() {
        for (status, code) in [
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
        ] {
            let (s, headers, body) = answer(status).await;
            assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{code}");
            assert_eq!(body["error"], code);
            assert!(body["message"].is_string());
            assert!(headers.contains_key(header::RETRY_AFTER), "{code}");
        }
        let (s, _, body) = answer(StatusCode::INTERNAL_SERVER_ERROR).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, Some("internal"))
        );
    }
}
