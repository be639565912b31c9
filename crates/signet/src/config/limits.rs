//! `[limits]` (an extension of the contract's keys): admission control
//! (ADR 0013).
//!
//! The request budgets (`max_in_flight`, `anonymous_in_flight`,
//! `ops_in_flight`, `request_timeout`) are signet-web's
//! [`signet_web::admission::Budgets`], and so are their rules (each at
//! least 1, the anonymous share no larger than `max_in_flight`, the deadline
//! between 1s and 5m). `max_connections` is the binary's own connection cap
//! (`crate::connections`), so its bound is here.

use std::time::Duration;

use serde::Deserialize;
use signet_web::admission::{BudgetError, BudgetProblem, Budgets};
use toml::Spanned;

use super::loader::{env_integer, env_string, ConfigError, Sourced, Sources};

pub use signet_web::admission::{IN_FLIGHT_RANGE as LIMITS_IN_FLIGHT_RANGE, REQUEST_TIMEOUT_RANGE};

/// `[limits]` (an extension of the contract's keys): how much work the
/// server admits at once. Past these, requests and connections are refused
/// at once with 503 `overloaded` and `Retry-After` instead of queueing
/// (ADR 0013, docs/operations.md "Admission control").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open client connections (TCP, with or without TLS). One more is
    /// answered 503 and closed.
    pub max_connections: u32,
    /// Requests in progress at once, all routes except the operational ones.
    pub max_in_flight: u32,
    /// Of `max_in_flight`, how many may be anonymous starts (login and
    /// step-up sends, login starts, invitation redemptions): they are shed first.
    pub anonymous_in_flight: u32,
    /// `/healthz`, `/readyz` and `/metrics` in progress at once: a budget of
    /// their own, so probes still answer while the rest is shed.
    pub ops_in_flight: u32,
    /// The deadline of a whole request, from admission to the response.
    pub request_timeout: Duration,
    /// How long a client connection may take to send a request's headers,
    /// counted from the connection (or the previous response, on a kept-alive
    /// one): past it the connection is closed. Without it a client that
    /// trickles its headers (slowloris) holds a connection place for ever.
    pub header_read_timeout: Duration,
}

pub const DEFAULT_LIMITS: Limits = Limits {
    max_connections: 1024,
    max_in_flight: 256,
    anonymous_in_flight: 64,
    ops_in_flight: 16,
    request_timeout: Duration::from_secs(10),
    header_read_timeout: Duration::from_secs(30),
};

impl Default for Limits {
    fn default() -> Self {
        DEFAULT_LIMITS
    }
}

/// Bounds of the `[limits]` settings, inclusive.
pub const LIMITS_MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<i64> = 1..=1_000_000;
/// Bounds of `header_read_timeout`, inclusive.
pub const HEADER_READ_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(300);

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    max_connections: Option<Spanned<i64>>,
    max_in_flight: Option<Spanned<i64>>,
    anonymous_in_flight: Option<Spanned<i64>>,
    ops_in_flight: Option<Spanned<i64>>,
    request_timeout: Option<Spanned<String>>,
    header_read_timeout: Option<Spanned<String>>,
}

/// The key and source of `v`, and signet-web's reason. The share rule names
/// the other budget, here by its key.
fn refused<T>(v: &Sourced<T>) -> impl FnOnce(BudgetError) -> ConfigError + '_ {
    move |e| match e.problem {
        BudgetProblem::LargerThanMax { max_in_flight, got } => v.error(format!(
            "is a share of limits.max_in_flight ({max_in_flight}), so it cannot be larger; got {got}"
        )),
        problem => v.error(problem.to_string()),
    }
}

