//! The send queue: [`Courier::enqueue`] on the request path, [`Worker`] in
//! the background.
//!
//! Enqueueing is one store write and a wake-up; it never touches SMTP, so a
//! slow or dead relay cannot slow a response or make its timing depend on the
//! recipient.
//!
//! The worker loop, on any number of nodes at once (ADR 0005, ADR 0012):
//! 1. claim only what it is about to send: as many due messages as it has
//!    free send slots (`concurrency`), leased to a fresh token for `lease`
//!    ([`OutboxWrites::claim_due_messages`] increments `attempts`); a leased
//!    message is invisible to every other worker while the lease lasts;
//! 2. attempt each, bounded by `send_timeout`, while a heartbeat renews its
//!    lease every third of `lease`. A renewal that finds the message no
//!    longer held by this token (the lease ran out and another worker took
//!    it) cancels the attempt: this worker neither records nor retries it;
//! 3. record the result, conditional on still holding the lease, in the
//!    worker loop's next unit of work together with the next claim (one
//!    commit for every result that is ready and the claim, instead of one
//!    per result and one per claim; if that unit fails, each result is
//!    recorded on its own): sent
//!    (bodies scrubbed unless kept in the dev outbox), or failed with the
//!    next attempt after [`backoff`]`(attempts)` (at most [`MAX_BACKOFF`](signet_core::outbox::MAX_BACKOFF),
//!    never past the message's expiry), or dead once `attempts` reaches
//!    [`MAX_ATTEMPTS`] or the message itself is unusable. A message claimed
//!    after its `expires_at` is not sent: it is marked dead and a
//!    `message.expired` audit record is appended in the same unit of work;
//! 4. as slots free up, claim again if the last claim got all it asked for
//!    (otherwise nothing was left due, and anything queued since comes with
//!    a wake-up); when nothing is due and nothing is in flight, sleep until
//!    [`Courier::wake`], `poll_interval` (work from other nodes, retries
//!    coming due, `signet outbox retry`), or shutdown.
//!
//! Delivery is at-least-once: if a node dies, or the store is unreachable,
//! between handing a message to the relay and recording it, the lease runs
//! out and the message is sent again. Losing a sign-in link is worse than
//! receiving it twice. A slow relay alone no longer causes a second send:
//! the lease is renewed for as long as the send is in flight.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Outcome as AuditOutcome};
use signet_core::clock::{SharedClock, Timestamp};
use signet_core::outbox::{backoff, DeliveryStatus, Draft, Lease, Message, MAX_ATTEMPTS};
use signet_core::store::{Store, StoreError};
use signet_core::unit_of_work::OutboxWrites;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::handoff::{Handed, Lane, Queued};
use crate::transport::{Delivery, DeliveryError, Outcome};

/// The longest `last_error` we store; SMTP replies can be chatty.
const MAX_ERROR_LEN: usize = 500;

/// Called once for every message dropped because it expired (the server
/// counts them in `signet_messages_expired_total`).
pub type ExpiredHook = Arc<dyn Fn(&Message) + Send + Sync>;

/// Queues messages for delivery. Cheap to clone; every clone wakes the same
/// worker.
#[derive(Clone)]
pub struct Courier {
    store: Arc<dyn Store>,
    clock: SharedClock,
    wake: Arc<Notify>,
    on_expired: Option<ExpiredHook>,
    /// The way to this node's running worker ([`crate::handoff`]).
    lane: Arc<Lane>,
}

impl Courier {
    pub fn new(store: Arc<dyn Store>, clock: SharedClock) -> Courier {
        Courier {
            store,
            clock,
            wake: Arc::new(Notify::new()),
            on_expired: None,
            lane: Arc::new(Lane::default()),
        }
    }

    /// Calls `hook` for each message its workers drop as expired.
    pub fn on_expired(mut self, hook: ExpiredHook) -> Courier {
        self.on_expired = Some(hook);
        self
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
        tx.enqueue_message(&message, None).await?;
        tracing::debug!(message_id = %message.id, channel = message.channel.as_str(), template = %message.template, "message queued in a transaction");
        Ok(message.id)
    }

