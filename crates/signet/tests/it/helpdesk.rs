//! Help-desk recovery end to end over HTTP: an approved ticket mails a
//! single-use link to the user's registered channels (never to an admin),
//! the link redeems into a recovery session through the recovery
//! completion, and the credential it binds cools off.

use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::passkeys::{authenticator, enroll, post_assertion, start_login};
use crate::recovery::{approve, open_ticket, ticket_server, user_with_role};
use crate::support::{redeem_api, token_of, TestServer};

/// Admin answers, CLI output and log lines must never carry the link.
fn assert_no_link(text: &str, token: &str) {
    assert!(
        !text.contains("/recover/sgr_") && !text.contains(token),
        "a recovery link leaked: {text}"
    );
}

/// A `staff` user (the `standard` tier: two people, 24 h cooling-off) with
/// one passkey, and a full session of theirs.
async fn staff_with_passkey(srv: &TestServer, admin: &str, email: &str) -> (String, String) {
    let id = user_with_role(srv, admin, email, "staff").await;
    let link = srv.invite(admin, &id, email).await;
    let enrollment = redeem_api(srv, &link).await;
    let mut lost = authenticator(srv);
    enroll(srv, &enrollment, &mut lost, Some("Lost phone")).await;
    let (flow, entry) = start_login(srv, Some(email)).await;
    let credential = lost.get(&entry["publicKey"]).await;
    let (s, done) = post_assertion(srv, &flow, credential).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    (id, done["session_token"].as_str().unwrap().to_owned())
}

/// The recovery link mailed to `to` after `skip` messages.
async fn mailed_link(srv: &TestServer, to: &str, skip: usize) -> String {
    srv.mail_to(to, skip, "a recovery link", |m| m.find_link(&srv.url("/recover/")))
        .await
}

/// Opens a ticket with `a` and approves it with `b`; returns the ticket id
/// and every admin answer.
async fn approved_ticket(srv: &TestServer, a: &str, b: &str, user: &str) -> (String, Vec<Value>) {
    let (s, ticket) = open_ticket(srv, a, user).await;
    assert_eq!(s, StatusCode::CREATED, "{ticket}");
    let id = ticket["id"].as_str().unwrap().to_owned();
    let (s, approved) = approve(srv, b, &id).await;
    assert_eq!(s, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "approved");
    (id, vec![ticket, approved])
}

async fn redeem(srv: &TestServer, token: &str) -> (StatusCode, Value) {
    srv.call(
        Method::POST,
        "/api/v1/recovery/redeem",
        None,
        Some(json!({ "token": token, "mode": "api" })),
    )
    .await
}

/// A `MakeWriter` that keeps every log line of this test's thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The process-wide log capture, installed on first use. Global rather
/// than per thread: a per-thread subscriber misses lines while other tests
/// register the same call sites concurrently (tracing caches interest per
/// call site). Lines of other tests running meanwhile land here too, which
/// only widens the search for a leaked link.
fn captured_logs() -> Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,signet=debug,signet_app=debug,signet_web=debug,signet_courier=debug,lettre=debug",
            ))
            .with_writer(logs.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber in the tests");
        logs
    })
    .clone()
}

