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
//! Any error poisons the transaction: later operations and the commit fail.
//! The engine may already have discarded the work (SQLite on a full disk,
//! PostgreSQL after any failed statement), and continuing would write in
//! autocommit mode what the caller believes is part of a unit.

use sqlx::pool::PoolConnection;
use sqlx::{Postgres, Sqlite};

use signet_core::store::{StoreError, StoreResult};

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
    /// The writer, inside `BEGIN IMMEDIATE`.
    Sqlite(PoolConnection<Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// An open unit of work.
pub struct SqlTx {
    open: Option<Open>,
    poisoned: bool,
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
        let open = match &self.db {
            Db::Sqlite { write, .. } => {
                let mut conn = write.acquire().await.map_err(backend)?;
                // IMMEDIATE takes the write lock now rather than at the first
                // write, so a transaction never fails half-way for the lock.
                if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
                    conn.close_on_drop();
                    return Err(backend(e));
                }
                Open::Sqlite(conn)
            }
            Db::Postgres(pool) => Open::Postgres(pool.begin().await.map_err(backend)?),
        };
        Ok(SqlTx {
            open: Some(open),
            poisoned: false,
        })
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

    pub(crate) async fn commit_now(&mut self) -> StoreResult<()> {
        if self.poisoned {
            return Err(StoreError::Backend(
                "an earlier operation of this transaction failed; nothing was committed".into(),
            ));
        }
        match self.open.take() {
            Some(Open::Sqlite(mut conn)) => match sqlx::query("COMMIT").execute(&mut *conn).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    // SQLite may have rolled back already (SQLITE_FULL,
                    // SQLITE_IOERR) or may still hold the transaction
                    // (SQLITE_BUSY). End it either way, and never hand this
                    // connection to anyone again.
                    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                    conn.close_on_drop();
                    Err(backend(e))
                }
            },
            Some(Open::Postgres(tx)) => tx.commit().await.map_err(backend),
            None => Err(finished()),
        }
    }

    pub(crate) async fn rollback_now(&mut self) -> StoreResult<()> {
        match self.open.take() {
            Some(Open::Sqlite(mut conn)) => {
                if let Err(e) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
                    conn.close_on_drop();
                    return Err(backend(e));
                }
                Ok(())
            }
            Some(Open::Postgres(tx)) => tx.rollback().await.map_err(backend),
            None => Ok(()),
        }
    }
}

impl Drop for SqlTx {
    fn drop(&mut self) {
        // PostgreSQL's `Transaction` rolls itself back when dropped.
        if let Some(Open::Sqlite(mut conn)) = self.open.take() {
            // The connection stays checked out until the rollback is done,
            // so no other write can land inside the abandoned transaction.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                            conn.close_on_drop();
                        }
                    });
                }
                Err(_) => conn.close_on_drop(),
            }
        }
    }
}
