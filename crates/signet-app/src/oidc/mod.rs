//! Signet as an OpenID Provider (OpenID Connect Core 1.0, OAuth 2.0 RFC
//! 6749, the OAuth 2.0 Security BCP RFC 9700).
//!
//! Built so far, each in its own module:
//! - [`keys`]: the shared, sealed signing keys (ES256 default, RS256) and
//!   the JWK Set;
//! - [`discovery`]: `/.well-known/openid-configuration` (OpenID Connect
//!   Discovery 1.0 §3), which advertises only what is implemented;
//! - [`client_cache`]: each node's one-second memory of client rows;
//! - [`clients`]: registered relying parties (CLI and `[[oidc.clients]]`),
//!   secrets stored hashed, and client authentication (RFC 6749 §2.3.1:
//!   `client_secret_basic` and `client_secret_post`);
//! - [`tokens`]: the token endpoint's `client_credentials` grant (RFC 6749
//!   §4.4), answering with JWT access tokens (RFC 9068);
//! - [`introspection`]: RFC 7662 token introspection for confidential
//!   clients (resource servers);
//! - [`error`]: the RFC 6749 §5.2 error shape, kept apart from Signet's own
//!   `{"error","message"}` codes.
//!
//! - [`authorize`]: the authorization endpoint (code flow, PKCE S256,
//!   login continuation, `prompt`, `max_age`, `acr_values`);
//! - [`codes`]: single-use authorization codes, sealed until redeemed (ADR
//!   0038);
//! - [`claims`]: ID token, access token and UserInfo claims;
//! - [`userinfo`]: the UserInfo endpoint (OpenID Connect Core §5.3).
//!
//! - [`refresh`]: rotating refresh tokens for `offline_access`.
//! - [`consent`]: the consent page for third-party clients and the apps a
//!   user has let in;
//! - signing-key rotation ([`keys::rotate`]) and client updates and secret
//!   rotation ([`clients::update`], [`clients::rotate_secret`]).
//!
//! - [`revocation`]: RFC 7009 token revocation;
//! - [`logout`]: RP-initiated logout (the end-session endpoint) and
//!   back-channel logout tokens queued in the outbox whenever a session
//!   ends.

pub mod authorize;
pub mod claims;
pub mod client_cache;
pub mod clients;
pub mod codes;
pub mod consent;
pub mod discovery;
pub mod error;
pub mod introspection;
pub mod keys;
pub mod logout;
pub mod refresh;
pub mod revocation;
pub mod tokens;
pub mod userinfo;

use signet_core::clock::SharedClock;
use signet_core::sealing::KeyRing;
use signet_core::store::{CredentialStore, SealedSecretStore};
use signet_core::Result;

/// The provider's state shared by every request: its signing keys and
/// this node's memory of registered clients.
#[derive(Debug)]
pub struct Provider {
    pub keys: keys::LiveKeys,
    pub clients: client_cache::ClientCache,
}

impl Provider {
    /// Opens (or, on the first start of a deployment, creates) the shared
    /// signing keys. `signet serve` re-reads them every
    /// [`keys::RELOAD_INTERVAL`] ([`keys::LiveKeys::reload`]).
    pub async fn load<S>(store: &S, ring: &KeyRing, clock: SharedClock) -> Result<Self>
    where
        S: CredentialStore + SealedSecretStore + ?Sized,
    {
        let set = keys::KeySet::load(store, ring, clock.now()).await?;
        Ok(Self {
            keys: keys::LiveKeys::new(set, clock),
            clients: client_cache::ClientCache::default(),
        })
    }
}
