//! Login scenarios (issue 13): passkey login (what Signet exists for),
//! passkey login + step-up, and email-code issue + redeem, end to end.
//!
//! For each concurrency level (`--levels`, default 4,16,64) a **fresh
//! database** is made (a SQLite file in a temp dir, or a scratch PostgreSQL
//! database under `--database-url`), a server is started in this process,
//! and `--passkey-users` users are seeded, each enrolling a software P-256
//! passkey (1Password's CTAP2 authenticator, the one the integration tests
//! use) through the HTTP API. Then `--passkey-logins` closed-loop logins
//! run: start (`POST /api/v1/login` with the identifier) + assertion
//! (`POST /api/v1/login/{flow}/passkey`), each client cycling through its
//! own users. With `--only passkey-step-up` every login is followed by a
//! passkey step-up of the new session (`POST /api/v1/step-up`, then
//! `/api/v1/step-up/{flow}/passkey`): one "pair" is login + step-up. With
//! `--only email-code` the users enroll nothing; one pair is a login start,
//! `POST /api/v1/login/{flow}/email_otp/send` (the code is issued and its
//! mail queued), the mail's arrival at an SMTP sink in this process, and
//! `POST /api/v1/login/{flow}/email_otp` with the code (redeemed). The mail
//! path (outbox, courier, SMTP) is part of each pair's latency; the sink
//! runs on the bench's runtime, so its CPU is the bench's.
//!
//! Reported per level: logins (pairs) per second, p50/p99 of one login
//! (pair), the **server's CPU per login** and the **bench's own CPU**, both
//! from `/proc/self/task/*/stat`: the load runs on a runtime of its own
//! whose threads are named `bench-client`, so everything else in this
//! process (the server's runtime, sqlx's SQLite threads) is the server.
//! On PostgreSQL the database's own CPU per login is reported too (every
//! local process named `postgres`; meaningless for a remote server).
//! Also, once per run, the **one-core ceiling**: P-256 ECDSA verifies per
//! second on one thread with the verifier the server uses
//! (`signet_passkey::Verifier::default()`, aws-lc-rs), and the ratio of
//! logins/s to it. `--only signatures` compares it with the previous one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use signet_testkit::{Inbox, SmtpSink};

use crate::Args;

#[path = "../../crates/signet-passkey/tests/support/mod.rs"]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod soft;

pub(crate) use soft::{SoftAuthenticator, ONE_PASSWORD};

/// A tier in which an email code completes a login (aal1).
const EMAIL_CODE_POLICY: &str = r#"
[tiers.low]
login = ["magic_link", "email_otp"]
second_factor = ["passkey"]
required_aal = "aal1"
session = { idle = "8h", absolute = "24h" }

[assignment]
default = "low"
"#;

/// One user: its identifier and its authenticator (which holds the key).
pub(crate) struct User {
    pub(crate) email: String,
    /// The client address this user's requests claim (`X-Forwarded-For`,
    /// trusted by the bench server): the per-address start and send limits
    /// then count per user, as they would for real clients, rather than
    /// throttling the one address the bench really has.
    pub(crate) ip: String,
    pub(crate) auth: SoftAuthenticator,
    /// The enrolled credential's key for the load loop (`crate::signer`);
    /// without it the software authenticator answers.
    pub(crate) fast: Option<crate::signer::FastPasskey>,
    /// This user's mail at the bench's SMTP sink, read once each.
    pub(crate) inbox: Inbox,
}

impl User {
    /// An assertion for the request options `public_key`.
    pub(crate) async fn assert(&mut self, public_key: &Value) -> anyhow::Result<Value> {
        match &self.fast {
            Some(fast) => fast.get(public_key),
            None => Ok(self.auth.get(public_key).await),
        }
    }
}

/// Which login scenario to run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Passkey,
    PasskeyStepUp,
    EmailCode,
}

impl Scenario {
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "passkey" => Some(Self::Passkey),
            "passkey-step-up" => Some(Self::PasskeyStepUp),
            "email-code" => Some(Self::EmailCode),
            _ => None,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Passkey => "passkey login",
            Self::PasskeyStepUp => "passkey login + step-up pairs",
            Self::EmailCode => "email code issue + redeem pairs",
        }
    }
}

