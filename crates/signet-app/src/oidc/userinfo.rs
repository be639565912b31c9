//! The UserInfo endpoint (OpenID Connect Core §5.3): the signed-in user's
//! claims, for an access token from the authorization code grant, sent as
//! a bearer token (RFC 6750 §2.1 header, or §2.2 form body on POST).
//!
//! A token is accepted only if Signet signed it, for this issuer, it has
//! not expired, the code it was issued from has not been revoked (code
//! reuse), it names a user who is still active, and its scope has
//! `openid`. Anything else is `invalid_token` (RFC 6750 §3.1) with no
//! reason beyond that; a client-credentials token names no user and is
//! refused the same way.

use serde_json::Value;
use signet_core::user::UserId;
use signet_core::Result;
use uuid::Uuid;

use super::claims::profile;
use super::discovery::issuer;
use super::introspection::ACCESS_TOKEN_TYP;
use crate::App;

/// The user's claims, or `None` when the token is not a usable one.
pub async fn userinfo(app: &App, token: &str) -> Result<Option<Value>> {
    let Some(claims) = app.oidc.keys.verify(token, ACCESS_TOKEN_TYP) else {
        return Ok(None);
    };
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str);
    let now_secs = app.clock.now().as_millis() / 1000;
    let live = str_claim("iss") == Some(issuer(&app.settings).as_str())
        && claims.get("exp").and_then(Value::as_i64).is_some_and(|e| e > now_secs);
    let scope: Vec<String> = str_claim("scope")
        .unwrap_or_default()
        .split(' ')
        .map(str::to_owned)
        .collect();
    let (Some(grant_id), Some(sub)) = (
        str_claim("grant_id").and_then(|j| Uuid::parse_str(j).ok()),
        str_claim("sub").and_then(|s| Uuid::parse_str(s).ok()),
    ) else {
        return Ok(None);
    };
    if !live || !scope.iter().any(|s| s == "openid") || !super::codes::standing(app, grant_id).await? {
        return Ok(None);
    }
    let Some(user) = app.store.user_by_id(UserId(sub)).await?.filter(|u| u.is_active()) else {
        return Ok(None);
    };
    Ok(Some(Value::Object(profile(&user, &scope))))
}
