//! Whatever an attacker sends gets a clear 4xx with a stable code: never a
//! 5xx, never a panic.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::TestServer;

async fn raw(
    srv: &TestServer,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = srv.http.request(method, srv.url(path)).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A request body and the answer it must get: path, content type, body, status, code.
type Case = (&'static str, Option<&'static str>, Vec<u8>, StatusCode, &'static str);

#[tokio::test]
async fn malformed_bodies_get_stable_4xx_codes() {
    let srv = TestServer::start().await;
    let json = Some("application/json");
    let cases: Vec<Case> = vec![
        (
            "/api/v1/login",
            json,
            b"{".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/api/v1/login",
            json,
            b"[]".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/login",
            json,
            br#"{"identifier": 5}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/login",
            json,
            br#"{"surprise": 1}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/login",
            json,
            br#"{"mode": "telepathy"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/login",
            json,
            vec![0xff, 0xfe, 0x00],
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/api/v1/login",
            None,
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "/api/v1/login",
            Some("text/plain"),
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "/api/v1/invitations/redeem",
            json,
            br#"{"mode":"api"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/login",
            json,
            br#"{"identifier": "not an email"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_identifier",
        ),
        (
            "/api/v1/login",
            json,
            br#"{"return_to": "https://evil.example/x"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_return_to",
        ),
        (
            "/api/v1/login",
            json,
            br#"{"return_to": "//evil.example/x"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_return_to",
        ),
        (
            "/api/v1/login",
            json,
            br#"{"return_to": "javascript:alert(1)"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_return_to",
        ),
        // Step and send bodies take only the fields a method reads.
        (
            "/api/v1/login/00000000-0000-4000-8000-000000000000/email_otp/send",
            json,
            br#"{"to": "someone@evil.example"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/login/00000000-0000-4000-8000-000000000000/email_otp",
            json,
            br#"{"code": "123456", "user_id": "x"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/api/v1/step-up/00000000-0000-4000-8000-000000000000/passkey",
            json,
            br#"{"credential": {}, "aal": "aal3"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (path, ct, body, status, code) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let (s, err) = raw(&srv, Method::POST, path, ct, body).await;
        assert_eq!(s, status, "{path} {shown}: {err}");
        assert_eq!(err["error"], code, "{path} {shown}");
        assert!(err["message"].is_string());
    }
    srv.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let srv = TestServer::start().await;
    let big = format!(r#"{{"identifier": "{}@example.com"}}"#, "a".repeat(70 * 1024));
    let (s, err) = raw(
        &srv,
        Method::POST,
        "/api/v1/login",
        Some("application/json"),
        big.into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err["error"], "payload_too_large");
    srv.stop().await;
}

#[tokio::test]
async fn unknown_routes_flows_and_methods_are_4xx() {
    let srv = TestServer::start().await;
    let (s, err) = srv.call(Method::GET, "/api/v1/nothing-here", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(err["error"], "not_found");
    let (s, err) = srv
        .call(
            Method::POST,
            "/api/v1/login/not-a-uuid/passkey",
            None,
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(err["error"], "flow_expired");
    let (s, started) = srv
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(serde_json::json!({ "mode": "api" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let flow = started["flow_id"].as_str().unwrap();
    let (s, err) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/carrier_pigeon"),
            None,
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(err["error"], "unknown_method");
    let (s, err) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/totp/send"),
            None,
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"], "method_not_allowed");
    let (s, _) = srv
        .call(Method::DELETE, "/api/v1/sessions/not-a-uuid", Some("sgs_x"), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    srv.stop().await;
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_a_request_id() {
    let srv = TestServer::start().await;
    for path in ["/healthz", "/login", "/api/v1/session", "/nope"] {
        let resp = srv.http.get(srv.url(path)).send().await.unwrap();
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(uuid::Uuid::parse_str(h["x-request-id"].to_str().unwrap()).is_ok());
    }
    let resp = srv
        .http
        .get(srv.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-123");
    srv.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let srv = TestServer::start().await;
    let (s, h) = srv.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((s, h["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, r) = srv.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let backend = if crate::support::postgres_url().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(r["database"], backend);
    srv.call(Method::POST, "/api/v1/login", None, Some(serde_json::json!({})))
        .await;
    let text = srv.metrics().await;
    assert!(
        text.contains("signet_login_flows_total{result=\"started\"} 1"),
        "{text}"
    );
    assert!(text.contains("signet_http_responses_total"), "{text}");
    assert!(text.contains("# TYPE signet_login_flows counter"), "{text}");
    srv.stop().await;
}

#[tokio::test]
async fn metrics_answer_only_the_configured_bearer_token() {
    const TOKEN: &str = "metrics-0123456789abcdef0123456789abcdef";
    let srv = TestServer::start_with(crate::support::Options {
        env: vec![("SIGNET_METRICS__TOKEN".into(), TOKEN.into())],
        ..Default::default()
    })
    .await;
    let scrape = |auth: Option<String>| {
        let mut req = srv.http.get(srv.url("/metrics"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    for auth in [None, Some("Bearer wrong".into()), Some(format!("Basic {TOKEN}"))] {
        let resp = scrape(auth.clone()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unauthenticated");
    }
    let resp = scrape(Some(format!("Bearer {TOKEN}"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("signet_http_responses_total"));
    srv.stop().await;
}

/// Codes of an authenticator-app enrollment as anything but a string of six
/// ASCII digits (numbers, arrays, null, other scripts' digits, wrong
/// lengths): 400, never a 5xx. (Login-step cases: `otp.rs`.)
#[tokio::test]
async fn malformed_one_time_codes_get_400() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let user = srv.create_user(&admin, "shapes@example.com").await;
    let link = srv.invite(&admin, &user, "shapes@example.com").await;
    let token = crate::support::redeem_api(&srv, &link).await;
    let (s, begun) = srv
        .call(
            Method::POST,
            "/api/v1/credentials/totp/begin",
            Some(&token),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{begun}");
    let cases: Vec<(Value, &str)> = vec![
        (serde_json::json!(123456), "invalid_request"),
        (serde_json::json!(null), "invalid_request"),
        (serde_json::json!(["123456"]), "invalid_request"),
        (serde_json::json!({ "digits": "123456" }), "invalid_request"),
        (serde_json::json!("١٢٣٤٥٦"), "invalid_code"),
        (serde_json::json!("１２３４５６"), "invalid_code"),
        (serde_json::json!("12345"), "invalid_code"),
        (serde_json::json!("1234567"), "invalid_code"),
        (serde_json::json!("12a456"), "invalid_code"),
        (serde_json::json!(""), "invalid_code"),
    ];
    for (code, expected) in cases {
        let (s, err) = srv
            .call(
                Method::POST,
                "/api/v1/credentials/totp/finish",
                Some(&token),
                Some(serde_json::json!({ "ceremony_id": begun["ceremony_id"], "code": code })),
            )
            .await;
        assert_eq!(
            (s, err["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(expected)),
            "{code}: {err}"
        );
    }
    srv.stop().await;
}
