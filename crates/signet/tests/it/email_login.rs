//! Email codes (`email_otp`) and magic links (`magic_link`), end to end
//! through the real server and a real SMTP listener. The tests follow the
//! threat model: mail scanners that prefetch links, links forwarded to or
//! opened on another device, reuse, expiry, tampering, account enumeration,
//! races, and guessing.

use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, ORIGIN, REFERRER_POLICY, RETRY_AFTER, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use signet_testkit::CapturedMail;

use crate::support::{header_names, shape, Options, TestServer};

/// A tier where an emailed code or link is enough (aal1), and the default
/// for unknown addresses too, so known and unknown are answered alike.
const LOW_POLICY: &str = r#"
[tiers.low]
login = ["magic_link", "email_otp"]
second_factor = ["passkey"]
required_aal = "aal1"
session = { idle = "8h", absolute = "24h" }

[assignment]
default = "low"
"#;

async fn server() -> TestServer {
    TestServer::start_with(Options {
        policy: Some(LOW_POLICY.into()),
        ..Default::default()
    })
    .await
}

/// A server with the low-tier policy and one user; returns it and an admin token.
async fn with_user(email: &str) -> (TestServer, String) {
    let srv = server().await;
    let admin = srv.admin_token().await;
    srv.create_user(&admin, email).await;
    (srv, admin)
}

/// A user whose browser started a login and asked for a magic link:
/// the server, an admin token, the browser, the flow id, the mail and the link.
async fn link_login(email: &str) -> (TestServer, String, Browser, String, CapturedMail, String) {
    let (srv, admin) = with_user(email).await;
    let browser = Browser::new(&srv);
    let (flow, mail) = browser.magic_mail(&srv, email).await;
    let link = magic_link(&srv, &mail);
    (srv, admin, browser, flow, mail, link)
}

