//! Passkeys end to end over HTTP, with 1Password's software authenticator
//! (a real CTAP2 authenticator and WebAuthn client): invitation → enrollment
//! → login with an identifier → usernameless login, and the threats around
//! them (enumeration, replays in parallel, stolen ceremonies, hostile JSON,
//! losing the last way in). The per-check §7.2 negatives are in
//! signet-passkey's own tests, against the same verifier.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[path = "../../../signet-passkey/tests/support/mod.rs"]
pub(crate) mod soft;

use soft::{SoftAuthenticator, ONE_PASSWORD};

use crate::support::{redeem_api, shape, TestServer};

/// A user invited through the admin API, with the enrollment session token
/// of their redeemed invitation.
pub(crate) async fn invited(srv: &TestServer, email: &str) -> (String, String) {
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, email).await;
    let link = srv.invite(&admin, &id, email).await;
    (id, redeem_api(srv, &link).await)
}

/// Waits for a mail to `to` whose subject starts with `subject` (the
/// outbox delivers in the background, in no guaranteed order).
async fn mail_about(srv: &TestServer, to: &str, subject: &str) -> signet_testkit::CapturedMail {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = srv.smtp.as_ref().unwrap().messages().into_iter().find(|m| {
            m.to.iter().any(|t| t.eq_ignore_ascii_case(to)) && m.subject().is_some_and(|s| s.starts_with(subject))
        });
        if let Some(m) = found {
            return m;
        }
        assert!(tokio::time::Instant::now() < deadline, "no mail {subject:?} to {to}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn authenticator(srv: &TestServer) -> SoftAuthenticator {
    SoftAuthenticator::new(ONE_PASSWORD, true, false).at(&srv.base)
}

/// `POST /api/v1/credentials/passkey/begin` with `body`.
async fn begin_with(srv: &TestServer, token: &str, body: Value) -> (StatusCode, Value) {
    srv.call(
        Method::POST,
        "/api/v1/credentials/passkey/begin",
        Some(token),
        Some(body),
    )
    .await
}

/// `POST /api/v1/credentials/passkey/begin {}`.
pub(crate) async fn begin(srv: &TestServer, token: &str) -> (StatusCode, Value) {
    begin_with(srv, token, json!({})).await
}

/// `POST /api/v1/credentials/passkey/finish` for the ceremony `ceremony_id`.
pub(crate) async fn finish(
    srv: &TestServer,
    token: &str,
    ceremony_id: &Value,
    credential: Value,
) -> (StatusCode, Value) {
    srv.call(
        Method::POST,
        "/api/v1/credentials/passkey/finish",
        Some(token),
        Some(json!({ "ceremony_id": ceremony_id, "credential": credential })),
    )
    .await
}

/// begin + create + finish; returns the 201 body.
pub(crate) async fn enroll(srv: &TestServer, token: &str, auth: &mut SoftAuthenticator, name: Option<&str>) -> Value {
    let body = match name {
        Some(n) => json!({ "name": n }),
        None => json!({}),
    };
    let (s, begun) = begin_with(srv, token, body).await;
    assert_eq!(s, StatusCode::OK, "{begun}");
    let credential = auth.create(&begun["publicKey"]).await;
    let (s, created) = finish(srv, token, &begun["ceremony_id"], credential).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    created
}

/// Starts an api-mode login and returns (flow_id, the passkey entry).
pub(crate) async fn start_login(srv: &TestServer, identifier: Option<&str>) -> (String, Value) {
    let mut body = json!({ "mode": "api" });
    if let Some(i) = identifier {
        body["identifier"] = json!(i);
    }
    let (s, started) = srv.call(Method::POST, "/api/v1/login", None, Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{started}");
    let entry = started["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "passkey")
        .expect("passkey is offered")
        .clone();
    (started["flow_id"].as_str().unwrap().to_owned(), entry)
}

pub(crate) async fn post_assertion(srv: &TestServer, flow: &str, credential: Value) -> (StatusCode, Value) {
    srv.call(
        Method::POST,
        &format!("/api/v1/login/{flow}/passkey"),
        None,
        Some(json!({ "credential": credential })),
    )
    .await
}

/// Signs in with the authenticator and returns the completed body.
/// The id of the signed-in account's credential called `name`.
pub(crate) async fn credential_named(srv: &TestServer, session: &str, name: &str) -> String {
    let (_, list) = srv.call(Method::GET, "/api/v1/credentials", Some(session), None).await;
    list["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no credential called {name}: {list}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Removes credential `id` as the holder of `session`: the answer's status
/// and body.
pub(crate) async fn remove_credential(srv: &TestServer, session: &str, id: &str) -> (StatusCode, Value) {
    srv.call(
        Method::DELETE,
        &format!("/api/v1/credentials/{id}"),
        Some(session),
        None,
    )
    .await
}

pub(crate) async fn sign_in(srv: &TestServer, auth: &mut SoftAuthenticator, identifier: Option<&str>) -> Value {
    let (flow, entry) = start_login(srv, identifier).await;
    let credential = auth.get(&entry["publicKey"]).await;
    let (s, done) = post_assertion(srv, &flow, credential).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "complete", "{done}");
    done
}

#[tokio::test]
async fn invitation_enrolls_a_passkey_that_signs_in_with_an_identifier_and_usernameless() {
    let srv = TestServer::start().await;
    let (id, enrollment) = invited(&srv, "ada@example.com").await;
    let mut auth = authenticator(&srv);

    // The enrollment session may enroll and nothing else.
    let (s, body) = srv
        .call(Method::GET, "/api/v1/credentials", Some(&enrollment), None)
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );
    let (s, body) = srv.call(Method::GET, "/api/v1/sessions", Some(&enrollment), None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );

    let created = enroll(&srv, &enrollment, &mut auth, None).await;
    assert_eq!(created["type"], "passkey");
    assert_eq!(
        created["name"], "1Password",
        "named after the authenticator model by default"
    );
    assert_eq!(created["authenticator"], "1Password");
    assert_eq!(created["backup_eligible"], true);
    assert_eq!(created["last_used_at"], Value::Null);

    // The owner is told by email.
    mail_about(&srv, "ada@example.com", "A passkey was added").await;

    // Login with an identifier: allowCredentials names the passkey.
    let (flow, entry) = start_login(&srv, Some("ada@example.com")).await;
    let allowed = entry["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1);
    let credential = auth.get(&entry["publicKey"]).await;
    assert_eq!(allowed[0]["id"], credential["id"]);
    let (s, done) = post_assertion(&srv, &flow, credential).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "complete");
    let session = &done["session"];
    assert_eq!(session["user"]["id"], id.as_str());
    assert_eq!(session["aal"], "aal2", "UV passkey: multi-factor");
    assert_eq!(session["amr"], json!(["swk", "user", "mfa"]), "synced key, RFC 8176");
    assert_eq!(session["phishing_resistant"], true);
    assert_eq!(session["scope"], "full");

    // Usernameless: no identifier, a discoverable request; the user comes
    // from the credential.
    let (flow, entry) = start_login(&srv, None).await;
    assert!(entry["publicKey"]["allowCredentials"]
        .as_array()
        .is_none_or(|a| a.is_empty()));
    let credential = auth.get(&entry["publicKey"]).await;
    let (s, done) = post_assertion(&srv, &flow, credential).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["session"]["user"]["id"], id.as_str());
    assert_eq!(done["session"]["user"]["email"], "ada@example.com");
    assert_eq!(done["session"]["aal"], "aal2");
    let token = done["session_token"].as_str().unwrap();

    let (s, list) = srv.call(Method::GET, "/api/v1/credentials", Some(token), None).await;
    assert_eq!(s, StatusCode::OK);
    let creds = list["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 1);
    for key in [
        "id",
        "type",
        "name",
        "created_at",
        "last_used_at",
        "authenticator",
        "synced",
        "backup_eligible",
    ] {
        assert!(creds[0].get(key).is_some(), "credential has {key}: {}", creds[0]);
    }
    assert!(creds[0]["last_used_at"].is_string());

    // Rename.
    let path = format!("/api/v1/credentials/{}", creds[0]["id"].as_str().unwrap());
    let (s, renamed) = srv
        .call(
            Method::PATCH,
            &path,
            Some(token),
            Some(json!({ "name": "  Work laptop " })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Work laptop");
    let (s, bad) = srv
        .call(Method::PATCH, &path, Some(token), Some(json!({ "name": "" })))
        .await;
    assert_eq!(
        (s, bad["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_name"))
    );

    let (_, audit) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit?user_id={id}"),
            Some(&srv.admin_token().await),
            None,
        )
        .await;
    let types: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(
        types.contains(&"credential.added") && types.contains(&"credential.renamed"),
        "{types:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn an_unknown_identifier_gets_passkey_options_shaped_like_a_real_users() {
    let srv = TestServer::start().await;
    let (_, enrollment) = invited(&srv, "real@example.com").await;
    enroll(&srv, &enrollment, &mut authenticator(&srv), None).await;
    let admin = srv.admin_token().await;
    srv.create_user(&admin, "nopasskey@example.com").await;

    let (_, real) = start_login(&srv, Some("real@example.com")).await;
    let (_, unknown) = start_login(&srv, Some("nobody@example.com")).await;
    let (_, again) = start_login(&srv, Some("nobody@example.com")).await;
    let (_, without) = start_login(&srv, Some("nopasskey@example.com")).await;

    let keys = |v: &Value| {
        let mut k: Vec<String> = v["publicKey"].as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&real), keys(&unknown));
    assert_eq!(keys(&real), keys(&without));
    for entry in [&unknown, &without] {
        let allowed = entry["publicKey"]["allowCredentials"].as_array().unwrap();
        assert!(!allowed.is_empty() && allowed.len() <= 4, "decoys: {entry}");
        for a in allowed {
            assert_eq!(a["type"], "public-key");
            assert!(
                a["transports"].is_array(),
                "decoys carry transports like real ones: {a}"
            );
            assert_eq!(shape(&a["id"]), shape(&real["publicKey"]["allowCredentials"][0]["id"]));
        }
        assert_eq!(
            entry["publicKey"]["userVerification"],
            real["publicKey"]["userVerification"]
        );
        assert_eq!(entry["publicKey"]["rpId"], real["publicKey"]["rpId"]);
        assert_eq!(entry["publicKey"]["timeout"], real["publicKey"]["timeout"]);
    }
    // The same unknown identifier always gets the same decoys (a stable
    // answer, as a real account's would be), and fresh challenges.
    assert_eq!(
        unknown["publicKey"]["allowCredentials"],
        again["publicKey"]["allowCredentials"]
    );
    assert_ne!(unknown["publicKey"]["challenge"], again["publicKey"]["challenge"]);
    srv.stop().await;
}

#[tokio::test]
async fn the_same_assertion_posted_twenty_times_at_once_makes_one_session() {
    let srv = TestServer::start().await;
    let (_, enrollment) = invited(&srv, "race@example.com").await;
    let mut auth = authenticator(&srv);
    enroll(&srv, &enrollment, &mut auth, None).await;

    for identifier in [Some("race@example.com"), None] {
        let (flow, entry) = start_login(&srv, identifier).await;
        let credential = auth.get(&entry["publicKey"]).await;
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (http, url, body) = (
                srv.http.clone(),
                srv.url(&format!("/api/v1/login/{flow}/passkey")),
                json!({ "credential": credential }),
            );
            tasks.push(tokio::spawn(async move {
                let r = http.post(url).json(&body).send().await.unwrap();
                let status = r.status();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }));
        }
        let mut sessions = 0;
        for t in tasks {
            let (status, body) = t.await.unwrap();
            if status == StatusCode::OK {
                assert_eq!(body["state"], "complete");
                sessions += 1;
            } else {
                assert!(status.is_client_error(), "{status} {body}");
                assert!(body["error"].is_string(), "{body}");
            }
        }
        assert_eq!(sessions, 1, "exactly one session for {identifier:?}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn removing_a_passkey_ends_its_sessions_and_the_last_one_stays() {
    let srv = TestServer::start().await;
    let (_, enrollment) = invited(&srv, "two@example.com").await;
    let mut laptop = authenticator(&srv);
    let mut phone = authenticator(&srv);
    enroll(&srv, &enrollment, &mut laptop, Some("Laptop")).await;

    // The invitation's aal1 session cannot bind a second authenticator
    // now that the account has an aal2 one.
    let (s, body) = begin(&srv, &enrollment).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "step_up_required");
    assert_eq!(body["required_aal"], "aal2");
    assert!(body["max_age"].is_u64() && body["methods"].is_array(), "{body}");

    let with_laptop = sign_in(&srv, &mut laptop, Some("two@example.com")).await;
    let laptop_token = with_laptop["session_token"].as_str().unwrap().to_owned();
    enroll(&srv, &laptop_token, &mut phone, Some("Phone")).await;
    let with_phone = sign_in(&srv, &mut phone, None).await;
    let phone_token = with_phone["session_token"].as_str().unwrap().to_owned();

    let laptop_id = credential_named(&srv, &phone_token, "Laptop").await;
    let phone_id = credential_named(&srv, &phone_token, "Phone").await;

    let (s, _) = remove_credential(&srv, &phone_token, &laptop_id).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = srv
        .call(Method::GET, "/api/v1/session", Some(&laptop_token), None)
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the laptop's session ended with its passkey"
    );
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&phone_token), None).await;
    assert_eq!(s, StatusCode::OK);
    let mail = mail_about(&srv, "two@example.com", "A passkey was removed").await;
    assert!(mail.text_body().unwrap().contains("\"Laptop\""), "names the passkey");

    // The standard tier needs aal2, which email alone never reaches: the
    // last passkey is the last way in.
    let (s, body) = remove_credential(&srv, &phone_token, &phone_id).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("last_credential"))
    );
    let (s, list) = srv
        .call(Method::GET, "/api/v1/credentials", Some(&phone_token), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["credentials"].as_array().unwrap().len(), 1);

    // A removed passkey no longer signs in.
    let (flow, entry) = start_login(&srv, None).await;
    let credential = laptop.get(&entry["publicKey"]).await;
    let (s, body) = post_assertion(&srv, &flow, credential).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("credential_not_found"))
    );

    // Someone else's or a made-up id is just not found.
    let (s, body) = srv
        .call(
            Method::DELETE,
            "/api/v1/credentials/not-a-uuid",
            Some(&phone_token),
            None,
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("credential_not_found"))
    );
    srv.stop().await;
}

