//! Appending to and reading the hash-chained audit log.
//!
//! An append happens inside the unit of work of the change it records
//! ([`signet_core::unit_of_work`]), never on its own, as the unit's last
//! writes before its commit.
//!
//! - **PostgreSQL** ([`append_pg`], ADR 0036): take a lane, one of the
//!   [`LANES`] `audit_head` rows that no other transaction holds
//!   (`FOR UPDATE SKIP LOCKED`), and in the same statement draw the record's
//!   `seq` from the `audit_seq` sequence; seal the record against the
//!   lane's hash; insert it and store its hash in the lane's head. The lane
//!   stays locked until the commit has flushed, as the one head did before
//!   lanes, but now up to [`LANES`] commits of any nodes are in flight at
//!   once, so the server's WAL flushes serve many of them together instead
//!   of one after another. Further records of the same unit stay in its
//!   lane (no second lock, no lock-order deadlock between two units).
//! - **SQLite**: the group's transaction already holds the one write lock,
//!   so the group keeps lane 1's head in memory and an append is one
//!   `INSERT` (see `group_commit::ChainHead`).

use signet_core::audit::{AuditEvent, AuditRecord, ChainEnds, LaneHead, LANES};
use signet_core::clock::Timestamp;
use signet_core::store::{AuditQuery, AuditStore, StoreError, StoreResult};
use signet_core::unit_of_work::AuditAppend;
use uuid::Uuid;

use crate::deferred::{self, Deferred};
use crate::group_commit::ChainHead;
use crate::rows::{audit_columns, audit_read_columns, convert_all, AuditRow};
use crate::tx::{with_conn, Conn, SqlTx};
use crate::{backend, with_db, SqlStore};

#[async_trait::async_trait]
impl AuditStore for SqlStore {
    async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                audit_read_columns!(),
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
                audit_read_columns!(),
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

