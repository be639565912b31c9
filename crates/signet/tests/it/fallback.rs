//! Fallback governance: `[tiers.X.fallback]` limits, notifies and records
//! every sign-in that used a weaker method. Driven by the method doubles of
//! the login tests (a "passkey" proving aal2, an "email_otp" proving aal1).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::login::fake_methods;
use crate::support::{Options, TestServer};

const POLICY: &str = r#"
[tiers.standard]
login = ["passkey", "email_otp"]
second_factor = ["passkey"]
required_aal = "aal1"
recovery = ["backup_passkey"]
session = { idle = "30m", absolute = "12h" }

[tiers.standard.fallback]
methods = ["email_otp"]
max_uses = 2
per = "30d"
notify = true

[assignment]
default = "standard"
"#;

async fn server() -> TestServer {
    TestServer::start_with(Options {
        methods: fake_methods(),
        policy: Some(POLICY.into()),
        ..Default::default()
    })
    .await
}

async fn login(srv: &TestServer, email: &str, method: &str) -> (StatusCode, serde_json::Value) {
    let (_, started) = srv
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "identifier": email, "mode": "api" })),
        )
        .await;
    let flow = started["flow_id"].as_str().unwrap();
    srv.call(
        Method::POST,
        &format!("/api/v1/login/{flow}/{method}"),
        None,
        Some(json!({ "code": "right" })),
    )
    .await
}

#[tokio::test]
async fn fallback_sign_ins_are_limited_notified_audited_and_counted() {
    let srv = server().await;
    let admin = srv.admin_token().await;
    srv.create_user(&admin, "fallback@example.com").await;

    for n in 1..=2 {
        let (s, body) = login(&srv, "fallback@example.com", "email_otp").await;
        assert_eq!(s, StatusCode::OK, "use {n}: {body}");
        assert_eq!(body["state"], "complete");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let notices = loop {
        let n: Vec<_> = srv
            .smtp
            .as_ref()
            .unwrap()
            .messages()
            .into_iter()
            .filter(|m| m.subject().is_some_and(|s| s.contains("backup method")))
            .collect();
        if n.len() == 2 || tokio::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(notices.len(), 2, "every use notifies the owner");
    // Two emails are delivered concurrently: in either order.
    let texts: Vec<String> = notices.iter().map(|m| m.text_body().unwrap()).collect();
    assert!(texts.iter().all(|t| t.contains("2 sign-ins every 30d")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("1 remain")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("0 remain")), "{texts:?}");

    // The third use in the period is refused even with the right code.
    let (s, err) = login(&srv, "fallback@example.com", "email_otp").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["error"], "fallback_limit_reached");
    // The strong method is never limited.
    let (s, _) = login(&srv, "fallback@example.com", "passkey").await;
    assert_eq!(s, StatusCode::OK);

    let (_, used) = srv
        .call(
            Method::GET,
            "/api/v1/admin/audit?type=login.fallback_used",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(used["events"].as_array().unwrap().len(), 2);
    assert_eq!(used["events"][0]["details"]["method"], "email_otp");
    let (_, refused) = srv
        .call(
            Method::GET,
            "/api/v1/admin/audit?type=login.fallback_refused",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(refused["events"].as_array().unwrap().len(), 1);
    let metrics = srv.metrics().await;
    assert!(
        metrics.contains(r#"signet_fallback_uses_total{method="email_otp",result="allowed"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"signet_fallback_uses_total{method="email_otp",result="refused"} 1"#),
        "{metrics}"
    );

    // A new period brings a new budget.
    srv.clock.advance(Duration::from_secs(30 * 86_400));
    let (s, _) = login(&srv, "fallback@example.com", "email_otp").await;
    assert_eq!(s, StatusCode::OK);
    srv.stop().await;
}

#[tokio::test]
async fn budgets_are_per_user() {
    let srv = server().await;
    let admin = srv.admin_token().await;
    srv.create_user(&admin, "one@example.com").await;
    srv.create_user(&admin, "two@example.com").await;
    for _ in 0..2 {
        assert_eq!(login(&srv, "one@example.com", "email_otp").await.0, StatusCode::OK);
    }
    assert_eq!(
        login(&srv, "one@example.com", "email_otp").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(login(&srv, "two@example.com", "email_otp").await.0, StatusCode::OK);
    srv.stop().await;
}
