//! The token endpoint (RFC 6749 §3.2) and what it issues.
//!
//! Built: the `client_credentials` grant (RFC 6749 §4.4), for a
//! confidential client acting on its own behalf. Its access token is a JWT
//! in the RFC 9068 profile (`typ: at+jwt`; `iss`, `exp`, `aud`, `sub`,
//! `client_id`, `iat`, `jti`, `scope`), signed with the provider's default
//! key, so a resource server verifies it against the JWK Set without
//! calling Signet. `sub` is the client id (RFC 9068 §2.2: no resource owner
//! is involved), `aud` the client id too (no `resource` indicator is
//! supported yet). Lifetimes are the client's `access_token_ttl_secs`.
//!
//! Every grant and every refusal is recorded in the audit log, each in its
//! own unit of work that commits before the answer is sent.
//!
//! Also built: the `authorization_code` grant (RFC 6749 §4.1.3, OpenID
//! Connect Core §3.1.3), which redeems a code (see [`super::codes`]) and
//! answers an ES256 ID token beside the access token.
//!
//! And the `refresh_token` grant (RFC 6749 §6), in [`super::refresh`].

use serde::Serialize;
use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::oidc_client::{GrantType, OidcClient};
use uuid::Uuid;

use super::clients::{self, ClientAuth};
use super::discovery::issuer;
use super::error::{OAuthCode, OAuthError};
use crate::App;

/// The form fields the token endpoint reads (RFC 6749 §4.4.2).
#[derive(Clone, Debug, Default)]
pub struct TokenForm {
    pub grant_type: Option<String>,
    pub scope: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Runs one token request: client authentication, then the grant. `auth`
/// is how the client presented itself, or why that could not be told (two
/// methods at once, a malformed Basic header): that refusal is audited
/// like any other.
pub async fn exchange(
    app: &App,
    origin: &Origin,
    auth: Result<ClientAuth, OAuthError>,
    form: &TokenForm,
) -> Result<TokenResponse, OAuthError> {
    let claimed = auth.as_ref().ok().map(|a| a.client_id().to_owned());
    let result = match auth {
        Ok(auth) => grant(app, origin, &auth, form).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((client, grant, response)) => {
            let record = AuditEvent::new(EventType::OidcTokenIssued, Actor::Anonymous, Outcome::Success)
                .from_origin(origin)
                .details(json!({
                    "client_id": client.client_id,
                    "grant_type": grant.as_str(),
                    "scope": response.scope,
                }));
            let mut tx = app.store.begin().await?;
            app.audit().append(&mut *tx, &record).await?;
            tx.commit().await?;
            Ok(response)
        }
        Err(OAuthError::Refused { code, description }) => {
            let record = AuditEvent::new(EventType::OidcTokenRefused, Actor::Anonymous, Outcome::Denied)
                .from_origin(origin)
                .details(json!({
                    "client_id": claimed,
                    "grant_type": form.grant_type,
                    "error": code.as_str(),
                }));
            let mut tx = app.store.begin().await?;
            app.audit().append(&mut *tx, &record).await?;
            tx.commit().await?;
            Err(OAuthError::Refused { code, description })
        }
        Err(platform) => Err(platform),
    }
}

async fn grant(
    app: &App,
    origin: &Origin,
    auth: &ClientAuth,
    form: &TokenForm,
) -> Result<(OidcClient, GrantType, TokenResponse), OAuthError> {
    let grant_type = form
        .grant_type
        .as_deref()
        .ok_or_else(|| OAuthError::new(OAuthCode::InvalidRequest, "grant_type is required"))?;
    let grant = match GrantType::parse(grant_type) {
        Some(GrantType::ClientCredentials) => GrantType::ClientCredentials,
        Some(GrantType::AuthorizationCode) => GrantType::AuthorizationCode,
        Some(GrantType::RefreshToken) => GrantType::RefreshToken,
        _ => {
            return Err(OAuthError::new(
                OAuthCode::UnsupportedGrantType,
                "this grant type is not supported",
            ))
        }
    };
    let client = clients::authenticate(app, auth).await?;
    if matches!(grant, GrantType::AuthorizationCode | GrantType::RefreshToken) {
        if !client.allows_grant(grant) {
            return Err(OAuthError::new(
                OAuthCode::UnauthorizedClient,
                "this client may not use this grant type",
            ));
        }
        let response = match grant {
            GrantType::RefreshToken => {
                super::refresh::refresh(
                    app,
                    origin,
                    &client,
                    form.refresh_token.as_deref(),
                    form.scope.as_deref(),
                )
                .await?
            }
            _ => authorization_code(app, origin, &client, form).await?,
        };
        return Ok((client, grant, response));
    }
    if !client.allows_grant(grant) || client.is_public() {
        return Err(OAuthError::new(
            OAuthCode::UnauthorizedClient,
            "this client may not use this grant type",
        ));
    }
    let scope = granted_scope(&client, form.scope.as_deref())?;
    let response = client_credentials(app, &client, scope)?;
    Ok((client, grant, response))
}

/// The scopes granted: the requested ones, each allowed to the client.
/// `openid` names a user's identity, which this grant has none of, so it is
/// refused here (RFC 6749 §5.2 `invalid_scope`).
fn granted_scope(client: &OidcClient, requested: Option<&str>) -> Result<Option<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(None);
    };
    let mut granted: Vec<&str> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if s == "openid" || !client.settings.scopes.iter().any(|a| a == s) {
            return Err(OAuthError::new(
                OAuthCode::InvalidScope,
                format!("scope {s:?} is not allowed for this client and grant"),
            ));
        }
        if !granted.contains(&s) {
            granted.push(s);
        }
    }
    Ok((!granted.is_empty()).then(|| granted.join(" ")))
}

