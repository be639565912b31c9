//! Self-service recovery: a path is offered and completes only when it
//! reaches the tier's login assurance; completing ends every session, tells
//! every channel, and gives a session that can only enroll.

use std::sync::Arc;

use signet_app::journeys::{Started, StepOutcome};
use signet_app::recovery;
use signet_core::audit::EventType;
use signet_core::method::{Method, MethodName};
use signet_core::session::{Aal, SessionMode, SessionScope};
use signet_core::ErrorCode;
use signet_testkit::FakeMethod;

use crate::harness::{code_of, completed, details, names, origin, Fake, Harness, RIGHT};

/// An aal2 tier that lists a path weaker than its login (`email`), a
/// combined one that reaches it, and a backup passkey.
const AAL2: &str = r#"
[tiers.standard]
login = ["passkey", "email_otp"]
second_factor = ["passkey"]
required_aal = "aal2"
recovery = ["email", "recovery_code+email", "backup_passkey"]
session = { idle = "30m", absolute = "12h" }

[tiers.standard.fallback]
methods = ["email_otp"]
max_uses = 3
per = "30d"
notify = true

[tiers.weak]
login = ["passkey", "email_otp"]
second_factor = ["passkey"]
required_aal = "aal2"
recovery = ["email"]
session = { idle = "30m", absolute = "12h" }

[assignment]
default = "standard"
roles = { weak = "weak" }
"#;

/// A recovery code as the recovery-codes method will prove it: a look-up
/// secret, aal1 alone (NIST SP 800-63B rev. 4 §3.1.2).
fn recovery_code() -> Arc<dyn Method> {
    Arc::new(FakeMethod {
        name: MethodName::RecoveryCode,
        aal: Aal::Aal1,
        amr: "otp",
        phishing_resistant: false,
    })
}

async fn harness() -> Harness {
    Harness::with_policy(AAL2, vec![Fake::passkey(), recovery_code()]).await
}

async fn start(h: &Harness, email: &str) -> signet_core::Result<Started> {
    recovery::start(
        &h.app,
        recovery::Start {
            identifier: email.into(),
            mode: SessionMode::Api,
            binding: None,
            origin: origin(),
        },
    )
    .await
}

#[tokio::test]
async fn an_aal2_account_cannot_recover_with_email_alone_but_can_with_a_recovery_code_and_email() {
    let h = harness().await;
    h.user("ada@example.com", &[]).await;
    let before = h.login("ada@example.com").await;

    // `email` alone is not offered as a path; the email code is, as a
    // part of `recovery_code+email`.
    let started = start(&h, "ada@example.com").await.unwrap();
    assert_eq!(
        names(&started.methods),
        [MethodName::RecoveryCode, MethodName::EmailOtp, MethodName::Passkey]
    );
    let flow = started.handle;
    let code = h.send_code(&flow, "ada@example.com").await;
    // The mailbox alone is aal1: the flow goes on, and asks only for what
    // completes a path that includes the email (not the backup passkey,
    // not a second factor).
    let StepOutcome::Continue {
        methods, required_aal, ..
    } = h.step(&flow, MethodName::EmailOtp, &code).await.unwrap()
    else {
        panic!("email alone recovered an aal2 account");
    };
    assert_eq!(required_aal, Aal::Aal2);
    assert_eq!(names(&methods), [MethodName::RecoveryCode]);
    assert_eq!(
        code_of(h.step(&flow, MethodName::Passkey, RIGHT).await),
        ErrorCode::MethodNotAllowed
    );

    let issued = completed(h.step(&flow, MethodName::RecoveryCode, RIGHT).await.unwrap());
    assert_eq!(issued.session.scope, SessionScope::Recovery);
    assert_eq!(issued.session.aal, Aal::Aal2);

    // Every earlier session ended; the owner was told; the path is audited.
    use signet_core::store::SessionStore;
    let live = h
        .store
        .list_user_sessions(before.user.id, h.app.clock.now())
        .await
        .unwrap();
    assert_eq!(
        live.iter().map(|s| s.id).collect::<Vec<_>>(),
        [issued.session.id],
        "only the recovery session is left"
    );
    assert!(h
        .outbox()
        .await
        .iter()
        .any(|m| m.recipient == "ada@example.com" && m.template == signet_app::messages::ACCOUNT_RECOVERED));
    let ended = h.records(EventType::SessionEnded).await;
    let rec = ended
        .iter()
        .find(|r| details(r)["reason"] == "recovery")
        .expect("a recovery record");
    assert_eq!(details(rec)["path"], "recovery_code+email");
    assert_eq!(details(rec)["sessions_ended"], 1);
    assert_eq!(h.records(EventType::RecoveryCompleted).await.len(), 1);
    h.assert_chain_intact().await;
}