/// A browser: its own cookie jar, and the `Origin` header browsers send on
/// same-origin POSTs.
struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(srv: &TestServer) -> Self {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
            .build()
            .unwrap();
        Self {
            http,
            base: srv.base.clone(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header(ORIGIN, &self.base)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Starts a browser-mode login for `email`; returns the flow id.
    async fn start(&self, email: &str) -> String {
        let (s, body) = self.post("/api/v1/login", json!({ "identifier": email })).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body["flow_id"].as_str().unwrap().to_owned()
    }

    /// Starts a login for `email`, asks for a magic link and waits for the
    /// mail; returns the flow id and the mail.
    async fn magic_mail(&self, srv: &TestServer, email: &str) -> (String, CapturedMail) {
        let flow = self.start(email).await;
        let before = smtp_count(srv);
        let (s, body) = self
            .post(&format!("/api/v1/login/{flow}/magic_link/send"), json!({}))
            .await;
        assert_eq!((s, &body), (StatusCode::ACCEPTED, &json!({})));
        (flow, srv.wait_mail(email, before).await)
    }

    /// Types the code from `mail` into the flow, as `email_otp`.
    async fn type_code(&self, flow: &str, mail: &CapturedMail) -> (StatusCode, Value) {
        let path = format!("/api/v1/login/{flow}/email_otp");
        self.post(&path, json!({ "code": code(mail) })).await
    }

    /// The link's page and its button both say the link no longer works.
    async fn assert_link_gone(&self, link: &str) {
        assert_eq!(self.http.get(link).send().await.unwrap().status(), StatusCode::GONE);
        assert_eq!(self.confirm(link).await.status(), StatusCode::GONE);
    }

    /// Presses "Continue signing in" on a magic link's page.
    async fn confirm(&self, link: &str) -> reqwest::Response {
        self.http.post(link).header(ORIGIN, &self.base).send().await.unwrap()
    }

    async fn session(&self) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}/api/v1/session", self.base))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }
}

fn magic_link(srv: &TestServer, mail: &CapturedMail) -> String {
    mail.find_link(&srv.url("/login/magic/"))
        .expect("a magic link in the mail")
}

/// The code from a sign-in mail's text part ("Your code: 123456").
fn code(mail: &CapturedMail) -> String {
    let text = mail.text_body().expect("a text part");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Your code: "))
        .expect("a code line");
    line.trim().to_owned()
}

fn smtp_count(srv: &TestServer) -> usize {
    srv.smtp.as_ref().unwrap().messages().len()
}

/// Starts an api-mode flow, asks for an email code and waits for the mail
/// (so the code is stored before the test goes on); returns the flow id and
/// the mail's code.
async fn api_code(srv: &TestServer, email: &str) -> (String, String) {
    let before = smtp_count(srv);
    let flow = api_flow_with_code(srv, email).await;
    (flow, code(&srv.wait_mail(email, before).await))
}

/// Starts an api-mode login for `email`; returns the flow id.
async fn api_start(srv: &TestServer, email: impl Into<String>) -> String {
    let (s, started) = srv
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "identifier": email.into(), "mode": "api" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{started}");
    started["flow_id"].as_str().unwrap().to_owned()
}

/// Ten wrong codes over two flows of five (each flow dies at its fifth):
/// the account's run reaches the backoff threshold.
async fn fail_ten_times(srv: &TestServer, email: &str) {
    for _ in 0..2 {
        let flow = api_start(srv, email).await;
        let path = format!("/api/v1/login/{flow}/email_otp");
        for _ in 0..5 {
            let (s, _) = srv
                .call(Method::POST, &path, None, Some(json!({ "code": "000000" })))
                .await;
            assert!(s == StatusCode::BAD_REQUEST || s == StatusCode::GONE, "{s}");
        }
    }
}

/// Types `code` into api-mode flow `flow` (`POST .../email_otp`, no cookies).
async fn api_type_code(srv: &TestServer, flow: &str, code: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/login/{flow}/email_otp");
    srv.call(Method::POST, &path, None, Some(json!({ "code": code }))).await
}

/// `POST .../{method}/send` without cookies.
async fn api_send(srv: &TestServer, flow: &str, method: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/login/{flow}/{method}/send");
    srv.call(Method::POST, &path, None, Some(json!({}))).await
}

/// Starts an api-mode flow and asks for an email code; returns the flow id.
async fn api_flow_with_code(srv: &TestServer, email: &str) -> String {
    let flow = api_start(srv, email).await;
    let (s, body) = api_send(srv, &flow, "email_otp").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    flow
}

/// Posts `body` to `path` (no cookies, api mode) and expects an error.
async fn expect_error(srv: &TestServer, path: &str, body: Value, status: StatusCode, code: &str) {
    let (s, err) = srv.call(Method::POST, path, None, Some(body)).await;
    assert_eq!((s, err["error"].as_str()), (status, Some(code)), "{err}");
}

async fn audit_types(srv: &TestServer, admin: &str, event_type: &str) -> Vec<Value> {
    let (s, body) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit?type={event_type}"),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn magic_link_survives_email_scanner_prefetch() {
    let (srv, _, browser, _, mail, link) = link_login("ada@example.com").await;
    assert!(
        link.starts_with(&format!("{}/login/magic/sgm_", srv.base)),
        "built from public_url: {link}"
    );
    assert_eq!(code(&mail).len(), 6, "the mail carries the code too");

    // The scanner: no cookies, HEAD then GET, then even a form POST.
    let scanner = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let head = scanner.head(&link).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.headers().get(SET_COOKIE).is_none());
    let get = scanner.get(&link).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert!(get.headers().get(SET_COOKIE).is_none());
    assert_eq!(get.headers()[REFERRER_POLICY], "no-referrer");
    assert_eq!(get.headers()[CACHE_CONTROL], "no-store");
    let csp = get.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let page = get.text().await.unwrap();
    assert!(page.contains("Continue signing in"), "{page}");
    assert!(page.contains("method=\"post\""), "{page}");
    assert!(
        !page.contains("https://") && !page.contains("//cdn"),
        "no third-party loads: {page}"
    );
    // A POST without our Origin is refused as cross-site (login CSRF).
    let forged = scanner.post(&link).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // A POST from the right origin but without the flow's cookie is another device.
    let other = scanner.post(&link).header(ORIGIN, &srv.base).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert!(other.headers().get(SET_COOKIE).is_none());
    assert!(other
        .text()
        .await
        .unwrap()
        .contains("Finish signing in where you started"));
    assert_eq!(browser.session().await.0, StatusCode::UNAUTHORIZED);

    // The person, in the browser that asked: still works.
    let resp = browser.confirm(&link).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/account");
    let (s, session) = browser.session().await;
    assert_eq!(s, StatusCode::OK, "{session}");
    assert_eq!(session["user"]["email"], "ada@example.com");
    assert_eq!(session["aal"], "aal1");
    assert_eq!(session["amr"], json!(["mail"]));
    assert_eq!(session["phishing_resistant"], false);
    srv.stop().await;
}

