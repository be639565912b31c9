//! Group commit on SQLite: many units of work, one `COMMIT`, one fsync.
//!
//! # Why
//!
//! SQLite has one writer, and with `synchronous=FULL` (kept: an
//! acknowledged write survives power loss) every `COMMIT` waits for an
//! fsync of the write-ahead log. One fsync per unit capped the whole server
//! near the disk's fsync rate (issue 13: ~450 logins/s on the reference
//! machine while its CPU was 60% busy). The classic answer (Gray & Reuter,
//! "group commit"; SQLite "Atomic Commit" §3) is to let the units that
//! queue up behind the writer share one transaction and one fsync.
//!
//! # How (ADR 0015, `docs/adr/0015-group-commit.md`)
//!
//! - Units still run **one at a time** on the single writer connection. A
//!   unit takes the *slot* (a fair async mutex, FIFO) when it first needs
//!   the connection, not when it begins; whoever holds it is the only user
//!   of the connection. A unit that never needs it (only inserts and audit
//!   records) hands them over at its commit instead, and a leader runs
//!   many such units in one call ([`handed`], ADR 0040). The unit joins the *group*
//!   (the open SQLite transaction) parked in the slot, or opens one with
//!   `BEGIN IMMEDIATE`, then runs inside `SAVEPOINT signet_unit`.
//! - A unit's commit releases its savepoint. If other units are waiting for
//!   the slot, the connection is parked in the slot with the transaction
//!   still open, and the unit waits for the group's outcome. Otherwise (or
//!   when the group has [`MAX_GROUP`] members) the group is committed at
//!   once: one `COMMIT`, one fsync, then every member is answered.
//! - The first member that parks a group also queues a *closer* for it on
//!   the slot: when the closer's turn comes, it commits the group if still
//!   open. So a group always ends, even if the units behind it are
//!   cancelled, and it lasts no longer than the queue it was opened in.
//! - A unit that rolls back (or is dropped unfinished) only rolls back to
//!   its savepoint; the other members keep their work.
//! - **Failure fails the whole group, and only then.** If `COMMIT` fails,
//!   every member gets the error (none was acknowledged). If SQLite rolled
//!   the transaction back on its own (`SQLITE_FULL`, `SQLITE_IOERR`: the
//!   savepoint is then gone, so `ROLLBACK TO` / `RELEASE` fail), every
//!   member gets an error too, and the connection is closed rather than
//!   reused (the disk-full rule of ADR 0010).
//!
//! Nothing is awaited while a lock guards anything but the connection's own
//! turn, and every step that ends a transaction runs in a spawned task that
//! owns the connection and the slot until it is done: a request cancelled
//! by its deadline or a client hang-up can never leave a transaction open
//! on a connection someone else will use.
//!
//! Autocommit operations outside units ([`crate::SqlStore::writer`]) take
//! the connection from the pool, so they wait until any open group has
//! committed and never write into one.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::Sqlite;
use tokio::sync::{watch, Mutex, OwnedMutexGuard};

use signet_core::store::{StoreError, StoreResult};

use crate::backend;

mod handed;

/// The most units one group takes before it is committed regardless of
/// who is waiting: bounds the latency of its first member and the work a
/// failing `COMMIT` throws away.
pub(crate) const MAX_GROUP: usize = 64;

macro_rules! savepoint {
    () => {
        "SAVEPOINT signet_unit"
    };
}
const SAVEPOINT: &str = savepoint!();
/// A fresh group's transaction and its first member's savepoint. `BEGIN
/// IMMEDIATE` takes the write lock at once rather than at the first write,
/// so a transaction never fails half-way for the lock.
macro_rules! open_group {
    () => {
        concat!("BEGIN IMMEDIATE; ", savepoint!())
    };
}
/// [`open_group!`], as the first statements of a leader's call
/// ([`handed`]).
pub(crate) const OPEN_GROUP: &str = open_group!();
/// A fresh group's opening call: [`open_group!`], and the audit chain's
/// head, read once the write lock is held ([`ChainHead`]), so that no
/// member spends a call of its own on it.
const OPEN_GROUP_AND_SAVEPOINT: &str = concat!(open_group!(), "; SELECT seq, hash FROM audit_head WHERE id = 1");
/// A member's release (as a literal, for the closing texts too).
macro_rules! release {
    () => {
        "RELEASE SAVEPOINT signet_unit"
    };
}
const RELEASE: &str = release!();
/// The group's chain head written for its `COMMIT` (`Group::closing`).
macro_rules! update_head {
    () => {
        "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1"
    };
}
/// A member's release when it leaves the group open for the units
/// waiting: the next member's savepoint is opened in the same call, so a
/// unit that joins a parked group starts without a call of its own.
pub(crate) const RELEASE_AND_REOPEN: &str = "RELEASE SAVEPOINT signet_unit; SAVEPOINT signet_unit";
const ROLLBACK_TO: &str = "ROLLBACK TO SAVEPOINT signet_unit";

/// How a group ended, as every member is told.
pub(crate) type Outcome = Result<(), Failure>;

/// Why a group did not commit. Cloned to every member, so it keeps the
/// class of the driver error (what the client is told: 503 `storage_full`,
/// `storage_busy`...) and its text.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    class: Class,
    message: String,
}

#[derive(Clone, Copy, Debug)]
enum Class {
    Full,
    Busy,
    Unavailable,
    Backend,
}

#[derive(Debug, thiserror::Error)]
#[error("group commit failed: {0}")]
struct GroupError(String);

impl Failure {
    fn of(e: &StoreError) -> Self {
        let class = match e {
            StoreError::Full(_) => Class::Full,
            StoreError::Busy(_) => Class::Busy,
            StoreError::Unavailable(_) => Class::Unavailable,
            _ => Class::Backend,
        };
        let message = match std::error::Error::source(e) {
            Some(cause) => cause.to_string(),
            None => e.to_string(),
        };
        Self { class, message }
    }

    fn lost() -> Self {
        Self {
            class: Class::Backend,
            message: "the group this unit joined ended without an outcome".into(),
        }
    }

