//! Writing to and verifying the audit log.
//!
//! Security events are written synchronously with the action they describe:
//! if the audit record cannot be written, the caller gets an error rather
//! than an unrecorded success (fail closed). Where a session comes into
//! being (login, step-up, invitation redemption), a passkey is added or a
//! user's status changes, the record is appended in the same transaction as
//! the change itself ([`Auditor::entry`]), so a crash between the two can
//! never leave it unrecorded.

use signet_core::audit::{AuditEvent, AuditRecord, ChainError, Verifier};
use signet_core::store::{AuditQuery, Audited};
use signet_core::Result;
use uuid::Uuid;

use crate::App;

pub struct Auditor<'a> {
    app: &'a App,
}

/// Result of a full chain verification.
#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    Intact { records: u64 },
    Broken(ChainError),
}

impl<'a> Auditor<'a> {
    pub(crate) fn new(app: &'a App) -> Self {
        Self { app }
    }

    pub async fn record(&self, event: AuditEvent) -> Result<AuditRecord> {
        let rec = self
            .app
            .store
            .append_audit(&event, Uuid::new_v4(), self.app.clock.now())
            .await?;
        Ok(rec)
    }

    /// `event`, stamped now, to be appended by a store write in the same
    /// transaction as the change it records.
    pub fn entry<'e>(&self, event: &'e AuditEvent) -> Audited<'e> {
        Audited {
            event,
            id: Uuid::new_v4(),
            at: self.app.clock.now(),
        }
    }

    pub async fn query(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        Ok(self.app.store.query_audit(q).await?)
    }

    /// Walks the whole chain in batches and compares its end with the head.
    pub async fn verify(&self) -> Result<Verification> {
        const BATCH: u32 = 1000;
        // Read the head first: records appended while we walk are beyond it
        // and are not judged against it.
        let (head_seq, head_hash) = self.app.store.audit_head().await?;
        let mut verifier = Verifier::default();
        let mut after = 0;
        'walk: loop {
            let batch = self.app.store.audit_range(after, BATCH).await?;
            if batch.is_empty() {
                break;
            }
            for rec in &batch {
                if rec.seq > head_seq {
                    break 'walk;
                }
                if let Err(e) = verifier.check(rec) {
                    return Ok(Verification::Broken(e));
                }
                after = rec.seq;
            }
            if batch.len() < BATCH as usize {
                break;
            }
        }
        Ok(match verifier.finish(head_seq, head_hash) {
            Ok(records) => Verification::Intact { records },
            Err(e) => Verification::Broken(e),
        })
    }
}