#[tokio::test]
async fn a_link_opened_in_another_browser_is_refused_and_audited_but_the_code_works() {
    let (srv, admin, laptop, flow, mail, link) = link_login("bo@example.com").await;

    // The phone has a flow cookie of its own, from a flow of its own.
    let phone = Browser::new(&srv);
    phone.start("bo@example.com").await;
    let page = phone.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let refused = phone.confirm(&link).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let text = refused.text().await.unwrap();
    assert!(text.contains("type the code"), "{text}");
    assert_eq!(phone.session().await.0, StatusCode::UNAUTHORIZED);
    let events = audit_types(&srv, &admin, "login.cross_device").await;
    assert_eq!(events.len(), 1, "{events:?}");
    // The record names the flow by its id (the client holds its sealed handle).
    assert!(events[0]["details"]["flow_id"]
        .as_str()
        .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()));
    assert!(flow.starts_with("sgf_"), "{flow}");

    // Back on the laptop the code from the same email finishes the flow.
    let (s, done) = laptop.type_code(&flow, &mail).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "complete");
    assert_eq!(done["session"]["amr"], json!(["otp", "mail"]));
    assert!(done.get("session_token").is_none(), "browser mode: cookie only");
    assert_eq!(laptop.session().await.0, StatusCode::OK);
    srv.stop().await;
}

#[tokio::test]
async fn links_and_codes_work_once() {
    let (srv, _, browser, flow, mail, link) = link_login("cy@example.com").await;
    assert_eq!(browser.confirm(&link).await.status(), StatusCode::SEE_OTHER);
    // Used: the page and the button both say so, and nothing 5xx.
    browser.assert_link_gone(&link).await;
    // The flow is finished, so its code is worthless too.
    let (s, err) = browser.type_code(&flow, &mail).await;
    assert_eq!(s, StatusCode::GONE, "{err}");
    assert_eq!(err["error"], "flow_expired");

    // A code, used once, in api mode.
    let (flow, c) = api_code(&srv, "cy@example.com").await;
    let path = format!("/api/v1/login/{flow}/email_otp");
    let (s, done) = srv.call(Method::POST, &path, None, Some(json!({ "code": c }))).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert!(done["session_token"].as_str().unwrap().starts_with("sgs_"));
    expect_error(&srv, &path, json!({ "code": c }), StatusCode::GONE, "flow_expired").await;
    srv.stop().await;
}

#[tokio::test]
async fn a_new_code_replaces_the_previous_one() {
    let (srv, _) = with_user("di@example.com").await;
    let (flow, first) = api_code(&srv, "di@example.com").await;
    let before = smtp_count(&srv);
    let (s, _) = api_send(&srv, &flow, "email_otp").await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let second = code(&srv.wait_mail("di@example.com", before).await);
    let path = format!("/api/v1/login/{flow}/email_otp");
    if first != second {
        expect_error(&srv, &path, json!({ "code": first }), StatusCode::GONE, "code_used").await;
    }
    let (s, done) = srv
        .call(Method::POST, &path, None, Some(json!({ "code": second })))
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    srv.stop().await;
}

#[tokio::test]
async fn codes_and_links_expire() {
    let (srv, _, browser, flow, mail, link) = link_login("ed@example.com").await;
    let text = mail.text_body().unwrap();
    assert!(text.contains("valid for 10 minutes"), "{text}");
    // The flow itself lives 15 minutes; the code and link only 10.
    srv.clock.advance(Duration::from_secs(10 * 60 + 1));
    browser.assert_link_gone(&link).await;
    let (s, err) = browser.type_code(&flow, &mail).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::GONE, Some("code_expired")),
        "{err}"
    );
    assert_eq!(browser.session().await.0, StatusCode::UNAUTHORIZED);
    srv.stop().await;
}

