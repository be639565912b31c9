//! `signet serve`: the HTTP server, the courier worker and the janitor that
//! purges expired sessions and flows, all stopped gracefully on SIGTERM or
//! Ctrl-C (in-flight requests finish, the worker records what it sent).
//!
//! Admission control (ADR 0013) sits at two places: the connection cap in
//! the accept path ([`crate::connections`]) and the in-flight budgets and
//! request deadline in the router (`signet_web::admission`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use signet_core::clock::SharedClock;
use signet_courier::WorkerConfig;
use signet_web::{AppState, WebSettings};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::connections::ConnectionCap;
use crate::wiring::{wire, Wired};

/// How often expired records are purged.
const JANITOR_INTERVAL: Duration = Duration::from_secs(300);
/// How long spent one-time secrets and finished messages are kept, for
/// support questions ("did the invitation go out?"), before they are deleted.
const RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// `[limits] header_read_timeout`: a connection that has not sent a whole
/// request head this long after it opened (or after the previous response)
/// is closed. hyper enforces it only with a timer, which axum-server does
/// not set: without this, a client trickling its headers holds one of the
/// `max_connections` places for as long as it likes.
fn header_read_timeout(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    timeout: Duration,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(timeout);
}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    pub wired: Arc<Wired>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Asks everything to stop and waits for it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.wired.store.close().await;
    }
}

/// Options mainly for tests: a fixed clock, a pre-bound listener.
#[derive(Default)]
pub struct StartOptions {
    pub clock: Option<SharedClock>,
    pub listener: Option<std::net::TcpListener>,
    pub worker: Option<WorkerConfig>,
    /// Extra login methods to register (test doubles).
    pub methods: Vec<std::sync::Arc<dyn signet_core::method::Method>>,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Starts Signet and returns once it is listening.
pub async fn start(config: &Config, opts: StartOptions) -> anyhow::Result<Running> {
    let wired = Arc::new(wire(config, opts.clock, opts.methods).await?);
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    if config.dev_outbox {
        tracing::warn!("no email or SMS delivery configured: messages stay in the development outbox at /dev/outbox");
    }

    let worker = wired.app.courier.worker(
        wired.delivery.clone(),
        opts.worker.unwrap_or_else(|| config.courier.worker()),
    );
    tasks.push(tokio::spawn(worker.run(stopped(stop_rx.clone()))));
    tasks.push(tokio::spawn(janitor(wired.clone(), stop_rx.clone())));
    tasks.push(tokio::spawn(key_reloader(wired.clone(), stop_rx.clone())));

    let state = AppState::new(
        wired.app.clone(),
        WebSettings {
            dev_outbox: config.dev_outbox,
            trust_forwarded_for: config.trust_forwarded_for,
            metrics_token: config.metrics_token,
            budgets: config.limits.budgets(),
        },
    );
    let router = signet_web::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let listener = match opts.listener {
        Some(l) => l,
        None => bind(config.listen).with_context(|| format!("listen: cannot bind {}", config.listen))?,
    };
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let database_fds = match wired.app.store.backend() {
        "sqlite" => crate::connections::SQLITE_FDS,
        _ => u64::from(config.database.max_connections),
    };
    crate::connections::ensure_fd_limit(config.limits.max_connections, database_fds);
    let metrics = wired.app.metrics.clone();
    let cap = |answer: bool| ConnectionCap::new(config.limits.max_connections, answer, metrics.clone());
    let handle = axum_server::Handle::new();
    let shutdown_handle = handle.clone();
    let rx = stop_rx.clone();
    tokio::spawn(async move {
        stopped(rx).await;
        shutdown_handle.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let http = match &config.tls {
        Some(tls) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let rustls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .context("tls_cert/tls_key: cannot load the certificate or key")?;
            // The cap runs before the handshake: a refused connection costs no TLS work.
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls).acceptor(cap(false));
            let mut server = axum_server::from_tcp(listener).acceptor(acceptor).handle(handle);
            header_read_timeout(server.http_builder(), config.limits.header_read_timeout);
            tokio::spawn(async move {
                if let Err(e) = server.serve(router).await {
                    tracing::error!(error = %e, "HTTPS server stopped");
                }
            })
        }
        None => {
            let mut server = axum_server::from_tcp(listener).acceptor(cap(true)).handle(handle);
            header_read_timeout(server.http_builder(), config.limits.header_read_timeout);
            tokio::spawn(async move {
                if let Err(e) = server.serve(router).await {
                    tracing::error!(error = %e, "HTTP server stopped");
                }
            })
        }
    };
    tasks.push(http);
    tracing::info!(%addr, public_url = %config.public_url, database = wired.app.store.backend(), "signet is listening");
    Ok(Running {
        addr,
        wired,
        stop,
        tasks,
    })
}

/// The listen backlog: connections the kernel completes before Signet
/// accepts them. The accept loop drains it at once (refusing what is past the
/// cap), so it is not a queue of work; but when it overflows in a burst the
/// kernel drops SYNs and clients retry after a 1 s, then 3 s timeout, which
/// looks exactly like the queueing admission control removes. The kernel
/// caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with [`LISTEN_BACKLOG`] (the standard library's `bind`
/// listens with a backlog of 128).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    listener.into_std()
}

