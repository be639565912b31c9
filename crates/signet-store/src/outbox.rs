//! The durable message outbox. Claiming is a conditional `UPDATE` that sets
//! a lease, so two workers (on one node or several) never take the same
//! message at the same time; an expired lease (a worker that died mid-send)
//! makes the message claimable again, which gives at-least-once delivery.

use signet_core::clock::Timestamp;
use signet_core::outbox::Message;
use signet_core::store::{OutboxStore, StoreResult};
use signet_core::unit_of_work::OutboxWrites;
use uuid::Uuid;

use crate::rows::{convert_all, message_columns, MessageRow};
use crate::tx::{with_conn, Conn, SqlTx};
use crate::{backend, with_db, SqlStore};

#[async_trait::async_trait]
impl OutboxStore for SqlStore {
    async fn enqueue_message(&self, m: &Message) -> StoreResult<()> {
        enqueue(self.writer().await?.conn(), m).await
    }

    async fn claim_due_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        // The outer WHERE repeats the inner conditions: under PostgreSQL's
        // READ COMMITTED a row another worker leased meanwhile is re-checked
        // against them and skipped, so each message has one owner.
        let rows: Vec<MessageRow> = with_db!(write(self), |pool| {
            sqlx::query_as(concat!(
                "UPDATE outbox SET lease_until = $1, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $2 \
                              AND (lease_until IS NULL OR lease_until <= $2) \
                              ORDER BY next_attempt_at LIMIT $3) \
                   AND status = 'pending' AND (lease_until IS NULL OR lease_until <= $2) \
                 RETURNING ",
                message_columns!()
            ))
            .bind(lease_until.as_millis())
            .bind(now.as_millis())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        convert_all(rows)
    }

    async fn mark_message_sent(&self, id: Uuid, now: Timestamp, scrub: bool) -> StoreResult<()> {
        with_db!(write(self), |pool| {
            sqlx::query(
                "UPDATE outbox SET status = 'sent', sent_at = $1, lease_until = NULL, last_error = NULL, \
                 text_body = CASE WHEN $2 THEN NULL ELSE text_body END, \
                 html_body = CASE WHEN $2 THEN NULL ELSE html_body END \
                 WHERE id = $3",
            )
            .bind(now.as_millis())
            .bind(scrub)
            .bind(id.to_string())
            .execute(pool)
            .await
            .map_err(backend)?;
        });
        Ok(())
    }

    async fn mark_message_failed(
        &self,
        id: Uuid,
        error: &str,
        next_attempt_at: Timestamp,
        dead: bool,
    ) -> StoreResult<()> {
        let status = if dead { "dead" } else { "pending" };
        let error: String = error.chars().take(500).collect();
        with_db!(write(self), |pool| {
            sqlx::query(
                "UPDATE outbox SET status = $1, last_error = $2, next_attempt_at = $3, lease_until = NULL \
                 WHERE id = $4",
            )
            .bind(status)
            .bind(&error)
            .bind(next_attempt_at.as_millis())
            .bind(id.to_string())
            .execute(pool)
            .await
            .map_err(backend)?;
        });
        Ok(())
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

async fn enqueue(conn: Conn<'_>, m: &Message) -> StoreResult<()> {
    with_conn!(conn, |c| {
        sqlx::query(concat!(
            "INSERT INTO outbox (",
            message_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
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
        .execute(&mut *c)
        .await
        .map_err(backend)?;
    });
    Ok(())
}

#[async_trait::async_trait]
impl OutboxWrites for SqlTx {
    async fn enqueue_message(&mut self, m: &Message) -> StoreResult<()> {
        let r = enqueue(self.conn()?, m).await;
        self.observe(r)
    }
}
