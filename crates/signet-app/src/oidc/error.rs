//! OAuth 2.0 errors in the shape RFC 6749 §5.2 fixes:
//! `{"error": "<code>", "error_description": "<text>"}`.
//!
//! These codes are not [`signet_core::ErrorCode`]s: relying-party
//! libraries branch on the RFC's names, so the token endpoint must speak
//! them and nothing else (docs/api.md lists Signet's own codes; this set is
//! the RFC's). Storage trouble still surfaces as Signet's 503
//! `storage_full`/`storage_busy` through [`OAuthError::Platform`], because
//! RFC 6749 has no code for "try again later" and a 503 with `Retry-After`
//! is what a client can act on.

use signet_core::Error;

/// An RFC 6749 §5.2 error code (plus RFC 6749 §4.1.2.1 codes used on the
/// authorization endpoint later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OAuthCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// RFC 7009 §2.2.1: the server cannot revoke this type of token.
    UnsupportedTokenType,
}

impl OAuthCode {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthCode::InvalidRequest => "invalid_request",
            OAuthCode::InvalidClient => "invalid_client",
            OAuthCode::InvalidGrant => "invalid_grant",
            OAuthCode::UnauthorizedClient => "unauthorized_client",
            OAuthCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthCode::InvalidScope => "invalid_scope",
            OAuthCode::UnsupportedTokenType => "unsupported_token_type",
        }
    }

    /// RFC 6749 §5.2: 400, except `invalid_client`, which is 401 (with
    /// `WWW-Authenticate` when the client tried HTTP Basic).
    pub fn http_status(self) -> u16 {
        match self {
            OAuthCode::InvalidClient => 401,
            _ => 400,
        }
    }
}

/// What the token endpoint answers with when it does not issue a token.
#[derive(Debug)]
pub enum OAuthError {
    /// A refusal the client can read.
    Refused { code: OAuthCode, description: String },
    /// Signet could not do its part (storage full or busy, a bug): mapped
    /// like every other Signet error.
    Platform(Error),
}

impl OAuthError {
    pub fn new(code: OAuthCode, description: impl Into<String>) -> Self {
        OAuthError::Refused {
            code,
            description: description.into(),
        }
    }
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> Self {
        OAuthError::Platform(e)
    }
}

impl From<signet_core::store::StoreError> for OAuthError {
    fn from(e: signet_core::store::StoreError) -> Self {
        OAuthError::Platform(e.into())
    }
}
