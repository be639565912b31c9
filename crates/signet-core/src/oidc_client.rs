//! An OpenID Connect relying party registered with Signet (a "client",
//! RFC 6749 §2).
//!
//! What must stay true:
//! - a confidential client's secret is stored only as a hash
//!   ([`TokenHash`]); the plaintext is shown once when it is generated;
//! - a public client ([`OidcClient::is_public`]) has no secret and must use
//!   PKCE (RFC 9700 §2.1.1), which the authorization endpoint enforces;
//! - redirect URIs are compared exactly, character for character (RFC 9700
//!   §4.1.3, OIDC Core §3.1.2.1), so they are stored exactly as registered.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::secret::TokenHash;
use crate::session::Aal;

/// An OAuth 2.0 grant type a client may use (RFC 6749 §4, §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ]
        .into_iter()
        .find(|g| g.as_str() == s)
    }
}

/// Where a client's registration came from. A `config` client is written
/// from `[[oidc.clients]]` at every start, so edits made elsewhere to it do
/// not last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSource {
    Cli,
    Config,
    Admin,
}

impl ClientSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientSource::Cli => "cli",
            ClientSource::Config => "config",
            ClientSource::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [ClientSource::Cli, ClientSource::Config, ClientSource::Admin]
            .into_iter()
            .find(|g| g.as_str() == s)
    }
}

/// The assurance an app demands of every sign-in for it, on top of the
/// user's tier and whatever the request asks (`acr_values`, `max_age`):
/// the strictest of them wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientAssurance {
    /// The lowest authenticator assurance level a session must have.
    pub min_aal: Option<Aal>,
    /// Only phishing-resistant authenticators (NIST SP 800-63B rev. 4
    /// §3.2.5: passkeys, not codes or links).
    pub phishing_resistant: bool,
    /// The oldest authentication accepted, in seconds (like `max_age`).
    pub max_auth_age_secs: Option<u64>,
}

/// What a client may do and for how long its tokens live. Stored as one
/// JSON document beside the client's identity (it is read and written as a
/// whole, never queried by field).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSettings {
    /// Exact redirect URIs (at least one for the authorization code grant).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser afterwards.
    pub post_logout_redirect_uris: Vec<String>,
    /// Scopes the client may ask for (`openid` is always allowed).
    pub scopes: Vec<String>,
    pub grant_types: Vec<GrantType>,
    /// A first-party app skips the consent screen.
    pub first_party: bool,
    pub id_token_ttl_secs: u64,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// Where back-channel logout tokens are POSTed, if anywhere.
    pub backchannel_logout_uri: Option<String>,
    /// The client needs the `sid` claim in logout tokens (Back-Channel
    /// Logout 1.0 §2.2). Signet always sends it, so this is recorded as
    /// registered and shown back.
    pub backchannel_logout_session_required: bool,
    pub assurance: ClientAssurance,
    /// The JWS algorithm of this client's ID tokens (`ES256` or `RS256`;
    /// OpenID Connect Dynamic Client Registration §2
    /// `id_token_signed_response_alg`); `None` is the default, ES256.
    pub id_token_signed_response_alg: Option<String>,
}

/// Default lifetimes: short enough that a stolen token does little, long
/// enough that a relying party does not hammer the token endpoint.
pub const DEFAULT_ID_TOKEN_TTL_SECS: u64 = 5 * 60;
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 10 * 60;
pub const DEFAULT_REFRESH_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

/// The scopes a client gets when none are configured.
pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            grant_types: vec![GrantType::AuthorizationCode],
            first_party: false,
            id_token_ttl_secs: DEFAULT_ID_TOKEN_TTL_SECS,
            access_token_ttl_secs: DEFAULT_ACCESS_TOKEN_TTL_SECS,
            refresh_token_ttl_secs: DEFAULT_REFRESH_TOKEN_TTL_SECS,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            assurance: ClientAssurance::default(),
            id_token_signed_response_alg: None,
        }
    }
}

/// A registered client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcClient {
    pub id: Uuid,
    /// The public identifier the client presents (RFC 6749 §2.2).
    pub client_id: String,
    pub name: String,
    /// `None` for a public client.
    pub secret_hash: Option<TokenHash>,
    pub settings: ClientSettings,
    pub source: ClientSource,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The secret replaced by the last rotation, still accepted until its
    /// `expires_at` (the grace period while the app is redeployed).
    pub previous_secret: Option<PreviousSecret>,
}

/// A rotated-out client secret and the end of its grace period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousSecret {
    pub hash: TokenHash,
    pub expires_at: Timestamp,
}

impl OidcClient {
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// The hashes of the secrets that authenticate this client at `now`:
    /// the current one, and the previous one during its grace period.
    pub fn accepted_secret_hashes(&self, now: Timestamp) -> Vec<&TokenHash> {
        let previous = self
            .previous_secret
            .as_ref()
            .filter(|p| now < p.expires_at)
            .map(|p| &p.hash);
        self.secret_hash.iter().chain(previous).collect()
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.settings.grant_types.contains(&grant)
    }

    /// Exact string comparison (RFC 9700 §4.1.3): no normalisation, no
    /// prefix or pattern matching, so a trailing slash, a changed case or an
    /// added query string is a different URI.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.settings.redirect_uris.iter().any(|r| r == uri)
    }

    /// The same exact comparison for RP-initiated logout's
    /// `post_logout_redirect_uri` (RP-Initiated Logout 1.0 §3.1).
    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.settings.post_logout_redirect_uris.iter().any(|r| r == uri)
    }
}

/// What a user allowed a third-party client (OpenID Connect Core §3.1.2.4):
/// the scopes approved, remembered so the consent page is not shown again
/// for the same or fewer scopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcConsent {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub granted_at: Timestamp,
}

impl OidcConsent {
    /// Whether every scope in `asked` was approved.
    pub fn covers(&self, asked: &[String]) -> bool {
        scopes_cover(&self.scopes, asked)
    }
}

/// Whether every scope in `asked` is among the `approved` ones.
pub fn scopes_cover(approved: &[String], asked: &[String]) -> bool {
    asked.iter().all(|s| approved.contains(s))
}
