//! Refresh tokens (RFC 6749 §6, OpenID Connect Core §11–12, RFC 9700
//! §4.14.2).
//!
//! - Issued only when the user granted `offline_access` to a client
//!   allowed the `refresh_token` grant.
//! - 256 random bits (`sgrt_`), stored only as a hash, bound to the client.
//! - Rotated on every use by one conditional write: the used token is
//!   rotated out and a new one of the same family issued in the same unit
//!   of work. A rotated-out token presented again is a replay (one of the
//!   two holders is an attacker): the whole family is revoked, with every
//!   access token issued from it (RFC 9700 §4.14.2).
//! - A family never gains assurance: new tokens carry the `acr`, `amr` and
//!   `auth_time` of the sign-in that started it, and a requested `scope`
//!   may only narrow it (RFC 6749 §6).
//! - Signing a user out everywhere revokes all of their families
//!   ([`crate::sessions::end_everywhere`]).
//!
//! A refresh answers an access token and the next refresh token; no new ID
//! token (Core §12.2 makes it optional).

use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::oidc_client::{GrantType, OidcClient};
use signet_core::secret::{PlainToken, TokenKind};
use signet_core::unit_of_work::{NewRefreshToken, RefreshRotation, Transaction};
use signet_core::user::UserId;
use uuid::Uuid;

use super::codes::CodeGrant;
use super::error::{OAuthCode, OAuthError};
use super::tokens::TokenResponse;
use crate::App;

/// Whether this grant yields a refresh token for this client.
pub fn offered(client: &OidcClient, grant: &CodeGrant) -> bool {
    client.allows_grant(GrantType::RefreshToken) && grant.scope.iter().any(|s| s == "offline_access")
}

/// Stores a new refresh token of `family` in `tx` and returns it.
pub async fn issue_in(
    app: &App,
    tx: &mut dyn Transaction,
    client: &OidcClient,
    grant: &CodeGrant,
    family: Uuid,
) -> Result<PlainToken, OAuthError> {
    let body =
        serde_json::to_string(grant).map_err(|e| signet_core::Error::Internal(format!("refresh grant: {e}").into()))?;
    // A grant revoked since it was checked (signed out everywhere, the app
    // revoked, its code reused) issues nothing more: the revocation marks
    // the code row, and this unit reads it before inserting.
    if tx.oidc_code_standing(family).await? != Some(true) {
        return Err(OAuthError::new(OAuthCode::InvalidGrant, "the grant was revoked"));
    }
    let token = PlainToken::generate(TokenKind::RefreshToken);
    let ttl = std::time::Duration::from_secs(client.settings.refresh_token_ttl_secs);
    tx.insert_oidc_refresh(&NewRefreshToken {
        hash: &token.hash(),
        id: Uuid::new_v4(),
        family,
        client_id: &client.client_id,
        user_id: grant.user_id,
        grant: &body,
        expires_at: app.clock.now().plus(ttl),
    })
    .await?;
    Ok(token)
}

/// The `refresh_token` grant.
pub async fn refresh(
    app: &App,
    origin: &Origin,
    client: &OidcClient,
    presented: Option<&str>,
    scope: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let invalid = |why: &str| OAuthError::new(OAuthCode::InvalidGrant, why.to_owned());
    let presented = presented.ok_or_else(|| OAuthError::new(OAuthCode::InvalidRequest, "refresh_token is required"))?;
    let Some(presented) = PlainToken::parse(TokenKind::RefreshToken, presented) else {
        return Err(invalid("the refresh token is not valid"));
    };
    let now = app.clock.now();
    let mut tx = app.store.begin().await?;
    let (family, owner, body, expires_at, revoked) = match tx.rotate_oidc_refresh(&presented.hash(), now).await? {
        RefreshRotation::Unknown => {
            tx.rollback().await?;
            return Err(invalid("the refresh token is not valid"));
        }
        RefreshRotation::Reused { family, client_id } => {
            let revoked = tx.revoke_oidc_family(family, now).await?;
            let record = AuditEvent::new(EventType::OidcRefreshReused, Actor::Anonymous, Outcome::Denied)
                .from_origin(origin)
                .details(json!({
                    "client_id": client_id,
                    "family": family,
                    "presented_by": client.client_id,
                    "revoked": revoked,
                }));
            app.audit().append(&mut *tx, &record).await?;
            tx.commit().await?;
            return Err(invalid("the refresh token was already used; its family is revoked"));
        }
        RefreshRotation::Rotated {
            family,
            client_id,
            grant,
            expires_at,
            revoked,
        } => (family, client_id, grant, expires_at, revoked),
    };
    if revoked || owner != client.client_id || expires_at <= now {
        tx.rollback().await?;
        return Err(invalid("the refresh token is not valid"));
    }
    let mut grant: CodeGrant = serde_json::from_str(&body)
        .map_err(|e| signet_core::Error::Internal(format!("stored refresh grant: {e}").into()))?;
    if let Some(requested) = scope {
        let mut narrowed: Vec<String> = Vec::new();
        for s in requested.split(' ').filter(|s| !s.is_empty()) {
            if !grant.scope.iter().any(|g| g == s) {
                tx.rollback().await?;
                return Err(OAuthError::new(
                    OAuthCode::InvalidScope,
                    format!("scope {s:?} was not granted"),
                ));
            }
            if !narrowed.iter().any(|n| n == s) {
                narrowed.push(s.to_owned());
            }
        }
        grant.scope = narrowed;
    }
    let next = issue_in(app, &mut *tx, client, &grant, family).await?;
    tx.commit().await?;
    let active = app
        .store
        .user_by_id(UserId(grant.user_id))
        .await?
        .is_some_and(|u| u.is_active());
    if !active {
        return Err(invalid("the account is no longer active"));
    }
    let access_token = app.oidc.keys.default_key().sign(
        super::introspection::ACCESS_TOKEN_TYP,
        &super::claims::access_token(app, client, &grant, family),
    )?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: client.settings.access_token_ttl_secs,
        scope: Some(grant.scope.join(" ")),
        id_token: None,
        refresh_token: Some(next.expose_secret().to_owned()),
    })
}