    /// Queues `draft` inside the unit of work `tx` like
    /// [`Courier::enqueue_in`], for a message someone is waiting for (a
    /// sign-in code): if this node's worker is running and has a hand-off
    /// ticket free, the message is queued leased to it, and [`Courier::hand_over`]
    /// gives it to the worker after the commit, with no claim in between
    /// ([`crate::handoff`]). Otherwise it is queued for the next claim, and
    /// `hand_over` wakes the worker.
    pub async fn enqueue_leased_in(
        &self,
        tx: &mut dyn OutboxWrites,
        draft: Draft,
    ) -> Result<Queued, signet_core::Error> {
        let mut message = self.pending(draft);
        let id = message.id;
        let Some((door, ticket)) = self.lane.reserve() else {
            tx.enqueue_message(&message, None).await?;
            return Ok(Queued { id, handed: None });
        };
        let lease = Lease {
            token: Uuid::new_v4(),
            until: message.created_at.plus(door.lease),
        };
        // What a claim would have counted.
        message.attempts = 1;
        tx.enqueue_message(&message, Some(lease)).await?;
        tracing::debug!(message_id = %id, channel = message.channel.as_str(), template = %message.template, "message queued leased to this node's worker");
        Ok(Queued {
            id,
            handed: Some((door.to_worker, Handed { message, lease, ticket })),
        })
    }

    /// Whether a worker of this courier is running on this node (and so
    /// takes hand-offs).
    pub fn worker_running(&self) -> bool {
        self.lane.is_open()
    }

    /// After the commit of the unit that queued it: gives a message queued
    /// by [`Courier::enqueue_leased_in`] to the worker, or wakes the worker
    /// if it was queued for a claim.
    pub fn hand_over(&self, queued: Queued) {
        match queued.handed {
            Some((to_worker, handed)) => {
                if to_worker.send(handed).is_err() {
                    tracing::warn!(message_id = %queued.id, "the worker stopped before a message reached it; it is sent when its lease ends");
                }
            }
            None => self.wake(),
        }
    }

    /// Makes every pending message that is waiting for a retry due now,
    /// inside the unit of work `tx` (which also records who asked). Call
    /// [`Courier::wake`] after the commit; workers on other nodes find the
    /// messages on their next poll. Returns how many were moved.
    pub async fn retry_all_in(&self, tx: &mut dyn OutboxWrites) -> Result<u64, signet_core::Error> {
        Ok(tx.make_pending_messages_due(self.clock.now()).await?)
    }

    /// Wakes the worker: messages were committed, or made due now.
    pub fn wake(&self) {
        // A stored permit if the worker is busy, so this wake-up is not lost.
        self.wake.notify_one();
    }

    fn pending(&self, draft: Draft) -> Message {
        let now = self.clock.now();
        Message {
            // Time-ordered, so a group's inserts share the last page of
            // the outbox's primary key (ADR 0034, amendment).
            id: signet_core::ids::time_ordered(),
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
            expires_at: draft.expires_at,
        }
    }

    fn queued(&self, message: &Message) {
        tracing::debug!(message_id = %message.id, channel = message.channel.as_str(), template = %message.template, "message queued");
        self.wake();
    }

    /// A worker that delivers what this courier queues.
    pub fn worker(&self, delivery: Delivery, config: WorkerConfig) -> Worker {
        let config = config.sanitized();
        delivery.size_pools(config.concurrency);
        Worker {
            shared: Arc::new(WorkerShared {
                store: Arc::clone(&self.store),
                clock: Arc::clone(&self.clock),
                delivery,
                tickets: Arc::new(Semaphore::new(config.concurrency * HANDOFF_TICKETS_PER_SLOT)),
                config,
                on_expired: self.on_expired.clone(),
                stopping: AtomicBool::new(false),
            }),
            wake: Arc::clone(&self.wake),
            lane: Arc::clone(&self.lane),
        }
    }
}

