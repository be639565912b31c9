//! Creating, reading and disabling users.

use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::user::{NewUser, User, UserId, UserStatus};
use signet_core::ErrorCode;
use signet_core::{Error, Result};

use crate::App;

/// Page size limit for listings.
pub const MAX_PAGE: u32 = 500;

pub async fn create(app: &App, actor: &Actor, origin: &Origin, new: NewUser) -> Result<User> {
    let user = new.into_user(UserId::new(), app.clock.now());
    let mut tx = app.store.begin().await?;
    tx.insert_user(&user).await.map_err(|e| match e {
        signet_core::store::StoreError::Conflict(_) => {
            Error::conflict(ErrorCode::EmailTaken, "a user with this email address already exists")
        }
        other => other.into(),
    })?;
    let record = AuditEvent::new(EventType::UserCreated, actor.clone(), Outcome::Success)
        .user(user.id)
        .from_origin(origin)
        .details(json!({ "roles": user.roles, "has_phone": user.phone.is_some() }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    Ok(user)
}

pub async fn get(app: &App, id: UserId) -> Result<User> {
    app.store
        .user_by_id(id)
        .await?
        .ok_or_else(|| Error::not_found(ErrorCode::UserNotFound, "no such user"))
}

/// Finds a user by email, for the CLI and admin tools (never for anonymous
/// callers, which must not learn whether an account exists).
pub async fn find_by_email(app: &App, email: &str) -> Result<User> {
    let email = signet_core::user::Email::parse(email)?;
    app.store
        .user_by_email(&email.normalized())
        .await?
        .ok_or_else(|| Error::not_found(ErrorCode::UserNotFound, "no user with this email address"))
}

pub async fn list(app: &App, after_email: Option<&str>, limit: u32) -> Result<Vec<User>> {
    let after = after_email.map(str::to_lowercase);
    Ok(app.store.list_users(after.as_deref(), limit.clamp(1, MAX_PAGE)).await?)
}

/// Disables (or re-enables) a user. Disabling ends every session of the user
/// in the same transaction, which also holds the audit record.
pub async fn set_status(app: &App, actor: &Actor, origin: &Origin, id: UserId, status: UserStatus) -> Result<User> {
    let ty = match status {
        UserStatus::Disabled => EventType::UserDisabled,
        UserStatus::Active => EventType::UserEnabled,
    };
    let record = AuditEvent::new(ty, actor.clone(), Outcome::Success)
        .user(id)
        .from_origin(origin);
    // The change, the ended sessions and the record commit together.
    let mut tx = app.store.begin().await?;
    if !tx.set_user_status(id, status, app.clock.now()).await? {
        return Err(Error::not_found(ErrorCode::UserNotFound, "no such user"));
    }
    if status == UserStatus::Disabled {
        // Everything a session stands for ends too (OIDC grants included).
        crate::sessions::end_everywhere(app, &mut *tx, id).await?;
    }
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    // Back-channel logout tokens may have been queued with the sessions' end.
    app.courier.wake();
    get(app, id).await
}
