//! Opening a database from its URL and running the embedded migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::Db;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("database.url: unsupported scheme in {0:?} (use sqlite://PATH or postgres://...)")]
    Scheme(String),
    #[error("database.url: {0}")]
    Url(String),
    #[error("could not create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("could not open the database: {0}")]
    Open(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// Signet's storage, on SQLite or PostgreSQL.
pub struct SqlStore {
    pub(crate) db: Db,
}

/// Options for [`SqlStore::connect_with`].
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Run pending migrations after connecting.
    pub migrate: bool,
    /// PostgreSQL pool size (SQLite readers are fixed at 4).
    pub max_connections: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            migrate: true,
            max_connections: 16,
        }
    }
}

impl SqlStore {
    /// Opens `url` and runs pending migrations.
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::connect_with(url, &ConnectOptions::default()).await
    }

    pub async fn connect_with(url: &str, opts: &ConnectOptions) -> Result<Self, ConnectError> {
        let store = if url.starts_with("sqlite:") {
            Self::open_sqlite(url).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::open_postgres(url, opts.max_connections).await?
        } else {
            return Err(ConnectError::Scheme(redact(url)));
        };
        if opts.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Applies the embedded migrations for this backend. Safe to run from
    /// several nodes at once: sqlx takes a lock while migrating.
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        match &self.db {
            Db::Sqlite { write, .. } => SQLITE_MIGRATIONS.run(write).await,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        }
        .map_err(ConnectError::Migrate)
    }

    async fn open_sqlite(url: &str) -> Result<Self, ConnectError> {
        let base = SqliteConnectOptions::from_str(url).map_err(|e| ConnectError::Url(e.to_string()))?;
        let path = base.get_filename().to_path_buf();
        let in_memory = url.contains(":memory:") || path.as_os_str().is_empty();
        if !in_memory {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| ConnectError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
        }
        let common = base
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed session, secret consumption or audit record
            // survives power loss, not just a process crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // No ping before each acquire: a SQLite connection is a file handle
        // in this process, and the ping is a thread hand-off per statement
        // batch (13 per passkey login). A connection that fails is replaced
        // by the unit of work (ADR 0010) instead.
        let write = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(common.clone().create_if_missing(true))
            .await
            .map_err(ConnectError::Open)?;
        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(common.read_only(true))
                .await
                .map_err(ConnectError::Open)?
        };
        Ok(Self {
            db: Db::Sqlite { write, read, in_memory },
        })
    }

    async fn open_postgres(url: &str, max: u32) -> Result<Self, ConnectError> {
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(ConnectError::Open)?;
        Ok(Self { db: Db::Postgres(pool) })
    }

    /// Closes every pool, waiting for in-flight queries.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { write, read, .. } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// A URL fit for an error message: any password is replaced.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
