//! Security notices reach every channel the user has: binding a passkey
//! emails the owner and, when they have a phone number, texts them through
//! the SMS webhook.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use signet_testkit::HttpSink;

use crate::passkeys::{authenticator, enroll};
use crate::support::{redeem_api, Options, TestServer};

#[tokio::test]
async fn binding_a_passkey_notifies_by_email_and_by_sms() {
    let sms = HttpSink::start().await.unwrap();
    let srv = TestServer::start_with(Options {
        env: vec![("SIGNET_SMS__WEBHOOK_URL".into(), sms.url())],
        ..Default::default()
    })
    .await;
    let admin = srv.admin_token().await;
    let (s, user) = srv
        .call(
            Method::POST,
            "/api/v1/admin/users",
            Some(&admin),
            Some(json!({ "email": "phone@example.com", "phone": "+14155550123" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{user}");
    let id = user["id"].as_str().unwrap();
    let token = redeem_api(&srv, &srv.invite(&admin, id, "phone@example.com").await).await;
    let mut auth = authenticator(&srv);
    enroll(&srv, &token, &mut auth, Some("Work laptop")).await;

    let text = sms
        .wait_for(
            |r| r.json.as_ref().is_some_and(|j| j["to"] == "+14155550123"),
            Duration::from_secs(10),
        )
        .await
        .expect("an SMS notice reached the webhook");
    let body = text.json.unwrap()["body"].as_str().unwrap().to_owned();
    assert!(body.contains("passkey \"Work laptop\" was added"), "{body}");
    assert!(!body.contains("http"), "no links in an SMS notice: {body}");
    let mail = srv.wait_mail("phone@example.com", 1).await;
    assert!(
        mail.subject().unwrap().contains("passkey was added"),
        "{:?}",
        mail.subject()
    );
    srv.stop().await;
}