    pub(crate) fn into_error(self) -> StoreError {
        let cause = Box::new(GroupError(self.message));
        match self.class {
            Class::Full => StoreError::Full(cause),
            Class::Busy => StoreError::Busy(cause),
            Class::Unavailable => StoreError::Unavailable(cause),
            Class::Backend => StoreError::Backend(cause),
        }
    }
}

/// One open SQLite transaction shared by its members.
pub(crate) struct Group {
    id: u64,
    /// Members whose savepoint was released into the group, each waiting
    /// for the outcome.
    released: AtomicUsize,
    /// Whether a closer is queued for this group.
    closer: AtomicBool,
    /// Members hold receivers only: if every holder of the group drops it
    /// unanswered, they are told it was lost instead of waiting forever.
    outcome: watch::Sender<Option<Outcome>>,
    /// The audit chain's head as this group's transaction has it (see
    /// [`ChainHead`]). Only the member holding the slot touches it.
    head: std::sync::Mutex<GroupHead>,
}

/// The head of the hash-chained audit log (`audit_head`): the last
/// record's sequence number and hash.
///
/// A group reads it once, inside its transaction (which holds SQLite's
/// write lock, so no other connection or process can move it), each
/// member's appends advance it in memory, and it is written back once,
/// in the same call as the group's `COMMIT`. An append is then one
/// `INSERT` instead of three statements, and a member that rolls back
/// never touched it: a member's new head is taken into the group only
/// once its savepoint is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChainHead {
    pub(crate) seq: i64,
    pub(crate) hash: [u8; 32],
}

#[derive(Default)]
struct GroupHead {
    known: Option<ChainHead>,
    /// Advanced by a released member: `audit_head` must be written before
    /// the `COMMIT`.
    dirty: bool,
}

impl Group {
    fn new(id: u64) -> Arc<Self> {
        Arc::new(Self {
            id,
            released: AtomicUsize::new(0),
            closer: AtomicBool::new(false),
            outcome: watch::channel(None).0,
            head: std::sync::Mutex::new(GroupHead::default()),
        })
    }

    fn head(&self) -> std::sync::MutexGuard<'_, GroupHead> {
        self.head.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The statements that end this group durably: `audit_head` brought
    /// up to the group's chain (when a member appended), then `COMMIT`,
    /// after a last member's `RELEASE` (when `release`), all in one call to
    /// the connection, with the chain head to bind if it is written.
    ///
    /// The texts are four constants, so the driver keeps each prepared:
    /// with the head written into the text as literals, every group's
    /// closing was parsed anew on the writer's thread (about 1.5 % of a
    /// `client_credentials` grant's CPU, on the thread every group waits
    /// for).
    ///
    /// `appended` is the head after records whose member is released in
    /// the same call, ahead of this text (a leader's call that ends the
    /// group, [`handed`]): it is written instead of the group's own.
    fn closing(&self, release: bool, appended: Option<ChainHead>) -> (&'static str, Option<ChainHead>) {
        let head = self.head();
        let written = appended.or(head.known.filter(|_| head.dirty));
        let sql = match (release, written.is_some()) {
            (true, true) => concat!(release!(), "; ", update_head!(), "; COMMIT"),
            (true, false) => concat!(release!(), "; COMMIT"),
            (false, true) => concat!(update_head!(), "; COMMIT"),
            (false, false) => "COMMIT",
        };
        (sql, written)
    }

    fn answer(&self, outcome: Outcome) {
        self.outcome.send_replace(Some(outcome));
    }
}

/// The writer connection with a group open on it, between two units.
pub(crate) struct Parked {
    conn: PoolConnection<Sqlite>,
    group: Arc<Group>,
    /// The previous member's release opened the next savepoint
    /// ([`RELEASE_AND_REOPEN`]). A `COMMIT` or `ROLLBACK` of the group ends
    /// it with the rest, so a group parked for a unit that never comes is
    /// unaffected.
    savepoint_open: bool,
}

pub(crate) type Slot = Option<Parked>;

/// The group-commit state of one SQLite store.
pub(crate) struct GroupCommit {
    slot: Arc<Mutex<Slot>>,
    /// Units waiting for the slot: a committing unit leaves its group open
    /// for them only when there are some.
    waiting: AtomicUsize,
    next_id: AtomicU64,
    commits: AtomicU64,
    units: AtomicU64,
    handed_units: AtomicU64,
    handed_calls: AtomicU64,
    calls: AtomicU64,
    /// Units handed to the writer, waiting for a leader to run them
    /// ([`handed`], ADR 0040).
    handed: std::sync::Mutex<Vec<handed::Handed>>,
    /// An in-memory database lives in its one connection: never closed.
    ephemeral: bool,
    /// The chain head as the last group this process committed left it
    /// (or as a group read it). Only a guess: another process (the CLI)
    /// may have appended since. A leader that seals its records against
    /// it checks it inside its transaction before they are written
    /// ([`handed`]).
    last_head: std::sync::Mutex<Option<ChainHead>>,
}

/// Counters for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Units released into a group (committed, unless their group failed).
    pub units: u64,
    /// Successful `COMMIT`s, each one fsync.
    pub commits: u64,
    /// Units handed to the writer and run by a leader ([`handed`]).
    pub handed: u64,
    /// The calls those units took.
    pub handed_calls: u64,
    /// Calls to the writer connection that open, join, leave or commit a
    /// group, the leaders' included (not the units' own statements).
    pub calls: u64,
}

