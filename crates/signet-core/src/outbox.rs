//! The durable outbox: every email and SMS is first written here, then a
//! courier worker delivers it with retries and backoff. A message therefore
//! survives a restart and an SMTP outage, and an HTTP response never waits on
//! a mail server (which also keeps response timing independent of delivery).
//!
//! Bodies can contain one-time links. Once a message is delivered its bodies
//! are scrubbed from storage; only the development outbox (no real delivery
//! configured) keeps them, because there the outbox *is* the delivery.

use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::clock::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    /// An OpenID Connect back-channel logout token (Back-Channel Logout 1.0
    /// §2.5): the recipient is the client's `backchannel_logout_uri`, the
    /// text body the signed logout token, POSTed as the form field
    /// `logout_token`. It always leaves Signet, dev outbox or not: the
    /// relying party is real.
    BackchannelLogout,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::BackchannelLogout => "backchannel_logout",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            "backchannel_logout" => Some(Channel::BackchannelLogout),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Sent,
    /// Gave up after [`MAX_ATTEMPTS`]; kept for the operator to inspect.
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "sent" => Some(DeliveryStatus::Sent),
            "dead" => Some(DeliveryStatus::Dead),
            _ => None,
        }
    }
}

/// Attempts before a message is declared dead. With the backoff below the
/// first seven retries come within about 11 minutes and the rest every
/// [`MAX_BACKOFF`], so the last attempt is about 23.8 hours after the message
/// was queued: a message without a lifetime survives a mail-relay outage of
/// about a day. A message with one ([`Message::expires_at`]) dies sooner.
pub const MAX_ATTEMPTS: i32 = 150;

/// The longest wait between two attempts. Email codes live 10 minutes, so
/// once a relay comes back a queued code must be tried again well within
/// that, not an hour later (ADR 0012).
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Exponential backoff: 5 s, 10 s, 20 s ... capped at [`MAX_BACKOFF`].
pub fn backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    let secs = 5u64.saturating_mul(2u64.saturating_pow(exp));
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// Why an expired message was not sent, as stored in `last_error`.
pub const EXPIRED_ERROR: &str = "expired before delivery";

/// A message as composed by a template, ready to queue.
#[derive(Clone, Debug)]
pub struct Draft {
    pub channel: Channel,
    /// An email address or an E.164 number.
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: Option<String>,
    /// Which template produced it, e.g. `invitation`.
    pub template: &'static str,
    /// When what it carries (a code, a link) stops working: it is never
    /// sent after that. `None` for messages that stay useful (notices).
    pub expires_at: Option<Timestamp>,
}

impl Draft {
    /// Marks the draft as carrying something that stops working at `at`.
    pub fn expiring_at(mut self, at: Timestamp) -> Draft {
        self.expires_at = Some(at);
        self
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Message {
    pub id: Uuid,
    pub channel: Channel,
    pub recipient: String,
    pub subject: String,
    /// `None` once scrubbed after delivery.
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    pub template: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    #[serde(with = "crate::clock::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "crate::clock::rfc3339")]
    pub next_attempt_at: Timestamp,
    #[serde(with = "crate::clock::rfc3339::option")]
    pub sent_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// Not sent at or after this instant; see [`Draft::expires_at`].
    #[serde(with = "crate::clock::rfc3339::option")]
    pub expires_at: Option<Timestamp>,
}

impl Message {
    /// Whether the content is useless at `now` and must not be sent.
    pub fn expired_at(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A worker's claim on messages: only the holder of `token` may renew the
/// lease or record an outcome, so a worker whose lease ran out (and whose
/// message another worker took) can never overwrite the other's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub token: Uuid,
    pub until: Timestamp,
}

/// How much the outbox holds that is not delivered: what an operator
/// alerts on (`signet_outbox_pending`, `signet_outbox_oldest_pending_age_seconds`,
/// `signet_outbox_dead` on `/metrics`). A growing or ageing queue means the
/// relay or the SMS gateway is refusing or slow, long before users report
/// codes that never came.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxDepth {
    /// Messages waiting for delivery or a retry.
    pub pending: u64,
    /// Messages given up on after [`MAX_ATTEMPTS`] (until purged).
    pub dead: u64,
    /// When the oldest pending message was queued.
    pub oldest_pending_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_span_about_a_day() {
        let total: u64 = (1..MAX_ATTEMPTS).map(|a| backoff(a).as_secs()).sum();
        assert!((23 * 3600..26 * 3600).contains(&total), "{total}s");
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(20));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn a_message_is_retried_at_least_every_ten_minutes() {
        assert!((1..=MAX_ATTEMPTS).all(|a| backoff(a) <= Duration::from_secs(600)));
    }
}
