//! The one place where errors become HTTP responses.
//!
//! Every non-2xx answer has the body `{"error": "<code>", "message": "..."}`
//! (plus documented extras such as `retry_after` or the step-up fields). The
//! status is chosen by [`status_of`]; internal causes are logged with their
//! full chain and never shown. Extractor rejections (bad JSON, wrong types,
//! unknown fields, oversized bodies) are mapped here too, so nothing an
//! attacker sends can produce a 5xx.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use signet_core::Error;

/// A domain error on its way out of a handler.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Invalid { code, .. } if *code == "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Invalid { code, .. } if *code == "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        Error::Unauthenticated => StatusCode::UNAUTHORIZED,
        Error::Forbidden { .. } | Error::StepUpRequired(_) => StatusCode::FORBIDDEN,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::Gone { .. } => StatusCode::GONE,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The text a person sees. Internal details never leave the server.
pub fn public_message(e: &Error) -> String {
    match e {
        Error::Unavailable(_) => "the service is temporarily unavailable; try again shortly".into(),
        Error::Internal(_) => "something went wrong on our side".into(),
        Error::Unauthenticated => "you need to sign in".into(),
        Error::StepUpRequired(_) => "this action needs a fresh, stronger sign-in".into(),
        Error::RateLimited { .. } => "too many attempts; wait and try again".into(),
        other => other.to_string(),
    }
}

/// Logs server-side failures with their cause chain.
pub fn log_if_server_error(e: &Error) {
    if matches!(e, Error::Internal(_) | Error::Unavailable(_)) {
        let mut chain = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            src = s.source();
        }
        tracing::error!(code = e.code(), error = %chain, "request failed");
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        log_if_server_error(&e);
        let status = status_of(&e);
        let mut body = json!({ "error": e.code(), "message": public_message(&e) });
        match &e {
            Error::StepUpRequired(s) => {
                body["required_aal"] = json!(s.required_aal);
                body["max_age"] = json!(s.max_age);
                body["methods"] = json!(s.methods);
            }
            Error::RateLimited { retry_after_secs } => {
                body["retry_after"] = json!(retry_after_secs);
            }
            _ => {}
        }
        let mut resp = (status, axum::Json(body)).into_response();
        if let Error::RateLimited { retry_after_secs } = &e {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let (code, message): (&'static str, String) = match &r {
            JsonRejection::MissingJsonContentType(_) => {
                ("unsupported_media_type", "send the body as application/json".into())
            }
            JsonRejection::JsonSyntaxError(_) => ("invalid_json", "the body is not valid JSON".into()),
            JsonRejection::JsonDataError(e) => {
                ("invalid_request", format!("the body does not match: {}", e.body_text()))
            }
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ("payload_too_large", "the request body is too large".into())
            }
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ("payload_too_large", "the request body is too large".into())
            }
            _ => ("invalid_request", "the request body could not be read".into()),
        };
        ApiError(Error::invalid(code, message))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError(Error::invalid(
            "invalid_query",
            format!("bad query string: {}", r.body_text()),
        ))
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError(Error::not_found("not_found", "no such resource"))
    }
}

/// Fallback for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError(Error::not_found("not_found", "no such resource"))
}
