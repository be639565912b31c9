use signet_core::clock::Timestamp;
use signet_core::secret::TokenHash;
use signet_core::session::{Session, SessionId};
use signet_core::store::{SessionStore, StoreError, StoreResult};
use signet_core::unit_of_work::SessionWrites;
use signet_core::user::UserId;
use uuid::Uuid;

use crate::rows::{convert_all, session_columns, SessionRow};
use crate::tx::{with_conn, Conn, PendingSession, SqlTx};
use crate::{backend, with_db, SqlStore};

/// The INSERT of a new session.
pub(crate) const INSERT_SESSION: &str = concat!(
    "INSERT INTO sessions (",
    session_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
);

/// Binds a session's fields to [`INSERT_SESSION`] for either backend.
macro_rules! bind_session {
    ($q:expr, $s:expr, $amr:expr) => {
        $q.bind($s.id.0.to_string())
            .bind($s.user_id.0.to_string())
            .bind($s.token_hash.as_bytes().as_slice())
            .bind($s.aal.as_str())
            .bind($amr)
            .bind($s.phishing_resistant)
            .bind($s.auth_time.as_millis())
            .bind($s.created_at.as_millis())
            .bind($s.last_seen_at.as_millis())
            .bind(i64::try_from($s.idle_timeout.as_millis()).unwrap_or(i64::MAX))
            .bind($s.absolute_expires_at.as_millis())
            .bind($s.tier.as_str())
            .bind($s.scope.as_str())
            .bind($s.mode.as_str())
            .bind($s.ip.as_deref())
            .bind($s.device.as_str())
            .bind($s.credential_id.map(|c| c.to_string()))
            .bind($s.step_up_action.as_deref())
    };
}

pub(crate) use bind_session;

pub(crate) fn amr_json(s: &Session) -> StoreResult<String> {
    serde_json::to_string(&s.amr).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait::async_trait]
impl SessionStore for SqlStore {
    async fn session_by_token(&self, token: &TokenHash) -> StoreResult<Option<Session>> {
        let row: Option<SessionRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE token_hash = $1"
            ))
            .bind(token.as_bytes().as_slice())
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        row.map(Session::try_from).transpose()
    }

    async fn touch_session(&self, id: SessionId, now: Timestamp) -> StoreResult<()> {
        with_db!(write(self), |pool| {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $1")
                .bind(now.as_millis())
                .bind(id.0.to_string())
                .execute(pool)
                .await
                .map_err(backend)?;
        });
        Ok(())
    }

    async fn list_user_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<Session>> {
        let rows: Vec<SessionRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE user_id = $1 AND absolute_expires_at > $2 ORDER BY created_at DESC"
            ))
            .bind(user.0.to_string())
            .bind(now.as_millis())
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        let sessions: Vec<Session> = convert_all(rows)?;
        Ok(sessions.into_iter().filter(|s| s.is_live(now)).collect())
    }

    async fn user_session(&self, user: UserId, id: SessionId, now: Timestamp) -> StoreResult<Option<Session>> {
        let row: Option<SessionRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE id = $1 AND user_id = $2 AND absolute_expires_at > $3"
            ))
            .bind(id.0.to_string())
            .bind(user.0.to_string())
            .bind(now.as_millis())
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        Ok(row.map(Session::try_from).transpose()?.filter(|s| s.is_live(now)))
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        Ok(with_db!(write(self), |pool| {
            sqlx::query("DELETE FROM sessions WHERE absolute_expires_at <= $1 OR last_seen_at + idle_timeout_ms <= $1")
                .bind(now.as_millis())
                .execute(pool)
                .await
                .map_err(backend)?
                .rows_affected()
        }))
    }
}

/// Runs one `DELETE FROM sessions WHERE ...` with text parameters and
/// returns how many rows went.
async fn delete_where(conn: Conn<'_>, sql: &'static str, params: &[String]) -> StoreResult<u64> {
    Ok(with_conn!(conn, |c| {
        let mut q = sqlx::query(sql);
        for p in params {
            q = q.bind(p.as_str());
        }
        q.execute(&mut *c).await.map_err(backend)?.rows_affected()
    }))
}

/// Inserts a session now, on `conn`.
pub(crate) async fn insert_now(conn: Conn<'_>, pending: &PendingSession) -> StoreResult<()> {
    let (s, amr) = (&pending.session, &pending.amr);
    with_conn!(conn, |c| {
        bind_session!(sqlx::query(INSERT_SESSION), s, amr)
            .execute(&mut *c)
            .await
            .map_err(backend)?;
    });
    Ok(())
}

#[async_trait::async_trait]
impl SessionWrites for SqlTx {
    /// On SQLite the `INSERT` goes with the unit's next call on the writer
    /// ([`SqlTx::defer_session`]); on PostgreSQL it is made now.
    async fn insert_session(&mut self, s: &Session) -> StoreResult<()> {
        let pending = PendingSession {
            session: s.clone(),
            amr: amr_json(s)?,
        };
        if self.on_sqlite() {
            return self.defer_session(pending).await;
        }
        let r = insert_now(self.conn().await?, &pending).await;
        self.observe(r)
    }

    async fn delete_session(&mut self, id: SessionId) -> StoreResult<bool> {
        let r = delete_where(
            self.conn().await?,
            "DELETE FROM sessions WHERE id = $1",
            &[id.0.to_string()],
        )
        .await;
        self.observe(r).map(|n| n > 0)
    }

    async fn delete_user_session(&mut self, user: UserId, id: SessionId) -> StoreResult<bool> {
        let r = delete_where(
            self.conn().await?,
            "DELETE FROM sessions WHERE id = $1 AND user_id = $2",
            &[id.0.to_string(), user.0.to_string()],
        )
        .await;
        self.observe(r).map(|n| n > 0)
    }

    async fn delete_user_sessions(&mut self, user: UserId) -> StoreResult<u64> {
        let r = delete_where(
            self.conn().await?,
            "DELETE FROM sessions WHERE user_id = $1",
            &[user.0.to_string()],
        )
        .await;
        self.observe(r)
    }

    async fn delete_credential_sessions(&mut self, credential_id: Uuid) -> StoreResult<u64> {
        let r = delete_where(
            self.conn().await?,
            "DELETE FROM sessions WHERE credential_id = $1",
            &[credential_id.to_string()],
        )
        .await;
        self.observe(r)
    }
}
