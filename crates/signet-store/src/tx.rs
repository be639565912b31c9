//! Units of work ([`signet_core::unit_of_work`]) on either engine.
//!
//! On SQLite, Signet issues `BEGIN IMMEDIATE`, `SAVEPOINT`, `RELEASE`,
//! `COMMIT` and `ROLLBACK` itself on the single writer connection instead of
//! using sqlx's `Transaction`, and units share commits
//! ([`crate::group_commit`], ADR 0015). The reason for owning the statements
//! is a failure mode found by fault injection: when the disk is full SQLite
//! rolls a failed transaction back on its own, sqlx's later `ROLLBACK` then
//! fails, its transaction depth stays at 1, and every later "transaction" on
//! that connection became a savepoint inside one that never commits, so
//! thousands of acknowledged writes were lost at restart (SQLite, "Atomic
//! Commit" §4 and the `sqlite3_get_autocommit` notes). Here nothing tracks a
//! depth that can drift: a `COMMIT` that fails, or a savepoint SQLite has
//! already discarded, fails the whole group (no member was acknowledged),
//! is followed by a `ROLLBACK` whose result does not matter, and the
//! connection is closed rather than returned to the pool, so the next write
//! gets a fresh one. A unit dropped unfinished (an early `?`, a request
//! cancelled because its client hung up) is rolled back to its savepoint by
//! a task that owns the connection until that is done.
//!
//! On PostgreSQL, sqlx's `Transaction` is used as it is: the server keeps the
//! transaction state and an aborted transaction can always be rolled back.
//!
//! Audit records are appended at the commit, after every other write of
//! the unit, so the head of the record's lane (the chain head, on SQLite)
//! is always the last lock a unit takes.
//!
//! Any error poisons the transaction: later operations and the commit fail.
//! The engine may already have discarded the work (SQLite on a full disk,
//! PostgreSQL after any failed statement), and continuing would write in
//! autocommit mode what the caller believes is part of a unit.

use sqlx::pool::PoolConnection;
use sqlx::{Postgres, Sqlite};

use signet_core::audit::AuditEvent;
use signet_core::clock::Timestamp;
use signet_core::store::{refuse_unless, Refusal, StoreError, StoreResult};
use uuid::Uuid;

use crate::connect::ACQUIRE_TIMEOUT;
use crate::deferred::Deferred;
use crate::group_commit::{self, CommitStats, Member};
use crate::{backend, Db, SqlStore};

/// A connection to run one operation's statements on: the writer of either
/// engine, inside a transaction or not. Operations shared by the pool and
/// the unit of work are written once against it (see [`with_conn!`]).
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut sqlx::SqliteConnection),
    Postgres(&'c mut sqlx::PgConnection),
}

/// Runs `$body` with `$c` bound to the `&mut` connection of either engine;
/// like `with_db!`, the body is type-checked against both drivers. Use
/// `&mut *$c` as the executor of each statement.
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::tx::Conn::Sqlite($c) => $body,
            $crate::tx::Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use with_conn;

/// [`with_conn!`] for an operation whose SQL differs between the engines
/// (one round trip written the way each engine allows): `$sql` is bound to
/// the `sqlite` or the `postgres` text, and the body, type-checked against
/// both drivers as with [`with_conn!`], runs it.
macro_rules! with_conn_sql {
    ($conn:expr, sqlite: $lite:expr, postgres: $pg:expr, |$c:ident, $sql:ident| $body:expr) => {
        match $conn {
            $crate::tx::Conn::Sqlite($c) => {
                let $sql: &'static str = $lite;
                $body
            }
            $crate::tx::Conn::Postgres($c) => {
                let $sql: &'static str = $pg;
                $body
            }
        }
    };
}
pub(crate) use with_conn_sql;

/// Runs `$body` on the unit of work `$tx`'s connection (as [`with_conn!`])
/// and passes the result through [`SqlTx::observe`], so that a failed
/// operation poisons the unit. `$body` evaluates to the operation's value
/// and may use `?`.
macro_rules! in_tx {
    ($tx:expr, |$c:ident| $body:expr) => {{
        let r: signet_core::store::StoreResult<_> =
            async { Ok($crate::tx::with_conn!($tx.conn().await?, |$c| $body)) }.await;
        $tx.observe(r)
    }};
}
pub(crate) use in_tx;

