//! Invitations: issuing the one-time link and redeeming it for an
//! enrollment-only session.
//!
//! An account that already has a credential is not invited (409
//! `account_has_credentials`): its invitation could not bind anything.
//!
//! Issuing revokes any earlier outstanding invitation for the user (only the
//! newest link works), stores the token's hash, and queues the email through
//! the durable outbox, so the caller never waits on SMTP. The link is built
//! from the configured `public_url` only.
//!
//! Redemption peeks at the secret to learn whose it is, mints the session,
//! then consumes the secret and stores the session in one transaction: of
//! any number of concurrent redemptions exactly one gets a session, and a
//! failure in between never burns the link.

use serde::Serialize;
use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::{rfc3339, Timestamp};
use signet_core::secret::{PlainToken, TokenKind};
use signet_core::session::{Proof, SessionId, SessionMode, SessionScope};
use signet_core::store::{OneTimeSecret, SecretPurpose};
use signet_core::user::{User, UserId};
use signet_core::ErrorCode;
use signet_core::{Error, Result};

use crate::one_time::issue_replacing;
use crate::sessions::{self, Grant, Issued};
use crate::App;

/// What the issuer learns. The link itself is only returned to the CLI
/// (an operator on the server); the admin API never puts it in a response.
#[derive(Debug, Serialize)]
pub struct IssuedInvitation {
    pub link: String,
    #[serde(with = "rfc3339")]
    pub expires_at: Timestamp,
    pub message_id: uuid::Uuid,
}

pub async fn invite(app: &App, actor: &Actor, origin: &Origin, user_id: UserId) -> Result<IssuedInvitation> {
    let user = crate::users::get(app, user_id).await?;
    if !user.is_active() {
        return Err(Error::conflict(
            ErrorCode::UserDisabled,
            "the user is disabled; enable them before inviting",
        ));
    }
    // An invitation gives an enrollment session at aal1; an account that
    // already has a credential demands a step-up before binding another,
    // so the link could never work. Recovery is the way back in.
    if !crate::credentials::list(app, &user).await?.is_empty() {
        return Err(Error::conflict(
            ErrorCode::AccountHasCredentials,
            "the user already has a way to sign in, so an invitation could not add one; recover the account \
             instead (self-service at /recover, or a help-desk recovery ticket)",
        ));
    }
    let now = app.clock.now();
    let ttl = app.settings.invitation_ttl;
    let token = PlainToken::generate(TokenKind::Invitation);
    let secret = OneTimeSecret {
        hash: token.hash(),
        purpose: SecretPurpose::Invitation,
        user_id: user.id,
        flow_id: None,
        created_at: now,
        expires_at: now.plus(ttl),
        consumed_at: None,
        issued_by: actor.to_wire(),
    };
    // A new invitation replaces the user's previous one in the same
    // transaction; of two issued at once, the later one wins.
    // The new link, the email that carries it and the record are one unit of
    // work: an invitation is never reissued (the old link revoked) without
    // its email queued.
    let ((), mut tx) = issue_replacing(&*app.store, now, || ((), vec![secret.clone()])).await?;
    let link = app.settings.link(&format!("/invite/{}", token.expose_secret()));
    let draft = crate::messages::invitation(
        &user.email,
        &link,
        secret.expires_at,
        ttl,
        &inviter_label(actor),
        &app.settings.product_name,
    );
    let message_id = app.courier.enqueue_in(&mut *tx, draft).await?;
    let record = AuditEvent::new(EventType::InvitationCreated, actor.clone(), Outcome::Success)
        .user(user.id)
        .from_origin(origin)
        .details(json!({ "expires_at": secret.expires_at.to_rfc3339(), "message_id": message_id }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    app.courier.wake();
    app.metrics.invitations_sent.inc();
    Ok(IssuedInvitation {
        link,
        expires_at: secret.expires_at,
        message_id,
    })
}

fn inviter_label(actor: &Actor) -> String {
    match actor {
        Actor::Admin { name, .. } => format!("an administrator ({name})"),
        _ => "an administrator".into(),
    }
}

fn invalid() -> Error {
    Error::gone(
        ErrorCode::InvitationInvalid,
        "this invitation link is invalid, already used or expired",
    )
}

/// What the invitation page shows before the person confirms.
#[derive(Debug)]
pub struct Preview {
    pub email: String,
    pub expires_at: Timestamp,
}

/// Looks at an invitation without consuming it (`GET /invite/{token}`).
pub async fn preview(app: &App, presented: &str) -> Result<Preview> {
    let (_, secret, user) = redeemable(app, presented).await?;
    Ok(Preview {
        email: user.email.as_str().to_owned(),
        expires_at: secret.expires_at,
    })
}

async fn redeemable(app: &App, presented: &str) -> Result<(PlainToken, OneTimeSecret, User)> {
    crate::one_time::live_link(
        app,
        TokenKind::Invitation,
        SecretPurpose::Invitation,
        presented,
        invalid,
    )
    .await
}

/// Redeems an invitation for an enrollment-only session. `replaces` is the
/// session the client already had, if any; it is ended.
pub async fn redeem(
    app: &App,
    presented: &str,
    mode: SessionMode,
    origin: &Origin,
    replaces: Option<SessionId>,
) -> Result<Issued> {
    let outcome = redeem_inner(app, presented, mode, origin, replaces).await;
    let label = if outcome.is_ok() { "success" } else { "rejected" };
    app.metrics
        .invitation_redemptions
        .get_or_create(&crate::metrics::ResultLabel { result: label })
        .inc();
    outcome
}

async fn redeem_inner(
    app: &App,
    presented: &str,
    mode: SessionMode,
    origin: &Origin,
    replaces: Option<SessionId>,
) -> Result<Issued> {
    let (token, secret, user) = match redeemable(app, presented).await {
        Ok(found) => found,
        Err(e) => {
            audit_rejection(app, origin, None, "invalid_used_or_expired").await?;
            return Err(e);
        }
    };
    // An invitation proves control of the mailbox and nothing more: it
    // grants no assurance level beyond aal1 and only the enrollment scope.
    let grant = Grant {
        user: &user,
        proven_at: app.clock.now(),
        proof: Proof::of_link("mail"),
        scope: SessionScope::Enrollment,
        mode,
        origin,
    };
    // Consuming the invitation, ending the session it replaces, the new
    // session and its record are one unit of work: of fifty racing
    // redemptions exactly one consumes the secret and gets a session.
    let mut tx = app.store.begin().await?;
    let won = tx
        .consume_secret(SecretPurpose::Invitation, &token.hash(), app.clock.now())
        .await?;
    if won.is_none_or(|w| w.user_id != user.id) {
        tx.rollback().await?;
        audit_rejection(app, origin, Some(secret.user_id), "already_redeemed").await?;
        return Err(invalid());
    }
    let issued = sessions::establish_in(app, &mut *tx, grant, replaces, EventType::InvitationRedeemed).await?;
    tx.commit().await?;
    app.metrics.sessions_created.inc();
    Ok(issued)
}

async fn audit_rejection(app: &App, origin: &Origin, user: Option<UserId>, reason: &str) -> Result<()> {
    crate::one_time::record_rejection(app, EventType::InvitationRejected, origin, user, reason).await
}
