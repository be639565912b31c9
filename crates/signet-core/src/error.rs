//! The domain's error type. Each variant carries a stable snake_case code
//! (documented in docs/api.md); `signet-web` maps variants to HTTP status in
//! exactly one place. Internal causes are kept for the log and never shown.

use std::borrow::Cow;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or a value is invalid (400).
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// No valid session or admin token (401).
    #[error("authentication required")]
    Unauthenticated,
    /// Authenticated, but not allowed (403).
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// A fresher or stronger authentication is needed (403 `step_up_required`).
    #[error("step-up required")]
    StepUpRequired(Box<StepUp>),
    /// The thing asked for does not exist, or the caller may not know it does (404).
    #[error("{message}")]
    NotFound {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// Conflicts with existing state, e.g. a duplicate email (409).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// A one-time secret was already used, has expired, or never existed (410).
    #[error("{message}")]
    Gone {
        code: &'static str,
        message: Cow<'static, str>,
    },
    /// Too many attempts (429).
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// A dependency such as the database is unreachable (503).
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A bug or an unexpected failure (500). The cause is logged, not shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The body of a 403 `step_up_required`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepUp {
    pub required_aal: crate::session::Aal,
    pub max_age: u64,
    pub methods: Vec<String>,
}

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Error::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn gone(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Error::Gone {
            code,
            message: message.into(),
        }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Internal(Box::new(e))
    }

    pub fn internal_msg(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into().into())
    }

    /// The stable code for the response body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. }
            | Error::Forbidden { code, .. }
            | Error::NotFound { code, .. }
            | Error::Conflict { code, .. }
            | Error::Gone { code, .. } => code,
            Error::Unauthenticated => "unauthenticated",
            Error::StepUpRequired(_) => "step_up_required",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Conflict(what) => Error::conflict(what, "already exists"),
            StoreError::Unavailable(src) => Error::Unavailable(src),
            StoreError::Corrupt(msg) => Error::internal_msg(msg),
            StoreError::Backend(src) => Error::Internal(src),
        }
    }
}
