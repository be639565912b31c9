//! Units that need no answer from the writer (their writes are all
//! deferred inserts and checked writes, and audit records) are handed to
//! it, many in one call (ADR 0040).
//!
//! # Why
//!
//! Every call to SQLite's single writer is a hand-off to the connection's
//! thread and back to the unit's task, and the writer sits idle between
//! one unit's call and the next unit's (its task has to be woken, take the
//! writer's turn and send its statements). A `client_credentials` grant
//! is one such unit: its only write is its audit record. Measured on the
//! reference machine, the writer's thread slept and woke about 1.5 times
//! per grant and a third of both cores stayed idle: the grants queued on
//! the hand-offs, not on SQLite or the CPU.
//!
//! # How
//!
//! - A unit takes the writer's turn only when it first needs the
//!   connection (`crate::tx`: a read, a write whose answer it needs). A
//!   unit whose writes are all deferred inserts (`crate::deferred`) and
//!   audit records never needs it: at its commit it *hands* them to the
//!   group commit's queue ([`GroupCommit::hand`]). Deferred writes are
//!   inserts and checked writes (ADR 0035: an update or delete SQLite
//!   itself refuses the unit for if it changed no row).
//! - The unit that hands into an empty queue spawns a *leader*: a task
//!   that takes the writer's turn like any unit (in the same FIFO), then
//!   takes every unit handed while it waited (sorted by shape, so that
//!   calls repeat a few texts the driver keeps prepared), and runs up to
//!   [`PER_CALL`] of them in one call, as long as the group has room
//!   (`MAX_GROUP` members; the rest wait for the next group). For each
//!   unit, in order: its deferred writes, its audit records (sealed here
//!   against the group's chain head, one after the other) and its release
//!   into the group (`RELEASE_AND_REOPEN`), exactly the statements the
//!   unit's own call would have carried, with its markers (below). Each unit is
//!   still a member of the group with its own savepoint; the group commits
//!   (one `COMMIT`, one fsync) as before, and each unit is acknowledged
//!   only by its group's outcome.
//! - **A whole call first** (the amendment of ADR 0040). The driver
//!   answers a call one message per statement, and the leader's thread
//!   waits and wakes for them, so a call first carries every unit at
//!   once: their deferred writes, every unit's records in one multi-row
//!   `INSERT`, one marker and one release for all of them. Only if a
//!   statement of it fails is it rolled back to its savepoint and its units
//!   sent unit by unit, as below.
//! - **A group in one call** (the second amendment of ADR 0040). A leader
//!   whose group is fresh does not open it with a call of its own: its
//!   first call begins with `BEGIN IMMEDIATE` and the savepoint, and, if
//!   nobody waits to join the group once its units are in, ends with the
//!   group's closing (the release, the chain head, `COMMIT`). The records
//!   are sealed against the chain head the last group left, which this
//!   process remembers; the call checks it inside the transaction before
//!   any record ([`HEAD_CHECK`]), and if another process (the CLI) moved
//!   it, the call stops there, the head is read, and the units go again.
//!   Under a steady stream of grants a group is then one hand-off to the
//!   connection's thread instead of three.
//! - **One unit's failure is its own.** SQLite stops a call at its first
//!   failing statement, and the driver streams every result it produced
//!   before the error. Each unit's part ends with two markers, `SELECT 2i`
//!   after its own statements and `SELECT 2i + 1` after its release: the
//!   rows that came back tell the leader which unit failed, and whether in
//!   its own writes or in its release, without counting anyone's
//!   statements. A unit whose
//!   own statement failed (a refused checked write, ADR 0035; a constraint)
//!   is rolled back to its savepoint alone and told its error; the units
//!   before it are in the group; the units after it had not run, and go in
//!   the next call, sealed again against the chain as it now stands. A
//!   failure in a release, or a `ROLLBACK TO` that fails (SQLite ended the
//!   transaction on its own, as on a full disk), fails the whole group as
//!   it would for a unit of its own (ADR 0010): nothing in it is
//!   acknowledged.
//! - The leader is a task of its own: a request cancelled while its unit
//!   waits in the queue does not strand the others, and its unit is dropped
//!   unwritten if its call was not sent yet (a refresh token rotated for a
//!   client that gave up waiting would make its retry look like a replay).
//!   Once sent, it commits or fails with its group, as a unit cancelled
//!   after its release always could; nothing acknowledged it.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use signet_core::audit::AuditRecord;
use signet_core::store::{StoreError, StoreResult};
use sqlx::Either;
use tokio::sync::{oneshot, watch};

use super::{
    outcome, spawn_leader, ChainHead, Failure, Group, GroupCommit, Member, Outcome, OPEN_GROUP, RELEASE_AND_REOPEN,
    ROLLBACK_TO,
};
use crate::connect::ACQUIRE_TIMEOUT;
use crate::deferred::{self, Deferred};
use crate::refusals::{HEAD_CHECK, HEAD_MOVED};
use crate::tx::PendingAudit;
use crate::{audit, backend};

/// The most handed units one call carries: bounds the call's text (and the
/// driver's cache of prepared texts: a call of units of one shape is kept,
/// one text per shape and count) and the work one failure sends round again.
pub(crate) const PER_CALL: usize = 16;

/// What a unit handed to the writer becomes once its call has run: a place
/// to wait for its group's outcome, or its own failure.
type Answer = StoreResult<watch::Receiver<Option<Outcome>>>;

