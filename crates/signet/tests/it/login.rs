//! The login flow skeleton. Methods arrive in later issues; what must hold
//! already is that flows are server-side, bound to their browser, and that
//! an unknown identifier is answered exactly like a real user.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{header_names, shape, TestServer};

#[tokio::test]
async fn an_unknown_identifier_looks_exactly_like_a_default_tier_user() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    srv.create_user(&admin, "real@example.com").await;
    for mode in ["api", "browser"] {
        let known = srv
            .http
            .post(srv.url("/api/v1/login"))
            .json(&json!({ "identifier": "real@example.com", "mode": mode }))
            .send()
            .await
            .unwrap();
        let unknown = srv
            .http
            .post(srv.url("/api/v1/login"))
            .json(&json!({ "identifier": "ghost@example.com", "mode": mode }))
            .send()
            .await
            .unwrap();
        assert_eq!(known.status(), unknown.status());
        assert_eq!(header_names(&known), header_names(&unknown));
        let (k, u): (Value, Value) = (known.json().await.unwrap(), unknown.json().await.unwrap());
        // Passkey options carry a fresh challenge and one or two credential
        // ids (real ones, or decoys derived from the identifier): compared
        // by shape with one allowCredentials entry (the number varies per
        // account, real or not; passkeys.rs checks the decoys in detail).
        let (k, u) = (comparable(&k), comparable(&u));
        assert_eq!(shape(&k), shape(&u));
        assert_eq!(methods_without_options(&k), methods_without_options(&u));
    }
    srv.stop().await;
}

/// A login response with each passkey entry's allowCredentials, and each
/// credential's transports, cut to one.
pub(crate) fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    for m in v["methods"].as_array_mut().unwrap() {
        if let Some(allow) = m
            .pointer_mut("/publicKey/allowCredentials")
            .and_then(Value::as_array_mut)
        {
            allow.truncate(1);
            // Transports vary per credential (and per decoy, by design), not
            // per account existence: compare their shape with one entry too.
            for c in allow.iter_mut() {
                if let Some(t) = c.get_mut("transports").and_then(Value::as_array_mut) {
                    t.truncate(1);
                }
            }
        }
    }
    v
}

/// The method entries without their per-flow WebAuthn options.
fn methods_without_options(v: &Value) -> Value {
    let mut methods = v["methods"].clone();
    for m in methods.as_array_mut().unwrap() {
        m.as_object_mut().unwrap().remove("publicKey");
    }
    methods
}

