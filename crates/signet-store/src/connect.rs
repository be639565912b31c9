//! Opening a database from its URL and running the embedded migrations.
//!
//! # Errors say what broke, once
//!
//! A start-up failure must name its cause: the file or directory and the
//! permission that is missing (SQLite), the host and port that refused or
//! did not answer (PostgreSQL). So:
//!
//! - SQLite: the data directory is checked before opening
//!   ([`check_sqlite_dir`]): it must be creatable and writable, because
//!   SQLite creates the `-wal` and `-shm` files beside the database. Then
//!   the writer proves it can write (a table created and rolled back): SQLite
//!   silently opens a file it may not write read-only, and every write
//!   would fail later. When opening or that proof fails, the database file
//!   and its `-wal`/`-shm` files are examined ([`sqlite_permissions`]) to
//!   name the one this user may not write, its owner and its mode.
//!   Examined, never opened: closing any descriptor of a SQLite file drops
//!   every POSIX lock this process holds on it, which would let another
//!   connection of this process (a second store in the CLI or a test)
//!   corrupt it;
//! - PostgreSQL is first reached with one plain connection, because a pool
//!   retries until its acquire timeout and then reports only "pool timed
//!   out", which hides "connection refused" and the address;
//! - each variant's text names what it was doing and where, and the cause is
//!   its `source()`, never also part of its text: whoever prints the chain
//!   (the CLI, the log) prints each cause once.
//!
//! What a usable URL and pool size are ([`check_url`],
//! [`ConnectOptions::check_max_connections`]) is decided here, next to the
//! code that opens them; the binary's `[database]` config section only adds
//! the key and where the value came from.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::ConnectOptions as _;
use sqlx::Connection as _;

use crate::readers::Readers;
use crate::{Db, Reads};

/// How long a request waits for a database connection (the SQLite writer,
/// or one of the PostgreSQL pool) before it is answered 503
/// `storage_busy`: well inside the request deadline (10 s by default), so
/// that storage trouble is reported as such rather than as a timeout.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Prepared statements each connection keeps (sqlx's default is 100).
/// Signet has close to 100 distinct statements (86 call sites in this
/// crate, some built per engine) and grows; with room for all of them none
/// is ever evicted and re-prepared by a rarely used one, so every
/// statement of a hot path stays prepared on every connection (on
/// PostgreSQL a re-prepare is an extra round trip).
const STATEMENT_CACHE: usize = 512;
/// Results the writer's thread may stream ahead of its reader: more than a
/// call of handed units makes (`group_commit::handed::PER_CALL` units of a
/// few statements each).
const WRITER_RESULTS: usize = 256;

/// WAL pages after which the committing connection (in a running server,
/// the writer; a CLI command writing to the same file may take a turn)
/// copies the WAL back into the database file: 10,000 pages, about
/// 40 MiB, where SQLite's default is 1,000 (ADR 0015, fifth amendment).
/// The hot pages of a busy server (the audit log's last leaf, the outbox's
/// and the sessions' newest pages, their indexes) are rewritten by nearly
/// every group commit, so one checkpoint per 1,000 pages copied the same
/// pages again and again and synced the database file tens of times a
/// second, on the writer's thread. Durability does not depend on it: every
/// commit is synced to the WAL.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// After a checkpoint has copied everything back and the WAL restarts, its
/// file is cut back to this size (64 MiB) if a long read made it grow past
/// the checkpoint mark.
pub(crate) const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// How long a PostgreSQL statement waits for a lock (`lock_timeout`)
/// before it fails with `55P03`, answered 503 `storage_busy`: the
/// counterpart of SQLite's `busy_timeout`, the same as [`ACQUIRE_TIMEOUT`].
/// Without it a unit waiting for a lock another node holds (an audit lane
/// when all sixteen are taken, ADR 0036; a user's row) would wait until the
/// request deadline cancelled it, and be answered as a timeout rather than
/// as storage being busy. Set on each new connection only while the
/// session has none (`0`): a value from the URL's `options`, the role or
/// the database wins. Migrations run without it ([`SqlStore::migrate`]).
const SET_POSTGRES_LOCK_TIMEOUT: &str =
    "SELECT set_config('lock_timeout', '5s', false) WHERE current_setting('lock_timeout') = '0'";

