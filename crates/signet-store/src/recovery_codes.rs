//! Recovery codes (look-up secrets, NIST SP 800-63B rev. 4 §3.1.2): one row
//! per code, only its hash. A use is one `UPDATE ... WHERE used_at IS NULL`
//! (of racing uses exactly one changes the row); regeneration deletes the
//! old set and inserts the new one in the caller's unit of work.

use signet_core::clock::Timestamp;
use signet_core::credential::{RecoveryCodeSet, Removal};
use signet_core::secret::TokenHash;
use signet_core::store::StoreResult;
use signet_core::user::UserId;
use uuid::Uuid;

use crate::rows::uuid;
use crate::tx::{in_tx, SqlTx};
use crate::{backend, with_db, SqlStore};

impl SqlStore {
    pub(crate) async fn recovery_set_of(&self, user: UserId) -> StoreResult<Option<RecoveryCodeSet>> {
        let row: Option<(String, i64, i64, i64, Option<i64>)> = with_db!(read(self), |pool| {
            sqlx::query_as(
                "SELECT set_id, COUNT(*), COALESCE(SUM(CASE WHEN used_at IS NULL THEN 1 ELSE 0 END), 0), \
                 MIN(created_at), MAX(used_at) FROM recovery_codes WHERE user_id = $1 GROUP BY set_id",
            )
            .bind(user.0.to_string())
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        row.map(|(set, total, left, created_at, last_used)| {
            Ok(RecoveryCodeSet {
                id: uuid(&set)?,
                user_id: user,
                total: u32::try_from(total).unwrap_or(0),
                left: u32::try_from(left).unwrap_or(0),
                created_at: Timestamp::from_millis(created_at),
                last_used_at: last_used.map(Timestamp::from_millis),
            })
        })
        .transpose()
    }
}

impl SqlStore {
    pub(crate) async fn recovery_code_state(&self, user: UserId, hash: &TokenHash) -> StoreResult<Option<bool>> {
        let row: Option<(Option<i64>,)> = with_db!(read(self), |pool| {
            sqlx::query_as("SELECT used_at FROM recovery_codes WHERE hash = $1 AND user_id = $2")
                .bind(hash.as_bytes().as_slice())
                .bind(user.0.to_string())
                .fetch_optional(pool)
                .await
                .map_err(backend)?
        });
        Ok(row.map(|(used,)| used.is_some()))
    }
}

impl SqlTx {
    pub(crate) async fn replace_recovery_rows(
        &mut self,
        user: UserId,
        set_id: Uuid,
        hashes: &[TokenHash],
        now: Timestamp,
    ) -> StoreResult<u64> {
        in_tx!(self, |c| {
            let discarded = sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
                .bind(user.0.to_string())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected();
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user.0.to_string())
                .execute(&mut *c)
                .await
                .map_err(backend)?;
            for hash in hashes {
                sqlx::query(
                    "INSERT INTO recovery_codes (hash, set_id, user_id, created_at, used_at) \
                     VALUES ($1, $2, $3, $4, NULL)",
                )
                .bind(hash.as_bytes().as_slice())
                .bind(set_id.to_string())
                .bind(user.0.to_string())
                .bind(now.as_millis())
                .execute(&mut *c)
                .await
                .map_err(backend)?;
            }
            discarded
        })
    }

    pub(crate) async fn use_recovery_row(
        &mut self,
        user: UserId,
        hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<u32>> {
        in_tx!(self, |c| {
            // Serialises uses of this user's codes (row lock on PostgreSQL;
            // the single writer on SQLite), so the count below is exact.
            sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
                .bind(user.0.to_string())
                .execute(&mut *c)
                .await
                .map_err(backend)?;
            let used = sqlx::query(
                "UPDATE recovery_codes SET used_at = $1 WHERE hash = $2 AND user_id = $3 AND used_at IS NULL",
            )
            .bind(now.as_millis())
            .bind(hash.as_bytes().as_slice())
            .bind(user.0.to_string())
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected()
                == 1;
            if used {
                let (left,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
                        .bind(user.0.to_string())
                        .fetch_one(&mut *c)
                        .await
                        .map_err(backend)?;
                Some(u32::try_from(left).unwrap_or(0))
            } else {
                None
            }
        })
    }

    pub(crate) async fn remove_recovery_rows(&mut self, user: UserId, set_id: Uuid, keep: u32) -> StoreResult<Removal> {
        in_tx!(self, |c| {
            sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
                .bind(user.0.to_string())
                .execute(&mut *c)
                .await
                .map_err(backend)?;
            if keep > 0 {
                Removal::LastCredential
            } else {
                let n = sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1 AND set_id = $2")
                    .bind(user.0.to_string())
                    .bind(set_id.to_string())
                    .execute(&mut *c)
                    .await
                    .map_err(backend)?
                    .rows_affected();
                if n == 0 {
                    Removal::NotFound
                } else {
                    Removal::Removed
                }
            }
        })
    }
}