/// Counts a unit as waiting for the slot until dropped (also when the wait
/// is cancelled or times out).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl GroupCommit {
    pub(crate) fn new(ephemeral: bool) -> Arc<Self> {
        Arc::new(Self {
            slot: Arc::new(Mutex::new(None)),
            waiting: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            commits: AtomicU64::new(0),
            units: AtomicU64::new(0),
            handed_units: AtomicU64::new(0),
            handed_calls: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            handed: std::sync::Mutex::new(Vec::new()),
            ephemeral,
            last_head: std::sync::Mutex::new(None),
        })
    }

    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            units: self.units.load(Ordering::SeqCst),
            commits: self.commits.load(Ordering::SeqCst),
            handed: self.handed_units.load(Ordering::SeqCst),
            handed_calls: self.handed_calls.load(Ordering::SeqCst),
            calls: self.calls.load(Ordering::SeqCst),
        }
    }

    /// Counts a call to the writer connection ([`CommitStats::calls`]).
    fn call(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }

    /// The chain head the last group left, if this process knows it.
    fn last_head(&self) -> Option<ChainHead> {
        *self.last_head.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember_head(&self, head: ChainHead) {
        *self.last_head.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(head);
    }

    /// Takes the writer's turn (waiting at most until `deadline`), joins the
    /// parked group or opens one on a connection from `pool`, and starts a
    /// unit inside its savepoint.
    pub(crate) async fn join(
        self: &Arc<Self>,
        pool: &sqlx::SqlitePool,
        deadline: tokio::time::Instant,
    ) -> StoreResult<Member> {
        self.join_group(pool, deadline, true).await
    }

    /// [`GroupCommit::join`]; unless `begin_now`, a fresh group is not
    /// begun: its `BEGIN` goes with the member's first call (a leader of
    /// handed units, [`Member::begun`]).
    async fn join_group(
        self: &Arc<Self>,
        pool: &sqlx::SqlitePool,
        deadline: tokio::time::Instant,
        begin_now: bool,
    ) -> StoreResult<Member> {
        let mut slot = {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let _waiting = Waiting(&self.waiting);
            tokio::time::timeout_at(deadline, self.slot.clone().lock_owned())
                .await
                .map_err(|_| busy("waiting for the SQLite writer"))?
        };
        let (conn, group, fresh, savepoint_open) = match slot.take() {
            Some(parked) => (parked.conn, parked.group, false, parked.savepoint_open),
            None => {
                let conn = pool.acquire().await.map_err(backend)?;
                let id = self.next_id.fetch_add(1, Ordering::SeqCst);
                (conn, Group::new(id), true, false)
            }
        };
        // From here the member owns the connection and the slot: cancelled
        // at any await below, its Drop cleans up (see `Member::abandon`).
        let mut member = Member {
            conn: Some(conn),
            slot: Some(slot),
            group,
            gc: self.clone(),
            in_savepoint: false,
            releasing: false,
            begun: !fresh,
        };
        if fresh && !begin_now {
            return Ok(member);
        }
        // IMMEDIATE takes the write lock now rather than at the first
        // write, so a transaction never fails half-way for the lock. A
        // fresh group's `BEGIN` and its first savepoint go in one call (one
        // hand-off to the connection's thread). If either fails, the group
        // (which has no member yet) is failed: `ROLLBACK`, whose result
        // does not matter, and the connection, in doubt, is not reused.
        if !savepoint_open {
            let opened = if fresh {
                member.open_group().await
            } else {
                member.run(SAVEPOINT).await
            };
            if let Err(e) = opened {
                member.fail_group_now(&e);
                return Err(e);
            }
        }
        member.in_savepoint = true;
        member.begun = true;
        Ok(member)
    }
}

fn busy(what: &str) -> StoreError {
    StoreError::Busy(Box::new(GroupError(format!("timed out {what}"))))
}

/// A unit of work in progress: it holds the writer's turn and its
/// connection, inside the group's transaction and its own savepoint.
pub(crate) struct Member {
    conn: Option<PoolConnection<Sqlite>>,
    slot: Option<OwnedMutexGuard<Slot>>,
    group: Arc<Group>,
    gc: Arc<GroupCommit>,
    in_savepoint: bool,
    /// A call ending with this unit's release was sent and its outcome is
    /// not known yet ([`Member::releasing`]).
    releasing: bool,
    /// The group's transaction was begun. Only a leader of handed units
    /// holds a group that was not ([`GroupCommit::join_group`]): its
    /// first call begins it.
    begun: bool,
}

impl Member {
    pub(crate) fn conn(&mut self) -> Option<&mut sqlx::SqliteConnection> {
        self.conn.as_deref_mut()
    }

    /// Opens a fresh group ([`OPEN_GROUP_AND_SAVEPOINT`]) and takes the
    /// chain head it read into the group.
    pub(crate) async fn open_group(&mut self) -> StoreResult<()> {
        let Some(c) = self.conn.as_deref_mut() else {
            return Err(StoreError::Backend(Box::new(GroupError(
                "the unit has no connection".into(),
            ))));
        };
        self.gc.call();
        let head: Option<(i64, Vec<u8>)> = sqlx::query_as(OPEN_GROUP_AND_SAVEPOINT)
            .fetch_optional(c)
            .await
            .map_err(backend)?;
        // A head missing or malformed is left for the first append to read
        // and report: a group that appends nothing does not fail for it.
        if let Some((seq, Ok(hash))) = head.map(|(seq, hash)| (seq, <[u8; 32]>::try_from(hash))) {
            self.group.head().known = Some(ChainHead { seq, hash });
        }
        self.begun = true;
        self.in_savepoint = true;
        Ok(())
    }

    async fn run(&mut self, sql: &str) -> StoreResult<()> {
        self.gc.call();
        match self.conn.as_deref_mut() {
            Some(c) => sqlx::query(sql).execute(c).await.map(|_| ()).map_err(backend),
            None => Err(StoreError::Backend(Box::new(GroupError(
                "the unit has no connection".into(),
            )))),
        }
    }

    /// Whether this unit's release would leave the group open for the units
    /// waiting (rather than commit it): then the caller may fold
    /// [`RELEASE_AND_REOPEN`] into its own last statement and report it
    /// with [`Member::released_in_place`]. Only a hint: `release` decides
    /// again, and either way the outcome is correct.
    pub(crate) fn parks(&self) -> bool {
        !self.is_last()
    }

    fn is_last(&self) -> bool {
        self.last_with(1)
    }