/// How many messages may be handed to a worker and wait for a send slot,
/// per slot, before further ones are queued for a claim instead: enough to
/// ride out a burst, few enough that what is leased here and not sending
/// stays small.
pub const HANDOFF_TICKETS_PER_SLOT: usize = 4;

/// Tuning for [`Worker`]. The defaults suit one node with a normal relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerConfig {
    /// How often to look for due messages when nothing wakes the worker.
    pub poll_interval: Duration,
    /// How long a claimed message stays invisible to other workers without
    /// a renewal. The worker renews it every third of this while a send is
    /// in flight.
    pub lease: Duration,
    /// The most messages one claim takes. A worker never claims more than
    /// it has free send slots (`concurrency`), whatever this says.
    pub batch_size: u32,
    /// Deliveries in flight at once, and so the most messages leased at
    /// once and the most SMTP connections kept open (`[courier]
    /// concurrency`). 16 by default: with connections reused, a delivery
    /// takes about a millisecond of the relay's time, and what a slot
    /// mostly waits for is the store's commits, so slots are cheap.
    pub concurrency: usize,
    /// Upper bound on one delivery attempt.
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
            concurrency: 16,
            send_timeout: Duration::from_secs(45),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The send slots `[courier] concurrency` may ask for: at least one, and
/// no more than a relay is likely to accept from one client at once.
pub const CONCURRENCY_RANGE: std::ops::RangeInclusive<i64> = 1..=256;

impl WorkerConfig {
    /// Checks a configured `concurrency` against [`CONCURRENCY_RANGE`].
    pub fn check_concurrency(n: i64) -> Result<usize, String> {
        if !CONCURRENCY_RANGE.contains(&n) {
            return Err(format!(
                "must be between {} and {} (deliveries in flight at once, and so SMTP connections kept open)",
                CONCURRENCY_RANGE.start(),
                CONCURRENCY_RANGE.end()
            ));
        }
        usize::try_from(n).map_err(|_| "is out of range".to_owned())
    }

    /// Repairs values that would break the loop's invariants.
    fn sanitized(mut self) -> Self {
        self.batch_size = self.batch_size.max(1);
        self.concurrency = self.concurrency.max(1);
        // Renewals come every third of the lease; below a second the store's
        // round trips would eat the margin.
        self.lease = self.lease.max(Duration::from_secs(1));
        self.send_timeout = self.send_timeout.max(Duration::from_millis(100));
        self
    }

    /// How often a held lease is renewed: a third of it, so one failed
    /// renewal still leaves a margin before it runs out.
    fn renew_every(&self) -> Duration {
        self.lease / 3
    }

    /// Messages to claim with `free` send slots.
    fn claim_size(&self, free: usize) -> u32 {
        u32::try_from(free).unwrap_or(u32::MAX).min(self.batch_size)
    }
}

struct WorkerShared {
    store: Arc<dyn Store>,
    clock: SharedClock,
    delivery: Delivery,
    /// Tickets for messages handed to this worker and not yet taken by
    /// it ([`crate::handoff`]): [`HANDOFF_TICKETS_PER_SLOT`] per send slot.
    tickets: Arc<Semaphore>,
    config: WorkerConfig,
    on_expired: Option<ExpiredHook>,
    /// Set on shutdown: claim nothing more, finish what is in flight.
    stopping: AtomicBool,
}

