//! Self-service account recovery over HTTP: `/api/v1/recovery`, its steps,
//! the recovery session that may only bind one new passkey, and what every
//! recovery does (sessions ended, owner told).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::login::comparable;
use crate::passkeys::{authenticator, enroll, invited, sign_in};
use crate::support::{header_names, shape, Options, TestServer};

/// An aal2 tier listing a path weaker than its login (`email`), one that
/// reaches it (`recovery_code+email`) and a backup passkey.
const POLICY: &str = r#"
[tiers.standard]
login = ["passkey", "email_otp"]
second_factor = ["passkey"]
required_aal = "aal2"
recovery = ["email", "recovery_code+email", "backup_passkey", "helpdesk"]
session = { idle = "30m", absolute = "12h" }

[tiers.standard.fallback]
methods = ["email_otp"]
max_uses = 3
per = "30d"
notify = true

[tiers.standard.helpdesk]
approvals = 2
cooling_off = "24h"

[assignment]
default = "standard"
"#;

/// The server with [`POLICY`] (and the real recovery-codes method).
async fn server() -> TestServer {
    TestServer::start_with(Options {
        policy: Some(POLICY.to_owned()),
        ..Default::default()
    })
    .await
}

/// A fresh set of recovery codes for the holder of `token`.
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

fn methods(body: &Value) -> Vec<&str> {
    body["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect()
}

/// The code of the first sign-in mail to `to` after `skip` messages
/// (notices may arrive in between, in no set order).
async fn mailed_code(srv: &TestServer, to: &str, skip: usize) -> String {
    srv.mail_to(to, skip, "a sign-in code", |m| {
        m.text_body()?
            .lines()
            .find_map(|l| l.strip_prefix("Your code: "))
            .map(|c| c.trim().to_owned())
    })
    .await
}

#[tokio::test]
async fn an_aal2_account_recovers_with_a_recovery_code_and_email_but_never_with_email_alone() {
    let srv = server().await;
    let (_, enrollment) = invited(&srv, "ada@example.com").await;
    let mut lost = authenticator(&srv);
    enroll(&srv, &enrollment, &mut lost, Some("Lost phone")).await;
    let before = sign_in(&srv, &mut lost, Some("ada@example.com")).await;
    let old_token = before["session_token"].as_str().unwrap().to_owned();
    let codes = recovery_codes(&srv, &old_token).await;

    let (s, started) = srv
        .call(
            Method::POST,
            "/api/v1/recovery",
            None,
            Some(json!({ "identifier": "ada@example.com", "mode": "api" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{started}");
    assert_eq!(methods(&started), ["recovery_code", "email_otp", "passkey"]);
    let flow = started["flow_id"].as_str().unwrap();

    let skip = srv.smtp.as_ref().unwrap().messages().len();
    let (s, _) = srv
        .call(
            Method::POST,
            &format!("/api/v1/recovery/{flow}/email_otp/send"),
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let code = mailed_code(&srv, "ada@example.com", skip).await;
    let (s, step) = srv
        .call(
            Method::POST,
            &format!("/api/v1/recovery/{flow}/email_otp"),
            None,
            Some(json!({ "code": code })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{step}");
    assert_eq!(
        step["state"], "continue",
        "email alone must not recover an aal2 account"
    );
    assert_eq!(methods(&step), ["recovery_code"]);

    let (s, done) = srv
        .call(
            Method::POST,
            &format!("/api/v1/recovery/{flow}/recovery_code"),
            None,
            Some(json!({ "code": codes[0] })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "complete");
    assert_eq!(done["session"]["aal"], "aal2");
    let recovery = done["session_token"].as_str().unwrap().to_owned();

    // Every earlier session ended; the owner is told.
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&old_token), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let recovered_notice = || {
        srv.smtp.as_ref().unwrap().messages().into_iter().any(|m| {
            m.to.iter().any(|t| t == "ada@example.com") && m.subject().is_some_and(|s| s.contains("was recovered"))
        })
    };
    let mut told = recovered_notice();
    while !told && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        told = recovered_notice();
    }
    assert!(told, "no recovery notice");

    // The recovery session may only bind a credential...
    let (s, body) = srv
        .call(Method::GET, "/api/v1/credentials", Some(&recovery), None)
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );
    // ...which it does without a step-up (it is the proof), and then ends.
    let mut new = authenticator(&srv);
    enroll(&srv, &recovery, &mut new, Some("New phone")).await;
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&recovery), None).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the recovery session ends once it has bound a credential"
    );

    // The new passkey signs in: at aal1 during the tier's 24 h cooling-off,
    // in full after it.
    let after = sign_in(&srv, &mut new, Some("ada@example.com")).await;
    assert_eq!(after["session"]["aal"], "aal1");
    srv.clock.advance(std::time::Duration::from_secs(24 * 3600 + 1));
    let after = sign_in(&srv, &mut new, Some("ada@example.com")).await;
    assert_eq!(after["session"]["aal"], "aal2");
    srv.stop().await;
}

#[tokio::test]
async fn starting_recovery_does_not_tell_whether_an_account_exists() {
    let srv = server().await;
    invited(&srv, "ada@example.com").await;
    let start = |who: &'static str| {
        srv.http
            .post(srv.url("/api/v1/recovery"))
            .json(&json!({ "identifier": who, "mode": "api" }))
            .send()
    };
    let known = start("ada@example.com").await.unwrap();
    let unknown = start("nobody@example.com").await.unwrap();
    assert_eq!(known.status(), unknown.status());
    assert_eq!(header_names(&known), header_names(&unknown));
    let (k, u): (Value, Value) = (known.json().await.unwrap(), unknown.json().await.unwrap());
    assert_eq!(shape(&comparable(&k)), shape(&comparable(&u)));
    assert_eq!(methods(&k), methods(&u));
    srv.stop().await;
}

#[tokio::test]
async fn a_recovery_start_is_checked_like_any_input() {
    let srv = server().await;
    for body in [
        json!({}),
        json!({ "identifier": "not an address" }),
        json!({ "identifier": "ada@example.com", "extra": 1 }),
    ] {
        let (s, err) = srv
            .call(Method::POST, "/api/v1/recovery", None, Some(body.clone()))
            .await;
        assert!(s.is_client_error(), "{body}: {s}");
        assert!(err["error"].is_string(), "{err}");
    }
    srv.stop().await;
}

/// The `/account` page as the session `token` sees it (sent as the cookie).
async fn account_page(srv: &TestServer, token: &str) -> String {
    let resp = srv
        .http
        .get(srv.url("/account"))
        .header("cookie", format!("signet_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn the_account_page_counts_the_ways_back_in_and_warns_when_there_are_none() {
    // The built-in policy: the standard tier recovers by a backup passkey
    // or the help desk.
    let srv = TestServer::start().await;
    let (_, enrollment) = invited(&srv, "ada@example.com").await;
    let mut first = authenticator(&srv);
    enroll(&srv, &enrollment, &mut first, Some("Laptop")).await;
    let token = sign_in(&srv, &mut first, Some("ada@example.com")).await["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let html = account_page(&srv, &token).await;
    assert!(html.contains("id=\"no-way-back\""), "one passkey is no way back");
    assert!(!html.contains("id=\"ways-back\""));

    let mut backup = authenticator(&srv);
    enroll(&srv, &token, &mut backup, Some("Security key")).await;
    let html = account_page(&srv, &token).await;
    assert!(html.contains("id=\"ways-back\""), "a second passkey is a backup");
    assert!(html.contains("1 way back in") && html.contains("a backup passkey"));
    assert!(!html.contains("id=\"no-way-back\""));
    srv.stop().await;
}

#[tokio::test]
async fn the_recover_page_renders_from_the_flow_and_names_no_method() {
    let srv = server().await;
    let resp = srv.http.get(srv.url("/recover")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(html.contains("id=\"recover-form\""));
    for name in ["recovery_code", "email_otp", "sms_otp"] {
        assert!(!html.contains(name), "{name}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn inviting_an_account_that_can_sign_in_is_refused_and_points_to_recovery() {
    let srv = TestServer::start().await;
    let (id, enrollment) = invited(&srv, "ada@example.com").await;
    let mut auth = authenticator(&srv);
    enroll(&srv, &enrollment, &mut auth, None).await;
    let skip = srv.smtp.as_ref().unwrap().messages().len();

    let admin = srv.admin_token().await;
    let (s, body) = srv
        .call(
            Method::POST,
            &format!("/api/v1/admin/users/{id}/invitations"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("account_has_credentials")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("recover"), "{body}");

    let out = crate::cli::signet(&srv, &["user", "invite", "ada@example.com", "--json"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("recover") || stdout.contains("recover"),
        "stdout: {stdout} stderr: {stderr}"
    );
    assert!(!stdout.contains("/invite/") && !stderr.contains("/invite/"));

    // No invitation was sent.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let sent: Vec<_> = srv.smtp.as_ref().unwrap().messages().into_iter().skip(skip).collect();
    assert!(
        !sent.iter().any(|m| m.subject().is_some_and(|s| s.contains("nvit"))),
        "an invitation was sent"
    );
    srv.stop().await;
}

// ------------------------------------------------------------------ "this wasn't me"

/// The "this wasn't me" link of the latest notice to `to` whose subject
/// contains `about`.
async fn not_me_link(srv: &TestServer, to: &str, about: &str) -> String {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = srv.smtp.as_ref().unwrap().messages().into_iter().rev().find(|m| {
            m.to.iter().any(|t| t.eq_ignore_ascii_case(to)) && m.subject().is_some_and(|s| s.contains(about))
        });
        if let Some(mail) = found {
            return mail
                .find_link(&srv.url("/not-me/"))
                .expect("a \"this wasn't me\" link in the notice");
        }
        assert!(tokio::time::Instant::now() < deadline, "no notice {about:?} to {to}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn this_wasnt_me_locks_the_account_ends_every_session_and_cannot_be_replayed() {
    let srv = TestServer::start().await;
    let (id, enrollment) = invited(&srv, "ada@example.com").await;
    let mut auth = authenticator(&srv);
    enroll(&srv, &enrollment, &mut auth, Some("Laptop")).await;
    let token = sign_in(&srv, &mut auth, Some("ada@example.com")).await["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = not_me_link(&srv, "ada@example.com", "was added").await;

    // Following the link (a mail scanner, or the person) changes nothing.
    for _ in 0..2 {
        let page = srv.http.get(&link).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("Lock my account"));
    }
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "a GET must not act");

    // A cross-site form does not act either.
    let cross = srv
        .http
        .post(&link)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);

    // Twenty concurrent confirmations: exactly one acts.
    let posts = (0..20).map(|_| srv.http.post(&link).headers(srv.same_origin()).send());
    let statuses: Vec<StatusCode> = futures::future::join_all(posts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::GONE),
        "{statuses:?}"
    );

    // Every session ended, the account is locked, no one was signed in.
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&token), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let admin = srv.admin_token().await;
    let (_, user) = srv
        .call(Method::GET, &format!("/api/v1/admin/users/{id}"), Some(&admin), None)
        .await;
    assert_eq!(user["status"], "disabled", "{user}");
    // (Usernameless: with an identifier, a locked account is offered decoys
    // like an unknown one, so the passkey is not even asked for.)
    let (flow, entry) = crate::passkeys::start_login(&srv, None).await;
    let credential = auth.get(&entry["publicKey"]).await;
    let (s, _) = crate::passkeys::post_assertion(&srv, &flow, credential).await;
    assert!(s.is_client_error(), "a locked account cannot sign in: {s}");

    // Replayed later: refused, and the page says so.
    let again = srv.http.post(&link).headers(srv.same_origin()).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::GONE);
    let again = srv.http.get(&link).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::GONE);

    // Audited.
    let (_, audit) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit?user_id={id}&type=user.disabled"),
            Some(&admin),
            None,
        )
        .await;
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["details"]["reason"], "not_me");
    srv.stop().await;
}

#[tokio::test]
async fn every_security_notice_carries_its_own_not_me_link() {
    let srv = server().await;
    let (_, enrollment) = invited(&srv, "ada@example.com").await;
    let mut auth = authenticator(&srv);
    enroll(&srv, &enrollment, &mut auth, Some("Laptop")).await;
    let added = not_me_link(&srv, "ada@example.com", "was added").await;

    // A recovery sends its own notice, with its own link; the earlier
    // notice's link still works (a later change does not revoke it).
    let (_, started) = srv
        .call(
            Method::POST,
            "/api/v1/recovery",
            None,
            Some(json!({ "identifier": "ada@example.com", "mode": "api" })),
        )
        .await;
    let flow = started["flow_id"].as_str().unwrap();
    let entry = started["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "passkey")
        .unwrap()
        .clone();
    let credential = auth.get(&entry["publicKey"]).await;
    let (s, done) = srv
        .call(
            Method::POST,
            &format!("/api/v1/recovery/{flow}/passkey"),
            None,
            Some(json!({ "credential": credential })),
        )
        .await;
    assert_eq!(
        (s, done["state"].as_str()),
        (StatusCode::OK, Some("complete")),
        "{done}"
    );
    let recovered = not_me_link(&srv, "ada@example.com", "was recovered").await;
    assert_ne!(added, recovered);
    for link in [&added, &recovered] {
        assert_eq!(
            srv.http.get(link).send().await.unwrap().status(),
            StatusCode::OK,
            "{link}"
        );
    }
    srv.stop().await;
}

/// Three tiers for help-desk tickets: `low` has no help-desk path,
/// `standard` needs two people, `privileged` three (and ranks above).
const TICKET_POLICY: &str = r#"
[tiers.low]
login = ["passkey", "email_otp"]
required_aal = "aal1"
recovery = ["email"]
session = { idle = "30m", absolute = "12h" }

[tiers.standard]
login = ["passkey", "email_otp"]
second_factor = ["passkey"]
required_aal = "aal2"
recovery = ["backup_passkey", "helpdesk"]
session = { idle = "30m", absolute = "12h" }

[tiers.standard.helpdesk]
approvals = 2
cooling_off = "24h"

[tiers.privileged]
login = ["passkey", "email_otp"]
second_factor = ["passkey"]
required_aal = "aal2"
recovery = ["backup_passkey", "helpdesk"]
session = { idle = "15m", absolute = "8h" }

[tiers.privileged.helpdesk]
approvals = 3
cooling_off = "24h"

[assignment]
default = "low"
roles = { admin = "privileged", staff = "standard" }
"#;

pub(crate) async fn ticket_server() -> TestServer {
    TestServer::start_with(Options {
        policy: Some(TICKET_POLICY.to_owned()),
        ..Default::default()
    })
    .await
}

pub(crate) async fn user_with_role(srv: &TestServer, admin: &str, email: &str, role: &str) -> String {
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/admin/users",
            Some(admin),
            Some(json!({ "email": email, "roles": [role] })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Every admin answer of these tests, to check none carries a link or a
/// secret (OWASP ASVS 5.0 §6.4.6).
fn assert_no_secret(bodies: &[Value]) {
    for b in bodies {
        let text = b.to_string();
        assert!(
            !text.contains("/recover/") && !text.contains("sgn_"),
            "an admin answer carries a secret: {text}"
        );
    }
}

pub(crate) async fn open_ticket(srv: &TestServer, admin: &str, user: &str) -> (StatusCode, Value) {
    srv.call(
        Method::POST,
        "/api/v1/admin/recovery-tickets",
        Some(admin),
        Some(json!({
            "user_id": user,
            "reason": "lost phone and security key",
            "evidence": { "kind": "video_call", "reference": "CASE-4711" }
        })),
    )
    .await
}

pub(crate) async fn approve(srv: &TestServer, admin: &str, ticket: &str) -> (StatusCode, Value) {
    srv.call(
        Method::POST,
        &format!("/api/v1/admin/recovery-tickets/{ticket}/approve"),
        Some(admin),
        None,
    )
    .await
}

#[tokio::test]
async fn a_privileged_ticket_needs_distinct_approvers_and_never_its_creator() {
    let srv = ticket_server().await;
    let (a, b, c) = (
        srv.admin_token().await,
        srv.admin_token().await,
        srv.admin_token().await,
    );
    let boss = user_with_role(&srv, &a, "boss@example.com", "admin").await;
    let mut seen = Vec::new();

    let (s, ticket) = open_ticket(&srv, &a, &boss).await;
    assert_eq!(s, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["status"], "pending");
    assert_eq!(ticket["approvals_required"], 3);
    let id = ticket["id"].as_str().unwrap().to_owned();
    seen.push(ticket);

    let (s, body) = approve(&srv, &a, &id).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "own_ticket");
    seen.push(body);

    let (s, body) = approve(&srv, &b, &id).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "pending", "two people are not three");
    seen.push(body);
    let (s, body) = approve(&srv, &b, &id).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "ticket_already_approved");
    seen.push(body);

    let (s, body) = approve(&srv, &c, &id).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
    seen.push(body);
    let (s, body) = approve(&srv, &srv.admin_token().await, &id).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "ticket_closed");
    seen.push(body);

    let (s, body) = approve(&srv, &b, "00000000-0000-0000-0000-000000000000").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "ticket_not_found");

    let (s, audit) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit?user_id={boss}&type=recovery_ticket.approved"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    let last = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["details"]["status"] == "approved")
        .expect("the approving approval is audited");
    assert_eq!(last["details"]["involved"].as_array().unwrap().len(), 3);
    assert_eq!(last["details"]["evidence"]["reference"], "CASE-4711");
    assert_no_secret(&seen);
}

#[tokio::test]
async fn tickets_expire_after_a_day_and_need_a_tier_with_a_help_desk_path() {
    let srv = ticket_server().await;
    let (a, b) = (srv.admin_token().await, srv.admin_token().await);
    let staff = user_with_role(&srv, &a, "staff@example.com", "staff").await;
    let plain = srv.create_user(&a, "plain@example.com").await;

    let (s, body) = open_ticket(&srv, &a, &plain).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "helpdesk_not_allowed");

    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/admin/recovery-tickets",
            Some(&a),
            Some(json!({ "user_id": staff, "reason": " ", "evidence": { "kind": "video_call", "reference": "X" } })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_ticket");

    let (s, ticket) = open_ticket(&srv, &a, &staff).await;
    assert_eq!(s, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["approvals_required"], 2);
    srv.clock.advance(std::time::Duration::from_secs(24 * 3600 + 1));
    let (s, body) = approve(&srv, &b, ticket["id"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "ticket_closed");
}

#[tokio::test]
async fn an_admin_token_acts_only_at_or_below_its_ceiling() {
    let srv = ticket_server().await;
    let a = srv.admin_token().await;
    let out = crate::cli::signet(
        &srv,
        &["admin-token", "create", "desk-1", "--ceiling", "standard", "--json"],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let desk = created["token"].as_str().unwrap().to_owned();
    let listed = crate::cli::signet(&srv, &["admin-token", "list", "--json"]).await;
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "desk-1" && t["ceiling"] == "standard"));
    let bad = crate::cli::signet(&srv, &["admin-token", "create", "desk-2", "--ceiling", "nope"]).await;
    assert!(!bad.status.success());

    let boss = user_with_role(&srv, &a, "boss@example.com", "admin").await;
    let staff = user_with_role(&srv, &a, "staff@example.com", "staff").await;

    let (s, body) = open_ticket(&srv, &desk, &boss).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "above_ceiling");
    let (s, above) = open_ticket(&srv, &a, &boss).await;
    assert_eq!(s, StatusCode::CREATED, "{above}");
    let (s, body) = approve(&srv, &desk, above["id"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "above_ceiling");

    let (s, within) = open_ticket(&srv, &a, &staff).await;
    assert_eq!(s, StatusCode::CREATED, "{within}");
    let (s, body) = approve(&srv, &desk, within["id"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
    assert_no_secret(&[above, within, body]);
}
