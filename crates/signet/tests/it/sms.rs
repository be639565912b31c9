//! SMS codes (`sms_otp`) end to end through the real server and a real
//! HTTP listener standing in for the SMS gateway: adding and confirming a
//! phone, signing in with a texted code, the code rules (single use under
//! a burst, five wrong codes, a new code never resets the failure count),
//! bad phone input, every pumping limit, and the Twilio request shape.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use signet_testkit::{CapturedRequest, HttpSink};

use crate::support::{redeem_api, Options, TestServer};

/// A tier that signs in with an emailed or a texted code (aal1).
const SMS_POLICY: &str = r#"
[tiers.low]
login = ["email_otp", "sms_otp"]
second_factor = ["passkey"]
required_aal = "aal1"
session = { idle = "8h", absolute = "24h" }

[assignment]
default = "low"
"#;

/// A UK mobile number (Ofcom's range for drama use is 07700 900xxx, which
/// libphonenumber does not list as assigned, so a real-looking one).
const PHONE: &str = "+447400123456";

async fn server_with(sink: &HttpSink, env: &[(&str, &str)]) -> TestServer {
    let mut all = vec![("SIGNET_SMS__WEBHOOK_URL".to_owned(), sink.url())];
    all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    TestServer::start_with(Options {
        policy: Some(SMS_POLICY.into()),
        env: all,
        ..Default::default()
    })
    .await
}

/// A new account and a session of it (an invitation's), and an admin token.
async fn member(srv: &TestServer, email: &str) -> (String, String) {
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, email).await;
    let token = redeem_api(srv, &srv.invite(&admin, &id, email).await).await;
    (token, admin)
}

fn texts_to(sink: &HttpSink, to: &str) -> Vec<CapturedRequest> {
    sink.requests()
        .into_iter()
        .filter(|r| {
            r.json.as_ref().is_some_and(|j| {
                // A code text starts with the code; security notices (a
                // phone added, say) start with the product's name.
                j["to"] == to
                    && j["body"]
                        .as_str()
                        .is_some_and(|b| b.starts_with(|c: char| c.is_ascii_digit()))
            })
        })
        .collect()
}

