//! The courier against real sockets: lettre talks SMTP to `SmtpSink`, reqwest
//! POSTs to `HttpSink`. The store is SQLite in a temporary directory (the SQL
//! stores' own behaviour is held by their conformance suite; here it is the
//! worker's use of them that is tested).

// This whole file is test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use signet_core::clock::{Clock, ManualClock, SharedClock, Timestamp};
use signet_core::outbox::{backoff, Channel, DeliveryStatus, Draft, Message, EXPIRED_ERROR, MAX_ATTEMPTS, MAX_BACKOFF};
use signet_core::store::{AuditQuery, AuditStore, OutboxStore};
use signet_core::unit_of_work::UnitOfWork;
use signet_courier::{
    ConfigError, Courier, Delivery, DeliveryError, EmailTransport, SmsTransport, SmtpSecurity, WorkerConfig,
};
use signet_store::SqlStore;
use signet_testkit::{HttpSink, SmtpLogin, SmtpSink};
use uuid::Uuid;

const START: Timestamp = Timestamp::from_millis(1_795_550_400_000);
const WAIT: Duration = Duration::from_secs(10);
const FROM: &str = "Signet <signet@example.com>";

struct Rig {
    store: Arc<SqlStore>,
    clock: Arc<ManualClock>,
    courier: Courier,
    /// Messages the courier dropped as expired (its metric hook).
    expired: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/signet.db", dir.path().display());
    let store = Arc::new(SqlStore::connect(&url).await.unwrap());
    let clock = Arc::new(ManualClock::new(START));
    let shared_clock: SharedClock = clock.clone();
    let expired = Arc::new(AtomicUsize::new(0));
    let counted = expired.clone();
    let courier = Courier::new(store.clone(), shared_clock).on_expired(Arc::new(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
    }));
    Rig {
        store,
        clock,
        courier,
        expired,
        _dir: dir,
    }
}

/// An email carrying a link that works for 72 hours (what it says is the
/// use cases' business; the courier only carries it).
fn invitation(link: &str) -> Draft {
    Draft {
        channel: Channel::Email,
        recipient: "ada@example.com".to_owned(),
        subject: "You're invited to sign in to Signet".to_owned(),
        text_body: format!("Grace Hopper invited you. Accept: {link}"),
        html_body: Some(format!(
            "<p>Grace Hopper invited you. <a href=\"{link}\">Accept</a></p>"
        )),
        template: "invitation",
        expires_at: Some(START.plus(Duration::from_secs(72 * 3600))),
    }
}

fn sms(to: &str, body: &str) -> Draft {
    Draft {
        channel: Channel::Sms,
        recipient: to.to_owned(),
        subject: String::new(),
        text_body: body.to_owned(),
        html_body: None,
        template: "sms_otp",
        expires_at: None,
    }
}

/// A worker sending to `sink`, running in the background, that polls only
/// once an hour: whatever it delivers within a test, a wake-up made it do.
struct WokenWorker {
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<()>,
}

fn woken_worker(rig: &Rig, sink: &SmtpSink) -> WokenWorker {
    woken_worker_with(rig, sink, WorkerConfig::default().concurrency)
}

/// [`woken_worker`] with `concurrency` send slots.
fn woken_worker_with(rig: &Rig, sink: &SmtpSink, concurrency: usize) -> WokenWorker {
    running_worker(
        rig,
        sink,
        WorkerConfig {
            concurrency,
            poll_interval: Duration::from_secs(3600),
            ..Default::default()
        },
    )
}

/// A worker with `config` sending to `sink`, running in the background.
fn running_worker(rig: &Rig, sink: &SmtpSink, config: WorkerConfig) -> WokenWorker {
    let email = EmailTransport::new(&sink.url(), FROM).unwrap();
    let worker = rig.courier.worker(Delivery::new(Some(email), None), config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    WokenWorker { stop, running }
}

/// Waits until `done` holds, checking every 5 ms, for at most [`WAIT`].
async fn until(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"));
}

/// Waits until the courier's worker has started (and takes hand-offs).
async fn started(rig: &Rig) {
    until("the worker starts", || rig.courier.worker_running()).await;
}

impl WokenWorker {
    /// Shuts it down and waits until it has stopped.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(WAIT, self.running)
            .await
            .expect("worker stops on shutdown")
            .unwrap();
    }
}

async fn stored(rig: &Rig, id: Uuid) -> Message {
    rig.store.message(id).await.unwrap().unwrap()
}

/// The message once its delivery is recorded (the worker records it just
/// after the relay accepts it), or as it stands after two seconds.
async fn recorded_sent(rig: &Rig, id: Uuid) -> Message {
    let mut message = stored(rig, id).await;
    for _ in 0..100 {
        if message.status == DeliveryStatus::Sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        message = stored(rig, id).await;
    }
    message
}