/// Delivers queued messages; see the module docs for the loop.
pub struct Worker {
    shared: Arc<WorkerShared>,
    wake: Arc<Notify>,
    lane: Arc<Lane>,
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
        let (opening, mut handed) = match self.lane.open(Arc::clone(&self.shared.tickets), config.lease) {
            Some((opening, from_lane)) => (Some(opening), Some(from_lane)),
            None => {
                tracing::warn!("another worker of this courier takes the hand-offs; this one only claims");
                (None, None)
            }
        };
        // However the worker ends (shutdown, a panic, its task dropped),
        // nothing more is handed to it.
        let _closing = Closing {
            lane: &self.lane,
            opening,
        };
        let mut start = Start::Look;
        // The next look for due messages, across passes: hand-offs that
        // keep arriving must not keep pushing it back.
        let mut next_poll = tokio::time::Instant::now() + config.poll_interval;
        loop {
            let stop = {
                let pass = self.pass(start, handed.as_mut(), &mut next_poll);
                tokio::pin!(pass);
                tokio::select! {
                    biased;
                    () = &mut shutdown => {
                        // Nothing more is handed over; what was is sent
                        // within the grace, or when its lease runs out.
                        if let Some(opening) = opening {
                            self.lane.close(opening);
                        }
                        self.shared.stopping.store(true, Ordering::SeqCst);
                        Self::finish_in_flight(pass, config.shutdown_grace).await;
                        true
                    }
                    _ = &mut pass => false,
                }
            };
            if stop {
                break;
            }
            start = tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(h) = next_handed(handed.as_mut()) => Start::Handed(Box::new(h)),
                () = self.wake.notified() => Start::Look,
                () = tokio::time::sleep_until(next_poll) => Start::Look,
            };
        }
        tracing::info!("courier worker stopped");
    }

    async fn finish_in_flight(pass: impl Future<Output = usize>, grace: Duration) {
        if tokio::time::timeout(grace, pass).await.is_err() {
            tracing::warn!("shutdown cut off deliveries in flight; they are retried when their lease ends");
        }
    }

    /// Delivers until nothing is due and nothing is in flight: claims as
    /// many due messages as there are free send slots, and claims again
    /// whenever the worker is woken, `poll_interval` passes with a slot
    /// free, or a slot frees up while the last claim filled every slot it
    /// asked for (so more may be due). Results are recorded by the loop, in
    /// the same unit of work as the next claim. Returns how many messages
    /// were claimed (0 if the store could not be reached).
    pub async fn run_once(&self) -> usize {
        let mut next_poll = tokio::time::Instant::now() + self.shared.config.poll_interval;
        self.pass(Start::Look, None, &mut next_poll).await
    }

    /// [`Worker::run_once`], starting as `start` says, and also sending
    /// whatever arrives from `handed` meanwhile (messages handed over by
    /// [`Courier::hand_over`], leased already). Returns how many messages
    /// it took, claimed or handed.
    ///
    /// What is leased to this worker and not yet sending waits in
    /// `waiting`, in the order it came; a send starts whenever fewer than
    /// `concurrency` are in flight. A claim asks only for the slots that
    /// neither a send nor a waiting message will take.
    async fn pass(
        &self,
        start: Start,
        mut handed: Option<&mut mpsc::UnboundedReceiver<Handed>>,
        next_poll: &mut tokio::time::Instant,
    ) -> usize {
        let shared = &self.shared;
        let concurrency = shared.config.concurrency;
        let mut in_flight = JoinSet::new();
        let mut waiting: VecDeque<Waiting> = VecDeque::new();
        let mut taken = 0;
        let mut finished = Vec::new();
        // Whether due messages may be waiting in the store: when the pass
        // was started to look, after a wake-up or a poll, and when the last
        // claim got all it asked for. A pass started by a hand-off does not
        // claim for it, unless the time to poll has come.
        let poll = shared.config.poll_interval;
        let mut more_due = match start {
            Start::Look => true,
            Start::Handed(h) => {
                taken += 1;
                waiting.push_back(Waiting::handed(*h));
                tokio::time::Instant::now() >= *next_poll
            }
        };
        // A wake-up that comes while a claim is under way may be for a
        // message that claim did not see: it must not be lost.
        let mut woken_since_claim = false;
        // The one record-and-claim unit under way, if any. The loop keeps
        // serving while it waits for its commit: hand-offs and finished
        // sends must not queue behind a group commit.
        let mut recording: Option<Recording<'_>> = None;
        loop {
            while in_flight.len() < concurrency {
                let Some(next) = waiting.pop_front() else { break };
                let (lease, message) = next.start();
                in_flight.spawn(attempt(Arc::clone(shared), lease, message));
            }
            let stopping = shared.stopping.load(Ordering::SeqCst);
            let busy = in_flight.len() + waiting.len();
            if recording.is_none() {
                let free = concurrency.saturating_sub(busy);
                let want = if free > 0 && !stopping && more_due {
                    shared.config.claim_size(free)
                } else {
                    0
                };
                if want > 0 {
                    woken_since_claim = false;
                    // A claim is a look: the next poll counts from it.
                    *next_poll = tokio::time::Instant::now() + poll;
                }
                if want > 0 || !finished.is_empty() {
                    let results = std::mem::take(&mut finished);
                    recording = Some(Box::pin(async move {
                        let (lease, claimed) = record_and_claim(shared, results, want).await;
                        (want, lease, claimed)
                    }));
                }
            }
            if in_flight.is_empty() && waiting.is_empty() && recording.is_none() {
                return taken;
            }
            let room = busy < concurrency && !stopping;
            tokio::select! {
                (want, lease, claimed) = recorded(&mut recording) => {
                    recording = None;
                    if want > 0 {
                        let got_all = u32::try_from(claimed.len()).unwrap_or(u32::MAX) >= want;
                        more_due = got_all || woken_since_claim;
                    }
                    taken += claimed.len();
                    waiting.extend(claimed.into_iter().map(|message| Waiting::claimed(lease, message)));
                }
                joined = in_flight.join_next(), if !in_flight.is_empty() => {
                    collect(joined, &mut finished);
                    // Record every send that is done, not just the first.
                    while let Some(joined) = in_flight.try_join_next() {
                        collect(Some(joined), &mut finished);
                    }
                }
                Some(h) = next_handed(handed.as_deref_mut()) => {
                    taken += 1;
                    waiting.push_back(Waiting::handed(h));
                }
                () = self.wake.notified(), if room => {
                    more_due = true;
                    woken_since_claim = true;
                }
                // A deadline, not a fresh sleep each turn: under a steady
                // stream of hand-offs the loop never idles for a whole
                // interval, and other nodes' messages and retries coming
                // due must still be looked for.
                () = tokio::time::sleep_until(*next_poll), if room => {
                    more_due = true;
                    woken_since_claim = true;
                    *next_poll = tokio::time::Instant::now() + poll;
                }
            }
        }
    }
}

