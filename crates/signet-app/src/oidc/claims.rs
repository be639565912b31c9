//! What Signet says about a user to a relying party: the ID token (OpenID
//! Connect Core §2, §3.1.3.6) and the UserInfo response (§5.3).
//!
//! `sub` is the user's id: stable for the life of the account and the same
//! for every client (public subject type, Core §8). `acr` states what the
//! session proved (`phrh`, `phr`, or its NIST AAL), `amr` the methods
//! used (RFC 8176 style names from the methods), `sid` the session (for
//! logout). Profile claims follow the granted scopes (§5.4): `email`
//! gives `email` and `email_verified`, `profile` gives `name` when the
//! account has one, `groups` gives `groups`: the account's roles (the
//! same names the policy file's `[assignment] roles` maps to tiers;
//! Signet has no separate notion of groups).
//!
//! `email_verified` is `true`: an account's address is where its
//! invitation link was sent and where email codes and links arrive, so
//! signing in with it at all shows control of it; Signet has no unverified
//! addresses.

use serde_json::{json, Map, Value};
use signet_core::oidc_client::OidcClient;
use signet_core::user::User;
use uuid::Uuid;

use super::codes::CodeGrant;
use super::discovery::issuer;
use crate::App;

/// The profile claims the granted `scope` allows.
pub fn profile(user: &User, scope: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("sub".into(), user.id.to_string().into());
    if scope.iter().any(|s| s == "email") {
        out.insert("email".into(), user.email.to_string().into());
        out.insert("email_verified".into(), true.into());
    }
    if scope.iter().any(|s| s == "profile") {
        if let Some(name) = &user.name {
            out.insert("name".into(), name.clone().into());
        }
    }
    if scope.iter().any(|s| s == "groups") {
        out.insert("groups".into(), json!(user.roles));
    }
    out
}

/// The ID token's claims.
pub fn id_token(app: &App, client: &OidcClient, grant: &CodeGrant, user: &User) -> Value {
    let now = app.clock.now().as_millis() / 1000;
    let ttl = i64::try_from(client.settings.id_token_ttl_secs).unwrap_or(i64::MAX);
    let mut claims = profile(user, &grant.scope);
    let base = json!({
        "iss": issuer(&app.settings),
        "aud": client.client_id,
        "azp": client.client_id,
        "iat": now,
        "exp": now.saturating_add(ttl),
        "auth_time": grant.auth_time,
        "acr": grant.acr,
        "amr": grant.amr,
        "sid": grant.session_id.to_string(),
    });
    if let Value::Object(base) = base {
        claims.extend(base);
    }
    if let Some(nonce) = &grant.nonce {
        claims.insert("nonce".into(), nonce.clone().into());
    }
    Value::Object(claims)
}

/// The access token's claims (RFC 9068). `grant_id` (a private claim) is
/// the id of the code it descends from, directly or through refresh
/// tokens: revoking that grant (code reuse, refresh reuse, signing out
/// everywhere) revokes the token.
/// `scope` is the grant's scopes, space-separated (`grant.scope` joined
/// once by the caller, which also answers with it).
pub fn access_token(app: &App, client: &OidcClient, grant: &CodeGrant, grant_id: Uuid, scope: &str) -> Value {
    let now = app.clock.now().as_millis() / 1000;
    let ttl = i64::try_from(client.settings.access_token_ttl_secs).unwrap_or(i64::MAX);
    json!({
        "iss": issuer(&app.settings),
        "sub": grant.user_id.to_string(),
        "aud": client.client_id,
        "client_id": client.client_id,
        "iat": now,
        "exp": now.saturating_add(ttl),
        "jti": Uuid::new_v4().to_string(),
        "grant_id": grant_id.to_string(),
        "scope": scope,
        "auth_time": grant.auth_time,
        "acr": grant.acr,
        "sid": grant.session_id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_core::clock::Timestamp;
    use signet_core::user::{NewUser, UserId};

    fn scope(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn groups_are_the_roles_and_only_with_the_groups_scope() {
        let roles = vec!["admin".to_owned(), "finance".to_owned()];
        let user = NewUser::parse("ada@example.com", None, Some("Ada"), &roles)
            .unwrap()
            .into_user(UserId::default(), Timestamp::from_millis(0));
        let with = profile(&user, &scope("openid groups"));
        assert_eq!(with.get("groups"), Some(&json!(["admin", "finance"])));
        assert!(with.get("email").is_none() && with.get("name").is_none());
        let without = profile(&user, &scope("openid email profile"));
        assert!(without.get("groups").is_none());
        assert_eq!(without.get("name"), Some(&json!("Ada")));
        let none = NewUser::parse("bob@example.com", None, None, &[])
            .unwrap()
            .into_user(UserId::default(), Timestamp::from_millis(0));
        assert_eq!(profile(&none, &scope("openid groups")).get("groups"), Some(&json!([])));
    }
}