#[tokio::test]
async fn invitation_is_delivered_over_smtp_and_its_bodies_scrubbed() {
    let sink = SmtpSink::start().await.unwrap();
    let rig = rig().await;
    // Only enqueue's wake-up can get it delivered in time.
    let worker = woken_worker(&rig, &sink);

    let link = "http://localhost:8080/invite/inv_Zm9vYmFy";
    let id = rig.courier.enqueue(invitation(link)).await.unwrap();

    let mail = sink
        .wait_for(|m| m.to == ["ada@example.com"], WAIT)
        .await
        .expect("invitation delivered");
    assert_eq!(mail.from, "signet@example.com");
    assert_eq!(mail.header("From").as_deref(), Some("Signet <signet@example.com>"));
    assert_eq!(mail.subject().as_deref(), Some("You're invited to sign in to Signet"));
    assert!(mail
        .header("Content-Type")
        .unwrap()
        .starts_with("multipart/alternative"));
    assert!(mail.header("Message-ID").is_some());
    let text = mail.text_body().unwrap();
    let html = mail.html_body().unwrap();
    let draft = invitation(link);
    assert_eq!(text, draft.text_body.trim_end(), "text part arrives as composed");
    assert_eq!(
        html,
        draft.html_body.unwrap().trim_end(),
        "HTML part arrives as composed"
    );
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
    assert_eq!(mail.find_link("http://localhost:8080/invite/").as_deref(), Some(link));

    // The worker records the delivery right after the relay accepts it.
    let message = recorded_sent(&rig, id).await;
    assert_eq!(message.status, DeliveryStatus::Sent);
    assert_eq!(message.sent_at, Some(START));
    assert_eq!(message.attempts, 1);
    assert_eq!(message.text_body, None, "one-time link must not stay in storage");
    assert_eq!(message.html_body, None);
    assert_eq!(message.subject, "You're invited to sign in to Signet");

    worker.stop().await;
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn smtp_outage_is_retried_with_backoff_and_nothing_is_lost() {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_failing(true);
    let rig = rig().await;
    let email = EmailTransport::new(&sink.url(), FROM).unwrap();
    let worker = rig
        .courier
        .worker(Delivery::new(Some(email), None), WorkerConfig::default());

    // Enqueueing does not care that the relay is down.
    let id = rig
        .courier
        .enqueue(invitation("http://localhost:8080/invite/outage"))
        .await
        .unwrap();

    assert_eq!(worker.run_once().await, 1);
    let m = stored(&rig, id).await;
    assert_eq!((m.status, m.attempts), (DeliveryStatus::Pending, 1));
    assert_eq!(m.next_attempt_at, START.plus(backoff(1)));
    assert!(
        m.last_error.as_deref().unwrap().contains("try again later"),
        "{:?}",
        m.last_error
    );
    assert!(m.text_body.is_some(), "an undelivered message keeps its bodies");

    // Not due yet: nothing is attempted.
    rig.clock.advance(backoff(1) - Duration::from_millis(1));
    assert_eq!(worker.run_once().await, 0);

    rig.clock.advance(Duration::from_millis(1));
    assert_eq!(worker.run_once().await, 1);
    let m = stored(&rig, id).await;
    assert_eq!(m.attempts, 2);
    let second_failure_at = START.plus(backoff(1));
    assert_eq!(m.next_attempt_at, second_failure_at.plus(backoff(2)));
    assert!(backoff(2) > backoff(1), "backoff grows");

    // The relay comes back; the retry goes through exactly once.
    sink.set_failing(false);
    rig.clock.advance(backoff(2));
    assert_eq!(worker.run_once().await, 1);
    let m = stored(&rig, id).await;
    assert_eq!((m.status, m.attempts), (DeliveryStatus::Sent, 3));
    assert_eq!(m.text_body, None);
    let delivered = sink.messages();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].find_link("http://localhost:8080/invite/").as_deref(),
        Some("http://localhost:8080/invite/outage")
    );

    rig.clock.advance(Duration::from_secs(3600));
    assert_eq!(worker.run_once().await, 0, "a sent message is never attempted again");
}

#[tokio::test]
async fn message_is_declared_dead_after_max_attempts() {
    let hook = HttpSink::start().await.unwrap();
    hook.set_failing(true);
    let rig = rig().await;
    let worker = rig.courier.worker(
        Delivery::new(None, Some(SmsTransport::new(&hook.url()).unwrap())),
        WorkerConfig::default(),
    );
    let id = rig
        .courier
        .enqueue(sms("+14155550100", "Your code is 123456"))
        .await
        .unwrap();

    for attempt in 1..=MAX_ATTEMPTS {
        assert_eq!(worker.run_once().await, 1, "attempt {attempt}");
        let m = stored(&rig, id).await;
        assert_eq!(m.attempts, attempt);
        assert_eq!(m.last_error.as_deref(), Some("SMS webhook answered HTTP 500"));
        let expected = if attempt < MAX_ATTEMPTS {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Dead
        };
        assert_eq!(m.status, expected, "attempt {attempt}");
        rig.clock.advance(backoff(attempt));
    }
    rig.clock.advance(Duration::from_secs(86_400));
    assert_eq!(worker.run_once().await, 0, "a dead message stays dead");
    assert_eq!(hook.requests().len(), MAX_ATTEMPTS as usize);
}

