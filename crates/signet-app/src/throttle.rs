//! Limits on sending codes and on guessing them.
//!
//! Three counters, all in [`ThrottleStore`] so they hold across nodes and
//! under concurrent requests (each increment is one atomic statement):
//!
//! - **Send limits**: a fixed window per address and per client IP
//!   (`[login]` settings; by default 3 sends per address and 30 per IP in 10
//!   minutes). The address key is the hash of the normalised identifier, so
//!   an unknown address is limited exactly like a real one and a 429 tells
//!   nobody whether the account exists.
//! - **Wrong codes per flow**: after [`FLOW_MAX_WRONG`] wrong codes the flow
//!   is deleted and a new sign-in is needed. A code has 10^6 values, so a
//!   flow gives a guesser at most 5 in 10^6.
//! - **Consecutive failures per account** (NIST SP 800-63B §5.2.2, "rate
//!   limiting"): the run spans flows and is never reset by sending a new
//!   code, only by a successful sign-in or by [`RUN_RESET`] without any
//!   failure. Each comparison is reserved on the run first, with a
//!   compare-and-swap ([`reserve_account_attempt`]), so parallel requests
//!   cannot slip through on one stale read. From [`BACKOFF_AFTER`] failures
//!   on, each attempt must wait an exponentially growing delay (capped at
//!   [`MAX_DELAY`]); at [`ACCOUNT_MAX_FAILURES`] (the 800-63B ceiling of
//!   100) email codes are refused until the run resets. Locking out is what NIST asks for; the
//!   backoff makes reaching the ceiling take about a day, so a stranger who
//!   knows the address cannot lock its owner out quickly.
//!
//! Keys are prefixed by purpose and never contain a raw address.

use signet_core::ErrorCode;
use std::time::Duration;

use signet_core::clock::Timestamp;
use signet_core::flow::FlowId;
use signet_core::store::{Failures, Store};
use signet_core::unit_of_work::Transaction;
use signet_core::{Error, Result};

use crate::EmailLogin;

/// Wrong codes that end a flow.
pub const FLOW_MAX_WRONG: u32 = 5;
/// Consecutive failures from which each attempt must wait.
pub const BACKOFF_AFTER: u32 = 10;
/// The longest wait between attempts during backoff.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// NIST SP 800-63B §5.2.2: no more than 100 consecutive failed attempts.
pub const ACCOUNT_MAX_FAILURES: u32 = 100;
/// A run with no failure for this long starts over.
pub const RUN_RESET: Duration = Duration::from_secs(24 * 3600);

fn secs_until(t: Timestamp, now: Timestamp) -> u64 {
    let ms = t.as_millis().saturating_sub(now.as_millis()).max(0);
    // Round up: "retry after 0 seconds" would invite an immediate retry.
    u64::try_from(ms).unwrap_or(0).div_ceil(1000).max(1)
}

/// Counts a send to `identifier_hash` from `ip` and refuses it (429) when
/// either window is over its limit. Both counters are always hit, so known
/// and unknown addresses do the same work. In the send's unit of work `tx`.
pub async fn check_send(
    tx: &mut dyn Transaction,
    limits: &EmailLogin,
    now: Timestamp,
    identifier_hash: &str,
    ip: Option<&str>,
) -> Result<()> {
    let window = limits.send_window;
    let mut retry_after = None;
    let addr = tx.hit(&format!("send:addr:{identifier_hash}"), now, window).await?;
    if addr.hits > limits.sends_per_address {
        retry_after = Some(secs_until(addr.window_start.plus(window), now));
    }
    if let Some(ip) = ip {
        let by_ip = tx.hit(&format!("send:ip:{ip}"), now, window).await?;
        if by_ip.hits > limits.sends_per_ip {
            let wait = secs_until(by_ip.window_start.plus(window), now);
            retry_after = Some(retry_after.map_or(wait, |w: u64| w.max(wait)));
        }
    }
    match retry_after {
        Some(retry_after_secs) => Err(Error::RateLimited { retry_after_secs }),
        None => Ok(()),
    }
}

