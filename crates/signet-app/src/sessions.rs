//! Establishing, authenticating, listing and ending sessions.
//!
//! Tokens are opaque 256-bit values; only their SHA-256 is stored. Every
//! authentication establishes a *new* session and deletes the one the client
//! presented, in one transaction (session rotation: a token planted before
//! login is worthless after it, OWASP session fixation).

use signet_core::ErrorCode;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::{rfc3339, Timestamp};
use signet_core::secret::{PlainToken, TokenKind};
use signet_core::session::{device_label, Aal, Proof, Session, SessionId, SessionMode, SessionScope};
use signet_core::unit_of_work::Transaction;
use signet_core::user::{User, UserId};
use signet_core::{Error, Result};

use crate::App;

/// Restricted sessions (enrollment after an invitation, recovery) live at
/// most this long, whatever the tier allows.
pub const RESTRICTED_ABSOLUTE: Duration = Duration::from_secs(3600);
pub const RESTRICTED_IDLE: Duration = Duration::from_secs(15 * 60);

/// A session together with the token to hand to the client, once.
#[derive(Debug)]
pub struct Issued {
    pub session: Session,
    pub token: PlainToken,
}

/// Everything needed to mint a session, except the token.
pub struct Grant<'a> {
    pub user: &'a User,
    pub proof: Proof,
    /// When the proof was shown: the session's `auth_time`. For a journey
    /// of several steps, its first step's time, so that a session never
    /// looks fresher than its oldest proof.
    pub proven_at: Timestamp,
    pub scope: SessionScope,
    pub mode: SessionMode,
    pub origin: &'a Origin,
}

/// Builds (but does not store) a session for `grant`, with the tier's lifetimes.
pub fn mint(app: &App, grant: &Grant<'_>) -> Issued {
    let now = app.clock.now();
    let (tier_name, tier) = app.policy.tier_for_roles(&grant.user.roles);
    let (idle, absolute) = match grant.scope {
        SessionScope::Full => (tier.session.idle, tier.session.absolute),
        SessionScope::Enrollment | SessionScope::Recovery => (
            tier.session.idle.min(RESTRICTED_IDLE),
            tier.session.absolute.min(RESTRICTED_ABSOLUTE),
        ),
    };
    let token = PlainToken::generate(TokenKind::Session);
    let session = Session {
        id: SessionId::new(),
        user_id: grant.user.id,
        token_hash: token.hash(),
        aal: grant.proof.aal,
        amr: grant.proof.amr.clone(),
        phishing_resistant: grant.proof.phishing_resistant,
        auth_time: grant.proven_at.min(now),
        created_at: now,
        last_seen_at: now,
        idle_timeout: idle,
        absolute_expires_at: now.plus(absolute),
        tier: tier_name.to_owned(),
        scope: grant.scope,
        mode: grant.mode,
        ip: grant.origin.ip.clone(),
        device: device_label(grant.origin.user_agent.as_deref()),
        credential_id: grant.proof.credential_id,
        step_up_action: None,
    };
    Issued { session, token }
}

/// The session that replaces `old` after a step-up proved `proof` (its
/// first step at `proven_at`): new id and token, `auth_time` from the proof, the union of `amr`, and the same scope,
/// tier and absolute expiry (a step-up never extends how long a session may
/// live). A step-up is required to reach at least the old session's level,
/// so its `aal` is what was just proven; phishing resistance is claimed only
/// if the step-up itself showed it.
pub fn raised(
    app: &App,
    old: &Session,
    proof: &Proof,
    proven_at: Timestamp,
    action: Option<String>,
    origin: &Origin,
) -> Issued {
    let now = app.clock.now();
    let token = PlainToken::generate(TokenKind::Session);
    let mut amr = old.amr.clone();
    for a in &proof.amr {
        if !amr.contains(a) {
            amr.push(a.clone());
        }
    }
    let session = Session {
        id: SessionId::new(),
        token_hash: token.hash(),
        aal: old.aal.max(proof.aal),
        amr,
        // Freshness vouches only for what the step-up itself showed.
        phishing_resistant: proof.phishing_resistant,
        auth_time: proven_at.min(now),
        created_at: now,
        last_seen_at: now,
        ip: origin.ip.clone().or_else(|| old.ip.clone()),
        device: device_label(origin.user_agent.as_deref()),
        credential_id: proof.credential_id.or(old.credential_id),
        step_up_action: action,
        ..old.clone()
    };
    Issued { session, token }
}

