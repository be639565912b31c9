//! The send queue: [`Courier::enqueue`] on the request path, [`Worker`] in
//! the background.
//!
//! Enqueueing is one store write and a wake-up; it never touches SMTP, so a
//! slow or dead relay cannot slow a response or make its timing depend on the
//! recipient.
//!
//! The worker loop, on any number of nodes at once:
//! 1. claim up to `batch_size` due messages with a lease of `lease`
//!    ([`OutboxStore::claim_due_messages`] increments `attempts`); a leased
//!    message is invisible to every other worker until the lease ends;
//! 2. attempt each, at most `concurrency` at a time, each bounded by
//!    `send_timeout`, which is kept shorter than the lease so an attempt is
//!    always recorded before anyone else may claim the message;
//! 3. record the result: sent (bodies scrubbed unless kept in the dev
//!    outbox), or failed with the next attempt after
//!    [`backoff`]`(attempts)`, or dead once `attempts` reaches
//!    [`MAX_ATTEMPTS`] or the message itself is unusable;
//! 4. if the batch was full, go again at once; otherwise sleep until
//!    [`Courier::enqueue`] wakes it, `poll_interval` passes (work from other
//!    nodes, retries coming due), or shutdown.
//!
//! Delivery is at-least-once: if a node dies, or the store is unreachable,
//! between handing a message to the relay and recording it, the lease runs
//! out and the message is sent again. Losing a sign-in link is worse than
//! receiving it twice.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use signet_core::clock::SharedClock;
use signet_core::outbox::{backoff, DeliveryStatus, Draft, Message, MAX_ATTEMPTS};
use signet_core::store::OutboxStore;
use signet_core::unit_of_work::OutboxWrites;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::transport::{Delivery, DeliveryError};

/// The longest `last_error` we store; SMTP replies can be chatty.
const MAX_ERROR_LEN: usize = 500;

/// Queues messages for delivery. Cheap to clone; every clone wakes the same
/// worker.
#[derive(Clone)]
pub struct Courier {
    store: Arc<dyn OutboxStore>,
    clock: SharedClock,
    wake: Arc<Notify>,
}

impl Courier {
    pub fn new(store: Arc<dyn OutboxStore>, clock: SharedClock) -> Courier {
        Courier {
            store,
            clock,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Stores `draft` as a pending message due now and wakes the worker.
    /// Returns once the message is durable; delivery happens later. A
    /// message that belongs to a change (an invitation, a notice of a new
    /// passkey) is queued with [`Courier::enqueue_in`] instead, in the
    /// change's own unit of work.
    pub async fn enqueue(&self, draft: Draft) -> Result<Uuid, signet_core::Error> {
        let message = self.pending(draft);
        self.store.enqueue_message(&message).await?;
        self.queued(&message);
        Ok(message.id)
    }

    /// Queues `draft` inside the unit of work `tx`: the message exists if
    /// and only if the change it tells about commits. Call
    /// [`Courier::wake`] after the commit; until then the worker cannot see
    /// the message (it would find it on its next poll anyway).
    pub async fn enqueue_in(&self, tx: &mut dyn OutboxWrites, draft: Draft) -> Result<Uuid, signet_core::Error> {
        let message = self.pending(draft);
        tx.enqueue_message(&message).await?;
        tracing::debug!(message_id = %message.id, channel = message.channel.as_str(), template = %message.template, "message queued in a transaction");
        Ok(message.id)
    }

    /// Wakes the worker: messages were committed.
    pub fn wake(&self) {
        // A stored permit if the worker is busy, so this wake-up is not lost.
        self.wake.notify_one();
    }

    fn pending(&self, draft: Draft) -> Message {
        let now = self.clock.now();
        Message {
            id: Uuid::new_v4(),
            channel: draft.channel,
            recipient: draft.recipient,
            subject: draft.subject,
            text_body: Some(draft.text_body),
            html_body: draft.html_body,
            template: draft.template.to_owned(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
            sent_at: None,
            last_error: None,
        }
    }

    fn queued(&self, message: &Message) {
        tracing::debug!(message_id = %message.id, channel = message.channel.as_str(), template = %message.template, "message queued");
        self.wake();
    }

    /// A worker that delivers what this courier queues.
    pub fn worker(&self, delivery: Delivery, config: WorkerConfig) -> Worker {
        Worker {
            shared: Arc::new(WorkerShared {
                store: Arc::clone(&self.store),
                clock: Arc::clone(&self.clock),
                delivery,
                config: config.sanitized(),
            }),
            wake: Arc::clone(&self.wake),
        }
    }
}

/// Tuning for [`Worker`]. The defaults suit one node with a normal relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerConfig {
    /// How often to look for due messages when nothing wakes the worker.
    pub poll_interval: Duration,
    /// How long a claimed message stays invisible to other workers.
    pub lease: Duration,
    /// Messages claimed per pass.
    pub batch_size: u32,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Upper bound on one delivery attempt; kept below `lease`.
    pub send_timeout: Duration,
    /// On shutdown, how long in-flight deliveries may take to finish and be
    /// recorded. Anything cut off is retried when its lease ends.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            poll_interval: Duration::from_secs(2),
            lease: Duration::from_secs(60),
            batch_size: 16,
            concurrency: 4,
            send_timeout: Duration::from_secs(45),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl WorkerConfig {
    /// Repairs values that would break the loop's invariants.
    fn sanitized(mut self) -> Self {
        self.batch_size = self.batch_size.max(1);
        self.concurrency = self.concurrency.max(1);
        self.lease = self.lease.max(Duration::from_secs(1));
        if self.send_timeout >= self.lease {
            // An attempt must be recorded before its lease lets another worker in.
            self.send_timeout = self.lease.mul_f64(0.75);
        }
        self
    }
}

struct WorkerShared {
    store: Arc<dyn OutboxStore>,
    clock: SharedClock,
    delivery: Delivery,
    config: WorkerConfig,
}

/// Delivers queued messages; see the module docs for the loop.
pub struct Worker {
    shared: Arc<WorkerShared>,
    wake: Arc<Notify>,
}

impl Worker {
    /// Runs until `shutdown` completes. In-flight deliveries get
    /// `shutdown_grace` to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let config = &self.shared.config;
        tracing::info!(
            email = self.shared.delivery.delivers(signet_core::outbox::Channel::Email),
            sms = self.shared.delivery.delivers(signet_core::outbox::Channel::Sms),
            "courier worker started"
        );
        tokio::pin!(shutdown);
        loop {
            let pass = self.run_once();
            tokio::pin!(pass);
            let attempted = tokio::select! {
                biased;
                () = &mut shutdown => {
                    Self::finish_in_flight(pass, config.shutdown_grace).await;
                    break;
                }
                n = &mut pass => n,
            };
            if attempted >= usize::try_from(config.batch_size).unwrap_or(usize::MAX) {
                // A full batch: more is probably due. Still honour shutdown first.
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = std::future::ready(()) => continue,
                }
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(config.poll_interval) => {}
            }
        }
        tracing::info!("courier worker stopped");
    }

    async fn finish_in_flight(pass: impl Future<Output = usize>, grace: Duration) {
        if tokio::time::timeout(grace, pass).await.is_err() {
            tracing::warn!("shutdown cut off deliveries in flight; they are retried when their lease ends");
        }
    }

    /// One pass: claims due messages and attempts each. Returns how many were
    /// attempted (0 if the store could not be reached).
    pub async fn run_once(&self) -> usize {
        let shared = &self.shared;
        let now = shared.clock.now();
        let lease_until = now.plus(shared.config.lease);
        let claimed = match shared
            .store
            .claim_due_messages(now, lease_until, shared.config.batch_size)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim outbox messages; will retry");
                return 0;
            }
        };
        let attempted = claimed.len();
        let mut queue = claimed.into_iter();
        let mut in_flight = JoinSet::new();
        for message in queue.by_ref().take(shared.config.concurrency) {
            in_flight.spawn(attempt(Arc::clone(shared), message));
        }
        while let Some(joined) = in_flight.join_next().await {
            if let Err(e) = joined {
                // The message's lease runs out and it is claimed again.
                tracing::error!(error = %e, "a delivery task ended abnormally");
            }
            if let Some(message) = queue.next() {
                in_flight.spawn(attempt(Arc::clone(shared), message));
            }
        }
        attempted
    }
}

