//! `signet-bench`: starts a real Signet server (release build, SQLite in a
//! temp dir, or PostgreSQL with `--database-url`) on a loopback port and
//! drives its hot paths with a bounded number of requests from concurrent
//! clients. Prints requests per second and latency percentiles per scenario.
//!
//! Run: `cargo run --release -p signet-bench -- --requests 20000 --concurrency 32`
//! Every loop is bounded by `--requests`; only 127.0.0.1 is contacted.
//!
//! `--only passkey`, `passkey-step-up` or `email-code` runs that login
//! scenario instead (see [`logins`]): a fresh database per concurrency level.
//! `--only otp` (or `totp`, `recovery`) runs the one-time-code scenarios
//! instead (see [`otp`]): TOTP verify with replay check, recovery-code login.
//!
//! `--only oidc` (or `oidc-code`, `oidc-client-credentials`,
//! `oidc-refresh`) runs the OpenID Connect scenarios instead, side by side
//! with oidc-provider (see [`oidc`]).
//!
//! `--only signatures` measures assertion signature verifies per second on
//! one core, aws-lc-rs (the server's) against webauthn-rs-core's RustCrypto
//! (the previous path): see [`signatures`]. No server is started.
//!
//! `--only overload` runs the overload scenario instead (see [`overload`]):
//! many more clients than the server admits, bounded by
//! `--overload-requests` and `--overload-seconds` per burst.

mod back_channel;
mod logins;
mod oidc;
mod otp;
mod overload;
mod server;
mod signatures;
mod signer;
mod timings;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use signet_app::{Actor, Origin};

#[derive(Parser, Debug)]
struct Args {
    /// Requests per scenario.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Database (default: a fresh SQLite file in a temp dir).
    #[arg(long)]
    database_url: Option<String>,
    /// Only run scenarios whose name contains this (`overload` runs only
    /// the overload scenario, which is not part of the default run).
    #[arg(long)]
    only: Option<String>,
    /// Overload: concurrent clients (4x the default connection cap).
    #[arg(long, default_value_t = 4096)]
    overload_clients: usize,
    /// Overload: answers per burst.
    #[arg(long, default_value_t = 1_000_000)]
    overload_requests: usize,
    /// Overload: a burst stops after this many seconds in any case.
    #[arg(long, default_value_t = 15)]
    overload_seconds: u64,
    /// Overload: how many bursts.
    #[arg(long, default_value_t = 3)]
    overload_bursts: u32,
    /// Overload: run the server with limits far above the load (the
    /// behaviour without admission control), for comparison.
    #[arg(long)]
    unlimited: bool,
    /// Overload: clients retry at once after a 503 instead of honouring
    /// Retry-After (a flood).
    #[arg(long)]
    no_backoff: bool,
    /// Login scenarios: users (each with its own software passkey).
    #[arg(long, default_value_t = 256)]
    passkey_users: usize,
    /// Login scenarios: logins (or pairs) per concurrency level.
    #[arg(long, default_value_t = 20_000)]
    passkey_logins: usize,
    /// Login scenarios: the concurrency levels, each on a fresh database.
    #[arg(long, value_delimiter = ',', default_values_t = [4usize, 16, 64])]
    levels: Vec<usize>,
    /// One-time codes (`--only otp`, `--only totp`, `--only recovery`): how
    /// many users to seed, each with an authenticator app and ten codes.
    #[arg(long, default_value_t = 200)]
    otp_users: usize,
    /// `--only signatures`: seconds each verifier runs.
    #[arg(long, default_value_t = 1.0)]
    seconds_per_verifier: f64,
    /// Internal: be the overload scenario's server process.
    #[arg(long, hide = true)]
    serve_child: bool,
}

struct Scenario {
    name: &'static str,
    what: &'static str,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "healthz",
        what: "GET /healthz (the HTTP stack alone)",
    },
    Scenario {
        name: "session",
        what: "GET /api/v1/session with a bearer token (session + user lookup)",
    },
    Scenario {
        name: "login-start",
        what: "POST /api/v1/login for an unknown identifier (user lookup + flow insert)",
    },
    Scenario {
        name: "audit-write",
        what: "POST /api/v1/admin/users (user insert + hash-chained audit append)",
    },
];

