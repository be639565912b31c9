//! Rate-limit windows and consecutive-failure runs.
//!
//! Each increment is a single `INSERT ... ON CONFLICT (bucket) DO UPDATE ...
//! RETURNING`, which SQLite (3.35+) and PostgreSQL both execute atomically:
//! two nodes hitting the same bucket at once get two different counts, never
//! the same one twice. In the `DO UPDATE` branch, bare column names refer to
//! the row as it was before the statement, on both engines.

use std::time::Duration;

use signet_core::clock::Timestamp;
use signet_core::store::{Failures, StoreError, StoreResult, ThrottleStore, WindowCount};
use signet_core::unit_of_work::ThrottleWrites;

use crate::tx::{with_conn, write_op, Conn, SqlTx};
use crate::{backend, with_db, SqlStore};

const HIT: &str = "INSERT INTO throttle_windows (bucket, window_start, hits) VALUES ($1, $2, 1) \
     ON CONFLICT (bucket) DO UPDATE SET \
       hits = CASE WHEN throttle_windows.window_start <= $3 THEN 1 ELSE throttle_windows.hits + 1 END, \
       window_start = CASE WHEN throttle_windows.window_start <= $3 THEN $2 ELSE throttle_windows.window_start END \
     RETURNING window_start, hits";

const FAIL: &str = "INSERT INTO throttle_failures (bucket, failures, last_at) VALUES ($1, 1, $2) \
     ON CONFLICT (bucket) DO UPDATE SET failures = throttle_failures.failures + 1, last_at = $2 \
     RETURNING failures, last_at";

const FAILURES: &str = "SELECT failures, last_at FROM throttle_failures WHERE bucket = $1";

const END_RUN: &str = "DELETE FROM throttle_failures WHERE bucket = $1 RETURNING failures, last_at";

fn count(n: i64) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("throttle count {n} out of range")))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl ThrottleStore for SqlStore {
    async fn hit(&self, key: &str, now: Timestamp, window: Duration) -> StoreResult<WindowCount> {
        write_op!(self, |c| hit(c, key, now, window).await)
    }

    async fn record_failure(&self, key: &str, now: Timestamp) -> StoreResult<Failures> {
        write_op!(self, |c| record_failure(c, key, now).await)
    }

    async fn failures(&self, key: &str) -> StoreResult<Option<Failures>> {
        let row: Option<(i64, i64)> = with_db!(read(self), |pool| {
            sqlx::query_as(FAILURES)
                .bind(key)
                .fetch_optional(pool)
                .await
                .map_err(backend)?
        });
        failures_of(row)
    }

    async fn swap_failures(&self, key: &str, expected: Option<Failures>, new: Failures) -> StoreResult<bool> {
        write_op!(self, |c| swap_failures(c, key, expected, new).await)
    }

    async fn clear_failures(&self, key: &str) -> StoreResult<()> {
        write_op!(self, |c| clear_failures(c, key).await)
    }

    async fn purge_throttles(&self, before: Timestamp) -> StoreResult<u64> {
        // Two independent autocommit deletes: a purge half done is still a
        // correct state, so it needs no transaction.
        let mut writer = self.writer().await?;
        Ok(with_conn!(writer.conn(), |c| {
            let windows = sqlx::query("DELETE FROM throttle_windows WHERE window_start < $1")
                .bind(before.as_millis())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected();
            let runs = sqlx::query("DELETE FROM throttle_failures WHERE last_at < $1")
                .bind(before.as_millis())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected();
            windows + runs
        }))
    }
}

async fn hit(conn: Conn<'_>, key: &str, now: Timestamp, window: Duration) -> StoreResult<WindowCount> {
    let stale_at_or_before = now.as_millis().saturating_sub(millis(window));
    let (start, hits): (i64, i64) = with_conn!(conn, |c| {
        sqlx::query_as(HIT)
            .bind(key)
            .bind(now.as_millis())
            .bind(stale_at_or_before)
            .fetch_one(&mut *c)
            .await
            .map_err(backend)?
    });
    Ok(WindowCount {
        window_start: Timestamp::from_millis(start),
        hits: count(hits)?,
    })
}

fn failures_of(row: Option<(i64, i64)>) -> StoreResult<Option<Failures>> {
    row.map(one).transpose()
}

async fn record_failure(conn: Conn<'_>, key: &str, now: Timestamp) -> StoreResult<Failures> {
    let row: (i64, i64) = with_conn!(conn, |c| {
        sqlx::query_as(FAIL)
            .bind(key)
            .bind(now.as_millis())
            .fetch_one(&mut *c)
            .await
            .map_err(backend)?
    });
    one(row)
}