/// Runs one write operation on its own, durably: on SQLite as a unit of
/// work of one operation, so that it shares a group's `COMMIT` (and fsync)
/// with the units queued beside it instead of paying its own; on
/// PostgreSQL in autocommit on a pooled connection. `$body` gets `$conn`
/// (a [`Conn`]) and evaluates to the operation's `StoreResult`.
macro_rules! write_op {
    ($store:expr, |$conn:ident| $body:expr) => {{
        let r: signet_core::store::StoreResult<_> = match &$store.db {
            $crate::Db::Sqlite { .. } => {
                let mut unit = $store.begin_tx().await?;
                let r = async {
                    let $conn = unit.conn().await?;
                    $body
                }
                .await;
                match unit.observe(r) {
                    Ok(v) => unit.commit_now().await.map(|()| v),
                    Err(e) => Err(e),
                }
            }
            $crate::Db::Postgres(_) => {
                let mut writer = $store.writer().await?;
                let $conn = writer.conn();
                $body
            }
        };
        r
    }};
}
pub(crate) use write_op;

/// A pooled writer connection outside any transaction (autocommit).
pub(crate) enum Writer {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Writer {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Writer::Sqlite(c) => Conn::Sqlite(c),
            Writer::Postgres(c) => Conn::Postgres(c),
        }
    }
}

enum Open {
    /// A unit on SQLite that has not needed the writer yet: it takes the
    /// writer's turn when it first does, or hands its writes to the writer
    /// at its commit if it never does (ADR 0040).
    SqliteLazy(Lazy),
    /// A member of the writer's current group, inside its savepoint
    /// ([`crate::group_commit`]).
    Sqlite(Member),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// Where a SQLite unit that has not taken the writer's turn will take it.
struct Lazy {
    write: sqlx::SqlitePool,
    group: std::sync::Arc<group_commit::GroupCommit>,
}

/// The most inserts a unit keeps waiting for its next call
/// ([`SqlTx::write_later`]); one more makes them all, with it.
const MAX_DEFERRED: usize = 4;

/// An audit record waiting for the commit (see [`SqlTx::append_later`]).
pub(crate) struct PendingAudit {
    pub(crate) event: AuditEvent,
    pub(crate) id: Uuid,
    pub(crate) at: Timestamp,
}

/// An open unit of work.
///
/// The unit owns its connection across every await, `SAVEPOINT` and
/// `RELEASE` included: a request cancelled at any point (a client hang-up,
/// the request deadline) drops the unit, and its member's `Drop` rolls back
/// to its savepoint before the connection serves anyone else.
pub struct SqlTx {
    open: Option<Open>,
    /// What the first failed operation was, once one has (the unit is then
    /// poisoned: it can only be rolled back): every later call
    /// and the commit answer with the same kind of error (a refusal, ADR
    /// 0035, the same refusal), so a caller that reads only the last error
    /// still answers the 4xx or the 503 the failure deserves, never a 500.
    failed: Option<Failed>,
    /// Audit records to append just before the commit: the lane's head is
    /// then always the last lock a unit takes (no lock-order deadlock with
    /// a unit that locks a session first) and is held for the shortest time.
    audit: Vec<PendingAudit>,
    /// A message was queued in the outbox (see
    /// `Transaction::queued_messages`).
    pub(crate) queued_messages: bool,
    /// On SQLite, inserts waiting for the unit's next call on the writer
    /// ([`crate::deferred`], [`SqlTx::write_later`]).
    deferred: Vec<Deferred>,
}

impl SqlStore {
    /// The writer connection, for one autocommit operation. On SQLite it
    /// comes from the pool, which has it back only when no group is open
    /// ([`crate::group_commit`]): an autocommit write never lands in one.
    pub(crate) async fn writer(&self) -> StoreResult<Writer> {
        Ok(match &self.db {
            Db::Sqlite { write, .. } => Writer::Sqlite(write.acquire().await.map_err(backend)?),
            Db::Postgres(pool) => Writer::Postgres(pool.acquire().await.map_err(backend)?),
        })
    }

