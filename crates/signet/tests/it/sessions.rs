use reqwest::{Method, StatusCode};

use crate::passkeys;
use crate::support::{redeem_api, TestServer};

#[tokio::test]
async fn a_user_lists_and_ends_their_own_sessions_only() {
    let srv = TestServer::start().await;
    // Full sessions: invitation, a passkey, then sign in with it. (The
    // invitation's enrollment session may not manage sessions.)
    let full_sessions = |email: &'static str, n: usize| {
        let srv = &srv;
        async move {
            let (_, enrollment) = passkeys::invited(srv, email).await;
            let mut key = passkeys::authenticator(srv);
            passkeys::enroll(srv, &enrollment, &mut key, None).await;
            let (s, body) = srv.call(Method::GET, "/api/v1/sessions", Some(&enrollment), None).await;
            assert_eq!(
                (s, body["error"].as_str()),
                (StatusCode::FORBIDDEN, Some("insufficient_scope"))
            );
            let (s, _) = srv
                .call(Method::DELETE, "/api/v1/session", Some(&enrollment), None)
                .await;
            assert_eq!(s, StatusCode::NO_CONTENT);
            let mut tokens = Vec::new();
            for _ in 0..n {
                let done = passkeys::sign_in(srv, &mut key, Some(email)).await;
                tokens.push(done["session_token"].as_str().unwrap().to_owned());
            }
            tokens
        }
    };
    let multi = full_sessions("multi@example.com", 2).await;
    let (a, b) = (multi[0].clone(), multi[1].clone());
    let c = full_sessions("other@example.com", 1).await.remove(0);

    let (s, list) = srv.call(Method::GET, "/api/v1/sessions", Some(&a), None).await;
    assert_eq!(s, StatusCode::OK);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let b_id = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The other user cannot end it, and learns nothing (404).
    let (s, _) = srv
        .call(Method::DELETE, &format!("/api/v1/sessions/{b_id}"), Some(&c), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&b), None).await;
    assert_eq!(s, StatusCode::OK);

    let (s, _) = srv
        .call(Method::DELETE, &format!("/api/v1/sessions/{b_id}"), Some(&a), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&b), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, _) = srv.call(Method::DELETE, "/api/v1/session", Some(&a), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = srv.call(Method::GET, "/api/v1/session", Some(&a), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthenticated");
    srv.stop().await;
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_blocks_invitations() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "leaver@example.com").await;
    let token = redeem_api(&srv, &srv.invite(&admin, &id, "leaver@example.com").await).await;
    let (s, user) = srv
        .call(
            Method::POST,
            &format!("/api/v1/admin/users/{id}/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(user["status"], "disabled");
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&token), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = srv
        .call(
            Method::POST,
            &format!("/api/v1/admin/users/{id}/invitations"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(body["error"], "user_disabled");
    srv.stop().await;
}

#[tokio::test]
async fn sessions_expire_when_idle() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "idle@example.com").await;
    let token = redeem_api(&srv, &srv.invite(&admin, &id, "idle@example.com").await).await;
    srv.clock.advance(std::time::Duration::from_secs(14 * 60));
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "activity inside the idle window keeps it alive");
    srv.clock.advance(std::time::Duration::from_secs(14 * 60));
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    srv.clock.advance(std::time::Duration::from_secs(16 * 60));
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&token), None).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "15 minutes idle ends an enrollment session"
    );
    srv.stop().await;
}

#[tokio::test]
async fn cookie_sessions_need_same_origin_for_changes_and_rotate_on_authentication() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "cookie@example.com").await;
    let link = srv.invite(&admin, &id, "cookie@example.com").await;
    let resp = srv.http.post(&link).headers(srv.same_origin()).send().await.unwrap();
    let first = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let cross = srv
        .http
        .delete(srv.url("/api/v1/session"))
        .header("cookie", &first)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = cross.json().await.unwrap();
    assert_eq!(body["error"], "cross_origin_request");
    let no_origin = srv
        .http
        .delete(srv.url("/api/v1/session"))
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(no_origin.status(), StatusCode::FORBIDDEN);
    // Reads are fine without Origin.
    let read = srv
        .http
        .get(srv.url("/api/v1/session"))
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);

    // Authenticating again in this browser replaces the old session.
    let link2 = srv.invite(&admin, &id, "cookie@example.com").await;
    let resp = srv
        .http
        .post(&link2)
        .headers(srv.same_origin())
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let second = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    let old = srv
        .http
        .get(srv.url("/api/v1/session"))
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(
        old.status(),
        StatusCode::UNAUTHORIZED,
        "the pre-authentication session is gone"
    );

    let out = srv
        .http
        .delete(srv.url("/api/v1/session"))
        .header("cookie", &second)
        .headers(srv.same_origin())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    srv.stop().await;
}