#[tokio::test]
async fn browser_flows_are_bound_to_the_browser_that_started_them() {
    let srv = TestServer::start().await;
    let resp = srv
        .http
        .post(srv.url("/api/v1/login"))
        .json(&json!({ "mode": "browser" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("signet_flow=sgb_") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let started: Value = resp.json().await.unwrap();
    let flow = started["flow_id"].as_str().unwrap();
    // No binding cookie: this is another browser.
    let (s, err) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/passkey"),
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["error"], "flow_binding_mismatch");
    srv.stop().await;
}

#[tokio::test]
async fn flows_expire() {
    let srv = TestServer::start().await;
    let (_, started) = srv
        .call(Method::POST, "/api/v1/login", None, Some(json!({ "mode": "api" })))
        .await;
    let flow = started["flow_id"].as_str().unwrap();
    srv.clock.advance(std::time::Duration::from_secs(16 * 60));
    let (s, err) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/passkey"),
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(err["error"], "flow_expired");
    srv.stop().await;
}

// ------------------------------------------------------------------ the flow engine, driven by test methods

pub(crate) fn fake_methods() -> Vec<std::sync::Arc<dyn signet_core::method::Method>> {
    use signet_core::method::MethodName;
    use signet_core::session::Aal;
    vec![
        std::sync::Arc::new(signet_testkit::FakeMethod {
            name: MethodName::Passkey,
            aal: Aal::Aal2,
            amr: "hwk",
            phishing_resistant: true,
        }),
        std::sync::Arc::new(signet_testkit::FakeMethod {
            name: MethodName::EmailOtp,
            aal: Aal::Aal1,
            amr: "otp",
            phishing_resistant: false,
        }),
    ]
}

pub(crate) async fn engine_server() -> TestServer {
    TestServer::start_with(crate::support::Options {
        methods: fake_methods(),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_login_continues_until_the_tier_aal_is_met_then_issues_a_session() {
    let srv = engine_server().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "steps@example.com").await;
    let (s, started) = srv
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "identifier": "steps@example.com", "mode": "api" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = started["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["passkey", "email_otp"],
        "the standard tier's login methods this server implements"
    );
    let flow = started["flow_id"].as_str().unwrap();

    let (s, err) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/email_otp"),
            None,
            Some(json!({ "code": "wrong" })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_code");

    // An email code alone is aal1; the standard tier needs aal2.
    let (s, cont) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/email_otp"),
            None,
            Some(json!({ "code": "right" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{cont}");
    assert_eq!(cont["state"], "continue");
    assert_eq!(cont["required_aal"], "aal2");
    let next: Vec<&str> = cont["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(next, ["passkey", "totp"], "only the tier's second factors");

    // A method that is not offered at this step is refused.
    let (s, err) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/email_otp"),
            None,
            Some(json!({ "code": "right" })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "method_not_allowed");

    let (s, done) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/passkey"),
            None,
            Some(json!({ "code": "right" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "complete");
    assert_eq!(done["session"]["aal"], "aal2");
    assert_eq!(done["session"]["amr"], json!(["otp", "hwk", "mfa"]));
    assert_eq!(done["session"]["phishing_resistant"], true);
    assert_eq!(done["session"]["scope"], "full");
    assert_eq!(done["session"]["user"]["id"], id.as_str());
    let token = done["session_token"].as_str().unwrap();
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(token), None).await;
    assert_eq!(s, StatusCode::OK);

    // The flow is used up.
    let (s, _) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/passkey"),
            None,
            Some(json!({ "code": "right" })),
        )
        .await;
    assert_eq!(s, StatusCode::GONE);
    srv.stop().await;
}

#[tokio::test]
async fn an_unknown_account_never_completes() {
    let srv = engine_server().await;
    let (_, started) = srv
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "identifier": "ghost@example.com", "mode": "api" })),
        )
        .await;
    let flow = started["flow_id"].as_str().unwrap();
    let (s, err) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/passkey"),
            None,
            Some(json!({ "code": "right" })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        err["error"], "invalid_code",
        "answered like a wrong code for a real user"
    );
    srv.stop().await;
}

#[tokio::test]
async fn twenty_parallel_completions_of_one_flow_give_one_session() {
    let srv = engine_server().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "burst@example.com").await;
    let (_, started) = srv
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "identifier": "burst@example.com", "mode": "api" })),
        )
        .await;
    let flow = started["flow_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/login/{flow}/passkey");
    let results = futures::future::join_all(
        (0..20).map(|_| srv.call(Method::POST, &path, None, Some(json!({ "code": "right" })))),
    )
    .await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(
        results.iter().all(|(s, _)| s.is_success() || s.is_client_error()),
        "no 5xx: {results:?}"
    );
    let user = signet_core::user::UserId(id.parse().unwrap());
    assert_eq!(
        srv.app()
            .store
            .list_user_sessions(user, srv.app().clock.now())
            .await
            .unwrap()
            .len(),
        1
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_flow_started_on_one_node_finishes_on_another() {
    let a = engine_server().await;
    let b = TestServer::start_with(crate::support::Options {
        methods: fake_methods(),
        shared_db: Some(a.db_url.clone()),
        ..Default::default()
    })
    .await;
    let admin = a.admin_token().await;
    a.create_user(&admin, "roam@example.com").await;

    // Browser mode: the binding cookie from node A is honoured by node B.
    let resp = a
        .http
        .post(a.url("/api/v1/login"))
        .json(&json!({ "identifier": "roam@example.com" }))
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let started: Value = resp.json().await.unwrap();
    let flow = started["flow_id"].as_str().unwrap();
    let done = b
        .http
        .post(b.url(&format!("/api/v1/login/{flow}/passkey")))
        .header("cookie", &cookie)
        .header("origin", &b.base)
        .json(&json!({ "code": "right" }))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let session_cookie = done.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(session_cookie.starts_with("signet_session=sgs_"));
    let body: Value = done.json().await.unwrap();
    assert_eq!(body["state"], "complete");
    assert!(
        body.get("session_token").is_none(),
        "browser mode never puts the token in the body"
    );

    // And the session works on node A.
    let me = a
        .http
        .get(a.url("/api/v1/session"))
        .header("cookie", &session_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn an_account_is_offered_its_tiers_methods_and_an_unknown_or_disabled_one_the_default_tiers() {
    let srv = engine_server().await;
    let admin = srv.admin_token().await;
    let (s, _) = srv
        .call(
            Method::POST,
            "/api/v1/admin/users",
            Some(&admin),
            Some(json!({ "email": "root@example.com", "roles": ["admin"] })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let gone = srv.create_user(&admin, "gone@example.com").await;
    let (s, _) = srv
        .call(
            Method::POST,
            &format!("/api/v1/admin/users/{gone}/disable"),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert!(s.is_success(), "{s}");
    srv.create_user(&admin, "plain@example.com").await;
    let start = |who: &'static str| {
        srv.call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "identifier": who, "mode": "api" })),
        )
    };
    let names = |v: &Value| -> Vec<String> {
        v["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["method"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, privileged) = start("root@example.com").await;
    let (_, plain) = start("plain@example.com").await;
    let (_, unknown) = start("nobody@example.com").await;
    let (_, disabled) = start("gone@example.com").await;
    assert_eq!(
        names(&privileged),
        ["passkey"],
        "the privileged tier logs in with passkeys only"
    );
    assert_eq!(names(&plain), ["passkey", "email_otp"], "the default (standard) tier");
    assert_eq!(methods_without_options(&unknown), methods_without_options(&plain));
    assert_eq!(methods_without_options(&disabled), methods_without_options(&plain));

    // A method the account's tier does not list is refused...
    let flow = privileged["flow_id"].as_str().unwrap();
    let (s, err) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/email_otp"),
            None,
            Some(json!({ "code": "right" })),
        )
        .await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("method_not_allowed")),
        "{err}"
    );
    // ...and a passkey completes in the account's own tier.
    let (s, done) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/passkey"),
            None,
            Some(json!({ "code": "right" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["session"]["tier"], "privileged");
    srv.stop().await;
}

#[tokio::test]
async fn starts_are_limited_per_client_address_for_known_and_unknown_identifiers_alike() {
    let srv = TestServer::start_with(crate::support::Options {
        env: vec![("SIGNET_LOGIN__STARTS_PER_IP".into(), "3".into())],
        ..Default::default()
    })
    .await;
    let admin = srv.admin_token().await;
    srv.create_user(&admin, "known@example.com").await;
    for who in ["known@example.com", "nobody@example.com", "known@example.com"] {
        let (s, body) = srv
            .call(
                Method::POST,
                "/api/v1/login",
                None,
                Some(json!({ "identifier": who, "mode": "api" })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    for who in ["known@example.com", "nobody@example.com"] {
        let resp = srv
            .http
            .post(srv.url("/api/v1/login"))
            .json(&json!({ "identifier": who, "mode": "api" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(resp.headers().get("retry-after").is_some());
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "rate_limited");
        assert!(
            body["retry_after"].as_u64().is_some_and(|s| (1..=60).contains(&s)),
            "{body}"
        );
    }
    srv.stop().await;
}
