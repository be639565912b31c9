//! The domain's error type. Each variant carries a stable [`ErrorCode`]
//! (documented in docs/api.md); `signet-web` maps errors to HTTP in exactly
//! one place, taking the status from the code's [`Status`] class. Internal
//! causes are kept for the log and never shown.
//!
//! The code, not the variant, decides the status: the variants say what kind
//! of failure it is for code that matches on them, and the constructors are
//! named after the kind so a call site reads as what it means. The codes are
//! a closed enum rather than strings so that docs/api.md can be checked
//! against them (see [`crate::error_code`] and ADR 0008).
//!
//! This is the error type of Signet's own JSON API. OAuth 2.0 / OpenID
//! Connect endpoints answer with RFC 6749 §5.2 error bodies and codes; they
//! will get their own error type rather than stretching this one.

use std::borrow::Cow;
use std::time::Duration;

pub use crate::error_code::{ErrorCode, Status};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or a value is invalid (400).
    #[error("{message}")]
    Invalid {
        code: ErrorCode,
        message: Cow<'static, str>,
    },
    /// No valid session or admin token (401).
    #[error("authentication required")]
    Unauthenticated,
    /// Authenticated, but not allowed (403).
    #[error("{message}")]
    Forbidden {
        code: ErrorCode,
        message: Cow<'static, str>,
    },
    /// A fresher or stronger authentication is needed (403 `step_up_required`).
    #[error("step-up required")]
    StepUpRequired(Box<StepUp>),
    /// The thing asked for does not exist, or the caller may not know it does (404).
    #[error("{message}")]
    NotFound {
        code: ErrorCode,
        message: Cow<'static, str>,
    },
    /// Conflicts with existing state, e.g. a duplicate email (409).
    #[error("{message}")]
    Conflict {
        code: ErrorCode,
        message: Cow<'static, str>,
    },
    /// A one-time secret was already used, has expired, or never existed (410).
    #[error("{message}")]
    Gone {
        code: ErrorCode,
        message: Cow<'static, str>,
    },
    /// Too many attempts (429).
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// A dependency such as the database is unreachable, or storage cannot
    /// take a write now (503, always with `Retry-After`). `code` is one of
    /// `unavailable`, `storage_full` and `storage_busy`.
    #[error("service unavailable")]
    Unavailable {
        code: ErrorCode,
        retry_after_secs: u64,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A bug or an unexpected failure (500). The cause is logged, not shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// `Retry-After` for an unreachable dependency: a pool timeout or a
/// restarting database is usually over within seconds.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(5);
/// `Retry-After` for a lock held too long (SQLite `SQLITE_BUSY`, a PostgreSQL
/// lock timeout): the holder finishes soon.
pub const STORAGE_BUSY_RETRY_AFTER: Duration = Duration::from_secs(5);
/// `Retry-After` for a full disk: an operator has to free space, so clients
/// should back off longer than for a busy lock.
pub const STORAGE_FULL_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The body of a 403 `step_up_required`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepUp {
    pub required_aal: crate::session::Aal,
    pub max_age: u64,
    pub methods: Vec<String>,
}

impl Error {
    pub fn invalid(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Error::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn gone(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Gone {
            code,
            message: message.into(),
        }
    }

    /// 503 `unavailable`: a dependency cannot be reached.
    pub fn unavailable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Unavailable {
            code: ErrorCode::Unavailable,
            retry_after_secs: UNAVAILABLE_RETRY_AFTER.as_secs(),
            source: source.into(),
        }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Internal(Box::new(e))
    }

    pub fn internal_msg(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into().into())
    }

    /// The stable code for the response body.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Invalid { code, .. }
            | Error::Forbidden { code, .. }
            | Error::NotFound { code, .. }
            | Error::Conflict { code, .. }
            | Error::Gone { code, .. }
            | Error::Unavailable { code, .. } => *code,
            Error::Unauthenticated => ErrorCode::Unauthenticated,
            Error::StepUpRequired(_) => ErrorCode::StepUpRequired,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The HTTP status class, from the code.
    pub fn status(&self) -> Status {
        self.code().status()
    }

    /// Seconds a client should wait before retrying, for the `Retry-After`
    /// header: set on every 429 and every 503.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after_secs } | Error::Unavailable { retry_after_secs, .. } => {
                Some(*retry_after_secs)
            }
            _ => None,
        }
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Conflict(what) => Error::conflict(what, "already exists"),
            StoreError::Refused(refusal) => refusal.error(),
            StoreError::Unavailable(src) => Error::unavailable(src),
            StoreError::Full(source) => Error::Unavailable {
                code: ErrorCode::StorageFull,
                retry_after_secs: STORAGE_FULL_RETRY_AFTER.as_secs(),
                source,
            },
            StoreError::Busy(source) => Error::Unavailable {
                code: ErrorCode::StorageBusy,
                retry_after_secs: STORAGE_BUSY_RETRY_AFTER.as_secs(),
                source,
            },
            StoreError::Corrupt(msg) => Error::internal_msg(msg),
            StoreError::Backend(src) => Error::Internal(src),
        }
    }
}
