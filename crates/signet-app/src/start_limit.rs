//! A limit on sign-in starts per client address.
//!
//! A start stores nothing (ADR 0014), so it cannot fill the disk; what it
//! costs is CPU (an account lookup, decoy credential ids, sealing the
//! handle) and, for an unknown address, an answer an enumerator can use.
//! So starts are limited per client IP: at most `[login] starts_per_ip` in
//! any minute, answered `429 rate_limited` with `retry_after` beyond that,
//! for known and unknown addresses alike (the limit looks at the IP only).
//!
//! The counts live in this node's memory, not in storage: a write per start
//! would cost what the sealed handle saves, and an exact cluster-wide count
//! is not needed for a limit on cost. With several nodes behind a balancer
//! a client gets up to nodes × the limit. The table holds at most
//! [`MAX_TRACKED`] addresses; when it is full, windows that have ended are
//! dropped, and if every tracked address is still counting, the oldest
//! half goes (a flood from more addresses than that is bounded by the
//! admission budgets instead, ADR 0013).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use signet_core::{Error, Result};
use tokio::time::Instant;

/// The window the limit counts over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The most client addresses counted at once.
pub const MAX_TRACKED: usize = 100_000;

/// Starts per client address in the current window.
#[derive(Default)]
pub struct StartLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl StartLimiter {
    /// Counts one start from `ip` (none: a client whose address is unknown,
    /// which is not limited here) and refuses it past `limit` per window.
    pub fn check(&self, ip: Option<&str>, limit: u32) -> Result<()> {
        let Some(ip) = ip else { return Ok(()) };
        let now = Instant::now();
        // Poisoning only means another thread panicked while counting;
        // the counts are still counts.
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() >= MAX_TRACKED && !windows.contains_key(ip) {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if windows.len() >= MAX_TRACKED {
                let mut starts: Vec<Instant> = windows.values().map(|(s, _)| *s).collect();
                starts.sort_unstable();
                let median = starts[starts.len() / 2];
                windows.retain(|_, (start, _)| *start > median);
            }
        }
        let entry = windows.entry(ip.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 > limit {
            let left = WINDOW.saturating_sub(now.duration_since(entry.0));
            return Err(Error::RateLimited {
                retry_after_secs: left.as_secs().max(1),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_address_gets_its_starts_per_window_and_then_429_until_the_window_ends() {
        let limiter = StartLimiter::default();
        for _ in 0..3 {
            limiter.check(Some("192.0.2.1"), 3).unwrap();
        }
        let refused = limiter.check(Some("192.0.2.1"), 3).unwrap_err();
        assert!(
            matches!(refused, Error::RateLimited { retry_after_secs: 60 }),
            "{refused:?}"
        );
        // Another address is counted on its own; no address is not limited.
        limiter.check(Some("192.0.2.2"), 3).unwrap();
        limiter.check(None, 0).unwrap();
        tokio::time::advance(WINDOW).await;
        limiter.check(Some("192.0.2.1"), 3).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_stays_bounded() {
        let limiter = StartLimiter::default();
        for i in 0..(MAX_TRACKED + 10) {
            limiter
                .check(Some(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)), 5)
                .unwrap();
            if i % 1000 == 0 {
                tokio::time::advance(Duration::from_millis(1)).await;
            }
        }
        assert!(limiter.windows.lock().unwrap().len() <= MAX_TRACKED);
    }
}