#[tokio::test]
async fn an_enrollment_ceremony_is_used_once_by_its_own_session_within_five_minutes() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "cer@example.com").await;
    let first = redeem_api(&srv, &srv.invite(&admin, &id, "cer@example.com").await).await;
    let second = redeem_api(&srv, &srv.invite(&admin, &id, "cer@example.com").await).await;
    let mut auth = authenticator(&srv);

    let begin_ok = |token: String| {
        let srv = &srv;
        async move {
            let (s, b) = begin(srv, &token).await;
            assert_eq!(s, StatusCode::OK, "{b}");
            b
        }
    };

    // Another session (same user, other invitation) cannot finish it...
    let begun = begin_ok(first.clone()).await;
    let credential = auth.create(&begun["publicKey"]).await;
    let (s, body) = finish(&srv, &second, &begun["ceremony_id"], credential.clone()).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::GONE, Some("ceremony_expired"))
    );
    // ...and trying does not burn it for its own session.
    let (s, body) = finish(&srv, &first, &begun["ceremony_id"], credential.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    // Used once.
    let (s, body) = finish(&srv, &first, &begun["ceremony_id"], credential).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::GONE, Some("ceremony_expired"))
    );

    // Expiry, on a second user (the first now needs aal2 to add more).
    let (_, token) = invited(&srv, "late@example.com").await;
    let begun = begin_ok(token.clone()).await;
    let credential = authenticator(&srv).create(&begun["publicKey"]).await;
    srv.clock.advance(Duration::from_secs(301));
    let (s, body) = finish(&srv, &token, &begun["ceremony_id"], credential).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::GONE, Some("ceremony_expired"))
    );
    let (s, body) = finish(&srv, &token, &json!("not-a-uuid"), json!({})).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::GONE, Some("ceremony_expired"))
    );
    srv.stop().await;
}