/// Waits for code text number `n` (0-based) to `to` and returns its code.
async fn code_in_text(sink: &HttpSink, to: &str, n: usize) -> String {
    for _ in 0..200 {
        if let Some(r) = texts_to(sink, to).get(n) {
            let body = r.json.as_ref().unwrap()["body"].as_str().unwrap().to_owned();
            return body.chars().take_while(char::is_ascii_digit).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no text #{n} to {to}");
}

async fn add_phone(srv: &TestServer, token: &str, phone: Value) -> (StatusCode, Value) {
    srv.call(
        Method::POST,
        "/api/v1/credentials/phone",
        Some(token),
        Some(json!({ "phone": phone })),
    )
    .await
}

async fn verify_phone(srv: &TestServer, token: &str, code: Value) -> (StatusCode, Value) {
    srv.call(
        Method::POST,
        "/api/v1/credentials/phone/verify",
        Some(token),
        Some(json!({ "code": code })),
    )
    .await
}

/// Adds and confirms `PHONE` for a new account; returns its session token.
async fn with_phone(srv: &TestServer, sink: &HttpSink, email: &str) -> String {
    let (token, _) = member(srv, email).await;
    let before = texts_to(sink, PHONE).len();
    let (s, body) = add_phone(srv, &token, json!(PHONE)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let code = code_in_text(sink, PHONE, before).await;
    let (s, added) = verify_phone(srv, &token, json!(code)).await;
    assert_eq!(s, StatusCode::CREATED, "{added}");
    token
}

async fn start(srv: &TestServer, email: &str) -> (String, Value) {
    let (s, started) = srv
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "identifier": email, "mode": "api" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{started}");
    (started["flow_id"].as_str().unwrap().to_owned(), started)
}

async fn send(srv: &TestServer, flow: &str) -> StatusCode {
    srv.call(
        Method::POST,
        &format!("/api/v1/login/{flow}/sms_otp/send"),
        None,
        Some(json!({})),
    )
    .await
    .0
}

async fn step(srv: &TestServer, flow: &str, code: &str) -> (StatusCode, Value) {
    srv.call(
        Method::POST,
        &format!("/api/v1/login/{flow}/sms_otp"),
        None,
        Some(json!({ "code": code })),
    )
    .await
}

fn wrong(code: &str) -> String {
    let first = if code.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &code[1..])
}

#[tokio::test]
async fn a_confirmed_phone_is_a_credential_and_signs_in() {
    let sink = HttpSink::start().await.unwrap();
    let srv = server_with(&sink, &[]).await;
    let token = with_phone(&srv, &sink, "ada@example.com").await;

    let text = texts_to(&sink, PHONE)[0].json.clone().unwrap();
    let body = text["body"].as_str().unwrap();
    assert!(body.contains("phone confirmation code"), "{body}");
    assert!(body.contains("Never share it"), "{body}");

    // A second phone is refused while one is on the account.
    let (s, err) = add_phone(&srv, &token, json!("+447400123457")).await;
    assert_eq!((s, err["error"].as_str()), (StatusCode::CONFLICT, Some("phone_exists")));

    let (flow, started) = start(&srv, "ada@example.com").await;
    let offer = started["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "sms_otp")
        .cloned()
        .expect("sms_otp offered");
    assert_eq!(offer["channel"], "sms");
    assert_eq!(offer["input"], "code");
    assert_eq!(offer["send"], true);
    assert!(
        offer.get("recipient").is_none(),
        "a login offer names no number: {offer}"
    );

    assert_eq!(send(&srv, &flow).await, StatusCode::ACCEPTED);
    let code = code_in_text(&sink, PHONE, 1).await;
    let (s, done) = step(&srv, &flow, &code).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "complete");
    assert_eq!(done["session"]["amr"], json!(["sms", "otp"]), "RFC 8176: {done}");
    let session = done["session_token"].as_str().unwrap().to_owned();
    let (s, listed) = srv.call(Method::GET, "/api/v1/credentials", Some(&session), None).await;
    assert_eq!(s, StatusCode::OK);
    let phones: Vec<&Value> = listed["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "sms_otp")
        .collect();
    assert_eq!(phones.len(), 1, "{listed}");
    assert_eq!(phones[0]["phone"], "+44••••••••56", "shown masked");

    // Removable like any credential; then a send texts nobody.
    let id = phones[0]["id"].as_str().unwrap();
    let (s, body) = crate::passkeys::remove_credential(&srv, &session, id).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    // A removed phone gets no code: a send texts nobody.
    let texted = texts_to(&sink, PHONE).len();
    let (flow, _) = start(&srv, "ada@example.com").await;
    assert_eq!(send(&srv, &flow).await, StatusCode::ACCEPTED, "answered as before");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(texts_to(&sink, PHONE).len(), texted, "no code without a verified phone");
    srv.stop().await;
}

#[tokio::test]
async fn security_notices_text_the_verified_phone() {
    // The account has no number recorded by an administrator: its only
    // phone is the one its owner proved with a code.
    let sink = HttpSink::start().await.unwrap();
    let srv = server_with(&sink, &[]).await;
    let token = with_phone(&srv, &sink, "notified@example.com").await;
    let (s, body) = srv
        .call(Method::POST, "/api/v1/credentials/recovery-codes", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let notice = sink
        .wait_for(
            |r| {
                r.json.as_ref().is_some_and(|j| {
                    j["to"] == PHONE
                        && j["body"]
                            .as_str()
                            .is_some_and(|b| b.contains("recovery codes were generated"))
                })
            },
            Duration::from_secs(10),
        )
        .await;
    assert!(notice.is_some(), "texts: {:?}", texts_to(&sink, PHONE));
    srv.stop().await;
}

#[tokio::test]
async fn an_administrators_phone_is_not_a_way_in() {
    let sink = HttpSink::start().await.unwrap();
    let srv = server_with(&sink, &[]).await;
    let admin = srv.admin_token().await;
    let (s, _) = srv
        .call(
            Method::POST,
            "/api/v1/admin/users",
            Some(&admin),
            Some(json!({ "email": "bo@example.com", "phone": PHONE })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (flow, _) = start(&srv, "bo@example.com").await;
    assert_eq!(send(&srv, &flow).await, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(texts_to(&sink, PHONE).is_empty(), "an unverified number gets no code");
    srv.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_redemptions_of_one_code_make_one_session() {
    let sink = HttpSink::start().await.unwrap();
    let srv = server_with(&sink, &[]).await;
    with_phone(&srv, &sink, "race@example.com").await;
    let (flow, _) = start(&srv, "race@example.com").await;
    assert_eq!(send(&srv, &flow).await, StatusCode::ACCEPTED);
    let code = code_in_text(&sink, PHONE, 1).await;
    let attempts = (0..20).map(|_| step(&srv, &flow, &code));
    let results = futures::future::join_all(attempts).await;
    let wins = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(wins, 1, "{results:?}");
    for (s, body) in &results {
        assert!(s.is_success() || s.is_client_error(), "never a 5xx: {s} {body}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn five_wrong_codes_end_the_flow_and_a_new_code_resets_nothing() {
    let sink = HttpSink::start().await.unwrap();
    // Send limits out of the way: this is about guessing.
    let srv = server_with(
        &sink,
        &[
            ("SIGNET_SMS__SENDS_PER_NUMBER", "50"),
            ("SIGNET_LOGIN__SENDS_PER_ADDRESS", "50"),
        ],
    )
    .await;
    with_phone(&srv, &sink, "guess@example.com").await;
    let (flow, _) = start(&srv, "guess@example.com").await;
    assert_eq!(send(&srv, &flow).await, StatusCode::ACCEPTED);
    let first = code_in_text(&sink, PHONE, 1).await;
    for _ in 0..4 {
        let (s, err) = step(&srv, &flow, &wrong(&first)).await;
        assert_eq!(
            (s, err["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_code"))
        );
    }
    // A new code replaces the old one but not the count of wrong ones.
    assert_eq!(send(&srv, &flow).await, StatusCode::ACCEPTED);
    let second = code_in_text(&sink, PHONE, 2).await;
    let (s, err) = step(&srv, &flow, &first).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::GONE, Some("code_used")),
        "replaced"
    );
    let (s, err) = step(&srv, &flow, &wrong(&second)).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::GONE, Some("too_many_attempts"))
    );
    let (s, _) = step(&srv, &flow, &second).await;
    assert_eq!(s, StatusCode::GONE, "the flow is over, even for the right code");

    // Another flow, five more wrong codes: ten failures in a row on the
    // account, across flows and new codes. From there each attempt waits.
    let (flow, _) = start(&srv, "guess@example.com").await;
    assert_eq!(send(&srv, &flow).await, StatusCode::ACCEPTED);
    let third = code_in_text(&sink, PHONE, 3).await;
    for _ in 0..5 {
        step(&srv, &flow, &wrong(&third)).await;
    }
    let (flow, _) = start(&srv, "guess@example.com").await;
    assert_eq!(send(&srv, &flow).await, StatusCode::ACCEPTED);
    let fourth = code_in_text(&sink, PHONE, 4).await;
    let (s, err) = step(&srv, &flow, &fourth).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "a new code did not reset the account's run: {err}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn bad_phone_input_gets_stable_4xx_codes() {
    let sink = HttpSink::start().await.unwrap();
    let srv = server_with(&sink, &[]).await;
    let (token, _) = member(&srv, "input@example.com").await;
    for (bad, code) in [
        (json!("4155550100"), "invalid_phone"),
        (json!("+1"), "invalid_phone"),
        (json!("+44 7400 12345x"), "invalid_phone"),
        (json!("+999 1234567"), "invalid_phone"),
        (json!("+١٤١٥٥٥٥٠١٠٠"), "invalid_phone"),
        (json!("+44 909 8790000"), "phone_not_allowed"),
        (json!("+44 20 7946 0000"), "phone_not_allowed"),
        (json!("+5511961234567"), "phone_not_allowed"),
        (json!(447400123456u64), "invalid_request"),
        (Value::Null, "invalid_request"),
        (json!([PHONE]), "invalid_request"),
    ] {
        let (s, err) = add_phone(&srv, &token, bad.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {err}");
        assert_eq!(err["error"], code, "{bad}: {err}");
    }
    let (s, err) = verify_phone(&srv, &token, json!("123456")).await;
    assert_eq!((s, err["error"].as_str()), (StatusCode::GONE, Some("no_phone_pending")));
    let (s, err) = verify_phone(&srv, &token, json!(123456)).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (s, err) = verify_phone(&srv, &token, json!("12 34")).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_code"))
    );
    assert!(sink.requests().is_empty(), "nothing was texted");
    let blocked = srv.audit_of_type("sms.blocked").await;
    assert_eq!(blocked.len(), 3, "premium, fixed line and country refusals are audited");
    let metrics = srv.metrics().await;
    assert!(
        metrics.contains(r#"signet_sms_blocked_total{reason="number_type"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"signet_sms_blocked_total{reason="country"} 1"#),
        "{metrics}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_phone_enrollment_ends_after_five_wrong_codes() {
    let sink = HttpSink::start().await.unwrap();
    let srv = server_with(&sink, &[]).await;
    let (token, _) = member(&srv, "enroll@example.com").await;
    assert_eq!(add_phone(&srv, &token, json!(PHONE)).await.0, StatusCode::ACCEPTED);
    let code = code_in_text(&sink, PHONE, 0).await;
    for _ in 0..4 {
        let (s, err) = verify_phone(&srv, &token, json!(wrong(&code))).await;
        assert_eq!(
            (s, err["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_code"))
        );
    }
    let (s, err) = verify_phone(&srv, &token, json!(wrong(&code))).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::GONE, Some("too_many_attempts"))
    );
    let (s, err) = verify_phone(&srv, &token, json!(code)).await;
    assert_eq!((s, err["error"].as_str()), (StatusCode::GONE, Some("no_phone_pending")));
    srv.stop().await;
}

/// Sends enrollment codes for `phones` in turn from one account; returns
/// the statuses.
async fn enroll_sends(srv: &TestServer, token: &str, phones: &[&str]) -> Vec<StatusCode> {
    let mut out = Vec::new();
    for p in phones {
        out.push(add_phone(srv, token, json!(p)).await.0);
    }
    out
}

async fn blocked_metric(srv: &TestServer, reason: &str) -> bool {
    srv.metrics()
        .await
        .contains(&format!(r#"signet_sms_blocked_total{{reason="{reason}"}} 1"#))
}

#[tokio::test]
async fn each_pumping_limit_refuses_counts_and_audits() {
    const A: StatusCode = StatusCode::ACCEPTED;
    const L: StatusCode = StatusCode::TOO_MANY_REQUESTS;
    let sink = HttpSink::start().await.unwrap();

    // Per number: 3 an hour by default.
    let srv = server_with(&sink, &[]).await;
    let (token, _) = member(&srv, "n@example.com").await;
    assert_eq!(enroll_sends(&srv, &token, &[PHONE; 4]).await, [A, A, A, L]);
    assert!(blocked_metric(&srv, "per_number").await);
    assert_eq!(
        srv.audit_of_type("sms.blocked").await[0]["details"]["reason"],
        "per_number"
    );
    srv.stop().await;

    // Per prefix (the first 8 digits): numbers in one range.
    let srv = server_with(&sink, &[("SIGNET_SMS__SENDS_PER_PREFIX", "2")]).await;
    let (token, _) = member(&srv, "p@example.com").await;
    let range = ["+447400123401", "+447400123402", "+447400123403"];
    assert_eq!(enroll_sends(&srv, &token, &range).await, [A, A, L]);
    assert!(blocked_metric(&srv, "per_prefix").await);
    srv.stop().await;

    // Per client IP, across ranges.
    let srv = server_with(&sink, &[("SIGNET_SMS__SENDS_PER_IP", "2")]).await;
    let (token, _) = member(&srv, "i@example.com").await;
    let spread = ["+447400123401", "+447500123402", "+447700123403"];
    assert_eq!(enroll_sends(&srv, &token, &spread).await, [A, A, L]);
    assert!(blocked_metric(&srv, "per_ip").await);
    srv.stop().await;

    // The global hourly cap. A sign-in's send past it is answered as any
    // other (202), but nothing is texted, and it is counted and audited.
    let srv = server_with(&sink, &[("SIGNET_SMS__GLOBAL_PER_HOUR", "1")]).await;
    with_phone(&srv, &sink, "g@example.com").await;
    let before = texts_to(&sink, PHONE).len();
    let (flow, _) = start(&srv, "g@example.com").await;
    assert_eq!(send(&srv, &flow).await, StatusCode::ACCEPTED);
    for _ in 0..100 {
        if blocked_metric(&srv, "global").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(blocked_metric(&srv, "global").await);
    assert_eq!(texts_to(&sink, PHONE).len(), before, "nothing texted past the cap");
    let blocked = srv.audit_of_type("sms.blocked").await;
    assert_eq!(blocked[0]["details"]["reason"], "global");
    assert_eq!(blocked[0]["details"]["purpose"], "login");
    assert_eq!(blocked[0]["details"]["to"], "+44••••••••56");
    srv.stop().await;

    // The country allow-list is configurable.
    let srv = server_with(&sink, &[("SIGNET_SMS__ALLOWED_COUNTRIES", "BR")]).await;
    let (token, _) = member(&srv, "c@example.com").await;
    let (s, err) = add_phone(&srv, &token, json!(PHONE)).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("phone_not_allowed"))
    );
    assert_eq!(add_phone(&srv, &token, json!("+5511961234567")).await.0, A);
    srv.stop().await;
}

#[tokio::test]
async fn twilio_receives_the_exact_request() {
    let sink = HttpSink::start().await.unwrap();
    let sid = "AC0123456789abcdef0123456789abcdef";
    let base = format!("http://{}", sink.addr());
    let srv = TestServer::start_with(Options {
        policy: Some(SMS_POLICY.into()),
        env: vec![
            ("SIGNET_SMS__TWILIO_ACCOUNT_SID".into(), sid.into()),
            ("SIGNET_SMS__TWILIO_AUTH_TOKEN".into(), "s3cret-token".into()),
            ("SIGNET_SMS__TWILIO_FROM".into(), "+15005550006".into()),
            ("SIGNET_SMS__TWILIO_BASE_URL".into(), base),
        ],
        ..Default::default()
    })
    .await;
    let (token, _) = member(&srv, "tw@example.com").await;
    assert_eq!(add_phone(&srv, &token, json!(PHONE)).await.0, StatusCode::ACCEPTED);
    let req = sink
        .wait_for(|r| r.method == "POST", Duration::from_secs(10))
        .await
        .expect("Twilio was called");
    assert_eq!(req.path, format!("/2010-04-01/Accounts/{sid}/Messages.json"));
    assert_eq!(req.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{sid}:s3cret-token"));
    assert_eq!(req.authorization, Some(format!("Basic {basic}")));
    assert_eq!(req.status, 201);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(req.body.as_bytes()).into_owned().collect();
    let names: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["To", "From", "Body"]);
    assert_eq!(form[0].1, PHONE);
    assert_eq!(form[1].1, "+15005550006");
    let code: String = form[2].1.chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "{}", form[2].1);
    assert!(
        form[2].1.ends_with(&format!(" #{code}")),
        "origin-bound line: {}",
        form[2].1
    );
    // Delivered (a 2xx), so the body is scrubbed and not sent again.
    let (s, added) = verify_phone(&srv, &token, json!(code)).await;
    assert_eq!(s, StatusCode::CREATED, "{added}");
    srv.stop().await;
}

#[tokio::test]
async fn a_code_that_expired_in_the_queue_is_never_texted() {
    let sink = HttpSink::start().await.unwrap();
    let srv = server_with(&sink, &[]).await;
    let (token, admin) = member(&srv, "late@example.com").await;
    sink.set_failing(true);
    assert_eq!(add_phone(&srv, &token, json!(PHONE)).await.0, StatusCode::ACCEPTED);
    assert!(
        sink.wait_for(|r| r.status == 500, Duration::from_secs(10))
            .await
            .is_some(),
        "a first attempt failed"
    );
    sink.set_failing(false);
    // The gateway is back only after the code's ten minutes.
    srv.clock.advance(Duration::from_secs(11 * 60));
    let (s, _) = srv
        .call(Method::POST, "/api/v1/admin/outbox/retry", Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut expired = Vec::new();
    for _ in 0..200 {
        expired = srv.audit_of_type("message.expired").await;
        if !expired.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(expired.len(), 1, "dropped and recorded");
    assert_eq!(expired[0]["details"]["channel"], "sms");
    assert_eq!(expired[0]["details"]["template"], "sms_phone_code");
    assert!(
        sink.requests().iter().all(|r| r.status != 200),
        "the expired code never reached the gateway"
    );
    srv.stop().await;
}