/// Closes the lane when the worker that opened it ends, however it ends.
struct Closing<'a> {
    lane: &'a Lane,
    opening: Option<crate::handoff::Opening>,
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        if let Some(opening) = self.opening {
            self.lane.close(opening);
        }
    }
}

/// Why a pass starts.
enum Start {
    /// To look for due messages (first start, a wake-up, a poll).
    Look,
    /// A message was handed over.
    Handed(Box<Handed>),
}

/// A message leased to this worker that waits for a send slot.
struct Waiting {
    lease: Lease,
    message: Message,
    /// A handed message's ticket, returned when its send starts.
    ticket: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Waiting {
    fn handed(h: Handed) -> Self {
        Waiting {
            lease: h.lease,
            message: h.message,
            ticket: Some(h.ticket),
        }
    }

    fn claimed(lease: Lease, message: Message) -> Self {
        Waiting {
            lease,
            message,
            ticket: None,
        }
    }

    /// Its send starts: the ticket goes back for the next hand-off.
    fn start(self) -> (Lease, Message) {
        drop(self.ticket);
        (self.lease, self.message)
    }
}

/// A record-and-claim unit under way: what it asked for, its lease, what
/// it claimed.
type Recording<'a> = std::pin::Pin<Box<dyn Future<Output = (u32, Lease, Vec<Message>)> + Send + 'a>>;

/// The outcome of the unit under way, if there is one (otherwise never).
async fn recorded(recording: &mut Option<Recording<'_>>) -> (u32, Lease, Vec<Message>) {
    match recording {
        Some(unit) => unit.await,
        None => std::future::pending().await,
    }
}

/// The next message handed over, if this worker listens for any
/// (`None` when the channel is closed, which disables the branch).
async fn next_handed(handed: Option<&mut mpsc::UnboundedReceiver<Handed>>) -> Option<Handed> {
    match handed {
        Some(from_lane) => from_lane.recv().await,
        None => std::future::pending().await,
    }
}

/// Keeps a finished attempt's result for recording.
fn collect(joined: Option<Result<Option<Finished>, tokio::task::JoinError>>, finished: &mut Vec<Finished>) {
    match joined {
        Some(Ok(Some(done))) => finished.push(done),
        Some(Ok(None)) | None => {}
        // The message's lease runs out and it is claimed again.
        Some(Err(e)) => tracing::error!(error = %e, "a delivery task ended abnormally"),
    }
}

/// A delivery attempt that ended while its lease was held: its result
/// waits for the worker loop to record it.
struct Finished {
    message: Message,
    lease: Lease,
    at: Timestamp,
    result: Result<Outcome, DeliveryError>,
}

/// Records the `finished` attempts and claims up to `want` due messages
/// under a fresh lease, in one unit of work: one commit (on SQLite one
/// place in a group commit) instead of one per result and one per claim.
/// If that unit fails, each result is recorded on its own, as before
/// batching, and nothing is claimed until the next pass.
async fn record_and_claim(shared: &WorkerShared, finished: Vec<Finished>, want: u32) -> (Lease, Vec<Message>) {
    let now = shared.clock.now();
    let lease = Lease {
        token: Uuid::new_v4(),
        until: now.plus(shared.config.lease),
    };
    let unit = async {
        let mut tx = shared.store.begin().await?;
        let mut recorded = Vec::with_capacity(finished.len());
        for done in &finished {
            recorded.push(record(&mut *tx, done).await?);
        }
        let claimed = if want > 0 {
            tx.claim_due_messages(now, lease, want).await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        Ok::<_, StoreError>((recorded, claimed))
    }
    .await;
    match unit {
        Ok((recorded, claimed)) => {
            for (done, held) in finished.iter().zip(recorded) {
                log_record(done, Ok(held));
            }
            (lease, claimed)
        }
        Err(e) => {
            if want > 0 {
                tracing::warn!(error = %e, "could not claim outbox messages; will retry");
            }
            for done in &finished {
                let held = record_alone(shared, done).await;
                log_record(done, held);
            }
            (lease, Vec::new())
        }
    }
}

/// After a failed attempt: whether the message is dead, when to retry, and
/// the error to store.
fn failure_record(done: &Finished, failure: &DeliveryError) -> (bool, Timestamp, String) {
    let dead = failure.is_permanent() || done.message.attempts >= MAX_ATTEMPTS;
    let retry_at = retry_at(done.at, done.message.attempts, done.message.expires_at);
    (dead, retry_at, truncate(&failure.to_string(), MAX_ERROR_LEN))
}

/// Records one result inside the unit `tx`, conditional on the lease.
async fn record(tx: &mut dyn OutboxWrites, done: &Finished) -> Result<bool, StoreError> {
    let id = done.message.id;
    match &done.result {
        Ok(outcome) => {
            tx.mark_message_sent(id, done.lease.token, done.at, outcome.scrub())
                .await
        }
        Err(failure) => {
            let (dead, retry_at, reason) = failure_record(done, failure);
            tx.mark_message_failed(id, done.lease.token, &reason, retry_at, dead)
                .await
        }
    }
}

/// Records one result on its own (when the shared unit failed): the same
/// [`record`], in a unit of its own.
async fn record_alone(shared: &WorkerShared, done: &Finished) -> Result<bool, StoreError> {
    let mut tx = shared.store.begin().await?;
    let held = record(&mut *tx, done).await?;
    tx.commit().await?;
    Ok(held)
}

/// Logs what became of a result: ids, never bodies or recipients (bodies
/// hold one-time links).
fn log_record(done: &Finished, held: Result<bool, StoreError>) {
    let message = &done.message;
    let (id, channel, template, attempt) = (
        message.id,
        message.channel.as_str(),
        message.template.as_str(),
        message.attempts,
    );
    match (&done.result, held) {
        (Ok(outcome), Ok(true)) => {
            tracing::info!(message_id = %id, channel, template, attempt, ?outcome, "message delivered")
        }
        (Ok(_), Ok(false)) => tracing::warn!(
            message_id = %id, channel, template, attempt,
            "message delivered after its lease was lost; the holder's record stands"
        ),
        (Ok(_), Err(e)) => tracing::warn!(
            message_id = %id, channel, template, error = %e,
            "message delivered but not recorded; it will be sent again when its lease ends"
        ),
        (Err(failure), Ok(true)) => {
            let (dead, retry_at, _) = failure_record(done, failure);
            if dead {
                tracing::error!(message_id = %id, channel, template, attempt, error = %failure, "message undeliverable; giving up")
            } else {
                tracing::warn!(message_id = %id, channel, template, attempt, error = %failure, retry_at = %retry_at, "delivery failed; will retry")
            }
        }
        (Err(failure), Ok(false)) => tracing::warn!(
            message_id = %id, channel, template, attempt, error = %failure,
            "delivery failed after its lease was lost; the holder's record stands"
        ),
        (Err(_), Err(e)) => {
            tracing::warn!(message_id = %id, error = %e, "could not record a failed delivery; retried when its lease ends")
        }
    }
}

/// One delivery attempt, bounded by `send_timeout`, while its lease is
/// renewed. Returns the result for the loop to record, or `None` if the
/// message expired (dropped and recorded here) or the lease was lost.
async fn attempt(shared: Arc<WorkerShared>, lease: Lease, message: Message) -> Option<Finished> {
    let id = message.id;
    let lease = still_held(&shared, id, lease).await?;
    if message.expired_at(shared.clock.now()) {
        expire(&shared, lease, &message).await;
        return None;
    }
    let timeout = shared.config.send_timeout;
    let send = async {
        match tokio::time::timeout(timeout, shared.delivery.deliver(&message)).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::Timeout(timeout)),
        }
    };
    let result = tokio::select! {
        result = send => result,
        () = hold_lease(&shared, id, lease) => {
            tracing::warn!(
                message_id = %id, channel = message.channel.as_str(), template = %message.template,
                attempt = message.attempts,
                "lost the lease while sending; another worker holds the message now, so this attempt is abandoned"
            );
            return None;
        }
    };
    let at = shared.clock.now();
    Some(Finished {
        message,
        lease,
        at,
        result,
    })
}

