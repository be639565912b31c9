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
//!
//! On SQLite a rotation first reads the token as committed, outside any
//! unit of work, and when it is usable rotates it with a checked write
//! ([`Rotation::Read`], ADR 0035): a unit that only writes, which is handed
//! to the single writer with others' instead of holding it across the
//! grant's checks (ADR 0040). On PostgreSQL the locked way is one round trip
//! fewer and is always taken. A concurrent use that wins first refuses that write, and the
//! grant is then run again on the locked path ([`Rotation::Locked`]), whose
//! one statement rotates and reads in the writer's unit and tells a replay
//! from a revoked grant exactly as before.

use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::Timestamp;
use signet_core::oidc_client::{GrantType, OidcClient};
use signet_core::secret::{PlainToken, TokenKind};
use signet_core::store::{Refusal, StoreError};
use signet_core::unit_of_work::{NewRefreshToken, RefreshRotation, StoredRefresh, Transaction, Tx};
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

/// How a rotation reads the token it rotates out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Read as committed, then rotated by a checked write that a concurrent
    /// use refuses (`Refusal::RefreshRaced`, on SQLite at the unit's
    /// commit). Only a token found usable is rotated this way; any other
    /// goes the locked way, which tells the refusals apart.
    Read,
    /// Rotated and read by one statement in the writer's unit.
    Locked,
}

/// The `refresh_token` grant: rotates the presented token out and stores
/// the next one in a unit of work it hands back open, for the grant's
/// audit record to join it. Everything that does not depend on the stored
/// row (parsing, the next token) is done before the unit opens.
pub async fn refresh(
    app: &App,
    origin: &Origin,
    client: &OidcClient,
    presented: Option<&str>,
    scope: Option<&str>,
    rotation: Rotation,
) -> Result<(Tx, Rotated), Refused> {
    let invalid = |why: &str| OAuthError::new(OAuthCode::InvalidGrant, why.to_owned());
    let presented = presented.ok_or_else(|| OAuthError::new(OAuthCode::InvalidRequest, "refresh_token is required"))?;
    let Some(presented) = PlainToken::parse(TokenKind::RefreshToken, presented) else {
        return Err(invalid("the refresh token is not valid").into());
    };
    let hash = presented.hash();
    let next = PlainToken::generate(TokenKind::RefreshToken);
    let now = app.clock.now();
    // Only a single writer gains from the read: on PostgreSQL the locked
    // way is one round trip fewer.
    if rotation == Rotation::Read && app.store.single_writer() {
        if let Some(stored) = app.store.oidc_refresh_token(&hash).await? {
            if usable(&stored, client, now) {
                let (grant, body) = carried(stored.grant, scope)?;
                let mut tx = app.store.begin().await?;
                match tx.rotate_oidc_refresh_checked(&hash, &client.client_id, now).await {
                    Ok(()) => {
                        issue_in(app, &mut *tx, client, &next, grant.user_id, &body, stored.family).await?;
                        return Ok((
                            tx,
                            Rotated {
                                grant,
                                family: stored.family,
                                next,
                            },
                        ));
                    }
                    // PostgreSQL decides at once: a concurrent use won, or
                    // the grant ended since the read. The locked way tells
                    // which.
                    Err(StoreError::Refused(Refusal::RefreshRaced)) => tx.rollback().await?,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
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
            let rotated = StoredRefresh {
                family,
                client_id,
                grant,
                expires_at,
                revoked,
                rotated: false,
                grant_standing,
                user_active,
            };
            match unusable(&rotated, client, now) {
                // Presented by another client, expired, or of a revoked
                // grant: nothing changes (the rotation is undone).
                Some(Unusable::Invalid) => {
                    tx.rollback().await?;
                    return Err(invalid("the refresh token is not valid").into());
                }
                Some(Unusable::GrantRevoked) => {
                    tx.rollback().await?;
                    return Err(invalid("the grant was revoked").into());
                }
                // The account was disabled: the token is used up, nothing
                // new is issued.
                Some(Unusable::Inactive) => {
                    return Err(Refused::with_unit(invalid("the account is no longer active"), tx));
                }
                None => (rotated.family, rotated.grant),
            }
        }
    };
    let (grant, body) = match carried(body, scope) {
        Ok(carried) => carried,
        Err(refusal) => {
            tx.rollback().await?;
            return Err(refusal);
        }
    };
    issue_in(app, &mut *tx, client, &next, grant.user_id, &body, family).await?;
    Ok((tx, Rotated { grant, family, next }))
}

/// Why a refresh token may not be carried on, in the order the locked way
/// tells them apart.
enum Unusable {
    /// Revoked, another client's, or expired.
    Invalid,
    /// Its family's code was revoked.
    GrantRevoked,
    /// Its user is disabled or gone.
    Inactive,
}

/// The checks every rotation makes of a token, rotated out by the locked
/// way or read as committed by the [`Rotation::Read`] way.
fn unusable(stored: &StoredRefresh, client: &OidcClient, now: Timestamp) -> Option<Unusable> {
    if stored.revoked || stored.client_id != client.client_id || stored.expires_at <= now {
        Some(Unusable::Invalid)
    } else if !stored.grant_standing {
        Some(Unusable::GrantRevoked)
    } else if !stored.user_active {
        Some(Unusable::Inactive)
    } else {
        None
    }
}

/// Whether a token read as committed may be rotated the [`Rotation::Read`]
/// way: not rotated out yet, and every check the locked way makes passes.
fn usable(stored: &StoredRefresh, client: &OidcClient, now: Timestamp) -> bool {
    !stored.rotated && unusable(stored, client, now).is_none()
}

/// The grant a rotation carries on (the stored document `body`) and its
/// text: as stored unless a requested `scope` narrows it (RFC 6749 §6).
fn carried(body: String, scope: Option<&str>) -> Result<(CodeGrant, String), Refused> {
    let mut grant: CodeGrant = match serde_json::from_str(&body) {
        Ok(grant) => grant,
        Err(e) => return Err(signet_core::Error::Internal(format!("stored refresh grant: {e}").into()).into()),
    };
    let Some(requested) = scope else {
        return Ok((grant, body));
    };
    grant.scope = narrow(&grant.scope, requested)?;
    let body = serde_json::to_string(&grant)
        .map_err(|e| signet_core::Error::Internal(format!("refresh grant: {e}").into()))?;
    Ok((grant, body))
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
