use signet_core::clock::Timestamp;
use signet_core::flow::{Flow, FlowId};
use signet_core::store::{FlowLookup, FlowStore, Refusal, StoreError, StoreResult};
use signet_core::unit_of_work::FlowWrites;

use crate::rows::{flow_columns, FlowRow};

/// A row of [`FlowStore::flow_or_finished`]: a flow, or (`finished` = 1)
/// the mark of a finished one.
#[derive(sqlx::FromRow)]
struct FlowLookupRow {
    #[sqlx(flatten)]
    flow: FlowRow,
    finished: i64,
}
use crate::tx::{with_conn, with_conn_sql, write_op, Conn, SqlTx};
use crate::{backend, conflict_as, with_db, SqlStore};

fn state_json(flow: &Flow) -> StoreResult<String> {
    serde_json::to_string(&flow.state).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait::async_trait]
impl FlowStore for SqlStore {
    async fn insert_flow(&self, flow: &Flow) -> StoreResult<()> {
        write_op!(self, |c| insert(c, flow).await)
    }

    async fn flow(&self, id: FlowId, now: Timestamp) -> StoreResult<Option<Flow>> {
        let row: Option<FlowRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                flow_columns!(),
                " FROM flows WHERE id = $1 AND expires_at > $2"
            ))
            .bind(id.0.to_string())
            .bind(now.as_millis())
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        row.map(Flow::try_from).transpose()
    }

    async fn is_finished(&self, id: FlowId) -> StoreResult<bool> {
        // COUNT(*) is a 64-bit integer on both engines (a bare `1` is a
        // 32-bit one on PostgreSQL).
        let (n,): (i64,) = with_db!(read(self), |pool| {
            sqlx::query_as("SELECT COUNT(*) FROM finished_flows WHERE id = $1")
                .bind(id.0.to_string())
                .fetch_one(pool)
                .await
                .map_err(backend)?
        });
        Ok(n > 0)
    }

    async fn flow_or_finished(&self, id: FlowId, now: Timestamp) -> StoreResult<FlowLookup> {
        // The live copy, if any, and the finished mark, if any, as rows of
        // one shape (the mark's flow columns are placeholders it never
        // reads). `finish_flow` deletes the copy as it writes the mark, so
        // at most one of them exists.
        let rows: Vec<FlowLookupRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                flow_columns!(),
                ", CAST(0 AS BIGINT) AS finished FROM flows WHERE id = $1 AND expires_at > $2 \
                 UNION ALL SELECT id, CAST('' AS TEXT), CAST('' AS TEXT), CAST(0 AS BIGINT), \
                 CAST(NULL AS BYTEA), CAST(0 AS BIGINT), expires_at, CAST(1 AS BIGINT) \
                 FROM finished_flows WHERE id = $1"
            ))
            .bind(id.0.to_string())
            .bind(now.as_millis())
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        let mut finished = false;
        for row in rows {
            if row.finished == 0 {
                return Ok(FlowLookup::Stored(Box::new(Flow::try_from(row.flow)?)));
            }
            finished = true;
        }
        Ok(if finished {
            FlowLookup::Finished
        } else {
            FlowLookup::Absent
        })
    }

    async fn update_flow(&self, flow: &Flow, now: Timestamp) -> StoreResult<bool> {
        write_op!(self, |c| update(c, flow, now).await)
    }

    async fn purge_expired_flows(&self, now: Timestamp) -> StoreResult<u64> {
        // A finished flow's id is kept until its flow would have expired:
        // after that its handle is refused for its age anyway.
        let mut writer = self.writer().await?;
        Ok(with_conn!(writer.conn(), |c| {
            let flows = sqlx::query("DELETE FROM flows WHERE expires_at <= $1")
                .bind(now.as_millis())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected();
            let finished = sqlx::query("DELETE FROM finished_flows WHERE expires_at <= $1")
                .bind(now.as_millis())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected();
            // OIDC authorization requests wait for a login flow: they go
            // with the flows (ADR 0022).
            let requests = sqlx::query("DELETE FROM oidc_requests WHERE expires_at <= $1")
                .bind(now.as_millis())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected();
            flows + finished + requests
        }))
    }
}