/// A unit's writes, handed to the writer with where to answer it.
pub(crate) struct Handed {
    inserts: Vec<Deferred>,
    records: Vec<PendingAudit>,
    reply: oneshot::Sender<Answer>,
    /// When it was handed: it waits for the writer at most
    /// `ACQUIRE_TIMEOUT` from here, as a unit of its own would.
    handed_at: tokio::time::Instant,
}

impl Handed {
    fn answer(self, answer: Answer) {
        // A unit whose request was cancelled no longer listens.
        let _ = self.reply.send(answer);
    }
}

impl GroupCommit {
    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Handed>> {
        self.handed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands a unit's `inserts` and audit `records` to the writer and waits
    /// until its group has committed them (or failed). `pool` gives the
    /// writer's connection when no group is open.
    pub(crate) async fn hand(
        self: &Arc<Self>,
        pool: &sqlx::SqlitePool,
        inserts: Vec<Deferred>,
        records: Vec<PendingAudit>,
    ) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        let leads = {
            let mut queue = self.queue();
            queue.push(Handed {
                inserts,
                records,
                reply,
                handed_at: tokio::time::Instant::now(),
            });
            queue.len() == 1
        };
        if leads {
            spawn_leader(lead(
                self.clone(),
                pool.clone(),
                tokio::time::Instant::now() + ACQUIRE_TIMEOUT,
            ));
        }
        let joined = answer.await.map_err(|_| Failure::lost().into_error())??;
        outcome(joined).await
    }
}

/// The leader: takes the writer's turn (waiting until `deadline`, the
/// oldest unit's), then every unit handed until then, and runs them.
///
/// If the wait for the writer timed out, only the units that have waited
/// their full `ACQUIRE_TIMEOUT` are told `storage_busy`; a unit handed
/// later in the wait goes back to the head of the queue (with a leader of
/// its own, unless one already waits for units handed since), so that it
/// too waits its full time. Any other failure to join (SQLite's own lock
/// held by another process, a connection that cannot be opened) fails
/// every unit at once, as before.
async fn lead(gc: Arc<GroupCommit>, pool: sqlx::SqlitePool, deadline: tokio::time::Instant) {
    let joined = gc.join_group(&pool, deadline, false).await;
    // From here a unit handed finds the queue empty and leads the next.
    let units = std::mem::take(&mut *gc.queue());
    let now = tokio::time::Instant::now();
    match joined {
        Ok(member) => member.run_handed(units, &pool).await,
        Err(e @ StoreError::Busy(_)) if now >= deadline => {
            let (expired, mut waiting): (VecDeque<Handed>, VecDeque<Handed>) =
                units.into_iter().partition(|u| u.handed_at + ACQUIRE_TIMEOUT <= now);
            fail_all(expired, &Failure::of(&e));
            waiting.retain(|u| !u.abandoned());
            if !waiting.is_empty() {
                requeue(&gc, &pool, waiting);
            }
        }
        Err(e) => fail_all(units, &Failure::of(&e)),
    }
}

/// Tells every one of `units` that its group could not be had or failed.
fn fail_all(units: impl IntoIterator<Item = Handed>, failure: &Failure) {
    for unit in units {
        unit.answer(Err(failure.clone().into_error()));
    }
}

/// Puts units a leader could not take into its group (it was full, or its
/// wait for the writer timed out before theirs) back at the head of the
/// queue, and spawns a leader for them unless one is waiting already (a
/// leader is spawned by whoever hands into an empty queue, and it can only
/// take the queue once this leader has left the writer). A leader spawned
/// here waits until the oldest of them has waited `ACQUIRE_TIMEOUT`; one
/// already waiting keeps its own, later, deadline.
fn requeue(gc: &Arc<GroupCommit>, pool: &sqlx::SqlitePool, units: VecDeque<Handed>) {
    let oldest = units
        .iter()
        .map(|u| u.handed_at)
        .min()
        .unwrap_or_else(tokio::time::Instant::now);
    let leads = {
        let mut queue = gc.queue();
        let waiting_leader = !queue.is_empty();
        let newer = std::mem::take(&mut *queue);
        queue.extend(units);
        queue.extend(newer);
        !waiting_leader
    };
    if leads {
        spawn_leader(lead(gc.clone(), pool.clone(), oldest + ACQUIRE_TIMEOUT));
    }
}

impl Handed {
    /// Orders units by what the text of their part of a call depends on
    /// (their inserts' texts, then their number of records), without
    /// building a key per unit: equal means the same text.
    fn shape_cmp(&self, other: &Handed) -> std::cmp::Ordering {
        self.inserts
            .iter()
            .map(|d| d.sql)
            .cmp(other.inserts.iter().map(|d| d.sql))
            .then_with(|| self.records.len().cmp(&other.records.len()))
    }

    /// Its request was cancelled (the client hung up, or the request's
    /// deadline passed) before its call was sent.
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}

/// How a call of handed units ended.
enum Ran {
    /// The units it ran were answered; the rest did not run and go in the
    /// next call.
    Answered,
    /// The group failed: every unit not yet answered is told, and the
    /// connection is gone.
    GroupFailed(Failure),
}

/// How a call of every unit at once ([`Member::run_whole`]) ended.
enum Whole {
    /// Every unit is in the group and was answered.
    Released,
    /// A unit's statement failed; the call was rolled back to its
    /// savepoint and its units are to go again, unit by unit.
    /// `unverified`: the call carried the opening's check of the chain
    /// head, which may not have run; the head must be read before the units
    /// are sealed again.
    RolledBack(Vec<Handed>, bool),
    /// The group failed (its units were not answered).
    GroupFailed(Failure, Vec<Handed>),
    /// The chain head the call's records were sealed against was not the
    /// group's ([`HEAD_CHECK`]); the call was rolled back to its savepoint
    /// before any unit's statement ran, and its units are to go again.
    HeadMoved(Vec<Handed>),
}

