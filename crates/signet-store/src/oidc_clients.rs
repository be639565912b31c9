//! OIDC clients ([`OidcClientStore`], [`OidcClientWrites`]). The client's
//! settings are one JSON document: they are always read and written whole,
//! and a new setting then needs no migration.

use signet_core::clock::Timestamp;
use signet_core::oidc_client::{ClientSettings, ClientSource, OidcClient};
use signet_core::store::{OidcClientStore, StoreError, StoreResult};
use signet_core::unit_of_work::OidcClientWrites;
use signet_core::ErrorCode;

use crate::rows::{hash, uuid};
use crate::tx::{in_tx, SqlTx};
use crate::{backend, conflict_as, with_db, SqlStore};

macro_rules! oidc_client_columns {
    () => {
        "id, client_id, name, secret_hash, settings, source, created_at, updated_at"
    };
}
pub(crate) use oidc_client_columns;

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
        })
    }
}

fn settings_json(c: &OidcClient) -> StoreResult<String> {
    serde_json::to_string(&c.settings).map_err(|e| StoreError::Backend(Box::new(e)))
}

#[async_trait::async_trait]
impl OidcClientStore for SqlStore {
    async fn oidc_client(&self, client_id: &str) -> StoreResult<Option<OidcClient>> {
        let row: Option<ClientRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                oidc_client_columns!(),
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
                oidc_client_columns!(),
                " FROM oidc_clients ORDER BY client_id"
            ))
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        rows.into_iter().map(OidcClient::try_from).collect()
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
            sqlx::query("DELETE FROM oidc_clients WHERE client_id = $1")
                .bind(client_id)
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected()
                == 1
        })
    }
}
