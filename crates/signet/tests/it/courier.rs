use std::time::Duration;

use reqwest::{Method, StatusCode};

use signet_core::outbox::DeliveryStatus;
use signet_courier::WorkerConfig;

use crate::cli::signet;
use crate::support::{Options, TestServer};

#[tokio::test]
async fn an_invitation_survives_an_smtp_outage() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "patient@example.com").await;
    let smtp = srv.smtp.as_ref().unwrap();
    smtp.set_failing(true);
    // The API does not wait on SMTP.
    let message_id = srv.queue_invitation(&admin, &id).await;

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
    // While it waits for its retry (due 5 s after the failure), `/metrics`
    // shows it, and how long it has waited.
    srv.clock.advance(Duration::from_secs(4));
    let metrics = srv.metrics().await;
    assert!(metrics.contains("signet_outbox_pending 1\n"), "{metrics}");
    assert!(metrics.contains("signet_outbox_dead 0\n"), "{metrics}");
    assert!(
        metrics.contains("signet_outbox_oldest_pending_age_seconds 4\n"),
        "{metrics}"
    );
    smtp.set_failing(false);
    srv.clock.advance(Duration::from_secs(56));
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
    let metrics = srv.metrics().await;
    assert!(metrics.contains("signet_outbox_pending 0\n"), "{metrics}");
    assert!(
        metrics.contains("signet_outbox_oldest_pending_age_seconds 0\n"),
        "{metrics}"
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
    srv.queue_invitation(&admin, &id).await;
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

/// Polls `done` every 50 ms until it holds, failing after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The reliability issue: two nodes, a relay that takes seconds per message,
/// and a lease shorter than one send. Each worker leases only what it sends
/// and renews the lease while the relay is slow, so no lease ever runs out
/// under a send in progress and every person gets exactly one email.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_and_a_slow_relay_deliver_every_message_exactly_once() {
    const PEOPLE: usize = 16;
    let worker = WorkerConfig {
        poll_interval: Duration::from_millis(100),
        lease: Duration::from_secs(2),
        batch_size: 16,
        concurrency: 4,
        send_timeout: Duration::from_secs(20),
        ..Default::default()
    };
    let a = TestServer::start_with(Options {
        worker: Some(worker.clone()),
        ..Default::default()
    })
    .await;
    let sink = a.smtp.as_ref().unwrap();
    // RCPT and DATA take 1.5 s each: 3 s a message, longer than the lease.
    sink.set_delay(Duration::from_millis(1500));
    let b = TestServer::start_with(Options {
        smtp: false,
        shared_db: Some(a.db_url.clone()),
        env: vec![("SIGNET_EMAIL__SMTP_URL".to_owned(), sink.url())],
        worker: Some(worker),
        ..Default::default()
    })
    .await;
    // The servers' clocks are manual; leases must run out in real time.
    let clocks = [a.clock.clone(), b.clock.clone()];
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            for c in &clocks {
                c.advance(Duration::from_millis(50));
            }
        }
    });

    let admin = a.admin_token().await;
    let mut people = Vec::new();
    for n in 0..PEOPLE {
        let email = format!("person{n}@example.com");
        // Half the invitations are queued on each node.
        let node = if n % 2 == 0 { &a } else { &b };
        let id = node.create_user(&admin, &email).await;
        node.queue_invitation(&admin, &id).await;
        people.push(email);
    }

    eventually(Duration::from_secs(20), "every person has an invitation", || async {
        let mail = sink.messages();
        people.iter().all(|p| mail.iter().any(|m| m.to.iter().any(|t| t == p)))
    })
    .await;
    // A duplicate would come from a lease that ran out under a send; give
    // it more than a lease's time to show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mail = sink.messages();
    for person in &people {
        let copies = mail.iter().filter(|m| m.to.iter().any(|t| t == person)).count();
        assert_eq!(copies, 1, "{person} got {copies} copies");
    }
    assert_eq!(mail.len(), PEOPLE);
    eventually(Duration::from_secs(5), "every delivery recorded", || async {
        let messages = a.app().store.recent_messages(100).await.unwrap();
        messages.len() == PEOPLE && messages.iter().all(|m| m.status == DeliveryStatus::Sent)
    })
    .await;
    for m in a.app().store.recent_messages(100).await.unwrap() {
        assert_eq!(m.attempts, 1, "each message was claimed once");
    }
    ticker.abort();
    b.stop().await;
    a.stop().await;
}

/// Invites user `id` while the relay refuses mail, and waits until the
/// invitation's first attempt has failed (the relay works again after).
async fn invitation_that_failed_once(srv: &TestServer, admin: &str, id: &str) {
    let smtp = srv.smtp.as_ref().unwrap();
    smtp.set_failing(true);
    let message_id = srv.queue_invitation(admin, id).await;
    eventually(Duration::from_secs(10), "a failed attempt", || async {
        srv.app()
            .store
            .message(message_id)
            .await
            .unwrap()
            .unwrap()
            .last_error
            .is_some()
    })
    .await;
    smtp.set_failing(false);
}

/// After an outage, `POST /api/v1/admin/outbox/retry` sends the queued mail
/// at once instead of after the backoff, and is audited.
#[tokio::test]
async fn admin_retry_sends_queued_mail_at_once_and_is_audited() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "waiting@example.com").await;
    invitation_that_failed_once(&srv, &admin, &id).await;

    let (s, body) = srv.call(Method::POST, "/api/v1/admin/outbox/retry", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    // The clock stands still: only the retry can make the message due.
    let (s, body) = srv
        .call(Method::POST, "/api/v1/admin/outbox/retry", Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["rescheduled"], 1);
    srv.wait_mail("waiting@example.com", 0).await;

    let (s, audit) = srv
        .call(
            Method::GET,
            "/api/v1/admin/audit?type=outbox.retried",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    assert!(events[0]["actor"].as_str().unwrap().starts_with("admin:"), "{audit}");
    assert_eq!(events[0]["details"]["rescheduled"], 1);
    srv.stop().await;
}

/// `signet outbox retry --json` prints one object and makes queued mail due.
#[tokio::test]
async fn cli_outbox_retry_makes_queued_mail_due() {
    let srv = TestServer::start().await;
    // The CLI runs on the wall clock. Put the server's (manual) clock an hour
    // ahead so that the retry it schedules is not due for an hour of wall
    // time: only `outbox retry` can make it due now.
    srv.clock.advance(Duration::from_secs(3600));
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "cli-retry@example.com").await;
    invitation_that_failed_once(&srv, &admin, &id).await;

    let out = signet(&srv, &["outbox", "retry", "--json"]).await;
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "exactly one JSON object: {stdout}");
    let printed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(printed["rescheduled"], 1, "{printed}");
    // The server's worker finds it on its next poll, with its clock standing still.
    srv.wait_mail("cli-retry@example.com", 0).await;
    srv.stop().await;
}
