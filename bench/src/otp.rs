//! One-time-code scenarios (`--only totp` or `--only recovery`): sign-ins
//! whose second half is a code the server checks itself.
//!
//! - `totp-verify`: `POST /api/v1/login/{flow}/totp` with a valid code: the
//!   seed opened from its sealed form, three HMAC-SHA1 steps compared, and
//!   the replay check, one conditional `UPDATE ... WHERE last_step < $step`
//!   in the unit of work that creates the session. Every flow is started
//!   before the clock starts, so the figure is verifies per second: the
//!   operation issue 9 names ("TOTP verify with replay check").
//! - `totp-sign-in`: the same step, each one after its own login start,
//!   both in the timed loop: sign-ins per second (the figure reported
//!   under this name before, as `totp-verify`).
//! - `recovery-code-login`: `POST /api/v1/login/{flow}/recovery_code`: the
//!   code's hash looked up, its use as one conditional `UPDATE`, the notice
//!   queued, the session created. Ten codes per user; each flow started in
//!   the timed loop, before its step.
//!
//! A user signs in with TOTP once (a second code in the same step would be
//! a replay), so the two TOTP scenarios split the seeded users between them:
//! each makes `min(--requests, --otp-users) / 2` requests. Latencies are the
//! step's alone. The server runs with a policy whose tier signs in with
//! either code alone (aal1). Figures need a quiet machine.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::{json, Value};
use signet_app::rfc6238::{self, Algorithm};
use signet_app::{Actor, Origin};

use crate::Args;

const POLICY: &str = r#"
[tiers.codes]
login = ["totp", "recovery_code"]
second_factor = ["totp"]
required_aal = "aal1"
session = { idle = "8h", absolute = "24h" }

[assignment]
default = "codes"
"#;

/// A seeded user: email, TOTP secret, recovery codes.
struct Seeded {
    email: String,
    secret: Vec<u8>,
    codes: Vec<String>,
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<()> {
    let server = crate::server::BenchServer::start(
        args.database_url.as_deref(),
        vec![crate::server::trust_forwarded_for()],
        crate::server::with_policy(POLICY),
    )
    .await?;
    let app = server.app.clone();
    let base = server.direct.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;

    let users = args.otp_users.min(args.requests).max(1);
    let mut seeded = Vec::with_capacity(users);
    for i in 0..users {
        seeded.push(seed(&app, &client, &base, i).await?);
    }
    let seeded = Arc::new(seeded);
    println!(
        "signet-bench otp: {} users, {} concurrent clients, backend {}",
        users,
        args.concurrency,
        app.store.backend()
    );
    println!(
        "{:<20} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "scenario", "requests", "req/s", "p50 ms", "p99 ms", "max ms"
    );
    let half = users / 2;
    for name in ["totp-verify", "totp-sign-in", "recovery-code-login"] {
        if args.only.as_deref().is_some_and(|o| !name.contains(o) && o != "otp") {
            continue;
        }
        // Read per scenario: a long run must not outlast the ±1 step window.
        let step = rfc6238::step_at(app.clock.now().as_millis() / 1000, rfc6238::STEP_SECONDS);
        // Which seeded users each request signs in, and with what.
        let (first, total) = match name {
            "totp-verify" => (0, half),
            "totp-sign-in" => (half, users - half),
            _ => (0, (users * 10).min(args.requests)),
        };
        let request = move |i: usize, seeded: &[Seeded]| -> (&'static str, String, String) {
            let user = &seeded[(first + i) % seeded.len()];
            match name {
                // The next step's code: the enrollment used the current one.
                "recovery-code-login" => (
                    "recovery_code",
                    user.email.clone(),
                    user.codes[i / seeded.len()].clone(),
                ),
                _ => (
                    "totp",
                    user.email.clone(),
                    rfc6238::totp_at_step(Algorithm::Sha1, &user.secret, step + 1, 6),
                ),
            }
        };
        // `totp-verify`: every flow started before the clock starts.
        let mut ready = Vec::new();
        if name == "totp-verify" {
            for i in 0..total {
                let (_, email, _) = request(i, &seeded);
                ready.push(start(&client, &base, &email, i).await?);
            }
        }
        let ready = Arc::new(ready);
        let counter = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..args.concurrency {
            let (client, base, seeded, counter, ready) = (
                client.clone(),
                base.clone(),
                seeded.clone(),
                counter.clone(),
                ready.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, anyhow::Error>(latencies);
                    }
                    let (method, email, code) = request(i, &seeded);
                    let flow = match ready.get(i) {
                        Some(flow) => flow.clone(),
                        None => start(&client, &base, &email, i).await?,
                    };
                    let t = Instant::now();
                    let resp = client
                        .post(format!("{base}/api/v1/login/{flow}/{method}"))
                        .json(&json!({ "code": code }))
                        .send()
                        .await?;
                    anyhow::ensure!(resp.status().is_success(), "{name}: HTTP {}", resp.status());
                    resp.bytes().await?;
                    latencies.push(t.elapsed());
                }
            }));
        }
        let t = crate::timings::gather(tasks, started).await?;
        println!(
            "{:<20} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>9.2}",
            name, t.count, t.per_second, t.p50_ms, t.p99_ms, t.max_ms,
        );
    }
    server.stop().await
}

/// Starts a login for `email` (API mode) from the `i`th client's address
/// and returns its flow id.
async fn start(client: &reqwest::Client, base: &str, email: &str, i: usize) -> anyhow::Result<String> {
    let started: Value = client
        .post(format!("{base}/api/v1/login"))
        .header("x-forwarded-for", crate::server::client_address(i))
        .json(&json!({ "identifier": email, "mode": "api" }))
        .send()
        .await?
        .json()
        .await?;
    Ok(started["flow_id"].as_str().context("flow_id")?.to_owned())
}

/// A user with an authenticator app and a set of recovery codes.
async fn seed(app: &signet_app::App, client: &reqwest::Client, base: &str, i: usize) -> anyhow::Result<Seeded> {
    let email = format!("otp{i}@example.com");
    let user = signet_app::users::create(
        app,
        &Actor::Cli,
        &Origin::default(),
        signet_core::user::NewUser::parse(&email, None, None, &[])?,
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
    let bearer = issued.token.expose_secret().to_owned();
    let begun: Value = client
        .post(format!("{base}/api/v1/credentials/totp/begin"))
        .bearer_auth(&bearer)
        .json(&json!({}))
        .send()
        .await?
        .json()
        .await?;
    let secret = data_encoding::BASE32_NOPAD
        .decode(begun["secret"].as_str().context("secret")?.as_bytes())
        .context("base32")?;
    let step = rfc6238::step_at(app.clock.now().as_millis() / 1000, rfc6238::STEP_SECONDS);
    let resp = client
        .post(format!("{base}/api/v1/credentials/totp/finish"))
        .bearer_auth(&bearer)
        .json(&json!({
            "ceremony_id": begun["ceremony_id"],
            "code": rfc6238::totp_at_step(Algorithm::Sha1, &secret, step, 6),
        }))
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "totp finish: HTTP {}", resp.status());
    let codes: Value = client
        .post(format!("{base}/api/v1/credentials/recovery-codes"))
        .bearer_auth(&bearer)
        .send()
        .await?
        .json()
        .await?;
    let codes = codes["codes"]
        .as_array()
        .context("codes")?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    Ok(Seeded { email, secret, codes })
}