/// How long throttle counters are kept: [`RETENTION`], or the longest
/// `[fallback] per` in the policy if that is longer.
fn throttle_retention(policy: &signet_core::policy::Policy) -> Duration {
    policy
        .tiers
        .values()
        .filter_map(|t| t.fallback.as_ref().map(|f| f.per))
        .fold(RETENTION, Duration::max)
}

/// Re-reads the OIDC signing keys, so a `signet keys rotate` run anywhere
/// reaches this node (its new key is published well before it signs; see
/// `signet_app::oidc::keys`).
pub async fn reload_signing_keys(wired: &Wired) -> signet_core::Result<()> {
    wired.app.oidc.keys.reload(&*wired.store, &wired.sealing.ring).await
}

async fn key_reloader(wired: Arc<Wired>, stop: watch::Receiver<bool>) {
    let stop = stopped(stop);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(signet_app::oidc::keys::RELOAD_INTERVAL);
    tick.tick().await; // the first tick is now: the keys were just loaded
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {
                if let Err(e) = reload_signing_keys(&wired).await {
                    tracing::warn!(error = %e, "re-reading the OIDC signing keys failed; signing with the last ones read");
                }
            }
        }
    }
}

async fn janitor(wired: Arc<Wired>, stop: watch::Receiver<bool>) {
    let stop = stopped(stop);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(JANITOR_INTERVAL);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => janitor_pass(&wired.app).await,
        }
    }
}

/// One pass of the janitor: timed-out sessions that apps hold grants of
/// are ended with their back-channel logout notices
/// ([`signet_app::oidc::logout::announce_timed_out`]), then expired and
/// spent records are purged (the purge keeps a session whose apps were not
/// told yet). A failure is logged and the next pass tries again.
pub async fn janitor_pass(app: &signet_app::App) {
    match signet_app::oidc::logout::announce_timed_out(app).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(notices = n, "announced timed-out sessions to their apps"),
        Err(e) => tracing::warn!(error = %e, "announcing timed-out sessions failed; the next pass tries again"),
    }
    let now = app.clock.now();
    let store = &app.store;
    let old = now.minus(RETENTION);
    let results = [
        ("sessions", store.purge_expired_sessions(now).await),
        ("flows", store.purge_expired_flows(now).await),
        ("ceremonies", store.purge_expired_ceremonies(now).await),
        ("secrets", store.purge_spent_secrets(old).await),
        ("messages", store.purge_finished_messages(old).await),
        // A window or failure run idle this long no longer limits anything.
        // Counters live at least as long as the longest fallback
        // budget period, or the janitor would reset budgets early.
        (
            "throttles",
            store.purge_throttles(now.minus(throttle_retention(&app.policy))).await,
        ),
    ];
    for (what, result) in results {
        match result {
            Ok(0) => {}
            Ok(n) => tracing::debug!(what, purged = n, "purged expired records"),
            Err(e) => tracing::warn!(what, error = %e, "purging expired records failed"),
        }
    }
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn serve(config: &Config) -> anyhow::Result<()> {
    let running = start(config, StartOptions::default()).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
