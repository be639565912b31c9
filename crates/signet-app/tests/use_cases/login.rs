//! The login journey: what a session may claim, and that a flow completes
//! once, in one unit of work with its record.

use std::time::Duration;

use signet_app::journeys::StepOutcome;
use signet_core::audit::EventType;
use signet_core::flow::Demand;
use signet_core::method::MethodName;
use signet_core::session::{Aal, SessionScope};
use signet_core::ErrorCode;

use crate::harness::{code_of, completed, details, names, Harness, RIGHT};

#[tokio::test]
async fn an_email_code_alone_never_completes_an_aal2_login_and_a_phishing_resistant_second_step_does() {
    let h = Harness::with_fakes().await;
    let user = h.user("ada@example.com", &[]).await;
    let started = h.start_login("ada@example.com", Demand::level(Aal::Aal1)).await;
    assert_eq!(
        names(&started.methods),
        [MethodName::Passkey, MethodName::EmailOtp],
        "the standard tier's login methods"
    );
    let flow = started.handle;
    let code = h.send_code(&flow, "ada@example.com").await;

    let StepOutcome::Continue {
        required_aal, methods, ..
    } = h.step(&flow, MethodName::EmailOtp, &code).await.unwrap()
    else {
        panic!("an email code (aal1) completed an aal2 login");
    };
    assert_eq!(required_aal, Aal::Aal2);
    assert_eq!(
        names(&methods),
        [MethodName::Passkey, MethodName::Totp],
        "the tier's second factors"
    );

    let issued = completed(h.step(&flow, MethodName::Passkey, RIGHT).await.unwrap());
    let s = &issued.session;
    assert_eq!(s.user_id, user.id);
    assert_eq!(s.aal, Aal::Aal2);
    assert_eq!(s.amr, ["otp", "mail", "hwk", "mfa"]);
    assert!(s.phishing_resistant, "the passkey step showed phishing resistance");
    assert_eq!(s.scope, SessionScope::Full);
    assert_eq!(s.auth_time, h.app.clock.now());

    // The flow is consumed: its second completion finds nothing to finish.
    assert_eq!(
        code_of(h.step(&flow, MethodName::Passkey, RIGHT).await),
        ErrorCode::FlowExpired
    );
    let sessions = signet_app::sessions::list_own(&h.app, user.id).await.unwrap();
    assert_eq!(sessions.len(), 1, "one completion, one session");
}

#[tokio::test]
async fn every_completed_login_has_exactly_one_login_succeeded_record_in_an_intact_chain() {
    let h = Harness::with_fakes().await;
    let mut issued = Vec::new();
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        h.user(email, &[]).await;
        issued.push(h.login(email).await.session.id);
    }
    // A refused step is recorded as a failure, never as a success.
    let started = h.start_login("a@example.com", Demand::level(Aal::Aal1)).await;
    let refused = h.step(&started.handle, MethodName::Passkey, "wrong").await;
    assert_eq!(code_of(refused), ErrorCode::InvalidCode);

    let records = h.records(EventType::LoginSucceeded).await;
    let mut recorded: Vec<String> = records
        .iter()
        .map(|r| details(r)["session_id"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = issued.iter().map(|id| id.0.to_string()).collect();
    recorded.sort();
    expected.sort();
    assert_eq!(recorded, expected, "one record per completed login, naming its session");
    assert_eq!(h.records(EventType::LoginFailed).await.len(), 1);
    h.assert_chain_intact().await;
}

#[tokio::test]
async fn a_login_refused_by_the_fallback_budget_leaves_no_session_and_no_success_record() {
    // The built-in standard tier allows the email code as a fallback 3
    // times per 30 days; the 4th completion is refused although every
    // step was right, and nothing of its unit of work may remain.
    let h = Harness::with_fakes().await;
    let user = h.user("ada@example.com", &[]).await;
    for _ in 0..3 {
        h.login("ada@example.com").await;
    }
    // Past the send limit's window (3 codes per address per 10 minutes).
    h.advance(Duration::from_secs(10 * 60 + 1));
    let started = h.start_login("ada@example.com", Demand::level(Aal::Aal1)).await;
    let flow = started.handle;
    let code = h.send_code(&flow, "ada@example.com").await;
    h.step(&flow, MethodName::EmailOtp, &code).await.unwrap();
    assert_eq!(
        code_of(h.step(&flow, MethodName::Passkey, RIGHT).await),
        ErrorCode::FallbackLimitReached
    );

    let sessions = signet_app::sessions::list_own(&h.app, user.id).await.unwrap();
    assert_eq!(sessions.len(), 3, "the refused login added no session");
    assert_eq!(h.records(EventType::LoginSucceeded).await.len(), 3);
    assert_eq!(h.records(EventType::FallbackUsed).await.len(), 3);
    assert_eq!(h.records(EventType::FallbackRefused).await.len(), 1);
    let notices = h
        .outbox()
        .await
        .into_iter()
        .filter(|m| m.template == signet_app::messages::FALLBACK_USED)
        .count();
    assert_eq!(notices, 3, "no notice of a fallback use that did not commit");
    h.assert_chain_intact().await;
}