/// One delivery attempt and its record. Logs ids, never bodies or
/// recipients: bodies hold one-time links.
async fn attempt(shared: Arc<WorkerShared>, message: Message) {
    let id = message.id;
    let channel = message.channel.as_str();
    let template = message.template.as_str();
    let attempt = message.attempts;
    let timeout = shared.config.send_timeout;
    let result = match tokio::time::timeout(timeout, shared.delivery.deliver(&message)).await {
        Ok(result) => result,
        Err(_) => Err(DeliveryError::Timeout(timeout)),
    };
    let now = shared.clock.now();
    match result {
        Ok(outcome) => {
            let recorded = shared.store.mark_message_sent(id, now, outcome.scrub()).await;
            match recorded {
                Ok(()) => {
                    tracing::info!(message_id = %id, channel, template, attempt, ?outcome, "message delivered")
                }
                Err(e) => tracing::warn!(
                    message_id = %id, channel, template, error = %e,
                    "message delivered but not recorded; it will be sent again when its lease ends"
                ),
            }
        }
        Err(failure) => {
            let dead = failure.is_permanent() || attempt >= MAX_ATTEMPTS;
            let retry_at = now.plus(backoff(attempt));
            let reason = truncate(&failure.to_string(), MAX_ERROR_LEN);
            if let Err(e) = shared.store.mark_message_failed(id, &reason, retry_at, dead).await {
                tracing::warn!(message_id = %id, error = %e, "could not record a failed delivery; retried when its lease ends");
            }
            if dead {
                tracing::error!(message_id = %id, channel, template, attempt, error = %failure, "message undeliverable; giving up");
            } else {
                tracing::warn!(message_id = %id, channel, template, attempt, error = %failure, retry_at = %retry_at, "delivery failed; will retry");
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééé", 3), "é...");
    }

    #[test]
    fn send_timeout_stays_below_the_lease() {
        let c = WorkerConfig {
            lease: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            ..Default::default()
        }
        .sanitized();
        assert!(c.send_timeout < c.lease);
        let c = WorkerConfig {
            batch_size: 0,
            concurrency: 0,
            ..Default::default()
        }
        .sanitized();
        assert_eq!((c.batch_size, c.concurrency), (1, 1));
    }
}
