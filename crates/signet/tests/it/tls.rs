use reqwest::StatusCode;
use serde_json::json;

use crate::support::{token_of, Options, TestServer};

#[tokio::test]
async fn serves_https_with_hsts_and_host_prefixed_secure_cookies() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let srv = TestServer::start_with(Options {
        tls: Some((cert.cert.pem(), cert.signing_key.serialize_pem())),
        ..Default::default()
    })
    .await;
    assert!(srv.base.starts_with("https://localhost:"));

    let health = srv.http.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.headers()["strict-transport-security"], "max-age=31536000");

    // Plain HTTP on the TLS port gets nowhere.
    let plain = reqwest::Client::new()
        .get(srv.url("/healthz").replace("https://", "http://"))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));

    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "tls@example.com").await;
    let link = srv.invite(&admin, &id, "tls@example.com").await;
    assert!(link.starts_with("https://localhost:"), "links use public_url: {link}");
    let resp = srv
        .http
        .post(srv.url("/api/v1/invitations/redeem"))
        .json(&json!({ "token": token_of(&link), "mode": "browser" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-signet_session=sgs_"), "{cookie}");
    assert!(
        cookie.contains("; Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"),
        "{cookie}"
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body.get("session_token").is_none(),
        "browser mode keeps the token out of the body"
    );
    srv.stop().await;
}
