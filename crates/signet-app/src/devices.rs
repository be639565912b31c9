//! "New sign-in from a new device" (issue 11, item 5; ADR 0017: every
//! security notice carries a "this wasn't me" link).
//!
//! **What a device is.** A browser, told by a first-party cookie
//! (`signet_device`: `sgd_` + 256 random bits, HttpOnly, 400 days; only its
//! hash reaches the application, in [`Origin::device`]) that the web layer
//! gives a browser the first time a session is issued to it. An account's
//! known devices are the hashes of the cookies of the browsers it was given
//! a browser-mode session in: an invitation, a recovery, a login.
//!
//! **When the notice goes.** A browser-mode *login* from a device the
//! account does not know, when the account knows at least one other: the
//! first browser an account ever uses (normally the one that redeemed the
//! invitation) is its baseline, not news. The notice (email with the
//! "this wasn't me" link, and SMS when the account has a phone) and the
//! `login.new_device` record are queued in the login's own unit of work.
//!
//! **What it cannot see.** Api-mode sessions carry no cookie and are not
//! judged. A person who clears their cookies, or uses a private window, is
//! a new device each time: an honest false positive. An attacker who stole
//! the cookie as well as the credential is not seen (the cookie proves
//! nothing about the person; it only avoids noise).

use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::unit_of_work::Transaction;
use signet_core::user::User;
use signet_core::Result;

use crate::messages::{self, Requester};
use crate::App;

/// Records that `user` got a browser session from `origin`'s device, in the
/// session's unit of work `tx`; for a `login`, tells the owner when the
/// device is new and the account knew another.
pub(crate) async fn seen(app: &App, tx: &mut dyn Transaction, user: &User, origin: &Origin, login: bool) -> Result<()> {
    let Some(device) = origin.device else {
        return Ok(());
    };
    let now = app.clock.now();
    let (new, others) = tx.remember_device(user.id, &device, now).await?;
    if !(login && new && others > 0) {
        return Ok(());
    }
    let label = signet_core::session::device_label(origin.user_agent.as_deref());
    let record = AuditEvent::new(EventType::LoginNewDevice, Actor::User(user.id), Outcome::Success)
        .user(user.id)
        .from_origin(origin)
        .details(json!({ "device": label, "known_devices": others }));
    app.audit().append(tx, &record).await?;
    let not_me = crate::not_me::issue(app, tx, user).await?;
    let draft = messages::new_device_sign_in(
        &user.email,
        now,
        &Requester {
            device: &label,
            ip: origin.ip.as_deref(),
        },
        &app.settings.product_name,
        &not_me,
    );
    crate::notices::security_notice(app, tx, user, draft, "your account was signed in to from a new device.").await
}
