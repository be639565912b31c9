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
//!   message waits in the worker, ahead of claimed ones, until a send slot
//!   is free. How many may wait is bounded too: a hand-off first takes a
//!   ticket ([`crate::queue::HANDOFF_TICKETS_PER_SLOT`] per slot), returned
//!   when the worker takes the message in. With no ticket left, or no
//!   worker running on this node, the message is queued the usual way and
//!   the worker is woken.
//! - **Nothing is handed before the commit.** The reservation and the lease
//!   are made inside the unit, but the worker hears of the message only
//!   through [`crate::Courier::hand_over`], called after the commit. A unit
//!   that rolls back drops the reservation with it.

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
    /// Returned when the worker takes the message in.
    pub(crate) ticket: OwnedSemaphorePermit,
}

impl Handed {
    /// The worker takes the message in: its ticket goes back for the next
    /// hand-off, and the send slots bound it from here on.
    pub(crate) fn take_in(self) -> (Lease, Message) {
        drop(self.ticket);
        (self.lease, self.message)
    }
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
/// open while a worker runs on this node, closed otherwise.
#[derive(Default)]
pub(crate) struct Lane {
    open: Mutex<Option<Door>>,
}

#[derive(Clone)]
pub(crate) struct Door {
    pub(crate) to_worker: mpsc::UnboundedSender<Handed>,
    /// Tickets: how many more messages may be handed to the worker before
    /// it has taken the ones handed so far.
    pub(crate) tickets: Arc<Semaphore>,
    /// How long the worker leases what it takes.
    pub(crate) lease: Duration,
}

impl Lane {
    /// Opens the lane for a worker that has started; returns the receiving
    /// end it reads.
    pub(crate) fn open(&self, tickets: Arc<Semaphore>, lease: Duration) -> mpsc::UnboundedReceiver<Handed> {
        let (to_worker, from_lane) = mpsc::unbounded_channel();
        *self.lock() = Some(Door {
            to_worker,
            tickets,
            lease,
        });
        from_lane
    }

    /// Closes it: the worker stopped. What was queued leased and not yet
    /// handed over is sent when its lease runs out.
    pub(crate) fn close(&self) {
        *self.lock() = None;
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
