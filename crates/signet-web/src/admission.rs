//! Admission control: past capacity, refuse at once instead of queueing
//! (ADR 0013).
//!
//! Every request belongs to one of three classes, decided from its method
//! and path alone (no body, no database):
//!
//! - **ops**: `/healthz`, `/readyz`, `/metrics`. A budget of their own
//!   (`[limits] ops_in_flight`), so probes and scrapes answer while
//!   everything else is shed, and a scraper storm cannot starve users.
//! - **anonymous**: the starts anyone can send without proving anything:
//!   `POST /api/v1/login`, every `.../send` (a message costs money and
//!   reputation), invitation redemption (`POST /api/v1/invitations/redeem`,
//!   `POST /invite/{token}`) and the recovery starts. They take a permit of
//!   `[limits] anonymous_in_flight` *and* one of `max_in_flight`, so a flood
//!   of them fills at most its share and is shed first.
//! - **standard**: everything else, in particular authenticated session and
//!   admin calls and the finishing steps of flows (passkey, codes, step-up),
//!   which take only a permit of `max_in_flight`.
//!
//! A request whose budget is full gets 503 `overloaded` with `Retry-After`
//! right away (`try_acquire`, never a wait), without logging (a flood must
//! not become a log flood); `signet_requests_shed_total` counts it.
//!
//! An admitted request runs under one deadline (`[limits] request_timeout`)
//! that covers everything inside this layer: reading the body, waiting for a
//! database connection or the SQLite writer, the handler, the commit. When it
//! strikes, the request's future is dropped and the answer is 503
//! `deadline_exceeded`. What must stay true: dropping a request's future is a
//! rollback. An open unit of work (`signet_core::unit_of_work`) that is
//! dropped unfinished is rolled back (ADR 0010, decision 5), so a cancelled
//! request leaves nothing half-written. Only when the deadline strikes while
//! `COMMIT` itself is under way is the outcome unknown to the client, exactly
//! as for a lost connection.
//!
//! The rules a set of budgets must follow (each at least 1, the anonymous
//! share no larger than `max_in_flight`, the deadline between 1s and 5m) are
//! [`Budgets::new`]'s; the binary's `[limits]` config only adds where a
//! refused value came from.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use signet_core::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::AppState;

/// `Retry-After` of `overloaded`: a budget frees as soon as a request ends.
pub const OVERLOADED_RETRY_AFTER_SECS: u64 = 1;
/// `Retry-After` of `deadline_exceeded`: something is slow; back off longer.
pub const DEADLINE_RETRY_AFTER_SECS: u64 = 5;

/// The budgets (`[limits]`, see docs/configuration.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budgets {
    pub max_in_flight: u32,
    pub anonymous_in_flight: u32,
    pub ops_in_flight: u32,
    pub request_timeout: Duration,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            max_in_flight: 256,
            anonymous_in_flight: 64,
            ops_in_flight: 16,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Bounds of each in-flight budget, inclusive: at least one request, so a
/// class is never shut out entirely.
pub const IN_FLIGHT_RANGE: std::ops::RangeInclusive<i64> = 1..=100_000;
/// Bounds of [`Budgets::request_timeout`], inclusive: below a second even a
/// healthy request may miss it; above five minutes it no longer protects
/// the server.
pub const REQUEST_TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(300));

/// A budget that [`Budgets::new`] refuses. The text names no setting or
/// source; `field` is the [`Budgets`] field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct BudgetError {
    pub field: &'static str,
    pub problem: BudgetProblem,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BudgetProblem {
    /// Outside [`IN_FLIGHT_RANGE`]; kept as given.
    Count { got: i64 },
    /// `anonymous_in_flight` is a share of `max_in_flight`.
    LargerThanMax { max_in_flight: u32, got: u32 },
    /// Outside [`REQUEST_TIMEOUT_RANGE`].
    Timeout { got: Duration },
}

impl std::fmt::Display for BudgetProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use signet_core::duration::format;
        match self {
            BudgetProblem::Count { got } => write!(
                f,
                "must be between {} and {}, got {got}",
                IN_FLIGHT_RANGE.start(),
                IN_FLIGHT_RANGE.end()
            ),
            BudgetProblem::LargerThanMax { max_in_flight, got } => write!(
                f,
                "is a share of max_in_flight ({max_in_flight}), so it cannot be larger; got {got}"
            ),
            BudgetProblem::Timeout { got } => write!(
                f,
                "must be between {} and {}, got {}",
                format(REQUEST_TIMEOUT_RANGE.0),
                format(REQUEST_TIMEOUT_RANGE.1),
                format(*got)
            ),
        }
    }
}

