//! Sealed values at rest ([`SealedSecretStore`]): listing them and swapping
//! one for its re-sealed form with a single conditional `UPDATE`, never a
//! read followed by an unconditional write. Each [`SealedKind`] names one
//! table; the statements for it are below, so the rest of the code is the
//! same for every kind.

use signet_core::store::{SealedKind, SealedSecretStore, StoreResult, StoredSecret};

use crate::{backend, with_db, SqlStore};

/// The two statements for one kind: list `(name, value)` ordered by name,
/// and the compare-and-swap (`$1` new, `$2` name, `$3` expected).
struct Statements {
    list: &'static str,
    swap: &'static str,
}

fn statements(kind: SealedKind) -> Statements {
    match kind {
        SealedKind::ServerSecret => Statements {
            list: "SELECT name, value FROM server_secrets ORDER BY name",
            swap: "UPDATE server_secrets SET value = $1 WHERE name = $2 AND value = $3",
        },
        SealedKind::TotpSeed => Statements {
            list: "SELECT id, seed FROM totp_credentials ORDER BY id",
            swap: "UPDATE totp_credentials SET seed = $1 WHERE id = $2 AND seed = $3",
        },
    }
}

#[async_trait::async_trait]
impl SealedSecretStore for SqlStore {
    async fn stored_sealed(&self, kind: SealedKind) -> StoreResult<Vec<StoredSecret>> {
        let sql = statements(kind).list;
        // From the writer: a re-seal that just swapped must see its own write.
        let rows: Vec<(String, Vec<u8>)> = with_db!(write(self), |pool| {
            sqlx::query_as(sql).fetch_all(pool).await.map_err(backend)?
        });
        Ok(rows
            .into_iter()
            .map(|(name, value)| StoredSecret { name, value })
            .collect())
    }

    async fn swap_sealed(&self, kind: SealedKind, name: &str, expected: &[u8], new: &[u8]) -> StoreResult<bool> {
        let sql = statements(kind).swap;
        let done = with_db!(write(self), |pool| {
            sqlx::query(sql)
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
