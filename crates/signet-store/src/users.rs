use signet_core::clock::Timestamp;
use signet_core::store::{StoreResult, UserStore};
use signet_core::unit_of_work::UserWrites;
use signet_core::user::{User, UserId, UserStatus};

use crate::rows::{convert_all, user_columns, UserRow};
use crate::tx::{in_tx, SqlTx};
use crate::{backend, conflict_as, with_db, SqlStore};

#[async_trait::async_trait]
impl UserStore for SqlStore {
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
                .bind(id.0.to_string())
                .fetch_optional(pool)
                .await
                .map_err(backend)?
        });
        row.map(User::try_from).transpose()
    }

    async fn user_by_email(&self, email_normalized: &str) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE email_norm = $1"))
                .bind(email_normalized)
                .fetch_optional(pool)
                .await
                .map_err(backend)?
        });
        row.map(User::try_from).transpose()
    }

    async fn list_users(&self, after_email: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
        let rows: Vec<UserRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE email_norm > $1 ORDER BY email_norm LIMIT $2"
            ))
            .bind(after_email.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        convert_all(rows)
    }
}

#[async_trait::async_trait]
impl UserWrites for SqlTx {
    async fn insert_user(&mut self, u: &User) -> StoreResult<()> {
        let roles =
            serde_json::to_string(&u.roles).map_err(|e| signet_core::store::StoreError::Corrupt(e.to_string()))?;
        in_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO users (id, email, email_norm, phone, name, roles, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(u.id.0.to_string())
            .bind(u.email.as_str())
            .bind(u.email.normalized())
            .bind(u.phone.as_ref().map(|p| p.as_str()))
            .bind(u.name.as_deref())
            .bind(&roles)
            .bind(u.status.as_str())
            .bind(u.created_at.as_millis())
            .bind(u.updated_at.as_millis())
            .execute(&mut *c)
            .await
            .map_err(conflict_as(signet_core::ErrorCode::EmailTaken))?;
        })
    }

    async fn set_user_status(&mut self, id: UserId, status: UserStatus, now: Timestamp) -> StoreResult<bool> {
        in_tx!(self, |c| {
            let changed = sqlx::query("UPDATE users SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(status.as_str())
                .bind(now.as_millis())
                .bind(id.0.to_string())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected();
            if changed > 0 && status == UserStatus::Disabled {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(id.0.to_string())
                    .execute(&mut *c)
                    .await
                    .map_err(backend)?;
            }
            changed > 0
        })
    }
}
