use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn admin_api_needs_a_valid_admin_token() {
    let srv = TestServer::start().await;
    let body = json!({ "email": "x@example.com" });
    let (s, err) = srv
        .call(Method::POST, "/api/v1/admin/users", None, Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(err["error"], "unauthenticated");
    let fake = format!("sga_{}", "A".repeat(43));
    let (s, _) = srv
        .call(Method::POST, "/api/v1/admin/users", Some(&fake), Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A session token is not an admin token.
    let (s, _) = srv
        .call(Method::POST, "/api/v1/admin/users", Some("sgs_whatever"), Some(body))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    srv.stop().await;
}

#[tokio::test]
async fn users_are_validated_and_unique_ignoring_case() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let (s, user) = srv
        .call(
            Method::POST,
            "/api/v1/admin/users",
            Some(&admin),
            Some(json!({ "email": "  Grace@Example.com ", "roles": ["admin"], "phone": "+14155550100", "name": "Grace" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{user}");
    assert_eq!(user["email"], "Grace@Example.com");
    assert_eq!(user["roles"], json!(["admin"]));
    assert_eq!(user["status"], "active");
    let id = user["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());

    let (s, got) = srv
        .call(Method::GET, &format!("/api/v1/admin/users/{id}"), Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["phone"], "+14155550100");

    let (s, err) = srv
        .call(
            Method::POST,
            "/api/v1/admin/users",
            Some(&admin),
            Some(json!({ "email": "grace@EXAMPLE.com" })),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(err["error"], "email_taken");

    for (body, code) in [
        (json!({ "email": "a@b.com\r\nBcc: evil@x.com" }), "invalid_email"),
        (json!({ "email": "not-an-email" }), "invalid_email"),
        (
            json!({ "email": "p@example.com", "phone": "555-1234" }),
            "invalid_phone",
        ),
        (json!({ "email": "r@example.com", "roles": ["Admin!"] }), "invalid_role"),
        (
            json!({ "email": "n@example.com", "name": "bad\u{7}name" }),
            "invalid_name",
        ),
    ] {
        let (s, err) = srv
            .call(Method::POST, "/api/v1/admin/users", Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(err["error"], code, "{body}");
    }

    for path in [
        "/api/v1/admin/users/not-a-uuid",
        &format!("/api/v1/admin/users/{}", uuid::Uuid::new_v4()),
    ] {
        let (s, err) = srv.call(Method::GET, path, Some(&admin), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(err["error"], "user_not_found");
    }
    srv.stop().await;
}

#[tokio::test]
async fn every_admin_action_is_audited_with_the_token_as_actor() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "watched@example.com").await;
    srv.invite(&admin, &id, "watched@example.com").await;
    srv.call(Method::GET, &format!("/api/v1/admin/users/{id}"), Some(&admin), None)
        .await;

    let (s, audit) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit?user_id={id}&limit=50"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let events = audit["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for t in ["user.created", "invitation.created", "admin.access"] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    for e in events {
        assert!(e["actor"].as_str().unwrap().starts_with("admin:admin-"), "{e}");
        assert_eq!(e["user_id"], id.as_str());
        assert_eq!(e["ip"], "127.0.0.1");
        for key in ["id", "at", "outcome", "details", "user_agent"] {
            assert!(e.get(key).is_some(), "{key}");
        }
    }
    let (s, only) = srv
        .call(
            Method::GET,
            "/api/v1/admin/audit?type=user.created&limit=5",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(only["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["type"] == "user.created"));
    let (s, err) = srv
        .call(Method::GET, "/api/v1/admin/audit?type=nope", Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_event_type");
    let (s, _) = srv
        .call(Method::GET, "/api/v1/admin/audit?limit=abc", Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    srv.stop().await;
}
