//! Readiness that tells the truth.
//!
//! A server is ready when it can do what a 2xx promises: store a change
//! durably. A `SELECT 1` answers while every write fails (a full disk, a
//! writer held past its timeout), so the check commits one tiny write
//! through the same writer and the same unit of work as every change
//! ([`signet_core::store::Store::probe_write`]). Probes are rate-limited: at
//! most one every [`PROBE_INTERVAL`], whatever the request rate, and
//! concurrent checks share the one in flight. The verdict is cached until
//! the next probe, so a load balancer polling every second adds no load.
//!
//! A probe that has not committed within [`PROBE_TIMEOUT`] fails as
//! `storage_busy`. Without that bound a database that refuses connections
//! kept `/readyz` waiting for the pool's 10 s acquire timeout (and every
//! concurrent check with it, on the lock), so readiness went 503 only about
//! 12 s into an outage (the fault suite, `tests/it/faults.rs`).

use std::time::Duration;

use signet_core::store::StoreError;
use signet_core::{Error, ErrorCode, Result};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::App;

/// The least time between two write probes.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// The most a probe may take: a write that cannot commit in this time means
/// not ready, whatever the pool's own timeouts.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a probe found: nothing wrong, or the storage code and its
/// `Retry-After`.
type Verdict = Option<(ErrorCode, u64)>;

/// The last probe's time and what it found.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, Verdict)>>,
}

impl Readiness {
    /// `Ok` while writes commit; otherwise 503 naming the storage failure
    /// (`storage_full`, `storage_busy` or `unavailable`).
    pub async fn check(&self, app: &App) -> Result<()> {
        // Held across the probe on purpose: concurrent checks wait for the
        // one in flight and reuse its answer instead of probing again.
        let mut last = self.last.lock().await;
        let fresh = last.as_ref().is_some_and(|(at, _)| at.elapsed() < PROBE_INTERVAL);
        if !fresh {
            let now = app.clock.now();
            let probe = async {
                match app.store.ping().await {
                    Ok(()) => app.store.probe_write(now).await.err(),
                    Err(e) => Some(e),
                }
            };
            let failure = tokio::time::timeout(PROBE_TIMEOUT, probe)
                .await
                .unwrap_or_else(|_| Some(StoreError::Busy(Box::new(ProbeTimedOut))));
            let verdict = failure.map(|e| {
                let e = Error::from(e);
                tracing::warn!(code = %e.code(), error = %chain(&e), "not ready: a write cannot commit");
                match e {
                    Error::Unavailable {
                        code, retry_after_secs, ..
                    } => (code, retry_after_secs),
                    other => (ErrorCode::Unavailable, retry_after(&other)),
                }
            });
            *last = Some((Instant::now(), verdict));
        }
        match last.as_ref().and_then(|(_, v)| *v) {
            None => Ok(()),
            Some((code, retry_after_secs)) => Err(Error::Unavailable {
                code,
                retry_after_secs,
                source: Box::new(NotReady(code)),
            }),
        }
    }
}

/// A failure that is not a storage condition (corruption, a bug) still
/// means not ready; a client may retry after the next probe.
fn retry_after(_: &Error) -> u64 {
    PROBE_INTERVAL.as_secs()
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// Why the last probe failed (its error code), for the log.
#[derive(Debug, thiserror::Error)]
#[error("the last write probe failed ({0})")]
struct NotReady(ErrorCode);

/// The probe did not commit within [`PROBE_TIMEOUT`].
#[derive(Debug, thiserror::Error)]
#[error("the write probe did not commit within {PROBE_TIMEOUT:?}")]
struct ProbeTimedOut;
