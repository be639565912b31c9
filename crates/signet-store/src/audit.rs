//! Appending to and reading the hash-chained audit log.
//!
//! An append is one transaction: bump the single `audit_head` row (which
//! locks it, serialising appenders on every node), seal the record against
//! the previous hash, store the new hash in the head, insert the record.

use signet_core::audit::{AuditEvent, AuditRecord};
use signet_core::clock::Timestamp;
use signet_core::store::{AuditQuery, AuditStore, Audited, StoreError, StoreResult};
use uuid::Uuid;

use crate::rows::{audit_columns, convert_all, AuditRow};
use crate::{backend, with_db, SqlStore};

/// Appends the [`signet_core::store::Audited`] entry `$audit` inside the
/// open transaction `$tx` (`&mut` a transaction of either engine) and
/// evaluates to the sealed [`AuditRecord`]. Other writes in the same
/// transaction commit with it or not at all.
macro_rules! append {
    ($tx:expr, $audit:expr) => {{
        let tx = $tx;
        let audit: signet_core::store::Audited<'_> = $audit;
        let (seq, prev): (i64, Vec<u8>) =
            sqlx::query_as("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
                .fetch_one(&mut **tx)
                .await
                .map_err(crate::backend)?;
        let prev: [u8; 32] = prev
            .as_slice()
            .try_into()
            .map_err(|_| signet_core::store::StoreError::Corrupt("audit head hash length".into()))?;
        let rec = signet_core::audit::AuditRecord::seal(audit.event, audit.id, audit.at, seq - 1, prev);
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(rec.hash.as_slice())
            .execute(&mut **tx)
            .await
            .map_err(crate::backend)?;
        sqlx::query(concat!(
            "INSERT INTO audit_log (",
            crate::rows::audit_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(rec.seq)
        .bind(rec.id.to_string())
        .bind(rec.at.as_millis())
        .bind(rec.event_type.as_str())
        .bind(rec.actor.as_str())
        .bind(rec.user_id.map(|u| u.to_string()))
        .bind(rec.ip.as_deref())
        .bind(rec.user_agent.as_deref())
        .bind(rec.outcome.as_str())
        .bind(rec.details.as_str())
        .bind(rec.prev_hash.as_slice())
        .bind(rec.hash.as_slice())
        .execute(&mut **tx)
        .await
        .map_err(crate::backend)?;
        rec
    }};
}
pub(crate) use append;

#[async_trait::async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, event: &AuditEvent, id: Uuid, at: Timestamp) -> StoreResult<AuditRecord> {
        with_db!(write(self), |pool| {
            let mut tx = pool.begin().await.map_err(backend)?;
            let rec = append!(&mut tx, Audited { event, id, at });
            tx.commit().await.map_err(backend)?;
            Ok(rec)
        })
    }

    async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                audit_columns!(),
                " FROM audit_log WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR type = $2) \
                 AND seq < $3 ORDER BY seq DESC LIMIT $4"
            ))
            .bind(q.user_id.map(|u| u.0.to_string()))
            .bind(q.event_type.as_deref())
            .bind(q.before_seq.unwrap_or(i64::MAX))
            .bind(i64::from(q.limit))
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        convert_all(rows)
    }

    async fn audit_range(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                audit_columns!(),
                " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        convert_all(rows)
    }

    async fn audit_head(&self) -> StoreResult<(i64, [u8; 32])> {
        let (seq, hash): (i64, Vec<u8>) = with_db!(read(self), |pool| {
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(pool)
                .await
                .map_err(backend)?
        });
        let hash =
            <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| StoreError::Corrupt("audit head hash length".into()))?;
        Ok((seq, hash))
    }
}