/// How long the account must wait before its next attempt, given its run of
/// failures, or `None` if it may try now.
pub fn account_wait(run: Option<Failures>, now: Timestamp) -> Option<u64> {
    let run = run?;
    if now >= run.last_at.plus(RUN_RESET) {
        return None;
    }
    if run.count >= ACCOUNT_MAX_FAILURES {
        return Some(secs_until(run.last_at.plus(RUN_RESET), now));
    }
    if run.count < BACKOFF_AFTER {
        return None;
    }
    let exp = (run.count - BACKOFF_AFTER).min(20);
    let delay = Duration::from_secs(1u64 << exp).min(MAX_DELAY);
    let ready = run.last_at.plus(delay);
    (now < ready).then(|| secs_until(ready, now))
}

fn account_key(identifier_hash: &str) -> String {
    format!("fail:acct:{identifier_hash}")
}

fn flow_key(flow: FlowId) -> String {
    format!("fail:flow:{}", flow.0)
}

fn attempt_key(flow: FlowId) -> String {
    format!("attempt:flow:{}", flow.0)
}

/// Reserves one code comparison on `flow` before the code is compared: one
/// atomic increment, so however many requests arrive at once, no flow ever
/// compares more than [`FLOW_MAX_WRONG`] codes (a read-then-check would let
/// a parallel burst test many more). Past the limit the request is refused.
async fn reserve_attempt(tx: &mut dyn Transaction, now: Timestamp, flow: FlowId) -> Result<()> {
    let attempts = tx.record_failure(&attempt_key(flow), now).await?;
    flow_admits(attempts)
}

/// Refuses a comparison past the flow's limit, without ending the flow: a
/// comparison already in flight may be the right code and must still be
/// able to finish. Wrong codes end the flow as before.
fn flow_admits(attempts: Failures) -> Result<()> {
    if attempts.count > FLOW_MAX_WRONG {
        return Err(too_many_attempts());
    }
    Ok(())
}

/// Refuses (429) an attempt while the account's `run` says it must wait.
fn account_admits(run: Option<Failures>, now: Timestamp) -> Result<()> {
    match account_wait(run, now) {
        Some(retry_after_secs) => Err(Error::RateLimited { retry_after_secs }),
        None => Ok(()),
    }
}

/// `410 too_many_attempts`: the flow has had its comparisons.
pub fn too_many_attempts() -> Error {
    Error::gone(
        ErrorCode::TooManyAttempts,
        "too many wrong codes; start signing in again",
    )
}

/// Reserves one wrong code's comparison in `tx` (ADR 0033): on the
/// account's run (refused while it backs off), then on the flow (refused
/// past its limit). Every code path takes the two rows in this order (a
/// right code's too, [`admit_success`]), so on PostgreSQL a right and a
/// wrong code of one flow cannot deadlock. Returns the account's run with
/// this attempt.
pub async fn reserve_comparison(
    tx: &mut dyn Transaction,
    now: Timestamp,
    flow: FlowId,
    identifier_hash: &str,
) -> Result<Failures> {
    let account = reserve_account_attempt_in(tx, now, identifier_hash).await?;
    reserve_attempt(tx, now, flow).await?;
    Ok(account)
}

/// A right code, in the unit of work that redeems it: the account's run
/// ends and the comparison is counted on the flow, and the decision is
/// taken on the run as it was, as for any attempt ([`reserve_comparison`]:
/// refused while the account backs off, so during backoff exactly one
/// attempt, right or wrong, gets through per delay; refused past the
/// flow's limit). A refusal fails the unit, which puts the run and the
/// flow's count back: the code is not used. What is committed when it is
/// admitted is what a reservation and then a clear would leave (no run, one
/// more comparison on the flow), with the same row order, in one call on
/// SQLite's writer instead of four.
pub async fn admit_success(
    tx: &mut dyn Transaction,
    now: Timestamp,
    flow: FlowId,
    identifier_hash: &str,
) -> Result<()> {
    let (run, attempts) = tx
        .end_run_and_count(&account_key(identifier_hash), &attempt_key(flow), now)
        .await?;
    account_admits(run, now)?;
    flow_admits(attempts)
}

/// How often a reservation re-reads a run that changed under it before it
/// answers 429: each change means another attempt on the account won.
const RESERVE_TRIES: usize = 16;