    /// Opens a unit of work.
    pub(crate) async fn begin_tx(&self) -> StoreResult<SqlTx> {
        let open = match &self.db {
            // The writer's turn is taken when the unit first needs it
            // ([`SqlTx::conn`]), not here: a unit that only inserts and
            // appends never takes it (ADR 0040).
            Db::Sqlite { write, group, .. } => Open::SqliteLazy(Lazy {
                write: write.clone(),
                group: group.clone(),
            }),
            Db::Postgres(pool) => Open::Postgres(pool.begin().await.map_err(backend)?),
        };
        Ok(SqlTx {
            open: Some(open),
            failed: None,
            audit: Vec::new(),
            queued_messages: false,
            deferred: Vec::new(),
        })
    }

    /// How many units were released into groups on SQLite, and in how many
    /// successful `COMMIT`s (fsyncs) they were committed.
    /// (PostgreSQL: zeros; the server does its own group commit.)
    pub fn commit_stats(&self) -> CommitStats {
        match &self.db {
            Db::Sqlite { group, .. } => group.stats(),
            Db::Postgres(_) => CommitStats::default(),
        }
    }
}

/// The kind of a unit's first failure (see [`SqlTx::poison`]).
#[derive(Clone, Copy)]
enum Failed {
    Refused(Refusal),
    Conflict(signet_core::ErrorCode),
    Full,
    Busy,
    Unavailable,
    Other,
}

impl Failed {
    fn of(e: &StoreError) -> Failed {
        match e {
            StoreError::Refused(r) => Failed::Refused(*r),
            StoreError::Conflict(code) => Failed::Conflict(*code),
            StoreError::Full(_) => Failed::Full,
            StoreError::Busy(_) => Failed::Busy,
            StoreError::Unavailable(_) => Failed::Unavailable,
            StoreError::Corrupt(_) | StoreError::Backend(_) => Failed::Other,
        }
    }
}

fn finished() -> StoreError {
    StoreError::Backend("the transaction is already finished".into())
}

impl SqlTx {
    /// The connection for the next operation, unless an earlier one failed.
    /// Inserts waiting for a call ([`SqlTx::write_later`]) are made first,
    /// in one call, so every operation sees the unit's writes in order.
    pub(crate) async fn conn(&mut self) -> StoreResult<Conn<'_>> {
        self.join().await?;
        if !self.deferred.is_empty() {
            let r = self.flush_deferred().await;
            self.observe(r)?;
        }
        self.conn_now()
    }

    /// On SQLite, takes the writer's turn (waiting at most
    /// [`ACQUIRE_TIMEOUT`]) and joins its group, if the unit has not yet.
    async fn join(&mut self) -> StoreResult<()> {
        self.usable()?;
        let Some(Open::SqliteLazy(lazy)) = &self.open else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + ACQUIRE_TIMEOUT;
        let joined = lazy.group.join(&lazy.write, deadline).await;
        let member = self.observe(joined)?;
        self.open = Some(Open::Sqlite(member));
        Ok(())
    }

    /// Makes the waiting inserts, in one call of their own.
    async fn flush_deferred(&mut self) -> StoreResult<()> {
        self.join().await?;
        let inserts = std::mem::take(&mut self.deferred);
        let sql = crate::deferred::statement(&inserts, crate::deferred::Then::Nothing);
        with_conn!(self.conn_now()?, |c| {
            crate::deferred::bind(crate::deferred::values(&inserts), sqlx::query(sql))
                .execute(&mut *c)
                .await
                .map_err(backend)?;
        });
        Ok(())
    }

    /// A write whose outcome the unit does not need before its commit: an
    /// `INSERT` nobody reads back, or a write SQLite checks itself and
    /// refuses the unit for (`crate::refusals`, ADR 0035). On SQLite it waits for the unit's next call on the writer: usually
    /// the first audit record's at the commit (a unit that signs someone in
    /// or issues a grant inserts its row and then only queues its record),
    /// so it costs no call of its own. Any other operation of the unit makes
    /// it first ([`SqlTx::conn`]), so the unit's writes keep their order,
    /// and a failure poisons the unit where it shows (that call, or the
    /// commit). On PostgreSQL it is made now.
    pub(crate) async fn write_later(&mut self, write: Deferred) -> StoreResult<()> {
        self.usable()?;
        // On SQLite a few at most wait (the joined texts stay few and
        // short); one more makes them all, with it.
        let waits = self.defers() && self.deferred.len() < MAX_DEFERRED;
        self.deferred.push(write);
        if waits {
            return Ok(());
        }
        let r = self.flush_deferred().await;
        self.observe(r)
    }