pub async fn run(args: &Args, scenario: Scenario) -> anyhow::Result<()> {
    let verifier = signet_passkey::Verifier::default();
    let ceiling = crate::signatures::verifies_per_second(verifier, Duration::from_millis(500))?;
    println!(
        "signet-bench {}: {} users, {} per level, one-core ceiling {:.0} P-256 verifies/s with {}",
        scenario.title(),
        args.passkey_users,
        args.passkey_logins,
        ceiling,
        crate::signatures::name(verifier)
    );
    println!(
        "{:<8} {:>5} {:>10} {:>8} {:>8} {:>14} {:>13} {:>12} {:>9}",
        "backend", "conc", "per s", "p50 ms", "p99 ms", "srv CPU ms/op", "pg CPU ms/op", "bench CPU %", "of ceil"
    );
    for level in &args.levels {
        let r = one_level(args, *level, scenario).await?;
        println!(
            "{:<8} {:>5} {:>10.0} {:>8.2} {:>8.2} {:>14.3} {:>13.3} {:>12.0} {:>8.0}%",
            r.backend,
            level,
            r.per_second,
            r.p50_ms,
            r.p99_ms,
            r.server_cpu_ms_per_op,
            r.postgres_cpu_ms_per_op,
            r.bench_cpu_percent,
            100.0 * r.per_second / ceiling
        );
        if let Some((mean, p90)) = r.mail_wait_ms {
            println!(
                "{:<14} mail wait: mean {mean:.2} ms, p90 {p90:.2} ms (the send step's answer to the code at the sink)",
                ""
            );
        }
    }
    Ok(())
}

struct LevelResult {
    backend: &'static str,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_cpu_ms_per_op: f64,
    postgres_cpu_ms_per_op: f64,
    bench_cpu_percent: f64,
    /// Email codes: the mean and 90th percentile of the wait from the send
    /// step's answer to the code's mail at the sink.
    mail_wait_ms: Option<(f64, f64)>,
}