/// Hostile variations of a valid credential JSON.
fn hostile(valid: &Value) -> Vec<(&'static str, Value)> {
    let with = |path: &[&str], v: Value| {
        let mut c = valid.clone();
        let mut at = &mut c;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = v;
        c
    };
    let long = "A".repeat(200_000);
    vec![
        ("a string", json!("credential")),
        ("a number", json!(42)),
        ("null", Value::Null),
        ("empty object", json!({})),
        ("array", json!([valid])),
        ("id not base64url", with(&["id"], json!("***"))),
        ("rawId not base64url", with(&["rawId"], json!("!!"))),
        ("empty id", with(&["id"], json!(""))),
        ("huge id", with(&["id"], json!(long))),
        ("type not public-key", with(&["type"], json!("password"))),
        ("response missing", with(&["response"], Value::Null)),
        (
            "clientDataJSON garbage",
            with(&["response", "clientDataJSON"], json!("e30")),
        ),
        (
            "clientDataJSON not base64",
            with(&["response", "clientDataJSON"], json!("%%%")),
        ),
        (
            "authenticatorData short",
            with(&["response", "authenticatorData"], json!("AAAA")),
        ),
        (
            "attestationObject garbage",
            with(&["response", "attestationObject"], json!("oWNmbXQ")),
        ),
        ("signature empty", with(&["response", "signature"], json!(""))),
        ("signature huge", with(&["response", "signature"], json!(long))),
        ("userHandle number", with(&["response", "userHandle"], json!(7))),
        ("transports object", with(&["response", "transports"], json!({"a": 1}))),
        ("extensions wrong", with(&["clientExtensionResults"], json!("x"))),
    ]
}