#[tokio::test]
async fn a_tampered_or_foreign_link_is_refused() {
    let (srv, _, browser, _, _, link) = link_login("flo@example.com").await;
    let token = link.rsplit('/').next().unwrap().to_owned();

    // One character changed, cut short, wrong prefix, junk, very long.
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        flipped.clone(),
        token[..token.len() - 1].to_owned(),
        token.replacen("sgm_", "sgi_", 1),
        "%00%ff".to_owned(),
        "x".repeat(5000),
    ] {
        let url = srv.url(&format!("/login/magic/{bad}"));
        let get = browser.http.get(&url).send().await.unwrap();
        assert!(get.status().is_client_error(), "GET {bad:.20}: {}", get.status());
        let post = browser.confirm(&url).await;
        assert!(post.status().is_client_error(), "POST {bad:.20}: {}", post.status());
    }
    assert_eq!(browser.session().await.0, StatusCode::UNAUTHORIZED);

    // Flow A's token presented to flow B (same browser) never finishes B,
    // and does not burn A's link.
    let flow_b = browser.start("flo@example.com").await;
    let (s, err) = browser
        .post(&format!("/api/v1/login/{flow_b}/magic_link"), json!({ "token": token }))
        .await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::GONE, Some("link_invalid")),
        "{err}"
    );
    assert_eq!(browser.confirm(&link).await.status(), StatusCode::SEE_OTHER);
    srv.stop().await;
}

/// What can be told apart between two responses: status, the body with
/// every string value blanked, and the header names.
async fn observable(resp: reqwest::Response) -> (StatusCode, Vec<String>, Value) {
    let (status, names) = (resp.status(), header_names(&resp));
    let body: Value = resp.json().await.unwrap();
    (status, names, shape(&body))
}

#[tokio::test]
async fn known_and_unknown_addresses_are_answered_alike_and_only_real_ones_get_mail() {
    let (srv, _) = with_user("real@example.com").await;
    for method in ["email_otp", "magic_link"] {
        let mut seen = Vec::new();
        for email in ["real@example.com", "ghost@example.com"] {
            let browser = Browser::new(&srv);
            let start = browser
                .http
                .post(srv.url("/api/v1/login"))
                .header(ORIGIN, &srv.base)
                .json(&json!({ "identifier": email }))
                .send()
                .await
                .unwrap();
            let (s, start_names, start_shape) = observable(start).await;
            assert_eq!(s, StatusCode::OK);
            let flow = {
                let (_, b) = browser.post("/api/v1/login", json!({ "identifier": email })).await;
                b["flow_id"].as_str().unwrap().to_owned()
            };
            let t = std::time::Instant::now();
            let send = browser
                .http
                .post(srv.url(&format!("/api/v1/login/{flow}/{method}/send")))
                .header(ORIGIN, &srv.base)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let took = t.elapsed();
            let sent = observable(send).await;
            let wrong = browser
                .http
                .post(srv.url(&format!("/api/v1/login/{flow}/{method}")))
                .header(ORIGIN, &srv.base)
                .json(&json!({ "code": "000000" }))
                .send()
                .await
                .unwrap();
            let wrong = observable(wrong).await;
            seen.push((start_names, start_shape, sent, wrong, took));
        }
        let (k, u) = (&seen[0], &seen[1]);
        assert_eq!((&k.0, &k.1), (&u.0, &u.1), "{method}: start");
        assert_eq!(k.2, u.2, "{method}: send");
        assert_eq!(k.2 .0, StatusCode::ACCEPTED);
        assert_eq!(k.3, u.3, "{method}: a wrong code");
        // The response never waits on SMTP or on work only a real account needs.
        assert!(
            k.4 < Duration::from_secs(2) && u.4 < Duration::from_secs(2),
            "{:?} {:?}",
            k.4,
            u.4
        );
    }
    srv.wait_mail("real@example.com", 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ghosts = srv
        .smtp
        .as_ref()
        .unwrap()
        .messages()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t.contains("ghost")))
        .count();
    assert_eq!(ghosts, 0, "nothing is ever sent to an unknown address");
    srv.stop().await;
}

#[tokio::test]
async fn twenty_parallel_redemptions_of_one_code_or_link_give_one_session() {
    let (srv, _) = with_user("race@example.com").await;

    // A code, in api mode.
    let (flow, c) = api_code(&srv, "race@example.com").await;
    let path = format!("/api/v1/login/{flow}/email_otp");
    let tries = (0..20).map(|_| srv.call(Method::POST, &path, None, Some(json!({ "code": c }))));
    let results = futures::future::join_all(tries).await;
    let wins = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(wins, 1, "{results:?}");
    assert!(results.iter().all(|(s, _)| !s.is_server_error()), "{results:?}");

    // A link, in the browser that asked.
    let browser = Browser::new(&srv);
    let (_, mail) = browser.magic_mail(&srv, "race@example.com").await;
    let link = magic_link(&srv, &mail);
    let tries = (0..20).map(|_| browser.confirm(&link));
    let statuses: Vec<StatusCode> = futures::future::join_all(tries)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::SEE_OTHER).count(),
        1,
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|s| !s.is_server_error()), "{statuses:?}");
    srv.stop().await;
}