#[tokio::test]
async fn an_approved_ticket_mails_a_single_use_link_that_recovers_the_account_and_never_shows_it_to_an_admin() {
    // Every log line of the server, at debug (the most an operator would
    // turn on), from here on.
    let logs = captured_logs();
    let srv = ticket_server().await;
    let (a, b) = (srv.admin_token().await, srv.admin_token().await);
    let (user, old_session) = staff_with_passkey(&srv, &a, "sam@example.com").await;

    // Open, not yet approved: nothing is sent.
    let skip = srv.smtp.as_ref().unwrap().messages().len();
    let (s, ticket) = open_ticket(&srv, &a, &user).await;
    assert_eq!(s, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["status"], "pending");
    let id = ticket["id"].as_str().unwrap().to_owned();
    let queued = srv.app().store.list_tickets(None, 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mails = srv.smtp.as_ref().unwrap().messages();
    assert!(
        mails
            .iter()
            .skip(skip)
            .all(|m| m.find_link(&srv.url("/recover/")).is_none()),
        "a pending ticket sent a link"
    );

    let (s, approved) = approve(&srv, &b, &id).await;
    assert_eq!(s, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "approved");
    let link = mailed_link(&srv, "sam@example.com", skip).await;
    let token = token_of(&link);
    assert!(token.starts_with("sgr_"), "{link}");

    // The admin API's listing shows the ticket and its people, not the link.
    let (s, listed) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/recovery-tickets?user_id={user}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{listed}");
    assert_eq!(listed["tickets"][0]["status"], "approved");
    assert_eq!(listed["tickets"][0]["people"].as_array().unwrap().len(), 2);
    let (s, audit) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit?user_id={user}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for body in [&ticket, &approved, &listed, &audit] {
        assert_no_link(&body.to_string(), &token);
    }

    // Looking changes nothing.
    for _ in 0..2 {
        let page = srv.http.get(&link).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("sam@example.com"));
    }

    let (s, redeemed) = redeem(&srv, &token).await;
    assert_eq!(s, StatusCode::OK, "{redeemed}");
    let recovery = redeemed["session_token"].as_str().unwrap().to_owned();
    assert_eq!(redeemed["session"]["aal"], "aal1");

    // Every earlier session ended; the recovery session may only enroll.
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&old_session), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = srv
        .call(Method::GET, "/api/v1/credentials", Some(&recovery), None)
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );

    // Used once.
    let (s, again) = redeem(&srv, &token).await;
    assert_eq!(
        (s, again["error"].as_str()),
        (StatusCode::GONE, Some("recovery_link_invalid"))
    );
    let page = srv.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::GONE);

    // The audit names the ticket, its approver and the evidence reference.
    let (_, ended) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit?user_id={user}&type=session.ended"),
            Some(&a),
            None,
        )
        .await;
    let record = ended["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["details"]["reason"] == "recovery")
        .expect("the recovery is audited")
        .clone();
    assert_eq!(record["details"]["path"], "helpdesk");
    assert_eq!(record["details"]["via"]["kind"], "helpdesk");
    assert_eq!(record["details"]["via"]["ticket"], id.as_str());
    assert_eq!(record["details"]["via"]["approvers"].as_array().unwrap().len(), 1);
    assert_eq!(record["details"]["via"]["evidence"]["reference"], "CASE-4711");

    // The owner is told, with a "this wasn't me" link.
    srv.mail_to("sam@example.com", skip, "a recovery notice with its link", |m| {
        m.subject()
            .filter(|s| s.contains("was recovered"))
            .and_then(|_| m.find_link(&srv.url("/not-me/")))
    })
    .await;

    // The person binds a new passkey with the recovery session, which ends.
    let mut new = authenticator(&srv);
    enroll(&srv, &recovery, &mut new, Some("New phone")).await;
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&recovery), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("message delivered"), "the capture saw the server's logs");
    assert_no_link(&text, &token);
    srv.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_redemptions_of_one_recovery_link_make_one_session() {
    let srv = ticket_server().await;
    let (a, b) = (srv.admin_token().await, srv.admin_token().await);
    let (user, _) = staff_with_passkey(&srv, &a, "kim@example.com").await;
    let skip = srv.smtp.as_ref().unwrap().messages().len();
    approved_ticket(&srv, &a, &b, &user).await;
    let token = token_of(&mailed_link(&srv, "kim@example.com", skip).await);

    let results = futures::future::join_all((0..20).map(|_| redeem(&srv, &token))).await;
    let won: Vec<_> = results.iter().filter(|(s, _)| *s == StatusCode::OK).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for (s, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (*s, body["error"].as_str()),
            (StatusCode::GONE, Some("recovery_link_invalid"))
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn recovery_links_that_are_expired_unknown_or_malformed_get_a_stable_410() {
    let srv = ticket_server().await;
    let (a, b) = (srv.admin_token().await, srv.admin_token().await);
    let (user, _) = staff_with_passkey(&srv, &a, "lee@example.com").await;
    let skip = srv.smtp.as_ref().unwrap().messages().len();
    approved_ticket(&srv, &a, &b, &user).await;
    let token = token_of(&mailed_link(&srv, "lee@example.com", skip).await);

    let unknown = format!("sgr_{}", "A".repeat(token.len() - 4));
    for bad in ["nope", "sgr_", "sgi_abc", "", unknown.as_str()] {
        let (s, body) = redeem(&srv, bad).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (StatusCode::GONE, Some("recovery_link_invalid")),
            "{bad:?}: {body}"
        );
    }
    let page = srv.http.get(srv.url("/recover/sgr_nope")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::GONE);
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/recovery/redeem",
            None,
            Some(json!({ "token": 5 })),
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // A day later the link is dead.
    srv.clock.advance(std::time::Duration::from_secs(24 * 3600 + 1));
    let (s, body) = redeem(&srv, &token).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::GONE, Some("recovery_link_invalid"))
    );

    // A cross-site form never redeems.
    let resp = srv
        .http
        .post(srv.url(&format!("/recover/{token}")))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    srv.stop().await;
}

