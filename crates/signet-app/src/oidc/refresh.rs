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
use signet_core::unit_of_work::{NewRefreshToken, RefreshRotation, Transaction, Tx};
use uuid::Uuid;

use super::codes::CodeGrant;
use super::error::{OAuthCode, OAuthError};
use super::tokens::Refused;
use crate::App;

/// Whether this grant yields a refresh token for this client.
pub fn offered(client: &OidcClient, grant: &CodeGrant) -> bool {
    client.allows_grant(GrantType::RefreshToken) && grant.scope.iter().any(|s| s == "offline_access")
}

/// Stores `token`, a new refresh token of `family` carrying `grant` (its
/// JSON document), in `tx`. The caller has established in the same unit
/// that the family stands: it redeemed the family's code there, or rotated
/// a token of it with a statement that read the code unrevoked. A
/// revocation marks the code row, and on SQLite the unit holds the only
/// writer, so none can slip in between.
pub async fn issue_in(
    app: &App,
    tx: &mut dyn Transaction,
    client: &OidcClient,
    token: &PlainToken,
    user_id: Uuid,
    grant: &str,
    family: Uuid,
) -> Result<(), OAuthError> {
    let ttl = std::time::Duration::from_secs(client.settings.refresh_token_ttl_secs);
    tx.insert_oidc_refresh(&NewRefreshToken {
        hash: &token.hash(),
        id: signet_core::ids::time_ordered(),
        family,
        client_id: &client.client_id,
        user_id,
        grant,
        expires_at: app.clock.now().plus(ttl),
    })
    .await?;
    Ok(())
}

/// A rotation done in an open unit of work: the grant it carries on, its
/// family (the code it descends from) and the next refresh token, stored.
pub struct Rotated {
    pub grant: CodeGrant,
    pub family: Uuid,
    pub next: PlainToken,
}

/// The `refresh_token` grant: rotates the presented token out and stores
/// the next one in a unit of work it hands back open, for the grant's
/// audit record to join it. Everything that does not depend on the stored
/// row (parsing, the next token) is done before the unit opens, and the
/// row, its family's standing and its user are read by the one rotating
/// statement: the unit holds SQLite's only writer, so it stays short.
pub async fn refresh(
    app: &App,
    origin: &Origin,
    client: &OidcClient,
    presented: Option<&str>,
    scope: Option<&str>,
) -> Result<(Tx, Rotated), Refused> {
    let invalid = |why: &str| OAuthError::new(OAuthCode::InvalidGrant, why.to_owned());
    let presented = presented.ok_or_else(|| OAuthError::new(OAuthCode::InvalidRequest, "refresh_token is required"))?;
    let Some(presented) = PlainToken::parse(TokenKind::RefreshToken, presented) else {
        return Err(invalid("the refresh token is not valid").into());
    };
    let hash = presented.hash();
    let next = PlainToken::generate(TokenKind::RefreshToken);
    let now = app.clock.now();
    let mut tx = app.store.begin().await?;
    let (family, body) = match tx.rotate_oidc_refresh(&hash, now).await? {
        // Nothing was written: the refusal's record takes this unit
        // rather than opening another.
        RefreshRotation::Unknown => {
            return Err(Refused::with_unit(invalid("the refresh token is not valid"), tx));
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
            return Err(Refused::with_unit(
                invalid("the refresh token was already used; its family is revoked"),
                tx,
            ));
        }
        RefreshRotation::Rotated {
            family,
            client_id,
            grant,
            expires_at,
            revoked,
            grant_standing,
            user_active,
        } => {
            // Presented by another client, expired, or of a revoked grant:
            // nothing changes (the rotation is undone).
            if revoked || client_id != client.client_id || expires_at <= now {
                tx.rollback().await?;
                return Err(invalid("the refresh token is not valid").into());
            }
            if !grant_standing {
                tx.rollback().await?;
                return Err(invalid("the grant was revoked").into());
            }
            // The account was disabled: the token is used up, nothing new
            // is issued.
            if !user_active {
                return Err(Refused::with_unit(invalid("the account is no longer active"), tx));
            }
            (family, grant)
        }
    };
    let mut grant: CodeGrant = match serde_json::from_str(&body) {
        Ok(grant) => grant,
        Err(e) => return Err(signet_core::Error::Internal(format!("stored refresh grant: {e}").into()).into()),
    };
    // A requested scope may only narrow the grant (RFC 6749 §6); the stored
    // document is carried on as it is unless it does.
    let narrowed = match scope {
        Some(requested) => match narrow(&grant.scope, requested) {
            Ok(narrowed) => Some(narrowed),
            Err(refusal) => {
                tx.rollback().await?;
                return Err(refusal.into());
            }
        },
        None => None,
    };
    let body = match narrowed {
        Some(narrowed) => {
            grant.scope = narrowed;
            serde_json::to_string(&grant)
                .map_err(|e| signet_core::Error::Internal(format!("refresh grant: {e}").into()))?
        }
        None => body,
    };
    issue_in(app, &mut *tx, client, &next, grant.user_id, &body, family).await?;
    Ok((tx, Rotated { grant, family, next }))
}

/// The scopes of `requested`, each one of `granted` (RFC 6749 §6: "MUST
/// NOT include any scope not originally granted").
fn narrow(granted: &[String], requested: &str) -> Result<Vec<String>, OAuthError> {
    let mut narrowed: Vec<String> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !granted.iter().any(|g| g == s) {
            return Err(OAuthError::new(
                OAuthCode::InvalidScope,
                format!("scope {s:?} was not granted"),
            ));
        }
        if !narrowed.iter().any(|n| n == s) {
            narrowed.push(s.to_owned());
        }
    }
    Ok(narrowed)
}