#[tokio::test]
async fn hostile_credential_json_gets_a_stable_4xx_and_changes_nothing() {
    let srv = TestServer::start().await;
    let (_, enrollment) = invited(&srv, "hostile@example.com").await;
    let mut auth = authenticator(&srv);

    // Enrollment.
    let (_, begun) = begin(&srv, &enrollment).await;
    let valid = auth.create(&begun["publicKey"]).await;
    for (what, bad) in hostile(&valid) {
        let (_, begun) = begin(&srv, &enrollment).await;
        let (s, body) = finish(&srv, &enrollment, &begun["ceremony_id"], bad).await;
        assert!(s.is_client_error(), "{what}: {s} {body}");
        let code = body["error"].as_str().unwrap_or_default();
        assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{what}: {body}"
        );
    }
    // The first ceremony still finishes with the genuine response.
    let (s, body) = finish(&srv, &enrollment, &begun["ceremony_id"], valid).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");

    // Login.
    let done = sign_in(&srv, &mut auth, Some("hostile@example.com")).await;
    let token = done["session_token"].as_str().unwrap().to_owned();
    let (_, before) = srv.call(Method::GET, "/api/v1/credentials", Some(&token), None).await;
    let (_, entry) = start_login(&srv, None).await;
    let valid = auth.get(&entry["publicKey"]).await;
    for (what, bad) in hostile(&valid) {
        let (flow, _) = start_login(&srv, Some("hostile@example.com")).await;
        let (s, body) = post_assertion(&srv, &flow, bad).await;
        assert!(s.is_client_error(), "{what}: {s} {body}");
        let code = body["error"].as_str().unwrap_or_default();
        assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{what}: {body}"
        );
    }
    // A genuine assertion for another flow's challenge is refused too.
    let (flow, _) = start_login(&srv, None).await;
    let (s, body) = post_assertion(&srv, &flow, valid).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("challenge_mismatch"))
    );
    let (_, after) = srv.call(Method::GET, "/api/v1/credentials", Some(&token), None).await;
    assert_eq!(before, after, "the stored credential is unchanged");
    srv.stop().await;
}

