//! Passkeys, enrollment ceremonies and server secrets.
//!
//! The login update is one `UPDATE ... WHERE id = $ AND counter = $previous`:
//! of two logins racing on the same counter value only one is recorded.
//! Removal locks the owner's row first (a no-op `UPDATE users`), so on
//! PostgreSQL concurrent removals for one user run one after the other and
//! each counts what the previous left; SQLite has a single writer anyway.

use signet_core::clock::Timestamp;
use signet_core::credential::{Ceremony, Passkey, PasskeyUse, Removal};
use signet_core::session::SessionId;
use signet_core::store::{CredentialStore, PasskeyForLogin, Refusal, StoreError, StoreResult};
use signet_core::unit_of_work::CredentialWrites;
use signet_core::user::UserId;
use uuid::Uuid;

use crate::named_credentials;
use crate::rows::{owner_columns, uuid, OwnerColumns};
use crate::tx::{in_tx, with_conn, write_op, Conn, SqlTx};
use crate::{backend, conflict_as, with_db, SqlStore};

macro_rules! passkey_columns {
    () => {
        "id, user_id, credential_id, record, counter, backup_eligible, backup_state, user_verified, \
         aaguid, transports, name, created_at, last_used_at"
    };
}

macro_rules! ceremony_columns {
    () => {
        "id, session_id, user_id, state, name, created_at, expires_at"
    };
}

#[derive(sqlx::FromRow)]
struct PasskeyRow {
    id: String,
    user_id: String,
    credential_id: String,
    record: String,
    counter: i64,
    backup_eligible: bool,
    backup_state: bool,
    user_verified: bool,
    aaguid: String,
    transports: String,
    name: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

/// A passkey, its owner's columns and its cooling-off
/// (`Store::passkey_and_owner`).
#[derive(sqlx::FromRow)]
struct PasskeyOwnerRow {
    #[sqlx(flatten)]
    passkey: PasskeyRow,
    #[sqlx(flatten)]
    owner: OwnerColumns,
    cooling_off_until: Option<i64>,
}

impl SqlStore {
    /// `Store::passkey_and_owner`: one read, the owner and the cooling-off
    /// joined.
    pub(crate) async fn passkey_with_owner(&self, credential_id: &str) -> StoreResult<Option<PasskeyForLogin>> {
        let row: Option<PasskeyOwnerRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT p.id, p.user_id, p.credential_id, p.record, p.counter, p.backup_eligible, \
                 p.backup_state, p.user_verified, p.aaguid, p.transports, p.name, p.created_at, \
                 p.last_used_at, ",
                owner_columns!(),
                ", c.restricted_until AS cooling_off_until FROM passkeys p \
                 LEFT JOIN users u ON u.id = p.user_id \
                 LEFT JOIN credential_cooling_off c ON c.credential_id = p.id \
                 WHERE p.credential_id = $1"
            ))
            .bind(credential_id)
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        let Some(row) = row else {
            return Ok(None);
        };
        let owner = row.owner.into_user(row.passkey.user_id.clone())?;
        Ok(Some(PasskeyForLogin {
            passkey: Passkey::try_from(row.passkey)?,
            owner,
            cooling_off_until: row.cooling_off_until.map(Timestamp::from_millis),
        }))
    }
}

impl TryFrom<PasskeyRow> for Passkey {
    type Error = StoreError;
    fn try_from(r: PasskeyRow) -> StoreResult<Passkey> {
        Ok(Passkey {
            id: uuid(&r.id)?,
            user_id: UserId(uuid(&r.user_id)?),
            credential_id: r.credential_id,
            record: r.record,
            counter: u32::try_from(r.counter).map_err(|_| StoreError::Corrupt(format!("counter: {}", r.counter)))?,
            backup_eligible: r.backup_eligible,
            backup_state: r.backup_state,
            user_verified: r.user_verified,
            aaguid: uuid(&r.aaguid)?,
            transports: serde_json::from_str(&r.transports)
                .map_err(|_| StoreError::Corrupt(format!("transports: {}", r.transports)))?,
            name: r.name,
            created_at: Timestamp::from_millis(r.created_at),
            last_used_at: r.last_used_at.map(Timestamp::from_millis),
        })
    }
}