    /// A write the unit goes on with only if it changed exactly one row
    /// (ADR 0035; the two texts usually from `crate::refusals::checked_write!`).
    /// On SQLite `checked` (the write followed by its `expect_one!`) waits
    /// like any deferred write and SQLite refuses the unit itself; on
    /// PostgreSQL `write` runs now with the same values and its row count
    /// decides at once. Either way a lost race is
    /// `Refused(refusal)`, and the unit can then only be rolled back.
    pub(crate) async fn write_checked(
        &mut self,
        refusal: Refusal,
        write: &'static str,
        checked: &'static str,
        values: Vec<crate::deferred::Value>,
    ) -> StoreResult<()> {
        if self.defers() {
            return self.write_later(Deferred { sql: checked, values }).await;
        }
        let changed = in_tx!(self, |c| {
            crate::deferred::bind(&values, sqlx::query(write))
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected()
        })?;
        // A refusal ends the unit on every engine, as SQLite's does.
        self.observe(refuse_unless(changed == 1, refusal))
    }

    /// Whether writes nobody reads back wait for the unit's next call
    /// (SQLite's writer) rather than being made at once (PostgreSQL).
    pub(crate) fn defers(&self) -> bool {
        matches!(self.open, Some(Open::Sqlite(_) | Open::SqliteLazy(_)))
    }

