use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::support::{Options, TestServer};

#[tokio::test]
async fn an_invitation_survives_an_smtp_outage() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "patient@example.com").await;
    let smtp = srv.smtp.as_ref().unwrap();
    smtp.set_failing(true);
    let (s, body) = srv
        .call(
            Method::POST,
            &format!("/api/v1/admin/users/{id}/invitations"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "the API does not wait on SMTP: {body}");
    let message_id: uuid::Uuid = body["message_id"].as_str().unwrap().parse().unwrap();

    // The first attempt fails and is scheduled for a retry.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = srv.app().store.message(message_id).await.unwrap().unwrap();
        if m.attempts >= 1 && m.last_error.is_some() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no failed attempt recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    smtp.set_failing(false);
    srv.clock.advance(Duration::from_secs(60));
    let mail = srv.wait_mail("patient@example.com", 0).await;
    assert!(mail.find_link(&srv.url("/invite/")).is_some());
    // The sink has the mail a moment before the worker records the delivery.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let sent = loop {
        let m = srv.app().store.message(message_id).await.unwrap().unwrap();
        if m.status == signet_core::outbox::DeliveryStatus::Sent {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "delivery never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        sent.text_body.is_none() && sent.html_body.is_none(),
        "bodies with one-time links are scrubbed after delivery"
    );
    assert!(
        sent.text_body.is_none(),
        "bodies with one-time links are scrubbed after delivery"
    );
    srv.stop().await;
}

#[tokio::test]
async fn the_dev_outbox_exists_only_without_real_delivery() {
    let with_smtp = TestServer::start().await;
    let (s, _) = with_smtp.call(Method::GET, "/dev/outbox", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    with_smtp.stop().await;

    let srv = TestServer::start_with(Options {
        smtp: false,
        ..Default::default()
    })
    .await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "dev@example.com").await;
    let (s, _) = srv
        .call(
            Method::POST,
            &format!("/api/v1/admin/users/{id}/invitations"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (_, outbox) = srv.call(Method::GET, "/dev/outbox.json", None, None).await;
        let messages = outbox["messages"].as_array().cloned().unwrap_or_default();
        if let Some(m) = messages
            .iter()
            .find(|m| m["recipient"] == "dev@example.com" && m["status"] == "sent")
        {
            break m["text_body"].as_str().unwrap().to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        text.contains(&srv.url("/invite/sgi_")),
        "the dev outbox keeps the body: {text}"
    );
    let page = srv.http.get(srv.url("/dev/outbox")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("dev@example.com"));
    srv.stop().await;
}