/// Base64 of "signet benchmark sealing key 32b": for benchmark databases only.
pub(crate) const BENCH_SEALING_KEY: &str = "c2lnbmV0IGJlbmNobWFyayBzZWFsaW5nIGtleSAzMmI=";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.serve_child {
        return overload::serve_child(&args).await;
    }
    if args.only.as_deref() == Some("overload") {
        return overload::run(&args).await;
    }
    if args.only.as_deref() == Some("signatures") {
        return signatures::run(&args);
    }
    if let Some(scenario) = args.only.as_deref().and_then(logins::Scenario::named) {
        return logins::run(&args, scenario).await;
    }
    if args
        .only
        .as_deref()
        .is_some_and(|o| ["otp", "totp", "recovery"].iter().any(|n| o.starts_with(n)))
    {
        return otp::run(&args).await;
    }
    if args.only.as_deref().is_some_and(|o| o.starts_with("oidc")) {
        return oidc::run(&args).await;
    }
    // Each login start claims a client address of its own.
    let server = server::BenchServer::start(
        args.database_url.as_deref(),
        vec![server::trust_forwarded_for()],
        server::nothing,
    )
    .await?;
    let app = server.app.clone();
    let base = server.direct.clone();

    let (_, admin) = signet_app::admin::create_token(&app, &Actor::Cli, &Origin::default(), "bench").await?;
    let admin = admin.expose_secret().to_owned();
    let session = seed_session(&app).await?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    println!(
        "signet-bench: {} requests per scenario, {} concurrent clients, backend {}",
        args.requests,
        args.concurrency,
        app.store.backend()
    );
    println!(
        "{:<12} {:>10} {:>9} {:>9} {:>9}  what",
        "scenario", "req/s", "p50 ms", "p99 ms", "max ms"
    );
    for s in SCENARIOS
        .iter()
        .filter(|s| args.only.as_deref().is_none_or(|o| s.name.contains(o)))
    {
        let counter = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..args.concurrency {
            let (client, base, session, admin, counter) = (
                client.clone(),
                base.clone(),
                session.clone(),
                admin.clone(),
                counter.clone(),
            );
            let (name, total) = (s.name, args.requests);
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, anyhow::Error>(latencies);
                    }
                    let t = Instant::now();
                    let req = match name {
                        "healthz" => client.get(format!("{base}/healthz")),
                        "session" => client.get(format!("{base}/api/v1/session")).bearer_auth(&session),
                        "login-start" => client
                            .post(format!("{base}/api/v1/login"))
                            .header("x-forwarded-for", server::client_address(i))
                            .json(&json!({ "identifier": format!("nobody{i}@example.com"), "mode": "api" })),
                        _ => client
                            .post(format!("{base}/api/v1/admin/users"))
                            .bearer_auth(&admin)
                            .json(&json!({ "email": format!("u{i}@example.com") })),
                    };
                    let resp = req.send().await?;
                    anyhow::ensure!(resp.status().is_success(), "{name}: HTTP {}", resp.status());
                    resp.bytes().await?;
                    latencies.push(t.elapsed());
                }
            }));
        }
        let t = timings::gather(tasks, started).await?;
        println!(
            "{:<12} {:>10.0} {:>9.2} {:>9.2} {:>9.2}  {}",
            s.name, t.per_second, t.p50_ms, t.p99_ms, t.max_ms, s.what
        );
    }
    server.stop().await
}

/// A user with an api-mode session; returns its bearer token.
pub(crate) async fn seed_session(app: &signet_app::App) -> anyhow::Result<String> {
    seed_session_for(app, "bench@example.com").await
}

/// A user `email` with an api-mode session (their redeemed invitation);
/// returns its bearer token.
pub(crate) async fn seed_session_for(app: &signet_app::App, email: &str) -> anyhow::Result<String> {
    let user = signet_app::users::create(
        app,
        &Actor::Cli,
        &Origin::default(),
        signet_core::user::NewUser::parse(email, None, None, &[])?,
    )
    .await?;
    let invite = signet_app::invitations::invite(app, &Actor::Cli, &Origin::default(), user.id).await?;
    let token = invite.link.rsplit('/').next().context("link")?.to_owned();
    let issued = signet_app::invitations::redeem(
        app,
        &token,
        signet_core::session::SessionMode::Api,
        &Origin::default(),
        None,
    )
    .await?;
    Ok(issued.token.expose_secret().to_owned())
}