/// A group's opening, carried by the first call of a leader whose group is
/// not begun: `BEGIN IMMEDIATE`, the first savepoint and, when the call's
/// records were sealed against the head the last group left, the check
/// that it is still the head.
struct Opening {
    check: Option<ChainHead>,
}

/// Where a call's markers go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Markers {
    /// One marker and one release after every unit's statements.
    Whole,
    /// Two markers per unit, around its own release.
    EachUnit,
}

impl Member {
    /// Runs `units` (in the order they were handed) in calls of at most
    /// [`PER_CALL`], then hands the connection on as any member does when
    /// it leaves. The group takes as many as it has room for
    /// ([`super::MAX_GROUP`]), the first handed first; the rest go back to
    /// the head of the queue for the next group, in their order, so no
    /// kind of unit waits behind another for ever.
    async fn run_handed(mut self, mut units: Vec<Handed>, pool: &sqlx::SqlitePool) {
        let members = self.group.released.load(std::sync::atomic::Ordering::SeqCst);
        let room = super::MAX_GROUP.saturating_sub(members);
        if units.len() > room {
            requeue(&self.gc, pool, units.split_off(room).into());
        }
        // Units of one shape side by side, so that most calls repeat a text
        // the driver keeps prepared (`Batch::same_shape`). Any order will
        // do among these: none of them was answered yet.
        units.sort_by(Handed::shape_cmp);
        if let Err(e) = self.prepare_opening(&units).await {
            let failure = self.failed(&e);
            fail_all(units, &failure);
            return;
        }
        let mut units: VecDeque<Handed> = units.into();
        // Once a whole call failed, the rest of these units go unit by
        // unit: a failure seldom comes alone (a burst of replays).
        let mut unit_by_unit = false;
        while !units.is_empty() {
            // A unit whose request was cancelled before its call was sent
            // is dropped: nothing of it is written, as for a unit cancelled
            // before its release.
            units.retain(|u| !u.abandoned());
            let take = units.len().min(PER_CALL);
            if take == 0 {
                break;
            }
            let call: Vec<Handed> = units.drain(..take).collect();
            // The last call of a group nobody waits to join also ends it:
            // its closing goes in the same call (one hand-off to the
            // connection's thread instead of two).
            let closes = units.is_empty() && self.last_with(call.len());
            let (ran, mut left) = self.run_call(call, &mut unit_by_unit, closes).await;
            match ran {
                Ran::Answered => {
                    // Not run: first in the next call, in their order.
                    for unit in left.into_iter().rev() {
                        units.push_front(unit);
                    }
                }
                Ran::GroupFailed(failure) => {
                    left.extend(units.drain(..));
                    fail_all(left, &failure);
                    return;
                }
            }
        }
        // The last release opened a savepoint (or a failed unit's was rolled
        // back to and stays open): it belongs to the next member.
        self.in_savepoint = false;
        self.releasing = false;
        self.leave();
    }

    /// Readies a group that is not begun yet ([`GroupCommit::join_group`])
    /// for the leader's first call, which then begins it ([`Opening`]).
    ///
    /// With the chain head the last group left, that call begins the group
    /// itself and checks the head ([`HEAD_CHECK`]) ahead of records sealed
    /// against it: one call then opens, writes and (often) commits a group,
    /// where three were needed. Without it (the first group since the
    /// process started), the group is opened here by a call of its own that
    /// reads the head, unless no unit has records.
    async fn prepare_opening(&mut self, units: &[Handed]) -> StoreResult<()> {
        if self.begun {
            return Ok(());
        }
        match self.gc.last_head() {
            // Taken for the group's own until the check says otherwise.
            Some(head) => self.group.head().known = Some(head),
            None if units.iter().all(|u| u.records.is_empty()) => {}
            None => self.open_group().await?,
        }
        Ok(())
    }

    /// What the next call must begin with: the group's opening, while it
    /// is not begun.
    fn opening(&self) -> Option<Opening> {
        (!self.begun).then(|| Opening {
            // Only the last group's head, from `prepare_opening`, can be
            // known to a group not begun.
            check: self.chain_head(),
        })
    }

