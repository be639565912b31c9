use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{redeem_api, token_of, TestServer};

#[tokio::test]
async fn admin_invitation_arrives_over_smtp_and_redeems_into_an_enrollment_session() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "Ada@Example.com").await;
    let link = srv.invite(&admin, &id, "Ada@Example.com").await;

    let mail = srv.wait_mail("Ada@Example.com", 0).await;
    let text = mail.text_body().unwrap();
    assert!(
        text.contains("72 hours") || text.contains("3 days"),
        "says how long it is valid: {text}"
    );
    assert!(
        text.to_lowercase().contains("did not") || text.to_lowercase().contains("didn't"),
        "says what to do if unexpected"
    );
    assert!(mail.html_body().unwrap().contains(&link));

    let token = redeem_api(&srv, &link).await;
    let (s, session) = srv.call(Method::GET, "/api/v1/session", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(session["scope"], "enrollment");
    assert_eq!(session["aal"], "aal1");
    assert_eq!(session["phishing_resistant"], false);
    assert_eq!(session["user"]["email"], "Ada@Example.com");
    assert_eq!(session["user"]["id"], id.as_str());
    for key in ["id", "amr", "auth_time", "expires_at", "tier"] {
        assert!(session.get(key).is_some(), "SESSION has {key}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn an_invitation_works_once() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "once@example.com").await;
    let link = srv.invite(&admin, &id, "once@example.com").await;
    redeem_api(&srv, &link).await;
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/invitations/redeem",
            None,
            Some(json!({ "token": token_of(&link), "mode": "api" })),
        )
        .await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(body["error"], "invitation_invalid");
    srv.stop().await;
}

#[tokio::test]
async fn fifty_parallel_redemptions_give_exactly_one_session() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "race@example.com").await;
    let link = srv.invite(&admin, &id, "race@example.com").await;
    let body = json!({ "token": token_of(&link), "mode": "api" });
    let attempts = (0..50).map(|_| srv.call(Method::POST, "/api/v1/invitations/redeem", None, Some(body.clone())));
    let results = futures::future::join_all(attempts).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let gone = results.iter().filter(|(s, _)| *s == StatusCode::GONE).count();
    assert_eq!(ok, 1, "exactly one redemption wins: {results:?}");
    assert_eq!(gone, 49, "every other one is refused with 410, none fails with 5xx");
    let sessions = srv
        .app()
        .store
        .list_user_sessions(signet_core::user::UserId(id.parse().unwrap()), srv.app().clock.now())
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    srv.stop().await;
}

#[tokio::test]
async fn an_invitation_expires_after_72_hours() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "late@example.com").await;
    let link = srv.invite(&admin, &id, "late@example.com").await;
    srv.clock.advance(Duration::from_secs(72 * 3600));
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/invitations/redeem",
            None,
            Some(json!({ "token": token_of(&link), "mode": "api" })),
        )
        .await;
    assert_eq!(s, StatusCode::GONE, "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn a_new_invitation_replaces_the_old_one() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "again@example.com").await;
    let first = srv.invite(&admin, &id, "again@example.com").await;
    let second = srv.invite(&admin, &id, "again@example.com").await;
    assert_ne!(first, second);
    let (s, _) = srv
        .call(
            Method::POST,
            "/api/v1/invitations/redeem",
            None,
            Some(json!({ "token": token_of(&first), "mode": "api" })),
        )
        .await;
    assert_eq!(s, StatusCode::GONE);
    redeem_api(&srv, &second).await;
    srv.stop().await;
}

#[tokio::test]
async fn the_invitation_page_survives_prefetching_and_the_form_redeems_in_the_browser() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "page@example.com").await;
    let link = srv.invite(&admin, &id, "page@example.com").await;

    // A mail scanner fetching the link (HEAD, GET) changes nothing.
    let head = srv.http.head(&link).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let page = srv.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("page@example.com") && html.contains("<form method=\"post\""));

    // A cross-site form post is refused (login CSRF).
    let evil = srv
        .http
        .post(&link)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    let missing = srv.http.post(&link).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);

    // The real form post redeems, sets the cookie and continues to the
    // page that creates the first passkey.
    let ok = srv.http.post(&link).headers(srv.same_origin()).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()["location"], "/enroll");
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("signet_session=sgs_"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"));
    let pair = cookie.split(';').next().unwrap().to_owned();

    // An enrollment-only session has no account page yet: it is sent to
    // /enroll, which offers to create the passkey.
    let account = srv
        .http
        .get(srv.url("/account"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), StatusCode::SEE_OTHER);
    assert_eq!(account.headers()["location"], "/enroll");
    let enroll = srv
        .http
        .get(srv.url("/enroll"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(enroll.status(), StatusCode::OK);
    let html = enroll.text().await.unwrap();
    assert!(html.contains("page@example.com") && html.contains("Create a passkey"));

    // Used now: the page says so instead of offering the form again.
    let again = srv.http.get(&link).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::GONE);
    srv.stop().await;
}

#[tokio::test]
async fn a_garbage_token_is_simply_invalid() {
    let srv = TestServer::start().await;
    for token in [
        "",
        "x",
        "sgi_short",
        &format!("sgi_{}", "A".repeat(43)),
        &"é".repeat(5000),
    ] {
        let (s, body) = srv
            .call(
                Method::POST,
                "/api/v1/invitations/redeem",
                None,
                Some(json!({ "token": token, "mode": "api" })),
            )
            .await;
        assert_eq!(s, StatusCode::GONE, "{token}: {body}");
        assert_eq!(body["error"], "invitation_invalid");
    }
    let page = srv.http.get(srv.url("/invite/nonsense")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::GONE);
    srv.stop().await;
}
