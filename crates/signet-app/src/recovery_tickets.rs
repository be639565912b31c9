//! Help-desk recovery tickets (issue 11, item 3): the way back in for a
//! person who lost every authenticator, by repeated identity proofing
//! (NIST SP 800-63B rev. 4, account recovery) done by people.
//!
//! - Each admin token is a distinct actor. The tier's `helpdesk.approvals`
//!   counts the people involved: the creator plus each distinct approver.
//!   An actor is counted once (a row keyed by (ticket, actor)) and never
//!   approves a ticket it created.
//! - A ticket takes approvals for [`TICKET_TTL`] (24 h).
//! - Only tiers whose `recovery` lists `helpdesk` can be recovered so.
//! - Staff ceilings (Kanidm's rule that service-desk staff cannot reset
//!   high-privilege accounts): a token created with `--ceiling TIER` may act
//!   only on users whose tier ranks at or below `TIER`
//!   in the policy's tier order (risk, then required AAL, ...:
//!   [`signet_core::policy::Policy::tier_at_or_below`]). A token without one has
//!   no limit, as tokens had before ceilings existed.
//! - OWASP ASVS 5.0 §6.4.6: no admin ever chooses or learns a secret. The
//!   responses say only the ticket's id, status and the people required.
//!
//! The status flips to `approved` in the unit of work that records the last
//! approval, with one conditional write, and audited in it. The same unit
//! of work issues the single-use recovery link and queues it to the user's
//! registered channels ([`crate::recovery_links::send`]): a ticket that is
//! not approved sends nothing, and an approval is never stored without its
//! link queued.

use serde_json::json;
use signet_core::admin_token::AdminToken;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::policy::{RecoveryProof, Tier};
use signet_core::recovery_ticket::{validate, RecoveryTicket, TicketStatus, TICKET_TTL};
use signet_core::user::{User, UserId};
use signet_core::ErrorCode;
use signet_core::{Error, Result};
use uuid::Uuid;

use crate::App;

/// A ticket to open.
pub struct NewTicket {
    pub user_id: UserId,
    pub reason: String,
    pub evidence_kind: String,
    pub evidence_reference: String,
}

/// The admin token behind `actor` (help-desk work needs one: each token is
/// a distinct person).
async fn staff(app: &App, actor: &Actor) -> Result<AdminToken> {
    let Actor::Admin { id, .. } = actor else {
        return Err(Error::Unauthenticated);
    };
    app.store
        .list_admin_tokens()
        .await?
        .into_iter()
        .find(|t| t.id == *id && t.revoked_at.is_none())
        .ok_or(Error::Unauthenticated)
}

/// The user and their tier, once the staff member may act on them.
async fn subject<'a>(app: &'a App, token: &AdminToken, user_id: UserId) -> Result<(User, &'a str, &'a Tier)> {
    let user = app
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| Error::not_found(ErrorCode::UserNotFound, "no such user"))?;
    let (name, tier) = app.policy.tier_for_roles(&user.roles);
    if let Some(ceiling) = &token.ceiling {
        if !app.policy.tier_at_or_below(name, ceiling) {
            return Err(Error::forbidden(
                ErrorCode::AboveCeiling,
                "this user's tier ranks above what this admin token may act on",
            ));
        }
    }
    if !tier.recovery.iter().any(|p| p.is(RecoveryProof::Helpdesk)) {
        return Err(Error::forbidden(
            ErrorCode::HelpdeskNotAllowed,
            "this user's tier does not allow help-desk recovery (its recovery list has no \"helpdesk\")",
        ));
    }
    Ok((user, name, tier))
}

/// `POST /api/v1/admin/recovery-tickets`: opens a ticket; its creator is
/// its first person. A tier needing one person approves it at once.
pub async fn create(app: &App, actor: &Actor, origin: &Origin, new: NewTicket) -> Result<RecoveryTicket> {
    let token = staff(app, actor).await?;
    let (reason, evidence) = validate(&new.reason, &new.evidence_kind, &new.evidence_reference)?;
    let (user, tier_name, tier) = subject(app, &token, new.user_id).await?;
    let required = tier.helpdesk.as_ref().map_or(1, |h| h.approvals).max(1);
    let now = app.clock.now();
    let mut ticket = RecoveryTicket {
        id: Uuid::new_v4(),
        user_id: user.id,
        reason,
        evidence,
        created_by: token.id,
        approvals_required: required,
        status: TicketStatus::Pending,
        created_at: now,
        expires_at: now.plus(TICKET_TTL),
    };
    let mut tx = app.store.begin().await?;
    tx.insert_ticket(&ticket).await?;
    let involved = tx.add_ticket_actor(ticket.id, token.id, now).await?.unwrap_or(1);
    let ev = AuditEvent::new(EventType::RecoveryTicketCreated, actor.clone(), Outcome::Success)
        .from_origin(origin)
        .user(user.id)
        .details(json!({
            "ticket": ticket.id,
            "tier": tier_name,
            "reason": ticket.reason,
            "evidence": { "kind": ticket.evidence.kind, "reference": ticket.evidence.reference },
            "approvals_required": required,
        }));
    app.audit().append(&mut *tx, &ev).await?;
    if involved >= required && tx.approve_ticket(ticket.id, now).await? {
        ticket.status = TicketStatus::Approved;
        let sent = crate::recovery_links::send(app, &mut *tx, &ticket, &user, actor).await?;
        let ev = AuditEvent::new(EventType::RecoveryTicketApproved, actor.clone(), Outcome::Success)
            .from_origin(origin)
            .user(user.id)
            .details(json!({
                "ticket": ticket.id,
                "status": ticket.status.as_str(),
                "people": involved,
                "approvals_required": required,
                "involved": [token.id],
                "evidence": { "kind": ticket.evidence.kind, "reference": ticket.evidence.reference },
                "link_sent_to": sent,
                "link_expires_at": now.plus(crate::recovery_links::LINK_TTL).to_rfc3339(),
            }));
        app.audit().append(&mut *tx, &ev).await?;
    }
    tx.commit().await?;
    app.courier.wake();
    Ok(ticket)
}