/// A copy of `auth`'s passkey in a second authenticator, as a cloned key
/// would be: same private key, same counter as at the moment of copying.
fn clone_of(srv: &TestServer, auth: &SoftAuthenticator) -> SoftAuthenticator {
    use passkey::authenticator::Authenticator;
    use passkey::client::Client;
    use passkey::crypto::rust_crypto::RustCryptoBackend;
    use passkey::types::ctap2::Aaguid;
    let aaguid = Aaguid::from(*uuid::Uuid::parse_str(ONE_PASSWORD).unwrap().as_bytes());
    let mut a = Authenticator::new(
        aaguid,
        Some(auth.passkey()),
        soft::Person { can_verify: true },
        RustCryptoBackend,
    );
    a.set_make_credentials_with_signature_counter(true);
    let client = Client::new(a)
        .user_verification_when_preferred(true)
        .allows_insecure_localhost(true);
    SoftAuthenticator {
        client,
        origin: url::Url::parse(&srv.base).unwrap(),
    }
}

#[tokio::test]
async fn a_cloned_passkey_is_refused_by_its_counter_and_audited() {
    let srv = TestServer::start().await;
    let (id, enrollment) = invited(&srv, "clone@example.com").await;
    let mut original = SoftAuthenticator::new(ONE_PASSWORD, true, true).at(&srv.base);
    enroll(&srv, &enrollment, &mut original, None).await;
    sign_in(&srv, &mut original, None).await;
    let mut clone = clone_of(&srv, &original);
    let done = sign_in(&srv, &mut original, Some("clone@example.com")).await;
    let token = done["session_token"].as_str().unwrap().to_owned();
    let (_, before) = srv.call(Method::GET, "/api/v1/credentials", Some(&token), None).await;

    // The clone's counter is behind the original's: refused, audited.
    let (flow, entry) = start_login(&srv, None).await;
    let credential = clone.get(&entry["publicKey"]).await;
    let (s, body) = post_assertion(&srv, &flow, credential).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("counter_regression"))
    );
    let (_, after) = srv.call(Method::GET, "/api/v1/credentials", Some(&token), None).await;
    assert_eq!(before, after, "nothing stored changed");
    let (_, audit) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit?user_id={id}&type=credential.counter_regression"),
            Some(&srv.admin_token().await),
            None,
        )
        .await;
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["details"]["credential_id"], before["credentials"][0]["id"]);

    // The original still works.
    sign_in(&srv, &mut original, None).await;
    srv.stop().await;
}

