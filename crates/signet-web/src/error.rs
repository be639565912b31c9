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
use signet_core::ErrorCode;

/// A domain error on its way out of a handler.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The status comes from the code's class and nothing else: a new code gets
/// its status where it is declared (`signet_core::ErrorCode`), not here.
pub fn status_of(e: &Error) -> StatusCode {
    http_status(e.code())
}

/// The HTTP status of a code's class.
pub fn http_status(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The text a person sees. Internal details never leave the server.
pub fn public_message(e: &Error) -> String {
    match e {
        Error::Unavailable { .. } => "the service is temporarily unavailable; try again shortly".into(),
        Error::Internal(_) => "something went wrong on our side".into(),
        Error::Unauthenticated => "you need to sign in".into(),
        Error::StepUpRequired(_) => "this action needs a fresh, stronger sign-in".into(),
        Error::RateLimited { .. } => "too many attempts; wait and try again".into(),
        other => other.to_string(),
    }
}

/// Logs server-side failures with their cause chain.
pub fn log_if_server_error(e: &Error) {
    if matches!(e, Error::Internal(_) | Error::Unavailable { .. }) {
        // Each cause once: some libraries repeat their source in their own
        // text (sqlx's "error returned from database: {source}").
        let mut chain = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            let text = s.to_string();
            if !chain.contains(&text) {
                chain.push_str(": ");
                chain.push_str(&text);
            }
            src = s.source();
        }
        tracing::error!(code = e.code().as_str(), error = %chain, "request failed");
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
        // Every 429 and every 503 tells the client when to come back.
        if let Some(secs) = e.retry_after_secs() {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A 503 that refuses work rather than reporting a failure (admission
/// control, the request deadline): the contract's body and `Retry-After`,
/// and no error log, so that shedding a flood does not flood the log.
pub fn refusal(code: ErrorCode, message: &'static str, retry_after_secs: u64) -> Response {
    let mut resp = (
        http_status(code),
        axum::Json(json!({ "error": code, "message": message })),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let (code, message): (ErrorCode, String) = match &r {
            JsonRejection::MissingJsonContentType(_) => (
                ErrorCode::UnsupportedMediaType,
                "send the body as application/json".into(),
            ),
            JsonRejection::JsonSyntaxError(_) => (ErrorCode::InvalidJson, "the body is not valid JSON".into()),
            JsonRejection::JsonDataError(e) => (
                ErrorCode::InvalidRequest,
                format!("the body does not match: {}", e.body_text()),
            ),
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (ErrorCode::PayloadTooLarge, "the request body is too large".into())
            }
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (ErrorCode::PayloadTooLarge, "the request body is too large".into())
            }
            _ => (ErrorCode::InvalidRequest, "the request body could not be read".into()),
        };
        ApiError(Error::invalid(code, message))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError(Error::invalid(
            ErrorCode::InvalidQuery,
            format!("bad query string: {}", r.body_text()),
        ))
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError(Error::not_found(ErrorCode::NotFound, "no such resource"))
    }
}

/// Fallback for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError(Error::not_found(ErrorCode::NotFound, "no such resource"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_core::store::StoreError;

    fn io(msg: &str) -> Box<dyn std::error::Error + Send + Sync> {
        Box::new(std::io::Error::other(msg.to_owned()))
    }

    #[test]
    fn every_code_gets_its_class_status() {
        for code in ErrorCode::ALL {
            assert_eq!(http_status(*code).as_u16(), code.http_status(), "{code}");
        }
        assert_eq!(
            status_of(&Error::invalid(ErrorCode::PayloadTooLarge, "x")),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status_of(&Error::invalid(ErrorCode::UnsupportedMediaType, "x")),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(status_of(&Error::Unauthenticated), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn a_full_or_busy_store_is_a_503_with_retry_after_never_a_500() {
        for (e, code, retry) in [
            (StoreError::Full(io("disk full")), "storage_full", "30"),
            (StoreError::Busy(io("database is locked")), "storage_busy", "5"),
            (StoreError::Unavailable(io("pool timed out")), "unavailable", "5"),
        ] {
            let err = Error::from(e);
            assert_eq!(err.code().as_str(), code);
            let resp = ApiError(err).into_response();
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{code}");
            assert_eq!(resp.headers()[header::RETRY_AFTER], retry, "{code}");
        }
    }

    #[test]
    fn rate_limited_sets_retry_after() {
        let resp = ApiError(Error::RateLimited { retry_after_secs: 42 }).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "42");
    }
}
