//! Token introspection (RFC 7662): a resource server asks whether an
//! access token Signet issued is active, and what it carries.
//!
//! Only an authenticated confidential client may ask (RFC 7662 §2.1: the
//! endpoint must be protected, so that it is not an oracle for scanning
//! tokens); a public client gets `invalid_client`. The answer for anything
//! that is not an active token of ours (malformed, forged, signed by a key
//! we do not hold, of another issuer, expired) is the same
//! `{"active": false}` (§2.2), never a hint of why.
//!
//! Access tokens are RFC 9068 JWTs today (ADR 0021), so introspection is
//! verification against the provider's own keys, the expiry check, and,
//! for a token issued from a user's grant (its `grant_id`), whether that
//! grant still stands: a token whose grant was revoked (RFC 7009
//! revocation, code or refresh-token reuse, the user signed out
//! everywhere) is `{"active": false}` before it expires.

use serde_json::{json, Value};

use super::clients::{self, ClientAuth};
use super::discovery::issuer;
use super::error::{OAuthCode, OAuthError};
use crate::App;

/// The `typ` of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The introspection response for `token`, asked by the client `auth`.
pub async fn introspect(app: &App, auth: &ClientAuth, token: Option<&str>) -> Result<Value, OAuthError> {
    let client = clients::authenticate(app, auth).await?;
    if client.is_public() {
        return Err(OAuthError::new(
            OAuthCode::InvalidClient,
            "only a confidential client may introspect tokens",
        ));
    }
    let token = token.ok_or_else(|| OAuthError::new(OAuthCode::InvalidRequest, "token is required"))?;
    let inactive = || json!({ "active": false });
    let Some(mut claims) = active_claims(app, token) else {
        return Ok(inactive());
    };
    // The private `grant_id` claim is Signet's own bookkeeping, not shown.
    if let Some(grant) = claims.as_object_mut().and_then(|o| o.remove("grant_id")) {
        let standing = match grant.as_str().map(uuid::Uuid::parse_str) {
            Some(Ok(id)) => super::codes::standing(app, id).await?,
            _ => false,
        };
        if !standing {
            return Ok(inactive());
        }
    }
    Ok(claims)
}

fn active_claims(app: &App, token: &str) -> Option<Value> {
    let claims = app.oidc.keys.verify(token, ACCESS_TOKEN_TYP)?;
    if claims.get("iss")?.as_str()? != issuer(&app.settings) {
        return None;
    }
    let now_secs = app.clock.now().as_millis() / 1000;
    if claims.get("exp")?.as_i64()? <= now_secs {
        return None;
    }
    let mut out = json!({ "active": true, "token_type": "Bearer" });
    let obj = out.as_object_mut()?;
    for key in [
        "scope",
        "client_id",
        "sub",
        "aud",
        "iss",
        "exp",
        "iat",
        "jti",
        "grant_id",
    ] {
        if let Some(v) = claims.get(key) {
            obj.insert(key.into(), v.clone());
        }
    }
    Some(out)
}