impl Budgets {
    /// Checks each budget, in field order, and returns the first refusal.
    /// Counts are taken as any integer so an error repeats them as given.
    pub fn new(
        max_in_flight: i64,
        anonymous_in_flight: i64,
        ops_in_flight: i64,
        request_timeout: Duration,
    ) -> Result<Budgets, BudgetError> {
        let max_in_flight = Self::check_count("max_in_flight", max_in_flight)?;
        let anonymous_in_flight = Self::check_anonymous(anonymous_in_flight, max_in_flight)?;
        Ok(Budgets {
            max_in_flight,
            anonymous_in_flight,
            ops_in_flight: Self::check_count("ops_in_flight", ops_in_flight)?,
            request_timeout: Self::check_request_timeout(request_timeout)?,
        })
    }

    /// One in-flight budget alone; `field` names which.
    pub fn check_count(field: &'static str, got: i64) -> Result<u32, BudgetError> {
        u32::try_from(got)
            .ok()
            .filter(|n| IN_FLIGHT_RANGE.contains(&i64::from(*n)))
            .ok_or(BudgetError {
                field,
                problem: BudgetProblem::Count { got },
            })
    }

    /// `anonymous_in_flight` alone: a count, and no more than `max_in_flight`.
    pub fn check_anonymous(got: i64, max_in_flight: u32) -> Result<u32, BudgetError> {
        let n = Self::check_count("anonymous_in_flight", got)?;
        if n > max_in_flight {
            return Err(BudgetError {
                field: "anonymous_in_flight",
                problem: BudgetProblem::LargerThanMax { max_in_flight, got: n },
            });
        }
        Ok(n)
    }

    /// `request_timeout` alone.
    pub fn check_request_timeout(got: Duration) -> Result<Duration, BudgetError> {
        if got < REQUEST_TIMEOUT_RANGE.0 || got > REQUEST_TIMEOUT_RANGE.1 {
            return Err(BudgetError {
                field: "request_timeout",
                problem: BudgetProblem::Timeout { got },
            });
        }
        Ok(got)
    }
}

/// A request's admission class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Ops,
    Anonymous,
    Standard,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ops => "ops",
            Class::Anonymous => "anonymous",
            Class::Standard => "standard",
        }
    }

    /// The class of a request, from its method and path.
    pub fn of(method: &Method, path: &str) -> Class {
        if matches!(path, "/healthz" | "/readyz" | "/metrics") {
            return Class::Ops;
        }
        if method != Method::POST {
            return Class::Standard;
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            ["api", "v1", "login" | "recovery"]
            | ["api", "v1", "invitations" | "recovery", "redeem"]
            | ["invite" | "recover", _]
            | ["api", "v1", "login" | "step-up" | "recovery", _, _, "send"] => Class::Anonymous,
            _ => Class::Standard,
        }
    }
}

/// The semaphores behind the budgets, shared by every request.
#[derive(Debug)]
pub struct Admission {
    all: Arc<Semaphore>,
    anonymous: Arc<Semaphore>,
    ops: Arc<Semaphore>,
    request_timeout: Duration,
}

/// The permits of an admitted request; dropping them frees its place.
#[derive(Debug)]
pub struct Admitted {
    _class: Option<OwnedSemaphorePermit>,
    _all: Option<OwnedSemaphorePermit>,
}

fn semaphore(n: u32) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(usize::try_from(n.max(1)).unwrap_or(1)))
}

impl Admission {
    pub fn new(b: &Budgets) -> Self {
        Self {
            all: semaphore(b.max_in_flight),
            anonymous: semaphore(b.anonymous_in_flight.min(b.max_in_flight)),
            ops: semaphore(b.ops_in_flight),
            request_timeout: b.request_timeout,
        }
    }