/// `POST /api/v1/admin/recovery-tickets/{id}/approve`: counts `actor` as
/// one more person; the approval that reaches the tier's number flips the
/// ticket, in the same unit of work.
pub async fn approve(app: &App, actor: &Actor, origin: &Origin, id: Uuid) -> Result<TicketStatus> {
    let token = staff(app, actor).await?;
    let ticket = app
        .store
        .ticket(id)
        .await?
        .ok_or_else(|| Error::not_found(ErrorCode::TicketNotFound, "no such recovery ticket"))?;
    let (user, _, _) = subject(app, &token, ticket.user_id).await?;
    if ticket.created_by == token.id {
        return Err(Error::forbidden(
            ErrorCode::OwnTicket,
            "an admin cannot approve a ticket it created; another admin must",
        ));
    }
    let now = app.clock.now();
    if ticket.status != TicketStatus::Pending || ticket.is_expired(now) {
        return Err(closed());
    }
    // Read before the unit of work opens (never touch the pool inside it).
    let mut people = app.store.ticket_actors(ticket.id).await?;
    people.push(token.id);
    let mut tx = app.store.begin().await?;
    let Some(involved) = tx.add_ticket_actor(ticket.id, token.id, now).await? else {
        tx.rollback().await?;
        return Err(Error::conflict(
            ErrorCode::TicketAlreadyApproved,
            "this admin has already approved this ticket",
        ));
    };
    let mut status = TicketStatus::Pending;
    let mut details = json!({
        "ticket": ticket.id,
        "people": involved,
        "approvals_required": ticket.approvals_required,
        "involved": people,
        "evidence": { "kind": ticket.evidence.kind, "reference": ticket.evidence.reference },
    });
    if involved >= ticket.approvals_required {
        if !tx.approve_ticket(ticket.id, now).await? {
            tx.rollback().await?;
            return Err(closed());
        }
        status = TicketStatus::Approved;
        let sent = crate::recovery_links::send(app, &mut *tx, &ticket, &user, actor).await?;
        details["link_sent_to"] = json!(sent);
        details["link_expires_at"] = json!(now.plus(crate::recovery_links::LINK_TTL).to_rfc3339());
    }
    details["status"] = json!(status.as_str());
    let ev = AuditEvent::new(EventType::RecoveryTicketApproved, actor.clone(), Outcome::Success)
        .from_origin(origin)
        .user(ticket.user_id)
        .details(details);
    app.audit().append(&mut *tx, &ev).await?;
    tx.commit().await?;
    app.courier.wake();
    Ok(status)
}

/// The most tickets one listing returns.
pub const LIST_LIMIT: u32 = 200;

/// `GET /api/v1/admin/recovery-tickets` and `signet recovery-ticket list`:
/// tickets, newest first, of one user or of everyone (at most
/// [`LIST_LIMIT`]), with the people involved so far. Needs an admin token
/// like the other help-desk calls; the listing shows no secret.
pub async fn list(app: &App, actor: &Actor, user: Option<UserId>) -> Result<Vec<(RecoveryTicket, Vec<Uuid>)>> {
    staff(app, actor).await?;
    let mut out = Vec::new();
    for t in app.store.list_tickets(user, LIST_LIMIT).await? {
        let people = app.store.ticket_actors(t.id).await?;
        out.push((t, people));
    }
    Ok(out)
}

/// A ticket as the admin API and the CLI show it: no secret, no link.
pub fn view(t: &RecoveryTicket, people: &[Uuid]) -> serde_json::Value {
    json!({
        "id": t.id,
        "user_id": t.user_id,
        "status": t.status.as_str(),
        "reason": t.reason,
        "evidence": { "kind": t.evidence.kind, "reference": t.evidence.reference },
        "created_by": t.created_by,
        "approvals_required": t.approvals_required,
        "people": people,
        "created_at": t.created_at.to_rfc3339(),
        "expires_at": t.expires_at.to_rfc3339(),
    })
}

fn closed() -> Error {
    Error::conflict(
        ErrorCode::TicketClosed,
        "this ticket takes no more approvals (it is approved already or has expired)",
    )
}