/// Mints and stores a session, replacing `replaces` atomically, and audits
/// it as `event`, all in one unit of work.
pub async fn establish(app: &App, grant: Grant<'_>, replaces: Option<SessionId>, event: EventType) -> Result<Issued> {
    let mut tx = app.store.begin().await?;
    let issued = establish_in(app, &mut *tx, grant, replaces, event).await?;
    tx.commit().await?;
    app.metrics.sessions_created.inc();
    Ok(issued)
}

/// [`establish`] inside the caller's unit of work `tx`, for journeys that
/// consume something (a flow, a secret) in the same transaction. The
/// caller commits and counts the session.
pub(crate) async fn establish_in(
    app: &App,
    tx: &mut dyn Transaction,
    grant: Grant<'_>,
    replaces: Option<SessionId>,
    event: EventType,
) -> Result<Issued> {
    let issued = mint(app, &grant);
    if let Some(old) = replaces {
        tx.delete_session(old).await?;
        // A new sign-in of the same person continues the relying parties'
        // sessions (back-channel logout follows it); another person's
        // grants stay with the session that was replaced.
        tx.move_oidc_session(grant.user.id, old.0, issued.session.id.0).await?;
    }
    tx.insert_session(&issued.session).await?;
    app.audit().append(tx, &established(&grant, &issued, event)).await?;
    if grant.mode == SessionMode::Browser {
        crate::devices::seen(app, tx, grant.user, grant.origin, event == EventType::LoginSucceeded).await?;
    }
    Ok(issued)
}

/// The audit record of a session being established, written in the same
/// transaction as the session.
pub(crate) fn established(grant: &Grant<'_>, issued: &Issued, event: EventType) -> AuditEvent {
    AuditEvent::new(event, Actor::User(grant.user.id), Outcome::Success)
        .user(grant.user.id)
        .from_origin(grant.origin)
        .details(json!({
            "session_id": issued.session.id.0,
            "aal": issued.session.aal,
            "amr": issued.session.amr,
            "scope": issued.session.scope,
            "mode": issued.session.mode,
        }))
}

/// An authenticated request's session and its user.
#[derive(Clone, Debug)]
pub struct Current {
    pub session: Session,
    pub user: User,
}

/// Resolves a presented session token. Expired sessions, unknown tokens and
/// disabled users are all simply unauthenticated.
pub async fn authenticate(app: &App, presented: &str) -> Result<Current> {
    let plain = PlainToken::parse(TokenKind::Session, presented).ok_or(Error::Unauthenticated)?;
    let (session, user) = app
        .store
        .session_with_user_by_token(&plain.hash())
        .await?
        .ok_or(Error::Unauthenticated)?;
    let now = app.clock.now();
    if !session.is_live(now) {
        // The janitor purges it; reading it is no reason to write.
        return Err(Error::Unauthenticated);
    }
    let user = user.ok_or(Error::Unauthenticated)?;
    if !user.is_active() {
        return Err(Error::Unauthenticated);
    }
    let mut session = session;
    if session.needs_touch(now) {
        app.store.touch_session(session.id, now).await?;
        session.last_seen_at = now;
    }
    Ok(Current { session, user })
}

/// Ends the given session (logout).
pub async fn end(app: &App, current: &Current, origin: &Origin) -> Result<()> {
    end_with(app, current, origin, "logout", None).await
}

/// Ends the given session, recording why (`reason`) and, for an
/// RP-initiated logout, which client asked. The relying parties holding a
/// grant of the session get a back-channel logout token, queued in the
/// same unit of work ([`crate::oidc::logout::notify_in`]).
pub async fn end_with(
    app: &App,
    current: &Current,
    origin: &Origin,
    reason: &str,
    client_id: Option<String>,
) -> Result<()> {
    let mut tx = app.store.begin().await?;
    tx.delete_session(current.session.id).await?;
    let notices = crate::oidc::logout::notify_in(app, &mut *tx, current.user.id, Some(current.session.id)).await?;
    let mut details = json!({ "session_id": current.session.id.0, "reason": reason });
    if let (Some(client_id), Some(obj)) = (client_id, details.as_object_mut()) {
        obj.insert("client_id".into(), client_id.into());
    }
    let record = AuditEvent::new(EventType::SessionEnded, Actor::User(current.user.id), Outcome::Success)
        .user(current.user.id)
        .from_origin(origin)
        .details(details);
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    if notices > 0 {
        app.courier.wake();
    }
    Ok(())
}