/// SQLite read connections (WAL: readers never wait for the writer).
const READERS: usize = 4;

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
    /// Opening or writing failed, and a file's owner and mode explain why.
    #[error("SQLite database {path}: {problem}")]
    SqliteNotWritable {
        path: String,
        problem: String,
        #[source]
        source: sqlx::Error,
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

/// Pool sizes [`ConnectOptions::max_connections`] may take, inclusive.
pub const MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;

/// The engine a database URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Why a database URL or pool size cannot be used, checked before anything
/// is opened. The text names neither the setting nor the source (the caller
/// adds those) and never repeats the URL, which may carry a password.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseUrlError {
    #[error("the sqlite URL has no database path; e.g. sqlite://./signet-data/signet.db")]
    NoSqlitePath,
    #[error("not a valid PostgreSQL URL: {0}")]
    Postgres(#[source] url::ParseError),
    #[error("unsupported database; use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE")]
    Scheme,
    #[error(
        "must be between {} and {}, got {got}",
        MAX_CONNECTIONS_RANGE.start(),
        MAX_CONNECTIONS_RANGE.end()
    )]
    MaxConnections { got: i64 },
}

/// The rules for a database URL that [`SqlStore::connect_with`] can open:
/// `sqlite://PATH` or `sqlite:PATH` with a non-empty path (a query such as
/// `?mode=rwc` may follow), or a `postgres://`/`postgresql://` URL that
/// parses. Says which engine it names.
pub fn check_url(url: &str) -> Result<Backend, DatabaseUrlError> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split_once('?').map_or(rest, |(path, _)| path);
        if path.is_empty() {
            return Err(DatabaseUrlError::NoSqlitePath);
        }
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url::Url::parse(url)
            .map(|_| Backend::Postgres)
            .map_err(DatabaseUrlError::Postgres)
    } else {
        Err(DatabaseUrlError::Scheme)
    }
}

