//! SQLite's read connections, handed out without sqlx's pool.
//!
//! # Why
//!
//! sqlx runs each SQLite connection on a thread of its own, and every
//! statement is a hand-off to that thread and back. Its pool adds one more
//! on the way back: a connection returned to a `Pool` is pinged (another
//! round trip to its thread, from a task spawned for it) before anyone may
//! take it again. A passkey login reads four or five rows through the pool,
//! so the pings were a third of its read hand-offs and a good part of the
//! context switches that bound login throughput on a small machine
//! (issue 13; `docs/benchmarks.md`).
//!
//! The ping buys nothing here. It exists to flush a connection that a
//! cancelled query left mid-protocol, which is a network concern: a SQLite
//! connection is a file handle in this process, and its thread runs the
//! commands it was sent in order, so the next user's statement simply runs
//! after whatever the previous one left behind. Read connections are opened
//! `read_only`, so none of them can hold a write or an open transaction.
//!
//! # How
//!
//! A fixed set of connections opened at start, a semaphore with one permit
//! each, and a stack of idle connections. [`Readers::acquire`] waits for a
//! permit (at most the store's acquire timeout: then 503 `storage_busy`,
//! as with a pool) and takes a connection; dropping the [`Reader`] puts it
//! back. A connection whose thread has died (its statements fail as
//! "worker crashed", which [`crate::backend`] notes in
//! [`note_worker_crashed`]) is found by pinging the idle ones on the next
//! acquire, and replaced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;
use tokio::sync::{Semaphore, SemaphorePermit};

use signet_core::store::{StoreError, StoreResult};

use crate::connect::ACQUIRE_TIMEOUT;

/// The read connections of one SQLite store.
pub(crate) struct Readers {
    idle: Mutex<Vec<SqliteConnection>>,
    permits: Semaphore,
    options: SqliteConnectOptions,
}

impl Readers {
    /// Opens `n` read connections with `options` (which should say
    /// `read_only`).
    pub(crate) async fn open(options: SqliteConnectOptions, n: usize) -> Result<Readers, sqlx::Error> {
        let mut idle = Vec::with_capacity(n);
        for _ in 0..n {
            idle.push(SqliteConnection::connect_with(&options).await?);
        }
        Ok(Readers {
            idle: Mutex::new(idle),
            permits: Semaphore::new(n),
            options,
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<SqliteConnection>> {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A read connection for one operation.
    pub(crate) async fn acquire(&self) -> StoreResult<Reader<'_>> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| StoreError::Busy("timed out waiting for a SQLite read connection".into()))?
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        // A plain load first: the flag is almost never set, and a swap on
        // every read would bounce its cache line between the cores.
        if WORKER_CRASHED.load(Ordering::Relaxed) && WORKER_CRASHED.swap(false, Ordering::SeqCst) {
            self.drop_dead().await;
        }
        let conn = self.idle().pop();
        let conn = match conn {
            Some(c) => c,
            // One was dropped as dead: open its replacement now.
            None => SqliteConnection::connect_with(&self.options)
                .await
                .map_err(crate::backend)?,
        };
        Ok(Reader {
            conn: Some(conn),
            readers: self,
            _permit: permit,
        })
    }

    /// Closes the idle connections and refuses new acquires.
    pub(crate) async fn close(&self) {
        self.permits.close();
        let idle: Vec<SqliteConnection> = std::mem::take(&mut *self.idle());
        for conn in idle {
            let _ = conn.close().await;
        }
    }
}

/// One read connection, back to its [`Readers`] when dropped.
pub(crate) struct Reader<'r> {
    conn: Option<SqliteConnection>,
    readers: &'r Readers,
    _permit: SemaphorePermit<'r>,
}

impl Reader<'_> {
    /// The connection (held from acquire until the reader is dropped).
    pub(crate) fn conn(&mut self) -> StoreResult<&mut SqliteConnection> {
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Backend("a reader without its connection".into()))
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.readers.idle().push(conn);
        }
    }
}

/// Set when any statement failed because its connection's thread is gone:
/// the next acquire checks the idle readers.
static WORKER_CRASHED: AtomicBool = AtomicBool::new(false);

/// Notes that a SQLite connection's thread is gone ([`crate::backend`]).
pub(crate) fn note_worker_crashed() {
    WORKER_CRASHED.store(true, Ordering::SeqCst);
}

impl Readers {
    /// Pings each idle connection once and drops those that do not answer.
    async fn drop_dead(&self) {
        let idle: Vec<SqliteConnection> = std::mem::take(&mut *self.idle());
        for mut conn in idle {
            if conn.ping().await.is_ok() {
                self.idle().push(conn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Duration;

    use super::*;

    async fn readers(n: usize) -> (Readers, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/r.db", dir.path().display());
        // The file must exist before read-only connections can open it.
        let mut w =
            SqliteConnection::connect_with(&SqliteConnectOptions::from_str(&url).unwrap().create_if_missing(true))
                .await
                .unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut w).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (7)").execute(&mut w).await.unwrap();
        let opts = SqliteConnectOptions::from_str(&url).unwrap().read_only(true);
        (Readers::open(opts, n).await.unwrap(), dir)
    }

    async fn read(r: &Readers) -> i64 {
        let mut c = r.acquire().await.unwrap();
        let (x,): (i64,) = sqlx::query_as("SELECT x FROM t")
            .fetch_one(c.conn().unwrap())
            .await
            .unwrap();
        x
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_goes_back_when_dropped_and_the_next_waits_for_it() {
        let (r, _dir) = readers(2).await;
        assert_eq!(read(&r).await, 7);
        let a = r.acquire().await.unwrap();
        let b = r.acquire().await.unwrap();
        // Both taken: a third waits.
        let third = tokio::time::timeout(Duration::from_millis(100), r.acquire()).await;
        assert!(third.is_err(), "a third reader while two are out");
        drop(a);
        assert_eq!(read(&r).await, 7);
        drop(b);
        assert_eq!(r.idle().len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_crashed_worker_the_idle_readers_are_checked_and_kept_when_alive() {
        let (r, _dir) = readers(2).await;
        note_worker_crashed();
        assert_eq!(read(&r).await, 7);
        assert_eq!(r.idle().len(), 2, "live connections are kept");
        // A lost connection is replaced by a fresh one.
        drop(r.idle().pop());
        assert_eq!(read(&r).await, 7);
        assert_eq!(read(&r).await, 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_set_refuses_readers() {
        let (r, _dir) = readers(1).await;
        r.close().await;
        assert!(matches!(r.acquire().await, Err(StoreError::Unavailable(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_connections_cannot_write() {
        let (r, _dir) = readers(1).await;
        let mut c = r.acquire().await.unwrap();
        assert!(sqlx::query("INSERT INTO t VALUES (8)")
            .execute(c.conn().unwrap())
            .await
            .is_err());
    }
}