#[tokio::test]
async fn a_device_bound_only_tier_refuses_a_synced_passkey_at_enrollment() {
    let policy = r#"
[tiers.standard]
login = ["passkey"]
second_factor = ["passkey"]
required_aal = "aal2"
session = { idle = "30m", absolute = "12h" }

[tiers.standard.passkey]
user_verification = "required"
device_bound_only = true

[assignment]
default = "standard"
"#;
    let srv = TestServer::start_with(crate::support::Options {
        policy: Some(policy.into()),
        ..Default::default()
    })
    .await;
    let (id, enrollment) = invited(&srv, "bound@example.com").await;
    let mut synced = authenticator(&srv);
    let (_, begun) = begin(&srv, &enrollment).await;
    assert_eq!(
        begun["publicKey"]["authenticatorSelection"]["residentKey"], "required",
        "discoverable: {begun}"
    );
    let credential = synced.create(&begun["publicKey"]).await;
    let (s, body) = finish(&srv, &enrollment, &begun["ceremony_id"], credential).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("synced_passkey_not_allowed"))
    );
    let (_, audit) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit?user_id={id}&type=credential.refused"),
            Some(&srv.admin_token().await),
            None,
        )
        .await;
    assert_eq!(
        audit["events"][0]["details"]["error"], "synced_passkey_not_allowed",
        "{audit}"
    );
    // Nothing was stored: a new ceremony may still enroll a first passkey.
    let (s, _) = begin(&srv, &enrollment).await;
    assert_eq!(s, StatusCode::OK);
    srv.stop().await;
}