#[derive(sqlx::FromRow)]
struct CeremonyRow {
    id: String,
    session_id: String,
    user_id: String,
    state: String,
    name: Option<String>,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<CeremonyRow> for Ceremony {
    type Error = StoreError;
    fn try_from(r: CeremonyRow) -> StoreResult<Ceremony> {
        Ok(Ceremony {
            id: uuid(&r.id)?,
            session_id: SessionId(uuid(&r.session_id)?),
            user_id: UserId(uuid(&r.user_id)?),
            state: r.state,
            name: r.name,
            created_at: Timestamp::from_millis(r.created_at),
            expires_at: Timestamp::from_millis(r.expires_at),
        })
    }
}

#[async_trait::async_trait]
impl CredentialStore for SqlStore {
    async fn passkeys_of(&self, user: UserId) -> StoreResult<Vec<Passkey>> {
        let rows: Vec<PasskeyRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                passkey_columns!(),
                " FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"
            ))
            .bind(user.0.to_string())
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        rows.into_iter().map(Passkey::try_from).collect()
    }

    async fn passkey_by_credential_id(&self, credential_id: &str) -> StoreResult<Option<Passkey>> {
        let row: Option<PasskeyRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                passkey_columns!(),
                " FROM passkeys WHERE credential_id = $1"
            ))
            .bind(credential_id)
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        row.map(Passkey::try_from).transpose()
    }

    async fn record_passkey_use(&self, u: &PasskeyUse) -> StoreResult<bool> {
        write_op!(self, |c| record_use(c, u).await)
    }

    async fn insert_ceremony(&self, c: &Ceremony) -> StoreResult<()> {
        with_db!(write(self), |pool| {
            sqlx::query(concat!(
                "INSERT INTO ceremonies (",
                ceremony_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ))
            .bind(c.id.to_string())
            .bind(c.session_id.0.to_string())
            .bind(c.user_id.0.to_string())
            .bind(&c.state)
            .bind(c.name.as_deref())
            .bind(c.created_at.as_millis())
            .bind(c.expires_at.as_millis())
            .execute(pool)
            .await
            .map_err(conflict_as(signet_core::ErrorCode::CeremonyExists))?;
        });
        Ok(())
    }

    async fn take_ceremony(&self, id: Uuid, session: SessionId, now: Timestamp) -> StoreResult<Option<Ceremony>> {
        let row: Option<CeremonyRow> = with_db!(write(self), |pool| {
            sqlx::query_as(concat!(
                "DELETE FROM ceremonies WHERE id = $1 AND session_id = $2 AND expires_at > $3 RETURNING ",
                ceremony_columns!()
            ))
            .bind(id.to_string())
            .bind(session.0.to_string())
            .bind(now.as_millis())
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        row.map(Ceremony::try_from).transpose()
    }

    async fn purge_expired_ceremonies(&self, now: Timestamp) -> StoreResult<u64> {
        Ok(with_db!(write(self), |pool| {
            sqlx::query("DELETE FROM ceremonies WHERE expires_at <= $1")
                .bind(now.as_millis())
                .execute(pool)
                .await
                .map_err(backend)?
                .rows_affected()
        }))
    }

    async fn server_secret(&self, name: &str, candidate: &[u8], now: Timestamp) -> StoreResult<Vec<u8>> {
        let value: (Vec<u8>,) = with_db!(write(self), |pool| {
            sqlx::query(
                "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(candidate)
            .bind(now.as_millis())
            .execute(pool)
            .await
            .map_err(backend)?;
            sqlx::query_as("SELECT value FROM server_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await
                .map_err(backend)?
        });
        Ok(value.0)
    }
}

async fn record_use(conn: Conn<'_>, u: &PasskeyUse) -> StoreResult<bool> {
    let values = use_values(u);
    let n = with_conn!(conn, |c| {
        crate::deferred::bind(&values, sqlx::query(USE))
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected()
    });
    Ok(n == 1)
}

/// [`USE`]'s values, in order.
fn use_values(u: &PasskeyUse) -> Vec<crate::deferred::Value> {
    vec![
        i64::from(u.counter).into(),
        u.backup_state.into(),
        u.at.as_millis().into(),
        u.id.to_string().into(),
        i64::from(u.previous_counter).into(),
    ]
}

#[async_trait::async_trait]
impl CredentialWrites for SqlTx {
    async fn insert_passkey(&mut self, p: &Passkey) -> StoreResult<()> {
        let transports = serde_json::to_string(&p.transports).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        in_tx!(self, |c| {
            sqlx::query(concat!(
                "INSERT INTO passkeys (",
                passkey_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ))
            .bind(p.id.to_string())
            .bind(p.user_id.0.to_string())
            .bind(&p.credential_id)
            .bind(&p.record)
            .bind(i64::from(p.counter))
            .bind(p.backup_eligible)
            .bind(p.backup_state)
            .bind(p.user_verified)
            .bind(p.aaguid.to_string())
            .bind(&transports)
            .bind(&p.name)
            .bind(p.created_at.as_millis())
            .bind(p.last_used_at.map(|t| t.as_millis()))
            .execute(&mut *c)
            .await
            .map_err(conflict_as(signet_core::ErrorCode::CredentialAlreadyRegistered))?;
        })
    }

    async fn rename_passkey(&mut self, user: UserId, id: Uuid, name: &str) -> StoreResult<bool> {
        let r = named_credentials::rename(self.conn().await?, &named_credentials::PASSKEYS, user, id, name).await;
        self.observe(r)
    }

    async fn remove_passkey(&mut self, user: UserId, id: Uuid, keep: u32) -> StoreResult<Removal> {
        let r = named_credentials::remove(self.conn().await?, &named_credentials::PASSKEYS, user, id, keep).await;
        self.observe(r)
    }

    async fn lock_ways_in(&mut self, user: UserId) -> StoreResult<signet_core::credential::WaysIn> {
        let r = named_credentials::lock_ways_in(self.conn().await?, user).await;
        self.observe(r)
    }

    async fn record_passkey_use(&mut self, u: &PasskeyUse) -> StoreResult<bool> {
        let r = record_use(self.conn().await?, u).await;
        self.observe(r)
    }

    /// On SQLite the update waits for the unit's next call, checked there
    /// by SQLite itself (ADR 0035).
    async fn record_passkey_use_or_refuse(&mut self, u: &PasskeyUse) -> StoreResult<()> {
        self.write_checked(Refusal::PasskeyRaced, USE, USE_CHECKED, use_values(u))
            .await
    }
}

crate::refusals::checked_write!(
    /// A login's counter, backup state and last use, only if the stored
    /// counter is still the one the assertion was checked against.
    USE,
    USE_CHECKED,
    "passkey_raced",
    "UPDATE passkeys SET counter = $1, backup_state = $2, last_used_at = $3 WHERE id = $4 AND counter = $5"
);