#[tokio::test]
async fn five_wrong_codes_end_the_flow() {
    let (srv, _) = with_user("gus@example.com").await;
    let (flow, right) = api_code(&srv, "gus@example.com").await;
    let wrong = if right == "111111" { "222222" } else { "111111" };
    let path = format!("/api/v1/login/{flow}/email_otp");
    for _ in 0..4 {
        expect_error(
            &srv,
            &path,
            json!({ "code": wrong }),
            StatusCode::BAD_REQUEST,
            "invalid_code",
        )
        .await;
    }
    expect_error(
        &srv,
        &path,
        json!({ "code": wrong }),
        StatusCode::GONE,
        "too_many_attempts",
    )
    .await;
    // Dead: even the right code cannot revive it.
    expect_error(&srv, &path, json!({ "code": right }), StatusCode::GONE, "flow_expired").await;
    // Input that is not a code at all is a 4xx, never a 5xx.
    let flow = api_flow_with_code(&srv, "gus@example.com").await;
    let path = format!("/api/v1/login/{flow}/email_otp");
    for body in [
        json!({ "code": 123456 }),
        json!({ "code": "" }),
        json!({ "code": "١٢٣٤٥٦" }),
        json!({ "code": "9".repeat(10_000) }),
        json!({}),
    ] {
        let (s, _) = srv.call(Method::POST, &path, None, Some(body.clone())).await;
        assert!(s.is_client_error(), "{body}: {s}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn the_send_limit_answers_429_with_retry_after_for_known_and_unknown_alike() {
    let (srv, _) = with_user("hal@example.com").await;
    let mut answers = Vec::new();
    for email in ["hal@example.com", "nobody@example.com"] {
        let flow = api_start(&srv, email).await;
        let send = || {
            srv.http
                .post(srv.url(&format!("/api/v1/login/{flow}/email_otp/send")))
                .json(&json!({}))
                .send()
        };
        for _ in 0..3 {
            assert_eq!(send().await.unwrap().status(), StatusCode::ACCEPTED);
        }
        let limited = send().await.unwrap();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_header: u64 = limited.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
        let (status, names, shape) = observable(limited).await;
        answers.push((status, names, shape));
        assert!((1..=600).contains(&retry_header), "{retry_header}");
        // Another flow for the same address does not get around it.
        let other = api_start(&srv, email.to_uppercase()).await;
        let (s, err) = api_send(&srv, &other, "email_otp").await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err["error"], "rate_limited");
        assert!(err["retry_after"].as_u64().unwrap() >= 1);
    }
    assert_eq!(
        answers[0], answers[1],
        "known and unknown addresses hit the limit identically"
    );
    // When the window is over, sending works again.
    srv.clock.advance(Duration::from_secs(601));
    api_code(&srv, "hal@example.com").await;
    srv.stop().await;
}

#[tokio::test]
async fn the_account_failure_counter_spans_flows_and_a_new_code_does_not_reset_it() {
    let (srv, _) = with_user("ivy@example.com").await;
    // Two flows, five wrong codes each: both die, ten failures on the account.
    fail_ten_times(&srv, "ivy@example.com").await;
    // A third flow with a fresh code: the account is backing off, so even
    // the right code must wait.
    let (flow, right) = api_code(&srv, "ivy@example.com").await;
    let path = format!("/api/v1/login/{flow}/email_otp");
    let (s, err) = srv
        .call(Method::POST, &path, None, Some(json!({ "code": right })))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{err}");
    assert_eq!(err["error"], "rate_limited");
    let wait = err["retry_after"].as_u64().unwrap();
    assert!(wait >= 1, "{err}");
    srv.clock.advance(Duration::from_secs(wait));
    let (s, done) = srv
        .call(Method::POST, &path, None, Some(json!({ "code": right })))
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    // Success ended the run: a wrong code afterwards costs no wait.
    let flow = api_flow_with_code(&srv, "ivy@example.com").await;
    let path = format!("/api/v1/login/{flow}/email_otp");
    let (s, err) = srv
        .call(Method::POST, &path, None, Some(json!({ "code": "000000" })))
        .await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_code"))
    );
    srv.stop().await;
}

