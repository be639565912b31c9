//! Units of work ([`signet_core::unit_of_work`]) on either engine.
//!
//! On SQLite, Signet issues `BEGIN IMMEDIATE`, `COMMIT` and `ROLLBACK`
//! itself on the single writer connection instead of using sqlx's
//! `Transaction`. The reason is a failure mode found by fault injection: when
//! the disk is full SQLite rolls a failed transaction back on its own, sqlx's
//! later `ROLLBACK` then fails, its transaction depth stays at 1, and every
//! later "transaction" on that connection became a savepoint inside one that
//! never commits, so thousands of acknowledged writes were lost at restart
//! (SQLite, "Atomic Commit" §4 and the `sqlite3_get_autocommit` notes). Here
//! nothing tracks a depth that can drift: a commit that fails is followed by
//! a `ROLLBACK` whose result does not matter, and the connection is closed
//! rather than returned to the pool, so the next write gets a fresh one. A
//! transaction dropped unfinished (an early `?`, a request cancelled because
//! its client hung up) is rolled back by a task that owns the connection
//! until the rollback is done, or the connection is closed if that fails.
//!
//! On PostgreSQL, sqlx's `Transaction` is used as it is: the server keeps the
//! transaction state and an aborted transaction can always be rolled back.
//!
//! Audit records are appended at the commit, after every other write of
//! the unit, so the chain head is always the last lock a unit takes.
//!
//! Any error poisons the transaction: later operations and the commit fail.
//! The engine may already have discarded the work (SQLite on a full disk,
//! PostgreSQL after any failed statement), and continuing would write in
//! autocommit mode what the caller believes is part of a unit.

use sqlx::pool::PoolConnection;
use sqlx::{Postgres, Sqlite};

use signet_core::audit::AuditEvent;
use signet_core::clock::Timestamp;
use signet_core::store::{StoreError, StoreResult};
use uuid::Uuid;

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

/// Runs `$body` on the unit of work `$tx`'s connection (as [`with_conn!`])
/// and passes the result through [`SqlTx::observe`], so that a failed
/// operation poisons the unit. `$body` evaluates to the operation's value
/// and may use `?`.
macro_rules! in_tx {
    ($tx:expr, |$c:ident| $body:expr) => {{
        let r: signet_core::store::StoreResult<_> = async { Ok($crate::tx::with_conn!($tx.conn()?, |$c| $body)) }.await;
        $tx.observe(r)
    }};
}
pub(crate) use in_tx;

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
    /// The writer, inside `BEGIN IMMEDIATE` (or about to be).
    Sqlite(PoolConnection<Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// An audit record waiting for the commit (see [`SqlTx::append_later`]).
pub(crate) struct PendingAudit {
    pub(crate) event: AuditEvent,
    pub(crate) id: Uuid,
    pub(crate) at: Timestamp,
}

/// An open unit of work.
///
/// The unit owns its connection across every await, `BEGIN` and `COMMIT`
/// included: a request cancelled at any point (a client hang-up, the
/// request deadline) drops the unit, and [`Drop`] rolls back whatever the
/// connection holds before it serves anyone else.
pub struct SqlTx {
    open: Option<Open>,
    poisoned: bool,
    /// Audit records to append just before the commit: the chain head is
    /// then always the last lock a unit takes (no lock-order deadlock with
    /// a unit that locks a session first) and is held for the shortest time.
    audit: Vec<PendingAudit>,
    /// An in-memory SQLite database lives in its one connection: closing
    /// that would lose the database, so it is rolled back instead.
    ephemeral: bool,
}

impl SqlStore {
    /// The writer connection, for one autocommit operation.
    pub(crate) async fn writer(&self) -> StoreResult<Writer> {
        Ok(match &self.db {
            Db::Sqlite { write, .. } => Writer::Sqlite(write.acquire().await.map_err(backend)?),
            Db::Postgres(pool) => Writer::Postgres(pool.acquire().await.map_err(backend)?),
        })
    }

    /// Opens a unit of work.
    pub(crate) async fn begin_tx(&self) -> StoreResult<SqlTx> {
        match &self.db {
            Db::Sqlite { write, in_memory, .. } => {
                let conn = write.acquire().await.map_err(backend)?;
                let mut tx = SqlTx {
                    open: Some(Open::Sqlite(conn)),
                    poisoned: false,
                    audit: Vec::new(),
                    ephemeral: *in_memory,
                };
                // IMMEDIATE takes the write lock now rather than at the first
                // write, so a transaction never fails half-way for the lock.
                // The unit owns the connection meanwhile: cancelled here, its
                // Drop rolls back a BEGIN that ran after all.
                if let Some(Open::Sqlite(c)) = tx.open.as_mut() {
                    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut **c).await {
                        tx.discard_connection();
                        return Err(backend(e));
                    }
                }
                Ok(tx)
            }
            Db::Postgres(pool) => Ok(SqlTx {
                open: Some(Open::Postgres(pool.begin().await.map_err(backend)?)),
                poisoned: false,
                audit: Vec::new(),
                ephemeral: false,
            }),
        }
    }
}

