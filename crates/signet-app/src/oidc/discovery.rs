//! The provider metadata document (OpenID Connect Discovery 1.0 §3,
//! RFC 8414 §2), served at `{public_url}/.well-known/openid-configuration`.
//!
//! The issuer is `public_url` exactly as configured, without a trailing
//! slash: Discovery §4.3 requires the `issuer` in the document to equal the
//! URL it was fetched under (minus the well-known suffix), and relying
//! parties compare it to every token's `iss` character for character.
//!
//! Only implemented endpoints and values are listed: a relying party that
//! reads the document must never be sent to a path that answers 404.

use serde_json::{json, Value};

use super::keys::Alg;
use crate::Settings;

/// The path of the JWK Set.
pub const JWKS_PATH: &str = "/oauth2/jwks";
/// The path of the token endpoint.
pub const TOKEN_PATH: &str = "/oauth2/token";
/// The path of the introspection endpoint (RFC 7662).
pub const INTROSPECTION_PATH: &str = "/oauth2/introspect";

/// The path of the revocation endpoint (RFC 7009).
pub const REVOCATION_PATH: &str = "/oauth2/revoke";

/// The path of the UserInfo endpoint (OpenID Connect Core §5.3).
pub const USERINFO_PATH: &str = "/oauth2/userinfo";

/// The issuer identifier: `public_url` without a trailing slash.
pub fn issuer(settings: &Settings) -> String {
    settings.public_url.as_str().trim_end_matches('/').to_owned()
}

/// The metadata document.
pub fn document(settings: &Settings) -> Value {
    let issuer = issuer(settings);
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "authorization_endpoint": format!("{issuer}{}", super::authorize::AUTHORIZATION_PATH),
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "userinfo_endpoint": format!("{issuer}{USERINFO_PATH}"),
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "acr_values_supported": ["phr", "phrh", "aal1", "aal2", "aal3"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint": format!("{issuer}{INTROSPECTION_PATH}"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint": format!("{issuer}{REVOCATION_PATH}"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "end_session_endpoint": format!("{issuer}{}", super::logout::END_SESSION_PATH),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": Alg::all().iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "scopes_supported": ["openid", "email", "profile", "offline_access", "groups"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp",
            "email", "email_verified", "name", "groups"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_has_no_trailing_slash_and_prefixes_every_endpoint() {
        let settings = Settings::new(url::Url::parse("https://id.example.com/").unwrap());
        let doc = document(&settings);
        assert_eq!(doc["issuer"], "https://id.example.com");
        assert_eq!(doc["jwks_uri"], "https://id.example.com/oauth2/jwks");
        assert_eq!(doc["token_endpoint"], "https://id.example.com/oauth2/token");
        assert_eq!(doc["id_token_signing_alg_values_supported"][0], "ES256");
        assert_eq!(doc["revocation_endpoint"], "https://id.example.com/oauth2/revoke");
        assert_eq!(doc["end_session_endpoint"], "https://id.example.com/oauth2/logout");
        assert_eq!(doc["backchannel_logout_supported"], true);
    }
}
