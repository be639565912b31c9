//! The help-desk recovery link: what an approved recovery ticket leads to
//! (issue 11, item 3; the contract's `{public_url}/recover/{token}` and
//! `POST /api/v1/recovery/redeem`).
//!
//! **Sending** ([`send`]), in the unit of work that flips the ticket to
//! `approved`: a fresh one-time secret (purpose `recovery_link`, token
//! prefix `sgr_`, only its hash stored, ADR 0003), bound to the ticket (its
//! id in the secret's `flow_id` column, so a ticket has at most one live
//! link), valid for [`LINK_TTL`]. The link goes through the durable outbox
//! to the account's already registered channels only: its email address,
//! and each verified phone (a phone credential, not the unverified
//! `phone` attribute an admin may have typed) by SMS. No admin chooses where
//! it goes, and it never appears in an admin response, CLI output or log
//! line (OWASP ASVS 5.0 §6.4.6: an admin may start a reset but never learns
//! the secret).
//!
//! **Redeeming** ([`redeem`]): `GET /recover/{token}` only looks
//! ([`preview`]; mail scanners prefetch links). The page's form, or
//! `POST /api/v1/recovery/redeem`, consumes the secret with one conditional
//! write, so of any number of concurrent redemptions exactly one wins. In
//! the same unit of work the recovery completes exactly as a self-service
//! one does ([`crate::recovery::recovered`]: every session and OIDC grant
//! ends through [`crate::sessions::end_everywhere`], every channel is told
//! with a "this wasn't me" link, `session.ended` with `reason: "recovery"`
//! is recorded, here naming the ticket, its people and its evidence
//! reference), and a `recovery` session is issued: it can bind one new
//! credential and nothing else. Refusals are recorded as
//! `recovery_link.rejected`.
//!
//! The session proves aal1 (`amr` `["helpdesk"]`: a private value, RFC 8176
//! §2 allows them; the session never reaches an OIDC client): the link
//! proves control of a registered channel, and the assurance comes from the
//! help desk's identity proofing, recorded in the ticket.

use std::time::Duration;

use serde_json::json;
use signet_core::audit::{Actor, EventType, Origin};
use signet_core::clock::Timestamp;
use signet_core::flow::{FlowId, RecoveryVia};
use signet_core::recovery_ticket::{RecoveryTicket, TicketStatus};
use signet_core::secret::{PlainToken, TokenKind};
use signet_core::session::{Proof, SessionId, SessionMode, SessionScope};
use signet_core::store::{OneTimeSecret, SecretPurpose};
use signet_core::unit_of_work::Transaction;
use signet_core::user::{User, UserId};
use signet_core::ErrorCode;
use signet_core::{Error, Result};
use uuid::Uuid;

use crate::sessions::{self, Grant, Issued};
use crate::App;

/// How long a help-desk recovery link works after the ticket's approval.
/// Long enough for a person to be reached at any hour of the day; short
/// enough that a link forgotten in a mailbox is dead the next day.
pub const LINK_TTL: Duration = Duration::from_secs(24 * 3600);

/// The path a help-desk recovery is recorded under.
pub const PATH: &str = "helpdesk";

/// Issues the link for the approved `ticket` and queues it to `user`'s
/// registered channels, in the approval's unit of work `tx`. Returns the
/// channels it went to (for the audit record), never the link.
pub(crate) async fn send(
    app: &App,
    tx: &mut dyn Transaction,
    ticket: &RecoveryTicket,
    user: &User,
    issued_by: &Actor,
) -> Result<Vec<&'static str>> {
    let now = app.clock.now();
    let token = PlainToken::generate(TokenKind::Recovery);
    let secret = OneTimeSecret {
        hash: token.hash(),
        purpose: SecretPurpose::RecoveryLink,
        user_id: user.id,
        flow_id: Some(FlowId(ticket.id)),
        created_at: now,
        expires_at: now.plus(LINK_TTL),
        consumed_at: None,
        issued_by: issued_by.to_wire(),
    };
    tx.issue_secrets(std::slice::from_ref(&secret), now).await?;
    let link = app.settings.link(&format!("/recover/{}", token.expose_secret()));
    let product = &app.settings.product_name;
    let email = crate::messages::helpdesk_recovery(&user.email, &link, secret.expires_at, LINK_TTL, product);
    app.courier.enqueue_in(&mut *tx, email).await?;
    let mut sent = vec!["email"];
    // Verified phones only (never the administrator's number), as the
    // unit sees them.
    for phone in tx.phones_in_unit(user.id).await?.into_iter().map(|p| p.phone) {
        let sms = crate::messages::helpdesk_recovery_sms(&phone, &link, LINK_TTL, product);
        app.courier.enqueue_in(&mut *tx, sms).await?;
        sent.push("sms");
    }
    Ok(sent)
}