async fn insert(conn: Conn<'_>, flow: &Flow) -> StoreResult<()> {
    let state = state_json(flow)?;
    with_conn!(conn, |c| {
        sqlx::query(concat!(
            "INSERT INTO flows (",
            flow_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(flow.id.0.to_string())
        .bind(flow.kind.as_str())
        .bind(&state)
        .bind(flow.version)
        .bind(flow.binding.as_ref().map(|b| b.as_bytes().to_vec()))
        .bind(flow.created_at.as_millis())
        .bind(flow.expires_at.as_millis())
        .execute(&mut *c)
        .await
        .map_err(conflict_as(signet_core::ErrorCode::FlowConflict))?;
    });
    Ok(())
}

async fn update(conn: Conn<'_>, flow: &Flow, now: Timestamp) -> StoreResult<bool> {
    let state = state_json(flow)?;
    let n = with_conn!(conn, |c| {
        sqlx::query(
            "UPDATE flows SET state = $1, version = version + 1, expires_at = $5 \
             WHERE id = $2 AND version = $3 AND expires_at > $4",
        )
        .bind(&state)
        .bind(flow.id.0.to_string())
        .bind(flow.version)
        .bind(now.as_millis())
        .bind(flow.expires_at.as_millis())
        .execute(&mut *c)
        .await
        .map_err(backend)?
        .rows_affected()
    });
    Ok(n == 1)
}

/// [`FlowWrites::finish_flow`] on PostgreSQL, the delete as a
/// data-modifying CTE; the insert lands (one row) only for the first.
macro_rules! finish_postgres {
    () => {
        "WITH gone AS (DELETE FROM flows WHERE id = $1) \
         INSERT INTO finished_flows (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING"
    };
}

#[async_trait::async_trait]
impl FlowWrites for SqlTx {
    async fn insert_flow(&mut self, flow: &Flow) -> StoreResult<()> {
        let r = insert(self.conn().await?, flow).await;
        self.observe(r)
    }

    async fn finish_flow(&mut self, id: FlowId, expires_at: Timestamp) -> StoreResult<bool> {
        // One call on either engine: the id recorded as finished (the
        // insert that lands is the single winner) and the stored copy, if
        // any, deleted. SQLite runs the two statements of one query in
        // order; PostgreSQL takes the delete as a data-modifying CTE.
        let r = async {
            let won: Option<(String,)> = with_conn_sql!(self.conn().await?,
                sqlite: "DELETE FROM flows WHERE id = $1; \
                         INSERT INTO finished_flows (id, expires_at) VALUES ($1, $2) \
                         ON CONFLICT (id) DO NOTHING RETURNING id",
                postgres: concat!(finish_postgres!(), " RETURNING id"),
                |c, sql| sqlx::query_as(sql)
                    .bind(id.0.to_string())
                    .bind(expires_at.as_millis())
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(backend)?
            );
            Ok(won.is_some())
        }
        .await;
        self.observe(r)
    }

    /// On SQLite the completion waits for the unit's next call (usually the
    /// one with its session and audit record), checked there by SQLite
    /// itself: a lost race refuses the unit at that call (ADR 0035).
    async fn finish_flow_or_refuse(&mut self, id: FlowId, expires_at: Timestamp) -> StoreResult<()> {
        let values = vec![id.0.to_string().into(), expires_at.as_millis().into()];
        self.write_checked(Refusal::FlowFinished, FINISH_POSTGRES, FINISH_CHECKED, values)
            .await
    }

    async fn update_flow(&mut self, flow: &Flow, now: Timestamp) -> StoreResult<bool> {
        let r = update(self.conn().await?, flow, now).await;
        self.observe(r)
    }
}

/// [`finish_postgres!`] for a checked write: the insert's row count (1, or
/// 0 when the flow was finished already) decides.
const FINISH_POSTGRES: &str = finish_postgres!();

/// [`FlowWrites::finish_flow`]'s SQLite text, checked: refused as
/// `flow_finished` unless the mark landed.
const FINISH_CHECKED: &str = concat!(
    "DELETE FROM flows WHERE id = $1; ",
    "INSERT INTO finished_flows (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING; ",
    crate::refusals::expect_one!("flow_finished")
);