#[tokio::test]
async fn sms_webhook_receives_exact_json() {
    let hook = HttpSink::start().await.unwrap();
    let rig = rig().await;
    let delivery = Delivery::from_config(FROM, None, Some(&hook.url())).unwrap();
    assert!(delivery.delivers(Channel::Sms));
    assert!(!delivery.delivers(Channel::Email));
    let worker = rig.courier.worker(delivery, WorkerConfig::default());

    let body = "Signet code: 123456. It expires in 10 minutes. Didn't ask? Ignore this \"message\".";
    let id = rig.courier.enqueue(sms("+14155550100", body)).await.unwrap();
    assert_eq!(worker.run_once().await, 1);

    let requests = hook.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/sms");
    assert_eq!(requests[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        requests[0].json,
        Some(serde_json::json!({"to": "+14155550100", "body": body}))
    );
    let m = stored(&rig, id).await;
    assert_eq!(m.status, DeliveryStatus::Sent);
    assert_eq!(m.text_body, None);
}

#[tokio::test]
async fn without_transports_messages_stay_readable_in_the_dev_outbox() {
    let rig = rig().await;
    let worker = rig.courier.worker(Delivery::outbox_only(), WorkerConfig::default());
    let email_id = rig
        .courier
        .enqueue(invitation("http://localhost:8080/invite/dev"))
        .await
        .unwrap();
    let sms_id = rig.courier.enqueue(sms("+14155550100", "code 654321")).await.unwrap();

    assert_eq!(worker.run_once().await, 2);
    let email = stored(&rig, email_id).await;
    assert_eq!(email.status, DeliveryStatus::Sent);
    assert!(email.text_body.unwrap().contains("http://localhost:8080/invite/dev"));
    assert!(email.html_body.is_some());
    let sms = stored(&rig, sms_id).await;
    assert_eq!(sms.status, DeliveryStatus::Sent);
    assert_eq!(sms.text_body.as_deref(), Some("code 654321"));
}

#[tokio::test]
async fn a_channel_without_transport_uses_the_outbox_while_the_other_delivers() {
    let sink = SmtpSink::start().await.unwrap();
    let rig = rig().await;
    let delivery = Delivery::from_config(FROM, Some(&sink.url()), None).unwrap();
    let worker = rig.courier.worker(delivery, WorkerConfig::default());
    let email_id = rig
        .courier
        .enqueue(invitation("http://localhost:8080/invite/mixed"))
        .await
        .unwrap();
    let sms_id = rig.courier.enqueue(sms("+14155550100", "code 111111")).await.unwrap();

    assert_eq!(worker.run_once().await, 2);
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(stored(&rig, email_id).await.text_body, None);
    assert_eq!(stored(&rig, sms_id).await.text_body.as_deref(), Some("code 111111"));
}

#[tokio::test]
async fn smtp_url_credentials_are_used_and_percent_decoded() {
    let sink = SmtpSink::start().await.unwrap();
    let url = format!("smtp://mailer%40example.com:p%3Ass%20w@{}", sink.addr());
    let email = EmailTransport::new(&url, FROM).unwrap();
    assert_eq!(email.endpoint().security, SmtpSecurity::Plain);
    email.send("ada@example.com", "Hi", "text only", None).await.unwrap();
    let mail = &sink.messages()[0];
    assert_eq!(
        mail.login,
        Some(SmtpLogin {
            user: "mailer@example.com".into(),
            password: "p:ss w".into()
        })
    );
    assert!(mail.header("Content-Type").unwrap().starts_with("text/plain"));
    assert_eq!(mail.text_body().as_deref(), Some("text only"));
    assert_eq!(mail.html_body(), None);
}

#[tokio::test]
async fn smtps_never_falls_back_to_plaintext() {
    // The sink speaks plain SMTP; an smtps:// transport must fail the TLS
    // handshake rather than send anything in the clear.
    let sink = SmtpSink::start().await.unwrap();
    let email = EmailTransport::new(&format!("smtps://{}", sink.addr()), FROM).unwrap();
    assert_eq!(email.endpoint().security, SmtpSecurity::ImplicitTls);
    let err = email
        .send("ada@example.com", "Hi", "secret link", None)
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Smtp(_)), "{err}");
    assert!(sink.messages().is_empty());
}

