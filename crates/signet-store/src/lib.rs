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
mod flows;
mod outbox;
mod rows;
pub mod scratch;
mod sealed;
mod secrets;
mod sessions;
mod throttle;
mod users;

use signet_core::store::{Store, StoreError, StoreResult};

pub use connect::{ConnectError, ConnectOptions, SqlStore};

pub(crate) enum Db {
    Sqlite {
        write: sqlx::SqlitePool,
        read: sqlx::SqlitePool,
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
            $crate::Db::Sqlite { read: $pool, .. } => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_db;

/// Maps a driver error to the storage error the domain understands.
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            StoreError::Unavailable(Box::new(e))
        }
        other => StoreError::Backend(Box::new(other)),
    }
}

/// Like [`backend`], but a unique-constraint violation becomes `Conflict(code)`.
pub(crate) fn conflict_as(code: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
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

    fn backend(&self) -> &'static str {
        match &self.db {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }
}
