//! "This wasn't me": the link every security notice carries.
//!
//! A notice tells the owner that something about their account's security
//! changed (a credential bound or removed, a governed fallback used, the
//! account recovered). If it was not them, the notice's link locks the
//! account at once, without signing anyone in:
//! - `GET /not-me/{token}` shows a confirmation page and changes nothing
//!   (mail scanners prefetch links);
//! - `POST /not-me/{token}` consumes the link (one conditional write: of any
//!   number of concurrent posts exactly one acts), disables the account
//!   (a disabled account cannot sign in, complete a pending recovery, or be
//!   invited; its pending recovery flows fail at their next step), ends every
//!   session ([`crate::sessions::end_everywhere`], which also revokes what
//!   hangs on sessions), and records `user.disabled` with `reason: "not_me"`,
//!   all in one unit of work. The help desk reviews the account and enables
//!   it again (`signet user enable`, `POST /api/v1/admin/users/{id}/enable`).
//!
//! The link is a one-time secret (only its hash is stored) that expires after
//! [`LINK_TTL`]. Each notice's link is its own: it is bound to a fresh id of
//! its own in the secret's `flow_id` column, so a later notice (an attacker's
//! next change) does not revoke the link of an earlier one, which is the one
//! the owner is most likely to click. OWASP ASVS 5.0 §6.3.7 (notify users of
//! authentication changes) and NIST SP 800-63B rev. 4 §4.1.2.1 (notify on
//! every channel) ask for the notice; the link is what makes it actionable.

use std::time::Duration;

use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::Timestamp;
use signet_core::flow::FlowId;
use signet_core::secret::{PlainToken, TokenKind};
use signet_core::store::{OneTimeSecret, SecretPurpose};
use signet_core::unit_of_work::Transaction;
use signet_core::user::{User, UserStatus};
use signet_core::ErrorCode;
use signet_core::{Error, Result};

use crate::{App, Settings};

/// How long a notice's link works.
pub const LINK_TTL: Duration = Duration::from_secs(7 * 86_400);

/// Issues the link for a notice to `user`, in the notice's unit of work
/// `tx`, and returns its URL (`{public_url}/not-me/{token}`), for the
/// notice's email only.
pub(crate) async fn issue(app: &App, tx: &mut dyn Transaction, user: &User) -> Result<String> {
    let now = app.clock.now();
    let (secret, url) = prepare(&app.settings, user, now);
    tx.issue_secrets(&[secret], now).await?;
    Ok(url)
}

/// A fresh link for a notice to `user`: the secret to store in the notice's
/// unit of work, and the URL for its email. For code that runs without the
/// whole [`App`] (a method's step effect); [`issue`] otherwise.
pub(crate) fn prepare(settings: &Settings, user: &User, now: Timestamp) -> (OneTimeSecret, String) {
    let token = PlainToken::generate(TokenKind::NotMe);
    let secret = OneTimeSecret {
        hash: token.hash(),
        purpose: SecretPurpose::NotMe,
        user_id: user.id,
        // The notice's own id: one live link per notice, not per user.
        flow_id: Some(FlowId::new()),
        created_at: now,
        expires_at: now.plus(LINK_TTL),
        consumed_at: None,
        issued_by: "system".into(),
    };
    (secret, settings.link(&format!("/not-me/{}", token.expose_secret())))
}

fn invalid() -> Error {
    Error::gone(
        ErrorCode::NotMeLinkInvalid,
        "this link is invalid, already used or expired; if your account was changed without you, contact your administrator",
    )
}

/// What the confirmation page shows: whose account the link locks.
#[derive(Debug)]
pub struct Preview {
    pub email: String,
}

/// Looks at a link without using it (`GET /not-me/{token}`).
pub async fn preview(app: &App, presented: &str) -> Result<Preview> {
    let plain = PlainToken::parse(TokenKind::NotMe, presented).ok_or_else(invalid)?;
    let secret = app
        .store
        .peek_secret(SecretPurpose::NotMe, &plain.hash())
        .await?
        .filter(|s| s.consumed_at.is_none() && s.expires_at > app.clock.now())
        .ok_or_else(invalid)?;
    let user = app.store.user_by_id(secret.user_id).await?.ok_or_else(invalid)?;
    Ok(Preview {
        email: user.email.as_str().to_owned(),
    })
}

/// Uses a link (`POST /not-me/{token}`): locks the account and ends every
/// session, once. Signs no one in.
pub async fn confirm(app: &App, presented: &str, origin: &Origin) -> Result<()> {
    let plain = PlainToken::parse(TokenKind::NotMe, presented).ok_or_else(invalid)?;
    let now = app.clock.now();
    let mut tx = app.store.begin().await?;
    let Some(secret) = tx.consume_secret(SecretPurpose::NotMe, &plain.hash(), now).await? else {
        tx.rollback().await?;
        return Err(invalid());
    };
    let user = secret.user_id;
    tx.set_user_status(user, UserStatus::Disabled, now).await?;
    let ended = crate::sessions::end_everywhere(app, &mut *tx, user).await?;
    let record = AuditEvent::new(EventType::UserDisabled, Actor::Anonymous, Outcome::Success)
        .user(user)
        .from_origin(origin)
        .details(json!({ "reason": "not_me", "sessions_ended": ended }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    // Back-channel logout tokens may have been queued with the sessions' end.
    app.courier.wake();
    Ok(())
}