    /// One call for `call`'s units: first as a whole ([`Member::run_whole`]),
    /// unless `unit_by_unit`, which a whole call that fails sets. Returns
    /// how it ended and the units it did not answer. When `closes`, a whole
    /// call also commits the group.
    async fn run_call(&mut self, call: Vec<Handed>, unit_by_unit: &mut bool, closes: bool) -> (Ran, Vec<Handed>) {
        let mut head = match self.chain_head() {
            Some(h) => Some(h),
            None if call.iter().any(|u| !u.records.is_empty()) => match self.read_chain_head().await {
                Ok(h) => Some(h),
                // SQLite may have ended the transaction (an I/O error, a
                // full disk): writes sent after would run outside it. The
                // group fails, as for a unit of its own.
                Err(e) => return (self.fail_now(&e), call),
            },
            None => None,
        };
        // Cancelled while the head was read: still not sent.
        let call: Vec<Handed> = call.into_iter().filter(|u| !u.abandoned()).collect();
        if call.is_empty() {
            return (Ran::Answered, Vec::new());
        }
        let call = if *unit_by_unit {
            call
        } else {
            let mut call = call;
            loop {
                match self.run_whole(call, head, closes).await {
                    Whole::Released => return (Ran::Answered, Vec::new()),
                    Whole::GroupFailed(failure, call) => return (Ran::GroupFailed(failure), call),
                    // The head the call assumed had moved (another process
                    // appended): nothing of it was written. Again as a
                    // whole, sealed against the head as it stands.
                    Whole::HeadMoved(again) => {
                        match self.reread_head().await {
                            Ok(now) => head = Some(now),
                            Err(e) => return (self.fail_now(&e), again),
                        }
                        call = again.into_iter().filter(|u| !u.abandoned()).collect();
                        if call.is_empty() {
                            return (Ran::Answered, Vec::new());
                        }
                    }
                    // Rolled back: unit by unit, to find whose statement
                    // failed. Nothing of them is written now: a unit whose
                    // request was cancelled meanwhile is dropped, as before
                    // its first call.
                    Whole::RolledBack(again, unverified) => {
                        *unit_by_unit = true;
                        if unverified {
                            match self.reread_head().await {
                                Ok(now) => head = Some(now),
                                Err(e) => return (self.fail_now(&e), again),
                            }
                        }
                        let call: Vec<Handed> = again.into_iter().filter(|u| !u.abandoned()).collect();
                        if call.is_empty() {
                            return (Ran::Answered, Vec::new());
                        }
                        break call;
                    }
                }
            }
        };
        let batch = Batch::of(&call, head, Markers::EachUnit, self.opening(), None);
        // A failure from here may leave a release in doubt.
        self.releasing();
        let ran = self.send(&call, &batch).await;
        // Units whose release ran (their marker came back) are in the group.
        let mut units = call.into_iter();
        for (i, unit) in units.by_ref().take(ran.released).enumerate() {
            let joined = self.released_handed(batch.heads[i]);
            unit.answer(Ok(joined));
        }
        let Some(e) = ran.error else {
            if ran.released == batch.heads.len() && !ran.own_done && !ran.confused {
                self.releasing = false;
                return (Ran::Answered, units.collect());
            }
            // The call stopped short without an error, or answered what
            // it should not have: in doubt.
            let e = StoreError::Backend("a call of handed units ended unexpectedly".into());
            return (self.fail_now(&e), units.collect());
        };
        // Failed before the unit's first marker came back: its own failure.
        // After it, its release (or its reopening) failed: the group is in
        // doubt.
        if ran.own_done || ran.confused {
            let rest: Vec<Handed> = units.collect();
            return (self.fail_now(&e), rest);
        }
        let Some(failed) = units.next() else {
            return (self.fail_now(&e), Vec::new());
        };
        // Back to its savepoint, which stays open for the next unit.
        if let Err(rollback) = self.run(ROLLBACK_TO).await {
            failed.answer(Err(e));
            return (self.fail_now(&rollback), units.collect());
        }
        self.releasing = false;
        failed.answer(Err(e));
        (Ran::Answered, units.collect())
    }

    /// The call every unit goes in first: all of their statements, then
    /// one marker and one release for all of them. It is a fifth of the
    /// statements of a call unit by unit (for a `client_credentials`
    /// grant, its audit record alone instead of five), and the driver
    /// sends the leader one message per statement. When a statement fails,
    /// the marker tells whether it was a unit's own (the call is rolled
    /// back to its savepoint, and the units go again unit by unit) or the
    /// release (the group is in doubt and fails).
    ///
    /// When `closes`, the release is the group's closing (`Group::closing`:
    /// the release, the chain head, `COMMIT`), so the call's end commits
    /// every member. A failure after the marker is then a failed `COMMIT`
    /// as much as a failed release: the group fails either way, and none
    /// of its members is acknowledged.
    async fn run_whole(&mut self, call: Vec<Handed>, head: Option<ChainHead>, closes: bool) -> Whole {
        let batch = Batch::of(
            &call,
            head,
            Markers::Whole,
            self.opening(),
            closes.then_some(&*self.group),
        );
        self.releasing();
        let ran = self.send(&call, &batch).await;
        // The marker came back (its row reads as a unit's own statements
        // done), and, when the call closes the group, the one after its
        // `COMMIT` too (read as that unit's release): a call that stops
        // short without an error (the connection's thread gone) is not
        // taken for a commit.
        let done = if closes { (1, false) } else { (0, true) };
        match ran {
            Progress {
                error: None,
                released,
                own_done,
                confused: false,
                head_moved: false,
            } if (released, own_done) == done => {
                self.releasing = false;
                for (unit, head) in call.into_iter().zip(batch.heads) {
                    let joined = self.released_handed(head);
                    unit.answer(Ok(joined));
                }
                if closes {
                    self.committed_in_place();
                }
                Whole::Released
            }
            Progress {
                error: Some(e),
                released: 0,
                own_done: false,
                confused: false,
                head_moved,
            } => match self.run(ROLLBACK_TO).await {
                Ok(()) => {
                    self.releasing = false;
                    if head_moved {
                        Whole::HeadMoved(call)
                    } else {
                        Whole::RolledBack(call, batch.head_check.is_some())
                    }
                }
                // SQLite ended the transaction itself (a full disk, an I/O
                // error): the group fails with what stopped the call, which
                // tells the client why (`storage_full`...), not with the
                // savepoint that is gone.
                Err(_) => Whole::GroupFailed(self.failed(&e), call),
            },
            Progress { error, .. } => {
                let e =
                    error.unwrap_or_else(|| StoreError::Backend("a call of handed units ended unexpectedly".into()));
                Whole::GroupFailed(self.failed(&e), call)
            }
        }
    }

