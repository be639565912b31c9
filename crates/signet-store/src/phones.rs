//! Verified phones (`sms_otp` credentials).
//!
//! One row per account at most (a unique `user_id`), so a second
//! verification racing the first is `Conflict(phone_exists)` on both
//! engines. Removal locks the owner's row first, as for passkeys, so the
//! last-way-in count cannot race another kind's removal on PostgreSQL.

use signet_core::clock::Timestamp;
use signet_core::credential::{PhoneCredential, Removal};
use signet_core::store::{PhoneStore, StoreResult};
use signet_core::unit_of_work::PhoneWrites;
use signet_core::user::{Phone, UserId};
use uuid::Uuid;

use crate::named_credentials;
use crate::rows::uuid;
use crate::tx::{in_tx, SqlTx};
use crate::{backend, conflict_as, with_db, SqlStore};

#[derive(sqlx::FromRow)]
struct PhoneRow {
    id: String,
    user_id: String,
    phone: String,
    name: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl TryFrom<PhoneRow> for PhoneCredential {
    type Error = signet_core::store::StoreError;
    fn try_from(r: PhoneRow) -> StoreResult<PhoneCredential> {
        Ok(PhoneCredential {
            id: uuid(&r.id)?,
            user_id: UserId(uuid(&r.user_id)?),
            phone: Phone::from_trusted(r.phone),
            name: r.name,
            created_at: Timestamp::from_millis(r.created_at),
            last_used_at: r.last_used_at.map(Timestamp::from_millis),
        })
    }
}

#[async_trait::async_trait]
impl PhoneStore for SqlStore {
    async fn phones_of(&self, user: UserId) -> StoreResult<Vec<PhoneCredential>> {
        let rows: Vec<PhoneRow> = with_db!(read(self), |pool| {
            sqlx::query_as(PHONES_OF_USER)
                .bind(user.0.to_string())
                .fetch_all(pool)
                .await
                .map_err(backend)?
        });
        rows.into_iter().map(PhoneCredential::try_from).collect()
    }
}

const PHONES_OF_USER: &str = "SELECT id, user_id, phone, name, created_at, last_used_at FROM phones \
                              WHERE user_id = $1 ORDER BY created_at, id";

#[async_trait::async_trait]
impl PhoneWrites for SqlTx {
    async fn phones_in_unit(&mut self, user: UserId) -> StoreResult<Vec<PhoneCredential>> {
        let rows: Vec<PhoneRow> = in_tx!(self, |c| {
            sqlx::query_as(PHONES_OF_USER)
                .bind(user.0.to_string())
                .fetch_all(&mut *c)
                .await
                .map_err(backend)?
        })?;
        rows.into_iter().map(PhoneCredential::try_from).collect()
    }

    async fn insert_phone(&mut self, p: &PhoneCredential) -> StoreResult<()> {
        in_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO phones (id, user_id, phone, name, created_at, last_used_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(p.id.to_string())
            .bind(p.user_id.0.to_string())
            .bind(p.phone.as_str())
            .bind(&p.name)
            .bind(p.created_at.as_millis())
            .bind(p.last_used_at.map(|t| t.as_millis()))
            .execute(&mut *c)
            .await
            .map_err(conflict_as(signet_core::ErrorCode::PhoneExists))?;
        })
    }

    async fn rename_phone(&mut self, user: UserId, id: Uuid, name: &str) -> StoreResult<bool> {
        let r = named_credentials::rename(self.conn().await?, &named_credentials::PHONES, user, id, name).await;
        self.observe(r)
    }

    async fn remove_phone(&mut self, user: UserId, id: Uuid, keep: u32) -> StoreResult<Removal> {
        let r = named_credentials::remove(self.conn().await?, &named_credentials::PHONES, user, id, keep).await;
        self.observe(r)
    }

    async fn touch_phone(&mut self, id: Uuid, at: Timestamp) -> StoreResult<()> {
        in_tx!(self, |c| {
            sqlx::query("UPDATE phones SET last_used_at = $1 WHERE id = $2")
                .bind(at.as_millis())
                .bind(id.to_string())
                .execute(&mut *c)
                .await
                .map_err(backend)?;
        })
    }
}