    /// The connection for the next statement, without making the waiting
    /// inserts first.
    fn conn_now(&mut self) -> StoreResult<Conn<'_>> {
        self.usable()?;
        match self.open.as_mut() {
            Some(Open::Sqlite(m)) => m.conn().map(Conn::Sqlite).ok_or_else(finished),
            Some(Open::Postgres(t)) => Ok(Conn::Postgres(t)),
            Some(Open::SqliteLazy(_)) => Err(StoreError::Backend("the unit has not joined the writer".into())),
            None => Err(finished()),
        }
    }

    /// Passes an operation's result through, poisoning the transaction on error.
    pub(crate) fn observe<T>(&mut self, result: StoreResult<T>) -> StoreResult<T> {
        if let Err(e) = &result {
            self.failed.get_or_insert(Failed::of(e));
        }
        result
    }

    /// What a call on a poisoned unit answers: an error of the kind its
    /// first failure was, saying `why`.
    fn poison(&self, why: &'static str) -> StoreError {
        match self.failed {
            Some(Failed::Refused(refusal)) => StoreError::Refused(refusal),
            Some(Failed::Conflict(code)) => StoreError::Conflict(code),
            Some(Failed::Full) => StoreError::Full(why.into()),
            Some(Failed::Busy) => StoreError::Busy(why.into()),
            Some(Failed::Unavailable) => StoreError::Unavailable(why.into()),
            Some(Failed::Other) | None => StoreError::Backend(why.into()),
        }
    }

    /// `Ok` while the unit can take another operation.
    fn usable(&self) -> StoreResult<()> {
        if self.failed.is_some() {
            return Err(self.poison("an earlier operation of this transaction failed; it can only be rolled back"));
        }
        if self.open.is_none() {
            return Err(finished());
        }
        Ok(())
    }

    /// Queues an audit record for the commit.
    pub(crate) fn append_later(&mut self, event: &AuditEvent, id: Uuid, at: Timestamp) -> StoreResult<()> {
        self.usable()?;
        self.audit.push(PendingAudit {
            event: event.clone(),
            id,
            at,
        });
        Ok(())
    }

    pub(crate) async fn commit_now(&mut self) -> StoreResult<()> {
        if self.failed.is_some() {
            return Err(self.poison("an earlier operation of this transaction failed; nothing was committed"));
        }
        let pending = std::mem::take(&mut self.audit);
        // A unit that never needed the writer hands its writes to it, to
        // go in one call with other units' (ADR 0040).
        if let Some(Open::SqliteLazy(lazy)) = self.open.take_if(|o| matches!(o, Open::SqliteLazy(_))) {
            let deferred = std::mem::take(&mut self.deferred);
            if pending.is_empty() && deferred.is_empty() {
                return Ok(());
            }
            return lazy.group.hand(&lazy.write, deferred, pending).await;
        }
        // Waiting inserts go in with the first record's call, or in a call
        // of their own when the unit has no record.
        if pending.is_empty() && !self.deferred.is_empty() {
            let r = self.flush_deferred().await;
            self.observe(r)?;
        }
        let mut deferred = std::mem::take(&mut self.deferred);
        match self.open.as_mut() {
            Some(Open::Sqlite(member)) => {
                // The chain head is the group's, read at most once per
                // group (see `group_commit::ChainHead`).
                let mut head = member.chain_head();
                // A unit that leaves its group open for others releases in
                // its last record's call (one hand-off to the connection's
                // thread fewer; the group's `COMMIT` is another's).
                let fold = member.parks();
                let mut folded = false;
                for (i, record) in pending.iter().enumerate() {
                    let release = fold && i + 1 == pending.len();
                    if release {
                        // From here a failure or a cancellation fails the
                        // group: the release may have run.
                        if let Some(Open::Sqlite(member)) = self.open.as_mut() {
                            member.releasing();
                        }
                    }
                    let with_inserts = std::mem::take(&mut deferred);
                    let r = crate::audit::append_after(
                        self.conn_now()?,
                        crate::audit::Append {
                            head,
                            event: &record.event,
                            id: record.id,
                            at: record.at,
                            release,
                            inserts: &with_inserts,
                        },
                    )
                    .await;
                    if release && matches!(r, Err(StoreError::Refused(_))) {
                        if let Some(Open::Sqlite(member)) = self.open.as_mut() {
                            member.release_refused();
                        }
                    }
                    head = Some(self.observe(r)?);
                    folded = release;
                }
                // The head this unit moved the chain to, if it appended.
                let appended = if pending.is_empty() { None } else { head };
                let Some(Open::Sqlite(member)) = self.open.as_mut() else {
                    return Err(finished());
                };
                // Cancelled during the release, the member is still here
                // and its Drop rolls it back (or fails the group if the
                // release had run: nothing was acknowledged).
                let released = if folded {
                    Ok(member.released_in_place(appended))
                } else {
                    member.release(appended).await
                };
                let member = match self.open.take() {
                    Some(Open::Sqlite(m)) => m,
                    _ => return Err(finished()),
                };
                let outcome = released?;
                // From here the group owns the unit's work: cancelling the
                // wait below leaves it to commit or fail with its group.
                member.leave();
                group_commit::outcome(outcome).await
            }
            Some(Open::Postgres(_)) => {
                // A unit's records share the lane its first one took.
                let mut lane = None;
                for record in &pending {
                    let r = match self.conn_now()? {
                        Conn::Postgres(c) => {
                            crate::audit::append_pg(c, &record.event, record.id, record.at, lane).await
                        }
                        Conn::Sqlite(_) => Err(finished()),
                    };
                    lane = Some(self.observe(r)?.lane);
                }
                match self.open.take() {
                    Some(Open::Postgres(tx)) => tx.commit().await.map_err(backend),
                    _ => Err(finished()),
                }
            }
            // Taken above.
            Some(Open::SqliteLazy(_)) | None => Err(finished()),
        }
    }

    pub(crate) async fn rollback_now(&mut self) -> StoreResult<()> {
        self.audit.clear();
        self.deferred.clear();
        match self.open.take() {
            Some(Open::SqliteLazy(_)) => Ok(()),
            Some(Open::Sqlite(member)) => match member.abandon() {
                // The rollback runs in a task of its own: a cancelled caller
                // cannot cut it short.
                Some(task) => task.await.unwrap_or_else(|e| Err(StoreError::Backend(Box::new(e)))),
                None => Ok(()),
            },
            Some(Open::Postgres(tx)) => tx.rollback().await.map_err(backend),
            None => Ok(()),
        }
    }
}
