//! One-time secrets. Consumption is one conditional `UPDATE ... RETURNING`:
//! the database decides the single winner, never a read followed by a write.

use signet_core::clock::Timestamp;
use signet_core::flow::FlowId;
use signet_core::secret::TokenHash;
use signet_core::store::{OneTimeSecret, Refusal, SecretPurpose, SecretStore, StoreResult};
use signet_core::unit_of_work::SecretWrites;
use signet_core::user::UserId;

use crate::rows::{secret_columns, SecretRow};
use crate::tx::{in_tx, with_conn, write_op, Conn, SqlTx};
use crate::{backend, with_db, SqlStore};

/// Runs [`CONSUME`] on `$exec` (a pool or a transaction): one conditional
/// write, so of any number of concurrent callers exactly one gets the row.
macro_rules! consume {
    ($exec:expr, $purpose:expr, $hash:expr, $now:expr) => {
        sqlx::query_as::<_, SecretRow>(CONSUME)
            .bind($now.as_millis())
            .bind($purpose.as_str())
            .bind($hash.as_bytes().as_slice())
            .fetch_optional($exec)
            .await
            .map_err(backend)?
    };
}

const CONSUME: &str = concat!(
    "UPDATE one_time_secrets SET consumed_at = $1 \
     WHERE purpose = $2 AND hash = $3 AND consumed_at IS NULL AND expires_at > $1 RETURNING ",
    secret_columns!()
);

/// Inserts one secret on `$exec` (a pool or a transaction). A hash that
/// exists, or a second live secret where only one may live, is `Conflict`.
macro_rules! insert {
    ($exec:expr, $s:expr) => {
        sqlx::query(concat!(
            "INSERT INTO one_time_secrets (",
            secret_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind($s.purpose.as_str())
        .bind($s.hash.as_bytes().as_slice())
        .bind($s.user_id.0.to_string())
        .bind($s.flow_id.map(|f| f.0.to_string()))
        .bind($s.created_at.as_millis())
        .bind($s.expires_at.as_millis())
        .bind($s.consumed_at.map(|t| t.as_millis()))
        .bind($s.issued_by.as_str())
        .execute($exec)
        .await
        .map_err(crate::conflict_as(signet_core::ErrorCode::SecretExists))?
    };
}

crate::refusals::checked_write!(
    /// A flow's code consumed, only while it is unused and unexpired and
    /// belongs to that flow and user: of racing submissions, one changes
    /// the row.
    CONSUME_FLOW_CODE,
    CONSUME_FLOW_CODE_CHECKED,
    "code_used",
    "UPDATE one_time_secrets SET consumed_at = $1 \
     WHERE purpose = $2 AND hash = $3 AND consumed_at IS NULL AND expires_at > $1 \
     AND flow_id = $4 AND user_id = $5"
);

const REVOKE_FLOW: &str = "UPDATE one_time_secrets SET consumed_at = $1 WHERE flow_id = $2 AND consumed_at IS NULL";
const REVOKE_USER_UNBOUND: &str = "UPDATE one_time_secrets SET consumed_at = $1 \
     WHERE purpose = $2 AND user_id = $3 AND flow_id IS NULL AND consumed_at IS NULL";

/// Whether issuing `a` and `b` revokes the same earlier secrets: the same
/// flow (any purpose), or, without a flow, the same user and purpose.
fn same_scope(a: &OneTimeSecret, b: &OneTimeSecret) -> bool {
    match (a.flow_id, b.flow_id) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a.user_id == b.user_id && a.purpose == b.purpose,
        _ => false,
    }
}

#[async_trait::async_trait]
impl SecretStore for SqlStore {
    async fn peek_secret(&self, purpose: SecretPurpose, hash: &TokenHash) -> StoreResult<Option<OneTimeSecret>> {
        let row: Option<SecretRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                secret_columns!(),
                " FROM one_time_secrets WHERE purpose = $1 AND hash = $2"
            ))
            .bind(purpose.as_str())
            .bind(hash.as_bytes().as_slice())
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        row.map(OneTimeSecret::try_from).transpose()
    }

    async fn consume_secret(
        &self,
        purpose: SecretPurpose,
        hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<OneTimeSecret>> {
        write_op!(self, |c| consume(c, purpose, hash, now).await)
    }

    async fn purge_spent_secrets(&self, before: Timestamp) -> StoreResult<u64> {
        Ok(with_db!(write(self), |pool| {
            sqlx::query("DELETE FROM one_time_secrets WHERE expires_at < $1 OR consumed_at < $1")
                .bind(before.as_millis())
                .execute(pool)
                .await
                .map_err(backend)?
                .rows_affected()
        }))
    }
}

async fn consume(
    conn: Conn<'_>,
    purpose: SecretPurpose,
    hash: &TokenHash,
    now: Timestamp,
) -> StoreResult<Option<OneTimeSecret>> {
    let row: Option<SecretRow> = with_conn!(conn, |c| consume!(&mut *c, purpose, hash, now));
    row.map(OneTimeSecret::try_from).transpose()
}

async fn issue(conn: Conn<'_>, secrets: &[OneTimeSecret], now: Timestamp) -> StoreResult<()> {
    with_conn!(conn, |c| {
        for (i, s) in secrets.iter().enumerate() {
            // Each scope is revoked once (a code and a link share a flow).
            if secrets[..i].iter().any(|earlier| same_scope(earlier, s)) {
                continue;
            }
            let revoke = match s.flow_id {
                Some(flow) => sqlx::query(REVOKE_FLOW).bind(now.as_millis()).bind(flow.0.to_string()),
                None => sqlx::query(REVOKE_USER_UNBOUND)
                    .bind(now.as_millis())
                    .bind(s.purpose.as_str())
                    .bind(s.user_id.0.to_string()),
            };
            revoke.execute(&mut *c).await.map_err(backend)?;
        }
        for s in secrets {
            insert!(&mut *c, s);
        }
    });
    Ok(())
}

#[async_trait::async_trait]
impl SecretWrites for SqlTx {
    async fn issue_secrets(&mut self, secrets: &[OneTimeSecret], now: Timestamp) -> StoreResult<()> {
        let r = issue(self.conn().await?, secrets, now).await;
        self.observe(r)
    }

    async fn consume_secret(
        &mut self,
        purpose: SecretPurpose,
        hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<OneTimeSecret>> {
        let r = consume(self.conn().await?, purpose, hash, now).await;
        self.observe(r)
    }

    /// One conditional `UPDATE` on both engines. On SQLite it waits for the
    /// unit's next call, checked there by SQLite itself (ADR 0035).
    async fn consume_flow_code_or_refuse(
        &mut self,
        purpose: SecretPurpose,
        hash: &TokenHash,
        flow: FlowId,
        user: Option<UserId>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let values = vec![
            now.as_millis().into(),
            purpose.as_str().into(),
            hash.as_bytes().to_vec().into(),
            flow.0.to_string().into(),
            user.map(|u| u.0.to_string()).into(),
        ];
        self.write_checked(Refusal::CodeUsed, CONSUME_FLOW_CODE, CONSUME_FLOW_CODE_CHECKED, values)
            .await
    }

    async fn revoke_flow_secrets(&mut self, flow: FlowId, now: Timestamp) -> StoreResult<u64> {
        in_tx!(self, |c| {
            sqlx::query(REVOKE_FLOW)
                .bind(now.as_millis())
                .bind(flow.0.to_string())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected()
        })
    }
}