/// The lease a send starts under. A message that waited in the worker for
/// a slot (handed over, or claimed behind others) may have worn its lease
/// down past where the heartbeat would have renewed it: it is renewed
/// first, conditional on its token, and given up if another worker holds
/// it now (its lease ran out) or the store cannot say, so that two workers
/// never send it at once.
async fn still_held(shared: &WorkerShared, id: Uuid, lease: Lease) -> Option<Lease> {
    let now = shared.clock.now();
    let renew_at = lease.until.minus(shared.config.lease - shared.config.renew_every());
    if now < renew_at {
        return Some(lease);
    }
    let renewed = Lease {
        token: lease.token,
        until: now.plus(shared.config.lease),
    };
    match shared.store.renew_message_lease(id, renewed).await {
        Ok(true) => Some(renewed),
        Ok(false) => {
            tracing::warn!(message_id = %id, "the lease ran out while the message waited for a send slot; another worker holds it now");
            None
        }
        Err(e) => {
            tracing::warn!(message_id = %id, error = %e, "could not renew a waiting message's lease; it is sent when the lease ends");
            None
        }
    }
}

/// When to try again after failed attempt number `attempt`: after the
/// capped backoff, but never after the content expires, so an expired
/// message is dropped (and recorded) when it expires, not up to
/// [`MAX_BACKOFF`](signet_core::outbox::MAX_BACKOFF) later.
fn retry_at(now: Timestamp, attempt: i32, expires_at: Option<Timestamp>) -> Timestamp {
    let at = now.plus(backoff(attempt));
    match expires_at {
        Some(expiry) => at.min(expiry.max(now)),
        None => at,
    }
}

