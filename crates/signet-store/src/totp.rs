//! TOTP credentials (RFC 6238) and the store half of their replay rule.
//!
//! A login advances `last_step` with one `UPDATE ... WHERE id = $ AND
//! last_step < $step`: of any number of concurrent submissions of one code
//! (one time step), on any node, exactly one changes a row (RFC 6238 §5.2,
//! "the verifier MUST NOT accept the second attempt of the OTP after the
//! successful validation has been issued for the first OTP"). Removal locks
//! the owner's row first, as passkeys do.

use signet_core::clock::Timestamp;
use signet_core::credential::{Removal, TotpCredential};
use signet_core::store::{Refusal, StoreError, StoreResult};
use signet_core::user::UserId;
use uuid::Uuid;

use crate::named_credentials;
use crate::rows::uuid;
use crate::tx::{in_tx, SqlTx};
use crate::{backend, with_db, SqlStore};

macro_rules! totp_columns {
    () => {
        "id, user_id, name, seed, last_step, created_at, last_used_at"
    };
}

#[derive(sqlx::FromRow)]
struct TotpRow {
    id: String,
    user_id: String,
    name: String,
    seed: Vec<u8>,
    last_step: i64,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl TryFrom<TotpRow> for TotpCredential {
    type Error = StoreError;
    fn try_from(r: TotpRow) -> StoreResult<TotpCredential> {
        Ok(TotpCredential {
            id: uuid(&r.id)?,
            user_id: UserId(uuid(&r.user_id)?),
            name: r.name,
            sealed_seed: r.seed,
            last_step: r.last_step,
            created_at: Timestamp::from_millis(r.created_at),
            last_used_at: r.last_used_at.map(Timestamp::from_millis),
        })
    }
}

impl SqlStore {
    pub(crate) async fn totps_of_user(&self, user: UserId) -> StoreResult<Vec<TotpCredential>> {
        let rows: Vec<TotpRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                totp_columns!(),
                " FROM totp_credentials WHERE user_id = $1 ORDER BY created_at, id"
            ))
            .bind(user.0.to_string())
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        rows.into_iter().map(TotpCredential::try_from).collect()
    }
}

impl SqlTx {
    pub(crate) async fn insert_totp_row(&mut self, t: &TotpCredential) -> StoreResult<()> {
        in_tx!(self, |c| {
            sqlx::query(concat!(
                "INSERT INTO totp_credentials (",
                totp_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ))
            .bind(t.id.to_string())
            .bind(t.user_id.0.to_string())
            .bind(&t.name)
            .bind(t.sealed_seed.as_slice())
            .bind(t.last_step)
            .bind(t.created_at.as_millis())
            .bind(t.last_used_at.map(|t| t.as_millis()))
            .execute(&mut *c)
            .await
            .map_err(crate::conflict_as(signet_core::ErrorCode::CredentialAlreadyRegistered))?;
        })
    }

    pub(crate) async fn rename_totp_row(&mut self, user: UserId, id: Uuid, name: &str) -> StoreResult<bool> {
        let r = named_credentials::rename(self.conn().await?, &named_credentials::TOTP, user, id, name).await;
        self.observe(r)
    }

    pub(crate) async fn remove_totp_row(&mut self, user: UserId, id: Uuid, keep: u32) -> StoreResult<Removal> {
        let r = named_credentials::remove(self.conn().await?, &named_credentials::TOTP, user, id, keep).await;
        self.observe(r)
    }

    pub(crate) async fn advance_totp_row(&mut self, id: Uuid, step: i64, at: Timestamp) -> StoreResult<bool> {
        in_tx!(self, |c| {
            sqlx::query(ADVANCE)
                .bind(step)
                .bind(at.as_millis())
                .bind(id.to_string())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected()
                == 1
        })
    }
}

#[async_trait::async_trait]
impl signet_core::store::OtpCredentialStore for SqlStore {
    async fn totps_of(&self, user: UserId) -> StoreResult<Vec<TotpCredential>> {
        self.totps_of_user(user).await
    }

    async fn recovery_codes_of(&self, user: UserId) -> StoreResult<Option<signet_core::credential::RecoveryCodeSet>> {
        self.recovery_set_of(user).await
    }

    async fn recovery_code_used(
        &self,
        user: UserId,
        hash: &signet_core::secret::TokenHash,
    ) -> StoreResult<Option<bool>> {
        self.recovery_code_state(user, hash).await
    }
}

#[async_trait::async_trait]
impl signet_core::unit_of_work::OtpCredentialWrites for SqlTx {
    async fn insert_totp(&mut self, totp: &TotpCredential) -> StoreResult<()> {
        self.insert_totp_row(totp).await
    }

    async fn rename_totp(&mut self, user: UserId, id: Uuid, name: &str) -> StoreResult<bool> {
        self.rename_totp_row(user, id, name).await
    }

    async fn remove_totp(&mut self, user: UserId, id: Uuid, keep: u32) -> StoreResult<Removal> {
        self.remove_totp_row(user, id, keep).await
    }

    async fn advance_totp_step(&mut self, id: Uuid, step: i64, at: Timestamp) -> StoreResult<bool> {
        self.advance_totp_row(id, step, at).await
    }

    /// On SQLite the update waits for the unit's next call, checked there
    /// by SQLite itself (ADR 0035).
    async fn advance_totp_step_or_refuse(&mut self, id: Uuid, step: i64, at: Timestamp) -> StoreResult<()> {
        let values = vec![step.into(), at.as_millis().into(), id.to_string().into()];
        self.write_checked(Refusal::CodeReplayed, ADVANCE, ADVANCE_CHECKED, values)
            .await
    }

    async fn replace_recovery_codes(
        &mut self,
        user: UserId,
        set_id: Uuid,
        hashes: &[signet_core::secret::TokenHash],
        now: Timestamp,
    ) -> StoreResult<u64> {
        self.replace_recovery_rows(user, set_id, hashes, now).await
    }

    async fn use_recovery_code(
        &mut self,
        user: UserId,
        hash: &signet_core::secret::TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<u32>> {
        self.use_recovery_row(user, hash, now).await
    }

    async fn remove_recovery_codes(&mut self, user: UserId, set_id: Uuid, keep: u32) -> StoreResult<Removal> {
        self.remove_recovery_rows(user, set_id, keep).await
    }
}

crate::refusals::checked_write!(
    /// An accepted code's step, only above the last accepted one (RFC 6238
    /// §5.2): of racing submissions of one code, one changes the row.
    ADVANCE,
    ADVANCE_CHECKED,
    "code_replayed",
    "UPDATE totp_credentials SET last_step = $1, last_used_at = $2 WHERE id = $3 AND last_step < $1"
);