/// Reserves one attempt on the account before a code is compared, and
/// refuses (429) while the account is backing off or locked. The attempt
/// counts as a failure from here on; a success clears the whole run.
///
/// The decision is taken on the run as read and written back with a
/// compare-and-swap ([`signet_core::store::ThrottleStore::swap_failures`]):
/// of concurrent attempts, only the one whose swap lands goes on, the others
/// re-read the run it left. So during backoff exactly one attempt gets
/// through per delay, and no burst, on any number of nodes, takes the run
/// past [`ACCOUNT_MAX_FAILURES`] (a read-then-increment let a parallel burst
/// through on the same stale read).
pub async fn reserve_account_attempt(store: &dyn Store, now: Timestamp, identifier_hash: &str) -> Result<Failures> {
    let mut tx = store.begin().await?;
    let reserved = reserve_account_attempt_in(&mut *tx, now, identifier_hash).await;
    tx.commit().await?;
    reserved
}

/// [`reserve_account_attempt`] in the caller's unit of work, so that the
/// reservation commits with what the attempt does next (the code's
/// consumption, see [`crate::code_attempts`]). On SQLite the unit holds the
/// one writer, so its compare-and-swap cannot lose; on PostgreSQL the swap's
/// row lock makes a concurrent reservation wait for this unit, then re-read.
pub async fn reserve_account_attempt_in(
    tx: &mut dyn Transaction,
    now: Timestamp,
    identifier_hash: &str,
) -> Result<Failures> {
    let key = account_key(identifier_hash);
    for _ in 0..RESERVE_TRIES {
        let run = tx.failures(&key).await?;
        account_admits(run, now)?;
        let next = match run {
            // A run that has gone quiet for RUN_RESET starts over here.
            Some(r) if now < r.last_at.plus(RUN_RESET) => Failures {
                count: r.count.saturating_add(1),
                last_at: now,
            },
            _ => Failures { count: 1, last_at: now },
        };
        if tx.swap_failures(&key, run, next).await? {
            return Ok(next);
        }
    }
    Err(Error::RateLimited { retry_after_secs: 1 })
}

/// What one wrong code did to the counters.
#[derive(Clone, Copy, Debug)]
pub struct WrongCode {
    /// Wrong codes in this flow so far.
    pub in_flow: u32,
    /// The account's run of consecutive failures.
    pub account: Failures,
}

impl WrongCode {
    pub fn kills_flow(&self) -> bool {
        self.in_flow >= FLOW_MAX_WRONG
    }

    /// True exactly once: on the failure that reaches the NIST ceiling.
    pub fn locks_account(&self) -> bool {
        self.account.count == ACCOUNT_MAX_FAILURES
    }
}

/// Counts a wrong code against the flow, in the unit of work `tx` that
/// reserved it. The account already counted it when the attempt was
/// reserved: `account` is that reservation.
pub async fn record_wrong(
    tx: &mut dyn Transaction,
    now: Timestamp,
    flow: FlowId,
    account: Failures,
) -> Result<WrongCode> {
    let in_flow = tx.record_failure(&flow_key(flow), now).await?.count;
    Ok(WrongCode { in_flow, account })
}

/// A successful sign-in ends the account's run of failures.
pub async fn clear_account(store: &dyn Store, identifier_hash: &str) -> Result<()> {
    store.clear_failures(&account_key(identifier_hash)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp::from_millis(1_800_000_000_000);

    fn run(count: u32, secs_ago: u64) -> Option<Failures> {
        Some(Failures {
            count,
            last_at: T.minus(Duration::from_secs(secs_ago)),
        })
    }

    #[test]
    fn a_few_failures_cost_nothing() {
        assert_eq!(account_wait(None, T), None);
        assert_eq!(account_wait(run(BACKOFF_AFTER - 1, 0), T), None);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(account_wait(run(BACKOFF_AFTER, 0), T), Some(1));
        assert_eq!(account_wait(run(BACKOFF_AFTER + 3, 0), T), Some(8));
        assert_eq!(account_wait(run(BACKOFF_AFTER + 3, 8), T), None, "waited long enough");
        assert_eq!(account_wait(run(BACKOFF_AFTER + 3, 5), T), Some(3));
        assert_eq!(account_wait(run(60, 0), T), Some(MAX_DELAY.as_secs()));
    }

    #[test]
    fn the_nist_ceiling_locks_until_the_run_resets() {
        assert_eq!(account_wait(run(ACCOUNT_MAX_FAILURES, 0), T), Some(RUN_RESET.as_secs()));
        assert_eq!(
            account_wait(run(ACCOUNT_MAX_FAILURES, 3600), T),
            Some(RUN_RESET.as_secs() - 3600)
        );
        assert_eq!(account_wait(run(ACCOUNT_MAX_FAILURES, RUN_RESET.as_secs()), T), None);
    }
}