/// `[limits]`, read in key order; the anonymous default follows a smaller
/// `max_in_flight` down.
pub(super) fn build(raw: RawLimits, src: &Sources) -> Result<Limits, ConfigError> {
    let d = DEFAULT_LIMITS;
    let conns = src.pick_or(
        "limits.max_connections",
        raw.max_connections,
        env_integer,
        i64::from(d.max_connections),
    )?;
    let max_connections = u32::try_from(conns.value)
        .ok()
        .filter(|n| LIMITS_MAX_CONNECTIONS_RANGE.contains(&i64::from(*n)))
        .ok_or_else(|| {
            conns.error(format!(
                "must be between {} and {}, got {}",
                LIMITS_MAX_CONNECTIONS_RANGE.start(),
                LIMITS_MAX_CONNECTIONS_RANGE.end(),
                conns.value
            ))
        })?;
    let max = src.pick_or(
        "limits.max_in_flight",
        raw.max_in_flight,
        env_integer,
        i64::from(d.max_in_flight),
    )?;
    let max_in_flight = Budgets::check_count("max_in_flight", max.value).map_err(refused(&max))?;
    let anonymous = src.pick_or(
        "limits.anonymous_in_flight",
        raw.anonymous_in_flight,
        env_integer,
        i64::from(d.anonymous_in_flight.min(max_in_flight)),
    )?;
    let anonymous_in_flight = Budgets::check_anonymous(anonymous.value, max_in_flight).map_err(refused(&anonymous))?;
    let ops = src.pick_or(
        "limits.ops_in_flight",
        raw.ops_in_flight,
        env_integer,
        i64::from(d.ops_in_flight),
    )?;
    let ops_in_flight = Budgets::check_count("ops_in_flight", ops.value).map_err(refused(&ops))?;
    let request_timeout = match src.pick("limits.request_timeout", raw.request_timeout, env_string)? {
        Some(v) => Budgets::check_request_timeout(v.duration()?).map_err(refused(&v))?,
        None => d.request_timeout,
    };
    let header_read_timeout = match src.pick("limits.header_read_timeout", raw.header_read_timeout, env_string)? {
        Some(v) => {
            let got = v.duration()?;
            if !HEADER_READ_TIMEOUT_RANGE.contains(&got) {
                return Err(v.error(format!("must be between 1s and 5m, got {got:?}")));
            }
            got
        }
        None => d.header_read_timeout,
    };
    Ok(Limits {
        max_connections,
        max_in_flight,
        anonymous_in_flight,
        ops_in_flight,
        request_timeout,
        header_read_timeout,
    })
}

impl Limits {
    /// The request budgets signet-web enforces.
    pub fn budgets(&self) -> Budgets {
        Budgets {
            max_in_flight: self.max_in_flight,
            anonymous_in_flight: self.anonymous_in_flight,
            ops_in_flight: self.ops_in_flight,
            request_timeout: self.request_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures::*;

    #[test]
    fn limits_defaults_bounds_and_the_anonymous_share() {
        assert_eq!(load_env(&[]).unwrap().limits, DEFAULT_LIMITS);
        let c = load_file(
            "[limits]\nmax_connections = 50\nmax_in_flight = 8\nanonymous_in_flight = 2\nops_in_flight = 1\nrequest_timeout = \"3s\"\nheader_read_timeout = \"5s\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.limits,
            Limits {
                max_connections: 50,
                max_in_flight: 8,
                anonymous_in_flight: 2,
                ops_in_flight: 1,
                request_timeout: Duration::from_secs(3),
                header_read_timeout: Duration::from_secs(5),
            }
        );
        // A small max_in_flight alone lowers the anonymous default with it.
        let c = load_env(&[("SIGNET_LIMITS__MAX_IN_FLIGHT", "4")]).unwrap();
        assert_eq!(c.limits.anonymous_in_flight, 4);
        let msg = err_env(&[
            ("SIGNET_LIMITS__MAX_IN_FLIGHT", "4"),
            ("SIGNET_LIMITS__ANONYMOUS_IN_FLIGHT", "5"),
        ]);
        assert!(
            msg.contains("limits.anonymous_in_flight") && msg.contains("max_in_flight"),
            "{msg}"
        );
        let msg = err_env(&[("SIGNET_LIMITS__MAX_CONNECTIONS", "0")]);
        assert!(
            msg.contains("limits.max_connections (from SIGNET_LIMITS__MAX_CONNECTIONS)"),
            "{msg}"
        );
        let msg = err_env(&[("SIGNET_LIMITS__HEADER_READ_TIMEOUT", "0s")]);
        assert!(msg.contains("limits.header_read_timeout"), "{msg}");
        let msg = err_file("[limits]\nrequest_timeout = \"1h\"\n");
        assert!(
            msg.contains("limits.request_timeout") && msg.contains("line 2"),
            "{msg}"
        );
    }
}