fn client_credentials(app: &App, client: &OidcClient, scope: Option<String>) -> Result<TokenResponse, OAuthError> {
    let now = app.clock.now().as_millis() / 1000;
    let ttl = client.settings.access_token_ttl_secs;
    let mut claims = json!({
        "iss": issuer(&app.settings),
        "sub": client.client_id,
        "aud": client.client_id,
        "client_id": client.client_id,
        "iat": now,
        "exp": now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
        "jti": Uuid::new_v4().to_string(),
    });
    if let (Some(scope), Some(obj)) = (&scope, claims.as_object_mut()) {
        obj.insert("scope".into(), scope.clone().into());
    }
    let access_token = app.oidc.keys.default_key().sign("at+jwt", &claims)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope,
        id_token: None,
        refresh_token: None,
    })
}

/// The `authorization_code` grant: redeem the code, then sign the ID token
/// and the access token. The user must still be active.
async fn authorization_code(
    app: &App,
    origin: &Origin,
    client: &OidcClient,
    form: &TokenForm,
) -> Result<TokenResponse, OAuthError> {
    let redeemed = super::codes::redeem(
        app,
        origin,
        client,
        form.code.as_deref(),
        form.redirect_uri.as_deref(),
        form.code_verifier.as_deref(),
    )
    .await?;
    let grant = &redeemed.grant;
    let user = app
        .store
        .user_by_id(signet_core::user::UserId(grant.user_id))
        .await?
        .filter(|u| u.is_active())
        .ok_or_else(|| OAuthError::new(OAuthCode::InvalidGrant, "the account is no longer active"))?;
    let keys = &app.oidc.keys;
    // The client's registered ID token algorithm (RS256 for relying
    // parties that verify nothing else), else the default ES256.
    let id_key = client
        .settings
        .id_token_signed_response_alg
        .as_deref()
        .and_then(super::keys::Alg::parse)
        .and_then(|alg| keys.for_alg(alg))
        .unwrap_or_else(|| keys.default_key());
    let id_token = id_key.sign("JWT", &super::claims::id_token(app, client, grant, &user))?;
    let access_token = keys.default_key().sign(
        super::introspection::ACCESS_TOKEN_TYP,
        &super::claims::access_token(app, client, grant, redeemed.id),
    )?;
    let refresh_token = if super::refresh::offered(client, grant) {
        let mut tx = app.store.begin().await?;
        let token = super::refresh::issue_in(app, &mut *tx, client, grant, redeemed.id).await?;
        tx.commit().await?;
        Some(token.expose_secret().to_owned())
    } else {
        None
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: client.settings.access_token_ttl_secs,
        scope: Some(grant.scope.join(" ")),
        id_token: Some(id_token),
        refresh_token,
    })
}