#[tokio::test]
async fn a_passkey_bound_through_recovery_is_capped_at_aal1_until_the_cooling_off_ends() {
    let srv = ticket_server().await;
    let (a, b) = (srv.admin_token().await, srv.admin_token().await);
    let (user, _) = staff_with_passkey(&srv, &a, "max@example.com").await;
    let skip = srv.smtp.as_ref().unwrap().messages().len();
    approved_ticket(&srv, &a, &b, &user).await;
    let token = token_of(&mailed_link(&srv, "max@example.com", skip).await);
    let (s, redeemed) = redeem(&srv, &token).await;
    assert_eq!(s, StatusCode::OK, "{redeemed}");
    let mut new = authenticator(&srv);
    enroll(&srv, redeemed["session_token"].as_str().unwrap(), &mut new, Some("New")).await;

    // Within the 24 h: the login completes, at aal1 only.
    srv.clock.advance(std::time::Duration::from_secs(23 * 3600));
    let (flow, entry) = start_login(&srv, Some("max@example.com")).await;
    let (s, done) = post_assertion(&srv, &flow, new.get(&entry["publicKey"]).await).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "complete", "{done}");
    assert_eq!(done["session"]["aal"], "aal1", "{done}");
    let session = done["session_token"].as_str().unwrap().to_owned();

    // A sensitive action needs aal2, and the restricted passkey cannot
    // step up to it.
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/credentials/passkey/begin",
            Some(&session),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("step_up_required")),
        "{body}"
    );
    let (s, started) = srv
        .call(
            Method::POST,
            "/api/v1/step-up",
            Some(&session),
            Some(json!({ "action": "add_credential" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{started}");
    let flow = started["flow_id"].as_str().unwrap();
    let entry = started["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "passkey")
        .expect("passkey is offered")
        .clone();
    let (s, stepped) = srv
        .call(
            Method::POST,
            &format!("/api/v1/step-up/{flow}/passkey"),
            Some(&session),
            Some(json!({ "credential": new.get(&entry["publicKey"]).await })),
        )
        .await;
    assert_ne!(
        stepped["state"], "complete",
        "a restricted passkey raised a session: {stepped}"
    );
    let _ = s;
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/credentials/passkey/begin",
            Some(&session),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("step_up_required"))
    );

    // After the period, the same passkey proves aal2 again.
    srv.clock.advance(std::time::Duration::from_secs(3600 + 1));
    let (flow, entry) = start_login(&srv, Some("max@example.com")).await;
    let (s, done) = post_assertion(&srv, &flow, new.get(&entry["publicKey"]).await).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["session"]["aal"], "aal2", "{done}");
    let full = done["session_token"].as_str().unwrap();
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/credentials/passkey/begin",
            Some(full),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn the_recovery_ticket_cli_acts_as_one_admin_token_and_never_prints_the_link() {
    let srv = ticket_server().await;
    let (a, b) = (srv.admin_token().await, srv.admin_token().await);
    let _ = staff_with_passkey(&srv, &a, "cli@example.com").await;
    let skip = srv.smtp.as_ref().unwrap().messages().len();
    let cli = |token: Option<&str>, args: &'static [&'static str], extra: Vec<String>| {
        let srv = &srv;
        let token = token.map(str::to_owned);
        async move {
            let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
            all.extend(extra);
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            crate::cli::signet_with_env(srv, &refs, token.map(|t| ("SIGNET_ADMIN_TOKEN".to_owned(), t))).await
        }
    };

    let out = cli(None, &["recovery-ticket", "list", "--json"], vec![]).await;
    assert!(!out.status.success(), "no token, no help-desk work");

    let out = cli(
        Some(&a),
        &[
            "recovery-ticket",
            "create",
            "--json",
            "--reason",
            "lost both devices",
            "--evidence-kind",
            "video_call",
            "--evidence-reference",
            "CASE-9",
        ],
        vec!["cli@example.com".into()],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["status"], "pending");
    let id = created["id"].as_str().unwrap().to_owned();

    let out = cli(Some(&a), &["recovery-ticket", "approve", "--json"], vec![id.clone()]).await;
    assert!(!out.status.success());
    let refused: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(refused["error"], "own_ticket");

    let out = cli(Some(&b), &["recovery-ticket", "approve", "--json"], vec![id.clone()]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let approved: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(approved["status"], "approved");
    let approve_output = [out.stdout.clone(), out.stderr.clone()].concat();

    let out = cli(Some(&b), &["recovery-ticket", "list", "--json"], vec![]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["tickets"][0]["id"], id.as_str());
    let list_output = [out.stdout.clone(), out.stderr.clone()].concat();

    let token = token_of(&mailed_link(&srv, "cli@example.com", skip).await);
    for output in [approve_output, list_output] {
        assert_no_link(&String::from_utf8_lossy(&output), &token);
    }
    srv.stop().await;
}

/// A browser-mode passkey sign-in sending `device` as the device cookie
/// (none: a browser that has none). Returns the answer and the device
/// cookie the response set, if any.
async fn browser_sign_in(
    srv: &TestServer,
    auth: &mut crate::passkeys::soft::SoftAuthenticator,
    email: &str,
    device: Option<&str>,
) -> (Value, Option<String>) {
    let cookie_of = |resp: &reqwest::Response, name: &str| {
        resp.headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let mut jar = Vec::new();
    if let Some(d) = device {
        jar.push(format!("signet_device={d}"));
    }
    let started = srv
        .http
        .post(srv.url("/api/v1/login"))
        .headers(srv.same_origin())
        .header(reqwest::header::COOKIE, jar.join("; "))
        .json(&json!({ "identifier": email, "mode": "browser" }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::OK);
    if let Some(flow) = cookie_of(&started, "signet_flow") {
        jar.push(format!("signet_flow={flow}"));
    }
    let started: Value = started.json().await.unwrap();
    let entry = started["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "passkey")
        .unwrap()
        .clone();
    let credential = auth.get(&entry["publicKey"]).await;
    let done = srv
        .http
        .post(srv.url(&format!(
            "/api/v1/login/{}/passkey",
            started["flow_id"].as_str().unwrap()
        )))
        .headers(srv.same_origin())
        .header(reqwest::header::COOKIE, jar.join("; "))
        .json(&json!({ "credential": credential }))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let set = cookie_of(&done, "signet_device");
    let body: Value = done.json().await.unwrap();
    assert_eq!(body["state"], "complete", "{body}");
    (body, set)
}

/// How many "new device" notices reached `to`.
fn new_device_notices(srv: &TestServer, to: &str) -> Vec<signet_testkit::CapturedMail> {
    srv.smtp
        .as_ref()
        .unwrap()
        .messages()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
        .filter(|m| m.subject().is_some_and(|s| s.contains("from a new device")))
        .collect()
}

#[tokio::test]
async fn a_browser_sign_in_from_a_new_device_tells_the_owner_with_a_not_me_link() {
    let srv = TestServer::start().await;
    let (user, enrollment) = crate::passkeys::invited(&srv, "nia@example.com").await;
    let mut auth = authenticator(&srv);
    enroll(&srv, &enrollment, &mut auth, None).await;

    // The first browser is the account's baseline: no notice, and it is
    // given its device cookie with the session.
    let (_, first) = browser_sign_in(&srv, &mut auth, "nia@example.com", None).await;
    let first = first.expect("the session came with a device cookie");
    assert!(first.starts_with("sgd_"));
    // The same browser again: known, no new cookie.
    let (_, again) = browser_sign_in(&srv, &mut auth, "nia@example.com", Some(&first)).await;
    assert_eq!(again, None);
    // Api mode is not judged.
    crate::passkeys::sign_in(&srv, &mut auth, Some("nia@example.com")).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(new_device_notices(&srv, "nia@example.com").is_empty());

    // Another browser: the owner is told, with the "this wasn't me" link.
    let (_, second) = browser_sign_in(&srv, &mut auth, "nia@example.com", None).await;
    assert!(second.is_some_and(|s| s != first));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let notice = loop {
        if let Some(m) = new_device_notices(&srv, "nia@example.com").pop() {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "no new-device notice");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        notice.find_link(&srv.url("/not-me/")).is_some(),
        "the notice carries the link"
    );
    let admin = srv.admin_token().await;
    let (_, audit) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit?user_id={user}&type=login.new_device"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(audit["events"].as_array().unwrap().len(), 1, "{audit}");
    // Both browsers are known now.
    browser_sign_in(&srv, &mut auth, "nia@example.com", Some(&first)).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(new_device_notices(&srv, "nia@example.com").len(), 1);
    srv.stop().await;
}
