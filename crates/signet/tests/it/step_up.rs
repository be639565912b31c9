//! Step-up before sensitive actions, driven by the method doubles of the
//! login tests (a "passkey" that proves aal2 and an "email_otp" that proves
//! aal1, both accepting `{"code": "right"}`).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::login::engine_server;
use crate::support::{redeem_api, TestServer};

/// Signs a new user in at aal2 (api mode) and returns the session token.
pub(crate) async fn signed_in(srv: &TestServer, email: &str) -> String {
    let admin = srv.admin_token().await;
    srv.create_user(&admin, email).await;
    let (_, started) = srv
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "identifier": email, "mode": "api" })),
        )
        .await;
    let flow = started["flow_id"].as_str().unwrap();
    let (s, done) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/passkey"),
            None,
            Some(json!({ "code": "right" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    done["session_token"].as_str().unwrap().to_owned()
}

async fn check(srv: &TestServer, token: &str, action: &str) -> (StatusCode, Value) {
    srv.call(
        Method::GET,
        &format!("/api/v1/step-up?action={action}"),
        Some(token),
        None,
    )
    .await
}

/// Answers step-up flow `flow` with `method` (the doubles accept "right").
async fn answer(srv: &TestServer, token: &str, flow: &str, method: &str) -> (StatusCode, Value) {
    srv.call(
        Method::POST,
        &format!("/api/v1/step-up/{flow}/{method}"),
        Some(token),
        Some(json!({ "code": "right" })),
    )
    .await
}

pub(crate) async fn step_up(srv: &TestServer, token: &str, action: Option<&str>) -> (Value, String) {
    let body = match action {
        Some(a) => json!({ "action": a }),
        None => json!({}),
    };
    let (s, started) = srv.call(Method::POST, "/api/v1/step-up", Some(token), Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{started}");
    let flow = started["flow_id"].as_str().unwrap().to_owned();
    (started, flow)
}

#[tokio::test]
async fn a_stale_session_must_step_up_and_the_raised_session_replaces_it() {
    let srv = engine_server().await;
    let token = signed_in(&srv, "stepper@example.com").await;
    let (s, ok) = check(&srv, &token, "add_credential").await;
    assert_eq!(s, StatusCode::OK, "a fresh aal2 login counts: {ok}");

    srv.clock.advance(Duration::from_secs(6 * 60));
    let (s, err) = check(&srv, &token, "add_credential").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(err["error"], "step_up_required");
    assert_eq!(err["required_aal"], "aal2");
    assert_eq!(err["max_age"], 300);
    assert_eq!(
        err["methods"],
        json!(["passkey", "totp"]),
        "the tier's second factors this server implements"
    );

    let (started, flow) = step_up(&srv, &token, Some("add_credential")).await;
    let offered: Vec<&str> = started["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        offered,
        ["passkey", "totp"],
        "the tier's second factors this server implements"
    );

    let (s, done) = answer(&srv, &token, &flow, "passkey").await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "complete");
    let raised = done["session_token"].as_str().unwrap().to_owned();
    assert_ne!(raised, token, "a new token is issued");
    assert_ne!(done["session"]["id"], Value::Null);

    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&token), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the old session is gone");
    let (s, _) = check(&srv, &raised, "add_credential").await;
    assert_eq!(s, StatusCode::OK);
    // Named for one action, the step-up is good for that action only.
    let (s, err) = check(&srv, &raised, "remove_credential").await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("step_up_required"))
    );
    // And only within its window.
    srv.clock.advance(Duration::from_secs(5 * 60));
    let (s, _) = check(&srv, &raised, "add_credential").await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let admin = srv.admin_token().await;
    let (_, audit) = srv
        .call(
            Method::GET,
            "/api/v1/admin/audit?type=session.stepped_up",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(audit["events"].as_array().unwrap().len(), 1);
    srv.stop().await;
}