impl ConnectOptions {
    /// A pool size within [`MAX_CONNECTIONS_RANGE`]; taken as any integer so
    /// that the error can repeat a negative one as written.
    pub fn check_max_connections(n: i64) -> Result<u32, DatabaseUrlError> {
        u32::try_from(n)
            .ok()
            .filter(|n| MAX_CONNECTIONS_RANGE.contains(n))
            .ok_or(DatabaseUrlError::MaxConnections { got: n })
    }
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
            Db::Postgres(pool) => {
                // On a connection of its own, taken out of the pool, with
                // no lock timeout: sqlx serialises migrating nodes with an
                // advisory lock, and a node that starts while another
                // migrates must wait for it, however long that takes,
                // rather than fail after the store's 5 s. Closed after, so
                // no pooled connection runs without the timeout.
                let mut conn = pool
                    .acquire()
                    .await
                    .map_err(|e| ConnectError::Migrate(e.into()))?
                    .detach();
                let migrated = async {
                    sqlx::Executor::execute(&mut conn, "SET lock_timeout = 0").await?;
                    POSTGRES_MIGRATIONS.run(&mut conn).await
                }
                .await;
                let _ = conn.close().await;
                migrated
            }
        }
        .map_err(ConnectError::Migrate)
    }

    async fn open_sqlite(url: &str) -> Result<Self, ConnectError> {
        let base = SqliteConnectOptions::from_str(url).map_err(|e| ConnectError::Url(e.to_string()))?;
        let path = base.get_filename().to_path_buf();
        let in_memory = url.contains(":memory:") || path.as_os_str().is_empty();
        if !in_memory {
            check_sqlite_dir(&path)?;
        }
        let open_error = |source| sqlite_failure(&path, source);
        let common = base
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed session, secret consumption or audit record
            // survives power loss, not just a process crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Savepoint and statement journals in memory, not in a temp
            // file (ADR 0015, fourth amendment): every unit runs inside
            // `SAVEPOINT signet_unit`, and the original of each page a unit
            // touches is written to the savepoint's journal. Past 64 KiB
            // (a group of a few logins) SQLite spilled that journal to a
            // temp file: an open, two `pwrite`s per page and a close per
            // group, 40 % of the writer's system calls, all for a file
            // nobody reads unless a unit rolls back. Units are small, so
            // the memory is bounded by a group's work (at most a few MiB).
            .pragma("temp_store", "memory")
            // Checkpoints ten times rarer than SQLite's default (ADR 0015,
            // fifth amendment): the connection whose commit crosses the
            // mark runs them, and in a server that is the writer.
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
            .pragma("journal_size_limit", WAL_SIZE_LIMIT_BYTES.to_string())
            .statement_cache_capacity(STATEMENT_CACHE);
        // No ping before each acquire: a SQLite connection is a file handle
        // in this process, and the ping is a thread hand-off per statement
        // batch (13 per passkey login). A connection that fails is replaced
        // by the unit of work (ADR 0010) instead.
        let write = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // Each writer connection (a replaced one too) can check a
            // unit's writes inside SQLite (crate::refusals, ADR 0035).
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *conn, crate::refusals::setup_sql()).await?;
                    Ok(())
                })
            })
            // A call of handed units (ADR 0040) streams a result per
            // statement: room for a whole call, so the connection's thread
            // never waits for the unit's task to drain them.
            .connect_with(common.clone().create_if_missing(true).row_buffer_size(WRITER_RESULTS))
            .await
            .map_err(open_error)?;
        if !in_memory {
            // A file this user may not write opens read-only without a word.
            let proof = async {
                let mut conn = write.acquire().await?;
                // A page must really be written: BEGIN IMMEDIATE alone
                // succeeds on a read-only file in WAL mode. Rolled back.
                sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
                let wrote = sqlx::query("CREATE TABLE signet_write_check (x INTEGER)")
                    .execute(&mut *conn)
                    .await;
                sqlx::query("ROLLBACK").execute(&mut *conn).await?;
                wrote?;
                Ok::<_, sqlx::Error>(())
            };
            if let Err(e) = proof.await {
                write.close().await;
                return Err(open_error(e));
            }
        }
        let read = if in_memory {
            Reads::Shared(write.clone())
        } else {
            // Outside sqlx's pool, which pings every connection returned
            // to it (crate::readers).
            Reads::Own(Box::new(
                Readers::open(common.read_only(true), READERS)
                    .await
                    .map_err(open_error)?,
            ))
        };
        Ok(Self {
            db: Db::Sqlite {
                write,
                read,
                group: crate::group_commit::GroupCommit::new(in_memory),
            },
        })
    }

    async fn open_postgres(url: &str, max: u32) -> Result<Self, ConnectError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| ConnectError::Url(format!("not a PostgreSQL URL ({})", redact(&e.to_string()))))?;
        let opts = opts.statement_cache_capacity(STATEMENT_CACHE);
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
        // No ping before each acquire (issue 13): it is a round trip to the
        // server per statement or unit, on top of the one sqlx makes when a
        // connection comes back to the pool. A connection the server or the
        // network dropped fails the one operation that finds it (503
        // `unavailable`, like any outage) and is closed when it comes back
        // (that ping fails), so the next operation gets a fresh one
        // (`faults::postgresql_going_away_is_503_and_the_server_recovers_without_a_restart`).
        let pool = PgPoolOptions::new()
            .test_before_acquire(false)
            .max_connections(max)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *conn, SET_POSTGRES_LOCK_TIMEOUT).await?;
                    Ok(())
                })
            })
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
            Db::Sqlite { write, read, .. } => {
                match read {
                    Reads::Own(readers) => readers.close().await,
                    Reads::Shared(pool) => pool.close().await,
                }
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

/// Checks, before SQLite opens `path`, that this user can create the data
/// directory (if missing) and create files in it (the `-wal` and `-shm`
/// files live there), by creating and removing `.signet-write-check-PID`.
/// The database file itself is not touched (see the module docs).
pub fn check_sqlite_dir(path: &Path) -> Result<(), ConnectError> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|source| ConnectError::DataDir {
        path: dir.display().to_string(),
        source,
    })?;
    let probe = dir.join(format!(".signet-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(source) => Err(ConnectError::SqliteAccess {
            path: path.display().to_string(),
            problem: format!(
                "cannot create files (the -wal and -shm files) in the data directory {}{}",
                dir.display(),
                Identity::current().map(|me| me.describe(&dir)).unwrap_or_default()
            ),
            source,
        }),
    }
}

