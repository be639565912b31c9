//! Handing a freshly queued message to this node's worker without a claim
//! (ADR 0037).
//!
//! A sign-in code is waited for: the person has the page open and their
//! mail client beside it. Queued the usual way, the code's message became
//! visible when its unit committed, then waited for the worker's next claim
//! (a unit of its own, and on SQLite another group commit) before it went
//! to the relay. Measured on the email-code bench, that wait was the
//! largest part of a sign-in by email under load (docs/benchmarks.md, tenth
//! section).
//!
//! So a message whose sender is waiting is queued **already leased** to the
//! local worker, in the unit of work that issues the code: the row says
//! what a claim would have said (`lease_owner`, `lease_until`, one
//! attempt). After the commit the message goes to the worker over an
//! in-process channel, and the worker sends it at once, renewing the lease
//! and recording the result exactly as for a claimed message.
//!
//! What does not change:
//! - **At-least-once.** The row is durable before anything is sent. If this
//!   node dies before the send is recorded, the lease runs out and any
//!   worker (this node after a restart, or another) claims the message and
//!   sends it, as after a crash mid-send. The only cost of such a crash is
//!   the lease's length (`lease`, 60 s by default) before the retry.
//! - **The bound on sends in flight** (`[courier] concurrency`). A handed
//!   message waits in the worker, in order with claimed ones, until a send
//!   slot is free. How many may wait is bounded too: a hand-off first takes
//!   a ticket ([`crate::queue::HANDOFF_TICKETS_PER_SLOT`] per slot),
//!   returned when its send starts. With no ticket left, or no worker
//!   running on this node, the message is queued the usual way and the
//!   worker is woken.
//! - **One holder.** A message that waited long enough for its lease to
//!   have worn down has the lease renewed (conditional on its token) before
//!   its send starts, and is dropped by this worker if the renewal finds
//!   it taken, as after a claim ([`crate::queue`]).
//! - **Nothing is handed before the commit.** The reservation and the lease
//!   are made inside the unit, but the worker hears of the message only
//!   through [`crate::Courier::hand_over`], called after the commit. A unit
//!   that rolls back drops the reservation with it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signet_core::outbox::{Lease, Message};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// A message leased to the worker when it was queued, with the ticket
/// that keeps its place.
pub(crate) struct Handed {
    pub(crate) message: Message,
    pub(crate) lease: Lease,
    /// Returned when its send starts: until then the message waits in the
    /// worker (or in the channel), and the tickets bound how many do.
    pub(crate) ticket: OwnedSemaphorePermit,
}

/// A message queued inside a unit of work by
/// [`crate::Courier::enqueue_leased_in`]. Once the unit has committed, give
/// it to [`crate::Courier::hand_over`]; if the unit fails, drop it.
#[must_use = "pass it to Courier::hand_over once the unit of work has committed"]
pub struct Queued {
    /// The message's id (for the audit record that mentions it).
    pub id: Uuid,
    pub(crate) handed: Option<(mpsc::UnboundedSender<Handed>, Handed)>,
}

impl Queued {
    /// Whether the message was leased to this node's worker (rather than
    /// queued for any worker's next claim).
    pub fn leased(&self) -> bool {
        self.handed.is_some()
    }
}

/// The way in to the running worker, shared by every clone of a courier:
/// open while a worker runs on this node, closed otherwise. One worker at
/// a time holds it; a second worker of the same courier runs without
/// hand-offs.
#[derive(Default)]
pub(crate) struct Lane {
    open: Mutex<Option<Door>>,
    /// Numbers the openings, so that a worker closes only its own.
    openings: AtomicU64,
}

/// Which opening of the lane a worker holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opening(u64);

#[derive(Clone)]
pub(crate) struct Door {
    opening: Opening,
    pub(crate) to_worker: mpsc::UnboundedSender<Handed>,
    /// Tickets: how many more messages may be handed to the worker before
    /// it has started sending the ones handed so far.
    pub(crate) tickets: Arc<Semaphore>,
    /// How long the worker leases what it takes.
    pub(crate) lease: Duration,
}

impl Lane {
    /// Opens the lane for a worker that is starting; returns the opening
    /// and the receiving end it reads, or `None` if another worker holds
    /// the lane.
    pub(crate) fn open(
        &self,
        tickets: Arc<Semaphore>,
        lease: Duration,
    ) -> Option<(Opening, mpsc::UnboundedReceiver<Handed>)> {
        let mut open = self.lock();
        if open.is_some() {
            return None;
        }
        let opening = Opening(self.openings.fetch_add(1, Ordering::Relaxed));
        let (to_worker, from_lane) = mpsc::unbounded_channel();
        *open = Some(Door {
            opening,
            to_worker,
            tickets,
            lease,
        });
        Some((opening, from_lane))
    }

    /// Closes it, if `opening` is the one open: its worker is stopping.
    /// What was queued leased and not handed over by then is sent when its
    /// lease runs out.
    pub(crate) fn close(&self, opening: Opening) {
        let mut open = self.lock();
        if open.as_ref().is_some_and(|door| door.opening == opening) {
            *open = None;
        }
    }

    /// Whether a worker is running to take hand-offs.
    pub(crate) fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    /// The door and a ticket, if a worker is running and has room for
    /// one more hand-off.
    pub(crate) fn reserve(&self) -> Option<(Door, OwnedSemaphorePermit)> {
        let door = self.lock().clone()?;
        let ticket = Arc::clone(&door.tickets).try_acquire_owned().ok()?;
        Some((door, ticket))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Door>> {
        // A panic elsewhere while holding this lock left an Option behind,
        // which is always valid.
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
