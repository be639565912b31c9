use signet_core::admin_token::AdminToken;
use signet_core::clock::Timestamp;
use signet_core::secret::TokenHash;
use signet_core::store::{AdminTokenStore, StoreResult};
use signet_core::unit_of_work::AdminTokenWrites;

use crate::rows::{admin_token_columns, convert_all, AdminTokenRow};
use crate::tx::{in_tx, SqlTx};
use crate::{backend, conflict_as, with_db, SqlStore};

#[async_trait::async_trait]
impl AdminTokenStore for SqlStore {
    async fn admin_token_by_hash(&self, hash: &TokenHash) -> StoreResult<Option<AdminToken>> {
        let row: Option<AdminTokenRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                admin_token_columns!(),
                " FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
            ))
            .bind(hash.as_bytes().as_slice())
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        row.map(AdminToken::try_from).transpose()
    }

    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminToken>> {
        let rows: Vec<AdminTokenRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                admin_token_columns!(),
                " FROM admin_tokens ORDER BY name"
            ))
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        convert_all(rows)
    }
}

#[async_trait::async_trait]
impl AdminTokenWrites for SqlTx {
    async fn insert_admin_token(&mut self, t: &AdminToken) -> StoreResult<()> {
        in_tx!(self, |c| {
            sqlx::query(concat!(
                "INSERT INTO admin_tokens (",
                admin_token_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6)"
            ))
            .bind(t.id.to_string())
            .bind(t.name.as_str())
            .bind(t.token_hash.as_bytes().as_slice())
            .bind(t.created_at.as_millis())
            .bind(t.revoked_at.map(|r| r.as_millis()))
            .bind(t.ceiling.as_deref())
            .execute(&mut *c)
            .await
            .map_err(conflict_as(signet_core::ErrorCode::AdminTokenNameTaken))?;
        })
    }

    async fn revoke_admin_token(&mut self, name: &str, now: Timestamp) -> StoreResult<bool> {
        in_tx!(self, |c| {
            sqlx::query("UPDATE admin_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
                .bind(now.as_millis())
                .bind(name)
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected()
                == 1
        })
    }
}
