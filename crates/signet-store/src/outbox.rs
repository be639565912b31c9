//! The durable message outbox. Claiming is a conditional `UPDATE` that sets
//! a lease (an end and a holder's token), so two workers (on one node or
//! several) never take the same message at the same time; an expired lease
//! (a worker that died mid-send) makes the message claimable again, which
//! gives at-least-once delivery. Renewing a lease and recording an outcome
//! are conditional on the token, so a worker that lost its lease can never
//! overwrite what the new holder records (ADR 0012).
//!
//! The claim is the one engine-specific statement here: PostgreSQL locks the
//! candidate rows with `FOR UPDATE SKIP LOCKED`, so concurrent claims on
//! several nodes pass each other instead of queueing on the same rows;
//! SQLite's single writer already runs claims one after another. The
//! conformance suite holds both to the same behaviour.
//!
//! Every write here is a `write_op!`: on SQLite a unit of work of one
//! statement, so a worker's claim, lease renewal and record share a group's
//! `COMMIT` and fsync with the units queued beside them (ADR 0015) instead
//! of each paying its own behind the single writer.

use signet_core::clock::Timestamp;
use signet_core::outbox::{Lease, Message, OutboxDepth, EXPIRED_ERROR};
use signet_core::store::{OutboxStore, StoreResult};
use signet_core::unit_of_work::OutboxWrites;
use uuid::Uuid;

use crate::rows::{convert_all, message_columns, MessageRow};
use crate::tx::{with_conn, write_op, Conn, SqlTx};
use crate::{backend, with_db, SqlStore};

/// The claim's candidates, shared by both engines' statements.
macro_rules! due_candidates {
    () => {
        "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $2 \
         AND (lease_until IS NULL OR lease_until <= $2) \
         ORDER BY next_attempt_at LIMIT $3"
    };
}

/// The claim itself. The outer WHERE repeats the candidates' conditions:
/// under PostgreSQL's READ COMMITTED a row another worker leased meanwhile
/// is re-checked against them and skipped, so each message has one holder.
macro_rules! claim {
    ($candidates:expr) => {
        concat!(
            "UPDATE outbox SET lease_until = $1, lease_owner = $4, attempts = attempts + 1 \
             WHERE id IN (",
            $candidates,
            ") AND status = 'pending' AND (lease_until IS NULL OR lease_until <= $2) \
             RETURNING ",
            message_columns!()
        )
    };
}

/// PostgreSQL's claim: the candidates locked once (`FOR UPDATE SKIP
/// LOCKED` in a materialized CTE, so at most `$3` of them), then leased
/// with the same re-check as [`claim!`].
const PG_CLAIM: &str = concat!(
    "WITH candidates AS MATERIALIZED (SELECT id AS candidate_id FROM outbox \
     WHERE status = 'pending' AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
     ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
     UPDATE outbox SET lease_until = $1, lease_owner = $4, attempts = attempts + 1 \
     FROM candidates WHERE outbox.id = candidates.candidate_id AND status = 'pending' \
     AND (lease_until IS NULL OR lease_until <= $2) RETURNING ",
    message_columns!()
);

#[async_trait::async_trait]
impl OutboxStore for SqlStore {
    async fn enqueue_message(&self, m: &Message) -> StoreResult<()> {
        write_op!(self, |c| enqueue(c, m, None).await)
    }

    async fn renew_message_lease(&self, id: Uuid, lease: Lease) -> StoreResult<bool> {
        write_op!(self, |c| renew(c, id, lease).await)
    }