    /// Sends `batch`, the call for `call`'s units, and follows its markers.
    async fn send(&mut self, call: &[Handed], batch: &Batch) -> Progress {
        let mut q = sqlx::query(&batch.sql).persistent(batch.same_shape);
        match batch.markers {
            Markers::EachUnit => {
                q = audit::bind_head(q, batch.head_check.as_ref());
                for (unit, records) in call.iter().zip(&batch.records) {
                    q = deferred::bind(deferred::values(&unit.inserts), q);
                    for rec in records {
                        q = audit::bind_record(q, rec);
                    }
                }
            }
            // The records first: see `Batch::of`.
            Markers::Whole => {
                for rec in batch.records.iter().flatten() {
                    q = audit::bind_record(q, rec);
                }
                q = audit::bind_head(q, batch.head_check.as_ref());
                for unit in call {
                    q = deferred::bind(deferred::values(&unit.inserts), q);
                }
                // The closing's numbered placeholders come last.
                q = audit::bind_head(q, batch.closing_head.as_ref());
            }
        }
        self.gc.handed_calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.gc.call();
        if batch.opens {
            // From here the group may be begun: a failure rolls it back.
            self.begun = true;
            self.in_savepoint = true;
        }
        match self.conn() {
            Some(c) => follow(sqlx::Executor::fetch_many(c, q)).await,
            None => Progress::broken(StoreError::Backend("the unit has no connection".into())),
        }
    }

    /// A handed unit's release ran: it is a member of the group, `head` the
    /// chain head after its records.
    fn released_handed(&mut self, head: Option<ChainHead>) -> watch::Receiver<Option<Outcome>> {
        self.gc.handed_units.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.enter_group(head)
    }

    /// Reads the chain head inside the group's transaction, after a call
    /// whose opening's check of it failed or may not have run, and takes it
    /// for the group's and for the next group's guess.
    async fn reread_head(&mut self) -> StoreResult<ChainHead> {
        let now = self.read_chain_head().await?;
        self.group.head().known = Some(now);
        self.gc.remember_head(now);
        Ok(now)
    }

    /// Reads the chain head inside the group's transaction (when opening it
    /// did not: a head missing or malformed is reported here).
    async fn read_chain_head(&mut self) -> StoreResult<ChainHead> {
        self.gc.call();
        let Some(c) = self.conn() else {
            return Err(StoreError::Backend("the unit has no connection".into()));
        };
        audit::read_head(c).await
    }

    /// Fails the group from the leader: every member is told.
    fn fail_now(&mut self, e: &StoreError) -> Ran {
        Ran::GroupFailed(self.failed(e))
    }

    fn failed(&mut self, e: &StoreError) -> Failure {
        self.fail_group_now(e);
        Failure::of(e)
    }
}

/// How far a call of handed units got, told by the markers that came
/// back: each unit's `SELECT 2i` after its own statements and `SELECT
/// 2i + 1` after its release. A whole call has only `SELECT 0`, after
/// every unit's statements and before their one release: it reads as the
/// first unit's own statements done; when it closes the group, `SELECT 1`
/// after the `COMMIT` reads as that unit's release.
#[derive(Default)]
struct Progress {
    /// Units whose release ran.
    released: usize,
    /// The next unit's own statements were all done (its first marker came
    /// back, not yet its second).
    own_done: bool,
    /// A row that was not the next marker came back.
    confused: bool,
    /// What stopped the call was [`HEAD_CHECK`].
    head_moved: bool,
    /// What stopped the call, if anything did.
    error: Option<StoreError>,
}

impl Progress {
    fn broken(e: StoreError) -> Self {
        Progress {
            error: Some(e),
            ..Progress::default()
        }
    }
}

/// Follows a call's result stream to its end or its first error, reading
/// the markers' rows (nothing else in a call returns rows).
async fn follow<'e>(
    mut stream: futures::stream::BoxStream<
        'e,
        Result<Either<sqlx::sqlite::SqliteQueryResult, sqlx::sqlite::SqliteRow>, sqlx::Error>,
    >,
) -> Progress {
    use sqlx::Row;
    let mut p = Progress::default();
    let mut seen: i64 = 0;
    while let Some(item) = stream.next().await {
        match item {
            Ok(Either::Right(row)) => {
                if row.try_get::<i64, _>(0).ok() != Some(seen) {
                    p.confused = true;
                    continue;
                }
                seen += 1;
                if p.own_done {
                    p.own_done = false;
                    p.released += 1;
                } else {
                    p.own_done = true;
                }
            }
            Ok(Either::Left(_)) => {}
            Err(e) => {
                p.head_moved = matches!(&e, sqlx::Error::Database(db) if db.message() == HEAD_MOVED);
                p.error = Some(backend(e));
                break;
            }
        }
    }
    p
}

/// One call's text and what goes with it.
struct Batch {
    sql: String,
    /// Each unit's records, sealed one after the other.
    records: Vec<Vec<AuditRecord>>,
    /// The chain head after each unit's records (`None`: it had none).
    heads: Vec<Option<ChainHead>>,
    /// Every unit has the same shape: the text is one of few (one per
    /// shape and count of units) and worth keeping prepared. A mixed call's
    /// text is prepared for this call only, so that it never pushes the
    /// writer's usual statements out of the driver's cache.
    same_shape: bool,
    /// Unit by unit, or the whole call at once (its records in one
    /// statement at its end).
    markers: Markers,
    /// The chain head the call's closing writes, when it ends the group.
    closing_head: Option<ChainHead>,
    /// The call begins the group ([`Opening`]).
    opens: bool,
    /// The chain head its opening checks, if it checks one.
    head_check: Option<ChainHead>,
}

/// A call's text as it is built: statements joined, each one's
/// placeholders numbered after the previous ones'.
#[derive(Default)]
struct Text {
    sql: String,
    placeholders: usize,
}

