//! OIDC clients ([`OidcClientStore`], [`OidcClientWrites`]). The client's
//! settings are one JSON document: they are always read and written whole,
//! and a new setting then needs no migration.

use signet_core::clock::Timestamp;
use signet_core::oidc_client::{ClientSettings, ClientSource, OidcClient, OidcConsent, PreviousSecret};
use signet_core::secret::TokenHash;
use signet_core::store::{OidcClientStore, StoreError, StoreResult};
use signet_core::unit_of_work::{OidcClientWrites, OidcKeyWrites, StoredRefresh};
use signet_core::user::{UserId, UserStatus};
use signet_core::ErrorCode;
use uuid::Uuid;

use crate::rows::{hash, uuid};
use crate::tx::{in_tx, SqlTx};
use crate::{backend, conflict_as, with_db, SqlStore};

macro_rules! oidc_client_columns {
    () => {
        "id, client_id, name, secret_hash, settings, source, created_at, updated_at"
    };
}
pub(crate) use oidc_client_columns;

/// What is read: the written columns and the rotated-out secret.
macro_rules! oidc_client_read_columns {
    () => {
        concat!(
            oidc_client_columns!(),
            ", previous_secret_hash, previous_secret_expires_at"
        )
    };
}
pub(crate) use oidc_client_read_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct ClientRow {
    id: String,
    client_id: String,
    name: String,
    secret_hash: Option<Vec<u8>>,
    settings: String,
    source: String,
    created_at: i64,
    updated_at: i64,
    previous_secret_hash: Option<Vec<u8>>,
    previous_secret_expires_at: Option<i64>,
}

impl TryFrom<ClientRow> for OidcClient {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> StoreResult<OidcClient> {
        let settings: ClientSettings = serde_json::from_str(&r.settings)
            .map_err(|e| StoreError::Corrupt(format!("oidc client {} settings: {e}", r.client_id)))?;
        Ok(OidcClient {
            id: uuid(&r.id)?,
            secret_hash: r.secret_hash.as_deref().map(hash).transpose()?,
            source: ClientSource::parse(&r.source)
                .ok_or_else(|| StoreError::Corrupt(format!("oidc client source: {:?}", r.source)))?,
            client_id: r.client_id,
            name: r.name,
            settings,
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
            previous_secret: match (r.previous_secret_hash, r.previous_secret_expires_at) {
                (Some(h), Some(at)) => Some(PreviousSecret {
                    hash: hash(&h)?,
                    expires_at: Timestamp::from_millis(at),
                }),
                _ => None,
            },
        })
    }
}

fn settings_json(c: &OidcClient) -> StoreResult<String> {
    serde_json::to_string(&c.settings).map_err(|e| StoreError::Backend(Box::new(e)))
}

/// The clients of user `$1`'s refresh tokens that are live at `$2` (not
/// revoked, not rotated out, not expired): the select list and its source,
/// for a `SELECT` or `SELECT DISTINCT` to begin.
macro_rules! live_refresh_clients {
    () => {
        "client_id FROM oidc_refresh_tokens WHERE user_id = $1 \
         AND revoked_at IS NULL AND rotated_at IS NULL AND expires_at > $2"
    };
}