    /// The permits a request of `class` needs, or `None` at once when a
    /// budget is full.
    pub fn try_admit(&self, class: Class) -> Option<Admitted> {
        match class {
            Class::Ops => Some(Admitted {
                _class: Some(self.ops.clone().try_acquire_owned().ok()?),
                _all: None,
            }),
            Class::Anonymous => {
                // The share first: a full share never takes a global permit.
                let share = self.anonymous.clone().try_acquire_owned().ok()?;
                let all = self.all.clone().try_acquire_owned().ok()?;
                Some(Admitted {
                    _class: Some(share),
                    _all: Some(all),
                })
            }
            Class::Standard => Some(Admitted {
                _class: None,
                _all: Some(self.all.clone().try_acquire_owned().ok()?),
            }),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}

/// The middleware: admit or shed, then run the request under its deadline.
pub async fn admit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let class = Class::of(req.method(), req.uri().path());
    let Some(permits) = state.admission.try_admit(class) else {
        state.app.metrics.shed(class.as_str(), "in_flight");
        return crate::error::refusal(
            ErrorCode::Overloaded,
            "the server is at capacity; try again in a moment",
            OVERLOADED_RETRY_AFTER_SECS,
        );
    };
    let deadline = state.admission.request_timeout;
    let result = tokio::time::timeout(deadline, next.run(req)).await;
    drop(permits);
    match result {
        Ok(resp) => resp,
        Err(_) => {
            state.app.metrics.shed(class.as_str(), "deadline");
            tracing::warn!(
                class = class.as_str(),
                timeout_ms = deadline.as_millis() as u64,
                "request cancelled at its deadline; its unit of work was rolled back"
            );
            crate::error::refusal(
                ErrorCode::DeadlineExceeded,
                "the request took too long and was cancelled; try again shortly",
                DEADLINE_RETRY_AFTER_SECS,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_checked_in_field_order_and_the_anonymous_share_fits_inside() {
        let d = Budgets::default();
        assert_eq!(Budgets::new(256, 64, 16, Duration::from_secs(10)), Ok(d));
        let refusal = |r: Result<Budgets, BudgetError>| r.map_err(|e| e.to_string()).unwrap_err();
        let t = Duration::from_secs(10);
        assert_eq!(
            refusal(Budgets::new(0, 1, 1, t)),
            "max_in_flight: must be between 1 and 100000, got 0"
        );
        assert_eq!(
            refusal(Budgets::new(4, 5, 1, t)),
            "anonymous_in_flight: is a share of max_in_flight (4), so it cannot be larger; got 5"
        );
        assert_eq!(
            refusal(Budgets::new(4, 4, -1, t)),
            "ops_in_flight: must be between 1 and 100000, got -1"
        );
        assert_eq!(
            refusal(Budgets::new(4, 4, 1, Duration::from_secs(3600))),
            "request_timeout: must be between 1s and 5m, got 1h"
        );
    }

    #[test]
    fn anonymous_starts_ops_and_the_rest() {
        let post = Method::POST;
        for path in [
            "/api/v1/login",
            "/api/v1/login/0b6c/email_otp/send",
            "/api/v1/step-up/0b6c/sms_otp/send",
            "/api/v1/invitations/redeem",
            "/invite/sgi_x",
            "/api/v1/recovery",
            "/api/v1/recovery/redeem",
            "/api/v1/recovery/0b6c/email_otp/send",
        ] {
            assert_eq!(Class::of(&post, path), Class::Anonymous, "{path}");
        }
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert_eq!(Class::of(&Method::GET, path), Class::Ops, "{path}");
        }
        for (m, path) in [
            (&post, "/api/v1/login/0b6c/passkey"),
            (&post, "/api/v1/login/0b6c/email_otp"),
            (&post, "/api/v1/step-up"),
            (&post, "/api/v1/credentials/passkey/finish"),
            (&post, "/login/magic/sgm_x"),
            (&Method::GET, "/api/v1/session"),
            (&Method::GET, "/invite/sgi_x"),
            (&Method::GET, "/api/v1/login"),
        ] {
            assert_eq!(Class::of(m, path), Class::Standard, "{m} {path}");
        }
    }

    #[test]
    fn a_full_share_sheds_anonymous_starts_but_not_the_rest() {
        let a = Admission::new(&Budgets {
            max_in_flight: 3,
            anonymous_in_flight: 1,
            ops_in_flight: 1,
            request_timeout: Duration::from_secs(1),
        });
        let anon = a.try_admit(Class::Anonymous).unwrap();
        assert!(a.try_admit(Class::Anonymous).is_none(), "the share is full");
        let s1 = a.try_admit(Class::Standard).unwrap();
        let s2 = a.try_admit(Class::Standard).unwrap();
        assert!(a.try_admit(Class::Standard).is_none(), "max_in_flight is full");
        let ops = a.try_admit(Class::Ops).unwrap();
        assert!(a.try_admit(Class::Ops).is_none());
        drop((s1, ops));
        assert!(a.try_admit(Class::Ops).is_some());
        assert!(
            a.try_admit(Class::Anonymous).is_none(),
            "the share is still held, even with global room"
        );
        drop(anon);
        assert!(a.try_admit(Class::Anonymous).is_some());
        drop(s2);
    }
}