#[tokio::test]
async fn a_general_step_up_counts_for_every_action() {
    let srv = engine_server().await;
    let token = signed_in(&srv, "general@example.com").await;
    srv.clock.advance(Duration::from_secs(10 * 60));
    let (_, flow) = step_up(&srv, &token, None).await;
    let (_, done) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/passkey"),
            Some(&token),
            Some(json!({ "code": "right" })),
        )
        .await;
    let raised = done["session_token"].as_str().unwrap();
    for action in ["add_credential", "remove_credential", "admin"] {
        assert_eq!(check(&srv, raised, action).await.0, StatusCode::OK, "{action}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn a_step_up_is_bound_to_the_session_that_started_it() {
    let srv = engine_server().await;
    let alice = signed_in(&srv, "alice@example.com").await;
    let mallory = signed_in(&srv, "mallory@example.com").await;
    let (_, flow) = step_up(&srv, &alice, Some("add_credential")).await;
    // Another session is refused; no session at all is not signed in.
    for (who, status, code) in [
        (
            Some(mallory.as_str()),
            StatusCode::FORBIDDEN,
            "step_up_session_mismatch",
        ),
        (None, StatusCode::UNAUTHORIZED, "unauthenticated"),
    ] {
        let (s, err) = srv
            .call(
                Method::POST,
                &format!("/api/v1/step-up/{flow}/passkey"),
                who,
                Some(json!({ "code": "right" })),
            )
            .await;
        assert_eq!(s, status, "{err}");
        assert_eq!(err["error"], code);
    }
    // Completing it twice in parallel gives one raised session.
    let path = format!("/api/v1/step-up/{flow}/passkey");
    let results = futures::future::join_all(
        (0..20).map(|_| srv.call(Method::POST, &path, Some(&alice), Some(json!({ "code": "right" })))),
    )
    .await;
    assert_eq!(
        results.iter().filter(|(s, _)| *s == StatusCode::OK).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().all(|(s, _)| s.is_success() || s.is_client_error()));
    // Two logins and one step-up succeeded; none of the nineteen losers
    // (refused when loading the spent flow, or after their proof) counts as
    // a success.
    let metrics = srv.metrics().await;
    assert!(
        metrics.contains("signet_logins_total{method=\"passkey\",result=\"success\"} 3"),
        "{metrics}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn twenty_step_ups_of_one_session_completed_at_once_raise_it_once() {
    let srv = engine_server().await;
    let token = signed_in(&srv, "racer@example.com").await;
    let mut flows = Vec::new();
    for _ in 0..20 {
        flows.push(step_up(&srv, &token, Some("add_credential")).await.1);
    }
    let paths: Vec<String> = flows.iter().map(|f| format!("/api/v1/step-up/{f}/passkey")).collect();
    let results = futures::future::join_all(
        paths
            .iter()
            .map(|path| srv.call(Method::POST, path, Some(&token), Some(json!({ "code": "right" })))),
    )
    .await;
    let raised: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(raised.len(), 1, "one session replaces the old one: {results:?}");
    assert!(
        results
            .iter()
            .all(|(s, _)| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{results:?}"
    );
    let raised = raised[0]["session_token"].as_str().unwrap();
    let (_, sessions) = srv.call(Method::GET, "/api/v1/sessions", Some(raised), None).await;
    assert_eq!(
        sessions["sessions"].as_array().map(Vec::len),
        Some(1),
        "no second session was minted: {sessions}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn step_up_refuses_unknown_actions_restricted_sessions_and_expired_flows() {
    let srv = engine_server().await;
    let token = signed_in(&srv, "edge@example.com").await;
    let (s, err) = srv
        .call(
            Method::POST,
            "/api/v1/step-up",
            Some(&token),
            Some(json!({ "action": "launch_missiles" })),
        )
        .await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_action"))
    );
    let (s, err) = check(&srv, &token, "launch_missiles").await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_action"))
    );
    let (s, _) = srv.call(Method::POST, "/api/v1/step-up", None, Some(json!({}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "newbie@example.com").await;
    let enrollment = redeem_api(&srv, &srv.invite(&admin, &id, "newbie@example.com").await).await;
    let (s, err) = srv
        .call(Method::POST, "/api/v1/step-up", Some(&enrollment), Some(json!({})))
        .await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );

    let (_, flow) = step_up(&srv, &token, Some("admin")).await;
    srv.clock.advance(Duration::from_secs(16 * 60));
    let (s, err) = answer(&srv, &token, &flow, "passkey").await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::GONE, Some("flow_expired")),
        "a step-up flow lives 15 minutes"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_step_up_must_reach_the_sessions_own_level_so_a_weaker_proof_never_refreshes_a_stronger_one() {
    use signet_core::method::MethodName;
    use signet_core::session::Aal;
    use signet_testkit::FakeMethod as Fake;
    // A device-bound passkey proves aal3; an authenticator code proves aal2.
    let policy = r#"
[tiers.standard]
login = ["passkey"]
second_factor = ["totp", "passkey"]
required_aal = "aal2"
session = { idle = "30m", absolute = "12h" }

[assignment]
default = "standard"
"#;
    let srv = TestServer::start_with(crate::support::Options {
        policy: Some(policy.into()),
        methods: vec![
            std::sync::Arc::new(Fake {
                name: MethodName::Passkey,
                aal: Aal::Aal3,
                amr: "hwk",
                phishing_resistant: true,
            }),
            std::sync::Arc::new(Fake {
                name: MethodName::Totp,
                aal: Aal::Aal2,
                amr: "otp",
                phishing_resistant: false,
            }),
        ],
        ..Default::default()
    })
    .await;
    let token = signed_in(&srv, "strong@example.com").await;
    let (_, me) = srv.call(Method::GET, "/api/v1/session", Some(&token), None).await;
    assert_eq!(me["aal"], "aal3", "{me}");

    srv.clock.advance(Duration::from_secs(10 * 60));
    let (s, err) = check(&srv, &token, "add_credential").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(err["required_aal"], "aal3", "never below the session's level: {err}");

    let (started, flow) = step_up(&srv, &token, Some("add_credential")).await;
    let offered: Vec<&str> = started["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["totp", "passkey"]);
    // An aal2 code alone does not complete it...
    let (s, cont) = answer(&srv, &token, &flow, "totp").await;
    assert_eq!(s, StatusCode::OK, "{cont}");
    assert_eq!(cont["state"], "continue", "{cont}");
    assert_eq!(cont["required_aal"], "aal3");
    // ...the passkey does, and the raised session is phishing-resistant again.
    let (s, done) = answer(&srv, &token, &flow, "passkey").await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "complete", "{done}");
    assert_eq!(done["session"]["aal"], "aal3");
    let raised = done["session_token"].as_str().unwrap();
    assert_eq!(check(&srv, raised, "add_credential").await.0, StatusCode::OK);
    srv.stop().await;
}
