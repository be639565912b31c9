//! Units that only insert are handed to the writer, many in one call
//! (ADR 0040).
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
//!   group commit's queue ([`GroupCommit::hand`]).
//! - The unit that hands into an empty queue spawns a *leader*: a task
//!   that takes the writer's turn like any unit (in the same FIFO), then
//!   takes every unit handed while it waited, and runs up to [`PER_CALL`]
//!   of them in one call. For each, in order: its inserts, its audit
//!   records (sealed here against the group's chain head, one after the
//!   other) and its release into the group (`RELEASE_AND_REOPEN`), exactly
//!   the statements the unit's own call would have carried. Each unit is
//!   still a member of the group with its own savepoint; the group commits
//!   (one `COMMIT`, one fsync) as before, and each unit is acknowledged
//!   only by its group's outcome.
//! - **One unit's failure is its own.** SQLite stops a call at its first
//!   failing statement, and the driver streams one result per statement
//!   run, so the leader knows which unit failed and where. A unit whose
//!   own statement failed (a refused checked write, ADR 0035; a constraint)
//!   is rolled back to its savepoint alone and told its error; the units
//!   before it are in the group; the units after it had not run, and go in
//!   the next call, sealed again against the chain as it now stands. A
//!   failure in a release, or a `ROLLBACK TO` that fails (SQLite ended the
//!   transaction on its own, as on a full disk), fails the whole group as
//!   it would for a unit of its own (ADR 0010): nothing in it is
//!   acknowledged.
//! - The leader is a task of its own: a request cancelled while its unit
//!   waits in the queue does not strand the others. Its unit may still
//!   commit, as a unit cancelled after its release always could; nothing
//!   acknowledged it.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use signet_core::audit::AuditRecord;
use signet_core::store::{StoreError, StoreResult};
use sqlx::Either;
use tokio::sync::{oneshot, watch};

use super::{outcome, spawn, ChainHead, Failure, GroupCommit, Member, Outcome, RELEASE_AND_REOPEN, ROLLBACK_TO};
use crate::deferred::{self, Deferred};
use crate::tx::PendingAudit;
use crate::{audit, backend};

/// The most handed units one call carries: bounds the call's text (and the
/// driver's cache of prepared texts, one per combination of units) and the
/// work one failure sends round again.
pub(crate) const PER_CALL: usize = 16;

/// What a unit handed to the writer becomes once its call has run: a place
/// to wait for its group's outcome, or its own failure.
type Answer = StoreResult<watch::Receiver<Option<Outcome>>>;

/// A unit's writes, handed to the writer with where to answer it.
pub(crate) struct Handed {
    inserts: Vec<Deferred>,
    records: Vec<PendingAudit>,
    reply: oneshot::Sender<Answer>,
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
            });
            queue.len() == 1
        };
        if leads {
            spawn(lead(self.clone(), pool.clone()));
        }
        let joined = answer.await.map_err(|_| Failure::lost().into_error())??;
        outcome(joined).await
    }
}