/// Ends one of the caller's own sessions by id.
pub async fn end_own(app: &App, current: &Current, origin: &Origin, id: SessionId) -> Result<()> {
    let mut tx = app.store.begin().await?;
    if !tx.delete_user_session(current.user.id, id).await? {
        // Someone else's session id is indistinguishable from a missing one.
        return Err(Error::not_found(ErrorCode::SessionNotFound, "no such session"));
    }
    let notices = crate::oidc::logout::notify_in(app, &mut *tx, current.user.id, Some(id)).await?;
    let record = AuditEvent::new(EventType::SessionEnded, Actor::User(current.user.id), Outcome::Success)
        .user(current.user.id)
        .from_origin(origin)
        .details(json!({ "session_id": id.0, "reason": "ended_by_user" }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    if notices > 0 {
        app.courier.wake();
    }
    Ok(())
}

pub async fn list_own(app: &App, user: UserId) -> Result<Vec<Session>> {
    Ok(app.store.list_user_sessions(user, app.clock.now()).await?)
}

#[derive(Serialize)]
pub struct UserRef<'a> {
    pub id: UserId,
    pub email: &'a str,
}

/// The contract's SESSION object.
#[derive(Serialize)]
pub struct SessionView<'a> {
    pub id: SessionId,
    pub user: UserRef<'a>,
    pub aal: Aal,
    pub amr: &'a [String],
    pub phishing_resistant: bool,
    #[serde(with = "rfc3339")]
    pub auth_time: Timestamp,
    #[serde(with = "rfc3339")]
    pub expires_at: Timestamp,
    pub tier: &'a str,
    pub scope: SessionScope,
    pub mode: SessionMode,
}

impl<'a> SessionView<'a> {
    pub fn new(session: &'a Session, user: &'a User) -> Self {
        Self {
            id: session.id,
            user: UserRef {
                id: user.id,
                email: user.email.as_str(),
            },
            aal: session.aal,
            amr: &session.amr,
            phishing_resistant: session.phishing_resistant,
            auth_time: session.auth_time,
            expires_at: session.expires_at(),
            tier: &session.tier,
            scope: session.scope,
            mode: session.mode,
        }
    }
}

/// One row of "your sessions".
#[derive(Serialize)]
pub struct SessionSummary<'a> {
    pub id: SessionId,
    pub current: bool,
    pub aal: Aal,
    pub amr: &'a [String],
    pub device: &'a str,
    pub ip: Option<&'a str>,
    #[serde(with = "rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "rfc3339")]
    pub last_seen_at: Timestamp,
    #[serde(with = "rfc3339")]
    pub expires_at: Timestamp,
    pub scope: SessionScope,
}

impl<'a> SessionSummary<'a> {
    pub fn new(session: &'a Session, current: SessionId) -> Self {
        Self {
            id: session.id,
            current: session.id == current,
            aal: session.aal,
            amr: &session.amr,
            device: &session.device,
            ip: session.ip.as_deref(),
            created_at: session.created_at,
            last_seen_at: session.last_seen_at,
            expires_at: session.expires_at(),
            scope: session.scope,
        }
    }
}

/// Ends every session of `user`, and everything that rides on those
/// sessions, inside the caller's unit of work. Returns how many sessions
/// ended.
///
/// This is the one place "sign this person out everywhere" is written:
/// account recovery, "this wasn't me", and an admin disabling a user all
/// call it, so that whatever else depends on a session (OpenID Connect
/// refresh tokens, back-channel logout notices) is revoked with it, in the
/// same commit as the change that caused it.
///
/// Back-channel logout tokens for the relying parties holding a grant of
/// any of the sessions are queued in `tx`; the courier's worker finds them
/// on its next poll (callers may also wake it after their commit).
pub async fn end_everywhere(app: &App, tx: &mut dyn Transaction, user: UserId) -> Result<u64> {
    // The sessions go first: on PostgreSQL a code being redeemed holds its
    // session's row, so this waits for that redemption and the statements
    // below see its code (ADR 0038), or the redemption waits for this unit
    // and finds its session gone.
    let ended = tx.delete_user_sessions(user).await?;
    // OpenID Connect: every refresh token and every access token issued
    // from the user's codes stops working in the same commit, and every
    // relying party that holds a session of the user is told to end it.
    crate::oidc::logout::notify_in(app, &mut *tx, user, None).await?;
    tx.revoke_oidc_user(user, app.clock.now()).await?;
    Ok(ended)
}
