//! Help-desk recovery tickets. The people involved are rows keyed by
//! (ticket, actor): a second approval by the same token inserts nothing
//! (`ON CONFLICT DO NOTHING`, both engines), and the count that decides the
//! approval is read in the same transaction. The flip to `approved` is one
//! conditional `UPDATE ... WHERE status = 'pending'`, so of two racing last
//! approvals exactly one flips it.

use signet_core::clock::Timestamp;
use signet_core::recovery_ticket::{Evidence, RecoveryTicket, TicketStatus};
use signet_core::store::{RecoveryTicketStore, StoreError, StoreResult};
use signet_core::unit_of_work::RecoveryTicketWrites;
use signet_core::user::UserId;
use uuid::Uuid;

use crate::rows::uuid;
use crate::tx::{in_tx, SqlTx};
use crate::{backend, with_db, SqlStore};

type TicketRow = (String, String, String, String, String, String, i64, String, i64, i64);

fn ticket(r: TicketRow) -> StoreResult<RecoveryTicket> {
    let (id, user, reason, kind, reference, by, required, status, created, expires) = r;
    Ok(RecoveryTicket {
        id: uuid(&id)?,
        user_id: UserId(uuid(&user)?),
        reason,
        evidence: Evidence { kind, reference },
        created_by: uuid(&by)?,
        approvals_required: u32::try_from(required)
            .map_err(|_| StoreError::Corrupt(format!("approvals: {required}")))?,
        status: TicketStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("ticket status: {status}")))?,
        created_at: Timestamp::from_millis(created),
        expires_at: Timestamp::from_millis(expires),
    })
}

#[async_trait::async_trait]
impl RecoveryTicketStore for SqlStore {
    async fn ticket(&self, id: Uuid) -> StoreResult<Option<RecoveryTicket>> {
        let row: Option<TicketRow> = with_db!(read(self), |pool| {
            sqlx::query_as(
                "SELECT id, user_id, reason, evidence_kind, evidence_reference, created_by, approvals_required, \
                 status, created_at, expires_at FROM recovery_tickets WHERE id = $1",
            )
            .bind(id.to_string())
            .fetch_optional(pool)
            .await
            .map_err(backend)?
        });
        row.map(ticket).transpose()
    }

    async fn ticket_actors(&self, id: Uuid) -> StoreResult<Vec<Uuid>> {
        let rows: Vec<(String,)> = with_db!(read(self), |pool| {
            sqlx::query_as("SELECT actor_id FROM recovery_ticket_actors WHERE ticket_id = $1 ORDER BY at, actor_id")
                .bind(id.to_string())
                .fetch_all(pool)
                .await
                .map_err(backend)?
        });
        rows.iter().map(|(a,)| uuid(a)).collect()
    }

    async fn list_tickets(&self, user: Option<UserId>, limit: u32) -> StoreResult<Vec<RecoveryTicket>> {
        let user = user.map(|u| u.0.to_string());
        let rows: Vec<TicketRow> = with_db!(read(self), |pool| {
            sqlx::query_as(
                "SELECT id, user_id, reason, evidence_kind, evidence_reference, created_by, approvals_required, \
                 status, created_at, expires_at FROM recovery_tickets WHERE (CAST($1 AS TEXT) IS NULL OR user_id = $1) \
                 ORDER BY created_at DESC, id LIMIT $2",
            )
            .bind(user.clone())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        rows.into_iter().map(ticket).collect()
    }

    async fn cooling_off_until(&self, credential: Uuid) -> StoreResult<Option<Timestamp>> {
        let row: Option<(i64,)> = with_db!(read(self), |pool| {
            sqlx::query_as("SELECT restricted_until FROM credential_cooling_off WHERE credential_id = $1")
                .bind(credential.to_string())
                .fetch_optional(pool)
                .await
                .map_err(backend)?
        });
        Ok(row.map(|(t,)| Timestamp::from_millis(t)))
    }
}

#[async_trait::async_trait]
impl RecoveryTicketWrites for SqlTx {
    async fn insert_ticket(&mut self, t: &RecoveryTicket) -> StoreResult<()> {
        in_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO recovery_tickets (id, user_id, reason, evidence_kind, evidence_reference, created_by, \
                 approvals_required, status, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(t.id.to_string())
            .bind(t.user_id.0.to_string())
            .bind(t.reason.as_str())
            .bind(t.evidence.kind.as_str())
            .bind(t.evidence.reference.as_str())
            .bind(t.created_by.to_string())
            .bind(i64::from(t.approvals_required))
            .bind(t.status.as_str())
            .bind(t.created_at.as_millis())
            .bind(t.expires_at.as_millis())
            .execute(&mut *c)
            .await
            .map_err(backend)?;
        })
    }

    async fn add_ticket_actor(&mut self, ticket: Uuid, actor: Uuid, at: Timestamp) -> StoreResult<Option<u32>> {
        in_tx!(self, |c| {
            let added = sqlx::query(
                "INSERT INTO recovery_ticket_actors (ticket_id, actor_id, at) VALUES ($1, $2, $3) \
                 ON CONFLICT (ticket_id, actor_id) DO NOTHING",
            )
            .bind(ticket.to_string())
            .bind(actor.to_string())
            .bind(at.as_millis())
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected();
            if added == 0 {
                None
            } else {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM recovery_ticket_actors WHERE ticket_id = $1")
                    .bind(ticket.to_string())
                    .fetch_one(&mut *c)
                    .await
                    .map_err(backend)?;
                Some(u32::try_from(n).unwrap_or(u32::MAX))
            }
        })
    }

    async fn approve_ticket(&mut self, ticket: Uuid, now: Timestamp) -> StoreResult<bool> {
        in_tx!(self, |c| {
            sqlx::query(
                "UPDATE recovery_tickets SET status = 'approved' WHERE id = $1 AND status = 'pending' AND expires_at > $2",
            )
            .bind(ticket.to_string())
            .bind(now.as_millis())
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected()
                == 1
        })
    }

    async fn start_cooling_off(&mut self, credential: Uuid, user: UserId, until: Timestamp) -> StoreResult<()> {
        in_tx!(self, |c| {
            sqlx::query(
                "INSERT INTO credential_cooling_off (credential_id, user_id, restricted_until) VALUES ($1, $2, $3) \
                 ON CONFLICT (credential_id) DO UPDATE SET restricted_until = excluded.restricted_until",
            )
            .bind(credential.to_string())
            .bind(user.0.to_string())
            .bind(until.as_millis())
            .execute(&mut *c)
            .await
            .map_err(backend)?;
        })
    }
}
