//! Admin tokens: creation (shown once, stored hashed) and authentication.

use serde_json::json;
use signet_core::admin_token::{validate_name, AdminToken};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::secret::{PlainToken, TokenKind};
use signet_core::store::StoreError;
use signet_core::ErrorCode;
use signet_core::{Error, Result};
use uuid::Uuid;

use crate::App;

/// Creates a named admin token. The plaintext is returned once and never stored.
pub async fn create_token(app: &App, actor: &Actor, origin: &Origin, name: &str) -> Result<(AdminToken, PlainToken)> {
    create_token_with_ceiling(app, actor, origin, name, None).await
}

/// Creates a named admin token whose help-desk work is limited to users in
/// tiers ranking at or below `ceiling` (see [`crate::recovery_tickets`]).
pub async fn create_token_with_ceiling(
    app: &App,
    actor: &Actor,
    origin: &Origin,
    name: &str,
    ceiling: Option<&str>,
) -> Result<(AdminToken, PlainToken)> {
    let name = validate_name(name)?;
    if let Some(c) = ceiling {
        if app.policy.tier(c).is_none() {
            return Err(Error::invalid(
                ErrorCode::InvalidTier,
                "the ceiling must name a tier of the policy",
            ));
        }
    }
    let plain = PlainToken::generate(TokenKind::Admin);
    let token = AdminToken {
        id: Uuid::new_v4(),
        name,
        token_hash: plain.hash(),
        created_at: app.clock.now(),
        revoked_at: None,
        ceiling: ceiling.map(str::to_owned),
    };
    let mut tx = app.store.begin().await?;
    tx.insert_admin_token(&token).await.map_err(|e| match e {
        StoreError::Conflict(_) => Error::conflict(
            ErrorCode::AdminTokenNameTaken,
            "an admin token with this name already exists",
        ),
        other => other.into(),
    })?;
    let record = AuditEvent::new(EventType::AdminTokenCreated, actor.clone(), Outcome::Success)
        .from_origin(origin)
        .details(json!({ "name": token.name, "ceiling": token.ceiling }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    Ok((token, plain))
}

pub async fn revoke_token(app: &App, actor: &Actor, origin: &Origin, name: &str) -> Result<()> {
    let mut tx = app.store.begin().await?;
    if !tx.revoke_admin_token(name, app.clock.now()).await? {
        return Err(Error::not_found(
            ErrorCode::AdminTokenNotFound,
            "no active admin token with this name",
        ));
    }
    let record = AuditEvent::new(EventType::AdminTokenRevoked, actor.clone(), Outcome::Success)
        .from_origin(origin)
        .details(json!({ "name": name }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    Ok(())
}

/// Resolves a presented bearer token to its admin actor.
pub async fn authenticate(app: &App, presented: &str) -> Result<Actor> {
    let plain = PlainToken::parse(TokenKind::Admin, presented).ok_or(Error::Unauthenticated)?;
    let token = app
        .store
        .admin_token_by_hash(&plain.hash())
        .await?
        .ok_or(Error::Unauthenticated)?;
    Ok(Actor::Admin {
        id: token.id,
        name: token.name,
    })
}
