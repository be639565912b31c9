//! The overload scenario: far more concurrent clients than the server
//! admits, to show admission control (ADR 0011) at work.
//!
//! The server runs in a child process (this binary with `--serve-child`), so
//! that its resident memory can be read from `/proc/PID/status` apart from
//! the load generator's. `--overload-clients` closed-loop clients (no think
//! time, each retrying at once whatever the answer) send a mix of anonymous
//! login starts (4 in 5) and authenticated session reads (1 in 5), until
//! `--overload-requests` answers or `--overload-seconds` have passed. A
//! client honours `Retry-After` (waits 1 s after a 503 or a refused
//! connection) unless `--no-backoff` makes it a flood that retries at once;
//! then latency is bounded by Little's law (clients / answers per second). That is
//! repeated `--overload-bursts` times, with the memory read when idle before,
//! at the peak of, and 5 s after each burst.
//!
//! Outcomes: `ok` (2xx), `overloaded` (503 from a full budget or the
//! connection cap), `deadline` (503 `deadline_exceeded`), `closed` (the
//! connection was closed without an answer: past the cap and past the
//! answered refusals), `other`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::Args;

/// The child: start the server on a loopback port with the `SIGNET_*`
/// environment it was given, seed one session, print `READY PORT TOKEN`,
/// and serve until stdin closes.
pub async fn serve_child(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.path().display()));
    let listener = signet::server::bind(([127, 0, 0, 1], 0).into())?;
    let port = listener.local_addr()?.port();
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SIGNET_LIMITS__") || k == "SIGNET_SEALING__KEY")
        .collect();
    env.extend([
        ("SIGNET_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
        // One client address floods: measure admission control, not the
        // per-address start limit.
        ("SIGNET_LOGIN__STARTS_PER_IP".to_owned(), "10000".to_owned()),
        ("SIGNET_PUBLIC_URL".to_owned(), format!("http://localhost:{port}")),
        ("SIGNET_DATABASE__URL".to_owned(), db.clone()),
        ("SIGNET_LOG__LEVEL".to_owned(), "error".to_owned()),
    ]);
    if db.starts_with("postgres") && !env.iter().any(|(k, _)| k == "SIGNET_SEALING__KEY") {
        env.push(("SIGNET_SEALING__KEY".to_owned(), crate::BENCH_SEALING_KEY.to_owned()));
    }
    let config = signet::config::Config::load(None, env)?;
    let running = signet::server::start(
        &config,
        signet::server::StartOptions {
            listener: Some(listener),
            ..Default::default()
        },
    )
    .await?;
    let session = crate::seed_session(&running.wired.app).await?;
    println!("READY {port} {session}");
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    running.shutdown().await;
    Ok(())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
}