    async fn audit_ends(&self) -> StoreResult<ChainEnds> {
        // One statement, one snapshot: the heads (kind 1) and each lane's
        // newest record (kind 0). A full pass over the log, as verification
        // makes anyway.
        let rows: Vec<(i64, i64, i64, Option<Vec<u8>>)> = with_db!(read(self), |pool| {
            sqlx::query_as(
                "SELECT CAST(1 AS BIGINT), CAST(id AS BIGINT), seq, hash FROM audit_head \
                 UNION ALL \
                 SELECT CAST(0 AS BIGINT), CAST(lane AS BIGINT), MAX(seq), CAST(NULL AS BYTEA) \
                 FROM audit_log GROUP BY lane",
            )
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        let mut ends = ChainEnds::default();
        for (kind, lane, seq, hash) in rows {
            let lane = i16::try_from(lane).map_err(|_| StoreError::Corrupt("audit lane number".into()))?;
            match hash {
                Some(hash) if kind == 1 => ends.heads.push(LaneHead {
                    lane,
                    seq,
                    hash: hash_of(&hash)?,
                }),
                _ => ends.newest.push((lane, seq)),
            }
        }
        ends.heads.sort_by_key(|h| h.lane);
        ends.newest.sort_unstable();
        Ok(ends)
    }
}

#[async_trait::async_trait]
impl AuditAppend for SqlTx {
    /// Queued, and chained at the commit (see [`crate::tx`]).
    async fn append_audit(&mut self, event: &AuditEvent, id: Uuid, at: Timestamp) -> StoreResult<()> {
        self.append_later(event, id, at)
    }
}

/// Appends one record on PostgreSQL in `lane` if the unit already holds
/// one, else in a lane no other transaction holds (or, when every lane is
/// held, in one it waits for). Two round trips: the lane's head with the
/// record's `seq`, then the record and the lane's new hash in one statement
/// (a data-modifying CTE). Returns the record, whose `lane` the unit keeps
/// for its next append.
pub(crate) async fn append_pg(
    c: &mut sqlx::PgConnection,
    event: &AuditEvent,
    id: Uuid,
    at: Timestamp,
    lane: Option<i16>,
) -> StoreResult<AuditRecord> {
    // The lane is locked before its `seq` is final: a `SET` value computed
    // before a wait for the row is computed again once the row is ours. So
    // within a lane, `seq` order is the order in which units held it, which
    // is chain order. The first lane tried is picked from the record's
    // random bits, so every lane keeps moving (a lane left idle would keep
    // an old last record that nothing after it vouches for); when another
    // unit holds it, the first free lane. `COALESCE` evaluates its second
    // subquery only when the first found nothing.
    const TAKE: &str = "UPDATE audit_head SET seq = nextval('audit_seq') \
         WHERE id = COALESCE(\
             (SELECT id FROM audit_head WHERE id = $1 FOR UPDATE SKIP LOCKED), \
             (SELECT id FROM audit_head ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)) \
         RETURNING CAST(id AS SMALLINT), seq, hash";
    const LOCK: &str = "UPDATE audit_head SET seq = nextval('audit_seq') WHERE id = $1 \
         RETURNING CAST(id AS SMALLINT), seq, hash";
    let lock_lane = |lane: i16| sqlx::query_as::<_, (i16, i64, Vec<u8>)>(LOCK).bind(lane);
    let start = lane_from(id);
    let taken = match lane {
        // The unit's own lane: already locked by it.
        Some(lane) => lock_lane(lane).fetch_optional(&mut *c).await,
        None => match sqlx::query_as(TAKE).bind(start).fetch_optional(&mut *c).await {
            // Every lane is held: wait for one.
            Ok(None) => lock_lane(start).fetch_optional(&mut *c).await,
            other => other,
        },
    }
    .map_err(backend)?;
    let (lane, seq, prev) = taken.ok_or_else(|| StoreError::Corrupt("audit lane missing".into()))?;
    let rec = AuditRecord::seal_in_lane(event, id, at, lane, seq, hash_of(&prev)?);
    bind_record(
        sqlx::query(concat!(
            "WITH rec AS (INSERT INTO audit_log (",
            audit_columns!(),
            ", lane) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)) \
             UPDATE audit_head SET hash = $12 WHERE id = $13"
        )),
        &rec,
    )
    .bind(rec.lane)
    .execute(&mut *c)
    .await
    .map_err(backend)?;
    Ok(rec)
}

/// A lane from the record's random bits: where the search for a free lane
/// starts, and the lane to wait for when every lane is held (so that
/// waiters spread over all lanes rather than queue on one).
fn lane_from(id: Uuid) -> i16 {
    let spread = id.as_u128() as u16 % LANES as u16;
    1 + spread as i16
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
    let head = match (append.head, &mut conn) {
        (Some(h), _) => h,
        (None, Conn::Sqlite(c)) => read_head(c).await?,
        (None, Conn::Postgres(_)) => return Err(StoreError::Backend("a SQLite append on PostgreSQL".into())),
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

/// Binds a chain head, if there is one (its sequence number, then its
/// hash), to the next two placeholders: the group's closing writes it, a
/// leader's opening checks it (`crate::group_commit`).
pub(crate) fn bind_head<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    head: Option<&'q ChainHead>,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    match head {
        Some(h) => q.bind(h.seq).bind(h.hash.as_slice()),
        None => q,
    }
}

/// The chain head as the group's transaction has it (read inside it, so
/// under SQLite's write lock).
pub(crate) async fn read_head(c: &mut sqlx::SqliteConnection) -> StoreResult<ChainHead> {
    let (seq, hash): (i64, Vec<u8>) = sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(c)
        .await
        .map_err(backend)?;
    Ok(ChainHead {
        seq,
        hash: hash_of(&hash)?,
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

/// One `INSERT` of `rows` sealed records, bound as [`bind_record`] binds
/// each in turn: the records of every unit in a whole call of handed units
/// (SQLite only), one statement instead of one per record.
///
/// Its placeholders are anonymous (`?`), where every other statement's are
/// numbered (`$k`). A call of 16 records has 192 of them, and for each one
/// the driver asks SQLite for its name, which SQLite finds by a walk
/// along the statement's list of names: numbered, that walk made the call's
/// binding quadratic (about 2 % of a `client_credentials` grant's CPU).
/// The driver numbers anonymous placeholders in the order they come,
/// across a call's statements, counting only anonymous ones, while a
/// numbered one names its value's place outright: so the call binds these
/// records' values first, and numbers the other statements' placeholders
/// after them (`group_commit::handed`).
pub(crate) fn insert_rows(rows: usize) -> String {
    let mut sql = String::from(concat!("INSERT INTO audit_log (", audit_columns!(), ") VALUES "));
    let row = format!("({})", ["?"; AUDIT_COLUMNS].join(", "));
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
    }
    sql
}

/// The columns [`bind_record`] binds.
pub(crate) const AUDIT_COLUMNS: usize = 12;

/// Binds a record's columns, in `audit_columns!` order, to the next twelve
/// placeholders: `$1`..`$12` of [`INSERT`], or one row's `?`s of
/// [`insert_rows`].
pub(crate) fn bind_record<'q, DB>(
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

#[cfg(test)]
mod tests {
    /// One row of the multi-row `INSERT` is the single record's `INSERT`
    /// with anonymous placeholders: a column added to one and not the
    /// other fails here.
    #[test]
    fn one_row_of_the_multi_row_insert_is_the_single_insert() {
        let anonymous = (1..=super::AUDIT_COLUMNS)
            .rev()
            .fold(super::INSERT.to_owned(), |sql, k| sql.replace(&format!("${k}"), "?"));
        assert_eq!(super::insert_rows(1), anonymous);
        assert!(super::insert_rows(2).ends_with("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        assert_eq!(super::insert_rows(3).matches('?').count(), 36);
    }
}
