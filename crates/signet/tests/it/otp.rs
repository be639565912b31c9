//! Authenticator-app codes (`totp`) end to end: enrollment over HTTP, codes
//! computed by an independent implementation (`oathtool`, Debian package
//! `oathtool`), sign-in as a second factor with the built-in policy and as a
//! first method where a tier lists it, replay (RFC 6238 §5.2), the time
//! window, lockout, and twenty racing submissions of one code. Recovery
//! codes (`recovery_code`): generation, single use, the notice with the
//! count left, regeneration, and twenty racing submissions of one code.

use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use signet_core::clock::Clock;

use crate::support::{redeem_api, Options, TestServer};

/// A tier where an authenticator-app code alone signs in (aal1), to test
/// `totp` as a first method and races across many flows.
pub(crate) const TOTP_FIRST_POLICY: &str = r#"
[tiers.apps]
login = ["totp", "email_otp", "recovery_code"]
second_factor = ["totp", "passkey"]
required_aal = "aal1"
session = { idle = "8h", absolute = "24h" }

[assignment]
default = "apps"
"#;

/// The code `oathtool` computes for base32 `secret` at the server's clock,
/// `offset_steps` steps away.
pub(crate) fn oathtool(srv: &TestServer, secret: &str, offset_steps: i64) -> String {
    let at = srv.clock.now().as_millis() / 1000 + offset_steps * 30;
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-N", &format!("@{at}"), secret])
        .output()
        .expect("oathtool is installed (Debian package oathtool; .ci/run installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A user signed in through an invitation (api mode): the session token.
pub(crate) async fn invited(srv: &TestServer, email: &str) -> String {
    let admin = srv.admin_token().await;
    let user = srv.create_user(&admin, email).await;
    let link = srv.invite(&admin, &user, email).await;
    redeem_api(srv, &link).await
}

/// Enrolls an authenticator app for the session; returns the base32 secret
/// and the begin response.
pub(crate) async fn enroll(srv: &TestServer, token: &str, name: &str) -> (String, Value) {
    let (s, begun) = srv
        .call(
            Method::POST,
            "/api/v1/credentials/totp/begin",
            Some(token),
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{begun}");
    let secret = begun["secret"].as_str().unwrap().to_owned();
    let code = oathtool(srv, &secret, 0);
    let (s, added) = srv
        .call(
            Method::POST,
            "/api/v1/credentials/totp/finish",
            Some(token),
            Some(json!({ "ceremony_id": begun["ceremony_id"], "code": code })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{added}");
    assert_eq!(added["type"], "totp");
    (secret, begun)
}

/// Starts an api-mode login for `email`; returns the start response.
pub(crate) async fn start(srv: &TestServer, email: &str) -> Value {
    let (s, started) = srv
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "identifier": email, "mode": "api" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{started}");
    started
}

fn offered(v: &Value) -> Vec<String> {
    v["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) async fn type_totp(srv: &TestServer, flow: &str, code: Value) -> (StatusCode, Value) {
    srv.call(
        Method::POST,
        &format!("/api/v1/login/{flow}/totp"),
        None,
        Some(json!({ "code": code })),
    )
    .await
}

/// The first mail to `email` whose text contains `needle` (notices of the
/// same account may arrive in any order).
async fn mail_with(srv: &TestServer, email: &str, needle: &str) -> String {
    let (email, needle) = (email.to_owned(), needle.to_owned());
    let mail = srv
        .smtp
        .as_ref()
        .unwrap()
        .wait_for(
            move |m| {
                m.to.iter().any(|t| t.eq_ignore_ascii_case(&email))
                    && m.text_body().is_some_and(|t| t.contains(&needle))
            },
            Duration::from_secs(10),
        )
        .await;
    mail.expect("the mail arrives").text_body().unwrap()
}

#[tokio::test]
async fn enrollment_returns_secret_uri_and_qr_and_needs_a_valid_code() {
    let srv = TestServer::start().await;
    let token = invited(&srv, "ada@example.com").await;
    let (s, begun) = srv
        .call(
            Method::POST,
            "/api/v1/credentials/totp/begin",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{begun}");
    let secret = begun["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits in base32 without padding");
    let uri = begun["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Signet:ada%40example.com?secret="),
        "{uri}"
    );
    for part in ["issuer=Signet", "algorithm=SHA1", "digits=6", "period=30", secret] {
        assert!(uri.contains(part), "{uri} lacks {part}");
    }
    assert!(begun["qr_svg"].as_str().unwrap().contains("<svg"));

    // A wrong code keeps the ceremony (a typo); the right one binds it.
    let finish = |code: String| {
        srv.call(
            Method::POST,
            "/api/v1/credentials/totp/finish",
            Some(&token),
            Some(json!({ "ceremony_id": begun["ceremony_id"], "code": code })),
        )
    };
    let right = oathtool(&srv, secret, 0);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let (s, err) = finish(wrong).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_code"))
    );
    let (s, added) = finish(right.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{added}");
    assert_eq!(added["name"], "Authenticator app");
    let (s, _) = finish(right).await;
    assert_eq!(s, StatusCode::GONE, "the ceremony is used once");

    srv.stop().await;
}

#[tokio::test]
async fn a_standard_user_signs_in_with_an_email_code_and_an_oathtool_code() {
    let srv = TestServer::start().await;
    let email = "grace@example.com";
    let token = invited(&srv, email).await;
    let (secret, _) = enroll(&srv, &token, "Phone").await;
    // The code that confirmed the enrollment cannot sign in: the next one.
    srv.clock.advance(Duration::from_secs(30));

    let started = start(&srv, email).await;
    let flow = started["flow_id"].as_str().unwrap();
    let (s, body) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/email_otp/send"),
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let text = mail_with(&srv, email, "Your code: ").await;
    let code = text.lines().find_map(|l| l.strip_prefix("Your code: ")).unwrap().trim();
    let (s, next) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/email_otp"),
            None,
            Some(json!({ "code": code })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{next}");
    assert_eq!(next["state"], "continue", "{next}");
    let methods = offered(&next);
    assert!(
        methods.contains(&"totp".to_owned()) && methods.contains(&"passkey".to_owned()),
        "{methods:?}"
    );
    let totp = next["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "totp")
        .unwrap();
    assert_eq!(totp["input"], "code");
    assert_eq!(totp["code_length"], 6);
    assert_eq!(totp["send"], false);

    // The same flow handle goes on.
    let (s, done) = type_totp(&srv, flow, json!(oathtool(&srv, &secret, 0))).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "complete");
    assert_eq!(done["session"]["aal"], "aal2", "{done}");
    let amr = done["session"]["amr"].to_string();
    assert!(amr.contains("otp"), "{amr}");
    srv.stop().await;
}

/// A server whose tier signs in with an authenticator app alone, and a user
/// with one enrolled; returns the server, the email and the secret.
async fn totp_first(email: &str) -> (TestServer, String) {
    let srv = TestServer::start_with(Options {
        policy: Some(TOTP_FIRST_POLICY.into()),
        ..Default::default()
    })
    .await;
    let token = invited(&srv, email).await;
    let (secret, _) = enroll(&srv, &token, "Phone").await;
    srv.clock.advance(Duration::from_secs(30));
    (srv, secret)
}

#[tokio::test]
async fn a_code_is_accepted_once_and_every_replay_is_audited() {
    let email = "replay@example.com";
    let (srv, secret) = totp_first(email).await;
    let code = oathtool(&srv, &secret, 0);
    let first = start(&srv, email).await;
    assert!(offered(&first).contains(&"totp".to_owned()));
    let (s, done) = type_totp(&srv, first["flow_id"].as_str().unwrap(), json!(code)).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["session"]["aal"], "aal1");
    // Listed like any credential, without the secret.
    let session = done["session_token"].as_str().unwrap();
    let (s, list) = srv.call(Method::GET, "/api/v1/credentials", Some(session), None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let listed = list.to_string();
    assert!(listed.contains("\"totp\""), "{listed}");
    assert!(!listed.contains(&secret), "the seed is never shown again");

    // The same code in a new flow, and an older one of the window: replays.
    for replayed in [code, oathtool(&srv, &secret, -1)] {
        let again = start(&srv, email).await;
        let (s, err) = type_totp(&srv, again["flow_id"].as_str().unwrap(), json!(replayed)).await;
        assert_eq!(
            (s, err["error"].as_str()),
            (StatusCode::CONFLICT, Some("code_replayed")),
            "{err}"
        );
    }
    let replays = srv
        .audit_of_type("login.failed")
        .await
        .into_iter()
        .filter(|e| e["details"]["error"] == "code_replayed" && e["details"]["method"] == "totp")
        .count();
    assert_eq!(replays, 2, "every replay is recorded");

    // The next step's code works.
    srv.clock.advance(Duration::from_secs(30));
    let later = start(&srv, email).await;
    let (s, done) = type_totp(
        &srv,
        later["flow_id"].as_str().unwrap(),
        json!(oathtool(&srv, &secret, 0)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    srv.stop().await;
}

#[tokio::test]
async fn the_window_is_one_step_either_side() {
    let email = "window@example.com";
    let (srv, secret) = totp_first(email).await;
    for (offset, ok) in [(-2, false), (2, false), (1, true)] {
        let flow = start(&srv, email).await;
        let (s, body) = type_totp(
            &srv,
            flow["flow_id"].as_str().unwrap(),
            json!(oathtool(&srv, &secret, offset)),
        )
        .await;
        if ok {
            assert_eq!(s, StatusCode::OK, "offset {offset}: {body}");
        } else {
            assert_eq!(
                (s, body["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_code")),
                "offset {offset}"
            );
        }
    }
    srv.stop().await;
}

#[tokio::test]
async fn five_wrong_codes_end_the_flow_and_spaces_and_dashes_are_ignored() {
    let email = "wrong@example.com";
    let (srv, secret) = totp_first(email).await;
    let started = start(&srv, email).await;
    let flow = started["flow_id"].as_str().unwrap();
    let right = oathtool(&srv, &secret, 0);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 500_000) % 1_000_000);
    for i in 1..=5 {
        let (s, err) = type_totp(&srv, flow, json!(wrong)).await;
        let expected = if i < 5 {
            (StatusCode::BAD_REQUEST, "invalid_code")
        } else {
            (StatusCode::GONE, "too_many_attempts")
        };
        assert_eq!((s, err["error"].as_str().unwrap()), expected, "attempt {i}");
    }
    let (s, _) = type_totp(&srv, flow, json!(right)).await;
    assert_eq!(s, StatusCode::GONE, "the flow is over, even for the right code");

    // Typed with a space and a dash, in a new flow, the right code works.
    let again = start(&srv, email).await;
    let typed = format!("{} {}-", &right[..3], &right[3..]);
    let (s, done) = type_totp(&srv, again["flow_id"].as_str().unwrap(), json!(typed)).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    srv.stop().await;
}

#[tokio::test]
async fn twenty_parallel_submissions_of_one_code_give_one_session() {
    let email = "race@example.com";
    let (srv, secret) = totp_first(email).await;
    let code = oathtool(&srv, &secret, 0);
    let mut flows = Vec::new();
    for _ in 0..20 {
        flows.push(start(&srv, email).await["flow_id"].as_str().unwrap().to_owned());
    }
    let tries = flows.iter().map(|flow| type_totp(&srv, flow, json!(code)));
    let results = futures::future::join_all(tries).await;
    let wins = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(wins, 1, "{results:?}");
    // Every loser of the race is a replay on record (RFC 6238 §5.2), also
    // those that lost inside the unit of work, after the code checked out.
    let refused = results.iter().filter(|(_, b)| b["error"] == "code_replayed").count();
    let recorded = srv
        .audit_of_type("login.failed")
        .await
        .into_iter()
        .filter(|e| e["details"]["error"] == "code_replayed")
        .count();
    assert_eq!(recorded, refused, "{results:?}");
    for (s, body) in &results {
        // The losers: the replay refused, or (past ten reserved attempts on
        // the account) told to back off. Never a 5xx.
        assert!(
            *s == StatusCode::OK
                || (*s == StatusCode::CONFLICT && body["error"] == "code_replayed")
                || *s == StatusCode::TOO_MANY_REQUESTS,
            "{s} {body}"
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn malformed_codes_are_400_never_5xx() {
    let email = "shape@example.com";
    let (srv, _) = totp_first(email).await;
    let started = start(&srv, email).await;
    let flow = started["flow_id"].as_str().unwrap();
    for bad in [
        json!(123456),
        json!(null),
        json!(["123456"]),
        json!("١٢٣٤٥٦"),
        json!("12345"),
        json!("1234567"),
        json!({ "code": "123456" }),
    ] {
        let (s, err) = type_totp(&srv, flow, bad.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {err}");
    }
    srv.stop().await;
}

/// Generates recovery codes for the session; returns them.
async fn recovery_codes(srv: &TestServer, token: &str) -> Vec<String> {
    let (s, body) = srv
        .call(Method::POST, "/api/v1/credentials/recovery-codes", Some(token), None)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    body["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

async fn type_recovery(srv: &TestServer, flow: &str, code: &str) -> (StatusCode, Value) {
    srv.call(
        Method::POST,
        &format!("/api/v1/login/{flow}/recovery_code"),
        None,
        Some(json!({ "code": code })),
    )
    .await
}

/// A server whose tier signs in with a recovery code, and a user with a
/// set: the server, the user's session token and the codes.
async fn with_recovery_codes(email: &str) -> (TestServer, String, Vec<String>) {
    let srv = TestServer::start_with(Options {
        policy: Some(TOTP_FIRST_POLICY.into()),
        ..Default::default()
    })
    .await;
    let token = invited(&srv, email).await;
    let codes = recovery_codes(&srv, &token).await;
    (srv, token, codes)
}

#[tokio::test]
async fn recovery_codes_are_ten_grouped_codes_each_working_once_with_a_notice() {
    let email = "codes@example.com";
    let (srv, _, codes) = with_recovery_codes(email).await;
    assert_eq!(codes.len(), 10);
    let alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    for c in &codes {
        let groups: Vec<&str> = c.split('-').collect();
        assert_eq!(groups.len(), 6, "{c}");
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 4 && g.chars().all(|ch| alphabet.contains(ch))),
            "{c}"
        );
    }
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);

    // Typed in lower case with spaces: it signs in, once.
    let flow = start(&srv, email).await;
    let typed = codes[0].to_lowercase().replace('-', " ");
    let (s, done) = type_recovery(&srv, flow["flow_id"].as_str().unwrap(), &typed).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["session"]["aal"], "aal1");
    assert!(done["session"]["amr"].to_string().contains("rc"), "{done}");
    let notice = mail_with(&srv, email, "recovery codes left").await;
    assert!(notice.contains("You have 9 recovery codes left."), "{notice}");
    assert!(
        notice.contains(&srv.url("/not-me/")),
        "the notice carries a \"this wasn't me\" link: {notice}"
    );
    let generated_notice = mail_with(&srv, email, "A new set of recovery codes was generated").await;
    assert!(generated_notice.contains(&srv.url("/not-me/")), "{generated_notice}");
    let session = done["session_token"].as_str().unwrap().to_owned();

    let again = start(&srv, email).await;
    let (s, err) = type_recovery(&srv, again["flow_id"].as_str().unwrap(), &codes[0]).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::GONE, Some("code_used")),
        "{err}"
    );

    let (s, list) = srv.call(Method::GET, "/api/v1/credentials", Some(&session), None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let set = list["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "recovery_code")
        .unwrap()
        .clone();
    assert_eq!((set["remaining"].as_u64(), set["total"].as_u64()), (Some(9), Some(10)));
    assert!(!list.to_string().contains(&codes[1]), "codes are shown once");

    // A new set replaces the old one at once.
    let fresh = recovery_codes(&srv, &session).await;
    let flow = start(&srv, email).await;
    let (s, err) = type_recovery(&srv, flow["flow_id"].as_str().unwrap(), &codes[1]).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_code")),
        "{err}"
    );
    let (s, done) = type_recovery(&srv, flow["flow_id"].as_str().unwrap(), &fresh[0]).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    let generated = srv
        .audit_of_type("credential.added")
        .await
        .into_iter()
        .filter(|e| e["details"]["type"] == "recovery_code")
        .count();
    assert_eq!(generated, 2, "each generation is recorded");
    srv.stop().await;
}

#[tokio::test]
async fn the_notice_warns_when_two_or_fewer_codes_are_left() {
    let email = "few@example.com";
    let (srv, _, codes) = with_recovery_codes(email).await;
    for code in &codes[..8] {
        let flow = start(&srv, email).await;
        let (s, done) = type_recovery(&srv, flow["flow_id"].as_str().unwrap(), code).await;
        assert_eq!(s, StatusCode::OK, "{done}");
    }
    let three = mail_with(&srv, email, "You have 3 recovery codes left.").await;
    assert!(!three.contains("running out"), "{three}");
    let text = mail_with(&srv, email, "You have 2 recovery codes left.").await;
    assert!(text.contains("running out"), "{text}");
    srv.stop().await;
}

#[tokio::test]
async fn twenty_parallel_submissions_of_one_recovery_code_give_one_session() {
    let email = "rcrace@example.com";
    let (srv, _, codes) = with_recovery_codes(email).await;
    let mut flows = Vec::new();
    for _ in 0..20 {
        flows.push(start(&srv, email).await["flow_id"].as_str().unwrap().to_owned());
    }
    let tries = flows.iter().map(|flow| type_recovery(&srv, flow, &codes[3]));
    let results = futures::future::join_all(tries).await;
    let wins = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(wins, 1, "{results:?}");
    for (s, body) in &results {
        assert!(
            *s == StatusCode::OK
                || (*s == StatusCode::GONE && body["error"] == "code_used")
                || *s == StatusCode::TOO_MANY_REQUESTS,
            "{s} {body}"
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn malformed_recovery_codes_are_400() {
    let email = "rcshape@example.com";
    let (srv, _, _) = with_recovery_codes(email).await;
    let flow = start(&srv, email).await;
    let flow = flow["flow_id"].as_str().unwrap();
    for bad in [
        json!(42),
        json!(null),
        json!(["ABCD"]),
        json!("ABCD-EFGH-JKLM-NPQR-STUV-WXY0"),
        json!("ABCD-EFGH"),
        json!("ＡBCD-EFGH-JKLM-NPQR-STUV-WXYZ"),
    ] {
        let (s, err) = srv
            .call(
                Method::POST,
                &format!("/api/v1/login/{flow}/recovery_code"),
                None,
                Some(json!({ "code": bad })),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {err}");
    }
    srv.stop().await;
}

/// A tier that signs in with an authenticator app or a recovery code, and
/// no email method: each is the other's only alternative.
const APP_OR_CODES_POLICY: &str = r#"
[tiers.apps]
login = ["totp", "recovery_code"]
second_factor = ["passkey"]
required_aal = "aal1"
session = { idle = "8h", absolute = "24h" }

[assignment]
default = "apps"
"#;

#[tokio::test]
async fn racing_removals_of_two_kinds_never_remove_the_last_way_in() {
    let srv = TestServer::start_with(Options {
        policy: Some(APP_OR_CODES_POLICY.into()),
        ..Default::default()
    })
    .await;
    for round in 0..3 {
        let email = format!("both{round}@example.com");
        let enrollment = invited(&srv, &email).await;
        let (secret, _) = enroll(&srv, &enrollment, "Phone").await;
        srv.clock.advance(Duration::from_secs(30));
        let flow = start(&srv, &email).await;
        let (s, done) = type_totp(
            &srv,
            flow["flow_id"].as_str().unwrap(),
            json!(oathtool(&srv, &secret, 0)),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{done}");
        let token = done["session_token"].as_str().unwrap().to_owned();
        recovery_codes(&srv, &token).await;
        let (s, list) = srv.call(Method::GET, "/api/v1/credentials", Some(&token), None).await;
        assert_eq!(s, StatusCode::OK, "{list}");
        let ids: Vec<String> = list["credentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 2, "{list}");
        // Each removal alone is allowed (the other kind remains); at once,
        // exactly one may win.
        let paths: Vec<String> = ids.iter().map(|id| format!("/api/v1/credentials/{id}")).collect();
        let removals = paths
            .iter()
            .map(|path| srv.call(Method::DELETE, path, Some(&token), None));
        let results = futures::future::join_all(removals).await;
        let removed = results.iter().filter(|(s, _)| *s == StatusCode::NO_CONTENT).count();
        // The loser is refused as the last way in, or, when the winner was
        // the app that signed this session in (removing it ends the session)
        // and the loser authenticated after that, is no longer signed in.
        let refused = results
            .iter()
            .filter(|(s, b)| {
                (*s == StatusCode::CONFLICT && b["error"] == "last_credential")
                    || (*s == StatusCode::UNAUTHORIZED && b["error"] == "unauthenticated")
            })
            .count();
        assert_eq!((removed, refused), (1, 1), "{results:?}");
        // Removing the app ends the session it signed in; otherwise the
        // session sees the one credential left.
        let (s, list) = srv.call(Method::GET, "/api/v1/credentials", Some(&token), None).await;
        if s == StatusCode::OK {
            assert_eq!(list["credentials"].as_array().unwrap().len(), 1, "{list}");
        } else {
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{list}");
        }
    }
    srv.stop().await;
}