#[async_trait::async_trait]
impl OidcClientStore for SqlStore {
    async fn oidc_client(&self, client_id: &str) -> StoreResult<Option<OidcClient>> {
        let row: Option<ClientRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                oidc_client_read_columns!(),
                " FROM oidc_clients WHERE client_id = $1"
            ))
            .bind(client_id)
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        row.map(OidcClient::try_from).transpose()
    }

    async fn list_oidc_clients(&self) -> StoreResult<Vec<OidcClient>> {
        let rows: Vec<ClientRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                oidc_client_read_columns!(),
                " FROM oidc_clients ORDER BY client_id"
            ))
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        rows.into_iter().map(OidcClient::try_from).collect()
    }

    async fn oidc_consent(&self, user: UserId, client_id: &str) -> StoreResult<Option<OidcConsent>> {
        let row: Option<(String, String, i64)> = with_db!(read(self), |pool| {
            sqlx::query_as(
                "SELECT client_id, scopes, granted_at FROM oidc_consents WHERE user_id = $1 AND client_id = $2",
            )
            .bind(user.0.to_string())
            .bind(client_id)
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        Ok(row.map(consent))
    }

    async fn list_oidc_consents(&self, user: UserId) -> StoreResult<Vec<OidcConsent>> {
        let rows: Vec<(String, String, i64)> = with_db!(read(self), |pool| {
            sqlx::query_as(
                "SELECT client_id, scopes, granted_at FROM oidc_consents WHERE user_id = $1 ORDER BY client_id",
            )
            .bind(user.0.to_string())
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        Ok(rows.into_iter().map(consent).collect())
    }

    async fn oidc_clients_with_grants(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT DISTINCT ",
                live_refresh_clients!(),
                " ORDER BY client_id"
            ))
            .bind(user.0.to_string())
            .bind(now.as_millis())
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    async fn oidc_clients_of(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<OidcClient>> {
        let rows: Vec<ClientRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                oidc_client_read_columns!(),
                " FROM oidc_clients WHERE client_id IN (",
                "SELECT client_id FROM oidc_consents WHERE user_id = $1 UNION SELECT ",
                live_refresh_clients!(),
                ") ORDER BY client_id"
            ))
            .bind(user.0.to_string())
            .bind(now.as_millis())
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        rows.into_iter().map(OidcClient::try_from).collect()
    }

    async fn oidc_grant_standing(&self, id: Uuid) -> StoreResult<Option<bool>> {
        let row: Option<(Option<i64>,)> = with_db!(read(self), |pool| {
            sqlx::query_as("SELECT revoked_at FROM oidc_codes WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
                .map_err(backend)?
        });
        Ok(row.map(|(revoked,)| revoked.is_none()))
    }

    async fn oidc_refresh_token(&self, token: &TokenHash) -> StoreResult<Option<StoredRefresh>> {
        type Row = (
            String,
            String,
            String,
            i64,
            Option<i64>,
            Option<i64>,
            i64,
            Option<String>,
        );
        let row: Option<Row> = with_db!(read(self), |pool| {
            sqlx::query_as(
                "SELECT family_id, client_id, grant_data, expires_at, revoked_at, rotated_at, \
                 (SELECT COUNT(*) FROM oidc_codes \
                  WHERE oidc_codes.id = oidc_refresh_tokens.family_id AND oidc_codes.revoked_at IS NULL), \
                 (SELECT status FROM users WHERE users.id = oidc_refresh_tokens.user_id) \
                 FROM oidc_refresh_tokens WHERE token_hash = $1",
            )
            .bind(token.as_bytes().to_vec())
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        row.map(
            |(family, client_id, grant, expires_at, revoked_at, rotated_at, standing, status)| {
                Ok(StoredRefresh {
                    family: uuid(&family)?,
                    client_id,
                    grant,
                    expires_at: Timestamp::from_millis(expires_at),
                    revoked: revoked_at.is_some(),
                    rotated: rotated_at.is_some(),
                    grant_standing: standing == 1,
                    user_active: status.as_deref().and_then(UserStatus::parse) == Some(UserStatus::Active),
                })
            },
        )
        .transpose()
    }
}

/// The scopes of a consent row, stored space-separated.
pub(crate) fn scope_list(scopes: &str) -> Vec<String> {
    scopes.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn consent((client_id, scopes, granted_at): (String, String, i64)) -> OidcConsent {
    OidcConsent {
        client_id,
        scopes: scope_list(&scopes),
        granted_at: Timestamp::from_millis(granted_at),
    }
}

#[async_trait::async_trait]
impl OidcClientWrites for SqlTx {
    async fn insert_oidc_client(&mut self, client: &OidcClient) -> StoreResult<()> {
        let settings = settings_json(client)?;
        in_tx!(self, |c| {
            sqlx::query(concat!(
                "INSERT INTO oidc_clients (",
                oidc_client_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))
            .bind(client.id.to_string())
            .bind(client.client_id.as_str())
            .bind(client.name.as_str())
            .bind(client.secret_hash.as_ref().map(|h| h.as_bytes().to_vec()))
            .bind(settings.as_str())
            .bind(client.source.as_str())
            .bind(client.created_at.as_millis())
            .bind(client.updated_at.as_millis())
            .execute(&mut *c)
            .await
            .map_err(conflict_as(ErrorCode::OidcClientIdTaken))?;
        })
    }

    async fn put_config_oidc_client(&mut self, client: &OidcClient) -> StoreResult<()> {
        let settings = settings_json(client)?;
        // One statement: insert, or update only a row that came from the
        // configuration too. A row of another source makes the conditional
        // update touch nothing, which is reported as the conflict it is.
        let written = in_tx!(self, |c| {
            sqlx::query(concat!(
                "INSERT INTO oidc_clients (",
                oidc_client_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, 'config', $6, $7) \
                 ON CONFLICT (client_id) DO UPDATE SET name = excluded.name, \
                 secret_hash = excluded.secret_hash, settings = excluded.settings, \
                 updated_at = excluded.updated_at WHERE oidc_clients.source = 'config'"
            ))
            .bind(client.id.to_string())
            .bind(client.client_id.as_str())
            .bind(client.name.as_str())
            .bind(client.secret_hash.as_ref().map(|h| h.as_bytes().to_vec()))
            .bind(settings.as_str())
            .bind(client.created_at.as_millis())
            .bind(client.updated_at.as_millis())
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected()
        })?;
        if written == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(ErrorCode::OidcClientIdTaken))
        }
    }

    async fn delete_oidc_client(&mut self, client_id: &str) -> StoreResult<bool> {
        in_tx!(self, |c| {
            sqlx::query("DELETE FROM oidc_consents WHERE client_id = $1")
                .bind(client_id)
                .execute(&mut *c)
                .await
                .map_err(backend)?;
            sqlx::query("DELETE FROM oidc_clients WHERE client_id = $1")
                .bind(client_id)
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected()
                == 1
        })
    }

    async fn update_oidc_client(&mut self, client: &OidcClient) -> StoreResult<bool> {
        let settings = settings_json(client)?;
        in_tx!(self, |c| {
            sqlx::query(
                "UPDATE oidc_clients SET name = $1, settings = $2, updated_at = $3 \
                 WHERE client_id = $4 AND source <> 'config'",
            )
            .bind(client.name.as_str())
            .bind(settings.as_str())
            .bind(client.updated_at.as_millis())
            .bind(client.client_id.as_str())
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected()
                == 1
        })
    }

    async fn rotate_oidc_client_secret(
        &mut self,
        client_id: &str,
        new_hash: &TokenHash,
        previous_expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        // One statement: the secret being replaced is the one in the row at
        // that moment, whatever a concurrent rotation did before.
        in_tx!(self, |c| {
            sqlx::query(
                "UPDATE oidc_clients SET previous_secret_hash = secret_hash, \
                 previous_secret_expires_at = $1, secret_hash = $2, updated_at = $3 \
                 WHERE client_id = $4 AND secret_hash IS NOT NULL AND source <> 'config'",
            )
            .bind(previous_expires_at.as_millis())
            .bind(new_hash.as_bytes().to_vec())
            .bind(now.as_millis())
            .bind(client_id)
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected()
                == 1
        })
    }

    async fn revoke_oidc_client_grants(
        &mut self,
        client_id: &str,
        user: Option<UserId>,
        now: Timestamp,
    ) -> StoreResult<u64> {
        let user = user.map(|u| u.0.to_string());
        in_tx!(self, |c| {
            let mut n = 0;
            for table in ["oidc_codes", "oidc_refresh_tokens"] {
                n += sqlx::query(&format!(
                    "UPDATE {table} SET revoked_at = $1 WHERE client_id = $2 \
                     AND ($3 IS NULL OR user_id = $3) AND revoked_at IS NULL"
                ))
                .bind(now.as_millis())
                .bind(client_id)
                .bind(user.as_deref())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected();
            }
            n
        })
    }

    async fn put_oidc_consent(&mut self, user: UserId, consent: &OidcConsent) -> StoreResult<()> {
        let user = user.0.to_string();
        // Read and write in the unit: the union of what was approved before
        // and now. Two approvals racing may each add their own scopes; the
        // later write keeps its union, which only ever asks again.
        in_tx!(self, |c| {
            let before: Option<(String,)> =
                sqlx::query_as("SELECT scopes FROM oidc_consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user.as_str())
                    .bind(consent.client_id.as_str())
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(backend)?;
            let mut scopes: Vec<String> = before.map(|b| scope_list(&b.0)).unwrap_or_default();
            for s in &consent.scopes {
                if !scopes.contains(s) {
                    scopes.push(s.clone());
                }
            }
            sqlx::query(
                "INSERT INTO oidc_consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
            )
            .bind(user.as_str())
            .bind(consent.client_id.as_str())
            .bind(scopes.join(" "))
            .bind(consent.granted_at.as_millis())
            .execute(&mut *c)
            .await
            .map_err(backend)?;
        })
    }

    async fn delete_oidc_consent(&mut self, user: UserId, client_id: &str) -> StoreResult<bool> {
        in_tx!(self, |c| {
            sqlx::query("DELETE FROM oidc_consents WHERE user_id = $1 AND client_id = $2")
                .bind(user.0.to_string())
                .bind(client_id)
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected()
                == 1
        })
    }
}

#[async_trait::async_trait]
impl OidcKeyWrites for SqlTx {
    async fn insert_signing_key(&mut self, name: &str, sealed: &[u8], now: Timestamp) -> StoreResult<bool> {
        in_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(sealed)
            .bind(now.as_millis())
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected()
                == 1
        })
    }

    async fn delete_signing_key(&mut self, name: &str) -> StoreResult<bool> {
        in_tx!(self, |c| {
            sqlx::query("DELETE FROM server_secrets WHERE name = $1")
                .bind(name)
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected()
                == 1
        })
    }
}