impl Text {
    /// Appends `text`.
    fn push(&mut self, text: &str) {
        if !self.sql.is_empty() {
            self.sql.push_str("; ");
        }
        self.sql.push_str(&deferred::shifted(text, self.placeholders));
        self.placeholders += deferred::highest_placeholder(text);
    }
}

impl Batch {
    /// `opening`: the group's, when this call begins it. `closes`: the
    /// group whose closing ends a whole call, in place of the release that
    /// leaves it open.
    fn of(
        call: &[Handed],
        mut head: Option<ChainHead>,
        markers: Markers,
        opening: Option<Opening>,
        closes: Option<&Group>,
    ) -> Batch {
        let mut text = Text::default();
        if markers == Markers::Whole {
            // The records' values are bound first, to the anonymous
            // placeholders of their one statement (`audit::insert_rows`),
            // and the numbered ones (the opening's check, the inserts', the
            // closing's) come after them, in the order of the text.
            text.placeholders = call.iter().map(|u| u.records.len()).sum::<usize>() * audit::AUDIT_COLUMNS;
        }
        let head_check = opening.as_ref().and_then(|o| o.check);
        if opening.is_some() {
            text.push(OPEN_GROUP);
            if head_check.is_some() {
                text.push(HEAD_CHECK);
            }
        }
        let mut records = Vec::with_capacity(call.len());
        let mut heads = Vec::with_capacity(call.len());
        let mut closing_head = None;
        for (i, unit) in call.iter().enumerate() {
            for insert in &unit.inserts {
                debug_assert_eq!(
                    deferred::highest_placeholder(insert.sql),
                    insert.values.len(),
                    "a deferred write binds one value per placeholder: {}",
                    insert.sql
                );
                text.push(insert.sql);
            }
            let mut sealed = Vec::with_capacity(unit.records.len());
            for r in &unit.records {
                // `head` is known whenever a unit has records (run_call).
                let h = head.unwrap_or(ChainHead { seq: 0, hash: [0; 32] });
                let rec = AuditRecord::seal(&r.event, r.id, r.at, h.seq, h.hash);
                head = Some(ChainHead {
                    seq: rec.seq,
                    hash: rec.hash,
                });
                sealed.push(rec);
                if markers == Markers::EachUnit {
                    text.push(audit::INSERT);
                }
            }
            // The unit's markers: their rows tell the leader that its own
            // statements ran, then that its release did.
            if markers == Markers::EachUnit {
                text.push(&format!("SELECT {}", 2 * i));
                text.push(RELEASE_AND_REOPEN);
                text.push(&format!("SELECT {}", 2 * i + 1));
            }
            heads.push(if sealed.is_empty() { None } else { head });
            records.push(sealed);
        }
        // One marker for all: every unit's statements ran, then the
        // release (which, unlike a unit's, is not followed by a marker:
        // the call's end says it ran).
        if markers == Markers::Whole {
            // Every unit's records in one statement, after every unit's
            // inserts (no deferred write reads the audit log).
            let sealed = records.iter().map(Vec::len).sum();
            if sealed > 0 {
                text.push(&audit::insert_rows(sealed));
            }
            text.push("SELECT 0");
            match closes {
                Some(group) => {
                    let appended = heads.iter().rev().find_map(|h| *h);
                    let (closing, written) = group.closing(true, appended);
                    text.push(closing);
                    // Its row says the `COMMIT` ran (`run_whole`).
                    text.push("SELECT 1");
                    closing_head = written;
                }
                None => text.push(RELEASE_AND_REOPEN),
            }
        }
        let same_shape = call.windows(2).all(|w| w[0].shape_cmp(&w[1]).is_eq());
        Batch {
            sql: text.sql,
            records,
            heads,
            same_shape,
            markers,
            closing_head,
            opens: opening.is_some(),
            head_check,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group_commit::tests::{doomed, event, holding, keys, settle, store, verified_chain};
    use crate::SqlStore;
    use signet_core::store::Refusal;
    use signet_core::unit_of_work::AuditAppend;
    use std::time::Duration;

    /// A unit that never needs the writer: `write` (an insert, deferred)
    /// and two audit records, then its commit, which hands them over.
    fn handed(store: &Arc<SqlStore>, k: &str, write: &'static str) -> tokio::task::JoinHandle<StoreResult<()>> {
        handed_records(store, k, write, vec![uuid::Uuid::new_v4(), uuid::Uuid::new_v4()])
    }

    /// A handed unit like [`handed`]'s with one record per id in `ids`.
    fn handed_records(
        store: &Arc<SqlStore>,
        k: &str,
        write: &'static str,
        ids: Vec<uuid::Uuid>,
    ) -> tokio::task::JoinHandle<StoreResult<()>> {
        let (store, k) = (store.clone(), k.to_owned());
        tokio::spawn(async move {
            let mut tx = store.begin_tx().await?;
            tx.write_later(Deferred {
                sql: write,
                values: vec![k.as_str().into()],
            })
            .await?;
            for (at, id) in (1..).zip(ids) {
                tx.append_audit(&event(&k), id, signet_core::clock::Timestamp::from_millis(at))
                    .await?;
            }
            tx.commit_now().await
        })
    }

    const PARENT: &str = "INSERT INTO gc_parent (k) VALUES ($1)";

    /// Many units that only insert and append, at once: they go in far
    /// fewer calls than units and fewer commits, every one is durable, and
    /// their records chain one after the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handed_units_share_calls_and_commits_and_chain_their_records() {
        let (store, _dir) = store().await;
        let before = store.commit_stats();
        // 48 units, 96 records: within one page of `verified_chain`.
        let tasks: Vec<_> = (0..48).map(|i| handed(&store, &format!("k{i:02}"), PARENT)).collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let after = store.commit_stats();
        assert_eq!(after.handed - before.handed, 48);
        let calls = after.handed_calls - before.handed_calls;
        assert!((3..48).contains(&calls), "48 handed units took {calls} calls");
        assert!(after.commits - before.commits < 48);
        // Each unit's insert bound its own value, though a whole call binds
        // every record's before any insert's (`Batch::of`).
        let expected: Vec<String> = (0..48).map(|i| format!("k{i:02}")).collect();
        assert_eq!(keys(&store).await, expected);
        assert_eq!(verified_chain(&store).await, 96);
    }

    /// A unit handed while nobody else writes is a group of its own, and
    /// once the process knows the chain head it takes one call: the
    /// group's opening, the unit's writes and the group's closing together.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_handed_unit_opens_writes_and_commits_its_group_in_one_call() {
        let (store, _dir) = store().await;
        // The first group since the store opened reads the head in a call
        // of its own.
        handed(&store, "first", PARENT).await.unwrap().unwrap();
        let before = store.commit_stats();
        for i in 0..5 {
            handed(&store, &format!("k{i}"), PARENT).await.unwrap().unwrap();
        }
        let after = store.commit_stats();
        assert_eq!(after.commits - before.commits, 5);
        assert_eq!(after.calls - before.calls, 5, "one call per group");
        assert_eq!(keys(&store).await, ["first", "k0", "k1", "k2", "k3", "k4"]);
        assert_eq!(verified_chain(&store).await, 12);
    }

