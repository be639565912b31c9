//! Opening a database from its URL and running the embedded migrations.
//!
//! # Errors say what broke, once
//!
//! A start-up failure must name its cause: the file or directory and the
//! permission that is missing (SQLite), the host and port that refused or
//! did not answer (PostgreSQL). So:
//!
//! - SQLite is checked before it is opened ([`check_sqlite_access`]): the
//!   data directory must be creatable and writable (SQLite creates the
//!   `-wal` and `-shm` files beside the database) and an existing database
//!   file must be readable and writable by this user. The message names the
//!   path, this process's uid, the path's owner and mode, and the OS error;
//! - PostgreSQL is first reached with one plain connection, because a pool
//!   retries until its acquire timeout and then reports only "pool timed
//!   out", which hides "connection refused" and the address;
//! - each variant's text names what it was doing and where, and the cause is
//!   its `source()`, never also part of its text: whoever prints the chain
//!   (the CLI, the log) prints each cause once.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::ConnectOptions as _;
use sqlx::Connection as _;

use crate::Db;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long the first connection to PostgreSQL may take.
pub const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("database.url: unsupported scheme in {0:?} (use sqlite://PATH or postgres://...)")]
    Scheme(String),
    #[error("database.url: {0}")]
    Url(String),
    #[error("cannot create the data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A SQLite file or directory this user cannot use. `problem` says
    /// which permission is missing and whose the path is.
    #[error("SQLite database {path}: {problem}")]
    SqliteAccess {
        path: String,
        problem: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the SQLite database {path}")]
    SqliteOpen {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot connect to PostgreSQL at {server}")]
    Postgres {
        /// `host:port`, or the socket path; never the password.
        server: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "cannot connect to PostgreSQL at {server}: no answer within {}s (is the host reachable, is a firewall dropping the port?)",
        POSTGRES_CONNECT_TIMEOUT.as_secs()
    )]
    PostgresTimeout { server: String },
    #[error("migrating the database failed")]
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
            check_sqlite_access(&path)?;
        }
        let open_error = |source| ConnectError::SqliteOpen {
            path: path.display().to_string(),
            source,
        };
        let common = base
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed session, secret consumption or audit record
            // survives power loss, not just a process crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(common.clone().create_if_missing(true))
            .await
            .map_err(open_error)?;
        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(common.read_only(true))
                .await
                .map_err(open_error)?
        };
        Ok(Self {
            db: Db::Sqlite { write, read },
        })
    }

    async fn open_postgres(url: &str, max: u32) -> Result<Self, ConnectError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| ConnectError::Url(format!("not a PostgreSQL URL ({})", redact(&e.to_string()))))?;
        let server = postgres_server(&opts);
        // One plain connection first: its error is the real one
        // ("connection refused", "password authentication failed",
        // "database does not exist"); a pool would say only "timed out".
        match tokio::time::timeout(POSTGRES_CONNECT_TIMEOUT, opts.connect()).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
            }
            Ok(Err(source)) => return Err(ConnectError::Postgres { server, source }),
            Err(_) => return Err(ConnectError::PostgresTimeout { server }),
        }
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(|source| ConnectError::Postgres {
                server: server.clone(),
                source,
            })?;
        Ok(Self { db: Db::Postgres(pool) })
    }

    /// Closes every pool, waiting for in-flight queries.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// Where a PostgreSQL client connects: `host:port`, or the Unix socket.
fn postgres_server(opts: &PgConnectOptions) -> String {
    let (host, port) = (opts.get_host(), opts.get_port());
    if host.starts_with('/') {
        format!("{host}/.s.PGSQL.{port} (Unix socket)")
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Checks, before SQLite opens `path`, that this user can create and write
/// what SQLite needs: the data directory (created if missing), a file in it
/// (the `-wal` and `-shm` files live there), and an existing database file
/// and its `-wal`/`-shm` files, read and write. SQLite's own errors ("unable
/// to open database file", "attempt to write a readonly database") name
/// neither the path nor the permission, and a read-only file may even open
/// and then fail at the first write.
pub fn check_sqlite_access(path: &Path) -> Result<(), ConnectError> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|source| ConnectError::DataDir {
        path: dir.display().to_string(),
        source,
    })?;
    let access = |p: &Path, what: &str, source: std::io::Error| ConnectError::SqliteAccess {
        path: path.display().to_string(),
        problem: format!("{what} {}{}", p.display(), ownership(p, &source)),
        source,
    };
    // The directory: SQLite creates the -wal and -shm files (and a journal) there.
    let probe = dir.join(format!(".signet-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => {
            return Err(access(
                &dir,
                "cannot create files (the -wal and -shm files) in the data directory",
                e,
            ))
        }
    }
    for (suffix, what) in [
        ("", "cannot read and write the database file"),
        ("-wal", "cannot read and write the write-ahead log"),
        ("-shm", "cannot read and write the shared-memory index"),
    ] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = std::path::PathBuf::from(file);
        if !file.exists() {
            continue;
        }
        if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(&file) {
            return Err(access(&file, what, e));
        }
    }
    Ok(())
}

/// ` (this process runs as uid U; the path is owned by uid O, mode M)` for
/// a permission problem, so the fix (chown or chmod) is obvious; empty
/// otherwise or where that cannot be read.
fn ownership(p: &Path, e: &std::io::Error) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if e.kind() != std::io::ErrorKind::PermissionDenied {
            return String::new();
        }
        // The owner of /proc/self is this process's effective uid: no
        // unsafe call to geteuid needed.
        let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
        match (me, std::fs::metadata(p)) {
            (Some(me), Ok(m)) => format!(
                " (this process runs as uid {me}; the path is owned by uid {}, mode {:o})",
                m.uid(),
                m.permissions().mode() & 0o7777
            ),
            _ => String::new(),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (p, e);
        String::new()
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