#[tokio::test]
async fn during_backoff_a_parallel_burst_across_flows_gets_one_comparison_per_delay() {
    let (srv, _) = with_user("burst@example.com").await;
    // Ten failures (two flows of five): the account backs off from here.
    fail_ten_times(&srv, "burst@example.com").await;
    // The delay has passed; twenty guesses arrive at once over four flows.
    srv.clock.advance(Duration::from_secs(60));
    let mut paths = Vec::new();
    for _ in 0..4 {
        let flow = api_start(&srv, "burst@example.com").await;
        for _ in 0..5 {
            paths.push(format!("/api/v1/login/{flow}/email_otp"));
        }
    }
    let results = futures::future::join_all(
        paths
            .iter()
            .map(|p| srv.call(Method::POST, p, None, Some(json!({ "code": "000000" })))),
    )
    .await;
    let compared = results.iter().filter(|(s, _)| *s == StatusCode::BAD_REQUEST).count();
    let waited = results
        .iter()
        .filter(|(s, b)| *s == StatusCode::TOO_MANY_REQUESTS && b["error"] == "rate_limited")
        .count();
    assert_eq!((compared, waited), (1, 19), "one comparison per delay: {results:?}");
    srv.stop().await;
}

#[tokio::test]
async fn typing_an_old_code_again_and_again_is_not_a_guess() {
    let (srv, _) = with_user("old@example.com").await;
    let before = smtp_count(&srv);
    let flow = api_flow_with_code(&srv, "old@example.com").await;
    let old = code(&srv.wait_mail("old@example.com", before).await);
    // A second email replaces the first code.
    let before = smtp_count(&srv);
    let (s, _) = api_send(&srv, &flow, "email_otp").await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let new = code(&srv.wait_mail("old@example.com", before).await);
    let path = format!("/api/v1/login/{flow}/email_otp");
    // More tries than the flow's five and the account's ten before backoff.
    for _ in 0..12 {
        let (s, err) = srv.call(Method::POST, &path, None, Some(json!({ "code": old }))).await;
        if old == new {
            break; // one chance in a million: the same digits again
        }
        assert_eq!(
            (s, err["error"].as_str()),
            (StatusCode::GONE, Some("code_used")),
            "neither the flow nor the account counted it: {err}"
        );
    }
    let (s, done) = srv.call(Method::POST, &path, None, Some(json!({ "code": new }))).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    srv.stop().await;
}

#[tokio::test]
async fn a_code_sent_late_in_a_flow_lives_as_long_as_its_email_says() {
    let (srv, _) = with_user("late@example.com").await;
    let flow = api_start(&srv, "late@example.com").await;
    // Twelve minutes into a fifteen-minute flow, a code is sent...
    srv.clock.advance(Duration::from_secs(12 * 60));
    let before = smtp_count(&srv);
    let (s, _) = api_send(&srv, &flow, "email_otp").await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let mail = srv.wait_mail("late@example.com", before).await;
    let text = mail.text_body().unwrap();
    assert!(text.contains("valid for 10 minutes"), "{text}");
    // ...and works nine minutes later, past the flow's original end.
    srv.clock.advance(Duration::from_secs(9 * 60));
    let (s, done) = api_type_code(&srv, &flow, &code(&mail)).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    srv.stop().await;
}

#[tokio::test]
async fn magic_links_are_browser_only_and_the_standard_tier_needs_more_than_email() {
    // The built-in policy: the standard tier lists email_otp but needs aal2.
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    srv.create_user(&admin, "jo@example.com").await;
    let flow = api_start(&srv, "jo@example.com").await;
    let (s, err) = api_send(&srv, &flow, "magic_link").await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("method_not_allowed"))
    );
    let before = smtp_count(&srv);
    let flow = api_flow_with_code(&srv, "jo@example.com").await;
    let mail = srv.wait_mail("jo@example.com", before).await;
    assert!(mail.find_link(&srv.url("/login/magic/")).is_none(), "api mode: no link");
    let (s, cont) = api_type_code(&srv, &flow, &code(&mail)).await;
    assert_eq!(s, StatusCode::OK, "{cont}");
    assert_eq!(cont["state"], "continue", "an email code is aal1 and never more");
    assert_eq!(cont["required_aal"], "aal2");
    srv.stop().await;
}