    /// Whether the group would be committed, rather than parked, once
    /// `joining` more members are released into it: it is then full, or
    /// nobody waits for the writer.
    fn last_with(&self, joining: usize) -> bool {
        let members = self.group.released.load(Ordering::SeqCst) + joining;
        members >= MAX_GROUP || self.gc.waiting.load(Ordering::SeqCst) == 0
    }

    /// The call that released the group's last members also ran its
    /// closing (`Group::closing`), which succeeded: the group is committed
    /// and the connection handed back, as [`commit`] does.
    fn committed_in_place(&mut self) {
        self.releasing = false;
        self.in_savepoint = false;
        if let (Some(conn), Some(slot)) = (self.conn.take(), self.slot.take()) {
            committed(conn, slot, &self.group, &self.gc);
        }
    }

    /// The caller is about to send a call that ends with this unit's
    /// release ([`RELEASE_AND_REOPEN`]). Until [`Member::released_in_place`]
    /// reports it done, whether the release ran is unknown: if the unit is
    /// dropped (its request cancelled mid-call) or the call fails, the whole
    /// group is failed rather than rolled back to a savepoint, which might
    /// be the next member's (a `ROLLBACK TO` would then succeed and leave
    /// this unit's work and records in the group, uncounted in its audit
    /// chain head).
    pub(crate) fn releasing(&mut self) {
        self.releasing = true;
    }

    /// The call that was to end with this unit's release was refused by a
    /// checked write before the release (`crate::refusals`: SQLite stops a
    /// call at its first error, and every check comes before the release).
    /// The release did not run: the unit rolls back alone, and its group is
    /// not in doubt.
    pub(crate) fn release_refused(&mut self) {
        self.releasing = false;
    }

    /// The caller's last statement ended with [`RELEASE_AND_REOPEN`], which
    /// succeeded: the unit is in its group, `head` is the chain head after
    /// its appends.
    pub(crate) fn released_in_place(&mut self, head: Option<ChainHead>) -> watch::Receiver<Option<Outcome>> {
        self.releasing = false;
        self.in_savepoint = false;
        self.enter_group(head)
    }

    /// A unit's release ran: it is one more member of the group, `head` the
    /// chain head after its records. Returns where its outcome is told.
    fn enter_group(&self, head: Option<ChainHead>) -> watch::Receiver<Option<Outcome>> {
        self.advance_head(head);
        self.group.released.fetch_add(1, Ordering::SeqCst);
        self.gc.units.fetch_add(1, Ordering::SeqCst);
        self.group.outcome.subscribe()
    }

    /// The audit chain head as the group's transaction has it, if a member
    /// has read it already ([`ChainHead`]).
    pub(crate) fn chain_head(&self) -> Option<ChainHead> {
        self.group.head().known
    }

    /// Releases the unit into its group, with `head` the chain head after
    /// the unit's own audit appends (if it made any), and returns where
    /// the group's outcome will be told.
    ///
    /// When nobody is waiting for the writer (or the group is full), the
    /// unit is the group's last member: its `RELEASE`, the chain head and
    /// the `COMMIT` go in one call, run by a spawned task that owns the
    /// connection and the slot from here (cancelling the caller cannot cut
    /// it short). Otherwise the `RELEASE` runs here, the member staying in
    /// its `SqlTx` until it is done so that a cancellation rolls it back,
    /// and [`Member::leave`] then parks the group for the units waiting.
    pub(crate) async fn release(&mut self, head: Option<ChainHead>) -> StoreResult<watch::Receiver<Option<Outcome>>> {
        if self.is_last() {
            if let (Some(conn), Some(slot)) = (self.conn.take(), self.slot.take()) {
                self.in_savepoint = false;
                let rx = self.enter_group(head);
                spawn(commit(conn, slot, self.group.clone(), self.gc.clone(), true));
                return Ok(rx);
            }
        }
        self.releasing();
        if let Err(e) = self.run(RELEASE_AND_REOPEN).await {
            // SQLite ended the transaction on its own (or the connection
            // broke): the whole group is lost and every member is told.
            self.fail_group_now(&e);
            return Err(e);
        }
        Ok(self.released_in_place(head))
    }

    /// Takes a released unit's chain head into its group.
    fn advance_head(&self, head: Option<ChainHead>) {
        if let Some(h) = head {
            let mut g = self.group.head();
            g.known = Some(h);
            g.dirty = true;
        }
    }

    /// After [`Member::release`]: hands the connection on (parked for the
    /// next unit, or committing the group now), unless the release already
    /// committed the group. A unit still holding the connection here was
    /// released in place, which opened the next member's savepoint.
    pub(crate) fn leave(mut self) {
        let (Some(conn), Some(slot)) = (self.conn.take(), self.slot.take()) else {
            return;
        };
        if !self.begun {
            // Nothing was sent: the connection goes back as it came.
            drop(conn);
            drop(slot);
            self.group.answer(Ok(()));
            return;
        }
        leave(conn, slot, self.group.clone(), self.gc.clone(), true);
    }