    async fn recent_messages(&self, limit: u32) -> StoreResult<Vec<Message>> {
        let rows: Vec<MessageRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                message_columns!(),
                " FROM outbox ORDER BY created_at DESC, id LIMIT $1"
            ))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        convert_all(rows)
    }

    async fn outbox_depth(&self) -> StoreResult<OutboxDepth> {
        // Both counts and the oldest from the `(status, next_attempt_at)`
        // index's range of the two undelivered statuses: sent messages,
        // most of the table, are not visited.
        let (pending, dead, oldest): (i64, i64, Option<i64>) = with_db!(read(self), |pool| {
            sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0), \
                        COALESCE(SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END), 0), \
                        MIN(CASE WHEN status = 'pending' THEN created_at END) \
                 FROM outbox WHERE status IN ('pending', 'dead')",
            )
            .fetch_one(pool)
            .await
            .map_err(backend)?
        });
        Ok(OutboxDepth {
            pending: u64::try_from(pending).unwrap_or(0),
            dead: u64::try_from(dead).unwrap_or(0),
            oldest_pending_at: oldest.map(Timestamp::from_millis),
        })
    }

    async fn purge_finished_messages(&self, before: Timestamp) -> StoreResult<u64> {
        Ok(with_db!(write(self), |pool| {
            sqlx::query("DELETE FROM outbox WHERE status IN ('sent', 'dead') AND created_at < $1")
                .bind(before.as_millis())
                .execute(pool)
                .await
                .map_err(backend)?
                .rows_affected()
        }))
    }

    async fn message(&self, id: Uuid) -> StoreResult<Option<Message>> {
        let row: Option<MessageRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!("SELECT ", message_columns!(), " FROM outbox WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
                .map_err(backend)?
        });
        row.map(Message::try_from).transpose()
    }
}

