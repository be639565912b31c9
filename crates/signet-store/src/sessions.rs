use signet_core::clock::Timestamp;
use signet_core::secret::TokenHash;
use signet_core::session::{Session, SessionId};
use signet_core::store::{SessionStore, StoreError, StoreResult};
use signet_core::unit_of_work::SessionWrites;
use signet_core::user::{User, UserId};
use uuid::Uuid;

use crate::deferred::Deferred;
use crate::rows::{convert_all, owner_columns, session_columns, OwnerColumns, SessionRow};
use crate::tx::{in_tx, with_conn, Conn, SqlTx};
use crate::{backend, with_db, SqlStore};

/// The INSERT of a new session.
pub(crate) const INSERT_SESSION: &str = concat!(
    "INSERT INTO sessions (",
    session_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
);

/// A session joined with its user's columns (NULL if the account is gone).
#[derive(sqlx::FromRow)]
struct SessionUserRow {
    #[sqlx(flatten)]
    session: SessionRow,
    #[sqlx(flatten)]
    owner: OwnerColumns,
}

/// A new session's [`INSERT_SESSION`] with its values, for either engine
/// ([`crate::deferred`]).
pub(crate) fn insert_of(s: &Session) -> StoreResult<Deferred> {
    Ok(Deferred {
        sql: INSERT_SESSION,
        values: vec![
            s.id.0.to_string().into(),
            s.user_id.0.to_string().into(),
            s.token_hash.as_bytes().to_vec().into(),
            s.aal.as_str().into(),
            amr_json(s)?.into(),
            s.phishing_resistant.into(),
            s.auth_time.as_millis().into(),
            s.created_at.as_millis().into(),
            s.last_seen_at.as_millis().into(),
            i64::try_from(s.idle_timeout.as_millis()).unwrap_or(i64::MAX).into(),
            s.absolute_expires_at.as_millis().into(),
            s.tier.as_str().into(),
            s.scope.as_str().into(),
            s.mode.as_str().into(),
            s.ip.as_deref().into(),
            s.device.as_str().into(),
            s.credential_id.map(|c| c.to_string()).into(),
            s.step_up_action.as_deref().into(),
        ],
    })
}

pub(crate) fn amr_json(s: &Session) -> StoreResult<String> {
    serde_json::to_string(&s.amr).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Whether session `$s` is past its idle or absolute lifetime at the time
/// bound to `$now` (a placeholder such as `"$1"`): the SQL twin of
/// `Session::is_live`, negated.
macro_rules! timed_out {
    ($s:literal, $now:literal) => {
        concat!(
            "(",
            $s,
            ".absolute_expires_at <= ",
            $now,
            " OR ",
            $s,
            ".last_seen_at + ",
            $s,
            ".idle_timeout_ms <= ",
            $now,
            ")"
        )
    };
}
pub(crate) use timed_out;

/// Whether an OIDC client redeemed a code of session `$s` and has not been
/// told of its end yet (back-channel logout, ADR 0025).
macro_rules! unannounced_grant {
    ($s:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM oidc_codes c WHERE c.user_id = ",
            $s,
            ".user_id AND c.session_id = ",
            $s,
            ".id AND c.redeemed_at IS NOT NULL AND c.logged_out_at IS NULL)"
        )
    };
}

#[async_trait::async_trait]
impl SessionStore for SqlStore {
    async fn session_with_user_by_token(&self, token: &TokenHash) -> StoreResult<Option<(Session, Option<User>)>> {
        let row: Option<SessionUserRow> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT ",
                session_columns!("s."),
                ", ",
                owner_columns!(),
                " FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1"
            ))
            .bind(token.as_bytes().as_slice())
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        let Some(row) = row else {
            return Ok(None);
        };
        let user = row.owner.into_user(row.session.user_id.clone())?;
        Ok(Some((Session::try_from(row.session)?, user)))
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

    async fn timed_out_sessions_with_apps(
        &self,
        now: Timestamp,
        after: Option<SessionId>,
        limit: u32,
    ) -> StoreResult<Vec<(UserId, SessionId)>> {
        let rows: Vec<(String, String)> = with_db!(read(self), |pool| {
            sqlx::query_as(concat!(
                "SELECT s.user_id, s.id FROM sessions s WHERE ",
                timed_out!("s", "$1"),
                " AND s.id > $2 AND ",
                unannounced_grant!("s"),
                " ORDER BY s.id LIMIT $3"
            ))
            .bind(now.as_millis())
            .bind(after.map(|id| id.0.to_string()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        rows.into_iter()
            .map(|(user, id)| Ok((UserId(crate::rows::uuid(&user)?), SessionId(crate::rows::uuid(&id)?))))
            .collect()
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        Ok(with_db!(write(self), |pool| {
            sqlx::query(concat!(
                "DELETE FROM sessions WHERE ",
                timed_out!("sessions", "$1"),
                " AND NOT ",
                unannounced_grant!("sessions")
            ))
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

#[async_trait::async_trait]
impl SessionWrites for SqlTx {
    /// On SQLite the `INSERT` goes with the unit's next call on the writer
    /// ([`SqlTx::write_later`]); on PostgreSQL it is made now.
    async fn insert_session(&mut self, s: &Session) -> StoreResult<()> {
        self.write_later(insert_of(s)?).await
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

    async fn delete_credential_sessions(&mut self, user: UserId, credential_id: Uuid) -> StoreResult<Vec<SessionId>> {
        let ids: Vec<(String,)> = in_tx!(self, |c| {
            sqlx::query_as("DELETE FROM sessions WHERE user_id = $1 AND credential_id = $2 RETURNING id")
                .bind(user.0.to_string())
                .bind(credential_id.to_string())
                .fetch_all(&mut *c)
                .await
                .map_err(backend)?
        })?;
        ids.into_iter()
            .map(|(id,)| Ok(SessionId(crate::rows::uuid(&id)?)))
            .collect()
    }

    async fn delete_timed_out_session(&mut self, id: SessionId, now: Timestamp) -> StoreResult<bool> {
        let n = in_tx!(self, |c| {
            sqlx::query(concat!(
                "DELETE FROM sessions WHERE id = $2 AND ",
                timed_out!("sessions", "$1")
            ))
            .bind(now.as_millis())
            .bind(id.0.to_string())
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected()
        })?;
        Ok(n > 0)
    }
}
