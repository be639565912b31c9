//! Operating the outbox: `signet outbox retry` and
//! `POST /api/v1/admin/outbox/retry`.
//!
//! After a relay outage the queued messages wait out their backoff (at most
//! `signet_core::outbox::MAX_BACKOFF`). An operator who knows the relay is
//! back makes them all due now instead. The request and how many messages it
//! moved are recorded in the same unit of work (`outbox.retried`).

use serde_json::json;
use signet_core::audit::{AuditEvent, EventType, Outcome};
use signet_core::Result;

use crate::{Actor, App, Origin};

/// Makes every pending message due now and wakes this node's worker (other
/// nodes' workers find them on their next poll). Returns how many messages
/// were waiting for a retry and are due now.
pub async fn retry_now(app: &App, actor: &Actor, origin: &Origin) -> Result<u64> {
    let mut tx = app.store.begin().await?;
    let rescheduled = app.courier.retry_all_in(&mut *tx).await?;
    let event = AuditEvent::new(EventType::OutboxRetried, actor.clone(), Outcome::Success)
        .from_origin(origin)
        .details(json!({ "rescheduled": rescheduled }));
    app.audit().append(&mut *tx, &event).await?;
    tx.commit().await?;
    app.courier.wake();
    Ok(rescheduled)
}
