//! Admission control (ADR 0013): past its budget a request is refused at
//! once with 503 `overloaded` and `Retry-After`, while probes and
//! authenticated calls keep their own room; a request that outlives its
//! deadline is cancelled (and its unit of work rolled back); connections
//! past the cap are answered and closed, not queued.
//!
//! Requests are held in flight by sending their headers and only part of
//! the body: the handler waits for the rest, inside its admission permit.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{redeem_api, Options, TestServer};

fn limits(pairs: &[(&str, &str)]) -> Options {
    Options {
        env: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    }
}

fn addr(srv: &TestServer) -> SocketAddr {
    srv.running.as_ref().unwrap().addr
}

/// Sends a request's headers and the first byte of a body that never
/// completes; the server holds it in flight until its deadline.
async fn stalled(srv: &TestServer, path: &str, bearer: Option<&str>) -> TcpStream {
    let mut s = TcpStream::connect(addr(srv)).await.unwrap();
    let auth = bearer
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n{auth}content-length: 100\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

async fn read_to_end(mut s: TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(within, s.read_to_end(&mut out))
        .await
        .expect("the server answered and closed in time")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

/// Calls until the answer is `want` (admission of a stalled request is
/// asynchronous), then returns the last answer's timing and headers.
async fn until(
    srv: &TestServer,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    want: StatusCode,
) -> (Duration, reqwest::Response) {
    for _ in 0..100 {
        let mut req = srv.http.request(method.clone(), srv.url(path));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if method == Method::POST {
            req = req.json(&json!({ "identifier": "someone@example.com", "mode": "api" }));
        }
        let t = Instant::now();
        let resp = req.send().await.unwrap();
        if resp.status() == want {
            return (t.elapsed(), resp);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{method} {path} never answered {want}");
}

async fn assert_overloaded(resp: reqwest::Response, took: Duration) {
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "overloaded", "{body}");
    assert!(body["message"].is_string());
    assert!(took < Duration::from_millis(500), "shed at once, not queued: {took:?}");
}

#[tokio::test]
async fn past_their_budget_anonymous_starts_are_shed_at_once_while_probes_and_sessions_answer() {
    let srv = TestServer::start_with(limits(&[
        ("SIGNET_LIMITS__MAX_IN_FLIGHT", "2"),
        ("SIGNET_LIMITS__ANONYMOUS_IN_FLIGHT", "1"),
        ("SIGNET_LIMITS__REQUEST_TIMEOUT", "3s"),
    ]))
    .await;
    let admin = srv.admin_token().await;
    let user = srv.create_user(&admin, "held@example.com").await;
    let link = srv.invite(&admin, &user, "held@example.com").await;
    let session = redeem_api(&srv, &link).await;

    // One anonymous start in flight fills the anonymous share.
    let held_login = stalled(&srv, "/api/v1/login", None).await;
    let started = Instant::now();
    let (took, resp) = until(
        &srv,
        Method::POST,
        "/api/v1/login",
        None,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_overloaded(resp, took).await;
    let (s, _) = srv.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK, "probes have their own budget");
    let (s, body) = srv.call(Method::GET, "/api/v1/session", Some(&session), None).await;
    assert_eq!(s, StatusCode::OK, "sessions still have room: {body}");

    // A standard request in flight too: now max_in_flight is full, and even
    // session calls are shed, but probes still answer.
    let held_admin = stalled(&srv, "/api/v1/admin/users", Some(&admin)).await;
    let (took, resp) = until(
        &srv,
        Method::GET,
        "/api/v1/session",
        Some(&session),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_overloaded(resp, took).await;
    let (s, _) = srv.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::OK);

    // The deadline covers the whole request, body included: each held
    // request is cancelled with 503 deadline_exceeded and Retry-After.
    for held in [held_login, held_admin] {
        let answer = read_to_end(held, Duration::from_secs(10)).await.to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 5"), "{answer}");
        assert!(answer.contains("\"deadline_exceeded\""), "{answer}");
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(2500) && waited < Duration::from_secs(8),
        "{waited:?}"
    );

    // The budgets are free again.
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&session), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "identifier": "held@example.com", "mode": "api" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let metrics = srv.metrics().await;
    assert!(
        metrics.contains(r#"signet_requests_shed_total{class="anonymous",reason="in_flight"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"reason="deadline""#), "{metrics}");
    srv.stop().await;
}

/// On SQLite a unit of work holds the one writer from its first statement
/// that needs an answer (ADR 0040). A write that waits for it past its
/// deadline is cancelled; nothing of it is stored, and the same write
/// succeeds once the writer is free.
#[tokio::test]
async fn a_write_cancelled_at_its_deadline_while_waiting_for_the_database_leaves_nothing() {
    let srv = TestServer::start_with(limits(&[("SIGNET_LIMITS__REQUEST_TIMEOUT", "1s")])).await;
    if srv.db_url.starts_with("postgres") {
        eprintln!("SKIPPED on PostgreSQL: an open unit does not hold a single writer there");
        srv.stop().await;
        return;
    }
    let admin = srv.admin_token().await;
    let mut unit = srv.app().store.begin().await.unwrap();
    // A read through the unit: it takes the writer, and holds it.
    unit.oidc_code_standing(uuid::Uuid::new_v4()).await.unwrap();
    let started = Instant::now();
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/admin/users",
            Some(&admin),
            Some(json!({ "email": "late@example.com" })),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "deadline_exceeded", "{body}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    unit.rollback().await.unwrap();

    let found = signet_app::users::find_by_email(srv.app(), "late@example.com").await;
    assert!(found.is_err(), "the cancelled write left nothing: {found:?}");
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/admin/users",
            Some(&admin),
            Some(json!({ "email": "late@example.com" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_are_answered_503_and_closed_not_queued() {
    let srv = TestServer::start_with(limits(&[("SIGNET_LIMITS__MAX_CONNECTIONS", "2")])).await;
    let a = TcpStream::connect(addr(&srv)).await.unwrap();
    let b = TcpStream::connect(addr(&srv)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let mut c = TcpStream::connect(addr(&srv)).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_end(c, Duration::from_secs(3)).await.to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("\"overloaded\""), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());

    // A closed connection frees its place.
    drop(a);
    let mut ok = false;
    for _ in 0..50 {
        let mut d = TcpStream::connect(addr(&srv)).await.unwrap();
        d.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        if read_to_end(d, Duration::from_secs(3)).await.starts_with("HTTP/1.1 200") {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a freed place is taken again");
    drop(b);
    srv.stop().await;
}

/// `[limits] header_read_timeout`: a client that trickles its request head
/// (slowloris) is cut off once the timeout passes, so it cannot keep a
/// connection place for ever; a client that sends its head in time is
/// answered as usual.
#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off_at_the_header_read_timeout() {
    let srv = TestServer::start_with(limits(&[("SIGNET_LIMITS__HEADER_READ_TIMEOUT", "1s")])).await;
    let started = Instant::now();
    let mut slow = TcpStream::connect(addr(&srv)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n")
        .await
        .unwrap();
    // One more header line half a second later: still inside the timeout,
    // which counts from the connection, not from the last byte.
    tokio::time::sleep(Duration::from_millis(500)).await;
    slow.write_all(b"x-slow: 1\r\n").await.unwrap();
    let answer = read_to_end(slow, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(
        !answer.starts_with("HTTP/1.1 200"),
        "never answered as a request: {answer}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed at the timeout: {took:?}"
    );

    let mut quick = TcpStream::connect(addr(&srv)).await.unwrap();
    quick
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_end(quick, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    srv.stop().await;
}
