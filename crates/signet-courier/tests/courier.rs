//! The courier against real sockets: lettre talks SMTP to `SmtpSink`, reqwest
//! POSTs to `HttpSink`. The store is an in-memory `OutboxStore` kept in this
//! file (the SQL stores have their own conformance suite).

// This whole file is test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use signet_core::clock::{ManualClock, SharedClock, Timestamp};
use signet_core::outbox::{backoff, Channel, DeliveryStatus, Draft, Message, MAX_ATTEMPTS};
use signet_core::store::{OutboxStore, StoreResult};
use signet_core::user::Email;
use signet_courier::templates;
use signet_courier::{
    ConfigError, Courier, Delivery, DeliveryError, EmailTransport, SmsTransport, SmtpSecurity, WorkerConfig,
};
use signet_testkit::{HttpSink, SmtpLogin, SmtpSink};
use uuid::Uuid;

/// Follows the `OutboxStore` contract: claiming leases by pushing
/// `next_attempt_at` to the lease end and increments `attempts`.
#[derive(Default)]
struct MemoryOutbox {
    messages: Mutex<Vec<Message>>,
}

#[async_trait::async_trait]
impl OutboxStore for MemoryOutbox {
    async fn enqueue_message(&self, message: &Message) -> StoreResult<()> {
        self.messages.lock().unwrap().push(message.clone());
        Ok(())
    }

    async fn claim_due_messages(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let mut messages = self.messages.lock().unwrap();
        let mut claimed = Vec::new();
        for m in messages.iter_mut() {
            if claimed.len() as u32 >= limit {
                break;
            }
            if m.status == DeliveryStatus::Pending && m.next_attempt_at <= now {
                m.attempts += 1;
                m.next_attempt_at = lease_until;
                claimed.push(m.clone());
            }
        }
        Ok(claimed)
    }

    async fn mark_message_sent(&self, id: Uuid, now: Timestamp, scrub: bool) -> StoreResult<()> {
        let mut messages = self.messages.lock().unwrap();
        let m = messages.iter_mut().find(|m| m.id == id).unwrap();
        m.status = DeliveryStatus::Sent;
        m.sent_at = Some(now);
        if scrub {
            m.text_body = None;
            m.html_body = None;
        }
        Ok(())
    }

    async fn mark_message_failed(
        &self,
        id: Uuid,
        error: &str,
        next_attempt_at: Timestamp,
        dead: bool,
    ) -> StoreResult<()> {
        let mut messages = self.messages.lock().unwrap();
        let m = messages.iter_mut().find(|m| m.id == id).unwrap();
        m.last_error = Some(error.to_owned());
        m.next_attempt_at = next_attempt_at;
        if dead {
            m.status = DeliveryStatus::Dead;
        }
        Ok(())
    }

    async fn recent_messages(&self, limit: u32) -> StoreResult<Vec<Message>> {
        let messages = self.messages.lock().unwrap();
        Ok(messages.iter().rev().take(limit as usize).cloned().collect())
    }

    async fn message(&self, id: Uuid) -> StoreResult<Option<Message>> {
        Ok(self.messages.lock().unwrap().iter().find(|m| m.id == id).cloned())
    }

    async fn purge_finished_messages(&self, before: Timestamp) -> StoreResult<u64> {
        let mut messages = self.messages.lock().unwrap();
        let n = messages.len();
        messages.retain(|m| m.status == DeliveryStatus::Pending || m.created_at >= before);
        Ok((n - messages.len()) as u64)
    }
}

const START: Timestamp = Timestamp::from_millis(1_795_550_400_000);
const WAIT: Duration = Duration::from_secs(10);
const FROM: &str = "Signet <signet@example.com>";

struct Rig {
    store: Arc<MemoryOutbox>,
    clock: Arc<ManualClock>,
    courier: Courier,
}

fn rig() -> Rig {
    let store = Arc::new(MemoryOutbox::default());
    let clock = Arc::new(ManualClock::new(START));
    let shared_clock: SharedClock = clock.clone();
    let courier = Courier::new(store.clone(), shared_clock);
    Rig { store, clock, courier }
}

fn invitation(link: &str) -> Draft {
    templates::invitation(
        &Email::parse("ada@example.com").unwrap(),
        link,
        START.plus(Duration::from_secs(72 * 3600)),
        Duration::from_secs(72 * 3600),
        "Grace Hopper",
        "Signet",
    )
}

fn sms(to: &str, body: &str) -> Draft {
    Draft {
        channel: Channel::Sms,
        recipient: to.to_owned(),
        subject: String::new(),
        text_body: body.to_owned(),
        html_body: None,
        template: "sms_otp",
    }
}

async fn stored(rig: &Rig, id: Uuid) -> Message {
    rig.store.message(id).await.unwrap().unwrap()
}

#[tokio::test]
async fn invitation_is_delivered_over_smtp_and_its_bodies_scrubbed() {
    let sink = SmtpSink::start().await.unwrap();
    let rig = rig();
    let email = EmailTransport::new(&sink.url(), FROM).unwrap();
    // A poll interval of an hour: only enqueue's wake-up can get it delivered in time.
    let config = WorkerConfig {
        poll_interval: Duration::from_secs(3600),
        ..Default::default()
    };
    let worker = rig.courier.worker(Delivery::new(Some(email), None), config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));

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
    assert!(text.contains("Grace Hopper invited you to sign in to Signet as ada@example.com."));
    assert!(text.contains("valid for 3 days, until 2026-11-27 20:00 UTC"), "{text}");
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
    assert!(html.contains("If you did not expect this invitation"));
    assert_eq!(mail.find_link("http://localhost:8080/invite/").as_deref(), Some(link));

    // The worker records the delivery right after the relay accepts it.
    let mut message = stored(&rig, id).await;
    for _ in 0..100 {
        if message.status == DeliveryStatus::Sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        message = stored(&rig, id).await;
    }
    assert_eq!(message.status, DeliveryStatus::Sent);
    assert_eq!(message.sent_at, Some(START));
    assert_eq!(message.attempts, 1);
    assert_eq!(message.text_body, None, "one-time link must not stay in storage");
    assert_eq!(message.html_body, None);
    assert_eq!(message.subject, "You're invited to sign in to Signet");

    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, running)
        .await
        .expect("worker stops on shutdown")
        .unwrap();
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn smtp_outage_is_retried_with_backoff_and_nothing_is_lost() {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_failing(true);
    let rig = rig();
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
    let rig = rig();
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
    let rig = rig();
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
    let rig = rig();
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
    let rig = rig();
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
    let rig = rig();
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