async fn read_failures(conn: Conn<'_>, key: &str) -> StoreResult<Option<Failures>> {
    let row: Option<(i64, i64)> = with_conn!(conn, |c| {
        sqlx::query_as(FAILURES)
            .bind(key)
            .fetch_optional(&mut *c)
            .await
            .map_err(backend)?
    });
    failures_of(row)
}

async fn swap_failures(conn: Conn<'_>, key: &str, expected: Option<Failures>, new: Failures) -> StoreResult<bool> {
    let swapped = with_conn!(conn, |c| {
        match expected {
            None => sqlx::query(
                "INSERT INTO throttle_failures (bucket, failures, last_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (bucket) DO NOTHING",
            )
            .bind(key)
            .bind(i64::from(new.count))
            .bind(new.last_at.as_millis())
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected(),
            Some(old) => sqlx::query(
                "UPDATE throttle_failures SET failures = $1, last_at = $2 \
                 WHERE bucket = $3 AND failures = $4 AND last_at = $5",
            )
            .bind(i64::from(new.count))
            .bind(new.last_at.as_millis())
            .bind(key)
            .bind(i64::from(old.count))
            .bind(old.last_at.as_millis())
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected(),
        }
    });
    Ok(swapped == 1)
}

async fn clear_failures(conn: Conn<'_>, key: &str) -> StoreResult<()> {
    with_conn!(conn, |c| {
        sqlx::query("DELETE FROM throttle_failures WHERE bucket = $1")
            .bind(key)
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected()
    });
    Ok(())
}

async fn end_run_and_count(
    conn: Conn<'_>,
    run: &str,
    attempt: &str,
    now: Timestamp,
) -> StoreResult<(Option<Failures>, Failures)> {
    match conn {
        // One call on the writer: [`END_RUN`] for `$1`, then [`FAIL`] for
        // `$2` at `$3`. The rows come back in statement order, so two rows
        // mean there was a run.
        Conn::Sqlite(c) => {
            let rows: Vec<(i64, i64)> = sqlx::query_as(crate::deferred::joined(
                [END_RUN, FAIL].into_iter(),
                crate::deferred::Then::Nothing,
            ))
            .bind(run)
            .bind(attempt)
            .bind(now.as_millis())
            .fetch_all(&mut *c)
            .await
            .map_err(backend)?;
            match rows.as_slice() {
                [counted] => Ok((None, one(*counted)?)),
                [ended, counted] => Ok((Some(one(*ended)?), one(*counted)?)),
                _ => Err(StoreError::Corrupt(format!(
                    "ending a run and counting an attempt returned {} rows",
                    rows.len()
                ))),
            }
        }
        // Two statements in this order: the account's row is locked first,
        // as by every other code path (a data-modifying CTE runs its parts
        // in no set order).
        Conn::Postgres(c) => {
            let ended: Option<(i64, i64)> = sqlx::query_as(END_RUN)
                .bind(run)
                .fetch_optional(&mut *c)
                .await
                .map_err(backend)?;
            let ended = failures_of(ended)?;
            Ok((ended, record_failure(Conn::Postgres(c), attempt, now).await?))
        }
    }
}

fn one((failures, last): (i64, i64)) -> StoreResult<Failures> {
    Ok(Failures {
        count: count(failures)?,
        last_at: Timestamp::from_millis(last),
    })
}

#[async_trait::async_trait]
impl ThrottleWrites for SqlTx {
    async fn hit(&mut self, key: &str, now: Timestamp, window: Duration) -> StoreResult<WindowCount> {
        let r = hit(self.conn().await?, key, now, window).await;
        self.observe(r)
    }

    async fn record_failure(&mut self, key: &str, now: Timestamp) -> StoreResult<Failures> {
        let r = record_failure(self.conn().await?, key, now).await;
        self.observe(r)
    }

    async fn failures(&mut self, key: &str) -> StoreResult<Option<Failures>> {
        let r = read_failures(self.conn().await?, key).await;
        self.observe(r)
    }

    async fn swap_failures(&mut self, key: &str, expected: Option<Failures>, new: Failures) -> StoreResult<bool> {
        let r = swap_failures(self.conn().await?, key, expected, new).await;
        self.observe(r)
    }

    async fn clear_failures(&mut self, key: &str) -> StoreResult<()> {
        let r = clear_failures(self.conn().await?, key).await;
        self.observe(r)
    }

    async fn end_run_and_count(
        &mut self,
        run: &str,
        attempt: &str,
        now: Timestamp,
    ) -> StoreResult<(Option<Failures>, Failures)> {
        let r = end_run_and_count(self.conn().await?, run, attempt, now).await;
        self.observe(r)
    }
}