#[test]
fn smtp_url_errors_name_the_problem_without_echoing_secrets() {
    fn err(url: &str) -> ConfigError {
        EmailTransport::new(url, FROM).unwrap_err()
    }
    assert!(matches!(err("not a url"), ConfigError::SmtpUrlSyntax(_)));
    assert!(matches!(err("http://mail.example.com:25"), ConfigError::SmtpScheme(s) if s == "http"));
    assert!(matches!(
        err("smtp://:pw@:25"),
        ConfigError::SmtpUrlSyntax(_) | ConfigError::SmtpHost
    ));
    assert!(matches!(err("smtp:mail.example.com"), ConfigError::SmtpHost));
    assert!(matches!(
        err("smtp://mail.example.com:587?tls=required"),
        ConfigError::SmtpExtra("query")
    ));
    assert!(matches!(
        err("smtp://mail.example.com/ehlo-name"),
        ConfigError::SmtpExtra("path")
    ));
    assert!(matches!(
        err("smtp://mail.example.com#x"),
        ConfigError::SmtpExtra("fragment")
    ));
    assert!(matches!(
        err("smtp://user@mail.example.com"),
        ConfigError::SmtpPasswordMissing
    ));
    assert!(matches!(
        err("smtp://:hunter2@mail.example.com"),
        ConfigError::SmtpUserMissing
    ));
    assert!(matches!(
        err("smtp://us%FFer:pw@mail.example.com"),
        ConfigError::SmtpUserinfoEncoding("user name")
    ));
    assert!(matches!(
        err("smtp://mail.example.com:99999"),
        ConfigError::SmtpUrlSyntax(_)
    ));

    let e = err("smtps://user:hunter2@mail.example.com/path");
    assert_eq!(
        e.to_string(),
        "[email] smtp_url must be only scheme, credentials, host and port, but it has a path"
    );
    let e = err("ftp://user:hunter2@mail.example.com");
    assert!(!e.to_string().contains("hunter2"), "{e}");

    let e = EmailTransport::new("smtp://mail.example.com", "not an address").unwrap_err();
    assert!(matches!(e, ConfigError::From { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("[email] from \"not an address\" is not a valid mailbox"),
        "{e}"
    );
}

#[test]
fn webhook_url_errors() {
    assert!(matches!(SmsTransport::new("::"), Err(ConfigError::WebhookUrlSyntax(_))));
    assert!(matches!(SmsTransport::new("ftp://sms.example.com/"), Err(ConfigError::WebhookScheme(s)) if s == "ftp"));
    assert!(SmsTransport::new("https://sms.example.com/hook?token=x").is_ok());
    let delivery = Delivery::from_config(
        FROM,
        Some("smtp://mail.example.com:2525"),
        Some("https://sms.example.com/hook"),
    );
    assert!(delivery.is_ok());
}

#[tokio::test]
async fn a_message_that_can_never_be_sent_is_dead_at_once() {
    let sink = SmtpSink::start().await.unwrap();
    let rig = rig().await;
    let worker = rig.courier.worker(
        Delivery::new(Some(EmailTransport::new(&sink.url(), FROM).unwrap()), None),
        WorkerConfig::default(),
    );
    let mut draft = invitation("http://localhost:8080/invite/x");
    draft.recipient = "not an address".to_owned();
    let id = rig.courier.enqueue(draft).await.unwrap();
    assert_eq!(worker.run_once().await, 1);
    let m = stored(&rig, id).await;
    assert_eq!(m.status, DeliveryStatus::Dead);
    assert!(m
        .last_error
        .unwrap()
        .starts_with("the recipient is not a valid email address"));
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn an_expired_sign_in_message_is_dropped_recorded_and_never_sent() {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_failing(true);
    let rig = rig().await;
    let email = EmailTransport::new(&sink.url(), FROM).unwrap();
    let worker = rig
        .courier
        .worker(Delivery::new(Some(email), None), WorkerConfig::default());
    let expires_at = START.plus(Duration::from_secs(600));
    let id = rig
        .courier
        .enqueue(invitation("http://localhost:8080/invite/short").expiring_at(expires_at))
        .await
        .unwrap();
    assert_eq!(stored(&rig, id).await.expires_at, Some(expires_at));

    // The relay is down for longer than the content lives. Retries come at
    // least every MAX_BACKOFF, and the last one no later than the expiry.
    let mut attempts = 0;
    while rig.clock.now() < expires_at {
        assert_eq!(worker.run_once().await, 1);
        attempts += 1;
        let m = stored(&rig, id).await;
        assert!(m.next_attempt_at <= expires_at, "never scheduled past its expiry");
        assert!(m.next_attempt_at.as_millis() - rig.clock.now().as_millis() <= MAX_BACKOFF.as_millis() as i64);
        rig.clock.advance(Duration::from_millis(
            (m.next_attempt_at.as_millis() - rig.clock.now().as_millis()) as u64,
        ));
    }
    assert!(attempts > 3, "{attempts}");

    // The relay is back, but the code in the message is dead: it is not sent.
    sink.set_failing(false);
    assert_eq!(worker.run_once().await, 1, "claimed once more, to be dropped");
    let m = stored(&rig, id).await;
    assert_eq!(m.status, DeliveryStatus::Dead);
    assert_eq!(m.last_error.as_deref(), Some(EXPIRED_ERROR));
    assert_eq!((m.text_body, m.html_body), (None, None), "a dead link is erased too");
    assert!(sink.messages().is_empty(), "an expired message must never be sent");
    assert_eq!(rig.expired.load(Ordering::SeqCst), 1, "counted for the metric");
    let records = rig
        .store
        .query_audit(&AuditQuery {
            event_type: Some("message.expired".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].actor, "system");
    let details: serde_json::Value = serde_json::from_str(&records[0].details).unwrap();
    assert_eq!(details["message_id"], id.to_string());
    assert_eq!(details["template"], "invitation");

    rig.clock.advance(Duration::from_secs(3600));
    assert_eq!(worker.run_once().await, 0, "a dropped message stays dropped");
}

#[tokio::test]
async fn retry_now_sends_queued_mail_at_once_when_the_relay_is_back() {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_failing(true);
    let rig = rig().await;
    // Only a wake-up can get anything delivered in time.
    let worker = woken_worker(&rig, &sink);
    let ids = [
        rig.courier
            .enqueue(invitation("http://localhost:8080/invite/one"))
            .await
            .unwrap(),
        rig.courier
            .enqueue(invitation("http://localhost:8080/invite/two"))
            .await
            .unwrap(),
    ];
    for id in ids {
        let deadline = tokio::time::Instant::now() + WAIT;
        while stored(&rig, id).await.last_error.is_none() {
            assert!(tokio::time::Instant::now() < deadline, "no failed attempt recorded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The relay is back, but the retries are not due for a while.
    sink.set_failing(false);
    rig.clock.advance(Duration::from_secs(1));
    assert!(stored(&rig, ids[0]).await.next_attempt_at > rig.clock.now());

    let mut tx = rig.store.begin().await.unwrap();
    assert_eq!(rig.courier.retry_all_in(&mut *tx).await.unwrap(), 2);
    tx.commit().await.unwrap();
    rig.courier.wake();

    for id in ids {
        let deadline = tokio::time::Instant::now() + WAIT;
        while stored(&rig, id).await.status != DeliveryStatus::Sent {
            assert!(tokio::time::Instant::now() < deadline, "retry now did not deliver");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(sink.messages().len(), 2);
    worker.stop().await;
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_neither_records_nor_resends() {
    let sink = SmtpSink::start().await.unwrap();
    // A slow relay: the send outlasts the (shortest) lease.
    sink.set_delay(Duration::from_secs(3));
    let rig = rig().await;
    let email = EmailTransport::new(&sink.url(), FROM).unwrap();
    let config = WorkerConfig {
        lease: Duration::from_secs(1),
        ..Default::default()
    };
    let worker = rig.courier.worker(Delivery::new(Some(email), None), config);
    let id = rig
        .courier
        .enqueue(invitation("http://localhost:8080/invite/slow"))
        .await
        .unwrap();
    let pass = tokio::spawn(async move { worker.run_once().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Another worker finds the lease run out (as after a pause of this
    // node) and takes the message.
    rig.clock.advance(Duration::from_secs(2));
    let (thief, taken) = another_claim(&rig, true).await;
    assert_eq!(taken.len(), 1);
    // The first worker's next renewal finds the lease gone: it gives up.
    assert_eq!(tokio::time::timeout(WAIT, pass).await.unwrap().unwrap(), 1);
    let m = stored(&rig, id).await;
    assert_eq!(
        (m.status, m.attempts),
        (DeliveryStatus::Pending, 2),
        "nothing recorded by the loser"
    );
    assert!(sink.messages().is_empty(), "the abandoned send never completed");
    let mut tx = rig.store.begin().await.unwrap();
    assert!(tx
        .mark_message_sent(id, thief.token, rig.clock.now(), true)
        .await
        .unwrap());
    tx.commit().await.unwrap();
}

#[test]
fn url_rules_are_shared_by_config_and_transports_and_say_nothing_of_the_source() {
    use signet_courier::{check_smtp_url, check_webhook_url, SmtpUrlError, WebhookUrlError};
    assert_eq!(
        check_smtp_url("http://mail.example.com").unwrap_err().to_string(),
        "must start with smtp:// (plain) or smtps:// (TLS), not http://"
    );
    assert_eq!(
        check_smtp_url("smtp://user@mail.example.com"),
        Err(SmtpUrlError::PasswordMissing)
    );
    assert!(check_smtp_url("smtps://u:p@mail.example.com:465").is_ok());
    assert_eq!(
        check_webhook_url("https://sms.example.com/send#x"),
        Err(WebhookUrlError::Fragment)
    );
    assert!(matches!(
        SmsTransport::new("https://sms.example.com/send#x"),
        Err(ConfigError::WebhookFragment)
    ));
    assert!(check_webhook_url("https://sms.example.com/send?token=t").is_ok());
    assert_eq!(
        check_webhook_url("ftp://sms.example.com").unwrap_err().to_string(),
        "must start with http:// or https://, not ftp://"
    );
}

/// A text with lines that start with dots, which SMTP must carry intact
/// (RFC 5321 section 4.5.2: stuffed by the client, unstuffed by the relay).
fn dotted(n: usize) -> String {
    format!("Your code: {n:06}\n.hidden line\n..two dots\n.\nend")
}

#[tokio::test]
async fn many_messages_share_one_smtp_connection() {
    let sink = SmtpSink::start().await.unwrap();
    let email = EmailTransport::new(&sink.url(), FROM).unwrap();
    for n in 0..5 {
        let to = format!("user{n}@example.com");
        email.send(&to, "Your code", &dotted(n), None).await.unwrap();
    }
    let mails = sink.messages();
    assert_eq!(mails.len(), 5);
    for (n, mail) in mails.iter().enumerate() {
        assert_eq!(mail.to, [format!("user{n}@example.com")]);
        assert_eq!(mail.text_body().unwrap(), dotted(n));
    }
    assert_eq!(sink.connections(), 1, "one session carried every message");
    assert_eq!(email.connections_opened(), 1);
}

#[tokio::test]
async fn a_pooled_connection_the_relay_closed_is_replaced_and_the_message_delivered() {
    let sink = SmtpSink::start().await.unwrap();
    let email = EmailTransport::new(&sink.url(), FROM).unwrap();
    email
        .send("ada@example.com", "Your code", &dotted(1), None)
        .await
        .unwrap();
    // The relay ends the idle session (421, then it closes the socket).
    sink.hang_up_idle();
    tokio::time::sleep(Duration::from_millis(50)).await;

    email
        .send("ada@example.com", "Your code", &dotted(2), None)
        .await
        .unwrap();
    let mails = sink.messages();
    assert_eq!(mails.len(), 2, "the second message was delivered once");
    assert_eq!(mails[1].text_body().unwrap(), dotted(2));
    assert_eq!(sink.connections(), 2, "a fresh session replaced the closed one");
    assert_eq!(email.connections_opened(), 2);
}

#[tokio::test]
async fn a_relay_refusal_on_a_pooled_connection_is_not_resent_at_once() {
    let sink = SmtpSink::start().await.unwrap();
    let email = EmailTransport::new(&sink.url(), FROM).unwrap();
    email
        .send("ada@example.com", "Your code", &dotted(1), None)
        .await
        .unwrap();
    sink.set_failing(true);
    // The relay answered (451): the queue retries later, the pool does not.
    let err = email
        .send("ada@example.com", "Your code", &dotted(2), None)
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Smtp(_)), "{err}");
    assert!(!err.is_permanent());
    assert_eq!(sink.connections(), 1, "no second session for a refusal");
    sink.set_failing(false);
    email
        .send("ada@example.com", "Your code", &dotted(3), None)
        .await
        .unwrap();
    assert_eq!(sink.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_use_at_most_one_connection_per_send_slot() {
    let sink = SmtpSink::start().await.unwrap();
    let email = EmailTransport::new(&sink.url(), FROM).unwrap();
    email.set_pool_size(4);
    for round in 0..3 {
        let sends: Vec<_> = (0..4)
            .map(|n| {
                let email = email.clone();
                tokio::spawn(async move {
                    let to = format!("user{n}@example.com");
                    email.send(&to, "Your code", &dotted(round * 4 + n), None).await
                })
            })
            .collect();
        for send in sends {
            send.await.unwrap().unwrap();
        }
    }
    assert_eq!(sink.messages().len(), 12);
    assert!(sink.connections() <= 4, "{} sessions for 4 slots", sink.connections());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_records_every_result_once_over_pooled_connections() {
    let sink = SmtpSink::start().await.unwrap();
    let rig = rig().await;
    let mut ids = Vec::new();
    for n in 0..20 {
        let mut draft = invitation(&format!("http://localhost:8080/invite/inv_{n}"));
        draft.recipient = format!("user{n}@example.com");
        ids.push(rig.courier.enqueue(draft).await.unwrap());
    }
    let email = EmailTransport::new(&sink.url(), FROM).unwrap();
    let config = WorkerConfig {
        concurrency: 4,
        poll_interval: Duration::from_secs(3600),
        ..Default::default()
    };
    let worker = rig.courier.worker(Delivery::new(Some(email), None), config);
    // One pass delivers everything due: results are recorded as slots free
    // up, together with the next claim.
    assert_eq!(tokio::time::timeout(WAIT, worker.run_once()).await.unwrap(), 20);

    assert_eq!(sink.messages().len(), 20, "each message sent once");
    assert!(sink.connections() <= 4, "{} sessions for 4 slots", sink.connections());
    for id in ids {
        let m = stored(&rig, id).await;
        assert_eq!((m.status, m.attempts), (DeliveryStatus::Sent, 1), "{id}");
        assert_eq!(m.text_body, None, "scrubbed");
    }
}

/// A sign-in code's mail as the use cases queue it: leased to the running
/// worker inside the unit that issues the code.
async fn queue_leased(rig: &Rig, draft: Draft) -> signet_courier::Queued {
    let mut tx = rig.store.begin().await.unwrap();
    let queued = rig.courier.enqueue_leased_in(&mut *tx, draft).await.unwrap();
    tx.commit().await.unwrap();
    queued
}

/// A running (woken) worker, and a code's mail queued leased to it.
async fn one_code_mail_queued() -> (SmtpSink, Rig, WokenWorker, signet_courier::Queued) {
    let sink = SmtpSink::start().await.unwrap();
    let rig = rig().await;
    let worker = woken_worker(&rig, &sink);
    started(&rig).await;
    let queued = queue_leased(&rig, invitation("http://localhost:8080/login/code")).await;
    (sink, rig, worker, queued)
}

/// Another worker's claim at `now`, committed or (to only look) rolled
/// back: its lease and what it took.
async fn another_claim(rig: &Rig, commit: bool) -> (signet_core::outbox::Lease, Vec<Message>) {
    let thief = signet_core::outbox::Lease {
        token: Uuid::new_v4(),
        until: rig.clock.now().plus(Duration::from_secs(60)),
    };
    let mut tx = rig.store.begin().await.unwrap();
    let taken = tx.claim_due_messages(rig.clock.now(), thief, 10).await.unwrap();
    if commit {
        tx.commit().await.unwrap();
    } else {
        tx.rollback().await.unwrap();
    }
    (thief, taken)
}

/// How many messages another worker's claim would take now.
async fn claimable(rig: &Rig) -> usize {
    another_claim(rig, false).await.1.len()
}

#[tokio::test]
async fn a_message_someone_waits_for_is_handed_to_the_running_worker_without_a_claim() {
    // Polls once an hour, and a hand-over wakes nothing: only the hand-off
    // can get the mail sent within the test.
    let (sink, rig, worker, queued) = one_code_mail_queued().await;
    assert!(queued.leased(), "a worker is running with room");
    assert_eq!(queued.id.get_version_num(), 7, "time-ordered (ADR 0034)");
    let id = queued.id;
    assert_eq!(claimable(&rig).await, 0, "leased from its commit: no claim takes it");
    let m = stored(&rig, id).await;
    assert_eq!(
        (m.status, m.attempts),
        (DeliveryStatus::Pending, 1),
        "counted as a claim would"
    );

    rig.courier.hand_over(queued);
    sink.wait_for(|m| m.to == ["ada@example.com"], WAIT)
        .await
        .expect("handed over and sent");
    let m = recorded_sent(&rig, id).await;
    assert_eq!((m.status, m.attempts, m.text_body), (DeliveryStatus::Sent, 1, None));
    worker.stop().await;
    assert_eq!(sink.messages().len(), 1, "sent once");
}

#[tokio::test]
async fn with_no_worker_running_a_waited_for_message_is_queued_for_any_worker() {
    let rig = rig().await;
    let queued = queue_leased(&rig, invitation("http://localhost:8080/login/code")).await;
    assert!(!queued.leased(), "no worker on this node to hand it to");
    rig.courier.hand_over(queued);
    assert_eq!(claimable(&rig).await, 1, "due for the next claim, on any node");
}

#[tokio::test]
async fn a_handed_message_lost_before_the_worker_took_it_is_sent_once_its_lease_runs_out() {
    let (sink, rig, worker, queued) = one_code_mail_queued().await;
    let id = queued.id;
    // The node dies between the commit and the hand-over: the worker never
    // hears of the message.
    drop(queued);
    rig.courier.wake();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sink.messages().is_empty(), "leased: not claimed while the lease lasts");

    rig.clock
        .advance(WorkerConfig::default().lease + Duration::from_secs(1));
    rig.courier.wake();
    sink.wait_for(|m| m.to == ["ada@example.com"], WAIT)
        .await
        .expect("claimed and sent after the lease");
    worker.stop().await;
    let m = stored(&rig, id).await;
    assert_eq!((m.status, m.attempts), (DeliveryStatus::Sent, 2));
    assert_eq!(sink.messages().len(), 1);
}

/// A code's mail to `user{n}@example.com`.
fn code_mail(n: usize) -> Draft {
    let mut draft = invitation(&format!("http://localhost:8080/login/{n}"));
    draft.recipient = format!("user{n}@example.com");
    draft
}

/// Queues `code_mail(n)` leased and hands it over after the commit.
async fn hand_over_code(rig: &Rig, n: usize) -> (Uuid, bool) {
    let queued = queue_leased(rig, code_mail(n)).await;
    let seen = (queued.id, queued.leased());
    rig.courier.hand_over(queued);
    seen
}

/// Waits until the sink has had `n` connections (a send has begun).
async fn connected(sink: &SmtpSink, n: u64) {
    until("the send begins", || sink.connections() >= n).await;
}

/// A worker with one send slot, on a relay that takes `delay` per step
/// (RCPT and the end of DATA: twice `delay` a message).
async fn one_slot_worker(delay: Duration) -> (SmtpSink, Rig, WokenWorker) {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_delay(delay);
    let rig = rig().await;
    let worker = woken_worker_with(&rig, &sink, 1);
    started(&rig).await;
    (sink, rig, worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_handed_to_a_busy_worker_are_bounded_and_what_overflows_goes_to_the_claim() {
    // Each send takes 200 ms.
    let (sink, rig, worker) = one_slot_worker(Duration::from_millis(100)).await;
    let tickets = signet_courier::queue::HANDOFF_TICKETS_PER_SLOT;
    // The first takes the one send slot and gives its ticket back.
    let mut handed = vec![hand_over_code(&rig, 0).await];
    connected(&sink, 1).await;
    // The next ones wait in the worker, each holding a ticket; the one
    // after them finds none and is queued for a claim.
    for n in 1..=tickets + 1 {
        handed.push(hand_over_code(&rig, n).await);
    }
    assert_eq!(
        handed.iter().map(|(_, leased)| *leased).collect::<Vec<_>>(),
        (0..=tickets + 1).map(|n| n <= tickets).collect::<Vec<_>>(),
        "one sending, {tickets} waiting with tickets, the next queued for a claim"
    );
    for n in 0..=tickets + 1 {
        let to = format!("user{n}@example.com");
        sink.wait_for(|m| m.to == [to.clone()], WAIT)
            .await
            .expect("every message sent");
    }
    worker.stop().await;
    for (id, _) in handed {
        assert_eq!(stored(&rig, id).await.attempts, 1, "each sent once, handed or claimed");
    }
    assert_eq!(sink.messages().len(), tickets + 2);
    let order: Vec<String> = sink.messages().iter().map(|m| m.to[0].clone()).collect();
    assert_eq!(
        order,
        (0..=tickets + 1)
            .map(|n| format!("user{n}@example.com"))
            .collect::<Vec<_>>(),
        "sent in the order they came"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handed_message_whose_lease_ran_out_while_it_waited_is_left_to_its_new_holder() {
    // The one slot is busy for a while.
    let (sink, rig, worker) = one_slot_worker(Duration::from_millis(300)).await;
    hand_over_code(&rig, 0).await;
    connected(&sink, 1).await;
    let (waiting, leased) = hand_over_code(&rig, 1).await;
    assert!(leased);
    // While it waits for the slot, its lease runs out (this node paused:
    // the one sending loses its lease too) and another worker claims it.
    rig.clock
        .advance(WorkerConfig::default().lease + Duration::from_secs(1));
    let (_, taken) = another_claim(&rig, true).await;
    assert!(taken.iter().any(|m| m.id == waiting));
    sink.wait_for(|m| m.to == ["user0@example.com"], WAIT)
        .await
        .expect("the first is sent");
    // Its turn comes: the renewal finds it held by the other worker, so
    // this one does not send it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    worker.stop().await;
    assert_eq!(sink.messages().len(), 1, "not sent by a worker that no longer holds it");
    let m = stored(&rig, waiting).await;
    assert_eq!(
        (m.status, m.attempts),
        (DeliveryStatus::Pending, 2),
        "the new holder's to send"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_stream_of_hand_offs_does_not_keep_the_worker_from_polling() {
    let sink = SmtpSink::start().await.unwrap();
    let rig = rig().await;
    let poll = Duration::from_millis(300);
    let worker = running_worker(
        &rig,
        &sink,
        WorkerConfig {
            poll_interval: poll,
            ..Default::default()
        },
    );
    started(&rig).await;
    // Another node's message: due, and nobody here is woken for it.
    let mut elsewhere = code_mail(99);
    elsewhere.recipient = "elsewhere@example.com".to_owned();
    let message = Message {
        id: Uuid::new_v4(),
        channel: elsewhere.channel,
        recipient: elsewhere.recipient,
        subject: elsewhere.subject,
        text_body: Some(elsewhere.text_body),
        html_body: elsewhere.html_body,
        template: elsewhere.template.to_owned(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        created_at: rig.clock.now(),
        next_attempt_at: rig.clock.now(),
        sent_at: None,
        last_error: None,
        expires_at: None,
    };
    rig.store.enqueue_message(&message).await.unwrap();
    // Sign-in codes keep coming, faster than the poll interval.
    let stream = {
        let (store, courier) = (rig.store.clone(), rig.courier.clone());
        tokio::spawn(async move {
            for n in 0..40 {
                let mut tx = store.begin().await.unwrap();
                let queued = courier.enqueue_leased_in(&mut *tx, code_mail(n)).await.unwrap();
                tx.commit().await.unwrap();
                courier.hand_over(queued);
                tokio::time::sleep(poll / 3).await;
            }
        })
    };
    sink.wait_for(|m| m.to == ["elsewhere@example.com"], poll * 8)
        .await
        .expect("found by a poll while hand-offs keep coming");
    assert!(!stream.is_finished(), "the stream was still going");
    stream.await.unwrap();
    worker.stop().await;
}
