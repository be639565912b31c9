//! What every scenario reports from its closed-loop clients: how many
//! operations per second, and the latency of one operation at p50, p99 and
//! the maximum.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

pub(crate) struct Summary {
    pub(crate) count: usize,
    pub(crate) per_second: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

/// Waits for every client (each returns the latencies it saw; the first
/// error fails the run) and summarises them against the time since
/// `started`.
pub(crate) async fn gather(
    tasks: Vec<JoinHandle<anyhow::Result<Vec<Duration>>>>,
    started: Instant,
) -> anyhow::Result<Summary> {
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let pct = |p: f64| ms(all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))));
    Ok(Summary {
        count: all.len(),
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: ms(all.last()),
    })
}