impl Tally {
    fn add(&mut self, outcome: &'static str, d: Duration) {
        self.latencies.entry(outcome).or_default().push(d);
    }
    fn merge(&mut self, other: Tally) {
        for (k, mut v) in other.latencies {
            self.latencies.entry(k).or_default().append(&mut v);
        }
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("--serve-child")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(url) = &args.database_url {
        cmd.arg("--database-url").arg(url);
    }
    if args.unlimited {
        // Admission control out of the way: the behaviour before it.
        for (k, v) in [
            ("SIGNET_LIMITS__MAX_CONNECTIONS", "1000000"),
            ("SIGNET_LIMITS__MAX_IN_FLIGHT", "100000"),
            ("SIGNET_LIMITS__ANONYMOUS_IN_FLIGHT", "100000"),
            ("SIGNET_LIMITS__REQUEST_TIMEOUT", "300s"),
        ] {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn()?;
    let pid = child.id().context("child pid")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(60), BufReader::new(stdout).read_line(&mut line)).await??;
    let mut parts = line.split_whitespace().skip(1);
    let port: u16 = parts.next().context("port")?.parse()?;
    let session = parts.next().context("session")?.to_owned();
    let base = format!("http://127.0.0.1:{port}");
    let limits: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SIGNET_LIMITS__"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "overload: {} clients ({}), {} answers per burst (at most {} s), {} bursts, admission control {}{}",
        args.overload_clients,
        if args.no_backoff {
            "retrying at once"
        } else {
            "honouring Retry-After"
        },
        args.overload_requests,
        args.overload_seconds,
        args.overload_bursts,
        if args.unlimited { "OFF" } else { "on" },
        if args.unlimited {
            " (limits far above the load)".to_owned()
        } else if limits.is_empty() {
            " (default limits)".to_owned()
        } else {
            format!(" ({})", limits.join(", "))
        }
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(pid);
    println!("server RSS idle: {:.1} MiB", idle as f64 / 1024.0);
    println!(
        "{:<6} {:<11} {:>8} {:>9} {:>9} {:>9}",
        "burst", "outcome", "count", "p50 ms", "p99 ms", "max ms"
    );
    for burst in 1..=args.overload_bursts {
        let peak = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(args.overload_clients)
            .timeout(Duration::from_secs(30))
            .build()?;
        let counter = Arc::new(AtomicUsize::new(0));
        let until = Instant::now() + Duration::from_secs(args.overload_seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..args.overload_clients {
            let (client, base, session, counter) = (client.clone(), base.clone(), session.clone(), counter.clone());
            let total = args.overload_requests;
            let backoff = !args.no_backoff;
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    if i >= total || Instant::now() >= until {
                        return tally;
                    }
                    let (anonymous, req) = if i % 5 == 4 {
                        (
                            false,
                            client.get(format!("{base}/api/v1/session")).bearer_auth(&session),
                        )
                    } else {
                        (
                            true,
                            client
                                .post(format!("{base}/api/v1/login"))
                                .json(&json!({ "identifier": format!("nobody{i}@example.com"), "mode": "api" })),
                        )
                    };
                    let t = Instant::now();
                    let outcome = match req.send().await {
                        Ok(resp) => {
                            let status = resp.status();
                            let body = resp.bytes().await.unwrap_or_default();
                            if status.is_success() {
                                if anonymous {
                                    "ok-login"
                                } else {
                                    "ok-session"
                                }
                            } else if status.as_u16() == 503 && body.windows(12).any(|w| w == b"\"overloaded\"") {
                                "overloaded"
                            } else if status.as_u16() == 503 && body.windows(19).any(|w| w == b"\"deadline_exceeded\"")
                            {
                                "deadline"
                            } else {
                                "other"
                            }
                        }
                        Err(_) => "closed",
                    };
                    tally.add(outcome, t.elapsed());
                    // A well-behaved client honours Retry-After (1 s) and
                    // backs off as long after a refused connection.
                    if backoff && matches!(outcome, "overloaded" | "deadline" | "closed") {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }));
        }
        let mut tally = Tally::default();
        for t in tasks {
            tally.merge(t.await?);
        }
        let elapsed = started.elapsed();
        drop(client);
        done.store(true, Ordering::Relaxed);
        let _ = sampler.await;
        let answers: usize = tally.latencies.values().map(Vec::len).sum();
        for (outcome, mut l) in tally.latencies {
            l.sort();
            println!(
                "{:<6} {:<11} {:>8} {:>9.2} {:>9.2} {:>9.2}",
                burst,
                outcome,
                l.len(),
                pct(&l, 0.50),
                pct(&l, 0.99),
                l.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
            );
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        println!(
            "burst {burst}: {answers} answers in {:.1} s ({:.0}/s); server RSS peak {:.1} MiB, 5 s after {:.1} MiB",
            elapsed.as_secs_f64(),
            answers as f64 / elapsed.as_secs_f64(),
            peak.load(Ordering::Relaxed) as f64 / 1024.0,
            rss_kib(pid) as f64 / 1024.0
        );
    }
    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
    Ok(())
}