/// The leader: takes the writer's turn, then every unit handed until then,
/// and runs them.
async fn lead(gc: Arc<GroupCommit>, pool: sqlx::SqlitePool) {
    let deadline = tokio::time::Instant::now() + crate::connect::ACQUIRE_TIMEOUT;
    let joined = gc.join(&pool, deadline).await;
    // From here a unit handed finds the queue empty and leads the next.
    let units: VecDeque<Handed> = std::mem::take(&mut *gc.queue()).into();
    match joined {
        Ok(member) => member.run_handed(units).await,
        Err(e) => {
            let failure = Failure::of(&e);
            for unit in units {
                unit.answer(Err(failure.clone().into_error()));
            }
        }
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

impl Member {
    /// Runs `units` in calls of at most [`PER_CALL`], then hands the
    /// connection on as any member does when it leaves.
    async fn run_handed(mut self, mut units: VecDeque<Handed>) {
        while !units.is_empty() {
            let take = units.len().min(PER_CALL);
            let call: Vec<Handed> = units.drain(..take).collect();
            let (ran, mut left) = self.run_call(call).await;
            match ran {
                Ran::Answered => {
                    // Not run: first in the next call, in their order.
                    for unit in left.into_iter().rev() {
                        units.push_front(unit);
                    }
                }
                Ran::GroupFailed(failure) => {
                    left.extend(units.drain(..));
                    for unit in left {
                        unit.answer(Err(failure.clone().into_error()));
                    }
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

    /// One call for `call`'s units. Returns how it ended and the units it
    /// did not answer.
    async fn run_call(&mut self, call: Vec<Handed>) -> (Ran, Vec<Handed>) {
        let head = match self.chain_head() {
            Some(h) => Some(h),
            None if call.iter().any(|u| !u.records.is_empty()) => match self.read_chain_head().await {
                Ok(h) => Some(h),
                Err(e) => return (self.fail_now(&e), call),
            },
            None => None,
        };
        let batch = Batch::of(&call, head);
        let ran = {
            // A failure from here may leave a release in doubt.
            self.releasing();
            let mut q = sqlx::query(&batch.sql);
            for (unit, records) in call.iter().zip(&batch.records) {
                q = deferred::bind(deferred::values(&unit.inserts), q);
                for rec in records {
                    q = audit::bind_record(q, rec);
                }
            }
            self.gc.handed_calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match self.conn() {
                Some(c) => count_statements(sqlx::Executor::fetch_many(c, q)).await,
                None => (0, Some(StoreError::Backend("the unit has no connection".into()))),
            }
        };
        let (statements, error) = ran;
        // Units whose release ran are in the group.
        let released = batch.ends.iter().take_while(|e| e.release <= statements).count();
        let mut units = call.into_iter();
        for (i, unit) in units.by_ref().take(released).enumerate() {
            let joined = self.released_handed(batch.heads[i]);
            unit.answer(Ok(joined));
        }
        let Some(e) = error else {
            if released == batch.ends.len() {
                self.releasing = false;
                return (Ran::Answered, units.collect());
            }
            // The call stopped short without an error: in doubt.
            let e = StoreError::Backend("a call of handed units ended early".into());
            return (self.fail_now(&e), units.collect());
        };
        let failed_own = batch.ends.get(released).is_some_and(|end| statements < end.own);
        let Some(failed) = units.next().filter(|_| failed_own) else {
            // A release (or its reopening) failed: the group is in doubt.
            let rest: Vec<Handed> = units.collect();
            return (self.fail_now(&e), rest);
        };
        // The unit's own statement failed: back to its savepoint, which
        // stays open for the next unit.
        if let Err(rollback) = self.run(ROLLBACK_TO).await {
            failed.answer(Err(e));
            return (self.fail_now(&rollback), units.collect());
        }
        self.releasing = false;
        failed.answer(Err(e));
        (Ran::Answered, units.collect())
    }

    /// A handed unit's release ran: it is a member of the group, `head` the
    /// chain head after its records.
    fn released_handed(&mut self, head: Option<ChainHead>) -> watch::Receiver<Option<Outcome>> {
        self.advance_head(head);
        self.group.released.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.gc.units.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.gc.handed_units.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.group.outcome.subscribe()
    }

    /// Reads the chain head inside the group's transaction (when opening it
    /// did not: a head missing or malformed is reported here).
    async fn read_chain_head(&mut self) -> StoreResult<ChainHead> {
        let Some(c) = self.conn() else {
            return Err(StoreError::Backend("the unit has no connection".into()));
        };
        audit::read_head(c).await
    }

    /// Fails the group from the leader: every member is told.
    fn fail_now(&mut self, e: &StoreError) -> Ran {
        self.fail_group_now(e);
        Ran::GroupFailed(Failure::of(e))
    }
}

/// Drives a call's result stream: how many statements ran to the end, and
/// the error that stopped it, if one did.
async fn count_statements<'e, R>(
    mut stream: futures::stream::BoxStream<'e, Result<Either<sqlx::sqlite::SqliteQueryResult, R>, sqlx::Error>>,
) -> (usize, Option<StoreError>) {
    let mut done = 0;
    while let Some(item) = stream.next().await {
        match item {
            Ok(Either::Left(_)) => done += 1,
            Ok(Either::Right(_)) => {}
            Err(e) => return (done, Some(backend(e))),
        }
    }
    (done, None)
}

/// Where one handed unit's statements end in its call, counted from the
/// call's first statement.
struct Ends {
    /// After its own inserts and records.
    own: usize,
    /// After its release and the next savepoint.
    release: usize,
}

/// One call's text and what goes with it.
struct Batch {
    sql: String,
    /// Each unit's records, sealed one after the other.
    records: Vec<Vec<AuditRecord>>,
    /// The chain head after each unit's records (`None`: it had none).
    heads: Vec<Option<ChainHead>>,
    ends: Vec<Ends>,
}

/// A call's text as it is built: statements joined, each one's
/// placeholders numbered after the previous ones'.
#[derive(Default)]
struct Text {
    sql: String,
    placeholders: usize,
    statements: usize,
}

impl Text {
    /// Appends `text`; returns how many statements the call has now.
    fn push(&mut self, text: &str) -> usize {
        if !self.sql.is_empty() {
            self.sql.push_str("; ");
        }
        self.sql.push_str(&deferred::shifted(text, self.placeholders));
        self.placeholders += deferred::highest_placeholder(text);
        self.statements += statements_in(text);
        self.statements
    }
}

impl Batch {
    fn of(call: &[Handed], mut head: Option<ChainHead>) -> Batch {
        let mut text = Text::default();
        let mut records = Vec::with_capacity(call.len());
        let mut heads = Vec::with_capacity(call.len());
        let mut ends = Vec::with_capacity(call.len());
        for unit in call {
            for insert in &unit.inserts {
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
                text.push(audit::INSERT);
            }
            let own = text.statements;
            let release = text.push(RELEASE_AND_REOPEN);
            heads.push(if sealed.is_empty() { None } else { head });
            records.push(sealed);
            ends.push(Ends { own, release });
        }
        Batch {
            sql: text.sql,
            records,
            heads,
            ends,
        }
    }
}

/// How many statements SQLite runs for `sql` (our texts hold no `;` but
/// between statements).
pub(crate) fn statements_in(sql: &str) -> usize {
    sql.split(';').filter(|s| !s.trim().is_empty()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group_commit::tests::{event, exec, insert, keys, settle, store, verified_chain};
    use crate::SqlStore;
    use signet_core::store::Refusal;
    use signet_core::unit_of_work::AuditAppend;

    /// A unit that never needs the writer: `write` (an insert, deferred)
    /// and two audit records, then its commit, which hands them over.
    fn handed(store: &Arc<SqlStore>, k: &str, write: &'static str) -> tokio::task::JoinHandle<StoreResult<()>> {
        let (store, k) = (store.clone(), k.to_owned());
        tokio::spawn(async move {
            let mut tx = store.begin_tx().await?;
            tx.write_later(Deferred {
                sql: write,
                values: vec![k.as_str().into()],
            })
            .await?;
            for at in [1, 2] {
                tx.append_audit(
                    &event(&k),
                    uuid::Uuid::new_v4(),
                    signet_core::clock::Timestamp::from_millis(at),
                )
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
        assert_eq!(keys(&store).await.len(), 48);
        assert_eq!(verified_chain(&store).await, 96);
    }

    /// While a unit holds the writer, four units are handed behind it and
    /// go in one leader's calls: B's checked write is refused, C's insert
    /// breaks a foreign key. Each takes only its own work: A and D commit
    /// with the holder in one group, their records chained without a gap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handed_unit_that_fails_takes_only_its_own_work() {
        let (store, _dir) = store().await;
        let mut hold = store.begin_tx().await.unwrap();
        insert(&mut hold, "taken").await.unwrap();
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
        assert_eq!(after.handed_calls - before.handed_calls, 3, "A+B, then C, then D");
        assert_eq!(keys(&store).await, ["a", "d", "taken"]);
        assert_eq!(verified_chain(&store).await, 4, "A's two and D's two");
    }

    /// Handed units released into a group whose `COMMIT` fails are told so,
    /// as every other member: nothing of the group is acknowledged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handed_units_in_a_group_whose_commit_fails_are_not_acknowledged() {
        let (store, _dir) = store().await;
        let mut x = store.begin_tx().await.unwrap();
        exec(&mut x, "PRAGMA defer_foreign_keys = ON").await.unwrap();
        exec(&mut x, "INSERT INTO gc_child (k) VALUES ('nobody')")
            .await
            .unwrap();
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

    #[test]
    fn statements_are_counted_as_sqlite_runs_them() {
        assert_eq!(statements_in(audit::INSERT), 1);
        assert_eq!(statements_in(RELEASE_AND_REOPEN), 2);
        assert_eq!(statements_in("INSERT INTO a VALUES ($1); INSERT INTO b VALUES ($2)"), 2);
    }
}
