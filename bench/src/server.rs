//! The Signet server each scenario measures, started the same way for all:
//! a **fresh database** per server (a SQLite file in a temp dir, or a
//! scratch PostgreSQL database created under `--database-url` and dropped
//! by [`BenchServer::stop`]), the release build of the library in this
//! process, on a loopback port, logging errors only (or what `SIGNET_BENCH_LOG` names, on stderr), with any
//! `SIGNET_*` setting of the bench's own environment except those the bench sets itself, and the per-address
//! login-start limit at its ceiling (the load generator is one address;
//! the limit would measure itself).

use anyhow::Context;
use signet::config::Config;
use signet::server::{start, Running, StartOptions};
use signet_store::scratch::ScratchDb;

pub(crate) struct BenchServer {
    running: Running,
    pub(crate) app: signet_app::App,
    /// `public_url`: `http://localhost:PORT` (WebAuthn needs a host name).
    pub(crate) public: String,
    /// `http://127.0.0.1:PORT`, where the server listens.
    pub(crate) direct: String,
    /// The temp dir of the SQLite file and of any file a scenario writes
    /// for the server (a policy); removed when the server is dropped.
    _dir: tempfile::TempDir,
    scratch: Option<ScratchDb>,
}

impl BenchServer {
    /// Starts a server on a fresh database under `database_url` (SQLite
    /// when `None`), with `extra` `SIGNET_*` settings on top of the common
    /// ones. `before` may write files into the temp dir first (a policy)
    /// and return settings that name them.
    pub(crate) async fn start(
        database_url: Option<&str>,
        extra: Vec<(String, String)>,
        before: impl FnOnce(&std::path::Path) -> anyhow::Result<Vec<(String, String)>>,
    ) -> anyhow::Result<BenchServer> {
        let dir = tempfile::tempdir()?;
        let scratch = match database_url {
            Some(base) if base.starts_with("postgres") => Some(
                ScratchDb::create(base)
                    .await
                    .context("creating a scratch PostgreSQL database")?,
            ),
            _ => None,
        };
        let db = match &scratch {
            Some(s) => s.url.clone(),
            None => format!("sqlite://{}/bench.db", dir.path().display()),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let public = format!("http://localhost:{port}");
        // `SIGNET_BENCH_LOG=sqlx::query=debug` prints every statement the
        // server runs (to count a scenario's statements per operation).
        let log = std::env::var("SIGNET_BENCH_LOG").ok();
        // The operator's own settings first (`SIGNET_DATABASE__MAX_CONNECTIONS=8`,
        // say), so that a run can measure a configuration; what the bench
        // itself needs (below: its port, database and scenario) overrides them.
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("SIGNET_") && k != "SIGNET_BENCH_LOG")
            .collect();
        env.extend([
            ("SIGNET_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
            ("SIGNET_PUBLIC_URL".to_owned(), public.clone()),
            ("SIGNET_DATABASE__URL".to_owned(), db.clone()),
            (
                "SIGNET_LOG__LEVEL".to_owned(),
                log.clone().unwrap_or_else(|| "error".to_owned()),
            ),
            ("SIGNET_LOGIN__STARTS_PER_IP".to_owned(), "10000".to_owned()),
        ]);
        // PostgreSQL needs a configured sealing key: the operator's (taken
        // with their settings above), else a fixed benchmark key.
        if db.starts_with("postgres") && !env.iter().any(|(k, _)| k == "SIGNET_SEALING__KEY") {
            env.push(("SIGNET_SEALING__KEY".to_owned(), crate::BENCH_SEALING_KEY.to_owned()));
        }
        env.extend(extra);
        env.extend(before(dir.path())?);
        let config = Config::load(None, env)?;
        if log.is_some() {
            signet::logging::init(&config, true);
        }
        let running = start(
            &config,
            StartOptions {
                listener: Some(listener),
                ..Default::default()
            },
        )
        .await?;
        let app = running.wired.app.clone();
        Ok(BenchServer {
            running,
            app,
            public,
            direct: format!("http://127.0.0.1:{port}"),
            _dir: dir,
            scratch,
        })
    }

    /// Shuts the server down and drops a scratch PostgreSQL database.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.running.shutdown().await;
        if let Some(s) = self.scratch {
            s.drop_now().await?;
        }
        Ok(())
    }
}

/// A policy file's settings: writes `policy` into `dir` and names it.
pub(crate) fn with_policy(
    policy: &'static str,
) -> impl FnOnce(&std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    move |dir| {
        let path = dir.join("policy.toml");
        std::fs::write(&path, policy)?;
        Ok(vec![("SIGNET_POLICY".to_owned(), path.display().to_string())])
    }
}

/// The setting that makes a bench server take the client's address from
/// `X-Forwarded-For` (see [`client_address`]).
pub(crate) fn trust_forwarded_for() -> (String, String) {
    ("SIGNET_TRUST_FORWARDED_FOR".to_owned(), "true".to_owned())
}

/// The address the `i`th simulated client claims in `X-Forwarded-For`
/// (trusted by a server started with [`trust_forwarded_for`]): the
/// per-address limits then count per client, as they would for real
/// clients, rather than throttling the one address the bench really has.
pub(crate) fn client_address(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
}

/// No files, no settings.
pub(crate) fn nothing(_: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    Ok(Vec::new())
}