#[tokio::test]
async fn a_recovery_code_alone_does_not_recover_an_aal2_account_either() {
    let h = harness().await;
    h.user("ada@example.com", &[]).await;
    let flow = start(&h, "ada@example.com").await.unwrap().handle;
    let StepOutcome::Continue { methods, .. } = h.step(&flow, MethodName::RecoveryCode, RIGHT).await.unwrap() else {
        panic!("a recovery code alone recovered an aal2 account");
    };
    assert_eq!(names(&methods), [MethodName::EmailOtp]);
}

#[tokio::test]
async fn a_backup_passkey_recovers_on_its_own() {
    let h = harness().await;
    h.user("ada@example.com", &[]).await;
    let flow = start(&h, "ada@example.com").await.unwrap().handle;
    let issued = completed(h.step(&flow, MethodName::Passkey, RIGHT).await.unwrap());
    assert_eq!(issued.session.scope, SessionScope::Recovery);
}

#[tokio::test]
async fn a_tier_whose_only_path_is_weaker_than_its_login_offers_no_recovery() {
    let h = harness().await;
    h.user("bo@example.com", &["weak"]).await;
    let started = start(&h, "bo@example.com").await.unwrap();
    assert!(started.methods.is_empty(), "{:?}", names(&started.methods));
    assert_eq!(
        code_of(h.step(&started.handle, MethodName::EmailOtp, "123456").await),
        ErrorCode::MethodNotAllowed
    );
}

#[tokio::test]
async fn starting_recovery_for_an_unknown_address_looks_like_a_real_account() {
    let h = harness().await;
    h.user("ada@example.com", &[]).await;
    let known = start(&h, "ada@example.com").await.unwrap();
    let unknown = start(&h, "nobody@example.com").await.unwrap();
    let shape = |s: &Started| {
        let mut v = serde_json::to_value(&s.methods).unwrap();
        // A passkey offer carries a fresh challenge each time.
        for o in v.as_array_mut().unwrap() {
            if let Some(pk) = o.get_mut("publicKey") {
                *pk = serde_json::Value::Null;
            }
        }
        v
    };
    assert_eq!(shape(&known), shape(&unknown));
    assert_eq!(known.handle.len(), unknown.handle.len());
    assert!(h.outbox().await.is_empty(), "starting sends nothing");
}

#[tokio::test]
async fn recovery_starts_are_limited_per_account_whatever_the_client() {
    let h = harness().await;
    h.user("ada@example.com", &[]).await;
    for _ in 0..recovery::STARTS_PER_ACCOUNT {
        start(&h, "ada@example.com").await.unwrap();
    }
    assert_eq!(code_of(start(&h, "Ada@Example.com").await), ErrorCode::RateLimited);
    // Another account is counted on its own, and an unknown one likewise.
    start(&h, "bo@example.com").await.unwrap();
    for _ in 0..recovery::STARTS_PER_ACCOUNT {
        start(&h, "nobody@example.com").await.unwrap();
    }
    assert_eq!(code_of(start(&h, "nobody@example.com").await), ErrorCode::RateLimited);
}
