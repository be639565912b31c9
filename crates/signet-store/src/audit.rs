//! Appending to and reading the hash-chained audit log.
//!
//! An append happens inside the unit of work of the change it records
//! ([`signet_core::unit_of_work`]), never on its own. On PostgreSQL: bump
//! the single `audit_head` row (which locks it, serialising appenders on
//! every node), seal the record against the previous hash, store the new
//! hash in the head, insert the record. On SQLite the group's transaction
//! already holds the one write lock, so the group keeps the head in memory
//! and an append is one `INSERT` (see `group_commit::ChainHead`).

use signet_core::audit::{AuditEvent, AuditRecord};
use signet_core::clock::Timestamp;
use signet_core::store::{AuditQuery, AuditStore, StoreError, StoreResult};
use signet_core::unit_of_work::AuditAppend;
use uuid::Uuid;

use crate::deferred::{self, Deferred};
use crate::group_commit::ChainHead;
use crate::rows::{audit_columns, convert_all, AuditRow};
use crate::tx::{with_conn, Conn, SqlTx};
use crate::{backend, with_db, SqlStore};

#[async_trait::async_trait]
impl AuditStore for SqlStore {
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
        Ok((seq, hash_of(&hash)?))
    }
}

#[async_trait::async_trait]
impl AuditAppend for SqlTx {
    /// Queued, and chained at the commit (see [`crate::tx`]).
    async fn append_audit(&mut self, event: &AuditEvent, id: Uuid, at: Timestamp) -> StoreResult<()> {
        self.append_later(event, id, at)
    }
}

/// Appends one record on PostgreSQL, chained to the head: bump the head row
/// (which locks it, serialising appenders on every node), seal the record
/// against the previous hash, then insert the record and store its hash in
/// the head in one statement (a data-modifying CTE): two round trips.
pub(crate) async fn append_pg(
    c: &mut sqlx::PgConnection,
    event: &AuditEvent,
    id: Uuid,
    at: Timestamp,
) -> StoreResult<AuditRecord> {
    let (seq, prev): (i64, Vec<u8>) =
        sqlx::query_as("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *c)
            .await
            .map_err(backend)?;
    let rec = AuditRecord::seal(event, id, at, seq - 1, hash_of(&prev)?);
    bind_record(
        sqlx::query(concat!(
            "WITH rec AS (INSERT INTO audit_log (",
            audit_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)) \
             UPDATE audit_head SET hash = $12 WHERE id = 1"
        )),
        &rec,
    )
    .execute(&mut *c)
    .await
    .map_err(backend)?;
    Ok(rec)
}

/// One audit record's append on SQLite ([`append_after`]).
pub(crate) struct Append<'a> {
    /// The chain head the group already holds, if any.
    pub(crate) head: Option<ChainHead>,
    pub(crate) event: &'a AuditEvent,
    pub(crate) id: Uuid,
    pub(crate) at: Timestamp,
    /// The unit's release into its group goes in the same call, after the
    /// `INSERT` ([`crate::group_commit::RELEASE_AND_REOPEN`]).
    pub(crate) release: bool,
    /// Inserts the unit left for its next call, made in the same call,
    /// before the record ([`crate::deferred`]).
    pub(crate) inserts: &'a [Deferred],
}

/// Appends a record on SQLite, against the chain head the group's
/// transaction already holds (read here, inside the group's transaction,
/// when the group has none yet): one `INSERT`. The group writes the head
/// back with its `COMMIT` (see `group_commit::ChainHead`). Returns the new
/// head.
///
/// The unit's waiting inserts and its release may go in the same call
/// ([`deferred::statement`]; SQLite stops at the first statement that
/// fails: an insert or a record refused leaves the unit in its savepoint,
/// as without them).
pub(crate) async fn append_after(conn: Conn<'_>, append: Append<'_>) -> StoreResult<ChainHead> {
    let mut conn = conn;
    let head = match append.head {
        Some(h) => h,
        None => {
            let (seq, hash): (i64, Vec<u8>) = with_conn!(&mut conn, |c| {
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(&mut **c)
                    .await
                    .map_err(backend)?
            });
            ChainHead {
                seq,
                hash: hash_of(&hash)?,
            }
        }
    };
    let rec = AuditRecord::seal(append.event, append.id, append.at, head.seq, head.hash);
    let then = if append.release {
        deferred::Then::RecordAndRelease
    } else {
        deferred::Then::Record
    };
    let sql = deferred::statement(append.inserts, then);
    with_conn!(conn, |c| {
        bind_record(deferred::bind(deferred::values(append.inserts), sqlx::query(sql)), &rec)
            .execute(&mut *c)
            .await
            .map_err(backend)?;
    });
    Ok(ChainHead {
        seq: rec.seq,
        hash: rec.hash,
    })
}

fn hash_of(bytes: &[u8]) -> StoreResult<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("audit head hash length".into()))
}

/// A sealed record's `INSERT` on SQLite (`$1`..`$12`, [`bind_record`]),
/// alone or after the unit's waiting inserts and before its release
/// ([`deferred::statement`]).
pub(crate) const INSERT: &str = concat!(
    "INSERT INTO audit_log (",
    audit_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
);

/// Binds a record's columns as `$1`..`$12`, in `audit_columns!` order.
fn bind_record<'q, DB>(
    q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    rec: &'q AuditRecord,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    q.bind(rec.seq)
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
}