#[tokio::test]
async fn a_form_post_with_a_null_origin_counts_as_ours_only_when_the_browser_says_same_origin() {
    // Under `Referrer-Policy: no-referrer` browsers send `Origin: null` on a
    // form POST; `Sec-Fetch-Site` (which page script cannot set) tells a
    // same-origin form from a cross-site or opaque one.
    let (srv, _, browser, _, _, link) = link_login("kim@example.com").await;
    let post = |site: Option<&'static str>| {
        let mut req = browser.http.post(&link).header(ORIGIN, "null");
        if let Some(site) = site {
            req = req.header("sec-fetch-site", site);
        }
        req.send()
    };
    for site in [None, Some("cross-site"), Some("same-site"), Some("none")] {
        let resp = post(site).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{site:?}");
        assert!(resp.headers().get(SET_COOKIE).is_none());
    }
    let resp = post(Some("same-origin")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(browser.session().await.0, StatusCode::OK);
    srv.stop().await;
}

#[tokio::test]
async fn after_100_consecutive_failures_email_codes_are_refused_for_a_day() {
    let (srv, admin) = with_user("lee@example.com").await;
    let mut flow = api_start(&srv, "lee@example.com").await;
    let mut failures = 0;
    while failures < 100 {
        let path = format!("/api/v1/login/{flow}/email_otp");
        let (s, err) = srv
            .call(Method::POST, &path, None, Some(json!({ "code": "000000" })))
            .await;
        match (s, err["error"].as_str().unwrap()) {
            (StatusCode::BAD_REQUEST, "invalid_code") => failures += 1,
            (StatusCode::GONE, "too_many_attempts") => {
                failures += 1;
                flow = api_start(&srv, "lee@example.com").await;
            }
            // Backing off: wait as told (the wait is never a failure).
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited") => {
                let wait = err["retry_after"].as_u64().unwrap();
                assert!((1..=900).contains(&wait), "backoff is capped at 15 minutes: {err}");
                srv.clock.advance(Duration::from_secs(wait));
            }
            // The waits outlived the flow.
            (StatusCode::GONE, "flow_expired") => flow = api_start(&srv, "lee@example.com").await,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(audit_types(&srv, &admin, "login.locked").await.len(), 1);
    // Locked: even the right code from a fresh email is refused, for about a day.
    let (flow, right) = api_code(&srv, "lee@example.com").await;
    let path = format!("/api/v1/login/{flow}/email_otp");
    let (s, err) = srv
        .call(Method::POST, &path, None, Some(json!({ "code": right })))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{err}");
    assert!(err["retry_after"].as_u64().unwrap() > 23 * 3600, "{err}");
    // A day without failures ends the run.
    srv.clock.advance(Duration::from_secs(24 * 3600));
    let (flow, right) = api_code(&srv, "lee@example.com").await;
    let path = format!("/api/v1/login/{flow}/email_otp");
    let (s, done) = srv
        .call(Method::POST, &path, None, Some(json!({ "code": right })))
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    srv.stop().await;
}

#[tokio::test]
async fn a_magic_link_returns_to_the_flows_same_origin_return_to() {
    let (srv, _) = with_user("max@example.com").await;
    let browser = Browser::new(&srv);
    let (s, err) = browser
        .post(
            "/api/v1/login",
            json!({ "identifier": "max@example.com", "return_to": "https://evil.example/x" }),
        )
        .await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_return_to"))
    );
    let (s, started) = browser
        .post(
            "/api/v1/login",
            json!({ "identifier": "max@example.com", "return_to": "/account?from=mail" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{started}");
    let flow = started["flow_id"].as_str().unwrap();
    let before = smtp_count(&srv);
    // The request claims another host: links are built from public_url only.
    let send = browser
        .http
        .post(srv.url(&format!("/api/v1/login/{flow}/magic_link/send")))
        .header(ORIGIN, &srv.base)
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "host=evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(send.status(), StatusCode::ACCEPTED);
    let mail = srv.wait_mail("max@example.com", before).await;
    assert!(!mail.raw.contains("evil.example"));
    let link = magic_link(&srv, &mail);
    let resp = browser.confirm(&link).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], srv.url("/account?from=mail"));
    srv.stop().await;
}

#[tokio::test]
async fn a_magic_link_in_a_tier_that_needs_aal2_only_takes_the_first_step() {
    let srv = TestServer::start_with(Options {
        policy: Some(LOW_POLICY.replace("required_aal = \"aal1\"", "required_aal = \"aal2\"")),
        ..Default::default()
    })
    .await;
    let admin = srv.admin_token().await;
    srv.create_user(&admin, "nia@example.com").await;
    let browser = Browser::new(&srv);
    let (flow, mail) = browser.magic_mail(&srv, "nia@example.com").await;
    let resp = browser.confirm(&magic_link(&srv, &mail)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get(SET_COOKIE).is_none(), "no session for half a login");
    let page = resp.text().await.unwrap();
    assert!(page.contains("One more step"));
    // The page carries the same flow and its next methods (the tier's second
    // factor, a passkey with fresh request options) for its script.
    let data = page
        .split(r#"<script type="application/json" id="flow-continue">"#)
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .expect("the flow's next step on the page");
    let next: Value = serde_json::from_str(data).unwrap();
    // A handle of the same flow, sealed anew with its progress.
    assert!(
        next["flow_id"]
            .as_str()
            .is_some_and(|h| h.starts_with("sgf_") && h != flow.as_str()),
        "{next}"
    );
    assert_eq!(next["methods"][0]["method"], "passkey", "{next}");
    assert!(next["methods"][0]["publicKey"]["challenge"].is_string(), "{next}");
    assert_eq!(browser.session().await.0, StatusCode::UNAUTHORIZED);
    srv.stop().await;
}

#[tokio::test]
async fn a_parallel_burst_of_guesses_never_compares_more_than_five_codes() {
    let (srv, _) = with_user("burst@example.com").await;
    let (flow, right) = api_code(&srv, "burst@example.com").await;
    let path = format!("/api/v1/login/{flow}/email_otp");
    // 30 distinct wrong codes at once: each would be a guess.
    let guesses: Vec<String> = (0..30u32)
        .map(|i| format!("{:06}", (i * 7919 + 100_000) % 1_000_000))
        .filter(|g| *g != right)
        .collect();
    let results = futures::future::join_all(
        guesses
            .iter()
            .map(|g| srv.call(Method::POST, &path, None, Some(json!({ "code": g })))),
    )
    .await;
    let compared = results.iter().filter(|(_, b)| b["error"] == "invalid_code").count();
    assert!(
        compared <= 4,
        "at most five comparisons (the fifth ends the flow): {results:?}"
    );
    assert!(results.iter().all(|(s, _)| s.is_client_error()), "no 5xx: {results:?}");
    // And the flow is dead for the right code too.
    let (s, _) = srv
        .call(Method::POST, &path, None, Some(json!({ "code": right })))
        .await;
    assert!(s == StatusCode::GONE || s == StatusCode::TOO_MANY_REQUESTS, "{s}");
    srv.stop().await;
}

#[tokio::test]
async fn a_code_is_not_sent_when_the_accounts_tier_changed_to_one_that_forbids_it_during_a_policy_rollout() {
    // Node A still runs the old policy (no role maps to the privileged
    // tier); node B already runs the new one (`admin` is privileged and
    // signs in with passkeys only). A flow started on A is finished on B.
    let tiers = r#"
[tiers.standard]
login = ["passkey", "email_otp"]
second_factor = ["passkey"]
required_aal = "aal2"
session = { idle = "30m", absolute = "12h" }

[tiers.privileged]
login = ["passkey"]
second_factor = ["passkey"]
required_aal = "aal2"
session = { idle = "15m", absolute = "8h" }
"#;
    let old = format!("{tiers}\n[assignment]\ndefault = \"standard\"\n");
    let new = format!("{tiers}\n[assignment]\ndefault = \"standard\"\nroles = {{ admin = \"privileged\" }}\n");
    let a = TestServer::start_with(crate::support::Options {
        policy: Some(old),
        ..Default::default()
    })
    .await;
    let b = TestServer::start_with(crate::support::Options {
        policy: Some(new),
        shared_db: Some(a.db_url.clone()),
        ..Default::default()
    })
    .await;
    let admin = a.admin_token().await;
    let (s, _) = a
        .call(
            Method::POST,
            "/api/v1/admin/users",
            Some(&admin),
            Some(json!({ "email": "chief@example.com", "roles": ["admin"] })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let flow = api_start(&a, "chief@example.com").await;
    let (s, body) = api_send(&b, &flow, "email_otp").await;
    assert_eq!(s, StatusCode::ACCEPTED, "answered like any address: {body}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        (smtp_count(&a), smtp_count(&b)),
        (0, 0),
        "nothing is sent for a method the account's tier does not allow"
    );
    b.stop().await;
    a.stop().await;
}