fn finished() -> StoreError {
    StoreError::Backend("the transaction is already finished".into())
}

impl SqlTx {
    /// The connection for the next operation, unless an earlier one failed.
    pub(crate) fn conn(&mut self) -> StoreResult<Conn<'_>> {
        if self.poisoned {
            return Err(StoreError::Backend(
                "an earlier operation of this transaction failed; it can only be rolled back".into(),
            ));
        }
        match self.open.as_mut() {
            Some(Open::Sqlite(c)) => Ok(Conn::Sqlite(c)),
            Some(Open::Postgres(t)) => Ok(Conn::Postgres(t)),
            None => Err(finished()),
        }
    }

    /// Passes an operation's result through, poisoning the transaction on error.
    pub(crate) fn observe<T>(&mut self, result: StoreResult<T>) -> StoreResult<T> {
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Queues an audit record for the commit.
    pub(crate) fn append_later(&mut self, event: &AuditEvent, id: Uuid, at: Timestamp) -> StoreResult<()> {
        if self.poisoned || self.open.is_none() {
            return Err(finished());
        }
        self.audit.push(PendingAudit {
            event: event.clone(),
            id,
            at,
        });
        Ok(())
    }

    /// Never returns the SQLite writer to the pool: it is closed, and the
    /// pool opens a fresh one for the next write. (Not for an in-memory
    /// database, which would be lost with it.)
    fn discard_connection(&mut self) {
        if let Some(Open::Sqlite(c)) = self.open.as_mut() {
            if !self.ephemeral {
                c.close_on_drop();
            }
        }
    }

    pub(crate) async fn commit_now(&mut self) -> StoreResult<()> {
        if self.poisoned {
            return Err(StoreError::Backend(
                "an earlier operation of this transaction failed; nothing was committed".into(),
            ));
        }
        let pending = std::mem::take(&mut self.audit);
        for record in &pending {
            let r = crate::audit::append(self.conn()?, &record.event, record.id, record.at).await;
            self.observe(r)?;
        }
        match self.open.as_mut() {
            Some(Open::Sqlite(conn)) => match sqlx::query("COMMIT").execute(&mut **conn).await {
                Ok(_) => {
                    // Committed: the connection goes back to the pool in
                    // autocommit mode.
                    self.open = None;
                    Ok(())
                }
                Err(e) => {
                    // SQLite may have rolled back already (SQLITE_FULL,
                    // SQLITE_IOERR) or may still hold the transaction
                    // (SQLITE_BUSY). End it either way, and never hand this
                    // connection to anyone again.
                    let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
                    self.discard_connection();
                    self.open = None;
                    Err(backend(e))
                }
            },
            Some(Open::Postgres(_)) => match self.open.take() {
                Some(Open::Postgres(tx)) => tx.commit().await.map_err(backend),
                _ => Err(finished()),
            },
            None => Err(finished()),
        }
    }

    pub(crate) async fn rollback_now(&mut self) -> StoreResult<()> {
        self.audit.clear();
        match self.open.as_mut() {
            Some(Open::Sqlite(conn)) => {
                let r = sqlx::query("ROLLBACK").execute(&mut **conn).await;
                if r.is_err() {
                    self.discard_connection();
                }
                self.open = None;
                r.map(|_| ()).map_err(backend)
            }
            Some(Open::Postgres(_)) => match self.open.take() {
                Some(Open::Postgres(tx)) => tx.rollback().await.map_err(backend),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}

impl Drop for SqlTx {
    fn drop(&mut self) {
        // PostgreSQL's `Transaction` rolls itself back when dropped.
        if let Some(Open::Sqlite(mut conn)) = self.open.take() {
            let ephemeral = self.ephemeral;
            // The connection stays checked out until the rollback is done,
            // so no other write can land inside the abandoned transaction.
            // A rollback that fails means there was no transaction (a BEGIN
            // that never ran, a COMMIT that did) or the connection is in
            // doubt: either way it is closed rather than reused.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() && !ephemeral {
                            conn.close_on_drop();
                        }
                    });
                }
                Err(_) if !ephemeral => conn.close_on_drop(),
                Err(_) => {}
            }
        }
    }
}