/// Inserts `m`, held by `lease` if there is one (a message handed to the
/// local worker without a claim, [`OutboxWrites::enqueue_message`]).
async fn enqueue(conn: Conn<'_>, m: &Message, lease: Option<Lease>) -> StoreResult<()> {
    with_conn!(conn, |c| {
        sqlx::query(concat!(
            "INSERT INTO outbox (",
            message_columns!(),
            ", lease_until, lease_owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(m.id.to_string())
        .bind(m.channel.as_str())
        .bind(m.recipient.as_str())
        .bind(m.subject.as_str())
        .bind(m.text_body.as_deref())
        .bind(m.html_body.as_deref())
        .bind(m.template.as_str())
        .bind(m.status.as_str())
        .bind(m.attempts)
        .bind(m.created_at.as_millis())
        .bind(m.next_attempt_at.as_millis())
        .bind(m.sent_at.map(|t| t.as_millis()))
        .bind(m.last_error.as_deref())
        .bind(m.expires_at.map(|t| t.as_millis()))
        .bind(lease.map(|l| l.until.as_millis()))
        .bind(lease.map(|l| l.token.to_string()))
        .execute(&mut *c)
        .await
        .map_err(backend)?;
    });
    Ok(())
}

/// Leases up to `limit` due messages (see [`claim!`]).
async fn claim(conn: Conn<'_>, now: Timestamp, lease: Lease, limit: u32) -> StoreResult<Vec<Message>> {
    let token = lease.token.to_string();
    let rows: Vec<MessageRow> = match conn {
        Conn::Sqlite(c) => sqlx::query_as(claim!(due_candidates!()))
            .bind(lease.until.as_millis())
            .bind(now.as_millis())
            .bind(i64::from(limit))
            .bind(&token)
            .fetch_all(&mut *c)
            .await
            .map_err(backend)?,
        // Rows another claim has locked are skipped, not waited for. The
        // candidates are a materialized CTE: as `IN (subquery)` PostgreSQL
        // may run the subquery more than once and lease more than `limit`
        // (the conformance suite caught it taking 3 of 3 due for 2).
        Conn::Postgres(c) => sqlx::query_as(PG_CLAIM)
            .bind(lease.until.as_millis())
            .bind(now.as_millis())
            .bind(i64::from(limit))
            .bind(&token)
            .fetch_all(&mut *c)
            .await
            .map_err(backend)?,
    };
    convert_all(rows)
}

async fn renew(conn: Conn<'_>, id: Uuid, lease: Lease) -> StoreResult<bool> {
    Ok(with_conn!(conn, |c| {
        sqlx::query("UPDATE outbox SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'pending'")
            .bind(lease.until.as_millis())
            .bind(id.to_string())
            .bind(lease.token.to_string())
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected()
            == 1
    }))
}

async fn mark_sent(conn: Conn<'_>, id: Uuid, lease_token: Uuid, now: Timestamp, scrub: bool) -> StoreResult<bool> {
    Ok(with_conn!(conn, |c| {
        sqlx::query(
            "UPDATE outbox SET status = 'sent', sent_at = $1, lease_until = NULL, lease_owner = NULL, \
             last_error = NULL, \
             text_body = CASE WHEN $2 THEN NULL ELSE text_body END, \
             html_body = CASE WHEN $2 THEN NULL ELSE html_body END \
             WHERE id = $3 AND lease_owner = $4 AND status = 'pending'",
        )
        .bind(now.as_millis())
        .bind(scrub)
        .bind(id.to_string())
        .bind(lease_token.to_string())
        .execute(&mut *c)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1
    }))
}

async fn mark_failed(
    conn: Conn<'_>,
    id: Uuid,
    lease_token: Uuid,
    error: &str,
    next_attempt_at: Timestamp,
    dead: bool,
) -> StoreResult<bool> {
    let status = if dead { "dead" } else { "pending" };
    let error: String = error.chars().take(500).collect();
    Ok(with_conn!(conn, |c| {
        sqlx::query(
            "UPDATE outbox SET status = $1, last_error = $2, next_attempt_at = $3, lease_until = NULL, \
             lease_owner = NULL \
             WHERE id = $4 AND lease_owner = $5 AND status = 'pending'",
        )
        .bind(status)
        .bind(error)
        .bind(next_attempt_at.as_millis())
        .bind(id.to_string())
        .bind(lease_token.to_string())
        .execute(&mut *c)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1
    }))
}

#[async_trait::async_trait]
impl OutboxWrites for SqlTx {
    async fn enqueue_message(&mut self, m: &Message, lease: Option<Lease>) -> StoreResult<()> {
        let r = enqueue(self.conn().await?, m, lease).await;
        self.observe(r)?;
        self.queued_messages = true;
        Ok(())
    }

    async fn expire_message(&mut self, id: Uuid, lease_token: Uuid, now: Timestamp) -> StoreResult<bool> {
        let r = async {
            Ok(with_conn!(self.conn().await?, |c| {
                sqlx::query(
                    "UPDATE outbox SET status = 'dead', last_error = $1, next_attempt_at = $2, \
                     lease_until = NULL, lease_owner = NULL, text_body = NULL, html_body = NULL \
                     WHERE id = $3 AND lease_owner = $4 AND status = 'pending'",
                )
                .bind(EXPIRED_ERROR)
                .bind(now.as_millis())
                .bind(id.to_string())
                .bind(lease_token.to_string())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected()
                    == 1
            }))
        }
        .await;
        self.observe(r)
    }

    async fn claim_due_messages(&mut self, now: Timestamp, lease: Lease, limit: u32) -> StoreResult<Vec<Message>> {
        let r = claim(self.conn().await?, now, lease, limit).await;
        self.observe(r)
    }

    async fn mark_message_sent(
        &mut self,
        id: Uuid,
        lease_token: Uuid,
        now: Timestamp,
        scrub: bool,
    ) -> StoreResult<bool> {
        let r = mark_sent(self.conn().await?, id, lease_token, now, scrub).await;
        self.observe(r)
    }

    async fn mark_message_failed(
        &mut self,
        id: Uuid,
        lease_token: Uuid,
        error: &str,
        next_attempt_at: Timestamp,
        dead: bool,
    ) -> StoreResult<bool> {
        let r = mark_failed(self.conn().await?, id, lease_token, error, next_attempt_at, dead).await;
        self.observe(r)
    }

    async fn make_pending_messages_due(&mut self, now: Timestamp) -> StoreResult<u64> {
        let r = async {
            Ok(with_conn!(self.conn().await?, |c| {
                sqlx::query("UPDATE outbox SET next_attempt_at = $1 WHERE status = 'pending' AND next_attempt_at > $1")
                    .bind(now.as_millis())
                    .execute(&mut *c)
                    .await
                    .map_err(backend)?
                    .rows_affected()
            }))
        }
        .await;
        self.observe(r)
    }
}