#[tokio::test]
async fn adding_a_passkey_after_the_freshness_window_takes_a_passkey_step_up() {
    let srv = TestServer::start().await;
    let (_, enrollment) = invited(&srv, "later@example.com").await;
    let mut laptop = authenticator(&srv);
    enroll(&srv, &enrollment, &mut laptop, Some("Laptop")).await;
    let done = sign_in(&srv, &mut laptop, Some("later@example.com")).await;
    let token = done["session_token"].as_str().unwrap().to_owned();

    // Six minutes later the sign-in is too old to bind a new authenticator.
    srv.clock.advance(Duration::from_secs(6 * 60));
    let (s, body) = begin(&srv, &token).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("step_up_required"))
    );
    assert!(
        body["methods"].as_array().unwrap().iter().any(|m| m == "passkey"),
        "{body}"
    );

    // A step-up with the existing passkey raises the session.
    let (s, started) = srv
        .call(
            Method::POST,
            "/api/v1/step-up",
            Some(&token),
            Some(json!({ "action": "add_credential" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{started}");
    let entry = started["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "passkey")
        .unwrap()
        .clone();
    assert_eq!(
        entry["publicKey"]["allowCredentials"].as_array().unwrap().len(),
        1,
        "the user's own passkey"
    );
    let credential = laptop.get(&entry["publicKey"]).await;
    let flow = started["flow_id"].as_str().unwrap();
    let (s, raised) = srv
        .call(
            Method::POST,
            &format!("/api/v1/step-up/{flow}/passkey"),
            Some(&token),
            Some(json!({ "credential": credential })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{raised}");
    let raised_token = raised["session_token"].as_str().unwrap().to_owned();

    let mut phone = authenticator(&srv);
    let created = enroll(&srv, &raised_token, &mut phone, Some("Phone")).await;
    assert_eq!(created["name"], "Phone");
    srv.stop().await;
}

#[tokio::test]
async fn a_tier_may_let_a_counter_regression_through_but_it_is_still_audited() {
    let policy = r#"
[tiers.standard]
login = ["passkey"]
second_factor = ["passkey"]
required_aal = "aal2"
session = { idle = "30m", absolute = "12h" }

[tiers.standard.passkey]
counter = "allow_regression"

[assignment]
default = "standard"
"#;
    let srv = TestServer::start_with(crate::support::Options {
        policy: Some(policy.into()),
        ..Default::default()
    })
    .await;
    let (id, enrollment) = invited(&srv, "lenient@example.com").await;
    let mut original = SoftAuthenticator::new(ONE_PASSWORD, true, true).at(&srv.base);
    enroll(&srv, &enrollment, &mut original, None).await;
    sign_in(&srv, &mut original, None).await;
    let mut clone = clone_of(&srv, &original);
    sign_in(&srv, &mut original, None).await;
    sign_in(&srv, &mut clone, None).await;
    let (_, audit) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit?user_id={id}&type=credential.counter_regression"),
            Some(&srv.admin_token().await),
            None,
        )
        .await;
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["details"]["allowed"], true);
    srv.stop().await;
}

#[tokio::test]
async fn a_usernameless_passkey_of_an_account_whose_tier_does_not_log_in_with_passkeys_is_refused_and_audited() {
    // Usernameless flows start in the default tier (which offers passkeys);
    // the passkey names its owner, whose own tier only takes an email code
    // to log in (a passkey is its second factor).
    let policy = r#"
[tiers.standard]
login = ["passkey", "email_otp"]
second_factor = ["passkey"]
required_aal = "aal2"
session = { idle = "30m", absolute = "12h" }

[tiers.kiosk]
login = ["email_otp"]
second_factor = ["passkey"]
required_aal = "aal2"
session = { idle = "15m", absolute = "8h" }

[assignment]
default = "standard"
roles = { kiosk = "kiosk" }
"#;
    let srv = TestServer::start_with(crate::support::Options {
        policy: Some(policy.into()),
        ..Default::default()
    })
    .await;
    let admin = srv.admin_token().await;
    let (s, created) = srv
        .call(
            Method::POST,
            "/api/v1/admin/users",
            Some(&admin),
            Some(json!({ "email": "till@example.com", "roles": ["kiosk"] })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let link = srv.invite(&admin, id, "till@example.com").await;
    let enrollment = redeem_api(&srv, &link).await;
    let mut auth = authenticator(&srv);
    enroll(&srv, &enrollment, &mut auth, None).await;

    let (flow, entry) = start_login(&srv, None).await;
    let credential = auth.get(&entry["publicKey"]).await;
    let (s, err) = post_assertion(&srv, &flow, credential).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("method_not_allowed")),
        "{err}"
    );
    let (_, failed) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit?user_id={id}&type=login.failed"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        failed["events"][0]["details"]["error"], "method_not_allowed",
        "a refusal after a valid proof is a failed login: {failed}"
    );
    let (_, sessions) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit?user_id={id}&type=login.succeeded"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(sessions["events"].as_array().map(Vec::len), Some(0), "{sessions}");
    srv.stop().await;
}

#[tokio::test]
async fn a_credential_id_registered_to_one_account_is_refused_for_another() {
    let srv = TestServer::start().await;
    // Alice's passkey, and its credential id.
    let (_, alice_enrollment) = invited(&srv, "alice@example.com").await;
    let mut alices = authenticator(&srv);
    let (_, begun) = begin(&srv, &alice_enrollment).await;
    let credential = alices.create(&begun["publicKey"]).await;
    let (s, _) = finish(&srv, &alice_enrollment, &begun["ceremony_id"], credential.clone()).await;
    assert_eq!(s, StatusCode::CREATED);
    let alice_id = soft::unb64(credential["rawId"].as_str().unwrap());

    // Mallory registers a key of her own under Alice's credential id, in a
    // ceremony that is otherwise valid, to hijack lookups by that id.
    let (mallory, mallory_enrollment) = invited(&srv, "mallory@example.com").await;
    let (_, begun) = begin(&srv, &mallory_enrollment).await;
    let forge = soft::Forge::new_credential(9, alice_id, mallory.as_bytes().to_vec());
    let host = url::Url::parse(&srv.base).unwrap().host_str().unwrap().to_owned();
    let forged = forge.registration_at(
        &soft::challenge_of(&begun["publicKey"]),
        soft::UP | soft::UV,
        ONE_PASSWORD,
        &srv.base,
        &host,
    );
    let (s, err) = finish(&srv, &mallory_enrollment, &begun["ceremony_id"], forged).await;
    assert_eq!(
        (s, err["error"].as_str()),
        (StatusCode::CONFLICT, Some("credential_already_registered")),
        "{err}"
    );
    // Nothing was stored for Mallory (her setup session may still enroll a
    // first passkey), and Alice's passkey still signs her in.
    let (s, _) = begin(&srv, &mallory_enrollment).await;
    assert_eq!(s, StatusCode::OK);
    let done = sign_in(&srv, &mut alices, Some("alice@example.com")).await;
    assert_eq!(done["session"]["user"]["email"], "alice@example.com");
    srv.stop().await;
}