/// A failure to open or write `path`, with the permission that is missing
/// when one of its files says so.
fn sqlite_failure(path: &Path, source: sqlx::Error) -> ConnectError {
    match sqlite_permissions(path) {
        Some(problem) => ConnectError::SqliteNotWritable {
            path: path.display().to_string(),
            problem,
            source,
        },
        None => ConnectError::SqliteOpen {
            path: path.display().to_string(),
            source,
        },
    }
}

/// The first of the database file and its `-wal` and `-shm` files that this
/// process may not read and write, judged from owner, group and mode (ACLs
/// are not read: this only explains a failure, it never causes one).
pub fn sqlite_permissions(path: &Path) -> Option<String> {
    let me = Identity::current()?;
    if me.uid == 0 {
        return None;
    }
    for (suffix, what) in [
        ("", "the database file"),
        ("-wal", "the write-ahead log"),
        ("-shm", "the shared-memory index"),
    ] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = std::path::PathBuf::from(file);
        if let Some(problem) = me.may_not_read_write(&file) {
            return Some(format!(
                "cannot read and write {what} {}{}: {problem}",
                file.display(),
                me.describe(&file)
            ));
        }
    }
    None
}

/// Who this process is, from `/proc/self/status` (no `unsafe` call to
/// `geteuid`/`getgroups` needed).
struct Identity {
    uid: u32,
    gids: Vec<u32>,
}

impl Identity {
    fn current() -> Option<Self> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let field = |name: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|rest| rest.split_whitespace().filter_map(|n| n.parse().ok()).collect())
                .unwrap_or_default()
        };
        // Effective ids are the second column of Uid: and Gid:.
        let uid = *field("Uid:").get(1)?;
        let mut gids = field("Groups:");
        gids.extend(field("Gid:").get(1));
        Some(Self { uid, gids })
    }

    /// Why this process may not read and write `p`, if its mode says so.
    #[cfg(unix)]
    fn may_not_read_write(&self, p: &Path) -> Option<&'static str> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p).ok()?;
        let mode = m.mode();
        let bits = if m.uid() == self.uid {
            (mode >> 6) & 0o7
        } else if self.gids.contains(&m.gid()) {
            (mode >> 3) & 0o7
        } else {
            mode & 0o7
        };
        (bits & 0o6 != 0o6).then_some("Permission denied")
    }

    #[cfg(not(unix))]
    fn may_not_read_write(&self, _p: &Path) -> Option<&'static str> {
        None
    }

    /// ` (this process runs as uid U; the path is owned by uid O, mode M)`.
    #[cfg(unix)]
    fn describe(&self, p: &Path) -> String {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(p) {
            Ok(m) => format!(
                " (this process runs as uid {}; the path is owned by uid {}, mode {:o})",
                self.uid,
                m.uid(),
                m.mode() & 0o7777
            ),
            Err(_) => String::new(),
        }
    }

    #[cfg(not(unix))]
    fn describe(&self, _p: &Path) -> String {
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

#[cfg(test)]
mod url_rules {
    use super::*;

    #[test]
    fn database_urls_are_checked_before_opening_without_repeating_a_password() {
        assert_eq!(
            check_url("sqlite://./signet-data/signet.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(check_url("sqlite:x.db?mode=rwc").ok(), Some(Backend::Sqlite));
        assert_eq!(check_url("postgresql://u:p@h:5432/d").ok(), Some(Backend::Postgres));
        assert!(matches!(check_url("sqlite://"), Err(DatabaseUrlError::NoSqlitePath)));
        assert!(matches!(
            check_url("sqlite://?mode=rwc"),
            Err(DatabaseUrlError::NoSqlitePath)
        ));
        assert!(matches!(
            check_url("postgres://u:p@[::1"),
            Err(DatabaseUrlError::Postgres(_))
        ));
        match check_url("mysql://u:hunter2@h/d") {
            Err(e @ DatabaseUrlError::Scheme) => assert!(!e.to_string().contains("hunter2"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pool_size_bounds() {
        assert_eq!(ConnectOptions::check_max_connections(16).ok(), Some(16));
        assert_eq!(ConnectOptions::check_max_connections(1000).ok(), Some(1000));
        for bad in [0, -3, 1001, i64::MAX] {
            let e = ConnectOptions::check_max_connections(bad).unwrap_err();
            assert_eq!(e.to_string(), format!("must be between 1 and 1000, got {bad}"));
        }
    }
}
