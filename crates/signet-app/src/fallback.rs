//! Fallback governance: the tier's `[fallback]` section (`methods`,
//! `max_uses`, `per`, `notify`).
//!
//! A fallback is a weaker method allowed next to a stronger one (an email
//! code beside a passkey). It is where downgrade attacks happen, so each use
//! is limited, made visible to the owner and recorded: a completed login or
//! step-up whose steps used a fallback method counts one use against the
//! user's budget for the period; beyond `max_uses` the login is refused
//! (403 `fallback_limit_reached`) even though the code was right; with
//! `notify = true` every use emails the user; every use and refusal is
//! audited and counted in `signet_fallback_uses_total{method,result}`.
//!
//! The period is a window that opens at the first counted use and lasts
//! `per` (the throttle store's windowed counter), so a budget of 3 per 30
//! days allows at most 3 uses in any window that starts with a use.

use crate::messages::{self, Budget, Requester};
use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::flow::FlowStep;
use signet_core::method::MethodName;
use signet_core::policy::Tier;
use signet_core::session::device_label;
use signet_core::unit_of_work::Transaction;
use signet_core::user::User;
use signet_core::ErrorCode;
use signet_core::{Error, Result};

use crate::metrics::MethodResult;
use crate::App;

/// What [`govern`] decided.
pub enum Governed {
    /// Go on; the fallback method used, if any, to count once committed.
    Allowed(Option<MethodName>),
    /// Over budget: the record of the refusal, to be written once the
    /// login's unit of work is rolled back.
    Refused(Box<AuditEvent>),
}

/// The answer to a login refused by its fallback budget.
pub fn limit_reached() -> Error {
    Error::forbidden(
        ErrorCode::FallbackLimitReached,
        "this backup sign-in method has been used as often as your organisation allows for now; sign in with a passkey",
    )
}

/// Counts and checks the fallback use, if `steps` include one of the tier's
/// fallback methods. Call when a flow is about to complete, with the flow's
/// unit of work `tx`: a use is recorded (and its notice queued) only if the
/// login commits. A refusal comes back as [`Governed::Refused`] with its
/// record: the caller rolls its unit back, then records the refusal in a
/// unit of its own and answers [`limit_reached`].
pub async fn govern(
    app: &App,
    tx: &mut dyn Transaction,
    tier: &Tier,
    user: &User,
    steps: &[FlowStep],
    origin: &Origin,
) -> Result<Governed> {
    let Some(fallback) = &tier.fallback else {
        return Ok(Governed::Allowed(None));
    };
    let Some(used) = steps.iter().map(|s| s.method).find(|m| fallback.methods.contains(m)) else {
        return Ok(Governed::Allowed(None));
    };
    let now = app.clock.now();
    let count = tx.hit(&format!("fallback:{}", user.id), now, fallback.per).await?.hits;
    let max = u64::from(fallback.max_uses);
    let per = signet_core::duration::format(fallback.per);
    let uses = u64::from(count);
    let allowed = uses <= max;
    let (ty, outcome) = if allowed {
        (EventType::FallbackUsed, Outcome::Success)
    } else {
        (EventType::FallbackRefused, Outcome::Denied)
    };
    let record = AuditEvent::new(ty, Actor::User(user.id), outcome)
        .user(user.id)
        .from_origin(origin)
        .details(json!({ "method": used.as_str(), "uses": uses, "max_uses": max, "per": per }));
    if !allowed {
        count_use(app, used, "refused");
        return Ok(Governed::Refused(Box::new(record)));
    }
    app.audit().append(tx, &record).await?;
    if fallback.notify {
        let device = device_label(origin.user_agent.as_deref());
        let not_me = crate::not_me::issue(app, &mut *tx, user).await?;
        let draft = messages::fallback_used(
            &user.email,
            used.as_str(),
            Budget {
                uses,
                max_uses: max,
                period: &per,
            },
            now,
            &Requester {
                device: &device,
                ip: origin.ip.as_deref(),
            },
            &app.settings.product_name,
            &not_me,
        );
        let what = format!(
            "you signed in with a backup method ({}); {} of {max} uses left for this period.",
            used.as_str(),
            max.saturating_sub(uses)
        );
        crate::notices::security_notice(app, tx, user, draft, &what).await?;
    }
    Ok(Governed::Allowed(Some(used)))
}

/// Counts a fallback use in `signet_fallback_uses_total`: a refusal when it
/// is decided, an allowed use once its login has committed.
pub fn count_use(app: &App, method: MethodName, result: &'static str) {
    app.metrics
        .fallback_uses
        .get_or_create(&MethodResult {
            method: method.as_str(),
            result,
        })
        .inc();
}