async fn one_level(args: &Args, concurrency: usize, scenario: Scenario) -> anyhow::Result<LevelResult> {
    // The load, on a runtime of its own so its CPU can be told apart.
    let runtime = ClientRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bench-client")
            .enable_all()
            .build()?,
    ));
    let clients = runtime.handle()?;
    let sink = match scenario {
        Scenario::EmailCode => Some(Arc::new(clients.spawn(SmtpSink::start()).await??)),
        _ => None,
    };
    // A fresh database per run.
    let mut env = vec![
        // Each user is its own client address (see `User::ip`), and the
        // limits are at their ceilings: measure the path, not the limits.
        crate::server::trust_forwarded_for(),
        ("SIGNET_LOGIN__SEND_WINDOW".to_owned(), "1m".to_owned()),
        ("SIGNET_LOGIN__SENDS_PER_ADDRESS".to_owned(), "10000".to_owned()),
        ("SIGNET_LOGIN__SENDS_PER_IP".to_owned(), "10000".to_owned()),
    ];
    if let Some(sink) = &sink {
        env.push(("SIGNET_EMAIL__SMTP_URL".to_owned(), sink.url()));
    }
    let server = if sink.is_some() {
        // The built-in policy needs aal2, which no email method gives: the
        // email-code scenario measures a tier where the code completes a
        // login.
        crate::server::BenchServer::start(
            args.database_url.as_deref(),
            env,
            crate::server::with_policy(EMAIL_CODE_POLICY),
        )
        .await?
    } else {
        crate::server::BenchServer::start(args.database_url.as_deref(), env, crate::server::nothing).await?
    };
    let base = server.public.clone();
    let app = server.app.clone();
    let backend = app.store.backend();
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;

    // Seed: users with an enrolled passkey, dealt round-robin to clients.
    let mut per_client: Vec<Vec<User>> = (0..concurrency).map(|_| Vec::new()).collect();
    for i in 0..args.passkey_users.max(concurrency) {
        let email = format!("pk{i}@example.com");
        let token = crate::seed_session_for(&app, &email).await?;
        let mut auth = SoftAuthenticator::new(ONE_PASSWORD, true, false).at(&base);
        let mut fast = None;
        if scenario != Scenario::EmailCode {
            enroll(&http, &base, &token, &mut auth).await?;
            fast = Some(crate::signer::FastPasskey::of(&auth, &base)?);
        }
        let ip = crate::server::client_address(i);
        let inbox = Inbox::new(&email);
        per_client[i % concurrency].push(User {
            email,
            ip,
            auth,
            fast,
            inbox,
        });
    }

    let counter = Arc::new(AtomicUsize::new(0));
    let mail_waits = Arc::new(std::sync::Mutex::new(Vec::new()));
    let total = args.passkey_logins;
    let cpu_before = cpu_ticks()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for users in per_client {
        let (http, base, counter, sink) = (http.clone(), base.clone(), counter.clone(), sink.clone());
        let mail_waits = mail_waits.clone();
        tasks.push(clients.spawn(async move {
            let mut users = users;
            let mut latencies = Vec::new();
            let mut next = 0;
            while counter.fetch_add(1, Ordering::Relaxed) < total {
                let n = users.len();
                let user = users.get_mut(next % n).context("a client without users")?;
                next += 1;
                let t = Instant::now();
                match (scenario, &sink) {
                    (Scenario::EmailCode, Some(sink)) => {
                        let waited = email_code(&http, &base, sink, user).await?;
                        mail_waits.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(waited);
                    }
                    (Scenario::PasskeyStepUp, _) => {
                        let token = login(&http, &base, user).await?;
                        raise(&http, &base, &token, user).await?;
                    }
                    _ => {
                        login(&http, &base, user).await?;
                    }
                }
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let t = crate::timings::gather(tasks, started).await?;
    let elapsed = started.elapsed();
    let cpu_after = cpu_ticks()?;
    server.stop().await?;

    let mail_wait_ms = mean_and_p90(&mail_waits.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let ops = t.count.max(1) as f64;
    let bench_ticks = cpu_after.bench.saturating_sub(cpu_before.bench) as f64;
    let server_ticks = (cpu_after.total.saturating_sub(cpu_before.total) as f64 - bench_ticks).max(0.0);
    let tick_ms = 1000.0 / CLOCK_TICKS_PER_SECOND;
    Ok(LevelResult {
        backend,
        per_second: t.per_second,
        p50_ms: t.p50_ms,
        p99_ms: t.p99_ms,
        server_cpu_ms_per_op: server_ticks * tick_ms / ops,
        postgres_cpu_ms_per_op: cpu_after.postgres.saturating_sub(cpu_before.postgres) as f64 * tick_ms / ops,
        bench_cpu_percent: 100.0 * bench_ticks * tick_ms / (elapsed.as_secs_f64() * 1000.0),
        mail_wait_ms,
    })
}

/// The mean and 90th percentile of `waits`, in milliseconds (none if empty).
fn mean_and_p90(waits: &[Duration]) -> Option<(f64, f64)> {
    if waits.is_empty() {
        return None;
    }
    let mut ms: Vec<f64> = waits.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    let p90 = ms[(ms.len() * 9 / 10).min(ms.len() - 1)];
    Some((mean, p90))
}

async fn post(http: &reqwest::Client, url: String, bearer: Option<&str>, body: Value) -> anyhow::Result<Value> {
    post_as(http, url, bearer, body, None).await
}

async fn post_as(
    http: &reqwest::Client,
    url: String,
    bearer: Option<&str>,
    body: Value,
    ip: Option<&str>,
) -> anyhow::Result<Value> {
    let mut req = http.post(&url).json(&body);
    if let Some(ip) = ip {
        req = req.header("x-forwarded-for", ip);
    }
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "POST {url}: HTTP {status}: {body}");
    Ok(body)
}

/// Enrolls the authenticator's passkey with the user's session.
pub(crate) async fn enroll(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    auth: &mut SoftAuthenticator,
) -> anyhow::Result<()> {
    let begun = post(
        http,
        format!("{base}/api/v1/credentials/passkey/begin"),
        Some(token),
        json!({}),
    )
    .await?;
    let credential = auth.create(&begun["publicKey"]).await;
    post(
        http,
        format!("{base}/api/v1/credentials/passkey/finish"),
        Some(token),
        json!({ "ceremony_id": begun["ceremony_id"], "credential": credential }),
    )
    .await?;
    Ok(())
}

/// The passkey entry of a flow's offered methods.
fn passkey_options(started: &Value) -> anyhow::Result<Value> {
    started["methods"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["method"] == "passkey"))
        .map(|m| m["publicKey"].clone())
        .context("passkey is not offered")
}

/// One login: start with the identifier, answer with the passkey. Returns
/// the session token.
pub(crate) async fn login(http: &reqwest::Client, base: &str, user: &mut User) -> anyhow::Result<String> {
    let started = post_as(
        http,
        format!("{base}/api/v1/login"),
        None,
        json!({ "identifier": user.email, "mode": "api" }),
        Some(&user.ip),
    )
    .await?;
    let flow = started["flow_id"].as_str().context("flow_id")?.to_owned();
    let credential = user.assert(&passkey_options(&started)?).await?;
    let done = post_as(
        http,
        format!("{base}/api/v1/login/{flow}/passkey"),
        None,
        json!({ "credential": credential }),
        Some(&user.ip),
    )
    .await?;
    anyhow::ensure!(done["state"] == "complete", "login not complete: {done}");
    Ok(done["session_token"].as_str().context("session_token")?.to_owned())
}

/// The clients' runtime. A runtime may not be dropped (which blocks) inside
/// another one's tasks, so it is shut down in the background when done,
/// also on an early `?`.
struct ClientRuntime(Option<tokio::runtime::Runtime>);

impl ClientRuntime {
    fn handle(&self) -> anyhow::Result<tokio::runtime::Handle> {
        Ok(self.0.as_ref().context("the client runtime")?.handle().clone())
    }
}

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// One email-code pair: start, send the code, read it from the mail that
/// arrives at the sink, redeem it. Returns how long the mail took to
/// arrive after the send step answered.
async fn email_code(http: &reqwest::Client, base: &str, sink: &SmtpSink, user: &mut User) -> anyhow::Result<Duration> {
    let started = post_as(
        http,
        format!("{base}/api/v1/login"),
        None,
        json!({ "identifier": user.email, "mode": "api" }),
        Some(&user.ip),
    )
    .await?;
    let flow = started["flow_id"].as_str().context("flow_id")?.to_owned();
    post_as(
        http,
        format!("{base}/api/v1/login/{flow}/email_otp/send"),
        None,
        json!({}),
        Some(&user.ip),
    )
    .await?;
    let answered = Instant::now();
    // The user's invitation, also at the sink, has no code: passed over.
    let mail = sink
        .next_in(&mut user.inbox, |m| code_in(m).is_some(), Duration::from_secs(30))
        .await
        .context("no code mail within 30 s")?;
    let waited = answered.elapsed();
    let code = code_in(&mail).context("no code in the mail")?;
    let done = post_as(
        http,
        format!("{base}/api/v1/login/{flow}/email_otp"),
        None,
        json!({ "code": code }),
        Some(&user.ip),
    )
    .await?;
    anyhow::ensure!(done["state"] == "complete", "login not complete: {done}");
    Ok(waited)
}

/// The code of a sign-in mail's text part ("Your code: 123456").
fn code_in(mail: &signet_testkit::CapturedMail) -> Option<String> {
    mail.text_body()?
        .lines()
        .find_map(|l| l.strip_prefix("Your code: "))
        .map(|c| c.trim().to_owned())
}

/// One passkey step-up of the session `token`.
async fn raise(http: &reqwest::Client, base: &str, token: &str, user: &mut User) -> anyhow::Result<()> {
    let started = post_as(
        http,
        format!("{base}/api/v1/step-up"),
        Some(token),
        json!({}),
        Some(&user.ip),
    )
    .await?;
    let flow = started["flow_id"].as_str().context("flow_id")?.to_owned();
    let credential = user.assert(&passkey_options(&started)?).await?;
    post_as(
        http,
        format!("{base}/api/v1/step-up/{flow}/passkey"),
        Some(token),
        json!({ "credential": credential }),
        Some(&user.ip),
    )
    .await?;
    Ok(())
}

/// Linux's `USER_HZ`: the unit of the CPU times in `/proc/*/stat`, 100 on
/// every mainstream architecture.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

struct CpuTicks {
    /// This whole process (every thread, including those that ended).
    total: u64,
    /// The threads of the `bench-client` runtime.
    bench: u64,
    /// Every local process named `postgres` (a local PostgreSQL server's
    /// backends; zero on SQLite or for a remote server).
    postgres: u64,
}

/// utime + stime of a `/proc/.../stat` line, and its `comm`.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); fields after ")" start at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

fn cpu_ticks() -> anyhow::Result<CpuTicks> {
    let total = parse_stat(&std::fs::read_to_string("/proc/self/stat")?)
        .map(|(_, t)| t)
        .context("/proc/self/stat")?;
    let mut bench = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let Ok(stat) = std::fs::read_to_string(task?.path().join("stat")) else {
            continue;
        };
        if let Some((comm, t)) = parse_stat(&stat) {
            if comm.starts_with("bench-client") {
                bench += t;
            }
        }
    }
    let mut postgres = 0;
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        if !entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((comm, t)) = parse_stat(&stat) {
            if comm == "postgres" {
                postgres += t;
            }
        }
    }
    Ok(CpuTicks { total, bench, postgres })
}
