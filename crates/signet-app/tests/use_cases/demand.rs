//! What a journey demands beyond its tier: phishing resistance, a maximum
//! age of every step.

use std::time::Duration;

use signet_core::audit::EventType;
use signet_core::flow::Demand;
use signet_core::method::MethodName;
use signet_core::session::Aal;
use signet_core::ErrorCode;

use crate::harness::{code_of, completed, names, Fake, Harness, RIGHT};

/// One tier whose every method can log in alone at aal1: the demand, not
/// the tier, decides what more a flow needs.
const OPEN: &str = r#"
[tiers.open]
login = ["passkey", "totp", "email_otp"]
second_factor = ["passkey", "totp", "email_otp"]
required_aal = "aal1"
recovery = ["backup_passkey"]
session = { idle = "8h", absolute = "24h" }
step_up_max_age = "15m"

[assignment]
default = "open"
"#;

#[tokio::test]
async fn a_demand_for_phishing_resistance_offers_and_accepts_only_phishing_resistant_methods() {
    let h = Harness::with_policy(OPEN, vec![Fake::passkey(), Fake::totp()]).await;
    h.user("ada@example.com", &[]).await;

    // Without the demand, an aal2 code that resists no phishing is enough.
    let plain = h.start_login("ada@example.com", Demand::level(Aal::Aal1)).await;
    assert_eq!(
        names(&plain.methods),
        [MethodName::Passkey, MethodName::Totp, MethodName::EmailOtp]
    );
    let session = completed(h.step(&plain.handle, MethodName::Totp, RIGHT).await.unwrap()).session;
    assert!(!session.phishing_resistant);

    // With it, the same level met without phishing resistance is not
    // enough: only the phishing-resistant method is offered or accepted.
    let demand = Demand {
        phishing_resistant: true,
        ..Demand::level(Aal::Aal1)
    };
    let started = h.start_login("ada@example.com", demand).await;
    assert_eq!(names(&started.methods), [MethodName::Passkey]);
    let flow = started.handle;
    for refused in [MethodName::Totp, MethodName::EmailOtp] {
        assert_eq!(
            code_of(h.step(&flow, refused, RIGHT).await),
            ErrorCode::MethodNotAllowed,
            "{refused}"
        );
    }
    let session = completed(h.step(&flow, MethodName::Passkey, RIGHT).await.unwrap()).session;
    assert!(session.phishing_resistant);
    assert_eq!(session.amr, ["hwk"]);
}

#[tokio::test]
async fn a_step_older_than_max_age_no_longer_counts_towards_a_journey() {
    let h = Harness::with_fakes().await;
    let user = h.user("ada@example.com", &[]).await;
    let demand = Demand {
        max_age_secs: Some(60),
        ..Demand::level(Aal::Aal1)
    };

    // Within the window, an email code and a passkey complete the aal2 login.
    let started = h.start_login("ada@example.com", demand.clone()).await;
    let code = h.send_code(&started.handle, "ada@example.com").await;
    h.step(&started.handle, MethodName::EmailOtp, &code).await.unwrap();
    h.advance(Duration::from_secs(59));
    completed(h.step(&started.handle, MethodName::Passkey, RIGHT).await.unwrap());

    // Past it, the email step no longer counts: the session rests on the
    // fresh passkey alone, and claims nothing of the stale email proof.
    let started = h.start_login("ada@example.com", demand).await;
    let flow = started.handle;
    let code = h.send_code(&flow, "ada@example.com").await;
    h.step(&flow, MethodName::EmailOtp, &code).await.unwrap();
    h.advance(Duration::from_secs(61));
    let fresh_at = signet_core::clock::Clock::now(&*h.clock);
    let session = completed(h.step(&flow, MethodName::Passkey, RIGHT).await.unwrap()).session;
    assert_eq!(session.amr, ["hwk"], "the stale email step is not part of the proof");
    assert_eq!(session.auth_time, fresh_at, "auth_time is the oldest step that counts");

    assert_eq!(signet_app::sessions::list_own(&h.app, user.id).await.unwrap().len(), 2);
    assert_eq!(h.records(EventType::LoginSucceeded).await.len(), 2);
}