    /// Ends the unit without its work: back to its savepoint, then the
    /// connection is handed on. Runs in a spawned task that owns the
    /// connection and the slot until done, so it cannot be cut short.
    pub(crate) fn abandon(mut self) -> Option<tokio::task::JoinHandle<StoreResult<()>>> {
        if self.releasing {
            let doubt = StoreError::Backend(Box::new(GroupError(
                "a unit of work was cancelled or failed while its release was in doubt".into(),
            )));
            self.fail_group_now(&doubt);
            return None;
        }
        if !self.begun {
            // Nothing was sent on the connection: nothing to undo.
            self.leave();
            return None;
        }
        let conn = self.conn.take()?;
        let slot = self.slot.take()?;
        let (group, gc, in_savepoint) = (self.group.clone(), self.gc.clone(), self.in_savepoint);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime (a drop at shutdown): nothing can be awaited. The
            // connection is closed, so SQLite rolls the transaction back,
            // and the group's members are told it was lost when its last
            // holder drops it.
            let mut conn = conn;
            if !gc.ephemeral {
                conn.close_on_drop();
            }
            return None;
        };
        let task = async move {
            let mut conn = conn;
            let undone = if in_savepoint {
                match sqlx::query(ROLLBACK_TO).execute(&mut *conn).await {
                    Ok(_) => sqlx::query(RELEASE).execute(&mut *conn).await.map(|_| ()),
                    Err(e) => Err(e),
                }
            } else {
                Ok(())
            };
            match undone {
                Ok(()) => {
                    // Out of its savepoint while holding the connection, a
                    // unit was released in place, which opened the next
                    // member's; rolled back, it left none open.
                    leave(conn, slot, group, gc, !in_savepoint);
                    Ok(())
                }
                Err(e) => {
                    let e = backend(e);
                    fail_group(conn, slot, &group, &gc, &e).await;
                    Err(e)
                }
            }
        };
        Some(rt.spawn(task))
    }

    /// Fails the group from inside a unit (a statement that ended the
    /// transaction): runs in a spawned task that owns the connection.
    fn fail_group_now(&mut self, e: &StoreError) {
        let (Some(conn), Some(slot)) = (self.conn.take(), self.slot.take()) else {
            return;
        };
        let (group, gc, failure) = (self.group.clone(), self.gc.clone(), Failure::of(e));
        let task = async move {
            fail_group_with(conn, slot, &group, &gc, failure).await;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(task);
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if self.conn.is_some() {
            let member = Member {
                conn: self.conn.take(),
                slot: self.slot.take(),
                group: self.group.clone(),
                gc: self.gc.clone(),
                in_savepoint: self.in_savepoint,
                releasing: self.releasing,
                begun: self.begun,
            };
            // Rolled back to its savepoint by a task of its own.
            let _ = member.abandon();
        }
    }
}

/// Waits for a released member's outcome.
pub(crate) async fn outcome(mut rx: watch::Receiver<Option<Outcome>>) -> StoreResult<()> {
    let result = match rx.wait_for(Option::is_some).await {
        Ok(v) => v.clone().unwrap_or_else(|| Err(Failure::lost())),
        Err(_) => Err(Failure::lost()),
    };
    result.map_err(Failure::into_error)
}

/// Hands the connection on after a unit: an empty group is rolled back and
/// the connection returned to the pool; a group with members is parked for
/// the units waiting (a closer queued behind them), or committed now.
/// `savepoint_open`: the unit's release opened the next savepoint.
fn leave(
    conn: PoolConnection<Sqlite>,
    mut slot: OwnedMutexGuard<Slot>,
    group: Arc<Group>,
    gc: Arc<GroupCommit>,
    savepoint_open: bool,
) {
    let members = group.released.load(Ordering::SeqCst);
    if members > 0 && members < MAX_GROUP && gc.waiting.load(Ordering::SeqCst) > 0 {
        let id = group.id;
        let needs_closer = !group.closer.swap(true, Ordering::SeqCst);
        *slot = Some(Parked {
            conn,
            group,
            savepoint_open,
        });
        drop(slot);
        if needs_closer {
            spawn(close_later(gc, id));
        }
    } else if members > 0 {
        spawn(commit(conn, slot, group, gc, false));
    } else {
        spawn(end_empty(conn, slot, group, gc));
    }
}

/// Runs one of the group's own steps (its commit, its closer, the rollback
/// of an empty group) on the runtime it was called from: a leader's steps
/// stay on the writer's runtime ([`spawn_leader`]), a joined unit's on the
/// server's.
fn spawn<F>(task: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(task);
    }
}

/// Runs a leader of handed units ([`handed`]) on the writer's runtime
/// ([`writer_runtime`]), or on the caller's if that could not be built.
/// What the leader starts (its group's commit or closer) runs there too.
fn spawn_leader<F>(task: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    if let Some(rt) = writer_runtime() {
        rt.spawn(task);
    } else {
        spawn(task);
    }
}

/// A runtime with one thread of its own for the leaders of handed units
/// (ADR 0040).
///
/// Spawned on the server's runtime, each step of a leader's chain (taking
/// the writer's turn, its call, its group's `COMMIT`, the next leader's
/// call) waited in the run queues behind every request's HTTP and signing
/// work, while the writer's connection sat idle: measured on the reference
/// machine, `client_credentials` grants ran 30 to 50 % faster with these
/// steps on a thread of their own, which the operating system wakes at
/// once because it is almost always asleep. A joined unit's commit stays
/// on the server's runtime: moved here too, it cost the code flow about
/// 5 % (A-B-B-A), a thread switch more per group for work that is already
/// on a busy core. The tasks are small (a call composed, an outcome told),
/// so one thread for the process serves every SQLite store in it; it lives
/// as long as the process.
fn writer_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static WRITER: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    WRITER
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("signet-writer")
                // Timers only: nothing on this runtime does I/O of its own
                // (the connection's thread does SQLite's). Without an I/O
                // driver the idle thread parks on a futex, and the
                // connection's thread wakes it with one `futex` call
                // rather than a write to the driver's eventfd.
                .enable_time()
                .build()
                .ok()
        })
        .as_ref()
}

/// The closer: when its turn on the slot comes, commits group `id` if it is
/// still the one parked there.
async fn close_later(gc: Arc<GroupCommit>, id: u64) {
    let mut slot = gc.slot.clone().lock_owned().await;
    if slot.as_ref().is_some_and(|p| p.group.id == id) {
        if let Some(parked) = slot.take() {
            commit(parked.conn, slot, parked.group, gc, false).await;
        }
    }
}

/// One `COMMIT` (one fsync) for every member of the group, then the answer
/// to each; before it, when `release`, the last member's `RELEASE` and the audit
/// chain head, in the same call. A failure of any of them fails the group:
/// a `ROLLBACK` whose result does not matter follows, and the connection is
/// never used again (ADR 0010).
async fn commit(
    mut conn: PoolConnection<Sqlite>,
    slot: OwnedMutexGuard<Slot>,
    group: Arc<Group>,
    gc: Arc<GroupCommit>,
    release: bool,
) {
    // Several statements in one call (SQLite runs them in order and stops
    // at the first error), one of four texts, kept prepared.
    gc.call();
    let (sql, head) = group.closing(release, None);
    let q = crate::audit::bind_head(sqlx::query(sql), head.as_ref());
    match q.execute(&mut *conn).await {
        Ok(_) => committed(conn, slot, &group, &gc),
        Err(e) => {
            let e = backend(e);
            fail_group(conn, slot, &group, &gc, &e).await;
        }
    }
}