/// Renews the lease on `id` every [`WorkerConfig::renew_every`]. Completes
/// only when the lease is lost: another worker holds the message, or the
/// store could not be reached for so long that the lease may have run out.
async fn hold_lease(shared: &WorkerShared, id: Uuid, lease: Lease) {
    let every = shared.config.renew_every();
    let mut held_until = lease.until;
    loop {
        tokio::time::sleep(every).await;
        let now = shared.clock.now();
        let renewed = Lease {
            token: lease.token,
            until: now.plus(shared.config.lease),
        };
        match shared.store.renew_message_lease(id, renewed).await {
            Ok(true) => held_until = renewed.until,
            Ok(false) => return,
            Err(e) => {
                // Still ours until `held_until`; give up before the next
                // renewal would come too late.
                if shared.clock.now().plus(every) >= held_until {
                    tracing::warn!(message_id = %id, error = %e, "could not renew a lease before it ran out");
                    return;
                }
                tracing::warn!(message_id = %id, error = %e, "could not renew a lease; trying again");
            }
        }
    }
}

/// Drops a message whose content expired: marks it dead (bodies erased)
/// and appends `message.expired` in one unit of work.
async fn expire(shared: &WorkerShared, lease: Lease, message: &Message) {
    let now = shared.clock.now();
    let recorded = async {
        let mut tx = shared.store.begin().await?;
        if !tx.expire_message(message.id, lease.token, now).await? {
            tx.rollback().await?;
            return Ok::<bool, StoreError>(false);
        }
        let event = AuditEvent::new(EventType::MessageExpired, Actor::System, AuditOutcome::Failure).details(json!({
            "message_id": message.id,
            "channel": message.channel.as_str(),
            "template": message.template,
            // The claim that found it expired counted as one; it sent nothing.
            "attempts": message.attempts.saturating_sub(1),
            "created_at": message.created_at.to_rfc3339(),
            "expires_at": message.expires_at.map(|t| t.to_rfc3339()),
            "last_error": message.last_error,
        }));
        tx.append_audit(&event, signet_core::ids::time_ordered(), now).await?;
        tx.commit().await?;
        Ok(true)
    }
    .await;
    match recorded {
        Ok(true) => {
            tracing::warn!(
                message_id = %message.id, channel = message.channel.as_str(), template = %message.template,
                "message expired before it could be delivered; dropped"
            );
            if let Some(hook) = &shared.on_expired {
                hook(message);
            }
        }
        Ok(false) => tracing::debug!(message_id = %message.id, "expired message already taken by another worker"),
        Err(e) => tracing::warn!(
            message_id = %message.id, error = %e,
            "could not record an expired message; dropped when its lease ends"
        ),
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
    use signet_core::outbox::MAX_BACKOFF;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééé", 3), "é...");
    }

    #[test]
    fn a_worker_claims_no_more_than_it_can_send() {
        let c = WorkerConfig::default().sanitized();
        assert_eq!(c.claim_size(c.concurrency), 16);
        assert_eq!(c.claim_size(64), c.batch_size);
        assert_eq!(c.claim_size(1), 1);
        assert!(c.renew_every() < c.lease / 2);
    }

    #[test]
    fn a_retry_never_comes_after_the_content_expires() {
        let now = Timestamp::from_millis(1_000_000);
        let in_a_minute = now.plus(Duration::from_secs(60));
        assert_eq!(retry_at(now, 1, None), now.plus(Duration::from_secs(5)));
        assert_eq!(retry_at(now, 9, None), now.plus(MAX_BACKOFF));
        assert_eq!(retry_at(now, 9, Some(in_a_minute)), in_a_minute);
        assert_eq!(retry_at(now, 1, Some(in_a_minute)), now.plus(Duration::from_secs(5)));
    }

    #[test]
    fn sanitized_repairs_zeroes() {
        let c = WorkerConfig {
            batch_size: 0,
            concurrency: 0,
            ..Default::default()
        }
        .sanitized();
        assert_eq!((c.batch_size, c.concurrency), (1, 1));
    }
}