fn invalid() -> Error {
    Error::gone(
        ErrorCode::RecoveryLinkInvalid,
        "this recovery link is invalid, already used or expired; ask your help desk for a new one",
    )
}

/// What the page shows before the person confirms.
#[derive(Debug)]
pub struct Preview {
    pub email: String,
    pub expires_at: Timestamp,
}

/// A live link: its token, its secret and its user.
async fn redeemable(app: &App, presented: &str) -> Result<(PlainToken, OneTimeSecret, User)> {
    crate::one_time::live_link(
        app,
        TokenKind::Recovery,
        SecretPurpose::RecoveryLink,
        presented,
        invalid,
    )
    .await
}

/// Looks at a link without using it (`GET /recover/{token}`).
pub async fn preview(app: &App, presented: &str) -> Result<Preview> {
    let (_, secret, user) = redeemable(app, presented).await?;
    Ok(Preview {
        email: user.email.as_str().to_owned(),
        expires_at: secret.expires_at,
    })
}

/// Redeems a link for a recovery session (module docs). `replaces` is the
/// session the browser already had, if any.
pub async fn redeem(
    app: &App,
    presented: &str,
    mode: SessionMode,
    origin: &Origin,
    replaces: Option<SessionId>,
) -> Result<Issued> {
    let (token, secret, user) = match redeemable(app, presented).await {
        Ok(found) => found,
        Err(e) => return Err(rejected(app, origin, None, "invalid_used_or_expired", e).await),
    };
    let ticket_id = secret.flow_id.map(|f| f.0).ok_or_else(invalid)?;
    let ticket = app
        .store
        .ticket(ticket_id)
        .await?
        .ok_or_else(|| Error::internal_msg("a recovery link without its ticket"))?;
    // Only an approved ticket of this very account recovers it, whatever
    // may change a ticket later.
    if ticket.status != TicketStatus::Approved || ticket.user_id != user.id {
        return Err(rejected(app, origin, Some(user.id), "ticket_not_approved", invalid()).await);
    }
    let people = app.store.ticket_actors(ticket.id).await?;
    let now = app.clock.now();
    let grant = Grant {
        user: &user,
        proven_at: now,
        proof: Proof::of_link(PATH),
        scope: SessionScope::Recovery,
        mode,
        origin,
    };
    let mut tx = app.store.begin().await?;
    let won = tx
        .consume_secret(SecretPurpose::RecoveryLink, &token.hash(), now)
        .await?;
    if won.is_none_or(|w| w.user_id != user.id) {
        tx.rollback().await?;
        return Err(rejected(app, origin, Some(user.id), "already_redeemed", invalid()).await);
    }
    let via = RecoveryVia::Helpdesk { ticket: ticket.id };
    let helpdesk = json!({
        "ticket": ticket.id,
        "created_by": ticket.created_by,
        "approvers": people.iter().filter(|p| **p != ticket.created_by).collect::<Vec<&Uuid>>(),
        "evidence": { "kind": ticket.evidence.kind, "reference": ticket.evidence.reference },
    });
    crate::recovery::recovered(app, &mut *tx, &user, PATH, &via, Some(helpdesk), origin).await?;
    let issued = sessions::establish_in(app, &mut *tx, grant, replaces, EventType::RecoveryCompleted).await?;
    tx.commit().await?;
    app.courier.wake();
    app.metrics.sessions_created.inc();
    Ok(issued)
}

/// Records a refused redemption and returns `e` (or the record's own
/// failure: fail closed).
async fn rejected(app: &App, origin: &Origin, user: Option<UserId>, reason: &str, e: Error) -> Error {
    match crate::one_time::record_rejection(app, EventType::RecoveryLinkRejected, origin, user, reason).await {
        Ok(()) => e,
        Err(audit) => audit,
    }
}
