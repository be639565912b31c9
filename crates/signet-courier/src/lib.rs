//! Message delivery for Signet: email over SMTP, SMS through a webhook, or
//! the development outbox, behind a durable retrying queue.
//!
//! Why a queue rather than sending inline (see `signet_core::outbox`):
//! - **Durable.** Every message is first written to the outbox table; it
//!   survives a restart or an SMTP outage, and an HTTP response never waits
//!   on a mail server, which also keeps response timing independent of
//!   whether an account exists.
//! - **At-least-once.** A [`Worker`] leases only the due messages it is
//!   about to send, renews each lease while the send is in flight, and
//!   records the result only while it still holds the lease. A crash between
//!   sending and recording means a second send, never a lost sign-in link; a
//!   slow relay means neither.
//! - **Retries with backoff.** A failed attempt is retried after
//!   `signet_core::outbox::backoff(attempts)` (5 s doubling to 10 min) until
//!   `MAX_ATTEMPTS`, then the message is kept as dead for the operator. A
//!   message whose code or link expires is never sent after that: it is
//!   dropped and recorded (`message.expired`).
//! - **Scrubbed after delivery.** Bodies hold one-time links, so once a relay
//!   has the message its bodies are erased from storage. Only the dev outbox
//!   (no transport for that channel) keeps them, because it *is* the delivery.
//!
//! Modules: [`queue`] (the courier and worker), [`handoff`] (a message
//! someone waits for, handed to the worker without a claim), [`transport`] (SMTP, webhook,
//! outbox), [`smtp_pool`] (SMTP connections reused between messages). The courier only queues and sends: what a message says belongs
//! to the use case that sends it (`signet_app::messages`).

pub mod handoff;
pub mod queue;
pub mod smtp_pool;
pub mod transport;

pub use handoff::Queued;
pub use queue::{Courier, Worker, WorkerConfig, CONCURRENCY_RANGE};
pub use transport::{
    check_smtp_url, check_webhook_url, ConfigError, Delivery, DeliveryError, EmailTransport, Outcome, SmsSender,
    SmsTransport, SmtpEndpoint, SmtpSecurity, SmtpUrlError, TwilioAccount, TwilioTransport, WebhookUrlError,
    TWILIO_BASE_URL,
};