/// The group's `COMMIT` ran: the connection goes back to the pool in
/// autocommit mode before the slot is given up, then every member is told.
fn committed(conn: PoolConnection<Sqlite>, slot: OwnedMutexGuard<Slot>, group: &Group, gc: &GroupCommit) {
    gc.commits.fetch_add(1, Ordering::SeqCst);
    if let Some(head) = group.head().known {
        gc.remember_head(head);
    }
    drop(conn);
    drop(slot);
    group.answer(Ok(()));
}

/// A group no member was released into (every unit in it rolled back):
/// nothing to commit, so its transaction is rolled back.
async fn end_empty(
    mut conn: PoolConnection<Sqlite>,
    slot: OwnedMutexGuard<Slot>,
    group: Arc<Group>,
    gc: Arc<GroupCommit>,
) {
    if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() && !gc.ephemeral {
        conn.close_on_drop();
    }
    drop(conn);
    drop(slot);
    group.answer(Ok(()));
}

async fn fail_group(
    conn: PoolConnection<Sqlite>,
    slot: OwnedMutexGuard<Slot>,
    group: &Group,
    gc: &GroupCommit,
    e: &StoreError,
) {
    fail_group_with(conn, slot, group, gc, Failure::of(e)).await;
}

/// Ends a group that cannot commit: `ROLLBACK` (its result does not matter:
/// SQLite may have rolled back already), the connection closed rather than
/// returned to the pool, and every member told.
async fn fail_group_with(
    mut conn: PoolConnection<Sqlite>,
    slot: OwnedMutexGuard<Slot>,
    group: &Group,
    gc: &GroupCommit,
    failure: Failure,
) {
    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    if !gc.ephemeral {
        conn.close_on_drop();
    }
    drop(conn);
    drop(slot);
    group.answer(Err(failure));
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::tx::{Conn, SqlTx};
    use crate::SqlStore;

    pub(super) async fn store() -> (Arc<SqlStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/signet.db", dir.path().display());
        let store = Arc::new(SqlStore::connect(&url).await.unwrap());
        let mut tx = store.begin_tx().await.unwrap();
        exec(&mut tx, "CREATE TABLE gc_parent (k TEXT PRIMARY KEY)")
            .await
            .unwrap();
        exec(&mut tx, "CREATE TABLE gc_child (k TEXT REFERENCES gc_parent(k))")
            .await
            .unwrap();
        tx.commit_now().await.unwrap();
        (store, dir)
    }

    pub(super) async fn exec(tx: &mut SqlTx, sql: &str) -> signet_core::store::StoreResult<()> {
        let r = match tx.conn().await? {
            Conn::Sqlite(c) => sqlx::query(sql)
                .execute(&mut *c)
                .await
                .map(|_| ())
                .map_err(crate::backend),
            Conn::Postgres(_) => unreachable!("SQLite only"),
        };
        tx.observe(r)
    }

    /// A unit holding the writer: its insert of `k` took the writer's
    /// turn (a unit takes it at its first statement that needs an answer,
    /// ADR 0040), and it keeps it until it commits or rolls back.
    pub(super) async fn holding(store: &SqlStore, k: &str) -> SqlTx {
        let mut tx = store.begin_tx().await.unwrap();
        insert(&mut tx, k).await.unwrap();
        tx
    }

    /// A unit holding the writer whose group's `COMMIT` will fail: its
    /// insert breaks a foreign key checked only at `COMMIT`.
    pub(super) async fn doomed(store: &SqlStore) -> SqlTx {
        let mut tx = store.begin_tx().await.unwrap();
        exec(&mut tx, "PRAGMA defer_foreign_keys = ON").await.unwrap();
        exec(&mut tx, "INSERT INTO gc_child (k) VALUES ('nobody')")
            .await
            .unwrap();
        tx
    }

    pub(super) async fn insert(tx: &mut SqlTx, k: &str) -> signet_core::store::StoreResult<()> {
        exec(tx, &format!("INSERT INTO gc_parent (k) VALUES ('{k}')")).await
    }

    /// What a reader (another connection) sees: only committed rows.
    pub(super) async fn keys(store: &SqlStore) -> Vec<String> {
        let read = async {
            Ok::<_, signet_core::store::StoreError>(crate::with_db!(read(store), |pool| {
                let mut rows: Vec<(String,)> = sqlx::query_as("SELECT k FROM gc_parent ORDER BY k")
                    .fetch_all(pool)
                    .await
                    .unwrap();
                rows.drain(..).map(|(k,)| k).collect()
            }))
        };
        read.await.unwrap()
    }

    /// A unit that inserts `k` and commits, spawned to queue on the writer.
    fn unit(store: &Arc<SqlStore>, k: &str) -> tokio::task::JoinHandle<signet_core::store::StoreResult<()>> {
        let (store, k) = (store.clone(), k.to_owned());
        tokio::spawn(async move {
            let mut tx = store.begin_tx().await?;
            insert(&mut tx, &k).await?;
            tx.commit_now().await
        })
    }

    /// Lets spawned units reach the writer's queue.
    pub(super) async fn settle() {
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    /// The settings durability and the writer's speed rest on, as the
    /// writer and a reader see them: WAL, `synchronous=FULL` (2),
    /// savepoint journals in memory (`temp_store=MEMORY`, 2), so that a
    /// group spills no journal to a temp file, and checkpoints every
    /// 10,000 WAL pages (ADR 0015).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_and_readers_run_with_wal_full_sync_and_journals_in_memory() {
        let (store, _dir) = store().await;
        let mut tx = store.begin_tx().await.unwrap();
        let written = match tx.conn().await.unwrap() {
            Conn::Sqlite(c) => settings(c).await,
            Conn::Postgres(_) => unreachable!("SQLite only"),
        };
        tx.rollback_now().await.unwrap();
        let read = match &store.db {
            crate::Db::Sqlite {
                read: crate::Reads::Own(readers),
                ..
            } => {
                let mut reader = readers.acquire().await.unwrap();
                settings(reader.conn().unwrap()).await
            }
            _ => unreachable!("a file store has its own readers"),
        };
        let expected = (
            "wal".to_owned(),
            2,
            2,
            crate::connect::WAL_AUTOCHECKPOINT_PAGES,
            crate::connect::WAL_SIZE_LIMIT_BYTES,
        );
        assert_eq!(written, expected);
        assert_eq!(read, expected);
    }

    async fn settings(c: &mut sqlx::SqliteConnection) -> (String, i64, i64, i64, i64) {
        (
            pragma(c, "journal_mode").await,
            pragma(c, "synchronous").await,
            pragma(c, "temp_store").await,
            pragma(c, "wal_autocheckpoint").await,
            pragma(c, "journal_size_limit").await,
        )
    }

    async fn pragma<T>(c: &mut sqlx::SqliteConnection, name: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + Unpin,
    {
        sqlx::query_scalar(&format!("PRAGMA {name}"))
            .fetch_one(&mut *c)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_units_commit_in_fewer_fsyncs_and_all_are_durable() {
        let (store, _dir) = store().await;
        let before = store.commit_stats();
        let tasks: Vec<_> = (0..64).map(|i| unit(&store, &format!("k{i:02}"))).collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let after = store.commit_stats();
        assert_eq!(after.units - before.units, 64);
        let commits = after.commits - before.commits;
        assert!((1..64).contains(&commits), "64 units took {commits} commits");
        // Every acknowledged unit is visible to another connection.
        assert_eq!(keys(&store).await.len(), 64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_that_fails_or_is_dropped_takes_only_its_own_work() {
        let (store, _dir) = store().await;
        // X holds the writer while A, B, D and C queue behind it.
        let mut x = holding(&store, "x").await;
        let a = unit(&store, "a");
        settle().await;
        let b = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin_tx().await.unwrap();
                insert(&mut tx, "b-own").await.unwrap();
                // A duplicate of X's row, which B sees inside the group.
                let dup = insert(&mut tx, "x").await;
                assert!(dup.is_err(), "{dup:?}");
                tx.rollback_now().await.unwrap();
            })
        };
        settle().await;
        let d = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin_tx().await.unwrap();
                insert(&mut tx, "d-dropped").await.unwrap();
                drop(tx);
            })
        };
        settle().await;
        let c = unit(&store, "c");
        settle().await;
        let before = store.commit_stats();
        x.commit_now().await.unwrap();
        a.await.unwrap().unwrap();
        b.await.unwrap();
        d.await.unwrap();
        c.await.unwrap().unwrap();
        let after = store.commit_stats();
        assert_eq!(keys(&store).await, ["a", "c", "x"]);
        assert_eq!(after.units - before.units, 3);
        assert_eq!(after.commits - before.commits, 1, "X, A and C share one COMMIT");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_commit_fails_every_member_and_acknowledges_none() {
        let (store, _dir) = store().await;
        let mut x = doomed(&store).await;
        let a = unit(&store, "a");
        let c = unit(&store, "c");
        settle().await;
        let x_result = x.commit_now().await;
        let (a, c) = (a.await.unwrap(), c.await.unwrap());
        assert!(
            x_result.is_err() && a.is_err() && c.is_err(),
            "{x_result:?} {a:?} {c:?}"
        );
        assert!(keys(&store).await.is_empty());
        // The writer was replaced: the next unit commits on its own.
        unit(&store, "after").await.unwrap().unwrap();
        assert_eq!(keys(&store).await, ["after"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_cancelled_while_waiting_still_ends_its_group() {
        let (store, _dir) = store().await;
        let mut x = holding(&store, "x").await;
        let a = unit(&store, "a");
        settle().await;
        // X releases into a group parked for A, then stops waiting.
        let cancelled = tokio::time::timeout(Duration::from_millis(1), x.commit_now()).await;
        drop(cancelled);
        // A cancelled request drops its unit with the commit's future
        // (`Transaction::commit` takes the unit). Kept alive here, a unit
        // cancelled mid-release would still hold the writer, and A would
        // time out waiting for it: the test, not the store, would be wrong.
        drop(x);
        a.await.unwrap().unwrap();
        // A committed the group; a writer outside any unit is not blocked.
        let mut w = store.writer().await.unwrap();
        crate::tx::with_conn!(w.conn(), |c| {
            sqlx::query("INSERT INTO gc_parent (k) VALUES ('auto')")
                .execute(&mut *c)
                .await
                .unwrap();
        });
        drop(w);
        let k = keys(&store).await;
        assert!(k.contains(&"a".to_owned()) && k.contains(&"auto".to_owned()), "{k:?}");
    }

    /// A unit that appends `n` audit records (with the id `id` for the
    /// first, so a duplicate can make its commit fail) and commits.
    fn audited(
        store: &Arc<SqlStore>,
        k: &str,
        id: uuid::Uuid,
    ) -> tokio::task::JoinHandle<signet_core::store::StoreResult<()>> {
        audited_ids(store, k, id, uuid::Uuid::new_v4())
    }

    /// A unit that appends two audit records with the ids `first` and
    /// `last` and commits.
    fn audited_ids(
        store: &Arc<SqlStore>,
        k: &str,
        first: uuid::Uuid,
        last: uuid::Uuid,
    ) -> tokio::task::JoinHandle<signet_core::store::StoreResult<()>> {
        use signet_core::unit_of_work::AuditAppend;
        let (store, k) = (store.clone(), k.to_owned());
        tokio::spawn(async move {
            let mut tx = store.begin_tx().await?;
            insert(&mut tx, &k).await?;
            tx.append_audit(&event(&k), first, signet_core::clock::Timestamp::from_millis(1))
                .await?;
            tx.append_audit(&event(&k), last, signet_core::clock::Timestamp::from_millis(2))
                .await?;
            tx.commit_now().await
        })
    }

    pub(super) fn event(k: &str) -> signet_core::audit::AuditEvent {
        use signet_core::audit::{Actor, AuditEvent, EventType, Outcome};
        AuditEvent::new(EventType::UserCreated, Actor::Cli, Outcome::Success).details(serde_json::json!({ "k": k }))
    }

    /// X commits two records; then, while a unit holds the writer, A, B,
    /// C and D queue behind it. One of B's two records reuses X's id, so
    /// B's commit fails. Its first record: B rolls back alone and the group
    /// (hold, A, C, D) commits once. Its last, into whose call B's release
    /// is folded (`last`): the release is in doubt, so the group B was in
    /// (hold, A, B) fails and acknowledges nothing, and C and D commit in
    /// the next. Either way the chain is unbroken; returns its head.
    async fn a_group_around_a_failing_member(store: &Arc<SqlStore>, last: bool) -> i64 {
        use signet_core::store::AuditStore;
        let taken = uuid::Uuid::new_v4();
        audited(store, "x", taken).await.unwrap().unwrap();
        let mut hold = holding(store, "hold").await;
        let a = audited(store, "a", uuid::Uuid::new_v4());
        settle().await;
        let b = if last {
            audited_ids(store, "b", uuid::Uuid::new_v4(), taken)
        } else {
            audited(store, "b", taken)
        };
        settle().await;
        let c = audited(store, "c", uuid::Uuid::new_v4());
        settle().await;
        let d = unit(store, "d");
        settle().await;
        let before = store.commit_stats();
        assert_eq!(hold.commit_now().await.is_ok(), !last);
        assert_eq!(a.await.unwrap().is_ok(), !last);
        assert!(b.await.unwrap().is_err(), "B's duplicate record id fails its commit");
        c.await.unwrap().unwrap();
        d.await.unwrap().unwrap();
        let (commits, kept, audited_units): (u64, &[&str], usize) = if last {
            (1, &["c", "d", "x"], 2)
        } else {
            (1, &["a", "c", "d", "hold", "x"], 3)
        };
        assert_eq!(store.commit_stats().commits - before.commits, commits);
        assert_eq!(keys(store).await, kept);
        assert_eq!(
            verified_chain(store).await,
            2 * audited_units,
            "two for each audited unit that committed"
        );
        store.audit_ends().await.unwrap().last_seq()
    }

    /// Checks the whole audit chain against its head; returns its length.
    pub(super) async fn verified_chain(store: &SqlStore) -> usize {
        use signet_core::store::AuditStore;
        let records = store.audit_range(0, 100).await.unwrap();
        let mut v = signet_core::audit::Verifier::new(&store.audit_ends().await.unwrap());
        for r in &records {
            v.check(r).unwrap();
        }
        assert_eq!(v.finish().unwrap(), records.len() as u64);
        records.len()
    }

    /// The group keeps the audit chain's head in memory (`ChainHead`): the
    /// records of its members chain one after the other, a member whose
    /// append fails takes its records (and nothing else) with it, and the
    /// head row written with the `COMMIT` ends the chain exactly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_groups_members_chain_their_audit_records_and_a_failed_member_leaves_no_gap() {
        use signet_core::store::AuditStore;
        let (store, _dir) = store().await;
        let seq = a_group_around_a_failing_member(&store, false).await;
        // The next group reads the head it left.
        audited(&store, "e", uuid::Uuid::new_v4()).await.unwrap().unwrap();
        assert_eq!(store.audit_ends().await.unwrap().last_seq(), seq + 2);
    }

    /// A member that leaves its group open for the units waiting releases
    /// in its last record's call (`RELEASE_AND_REOPEN` after the `INSERT`).
    /// When that call fails, whether the release ran is unknown, so its
    /// group fails as a whole (nothing of it acknowledged) and the chain
    /// stays whole; the units behind it commit in the next group.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_whose_folded_release_fails_fails_its_group_and_the_next_commits() {
        let (store, _dir) = store().await;
        a_group_around_a_failing_member(&store, true).await;
    }

    /// A checked write refused in the call that carries a member's record
    /// and its release (ADR 0035) stops that call before the release: the
    /// member rolls back alone, refused, and the group it was in (hold, A,
    /// C) commits once, its chain whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refusal_in_a_folded_release_call_takes_only_its_member() {
        use signet_core::store::{Refusal, StoreError};
        use signet_core::unit_of_work::AuditAppend;
        let (store, _dir) = store().await;
        let mut hold = holding(&store, "taken").await;
        let a = audited(&store, "a", uuid::Uuid::new_v4());
        settle().await;
        let b = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin_tx().await?;
                // Changes no row ('taken' is there): refused when sent.
                tx.write_later(crate::deferred::Deferred {
                    sql: concat!(
                        "INSERT INTO gc_parent (k) VALUES ($1) ON CONFLICT (k) DO NOTHING; ",
                        crate::refusals::expect_one!("flow_finished")
                    ),
                    values: vec!["taken".into()],
                })
                .await?;
                tx.append_audit(
                    &event("b"),
                    uuid::Uuid::new_v4(),
                    signet_core::clock::Timestamp::from_millis(1),
                )
                .await?;
                tx.commit_now().await
            })
        };
        settle().await;
        let c = audited(&store, "c", uuid::Uuid::new_v4());
        settle().await;
        let before = store.commit_stats();
        hold.commit_now().await.unwrap();
        a.await.unwrap().unwrap();
        assert!(matches!(
            b.await.unwrap(),
            Err(StoreError::Refused(Refusal::FlowFinished))
        ));
        c.await.unwrap().unwrap();
        assert_eq!(store.commit_stats().commits - before.commits, 1);
        assert_eq!(keys(&store).await, ["a", "c", "taken"]);
        assert_eq!(verified_chain(&store).await, 4, "A's two and C's two");
    }
}
