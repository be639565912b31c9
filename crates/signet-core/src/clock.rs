//! Time as a parameter (DESIGN.md habit 3).
//!
//! Every expiry check in Signet asks a [`Clock`], never the OS directly, so
//! tests can run on a [`ManualClock`] (for example to walk through RFC 6238
//! vectors or to expire a flow without sleeping).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, UTC. Stored as a plain integer in both
/// database backends so comparisons are identical everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// `self + d`, saturating rather than overflowing on absurd durations.
    pub fn plus(self, d: Duration) -> Self {
        let add = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(add))
    }

    pub fn minus(self, d: Duration) -> Self {
        let sub = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(sub))
    }

    /// Whole seconds since the epoch (what OIDC and `auth_time` use).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-24T20:00:00.123Z`.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| self.0.to_string())
    }
}

impl Timestamp {
    /// For people: `24 Nov 2026, 20:42 UTC`.
    pub fn to_human(self) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => format!(
                "{} {} {}, {:02}:{:02} UTC",
                t.day(),
                MONTHS[usize::from(u8::from(t.month())) - 1],
                t.year(),
                t.hour(),
                t.minute()
            ),
            Err(_) => self.to_rfc3339(),
        }
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Serialises a [`Timestamp`] as RFC 3339 in JSON responses.
pub mod rfc3339 {
    use super::Timestamp;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339())
    }

    pub mod option {
        use super::Timestamp;
        use serde::Serializer;

        pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&t.to_rfc3339()),
                None => s.serialize_none(),
            }
        }
    }
}

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

pub type SharedClock = Arc<dyn Clock>;

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the wall clock
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// A clock tests move by hand.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(AtomicI64::new(start.0))
    }

    pub fn advance(&self, d: Duration) {
        let add = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(add, Ordering::SeqCst);
    }

    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_numbers() {
        assert_eq!(Timestamp::from_millis(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp::from_millis(1_500).to_rfc3339(), "1970-01-01T00:00:01.5Z");
    }

    #[test]
    fn human_form() {
        assert_eq!(
            Timestamp::from_millis(1_795_553_520_000).to_human(),
            "24 Nov 2026, 20:52 UTC"
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_millis(1000));
        assert_eq!(c.now().as_millis(), 1000);
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now().as_millis(), 3000);
    }
}
