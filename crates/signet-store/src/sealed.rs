//! Sealed values at rest ([`SealedSecretStore`]): listing them and swapping
//! one for its re-sealed form with a single conditional `UPDATE`, never a
//! read followed by an unconditional write.

use signet_core::store::{SealedSecretStore, StoreResult, StoredSecret};

use crate::{backend, with_db, SqlStore};

#[async_trait::async_trait]
impl SealedSecretStore for SqlStore {
    async fn stored_server_secrets(&self) -> StoreResult<Vec<StoredSecret>> {
        // From the writer: a re-seal that just swapped must see its own write.
        let rows: Vec<(String, Vec<u8>)> = with_db!(write(self), |pool| {
            sqlx::query_as("SELECT name, value FROM server_secrets ORDER BY name")
                .fetch_all(pool)
                .await
                .map_err(backend)?
        });
        Ok(rows
            .into_iter()
            .map(|(name, value)| StoredSecret { name, value })
            .collect())
    }

    async fn swap_server_secret(&self, name: &str, expected: &[u8], new: &[u8]) -> StoreResult<bool> {
        let done = with_db!(write(self), |pool| {
            sqlx::query("UPDATE server_secrets SET value = $1 WHERE name = $2 AND value = $3")
                .bind(new)
                .bind(name)
                .bind(expected)
                .execute(pool)
                .await
                .map_err(backend)?
                .rows_affected()
        });
        Ok(done == 1)
    }
}
