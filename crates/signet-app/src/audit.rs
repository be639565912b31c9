//! Writing to and verifying the audit log.
//!
//! Security events are written synchronously with the action they describe:
//! if the audit record cannot be written, the caller gets an error rather
//! than an unrecorded success (fail closed). A record is appended only
//! through a unit of work ([`signet_core::unit_of_work::AuditAppend`]):
//! [`Auditor::append`] puts it in the transaction of the change it records,
//! so a crash, a hang-up or a full disk between the two can never leave a
//! change unrecorded or a record of a change that did not happen. An event
//! that changes nothing else (a refused login) is [`Auditor::record`]ed in a
//! unit of its own.

use signet_core::audit::{AuditEvent, AuditRecord, ChainError, Verifier};
use signet_core::clock::Timestamp;
use signet_core::store::{AuditQuery, Store};
use signet_core::unit_of_work::AuditAppend;
use signet_core::Result;

use crate::App;

pub struct Auditor<'a> {
    app: &'a App,
}

/// Appends `event`, stamped `at`, in a unit of work of its own (for code
/// that holds the store but not the whole [`App`], such as a method).
pub async fn record(store: &dyn Store, at: Timestamp, event: &AuditEvent) -> Result<()> {
    let mut tx = store.begin().await?;
    tx.append_audit(event, signet_core::ids::time_ordered(), at).await?;
    Ok(tx.commit().await?)
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

    /// Appends `event` in a transaction of its own: for events that record
    /// no other change (a failed login, an admin's read).
    pub async fn record(&self, event: AuditEvent) -> Result<()> {
        record(&*self.app.store, self.app.clock.now(), &event).await
    }

    /// Appends `event`, stamped now, inside the unit of work `tx` of the
    /// change it records: both commit, or neither does.
    pub async fn append(&self, tx: &mut dyn AuditAppend, event: &AuditEvent) -> Result<()> {
        Ok(tx
            .append_audit(event, signet_core::ids::time_ordered(), self.app.clock.now())
            .await?)
    }

    pub async fn query(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        Ok(self.app.store.query_audit(q).await?)
    }

    /// Walks the whole log in batches, every lane at once, and compares
    /// where each lane ends with its head (ADR 0036).
    pub async fn verify(&self) -> Result<Verification> {
        const BATCH: u32 = 1000;
        // Read where the log ends first: records appended while we walk are
        // beyond their lanes' heads and are not judged against them.
        let ends = self.app.store.audit_ends().await?;
        let mut verifier = Verifier::new(&ends);
        let mut after = 0;
        'walk: loop {
            let batch = self.app.store.audit_range(after, BATCH).await?;
            if batch.is_empty() {
                break;
            }
            for rec in &batch {
                if rec.seq > verifier.covers() {
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
        Ok(match verifier.finish() {
            Ok(records) => Verification::Intact { records },
            Err(e) => Verification::Broken(e),
        })
    }
}
