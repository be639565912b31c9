//! Help-desk recovery tickets: a person who lost every authenticator asks
//! the help desk, who verify them by other means (NIST SP 800-63B rev. 4,
//! account recovery: repeated identity proofing) and record it here.
//!
//! A ticket names the user, the reason and the evidence (its kind and a
//! reference, never the evidence itself). It needs
//! [`crate::policy::Helpdesk::approvals`] people: its creator plus distinct
//! approvers, each a distinct admin token. An approval is a row keyed by
//! (ticket, actor), so one actor approves once, whatever the races. A
//! ticket lives [`TICKET_TTL`].
//!
//! Staff ceilings use the policy's tier order
//! ([`crate::policy::Policy::tier_at_or_below`]).

use std::time::Duration;

use uuid::Uuid;

use crate::clock::Timestamp;
use crate::user::UserId;
use crate::{Error, ErrorCode, Result};

/// How long a ticket takes approvals.
pub const TICKET_TTL: Duration = Duration::from_secs(24 * 3600);

/// Longest reason, evidence kind and evidence reference (characters).
pub const MAX_TEXT: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketStatus {
    /// Waiting for approvals.
    Pending,
    /// Enough people are involved.
    Approved,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Pending => "pending",
            TicketStatus::Approved => "approved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(TicketStatus::Pending),
            "approved" => Some(TicketStatus::Approved),
            _ => None,
        }
    }
}

/// Evidence the help desk checked, by reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// What was checked: `video_call`, `id_document`, `manager_confirmation`, ...
    pub kind: String,
    /// Where the record of it is (a case number, a call id).
    pub reference: String,
}

#[derive(Clone, Debug)]
pub struct RecoveryTicket {
    pub id: Uuid,
    pub user_id: UserId,
    pub reason: String,
    pub evidence: Evidence,
    /// The admin token that opened it (it counts as the first person).
    pub created_by: Uuid,
    /// People needed, the creator included (the tier's `helpdesk.approvals`
    /// when the ticket was opened).
    pub approvals_required: u32,
    pub status: TicketStatus,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl RecoveryTicket {
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }
}

fn text(value: &str, what: &str) -> Result<String> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > MAX_TEXT || v.chars().any(char::is_control) {
        return Err(Error::invalid(
            ErrorCode::InvalidTicket,
            format!("the ticket's {what} must be 1 to {MAX_TEXT} printable characters"),
        ));
    }
    Ok(v.to_owned())
}

/// Checks a ticket's reason and evidence.
pub fn validate(reason: &str, kind: &str, reference: &str) -> Result<(String, Evidence)> {
    Ok((
        text(reason, "reason")?,
        Evidence {
            kind: text(kind, "evidence kind")?,
            reference: text(reference, "evidence reference")?,
        },
    ))
}