    /// Another process (the CLI) appends to the audit log between two of
    /// this store's groups: the head this store remembers is stale, the
    /// next call's check stops it before any record is written, and its
    /// unit goes again, sealed against the head as it stands. The chain is
    /// unbroken, and the guess after is right again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_head_moved_by_another_process_stops_the_call_and_the_unit_goes_again() {
        let (store, dir) = store().await;
        handed(&store, "a", PARENT).await.unwrap().unwrap();
        let url = format!("sqlite://{}/signet.db", dir.path().display());
        let other = Arc::new(SqlStore::connect(&url).await.unwrap());
        handed(&other, "b", PARENT).await.unwrap().unwrap();
        let before = store.commit_stats();
        handed(&store, "c", PARENT).await.unwrap().unwrap();
        let after = store.commit_stats();
        assert_eq!(
            after.handed_calls - before.handed_calls,
            2,
            "the call, stopped, then again"
        );
        assert_eq!(
            after.calls - before.calls,
            4,
            "the call, its rollback to the savepoint, the head read, the call again"
        );
        assert_eq!(after.commits - before.commits, 1);
        assert_eq!(keys(&store).await, ["a", "b", "c"]);
        assert_eq!(verified_chain(&store).await, 6);
        let before = store.commit_stats();
        handed(&store, "d", PARENT).await.unwrap().unwrap();
        assert_eq!(store.commit_stats().calls - before.calls, 1);
        assert_eq!(verified_chain(&store).await, 8);
    }

    /// A lone unit whose insert fails, in a call that began its group and
    /// checked the head: the call is rolled back to its savepoint, the head
    /// is read (the check is not trusted to have run), the unit fails alone
    /// in a call of its own, and the empty group ends. The chain is whole and
    /// the next unit's group is one call again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_handed_unit_that_fails_in_a_call_that_began_its_group_fails_alone() {
        let (store, _dir) = store().await;
        handed(&store, "a", PARENT).await.unwrap().unwrap();
        let failed = handed(&store, "nobody", "INSERT INTO gc_child (k) VALUES ($1)")
            .await
            .unwrap();
        assert!(
            failed.is_err() && !matches!(failed, Err(StoreError::Refused(_))),
            "{failed:?}"
        );
        let before = store.commit_stats();
        handed(&store, "b", PARENT).await.unwrap().unwrap();
        assert_eq!(store.commit_stats().calls - before.calls, 1);
        assert_eq!(keys(&store).await, ["a", "b"]);
        assert_eq!(verified_chain(&store).await, 4);
    }

    /// While a unit holds the writer, four units are handed behind it and
    /// go in one leader's calls: B's checked write is refused, C's insert
    /// breaks a foreign key. Each takes only its own work: A and D commit
    /// with the holder in one group, their records chained without a gap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handed_unit_that_fails_takes_only_its_own_work() {
        let (store, _dir) = store().await;
        let mut hold = holding(&store, "taken").await;
        let a = handed(&store, "a", PARENT);
        let b = handed(
            &store,
            "taken",
            concat!(
                "INSERT INTO gc_parent (k) VALUES ($1) ON CONFLICT (k) DO NOTHING; ",
                crate::refusals::expect_one!("flow_finished")
            ),
        );
        let c = handed(&store, "nobody", "INSERT INTO gc_child (k) VALUES ($1)");
        let d = handed(&store, "d", PARENT);
        settle().await;
        let before = store.commit_stats();
        hold.commit_now().await.unwrap();
        a.await.unwrap().unwrap();
        assert!(matches!(
            b.await.unwrap(),
            Err(StoreError::Refused(Refusal::FlowFinished))
        ));
        let c = c.await.unwrap();
        assert!(c.is_err() && !matches!(c, Err(StoreError::Refused(_))), "{c:?}");
        d.await.unwrap().unwrap();
        let after = store.commit_stats();
        assert_eq!(
            after.commits - before.commits,
            1,
            "the holder, A and D share one COMMIT"
        );
        assert_eq!(after.handed - before.handed, 2);
        // Sorted by shape: C (the child insert), A and D, then B (the
        // checked insert). The four fail as a whole; unit by unit, C fails
        // its call; A, D and B's refusal the next.
        assert_eq!(after.handed_calls - before.handed_calls, 3);
        assert_eq!(keys(&store).await, ["a", "d", "taken"]);
        assert_eq!(verified_chain(&store).await, 4, "A's two and D's two");
    }

    /// Two units handed behind a holder whose records carry the same id:
    /// their whole call fails in its one `INSERT` of records, is rolled
    /// back, and goes again unit by unit, where only the second unit fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_whole_call_that_fails_goes_again_unit_by_unit() {
        let (store, _dir) = store().await;
        let mut hold = holding(&store, "held").await;
        let id = uuid::Uuid::new_v4();
        let unit = |k: &str| handed_records(&store, k, PARENT, vec![id]);
        let a = unit("a");
        settle().await;
        let b = unit("b");
        settle().await;
        let before = store.commit_stats();
        hold.commit_now().await.unwrap();
        a.await.unwrap().unwrap();
        let b = b.await.unwrap();
        assert!(b.is_err() && !matches!(b, Err(StoreError::Refused(_))), "{b:?}");
        let after = store.commit_stats();
        assert_eq!(after.handed - before.handed, 1);
        assert_eq!(
            after.handed_calls - before.handed_calls,
            2,
            "the whole call, then unit by unit"
        );
        assert_eq!(keys(&store).await, ["a", "held"]);
        assert_eq!(verified_chain(&store).await, 1, "A's record");
    }

    /// While a unit holds the writer past `ACQUIRE_TIMEOUT`, a unit handed
    /// at once is told `storage_busy` when its time is up, and a unit
    /// handed three seconds later keeps waiting its own full time: it
    /// commits once the holder lets go.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_unit_handed_late_in_a_long_wait_waits_its_own_full_time() {
        let (store, _dir) = store().await;
        let mut hold = holding(&store, "held").await;
        let early = handed(&store, "early", PARENT);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let late = handed(&store, "late", PARENT);
        let early = early.await.unwrap();
        assert!(matches!(early, Err(StoreError::Busy(_))), "{early:?}");
        // The early unit's time ran out: the late one still has about two
        // and a half seconds to wait.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!late.is_finished());
        hold.commit_now().await.unwrap();
        late.await.unwrap().unwrap();
        assert_eq!(keys(&store).await, ["held", "late"]);
        assert_eq!(verified_chain(&store).await, 2, "the late unit's records");
    }

    /// A unit that only inserts (no record), handed at its commit.
    fn handed_insert(store: &Arc<SqlStore>, k: String) -> tokio::task::JoinHandle<StoreResult<()>> {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin_tx().await?;
            tx.write_later(Deferred {
                sql: PARENT,
                values: vec![k.into()],
            })
            .await?;
            tx.commit_now().await
        })
    }

    /// A leader takes every unit handed while it waited, but a group takes
    /// at most `MAX_GROUP` members: behind a holder, 100 units go in two
    /// groups (the holder and 63, then 37), every one of them committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leader_fills_its_group_and_leaves_the_rest_to_the_next() {
        let (store, _dir) = store().await;
        let mut hold = holding(&store, "hold").await;
        let units: Vec<_> = (0..100).map(|i| handed_insert(&store, format!("k{i:03}"))).collect();
        settle().await;
        let before = store.commit_stats();
        hold.commit_now().await.unwrap();
        for u in units {
            u.await.unwrap().unwrap();
        }
        let after = store.commit_stats();
        assert_eq!(after.handed - before.handed, 100);
        assert_eq!(after.commits - before.commits, 2, "64 members, then 37");
        assert_eq!(after.handed_calls - before.handed_calls, 7, "63 in 4 calls, 37 in 3");
        assert_eq!(keys(&store).await.len(), 101);
    }

    /// A unit whose request is cancelled while it waits in the queue is
    /// dropped before its call is sent: nothing of it is written (a refresh
    /// token rotated for a client that gave up would make its retry look
    /// like a replay). The units handed beside it commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_unit_cancelled_while_it_waits_in_the_queue_is_not_written() {
        let (store, _dir) = store().await;
        let mut hold = holding(&store, "hold").await;
        let gone = handed(&store, "gone", PARENT);
        let kept = handed(&store, "kept", PARENT);
        settle().await;
        gone.abort();
        assert!(gone.await.unwrap_err().is_cancelled());
        hold.commit_now().await.unwrap();
        kept.await.unwrap().unwrap();
        assert_eq!(keys(&store).await, ["hold", "kept"]);
        assert_eq!(verified_chain(&store).await, 2, "the kept unit's two records");
    }

    /// Handed units released into a group whose `COMMIT` fails are told so,
    /// as every other member: nothing of the group is acknowledged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handed_units_in_a_group_whose_commit_fails_are_not_acknowledged() {
        let (store, _dir) = store().await;
        let mut x = doomed(&store).await;
        let a = handed(&store, "a", PARENT);
        let b = handed(&store, "b", PARENT);
        settle().await;
        assert!(x.commit_now().await.is_err());
        assert!(a.await.unwrap().is_err());
        assert!(b.await.unwrap().is_err());
        assert!(keys(&store).await.is_empty());
        // The writer was replaced: the next handed unit commits.
        handed(&store, "after", PARENT).await.unwrap().unwrap();
        assert_eq!(keys(&store).await, ["after"]);
        assert_eq!(verified_chain(&store).await, 2);
    }
}
