//! SQLite and PostgreSQL storage for Signet.
//!
//! One [`SqlStore`] implements every storage trait of `signet_core::store`.
//! The SQL is written once, in a dialect both engines accept (`$n`
//! placeholders, `RETURNING`, integer milliseconds, text UUIDs), and the
//! [`with_db!`] macro type-checks each query against both drivers. Only
//! connection set-up and migrations know which engine is in use; no query
//! branches on it.
//!
//! SQLite runs in WAL mode with exactly one writer connection (SQLite allows
//! one writer at a time anyway; owning it avoids `SQLITE_BUSY` storms) and a
//! small pool of read-only connections. PostgreSQL uses one pool; the
//! conditional writes below are correct under concurrent nodes.

mod admin_tokens;
mod audit;
mod connect;
mod credentials;
mod deferred;
mod devices;
mod flows;
mod group_commit;
mod named_credentials;
mod oidc_clients;
mod oidc_grants;
mod outbox;
mod phones;
mod readers;
mod recovery_codes;
mod recovery_tickets;
mod refusals;
mod rows;
pub mod scratch;
mod sealed;
mod secrets;
mod sessions;
mod throttle;
mod totp;
mod tx;
mod users;

use signet_core::store::{Store, StoreError, StoreResult};
use signet_core::unit_of_work::{Transaction, Tx, UnitOfWork};

pub use connect::{
    check_url, Backend, ConnectError, ConnectOptions, DatabaseUrlError, SqlStore, MAX_CONNECTIONS_RANGE,
};
pub use group_commit::CommitStats;
pub use tx::SqlTx;

/// Where SQLite reads run: the read connections of a file database
/// ([`readers`]), or, for an in-memory one (which lives in its one
/// connection), the writer's pool.
pub(crate) enum Reads {
    Own(Box<readers::Readers>),
    Shared(sqlx::SqlitePool),
}

pub(crate) enum Db {
    Sqlite {
        write: sqlx::SqlitePool,
        read: Reads,
        /// Units of work share `COMMIT`s ([`group_commit`]).
        group: std::sync::Arc<group_commit::GroupCommit>,
    },
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$pool` bound to the right pool of either backend. The
/// body is compiled once per backend, so a query that does not type-check for
/// both does not compile.
macro_rules! with_db {
    (write($store:expr), |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite { write: $pool, .. } => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
    (read($store:expr), |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite {
                read: $crate::Reads::Shared($pool),
                ..
            } => $body,
            $crate::Db::Sqlite {
                read: $crate::Reads::Own(readers),
                ..
            } => {
                let mut reader = readers.acquire().await?;
                let $pool = reader.conn()?;
                $body
            }
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_db;

/// Maps a driver error to the storage error the domain understands.
///
/// What a client can do about it decides the class: a full disk
/// (`SQLITE_FULL`, PostgreSQL `53100`) is `Full`, and a lock held too long
/// or an exhausted pool (`SQLITE_BUSY`/`SQLITE_LOCKED`, PostgreSQL
/// serialization failures, lock and statement timeouts, out of resources)
/// is `Busy`: both answer 503 with `Retry-After`, never 500. A lost
/// connection is `Unavailable`. Anything else is a bug or corruption.
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    if matches!(e, sqlx::Error::WorkerCrashed) {
        readers::note_worker_crashed();
    }
    match &e {
        sqlx::Error::PoolTimedOut => StoreError::Busy(Box::new(e)),
        sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => StoreError::Unavailable(Box::new(e)),
        sqlx::Error::Database(db) => match refusals::refusal_of(db.message()) {
            // A checked write raised its refusal (crate::refusals).
            Some(refusal) => StoreError::Refused(refusal),
            None => match classify(db.code().as_deref().unwrap_or("")) {
                Some(Class::Full) => StoreError::Full(Box::new(e)),
                Some(Class::Busy) => StoreError::Busy(Box::new(e)),
                Some(Class::Unavailable) => StoreError::Unavailable(Box::new(e)),
                None => StoreError::Backend(Box::new(e)),
            },
        },
        _ => StoreError::Backend(Box::new(e)),
    }
}

enum Class {
    Full,
    Busy,
    Unavailable,
}

/// Classifies a database error code: SQLite's extended result code (a
/// number; its low byte is the primary code) or PostgreSQL's SQLSTATE.
fn classify(code: &str) -> Option<Class> {
    if let Ok(n) = code.parse::<i32>() {
        return match n & 0xff {
            13 => Some(Class::Full),                 // SQLITE_FULL
            5 | 6 => Some(Class::Busy),              // SQLITE_BUSY, SQLITE_LOCKED
            10 if n == 4874 => Some(Class::Full),    // SQLITE_IOERR_SHMSIZE: no room for the WAL index
            10 | 14 | 8 => Some(Class::Unavailable), // SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_READONLY
            _ => None,
        };
    }
    match code {
        "53100" => Some(Class::Full),
        "40001" | "40P01" | "55P03" | "57014" | "53000" | "53200" | "53300" => Some(Class::Busy),
        c if c.starts_with("08") || c.starts_with("57P") => Some(Class::Unavailable),
        _ => None,
    }
}

/// Like [`backend`], but a unique-constraint violation becomes `Conflict(code)`.
pub(crate) fn conflict_as(code: signet_core::ErrorCode) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(code),
        _ => backend(e),
    }
}

#[async_trait::async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        with_db!(read(self), |pool| {
            sqlx::query("SELECT 1").execute(pool).await.map_err(backend)?;
        });
        Ok(())
    }

    async fn probe_write(&self, now: signet_core::clock::Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_tx().await?;
        tx::in_tx!(tx, |c| {
            sqlx::query("UPDATE readiness SET checked_at = $1 WHERE id = 1")
                .bind(now.as_millis())
                .execute(&mut *c)
                .await
                .map_err(backend)?;
        })?;
        tx.commit_now().await
    }

    fn backend(&self) -> &'static str {
        match &self.db {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    async fn passkey_and_owner(&self, credential_id: &str) -> StoreResult<Option<signet_core::store::PasskeyForLogin>> {
        self.passkey_with_owner(credential_id).await
    }
}

#[async_trait::async_trait]
impl UnitOfWork for SqlStore {
    async fn begin(&self) -> StoreResult<Tx> {
        Ok(Box::new(self.begin_tx().await?))
    }
}

#[async_trait::async_trait]
impl Transaction for SqlTx {
    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        self.commit_now().await
    }

    async fn rollback(mut self: Box<Self>) -> StoreResult<()> {
        self.rollback_now().await
    }

    fn queued_messages(&self) -> bool {
        self.queued_messages
    }
}
