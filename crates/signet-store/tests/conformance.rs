//! The storage conformance suite: every check runs against SQLite, and
//! against PostgreSQL when `SIGNET_TEST_DATABASE_URL` is set (each test in a
//! fresh database of its own). Both backends must behave identically. When the
//! variable is unset, the PostgreSQL tests are listed as ignored with the
//! reason (see build.rs), so a SQLite-only run never looks like a full one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use signet_core::admin_token::AdminToken;
use signet_core::audit::{Actor, AuditEvent, EventType, Outcome, Verifier};
use signet_core::clock::Timestamp;
use signet_core::credential::{PasskeyUse, Removal};
use signet_core::flow::{Flow, FlowId, FlowKind, FlowState};
use signet_core::outbox::{Channel, DeliveryStatus, Lease, Message, OutboxDepth, EXPIRED_ERROR};
use signet_core::secret::{PlainToken, TokenHash, TokenKind};
use signet_core::session::{Aal, Session, SessionId, SessionMode, SessionScope};
use signet_core::store::*;
use signet_core::unit_of_work::{NewCode, Tx, UnitOfWork};
use signet_core::user::{NewUser, User, UserId, UserStatus};
use signet_store::scratch::ScratchDb;
use signet_store::SqlStore;
use uuid::Uuid;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn at(secs: u64) -> Timestamp {
    T0.plus(Duration::from_secs(secs))
}

fn user(email: &str) -> User {
    NewUser::parse(email, Some("+14155550100"), Some("Test User"), &["staff".into()])
        .unwrap()
        .into_user(UserId::new(), T0)
}

fn session(user: UserId, token: &PlainToken) -> Session {
    Session {
        id: SessionId::new(),
        user_id: user,
        token_hash: token.hash(),
        aal: Aal::Aal2,
        amr: vec!["hwk".into(), "user".into()],
        phishing_resistant: true,
        auth_time: T0,
        created_at: T0,
        last_seen_at: T0,
        idle_timeout: Duration::from_secs(1800),
        absolute_expires_at: at(12 * 3600),
        tier: "standard".into(),
        scope: SessionScope::Full,
        mode: SessionMode::Api,
        ip: Some("127.0.0.1".into()),
        device: "Chrome on Linux".into(),
        credential_id: None,
        step_up_action: None,
    }
}

fn flow(user: Option<UserId>) -> Flow {
    Flow {
        id: FlowId::new(),
        kind: FlowKind::Login,
        state: FlowState {
            v: signet_core::flow::FLOW_STATE_VERSION,
            journey: signet_core::flow::Journey::Login,
            demand: signet_core::flow::Demand::level(Aal::Aal2),
            asked: signet_core::flow::Demand::level(Aal::Aal1),
            continuation: signet_core::flow::Continuation::Url("http://localhost/account".into()),
            user_id: user,
            identified: user.is_some(),
            identifier_hash: None,
            tier: "standard".into(),
            mode: SessionMode::Browser,
            steps: vec![],
            scratch: Default::default(),
        },
        version: 0,
        binding: Some(TokenHash::of(b"browser")),
        created_at: T0,
        expires_at: at(600),
        stored: false,
    }
}

fn secret(user: UserId, token: &PlainToken, purpose: SecretPurpose) -> OneTimeSecret {
    OneTimeSecret {
        hash: token.hash(),
        purpose,
        user_id: user,
        flow_id: None,
        created_at: T0,
        expires_at: at(3600),
        consumed_at: None,
        issued_by: "cli".into(),
    }
}

/// A login event for `user`, to be appended with a session write.
fn login_event(user: UserId) -> AuditEvent {
    AuditEvent::new(EventType::LoginSucceeded, Actor::User(user), Outcome::Success).user(user)
}

/// Each write of a unit of work in a unit of its own, for the checks that
/// are about one operation; atomicity has checks of its own below.
#[async_trait::async_trait]
trait Autocommit {
    async fn tx(&self) -> Tx;
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        let mut tx = self.tx().await;
        tx.insert_user(u).await?;
        tx.commit().await
    }
    async fn insert_session(&self, x: &Session) -> StoreResult<()> {
        let mut tx = self.tx().await;
        tx.insert_session(x).await?;
        tx.commit().await
    }
    async fn delete_session(&self, id: SessionId) -> StoreResult<bool> {
        let mut tx = self.tx().await;
        let r = tx.delete_session(id).await?;
        tx.commit().await.map(|()| r)
    }
    async fn delete_user_session(&self, u: UserId, id: SessionId) -> StoreResult<bool> {
        let mut tx = self.tx().await;
        let r = tx.delete_user_session(u, id).await?;
        tx.commit().await.map(|()| r)
    }
    async fn delete_user_sessions(&self, u: UserId) -> StoreResult<u64> {
        let mut tx = self.tx().await;
        let r = tx.delete_user_sessions(u).await?;
        tx.commit().await.map(|()| r)
    }
    async fn delete_credential_sessions(&self, u: UserId, c: Uuid) -> StoreResult<u64> {
        let mut tx = self.tx().await;
        let r = tx.delete_credential_sessions(u, c).await?.len() as u64;
        tx.commit().await.map(|()| r)
    }
    async fn issue_secrets(&self, x: &[OneTimeSecret], now: Timestamp) -> StoreResult<()> {
        let mut tx = self.tx().await;
        tx.issue_secrets(x, now).await?;
        tx.commit().await
    }
    async fn revoke_flow_secrets(&self, f: FlowId, now: Timestamp) -> StoreResult<u64> {
        let mut tx = self.tx().await;
        let r = tx.revoke_flow_secrets(f, now).await?;
        tx.commit().await.map(|()| r)
    }
    async fn insert_passkey(&self, p: &signet_core::credential::Passkey) -> StoreResult<()> {
        let mut tx = self.tx().await;
        tx.insert_passkey(p).await?;
        tx.commit().await
    }
    async fn rename_passkey(&self, u: UserId, id: Uuid, name: &str) -> StoreResult<bool> {
        let mut tx = self.tx().await;
        let r = tx.rename_passkey(u, id, name).await?;
        tx.commit().await.map(|()| r)
    }
    async fn remove_passkey(&self, u: UserId, id: Uuid, keep: u32) -> StoreResult<Removal> {
        let mut tx = self.tx().await;
        let r = tx.remove_passkey(u, id, keep).await?;
        tx.commit().await.map(|()| r)
    }
    async fn insert_admin_token(&self, t: &AdminToken) -> StoreResult<()> {
        let mut tx = self.tx().await;
        tx.insert_admin_token(t).await?;
        tx.commit().await
    }
    async fn revoke_admin_token(&self, name: &str, now: Timestamp) -> StoreResult<bool> {
        let mut tx = self.tx().await;
        let r = tx.revoke_admin_token(name, now).await?;
        tx.commit().await.map(|()| r)
    }
    async fn append_audit(&self, ev: &AuditEvent, id: Uuid, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.tx().await;
        tx.append_audit(ev, id, now).await?;
        tx.commit().await
    }
}

#[async_trait::async_trait]
impl Autocommit for Arc<SqlStore> {
    async fn tx(&self) -> Tx {
        self.begin().await.unwrap()
    }
}

/// How many of `tasks` (racing for one thing) answered `true`.
async fn winners(tasks: Vec<tokio::task::JoinHandle<bool>>) -> usize {
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count()
}

/// How many of `tasks` (units racing for one thing) committed; every other
/// one must have been refused for `refusal`, nothing else.
async fn committed_refusing_the_rest(tasks: Vec<tokio::task::JoinHandle<StoreResult<()>>>, refusal: Refusal) -> usize {
    let mut committed = 0;
    for t in futures::future::join_all(tasks).await {
        match t.unwrap() {
            Ok(()) => committed += 1,
            Err(StoreError::Refused(r)) if r == refusal => {}
            Err(e) => panic!("a racer failed otherwise: {e:?}"),
        }
    }
    committed
}

/// Appends `ev` inside `tx`, the way use cases do.
async fn audit_in(tx: &mut Tx, ev: &AuditEvent) -> StoreResult<()> {
    tx.append_audit(ev, Uuid::new_v4(), at(1)).await.map(|_| ())
}

fn message(n: u32) -> Message {
    Message {
        id: Uuid::new_v4(),
        channel: Channel::Email,
        recipient: format!("user{n}@example.com"),
        subject: "Hello".into(),
        text_body: Some("text with a secret link".into()),
        html_body: Some("<p>html</p>".into()),
        template: "invitation".into(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        created_at: at(u64::from(n)),
        next_attempt_at: at(u64::from(n)),
        sent_at: None,
        last_error: None,
        expires_at: None,
    }
}

/// A lease held by a fresh token until `until`.
fn lease(until: Timestamp) -> Lease {
    Lease {
        token: Uuid::new_v4(),
        until,
    }
}

/// A message queued leased (handed to the local worker without a claim)
/// is held from its commit on exactly as a claimed one: no claim takes it
/// while the lease lasts, its holder records it, and once the lease runs
/// out (the node died before sending) any worker claims it again.
async fn outbox_queued_leased_is_held_like_a_claim(s: Arc<SqlStore>) {
    let (handed, lost) = (message(1), message(2));
    let (kept, dropped) = (lease(at(61)), lease(at(62)));
    let mut tx = s.begin().await.unwrap();
    for (m, l) in [(&handed, kept), (&lost, dropped)] {
        let mut m = m.clone();
        m.attempts = 1;
        tx.enqueue_message(&m, Some(l)).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert!(
        EachInAUnit(&s)
            .claim_due_messages(at(10), lease(at(70)), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased from the start"
    );
    let mut tx = s.begin().await.unwrap();
    assert!(
        !tx.mark_message_sent(handed.id, Uuid::new_v4(), at(11), true)
            .await
            .unwrap(),
        "only its holder records it"
    );
    assert!(tx.mark_message_sent(handed.id, kept.token, at(11), true).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        s.message(handed.id).await.unwrap().unwrap().status,
        DeliveryStatus::Sent
    );
    let again = EachInAUnit(&s)
        .claim_due_messages(at(62), lease(at(122)), 10)
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|m| (m.id, m.attempts)).collect::<Vec<_>>(),
        vec![(lost.id, 2)],
        "the one never sent, once its lease ran out"
    );
}

/// The worker records results and claims again in one unit of work: the
/// same conditional statements, committed together or not at all.
async fn outbox_records_and_claims_in_one_unit(s: Arc<SqlStore>) {
    let (m1, m2, m3) = (message(1), message(2), message(3));
    for m in [&m1, &m2, &m3] {
        s.enqueue_message(m).await.unwrap();
    }
    let first = lease(at(65));
    let mut tx = s.begin().await.unwrap();
    let claimed = tx.claim_due_messages(at(5), first, 2).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(claimed.len(), 2);
    let (held, left) = (&claimed[0], &claimed[1]);

    // A unit that is rolled back records and claims nothing.
    let mut tx = s.begin().await.unwrap();
    assert!(tx.mark_message_sent(held.id, first.token, at(7), true).await.unwrap());
    assert_eq!(tx.claim_due_messages(at(7), lease(at(67)), 5).await.unwrap().len(), 1);
    tx.rollback().await.unwrap();
    assert_eq!(
        s.message(held.id).await.unwrap().unwrap().status,
        DeliveryStatus::Pending
    );

    let second = lease(at(68));
    let mut tx = s.begin().await.unwrap();
    assert!(tx.mark_message_sent(held.id, first.token, at(8), true).await.unwrap());
    assert!(
        !tx.mark_message_sent(left.id, Uuid::new_v4(), at(8), true)
            .await
            .unwrap(),
        "not the holder"
    );
    assert!(tx
        .mark_message_failed(left.id, first.token, "451 later", at(30), false)
        .await
        .unwrap());
    let again = tx.claim_due_messages(at(8), second, 5).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        again.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![m3.id],
        "only the unleased, due one"
    );
    let sent = s.message(held.id).await.unwrap().unwrap();
    assert_eq!(
        (sent.status, sent.sent_at, sent.text_body),
        (DeliveryStatus::Sent, Some(at(8)), None)
    );
    let failed = s.message(left.id).await.unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.next_attempt_at),
        (DeliveryStatus::Pending, at(30))
    );
    assert_eq!(failed.last_error.as_deref(), Some("451 later"));
}

// ---------------------------------------------------------------- checks

async fn users_are_unique_by_case_insensitive_email(s: Arc<SqlStore>) {
    let u = user("Alice@Example.com");
    s.insert_user(&u).await.unwrap();
    let by_id = s.user_by_id(u.id).await.unwrap().unwrap();
    assert_eq!(by_id.email.as_str(), "Alice@Example.com");
    assert_eq!(by_id.roles, vec!["staff"]);
    assert_eq!(by_id.phone.unwrap().as_str(), "+14155550100");
    let by_email = s.user_by_email("alice@example.com").await.unwrap().unwrap();
    assert_eq!(by_email.id, u.id);
    let dup = user("ALICE@example.COM");
    match s.insert_user(&dup).await {
        Err(StoreError::Conflict(signet_core::ErrorCode::EmailTaken)) => {}
        other => panic!("expected email_taken, got {other:?}"),
    }
    assert!(s.user_by_id(UserId::new()).await.unwrap().is_none());
}

async fn users_list_in_pages(s: Arc<SqlStore>) {
    for e in ["c@x.io", "a@x.io", "b@x.io", "d@x.io"] {
        s.insert_user(&user(e)).await.unwrap();
    }
    let first = s.list_users(None, 3).await.unwrap();
    let emails: Vec<_> = first.iter().map(|u| u.email.as_str().to_owned()).collect();
    assert_eq!(emails, ["a@x.io", "b@x.io", "c@x.io"]);
    let rest = s.list_users(Some("c@x.io"), 3).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].email.as_str(), "d@x.io");
}

async fn disabling_a_user_ends_all_their_sessions(s: Arc<SqlStore>) {
    let u = user("dis@x.io");
    s.insert_user(&u).await.unwrap();
    let other = user("other@x.io");
    s.insert_user(&other).await.unwrap();
    for _ in 0..3 {
        s.insert_session(&session(u.id, &PlainToken::generate(TokenKind::Session)))
            .await
            .unwrap();
    }
    let keep = PlainToken::generate(TokenKind::Session);
    s.insert_session(&session(other.id, &keep)).await.unwrap();
    let ev = AuditEvent::new(EventType::UserDisabled, Actor::Cli, Outcome::Success).user(u.id);
    let head = audit_count(&s).await;
    let mut tx = s.tx().await;
    assert!(tx.set_user_status(u.id, UserStatus::Disabled, at(1)).await.unwrap());
    audit_in(&mut tx, &ev).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.user_by_id(u.id).await.unwrap().unwrap().status, UserStatus::Disabled);
    assert!(s.list_user_sessions(u.id, at(2)).await.unwrap().is_empty());
    assert!(s.session_by_token(&keep.hash()).await.unwrap().is_some());
    assert_eq!(audit_count(&s).await, head + 1, "the record came with the change");
    let mut tx = s.tx().await;
    assert!(!tx
        .set_user_status(UserId::new(), UserStatus::Disabled, at(1))
        .await
        .unwrap());
    tx.rollback().await.unwrap();
    assert_eq!(audit_count(&s).await, head + 1, "no user, no record");
}

async fn sessions_round_trip_and_rotate(s: Arc<SqlStore>) {
    let u = user("sess@x.io");
    s.insert_user(&u).await.unwrap();
    let tok = PlainToken::generate(TokenKind::Session);
    let mut sess = session(u.id, &tok);
    sess.credential_id = Some(Uuid::new_v4());
    sess.step_up_action = Some("add_credential".into());
    s.insert_session(&sess).await.unwrap();
    let got = s.session_by_token(&tok.hash()).await.unwrap().unwrap();
    assert_eq!(got.id, sess.id);
    assert_eq!(got.aal, Aal::Aal2);
    assert_eq!(got.amr, vec!["hwk", "user"]);
    assert!(got.phishing_resistant);
    assert_eq!(got.idle_timeout, Duration::from_secs(1800));
    assert_eq!(got.credential_id, sess.credential_id);
    assert_eq!(got.step_up_action.as_deref(), Some("add_credential"));
    // The same read joined with its user, as every authenticated request
    // makes it.
    let (joined, owner) = s.session_with_user_by_token(&tok.hash()).await.unwrap().unwrap();
    assert_eq!(
        (joined.id, joined.created_at, joined.user_id),
        (sess.id, sess.created_at, u.id)
    );
    let owner = owner.expect("the session's user");
    assert_eq!(
        (owner.id, owner.email.as_str(), owner.created_at),
        (u.id, "sess@x.io", u.created_at)
    );
    assert!(s
        .session_with_user_by_token(&PlainToken::generate(TokenKind::Session).hash())
        .await
        .unwrap()
        .is_none());
    assert_eq!(got.ip.as_deref(), Some("127.0.0.1"));

    s.touch_session(sess.id, at(60)).await.unwrap();
    assert_eq!(
        s.session_by_token(&tok.hash()).await.unwrap().unwrap().last_seen_at,
        at(60)
    );
    // A touch never moves last_seen backwards.
    s.touch_session(sess.id, at(30)).await.unwrap();
    assert_eq!(
        s.session_by_token(&tok.hash()).await.unwrap().unwrap().last_seen_at,
        at(60)
    );

    let tok2 = PlainToken::generate(TokenKind::Session);
    let rotated = session(u.id, &tok2);
    let ev = login_event(u.id);
    let head = audit_count(&s).await;
    let mut tx = s.tx().await;
    assert!(tx.delete_session(sess.id).await.unwrap());
    tx.insert_session(&rotated).await.unwrap();
    audit_in(&mut tx, &ev).await.unwrap();
    tx.commit().await.unwrap();
    assert!(s.session_by_token(&tok.hash()).await.unwrap().is_none());
    assert!(s.session_by_token(&tok2.hash()).await.unwrap().is_some());
    assert_eq!(audit_count(&s).await, head + 1, "the event came with the session");

    // A session write that fails takes its audit record with it, and
    // poisons its unit of work: nothing more can be written or committed.
    // On SQLite the insert goes with the unit's next call on the writer
    // (`SqlTx::write_later`), so it fails there at the latest.
    let mut tx = s.tx().await;
    audit_in(&mut tx, &ev).await.unwrap();
    let duplicate = tx.insert_session(&rotated).await;
    assert!(duplicate.is_err() || s.backend() == "sqlite", "duplicate id");
    let tok3 = PlainToken::generate(TokenKind::Session);
    // PostgreSQL: refused, the unit is poisoned; SQLite: waits with the
    // duplicate.
    let _ = tx.insert_session(&session(u.id, &tok3)).await;
    assert!(
        tx.delete_session(sess.id).await.is_err(),
        "the duplicate failed by this operation at the latest, and poisoned the unit"
    );
    assert!(tx.commit().await.is_err());
    assert!(s.session_by_token(&tok3.hash()).await.unwrap().is_none());
    assert_eq!(audit_count(&s).await, head + 1);

    // A deferred insert that fails at the commit, in the record's call,
    // fails the commit: neither the session nor the record is stored.
    let mut tx = s.tx().await;
    tx.insert_session(&session(u.id, &tok3)).await.unwrap();
    // (PostgreSQL refuses the duplicate at once and the unit is poisoned.)
    let _ = tx.insert_session(&rotated).await;
    let _ = audit_in(&mut tx, &ev).await;
    assert!(tx.commit().await.is_err(), "duplicate id");
    assert!(s.session_by_token(&tok3.hash()).await.unwrap().is_none());
    assert_eq!(audit_count(&s).await, head + 1);

    // And a unit's operations see the session it has just inserted.
    let tok4 = PlainToken::generate(TokenKind::Session);
    let fourth = session(u.id, &tok4);
    let mut tx = s.tx().await;
    tx.insert_session(&fourth).await.unwrap();
    assert!(
        tx.delete_session(fourth.id).await.unwrap(),
        "inserted before the next operation"
    );
    tx.insert_session(&fourth).await.unwrap();
    audit_in(&mut tx, &ev).await.unwrap();
    tx.commit().await.unwrap();
    assert!(s.session_by_token(&tok4.hash()).await.unwrap().is_some());
    assert_eq!(audit_count(&s).await, head + 2, "the record came with the session");

    // Another user cannot end this session by id.
    let mallory = user("mallory@x.io");
    s.insert_user(&mallory).await.unwrap();
    assert!(!s.delete_user_session(mallory.id, rotated.id).await.unwrap());
    assert!(s.delete_user_session(u.id, rotated.id).await.unwrap());
    assert!(!s.delete_session(rotated.id).await.unwrap());
}

async fn sessions_expire_and_end_with_their_credential(s: Arc<SqlStore>) {
    let u = user("exp@x.io");
    s.insert_user(&u).await.unwrap();
    let cred = Uuid::new_v4();
    let mut a = session(u.id, &PlainToken::generate(TokenKind::Session));
    a.credential_id = Some(cred);
    let b = session(u.id, &PlainToken::generate(TokenKind::Session));
    s.insert_session(&a).await.unwrap();
    s.insert_session(&b).await.unwrap();
    assert_eq!(s.list_user_sessions(u.id, at(10)).await.unwrap().len(), 2);
    // One of them by id, only as its own user's and only while live.
    assert_eq!(
        s.user_session(u.id, b.id, at(10)).await.unwrap().map(|x| x.id),
        Some(b.id)
    );
    assert!(s.user_session(UserId::new(), b.id, at(10)).await.unwrap().is_none());
    assert!(s.user_session(u.id, b.id, at(1801)).await.unwrap().is_none());
    // Idle timeout (30 min) passes: both are listed as gone and purged.
    assert!(s.list_user_sessions(u.id, at(1801)).await.unwrap().is_empty());
    // Only the user's own sessions with that credential go.
    assert_eq!(s.delete_credential_sessions(UserId::new(), cred).await.unwrap(), 0);
    assert_eq!(s.delete_credential_sessions(u.id, cred).await.unwrap(), 1);
    assert_eq!(s.purge_expired_sessions(at(1801)).await.unwrap(), 1);
    assert_eq!(s.delete_user_sessions(u.id).await.unwrap(), 0);
}

async fn flows_update_by_compare_and_swap_and_expire(s: Arc<SqlStore>) {
    let u = user("flow@x.io");
    s.insert_user(&u).await.unwrap();
    let mut f = flow(Some(u.id));
    f.state
        .scratch
        .insert("passkey".into(), serde_json::json!({"challenge": "abc"}));
    s.insert_flow(&f).await.unwrap();
    let got = s.flow(f.id, at(1)).await.unwrap().unwrap();
    assert_eq!(got.state, f.state);
    assert_eq!(got.binding, f.binding);

    let mut next = got.clone();
    next.state.steps.push(signet_core::flow::FlowStep {
        method: signet_core::method::MethodName::Passkey,
        proof: signet_core::session::Proof {
            aal: Aal::Aal2,
            amr: vec!["hwk".into()],
            phishing_resistant: true,
            credential_id: None,
            user_id: None,
        },
        at: at(2),
    });
    assert!(s.update_flow(&next, at(2)).await.unwrap());
    // The same (now stale) version loses.
    assert!(!s.update_flow(&next, at(2)).await.unwrap());
    let stored = s.flow(f.id, at(3)).await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.state.steps, next.state.steps, "the typed steps round-trip");

    // An update can extend the flow's life (a code sent late in it).
    let mut longer = stored.clone();
    longer.expires_at = stored.expires_at.plus(Duration::from_secs(60));
    assert!(s.update_flow(&longer, at(3)).await.unwrap());
    let extended = s.flow(f.id, at(3)).await.unwrap().unwrap();
    assert_eq!(extended.expires_at, longer.expires_at);
    assert!(s.flow(f.id, stored.expires_at).await.unwrap().is_some());

    // Expired flows are invisible and can no longer be updated.
    assert!(s.flow(f.id, at(700)).await.unwrap().is_none());
    assert!(!s.update_flow(&extended, at(700)).await.unwrap());

    let old = flow(None);
    s.insert_flow(&old).await.unwrap();
    assert_eq!(s.purge_expired_flows(at(601)).await.unwrap(), 1);
}

/// A flow that lives only in its handle is finished once: of concurrent
/// finishes one wins, the id is remembered, and a stored row goes with it.
async fn a_flow_is_finished_once_and_remembered(s: Arc<SqlStore>) {
    let f = flow(None);
    assert!(!s.is_finished(f.id).await.unwrap());
    assert!(matches!(
        s.flow_or_finished(f.id, at(1)).await.unwrap(),
        FlowLookup::Absent
    ));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut tx = s.tx().await;
                let won = tx.finish_flow(f.id, at(7200)).await.unwrap();
                tx.commit().await.unwrap();
                won
            })
        })
        .collect();
    let wins = winners(tasks).await;
    assert_eq!(wins, 1);
    assert!(s.is_finished(f.id).await.unwrap());
    assert!(matches!(
        s.flow_or_finished(f.id, at(1)).await.unwrap(),
        FlowLookup::Finished
    ));

    // A stored flow: its first progress stores it once, and finishing it
    // deletes the row.
    let g = flow(None);
    let mut tx = s.tx().await;
    tx.insert_flow(&g).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.tx().await;
    assert!(
        matches!(tx.insert_flow(&g).await, Err(StoreError::Conflict(_))),
        "stored twice"
    );
    drop(tx);
    assert!(s.flow(g.id, at(1)).await.unwrap().is_some());
    match s.flow_or_finished(g.id, at(1)).await.unwrap() {
        FlowLookup::Stored(stored) => assert_eq!((stored.id, stored.version), (g.id, g.version)),
        other => panic!("the stored flow, not {other:?}"),
    }
    let mut tx = s.tx().await;
    assert!(tx.finish_flow(g.id, at(7200)).await.unwrap());
    tx.commit().await.unwrap();
    assert!(s.flow(g.id, at(1)).await.unwrap().is_none());
    assert!(s.is_finished(g.id).await.unwrap());
    assert!(matches!(
        s.flow_or_finished(g.id, at(1)).await.unwrap(),
        FlowLookup::Finished
    ));
    // Finishing it again loses, and leaves the mark.
    let mut tx = s.tx().await;
    assert!(!tx.finish_flow(g.id, at(7200)).await.unwrap());
    tx.commit().await.unwrap();
    // Forgotten once the flow could no longer be live.
    s.purge_expired_flows(at(7201)).await.unwrap();
    assert!(!s.is_finished(g.id).await.unwrap());
}

async fn one_time_secrets_are_used_once_and_scoped_by_purpose(s: Arc<SqlStore>) {
    let u = user("sec@x.io");
    s.insert_user(&u).await.unwrap();
    let tok = PlainToken::generate(TokenKind::Invitation);
    s.issue_secrets(&[secret(u.id, &tok, SecretPurpose::Invitation)], at(0))
        .await
        .unwrap();
    assert!(s
        .peek_secret(SecretPurpose::Invitation, &tok.hash())
        .await
        .unwrap()
        .is_some());
    // Another purpose never matches.
    assert!(s
        .consume_secret(SecretPurpose::MagicLink, &tok.hash(), at(1))
        .await
        .unwrap()
        .is_none());
    // Expired: not consumable.
    assert!(s
        .consume_secret(SecretPurpose::Invitation, &tok.hash(), at(3600))
        .await
        .unwrap()
        .is_none());
    let won = s
        .consume_secret(SecretPurpose::Invitation, &tok.hash(), at(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(won.user_id, u.id);
    assert_eq!(won.consumed_at, Some(at(1)));
    assert!(s
        .consume_secret(SecretPurpose::Invitation, &tok.hash(), at(2))
        .await
        .unwrap()
        .is_none());
    let peeked = s
        .peek_secret(SecretPurpose::Invitation, &tok.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(peeked.consumed_at, Some(at(1)));

    // A new invitation replaces the live one.
    let a = PlainToken::generate(TokenKind::Invitation);
    let b = PlainToken::generate(TokenKind::Invitation);
    s.issue_secrets(&[secret(u.id, &a, SecretPurpose::Invitation)], at(4))
        .await
        .unwrap();
    s.issue_secrets(&[secret(u.id, &b, SecretPurpose::Invitation)], at(5))
        .await
        .unwrap();
    assert!(s
        .consume_secret(SecretPurpose::Invitation, &a.hash(), at(6))
        .await
        .unwrap()
        .is_none());
    // Another user's invitation is untouched by it.
    let v = user("sec2@x.io");
    s.insert_user(&v).await.unwrap();
    let c = PlainToken::generate(TokenKind::Invitation);
    s.issue_secrets(&[secret(v.id, &c, SecretPurpose::Invitation)], at(6))
        .await
        .unwrap();
    assert!(s
        .consume_secret(SecretPurpose::Invitation, &b.hash(), at(7))
        .await
        .unwrap()
        .is_some());
}

async fn secrets_issued_at_once_for_one_flow_leave_exactly_one_live(s: Arc<SqlStore>) {
    let u = user("issue-race@x.io");
    s.insert_user(&u).await.unwrap();
    let f = FlowId::new();
    let tokens: Vec<PlainToken> = (0..20).map(|_| PlainToken::generate(TokenKind::MagicLink)).collect();
    let tasks: Vec<_> = tokens
        .iter()
        .map(|t| {
            let s = s.clone();
            let mut sec = secret(u.id, t, SecretPurpose::EmailCode);
            sec.flow_id = Some(f);
            tokio::spawn(async move {
                // As the email methods do: a lost race is issued again.
                loop {
                    match s.issue_secrets(std::slice::from_ref(&sec), at(1)).await {
                        Ok(()) => break,
                        Err(StoreError::Conflict(_)) => tokio::task::yield_now().await,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t.unwrap();
    }
    let mut live = 0;
    for t in &tokens {
        if s.consume_secret(SecretPurpose::EmailCode, &t.hash(), at(2))
            .await
            .unwrap()
            .is_some()
        {
            live += 1;
        }
    }
    assert_eq!(live, 1, "twenty issues for one flow leave one valid code");
}

async fn fifty_concurrent_redemptions_give_exactly_one_session(s: Arc<SqlStore>) {
    let u = user("race@x.io");
    s.insert_user(&u).await.unwrap();
    let tok = PlainToken::generate(TokenKind::Invitation);
    s.issue_secrets(&[secret(u.id, &tok, SecretPurpose::Invitation)], at(0))
        .await
        .unwrap();
    let hash = tok.hash();
    let head = audit_count(&s).await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let sess = session(u.id, &PlainToken::generate(TokenKind::Session));
                let ev = login_event(u.id);
                redeem(&s, &hash, &sess, &ev).await
            })
        })
        .collect();
    let wins = winners(tasks).await;
    assert_eq!(wins, 1);
    assert_eq!(s.list_user_sessions(u.id, at(2)).await.unwrap().len(), 1);
    assert_eq!(audit_count(&s).await, head + 1, "one audit record, for the one session");
}

/// A flow's one-time code consumed with the checked write (ADR 0035; on
/// SQLite sent with the unit's commit): another flow's or another user's
/// attempt is refused as `code_used` and leaves the code usable; of twenty
/// units racing with the right flow and user, each with a session, one
/// commits and the others are refused with nothing left behind.
async fn a_flows_code_is_redeemed_by_exactly_one_racer_and_only_by_its_flow_and_user(s: Arc<SqlStore>) {
    let u = user("code-race@x.io");
    s.insert_user(&u).await.unwrap();
    let other = user("code-other@x.io");
    s.insert_user(&other).await.unwrap();
    let flow = FlowId::new();
    let tok = PlainToken::generate(TokenKind::Invitation);
    let code = OneTimeSecret {
        flow_id: Some(flow),
        ..secret(u.id, &tok, SecretPurpose::EmailCode)
    };
    s.issue_secrets(&[code], at(0)).await.unwrap();
    let hash = tok.hash();
    let redeem = |flow: FlowId, who: Option<UserId>, when: u64| {
        let s = s.clone();
        async move {
            let mut tx = s.begin().await.unwrap();
            tx.consume_flow_code_or_refuse(SecretPurpose::EmailCode, &hash, flow, who, at(when))
                .await?;
            tx.insert_session(&session(u.id, &PlainToken::generate(TokenKind::Session)))
                .await?;
            tx.commit().await
        }
    };
    for (f, who) in [(FlowId::new(), Some(u.id)), (flow, Some(other.id)), (flow, None)] {
        assert!(matches!(
            redeem(f, who, 1).await,
            Err(StoreError::Refused(Refusal::CodeUsed))
        ));
    }
    assert!(s.list_user_sessions(u.id, at(2)).await.unwrap().is_empty());
    let tasks = (0..20u64)
        .map(|i| tokio::spawn(redeem(flow, Some(u.id), 2 + i)))
        .collect::<Vec<_>>();
    assert_eq!(committed_refusing_the_rest(tasks, Refusal::CodeUsed).await, 1);
    assert_eq!(s.list_user_sessions(u.id, at(30)).await.unwrap().len(), 1);
}

/// A checked write refused before the unit's last call (on PostgreSQL at
/// the write, on SQLite at the next operation, which sends it): the unit
/// goes no further, every later call and the commit repeat the refusal,
/// and nothing of it is kept.
async fn a_refusal_before_the_units_last_call_ends_the_unit(s: Arc<SqlStore>) {
    let u = user("mid-unit@x.io");
    s.insert_user(&u).await.unwrap();
    let t = totp(u.id, 100);
    let mut tx = s.tx().await;
    tx.insert_totp(&t).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    // A replay of the stored step, then a write that waits, then an
    // operation that needs its answer (on SQLite it sends the two first).
    let advanced = tx.advance_totp_step_or_refuse(t.id, 100, at(1)).await;
    let _ = tx
        .insert_session(&session(u.id, &PlainToken::generate(TokenKind::Session)))
        .await;
    let answered = tx.delete_user_sessions(UserId::new()).await;
    let replayed = |e: &StoreError| matches!(e, StoreError::Refused(Refusal::CodeReplayed));
    assert!(
        advanced.as_ref().is_err_and(replayed) || (advanced.is_ok() && answered.as_ref().is_err_and(replayed)),
        "{advanced:?} {answered:?}"
    );
    assert!(answered.is_err(), "nothing after the refusal runs");
    // Every later call and the commit answer with the same refusal (the
    // 409 a caller maps it to), never a backend failure (a 5xx).
    let later = tx.delete_user_sessions(UserId::new()).await;
    assert!(later.as_ref().is_err_and(replayed), "{later:?}");
    let committed = tx.commit().await;
    assert!(committed.as_ref().is_err_and(replayed), "{committed:?}");
    assert!(s.list_user_sessions(u.id, at(2)).await.unwrap().is_empty());
    assert_eq!(s.totps_of(u.id).await.unwrap()[0].last_step, 100);
}

/// Consumes an invitation into `sess` and its record in one unit of work,
/// as the invitation use case does; `false` (nothing written) when the
/// secret is not redeemable or belongs to another user.
async fn redeem(s: &Arc<SqlStore>, hash: &TokenHash, sess: &Session, ev: &AuditEvent) -> bool {
    let mut tx = s.tx().await;
    let won = tx.consume_secret(SecretPurpose::Invitation, hash, at(1)).await.unwrap();
    if won.is_none_or(|w| w.user_id != sess.user_id) {
        tx.rollback().await.unwrap();
        return false;
    }
    tx.insert_session(sess).await.unwrap();
    audit_in(&mut tx, ev).await.unwrap();
    tx.commit().await.unwrap();
    true
}

async fn redemption_for_the_wrong_user_writes_nothing(s: Arc<SqlStore>) {
    let u = user("owner@x.io");
    let v = user("thief@x.io");
    s.insert_user(&u).await.unwrap();
    s.insert_user(&v).await.unwrap();
    let tok = PlainToken::generate(TokenKind::Invitation);
    s.issue_secrets(&[secret(u.id, &tok, SecretPurpose::Invitation)], at(0))
        .await
        .unwrap();
    let wrong = session(v.id, &PlainToken::generate(TokenKind::Session));
    let ev = login_event(v.id);
    let head = audit_count(&s).await;
    assert!(!redeem(&s, &tok.hash(), &wrong, &ev).await);
    assert!(s.list_user_sessions(v.id, at(2)).await.unwrap().is_empty());
    assert_eq!(audit_count(&s).await, head, "no record without the session");
    // The secret was not burned by the failed attempt: it was rolled back.
    let right = session(u.id, &PlainToken::generate(TokenKind::Session));
    assert!(redeem(&s, &tok.hash(), &right, &ev).await);
}

/// The unit of work's promise, on both engines: when the audit append fails,
/// the change it records is not stored either. The append is made to fail
/// the way a real one can (a constraint the engine enforces: a record id
/// that exists already), after the change was written in the same unit.
async fn a_failed_audit_append_rolls_its_change_back(s: Arc<SqlStore>) {
    let u = user("atomic@x.io");
    s.insert_user(&u).await.unwrap();
    let ev = login_event(u.id);
    let taken = Uuid::new_v4();
    s.append_audit(&ev, taken, at(1)).await.unwrap();
    let head = audit_count(&s).await;

    // A session and a passkey written, then the record refused.
    let tok = PlainToken::generate(TokenKind::Session);
    let pk = passkey(u.id, "YXRvbWlj");
    let mut tx = s.tx().await;
    tx.insert_session(&session(u.id, &tok)).await.unwrap();
    tx.insert_passkey(&pk).await.unwrap();
    // Records are chained at the commit, after the unit's other writes: the
    // duplicate id fails the commit, and with it everything.
    tx.append_audit(&ev, taken, at(2)).await.unwrap();
    assert!(tx.commit().await.is_err(), "a unit whose append failed cannot commit");
    assert!(s.session_by_token(&tok.hash()).await.unwrap().is_none());
    assert!(s.passkeys_of(u.id).await.unwrap().is_empty());
    assert_eq!(audit_count(&s).await, head, "the chain did not move");

    // The same with a status change and a user.
    let other = user("atomic2@x.io");
    let mut tx = s.tx().await;
    tx.insert_user(&other).await.unwrap();
    assert!(tx.set_user_status(u.id, UserStatus::Disabled, at(3)).await.unwrap());
    tx.append_audit(&ev, taken, at(3)).await.unwrap();
    assert!(tx.commit().await.is_err());
    assert!(s.user_by_email(&other.email.normalized()).await.unwrap().is_none());
    assert_eq!(s.user_by_id(u.id).await.unwrap().unwrap().status, UserStatus::Active);

    // The writer is healthy afterwards: the next unit commits.
    let mut tx = s.tx().await;
    tx.insert_session(&session(u.id, &tok)).await.unwrap();
    audit_in(&mut tx, &ev).await.unwrap();
    tx.commit().await.unwrap();
    assert!(s.session_by_token(&tok.hash()).await.unwrap().is_some());
    assert_eq!(audit_count(&s).await, head + 1);
    let mut v = Verifier::new(&s.audit_ends().await.unwrap());
    for r in s.audit_range(0, 1000).await.unwrap() {
        v.check(&r).unwrap();
    }
    v.finish().unwrap();
}

/// A unit of work dropped half-way (a request cancelled because its client
/// hung up) leaves nothing behind, and the writer serves the next one.
async fn an_abandoned_unit_of_work_leaves_nothing(s: Arc<SqlStore>) {
    let u = user("abandon@x.io");
    s.insert_user(&u).await.unwrap();
    let head = audit_count(&s).await;
    let tok = PlainToken::generate(TokenKind::Session);
    {
        let mut tx = s.tx().await;
        tx.insert_session(&session(u.id, &tok)).await.unwrap();
        audit_in(&mut tx, &login_event(u.id)).await.unwrap();
    }
    for i in 0..5 {
        let mut tx = s.tx().await;
        tx.insert_session(&session(u.id, &PlainToken::generate(TokenKind::Session)))
            .await
            .unwrap();
        audit_in(&mut tx, &login_event(u.id)).await.unwrap();
        if i % 2 == 0 {
            tx.commit().await.unwrap();
        }
    }
    assert!(s.session_by_token(&tok.hash()).await.unwrap().is_none());
    assert_eq!(s.list_user_sessions(u.id, at(2)).await.unwrap().len(), 3);
    assert_eq!(audit_count(&s).await, head + 3);
}

async fn recovery_ticket_people_count_once_and_approval_flips_once(s: Arc<SqlStore>) {
    use signet_core::recovery_ticket::{Evidence, RecoveryTicket, TicketStatus, TICKET_TTL};
    let u = user("ticket@example.com");
    s.insert_user(&u).await.unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let t = RecoveryTicket {
        id: Uuid::new_v4(),
        user_id: u.id,
        reason: "lost".into(),
        evidence: Evidence {
            kind: "video_call".into(),
            reference: "CASE-1".into(),
        },
        created_by: a,
        approvals_required: 2,
        status: TicketStatus::Pending,
        created_at: T0,
        expires_at: T0.plus(TICKET_TTL),
    };
    let mut tx = s.tx().await;
    tx.insert_ticket(&t).await.unwrap();
    assert_eq!(tx.add_ticket_actor(t.id, a, T0).await.unwrap(), Some(1));
    assert_eq!(
        tx.add_ticket_actor(t.id, a, at(1)).await.unwrap(),
        None,
        "one actor counts once"
    );
    tx.commit().await.unwrap();
    let mut tx = s.tx().await;
    assert_eq!(tx.add_ticket_actor(t.id, b, at(2)).await.unwrap(), Some(2));
    assert!(tx.approve_ticket(t.id, at(2)).await.unwrap());
    assert!(!tx.approve_ticket(t.id, at(3)).await.unwrap(), "approved once");
    tx.commit().await.unwrap();
    let stored = s.ticket(t.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TicketStatus::Approved);
    assert_eq!(stored.evidence.reference, "CASE-1");
    assert_eq!(s.ticket_actors(t.id).await.unwrap(), vec![a, b]);
    assert!(s.ticket(Uuid::new_v4()).await.unwrap().is_none());

    let late = RecoveryTicket {
        id: Uuid::new_v4(),
        status: TicketStatus::Pending,
        ..stored
    };
    let mut tx = s.tx().await;
    tx.insert_ticket(&late).await.unwrap();
    assert!(
        !tx.approve_ticket(late.id, T0.plus(TICKET_TTL)).await.unwrap(),
        "an expired ticket is never approved"
    );
    tx.commit().await.unwrap();

    // Listing: newest first, of one user or of everyone.
    let other = user("other-ticket@example.com");
    s.insert_user(&other).await.unwrap();
    let theirs = RecoveryTicket {
        id: Uuid::new_v4(),
        user_id: other.id,
        created_at: at(5),
        ..late.clone()
    };
    let mut tx = s.tx().await;
    tx.insert_ticket(&theirs).await.unwrap();
    tx.commit().await.unwrap();
    let all = s.list_tickets(None, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].id, theirs.id, "newest first");
    let mine: Vec<Uuid> = s
        .list_tickets(Some(u.id), 10)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(mine.len(), 2);
    assert!(!mine.contains(&theirs.id));
    assert_eq!(s.list_tickets(None, 1).await.unwrap().len(), 1);
}

async fn cooling_off_and_known_devices_are_kept_per_credential_and_per_user(s: Arc<SqlStore>) {
    let u = user("cool@example.com");
    s.insert_user(&u).await.unwrap();
    let credential = Uuid::new_v4();
    assert_eq!(s.cooling_off_until(credential).await.unwrap(), None);
    let mut tx = s.tx().await;
    tx.start_cooling_off(credential, u.id, at(100)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.cooling_off_until(credential).await.unwrap(), Some(at(100)));
    let mut tx = s.tx().await;
    tx.start_cooling_off(credential, u.id, at(200)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        s.cooling_off_until(credential).await.unwrap(),
        Some(at(200)),
        "a later binding restarts it"
    );

    let (d1, d2) = (
        PlainToken::generate(TokenKind::Device).hash(),
        PlainToken::generate(TokenKind::Device).hash(),
    );
    let mut tx = s.tx().await;
    assert_eq!(tx.remember_device(u.id, &d1, T0).await.unwrap(), (true, 0));
    assert_eq!(tx.remember_device(u.id, &d1, at(1)).await.unwrap(), (false, 0));
    assert_eq!(tx.remember_device(u.id, &d2, at(2)).await.unwrap(), (true, 1));
    tx.commit().await.unwrap();
    let v = user("dev2@example.com");
    s.insert_user(&v).await.unwrap();
    let mut tx = s.tx().await;
    assert_eq!(
        tx.remember_device(v.id, &d1, at(3)).await.unwrap(),
        (true, 0),
        "devices are per account"
    );
    tx.commit().await.unwrap();
}

async fn admin_tokens_are_found_by_hash_until_revoked(s: Arc<SqlStore>) {
    let tok = PlainToken::generate(TokenKind::Admin);
    let t = AdminToken {
        id: Uuid::new_v4(),
        name: "ops".into(),
        token_hash: tok.hash(),
        created_at: T0,
        revoked_at: None,
        ceiling: Some("standard".into()),
    };
    s.insert_admin_token(&t).await.unwrap();
    let found = s.admin_token_by_hash(&tok.hash()).await.unwrap().unwrap();
    assert_eq!(found.name, "ops");
    assert_eq!(found.ceiling.as_deref(), Some("standard"));
    let dup = AdminToken {
        id: Uuid::new_v4(),
        token_hash: TokenHash::of(b"other"),
        ..t.clone()
    };
    assert!(matches!(
        s.insert_admin_token(&dup).await,
        Err(StoreError::Conflict(signet_core::ErrorCode::AdminTokenNameTaken))
    ));
    assert_eq!(s.list_admin_tokens().await.unwrap().len(), 1);
    assert!(s.revoke_admin_token("ops", at(1)).await.unwrap());
    assert!(s.admin_token_by_hash(&tok.hash()).await.unwrap().is_none());
    assert!(!s.revoke_admin_token("ops", at(2)).await.unwrap());
}

async fn audit_chains_stay_whole_under_concurrent_appends(s: Arc<SqlStore>) {
    let u = UserId::new();
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let ty = if i % 3 == 0 {
                    EventType::LoginFailed
                } else {
                    EventType::LoginSucceeded
                };
                let mut ev =
                    AuditEvent::new(ty, Actor::User(u), Outcome::Success).details(serde_json::json!({ "i": i }));
                if i % 2 == 0 {
                    ev = ev.user(u);
                }
                s.append_audit(&ev, Uuid::new_v4(), at(i)).await.unwrap()
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t.unwrap();
    }
    let records = s.audit_range(0, 1000).await.unwrap();
    assert_eq!(records.len(), 30);
    let mut v = Verifier::new(&s.audit_ends().await.unwrap());
    for r in &records {
        v.check(r).unwrap();
    }
    assert_eq!(v.finish().unwrap(), 30);

    let mine = s
        .query_audit(&AuditQuery {
            user_id: Some(u),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 15);
    assert!(mine.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    let failed = s
        .query_audit(&AuditQuery {
            event_type: Some("login.failed".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 10);
    let page = s
        .query_audit(&AuditQuery {
            before_seq: Some(5),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![4, 3]);
}

/// An authorization code of `client_id` for `user`'s session, alive until
/// `at(60)`, with an empty grant.
fn app_code<'a>(hash: &'a TokenHash, id: Uuid, client_id: &'a str, user: Uuid, session: Uuid) -> NewCode<'a> {
    NewCode {
        hash,
        id,
        client_id,
        user_id: user,
        session_id: session,
        grant: "{}",
        expires_at: at(60),
    }
}

/// A family of client `app` for `user`: its code (hash `code`) redeemed
/// and its first refresh token (hash `token`), committed. Returns its id.
async fn family_of(s: &Arc<SqlStore>, user: Uuid, code: &TokenHash, token: &TokenHash) -> Uuid {
    let family = Uuid::new_v4();
    let mut tx = s.begin().await.unwrap();
    tx.redeem_oidc_code(&app_code(code, family, "app", user, Uuid::new_v4()), at(0))
        .await
        .unwrap();
    tx.insert_oidc_refresh(&app_refresh(token, family, user)).await.unwrap();
    tx.commit().await.unwrap();
    family
}

/// A refresh token of client `app` for `user` in `family`, alive until
/// 600 s.
fn app_refresh(hash: &TokenHash, family: Uuid, user: Uuid) -> signet_core::unit_of_work::NewRefreshToken<'_> {
    signet_core::unit_of_work::NewRefreshToken {
        hash,
        id: Uuid::new_v4(),
        family,
        client_id: "app",
        user_id: user,
        grant: "{}",
        expires_at: at(600),
    }
}

/// Outbox operations that exist in units of work only, each run in a unit
/// of its own and committed.
struct EachInAUnit<'a>(&'a SqlStore);

impl EachInAUnit<'_> {
    async fn claim_due_messages(&self, now: Timestamp, lease: Lease, limit: u32) -> StoreResult<Vec<Message>> {
        let mut tx = self.0.begin().await?;
        let claimed = tx.claim_due_messages(now, lease, limit).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn mark_message_sent(&self, id: Uuid, token: Uuid, now: Timestamp, scrub: bool) -> StoreResult<bool> {
        let mut tx = self.0.begin().await?;
        let marked = tx.mark_message_sent(id, token, now, scrub).await?;
        tx.commit().await?;
        Ok(marked)
    }

    async fn mark_message_failed(
        &self,
        id: Uuid,
        token: Uuid,
        error: &str,
        next_attempt_at: Timestamp,
        dead: bool,
    ) -> StoreResult<bool> {
        let mut tx = self.0.begin().await?;
        let marked = tx.mark_message_failed(id, token, error, next_attempt_at, dead).await?;
        tx.commit().await?;
        Ok(marked)
    }
}

async fn outbox_leases_retries_and_scrubs(s: Arc<SqlStore>) {
    let units = EachInAUnit(&s);
    let m1 = message(1);
    let m2 = message(2);
    s.enqueue_message(&m1).await.unwrap();
    s.enqueue_message(&m2).await.unwrap();
    let depth = |pending, dead, oldest: Option<u64>| OutboxDepth {
        pending,
        dead,
        oldest_pending_at: oldest.map(at),
    };
    assert_eq!(s.outbox_depth().await.unwrap(), depth(2, 0, Some(1)));
    // Not due yet at T0 for m1 (due at +1s).
    assert!(units
        .claim_due_messages(T0, lease(at(60)), 10)
        .await
        .unwrap()
        .is_empty());
    let first = lease(at(65));
    let claimed = units.claim_due_messages(at(5), first, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|m| m.attempts == 1));
    // Leased: nobody else gets them.
    assert!(units
        .claim_due_messages(at(6), lease(at(66)), 10)
        .await
        .unwrap()
        .is_empty());

    // Only the holder's token records an outcome.
    assert!(!units
        .mark_message_failed(m1.id, Uuid::new_v4(), "x", at(9), true)
        .await
        .unwrap());
    assert!(!units
        .mark_message_sent(m2.id, Uuid::new_v4(), at(7), true)
        .await
        .unwrap());
    assert_eq!(s.message(m1.id).await.unwrap().unwrap().status, DeliveryStatus::Pending);
    assert!(units
        .mark_message_failed(m1.id, first.token, "451 try later", at(20), false)
        .await
        .unwrap());
    assert!(units.mark_message_sent(m2.id, first.token, at(7), true).await.unwrap());
    assert_eq!(
        s.outbox_depth().await.unwrap(),
        depth(1, 0, Some(1)),
        "m1 waits for its retry"
    );
    // Recorded once: the same token cannot record again.
    assert!(!units.mark_message_sent(m2.id, first.token, at(8), false).await.unwrap());
    let sent = s.message(m2.id).await.unwrap().unwrap();
    assert_eq!(sent.status, DeliveryStatus::Sent);
    assert_eq!(sent.sent_at, Some(at(7)));
    assert!(
        sent.text_body.is_none() && sent.html_body.is_none(),
        "bodies scrubbed after delivery"
    );

    assert!(units
        .claim_due_messages(at(19), lease(at(79)), 10)
        .await
        .unwrap()
        .is_empty());
    let second = lease(at(80));
    let retry = units.claim_due_messages(at(20), second, 10).await.unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempts, 2);
    assert_eq!(retry[0].last_error.as_deref(), Some("451 try later"));
    // The first claim's token no longer holds it.
    assert!(!units
        .mark_message_sent(m1.id, first.token, at(21), false)
        .await
        .unwrap());
    assert!(units
        .mark_message_sent(m1.id, second.token, at(21), false)
        .await
        .unwrap());
    let kept = s.message(m1.id).await.unwrap().unwrap();
    assert_eq!(kept.text_body.as_deref(), Some("text with a secret link"));

    // A lease that expires (a worker died) makes the message claimable again.
    let m3 = message(3);
    s.enqueue_message(&m3).await.unwrap();
    assert_eq!(s.outbox_depth().await.unwrap(), depth(1, 0, Some(3)));
    let dead_worker = lease(at(90));
    assert_eq!(
        units.claim_due_messages(at(30), dead_worker, 10).await.unwrap().len(),
        1
    );
    assert!(units
        .claim_due_messages(at(89), lease(at(150)), 10)
        .await
        .unwrap()
        .is_empty());
    let taker = lease(at(150));
    assert_eq!(units.claim_due_messages(at(90), taker, 10).await.unwrap().len(), 1);
    // The late worker can neither renew nor overwrite the taker's outcome.
    assert!(!s
        .renew_message_lease(
            m3.id,
            Lease {
                token: dead_worker.token,
                until: at(200)
            }
        )
        .await
        .unwrap());
    assert!(!units
        .mark_message_sent(m3.id, dead_worker.token, at(95), true)
        .await
        .unwrap());

    assert!(units
        .mark_message_failed(m3.id, taker.token, "gave up", at(200), true)
        .await
        .unwrap());
    assert_eq!(s.message(m3.id).await.unwrap().unwrap().status, DeliveryStatus::Dead);
    assert_eq!(s.outbox_depth().await.unwrap(), depth(0, 1, None));
    assert!(units
        .claim_due_messages(at(300), lease(at(360)), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.recent_messages(10).await.unwrap().len(), 3);

    // Finished messages are purged; a pending one never is.
    let m4 = message(4);
    s.enqueue_message(&m4).await.unwrap();
    assert_eq!(s.purge_finished_messages(at(1000)).await.unwrap(), 3);
    assert!(s.message(m4.id).await.unwrap().is_some());
}

async fn a_renewed_lease_keeps_a_slow_send_to_its_worker(s: Arc<SqlStore>) {
    let m = message(1);
    s.enqueue_message(&m).await.unwrap();
    let held = lease(at(61));
    assert_eq!(
        EachInAUnit(&s).claim_due_messages(at(1), held, 4).await.unwrap().len(),
        1
    );
    // Renewed before it runs out: at 61 s, when it would have, nobody may take it.
    let renewed = Lease {
        token: held.token,
        until: at(121),
    };
    assert!(s.renew_message_lease(m.id, renewed).await.unwrap());
    assert!(EachInAUnit(&s)
        .claim_due_messages(at(61), lease(at(121)), 4)
        .await
        .unwrap()
        .is_empty());
    assert!(EachInAUnit(&s)
        .claim_due_messages(at(120), lease(at(180)), 4)
        .await
        .unwrap()
        .is_empty());
    // Another token cannot renew it.
    assert!(!s.renew_message_lease(m.id, lease(at(500))).await.unwrap());
    assert!(EachInAUnit(&s)
        .mark_message_sent(m.id, held.token, at(100), true)
        .await
        .unwrap());
    // A recorded message has no lease left to renew.
    assert!(!s.renew_message_lease(m.id, renewed).await.unwrap());
}

async fn expired_messages_are_dropped_with_their_record(s: Arc<SqlStore>) {
    let mut m = message(1);
    m.expires_at = Some(at(600));
    s.enqueue_message(&m).await.unwrap();
    assert_eq!(s.message(m.id).await.unwrap().unwrap().expires_at, Some(at(600)));
    let held = lease(at(660));
    let claimed = EachInAUnit(&s).claim_due_messages(at(600), held, 4).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].expired_at(at(600)));

    // Another token cannot drop it.
    let mut tx = s.tx().await;
    assert!(!tx.expire_message(m.id, Uuid::new_v4(), at(600)).await.unwrap());
    tx.rollback().await.unwrap();
    // An abandoned unit drops nothing.
    let mut tx = s.tx().await;
    assert!(tx.expire_message(m.id, held.token, at(600)).await.unwrap());
    drop(tx);
    assert_eq!(s.message(m.id).await.unwrap().unwrap().status, DeliveryStatus::Pending);

    let mut tx = s.tx().await;
    assert!(tx.expire_message(m.id, held.token, at(600)).await.unwrap());
    tx.commit().await.unwrap();
    let dropped = s.message(m.id).await.unwrap().unwrap();
    assert_eq!(dropped.status, DeliveryStatus::Dead);
    assert_eq!(dropped.last_error.as_deref(), Some(EXPIRED_ERROR));
    assert!(dropped.text_body.is_none() && dropped.html_body.is_none());
    assert!(EachInAUnit(&s)
        .claim_due_messages(at(9999), lease(at(10059)), 4)
        .await
        .unwrap()
        .is_empty());
}

async fn retry_now_makes_every_waiting_message_due(s: Arc<SqlStore>) {
    let (waiting, due, sent) = (message(1), message(2), message(3));
    for m in [&waiting, &due, &sent] {
        s.enqueue_message(m).await.unwrap();
    }
    let held = lease(at(70));
    assert_eq!(
        EachInAUnit(&s).claim_due_messages(at(10), held, 4).await.unwrap().len(),
        3
    );
    assert!(EachInAUnit(&s)
        .mark_message_failed(waiting.id, held.token, "451", at(3610), false)
        .await
        .unwrap());
    assert!(EachInAUnit(&s)
        .mark_message_failed(due.id, held.token, "451", at(5), false)
        .await
        .unwrap());
    assert!(EachInAUnit(&s)
        .mark_message_sent(sent.id, held.token, at(11), true)
        .await
        .unwrap());

    let mut tx = s.tx().await;
    assert_eq!(
        tx.make_pending_messages_due(at(20)).await.unwrap(),
        1,
        "only the one still waiting"
    );
    tx.commit().await.unwrap();
    let claimed = EachInAUnit(&s)
        .claim_due_messages(at(20), lease(at(80)), 10)
        .await
        .unwrap();
    let mut ids: Vec<Uuid> = claimed.iter().map(|m| m.id).collect();
    ids.sort();
    let mut want = vec![waiting.id, due.id];
    want.sort();
    assert_eq!(ids, want, "a sent message is not made due again");
}

async fn concurrent_workers_never_share_a_message(s: Arc<SqlStore>) {
    for n in 0..40 {
        s.enqueue_message(&message(n)).await.unwrap();
    }
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            // Like a real worker: keep claiming until a pass finds nothing.
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let held = lease(at(160));
                    let batch = EachInAUnit(&s).claim_due_messages(at(100), held, 4).await.unwrap();
                    if batch.is_empty() {
                        break mine;
                    }
                    // Each worker records what it claimed, with its own token.
                    for m in &batch {
                        assert!(s
                            .renew_message_lease(
                                m.id,
                                Lease {
                                    token: held.token,
                                    until: at(170)
                                }
                            )
                            .await
                            .unwrap());
                        assert!(EachInAUnit(&s)
                            .mark_message_sent(m.id, held.token, at(101), true)
                            .await
                            .unwrap());
                    }
                    mine.extend(batch.into_iter().map(|m| m.id));
                }
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in futures::future::join_all(tasks).await {
        ids.extend(t.unwrap());
    }
    // Under contention a worker may stop early (its candidates were taken by
    // others); a final sweep picks up whatever is left.
    ids.extend(
        EachInAUnit(&s)
            .claim_due_messages(at(100), lease(at(160)), 100)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id),
    );
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "a message was claimed twice");
    assert_eq!(n, 40);
}

async fn throttle_windows_count_and_roll_over(s: Arc<SqlStore>) {
    let w = Duration::from_secs(600);
    for n in 1..=3 {
        let c = s.hit("send:addr:abc", at(n), w).await.unwrap();
        assert_eq!(c.hits, u32::try_from(n).unwrap());
        assert_eq!(c.window_start, at(1), "the window starts at its first hit");
    }
    // Another key is independent.
    assert_eq!(s.hit("send:ip:127.0.0.1", at(2), w).await.unwrap().hits, 1);
    // Still inside the window (it began at +1s and lasts 600s).
    assert_eq!(s.hit("send:addr:abc", at(600), w).await.unwrap().hits, 4);
    // At +601s the window that began at +1s is over: a new one starts.
    let c = s.hit("send:addr:abc", at(601), w).await.unwrap();
    assert_eq!((c.hits, c.window_start), (1, at(601)));
    // Windows that began before the cut-off ("old" and the ip window) are
    // purged; the address window that began at +601s is not.
    s.hit("old", at(0), w).await.unwrap();
    assert_eq!(s.purge_throttles(at(100)).await.unwrap(), 2);
    assert_eq!(s.hit("send:addr:abc", at(602), w).await.unwrap().hits, 2);
}

async fn concurrent_hits_each_get_a_distinct_count(s: Arc<SqlStore>) {
    let w = Duration::from_secs(600);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.hit("hot", at(5), w).await.unwrap().hits })
        })
        .collect();
    let mut counts: Vec<u32> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=40).collect::<Vec<u32>>(), "every hit counted exactly once");
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.record_failure("acct", at(5)).await.unwrap().count })
        })
        .collect();
    let mut runs: Vec<u32> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    runs.sort_unstable();
    assert_eq!(runs, (1..=40).collect::<Vec<u32>>());
}

async fn failure_runs_grow_until_cleared(s: Arc<SqlStore>) {
    assert!(s.failures("acct").await.unwrap().is_none());
    assert_eq!(s.record_failure("acct", at(1)).await.unwrap().count, 1);
    let f = s.record_failure("acct", at(7)).await.unwrap();
    assert_eq!((f.count, f.last_at), (2, at(7)));
    assert_eq!(s.failures("acct").await.unwrap(), Some(f));
    assert!(s.failures("other").await.unwrap().is_none());
    s.clear_failures("acct").await.unwrap();
    assert!(s.failures("acct").await.unwrap().is_none());
    assert_eq!(s.record_failure("acct", at(9)).await.unwrap().count, 1);
    assert_eq!(s.purge_throttles(at(10)).await.unwrap(), 1);
    assert!(s.failures("acct").await.unwrap().is_none());
}

/// A unit's failure-run operations (a code attempt reserved, its code
/// consumed and the run cleared, in one commit) behave as the pool's and
/// stand or fall with the unit.
async fn failure_runs_change_inside_a_unit_and_roll_back_with_it(s: Arc<SqlStore>) {
    let run = |count, secs| Failures {
        count,
        last_at: at(secs),
    };
    let mut tx = s.begin().await.unwrap();
    assert!(tx.failures("unit").await.unwrap().is_none());
    assert!(tx.swap_failures("unit", None, run(1, 1)).await.unwrap());
    assert!(
        !tx.swap_failures("unit", None, run(1, 1)).await.unwrap(),
        "already there"
    );
    assert_eq!(tx.failures("unit").await.unwrap(), Some(run(1, 1)));
    assert!(tx.swap_failures("unit", Some(run(1, 1)), run(2, 2)).await.unwrap());
    assert!(
        !tx.swap_failures("unit", Some(run(1, 1)), run(3, 3)).await.unwrap(),
        "stale"
    );
    assert_eq!(tx.record_failure("unit", at(4)).await.unwrap(), run(3, 4));
    assert_eq!(tx.record_failure("flow", at(4)).await.unwrap(), run(1, 4));
    tx.clear_failures("flow").await.unwrap();
    assert!(tx.failures("flow").await.unwrap().is_none());
    tx.rollback().await.unwrap();
    assert!(s.failures("unit").await.unwrap().is_none(), "rolled back with its unit");

    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.record_failure("unit", at(5)).await.unwrap(), run(1, 5));
    tx.commit().await.unwrap();
    assert_eq!(s.failures("unit").await.unwrap(), Some(run(1, 5)));
    let mut tx = s.begin().await.unwrap();
    tx.clear_failures("unit").await.unwrap();
    tx.commit().await.unwrap();
    assert!(s.failures("unit").await.unwrap().is_none());
}

/// A right code's admission (ADR 0033, amended): the account's run ends,
/// answering what it was, and the flow's comparison is counted, in one
/// operation that stands or falls with its unit.
async fn a_run_ended_in_a_unit_answers_what_it_was_and_counts_the_attempt(s: Arc<SqlStore>) {
    let run = |count, secs| Failures {
        count,
        last_at: at(secs),
    };
    // No run: nothing ended, the first comparison counted.
    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        tx.end_run_and_count("acct", "flow", at(3)).await.unwrap(),
        (None, run(1, 3))
    );
    tx.commit().await.unwrap();
    assert_eq!(s.failures("flow").await.unwrap(), Some(run(1, 3)));

    // A run of two: it ends, and its last state is answered.
    s.record_failure("acct", at(4)).await.unwrap();
    s.record_failure("acct", at(5)).await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        tx.end_run_and_count("acct", "flow", at(6)).await.unwrap(),
        (Some(run(2, 5)), run(2, 6))
    );
    // Rolled back (a refusal taken on that run), both rows are as before.
    tx.rollback().await.unwrap();
    assert_eq!(s.failures("acct").await.unwrap(), Some(run(2, 5)));
    assert_eq!(s.failures("flow").await.unwrap(), Some(run(1, 3)));

    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        tx.end_run_and_count("acct", "flow", at(7)).await.unwrap(),
        (Some(run(2, 5)), run(2, 7))
    );
    tx.commit().await.unwrap();
    assert!(s.failures("acct").await.unwrap().is_none(), "the run ended");
    assert_eq!(s.failures("flow").await.unwrap(), Some(run(2, 7)));
}

/// A failed attempt's compare-and-swap on a run that a right code's unit is
/// ending waits for that unit and then finds the run gone: the two are
/// ordered, and the swap, taken on the run as it was, does not land.
async fn a_swap_racing_a_run_being_ended_waits_and_does_not_land(s: Arc<SqlStore>) {
    let run = |count, secs| Failures {
        count,
        last_at: at(secs),
    };
    s.record_failure("raced", at(1)).await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        tx.end_run_and_count("raced", "raced-flow", at(2)).await.unwrap().0,
        Some(run(1, 1))
    );
    let swap = {
        let s = s.clone();
        tokio::spawn(async move { s.swap_failures("raced", Some(run(1, 1)), run(2, 3)).await.unwrap() })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!swap.is_finished(), "the swap waits for the unit ending the run");
    tx.commit().await.unwrap();
    assert!(!swap.await.unwrap(), "the run it expected is gone");
    assert!(s.failures("raced").await.unwrap().is_none());
}

async fn a_failure_run_is_swapped_by_exactly_one_of_many(s: Arc<SqlStore>) {
    let run = |count, secs| Failures {
        count,
        last_at: at(secs),
    };
    // No run yet: the first swap from "none" creates it, a second cannot.
    assert!(s.swap_failures("cas", None, run(1, 1)).await.unwrap());
    assert!(!s.swap_failures("cas", None, run(1, 2)).await.unwrap());
    assert_eq!(s.failures("cas").await.unwrap(), Some(run(1, 1)));
    // A stale expectation changes nothing.
    assert!(!s.swap_failures("cas", Some(run(1, 9)), run(2, 9)).await.unwrap());
    // Twenty callers who read the same run: one swap lands.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.swap_failures("cas", Some(run(1, 1)), run(2, 10 + i)).await.unwrap() })
        })
        .collect();
    let wins = winners(tasks).await;
    assert_eq!(wins, 1);
    assert_eq!(s.failures("cas").await.unwrap().map(|f| f.count), Some(2));
}

async fn a_flows_secrets_are_revoked_together(s: Arc<SqlStore>) {
    let u = user("flow-secrets@example.com");
    s.insert_user(&u).await.unwrap();
    let f = FlowId::new();
    let (a, b, other) = (
        PlainToken::generate(TokenKind::MagicLink),
        PlainToken::generate(TokenKind::MagicLink),
        PlainToken::generate(TokenKind::MagicLink),
    );
    for (t, flow, purpose) in [
        (&a, f, SecretPurpose::MagicLink),
        (&b, f, SecretPurpose::EmailCode),
        (&other, FlowId::new(), SecretPurpose::MagicLink),
    ] {
        let mut sec = secret(u.id, t, purpose);
        sec.flow_id = Some(flow);
        s.issue_secrets(std::slice::from_ref(&sec), at(0)).await.unwrap();
    }
    assert_eq!(
        s.revoke_flow_secrets(f, at(1)).await.unwrap(),
        1,
        "the later issue revoked the earlier"
    );
    assert!(s
        .consume_secret(SecretPurpose::MagicLink, &a.hash(), at(2))
        .await
        .unwrap()
        .is_none());
    let kept = s
        .consume_secret(SecretPurpose::MagicLink, &other.hash(), at(2))
        .await
        .unwrap()
        .unwrap();
    assert!(kept.flow_id.is_some(), "flow binding round-trips");
    assert_eq!(s.revoke_flow_secrets(f, at(3)).await.unwrap(), 0);
}

fn passkey(user: UserId, credential_id: &str) -> signet_core::credential::Passkey {
    signet_core::credential::Passkey {
        id: Uuid::new_v4(),
        user_id: user,
        credential_id: credential_id.into(),
        record: "{\"opaque\":true}".into(),
        counter: 5,
        backup_eligible: true,
        backup_state: false,
        user_verified: true,
        aaguid: Uuid::nil(),
        transports: vec!["internal".into(), "hybrid".into()],
        name: "Laptop".into(),
        created_at: T0,
        last_used_at: None,
    }
}

async fn passkeys_round_trip_and_are_unique_across_users(s: Arc<SqlStore>) {
    let (a, b) = (user("a@example.com"), user("b@example.com"));
    s.insert_user(&a).await.unwrap();
    s.insert_user(&b).await.unwrap();
    let p = passkey(a.id, "Y3JlZC1h");
    let ev = AuditEvent::new(EventType::CredentialAdded, Actor::User(a.id), Outcome::Success).user(a.id);
    let head = audit_count(&s).await;
    let mut tx = s.tx().await;
    tx.insert_passkey(&p).await.unwrap();
    audit_in(&mut tx, &ev).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(audit_count(&s).await, head + 1, "the record came with the passkey");
    assert_eq!(s.passkey_by_credential_id("Y3JlZC1h").await.unwrap().unwrap(), p);
    // With its owner and its cooling-off, in one read.
    let found = s.passkey_and_owner("Y3JlZC1h").await.unwrap().unwrap();
    assert_eq!(found.passkey, p);
    assert_eq!(
        found.owner.map(|o| (o.id, o.email.normalized())),
        Some((a.id, a.email.normalized()))
    );
    assert_eq!(found.cooling_off_until, None);
    let mut tx = s.tx().await;
    tx.start_cooling_off(p.id, a.id, at(500)).await.unwrap();
    tx.commit().await.unwrap();
    let found = s.passkey_and_owner("Y3JlZC1h").await.unwrap().unwrap();
    assert_eq!(found.cooling_off_until, Some(at(500)));
    assert!(s.passkey_and_owner("bm9uZQ").await.unwrap().is_none());
    assert_eq!(s.passkeys_of(a.id).await.unwrap(), vec![p.clone()]);
    assert!(s.passkeys_of(b.id).await.unwrap().is_empty());
    // The same credential id for another user (or the same one) is a conflict.
    let dup = passkey(b.id, "Y3JlZC1h");
    let mut tx = s.tx().await;
    audit_in(&mut tx, &ev).await.unwrap();
    assert!(matches!(
        tx.insert_passkey(&dup).await,
        Err(StoreError::Conflict(
            signet_core::ErrorCode::CredentialAlreadyRegistered
        ))
    ));
    drop(tx);
    assert!(s.passkeys_of(b.id).await.unwrap().is_empty());
    assert_eq!(audit_count(&s).await, head + 1, "a refused passkey leaves no record");
    assert!(s.rename_passkey(a.id, p.id, "Phone").await.unwrap());
    assert!(!s.rename_passkey(b.id, p.id, "Stolen").await.unwrap());
    assert_eq!(s.passkeys_of(a.id).await.unwrap()[0].name, "Phone");
}

/// A use of passkey `id` that moves its counter from `from` to `from + 1`.
fn passkey_use(id: Uuid, from: u32, at: Timestamp) -> PasskeyUse {
    PasskeyUse {
        id,
        previous_counter: from,
        counter: from + 1,
        backup_state: false,
        at,
    }
}

async fn a_passkey_use_is_one_conditional_write(s: Arc<SqlStore>) {
    let a = user("a@example.com");
    s.insert_user(&a).await.unwrap();
    let p = passkey(a.id, "Y3JlZC1h");
    s.insert_passkey(&p).await.unwrap();
    let used = PasskeyUse {
        id: p.id,
        previous_counter: 5,
        counter: 6,
        backup_state: true,
        at: at(10),
    };
    assert!(s.record_passkey_use(&used).await.unwrap());
    // The same previous counter again: someone else already moved it.
    assert!(!s.record_passkey_use(&used).await.unwrap());
    let now = s.passkey_by_credential_id("Y3JlZC1h").await.unwrap().unwrap();
    assert_eq!(
        (now.counter, now.backup_state, now.last_used_at),
        (6, true, Some(at(10)))
    );
    // Twenty concurrent uses of the same counter value: exactly one is recorded.
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.record_passkey_use(&passkey_use(p.id, 6, at(20 + i))).await.unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

/// The checked writes of a login's unit (ADR 0035): units completing the
/// same flow with the same passkey use, each appending its record, race in
/// groups beside units completing flows of their own. Exactly one of the
/// racers commits; every other is refused, at the write or (SQLite, which
/// checks them with the unit's later statements) at the commit, and leaves
/// neither record nor change; every unit beside them commits.
async fn checked_writes_let_exactly_one_racer_commit_and_spare_its_neighbours(s: Arc<SqlStore>) {
    let a = user("a@example.com");
    s.insert_user(&a).await.unwrap();
    let p = passkey(a.id, "Y2hlY2tlZA");
    s.insert_passkey(&p).await.unwrap();
    let f = flow(None);
    let seq_before = audit_count(&s).await;
    let tasks: Vec<_> = (0..30u64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                // Every third unit completes a flow of its own.
                let racer = i % 3 != 2;
                let id = if racer { f.id } else { FlowId::new() };
                let mut tx = s.tx().await;
                if racer {
                    if let Err(e) = tx.record_passkey_use_or_refuse(&passkey_use(p.id, 5, at(10 + i))).await {
                        return (racer, Err(e));
                    }
                }
                if let Err(e) = tx.finish_flow_or_refuse(id, at(7200)).await {
                    return (racer, Err(e));
                }
                if let Err(e) = tx.append_audit(&login_event(a.id), Uuid::new_v4(), at(10 + i)).await {
                    return (racer, Err(e));
                }
                (racer, tx.commit().await)
            })
        })
        .collect();
    let (mut won, mut neighbours) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (true, Ok(())) => won += 1,
            (true, Err(StoreError::Refused(Refusal::PasskeyRaced | Refusal::FlowFinished))) => {}
            (false, Ok(())) => neighbours += 1,
            (racer, Err(e)) => panic!("racer {racer}: {e}"),
        }
    }
    assert_eq!((won, neighbours), (1, 10));
    let seq_after = audit_count(&s).await;
    assert_eq!(seq_after - seq_before, 11, "one record per committed unit");
    let now = s.passkey_by_credential_id("Y2hlY2tlZA").await.unwrap().unwrap();
    assert_eq!(now.counter, 6);
    assert!(s.is_finished(f.id).await.unwrap());
    // A refusal poisons only its unit: the same store takes the next unit.
    let mut tx = s.tx().await;
    assert!(matches!(
        async {
            tx.finish_flow_or_refuse(f.id, at(7200)).await?;
            tx.append_audit(&login_event(a.id), Uuid::new_v4(), at(99)).await?;
            tx.commit().await
        }
        .await,
        Err(StoreError::Refused(Refusal::FlowFinished))
    ));
    let seq_final = audit_count(&s).await;
    assert_eq!(seq_final, seq_after);
}

async fn removing_passkeys_keeps_the_last_when_asked(s: Arc<SqlStore>) {
    let (a, b) = (user("a@example.com"), user("b@example.com"));
    s.insert_user(&a).await.unwrap();
    s.insert_user(&b).await.unwrap();
    let p1 = passkey(a.id, "AAAA");
    let p2 = passkey(a.id, "BBBB");
    s.insert_passkey(&p1).await.unwrap();
    s.insert_passkey(&p2).await.unwrap();
    assert_eq!(s.remove_passkey(b.id, p1.id, 0).await.unwrap(), Removal::NotFound);
    // Both removed at once with keep = 1: exactly one goes.
    let (r1, r2) = tokio::join!(s.remove_passkey(a.id, p1.id, 1), s.remove_passkey(a.id, p2.id, 1));
    let outcomes = [r1.unwrap(), r2.unwrap()];
    assert_eq!(outcomes.iter().filter(|o| **o == Removal::Removed).count(), 1);
    assert_eq!(outcomes.iter().filter(|o| **o == Removal::LastCredential).count(), 1);
    let left = s.passkeys_of(a.id).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(s.remove_passkey(a.id, left[0].id, 0).await.unwrap(), Removal::Removed);
    assert!(s.passkeys_of(a.id).await.unwrap().is_empty());
}

async fn ceremonies_are_taken_once_by_their_session(s: Arc<SqlStore>) {
    let a = user("a@example.com");
    s.insert_user(&a).await.unwrap();
    let mine = SessionId::new();
    let c = signet_core::credential::Ceremony {
        id: Uuid::new_v4(),
        session_id: mine,
        user_id: a.id,
        state: "{}".into(),
        name: Some("Key".into()),
        created_at: T0,
        expires_at: at(300),
    };
    s.insert_ceremony(&c).await.unwrap();
    assert!(s.take_ceremony(c.id, SessionId::new(), at(1)).await.unwrap().is_none());
    assert!(s.take_ceremony(c.id, mine, at(300)).await.unwrap().is_none());
    assert_eq!(s.take_ceremony(c.id, mine, at(299)).await.unwrap().unwrap(), c);
    assert!(s.take_ceremony(c.id, mine, at(1)).await.unwrap().is_none());
    let old = signet_core::credential::Ceremony {
        id: Uuid::new_v4(),
        ..c
    };
    s.insert_ceremony(&old).await.unwrap();
    assert_eq!(s.purge_expired_ceremonies(at(300)).await.unwrap(), 1);
}

async fn server_secrets_are_created_once(s: Arc<SqlStore>) {
    let first = s.server_secret("decoy", &[1; 32], T0).await.unwrap();
    assert_eq!(first, vec![1; 32]);
    let (x, y) = tokio::join!(
        s.server_secret("decoy", &[2; 32], T0),
        s.server_secret("decoy", &[3; 32], T0)
    );
    assert_eq!(x.unwrap(), first);
    assert_eq!(y.unwrap(), first);
    let (p, q) = tokio::join!(
        s.server_secret("other", &[4; 32], T0),
        s.server_secret("other", &[5; 32], T0)
    );
    assert_eq!(p.unwrap(), q.unwrap());
}

async fn server_secrets_are_swapped_only_from_the_expected_value(s: Arc<SqlStore>) {
    use signet_core::store::{SealedSecretStore, StoredSecret};
    assert!(s.stored_server_secrets().await.unwrap().is_empty());
    s.server_secret("b", &[1; 32], T0).await.unwrap();
    s.server_secret("a", &[9; 40], T0).await.unwrap();
    assert_eq!(
        s.stored_server_secrets().await.unwrap(),
        vec![
            StoredSecret {
                name: "a".into(),
                value: vec![9; 40]
            },
            StoredSecret {
                name: "b".into(),
                value: vec![1; 32]
            },
        ]
    );
    // A stale expectation or an unknown name changes nothing.
    assert!(!s.swap_server_secret("b", &[2; 32], &[3; 81]).await.unwrap());
    assert!(!s.swap_server_secret("nope", &[1; 32], &[3; 81]).await.unwrap());
    // Of many concurrent swaps from the same value, exactly one wins.
    let swaps = (0u8..8).map(|i| {
        let s = s.clone();
        async move { s.swap_server_secret("b", &[1; 32], &[i; 81]).await.unwrap() }
    });
    let won: Vec<bool> = futures::future::join_all(swaps).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let winner = won.iter().position(|w| *w).unwrap() as u8;
    assert_eq!(s.server_secret("b", &[7; 32], T0).await.unwrap(), vec![winner; 81]);
}

async fn ping_answers(s: Arc<SqlStore>) {
    s.ping().await.unwrap();
}

fn totp(user: UserId, last_step: i64) -> signet_core::credential::TotpCredential {
    signet_core::credential::TotpCredential {
        id: Uuid::new_v4(),
        user_id: user,
        name: "Phone".into(),
        sealed_seed: vec![1, 2, 3, 4],
        last_step,
        created_at: at(1),
        last_used_at: None,
    }
}

async fn totp_credentials_round_trip_and_advance_once_per_step(s: Arc<SqlStore>) {
    let a = user("t@example.com");
    s.insert_user(&a).await.unwrap();
    let t = totp(a.id, 100);
    let mut tx = s.tx().await;
    tx.insert_totp(&t).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.totps_of(a.id).await.unwrap(), vec![t.clone()]);
    let tid = t.id;
    let advance = |step: i64, when: u64| {
        let s = s.clone();
        async move {
            let mut tx = s.begin().await.unwrap();
            let r = tx.advance_totp_step(tid, step, at(when)).await.unwrap();
            tx.commit().await.unwrap();
            r
        }
    };
    assert!(!advance(100, 2).await, "the stored step itself is a replay");
    assert!(!advance(99, 2).await, "an earlier step too");
    assert!(advance(101, 3).await);
    let now = s.totps_of(a.id).await.unwrap().remove(0);
    assert_eq!((now.last_step, now.last_used_at), (101, Some(at(3))));
    // Twenty concurrent acceptances of one step: exactly one is recorded.
    let tasks = (0..20u64)
        .map(|i| tokio::spawn(advance(102, 10 + i)))
        .collect::<Vec<_>>();
    assert_eq!(winners(tasks).await, 1);
    // The checked form (ADR 0035; on SQLite sent with the commit): twenty
    // units racing with one step, each with a session; one commits, the
    // others are refused as `code_replayed` and leave no session.
    let tasks = (0..20u64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut tx = s.begin().await.unwrap();
                tx.advance_totp_step_or_refuse(tid, 103, at(30 + i)).await?;
                tx.insert_session(&session(a.id, &PlainToken::generate(TokenKind::Session)))
                    .await?;
                tx.commit().await
            })
        })
        .collect::<Vec<_>>();
    assert_eq!(committed_refusing_the_rest(tasks, Refusal::CodeReplayed).await, 1);
    assert_eq!(s.list_user_sessions(a.id, at(31)).await.unwrap().len(), 1);
    let mut tx = s.tx().await;
    assert!(tx.rename_totp(a.id, t.id, "Tablet").await.unwrap());
    assert_eq!(tx.remove_totp(a.id, t.id, 1).await.unwrap(), Removal::LastCredential);
    assert_eq!(tx.remove_totp(a.id, t.id, 0).await.unwrap(), Removal::Removed);
    tx.commit().await.unwrap();
    assert!(s.totps_of(a.id).await.unwrap().is_empty());
}

async fn recovery_codes_are_used_once_and_replaced_together(s: Arc<SqlStore>) {
    let (a, b) = (user("r@example.com"), user("q@example.com"));
    s.insert_user(&a).await.unwrap();
    s.insert_user(&b).await.unwrap();
    let hashes: Vec<TokenHash> = (0..10u8).map(|i| TokenHash::of(&[i])).collect();
    let set = Uuid::new_v4();
    let mut tx = s.tx().await;
    assert_eq!(tx.replace_recovery_codes(a.id, set, &hashes, at(1)).await.unwrap(), 0);
    tx.commit().await.unwrap();
    let listed = s.recovery_codes_of(a.id).await.unwrap().unwrap();
    assert_eq!((listed.id, listed.total, listed.left), (set, 10, 10));
    assert_eq!(s.recovery_code_used(a.id, &hashes[0]).await.unwrap(), Some(false));
    assert_eq!(
        s.recovery_code_used(b.id, &hashes[0]).await.unwrap(),
        None,
        "another account's code"
    );
    let use_code = |u: UserId, h: TokenHash| {
        let s = s.clone();
        async move {
            let mut tx = s.begin().await.unwrap();
            let r = tx.use_recovery_code(u, &h, at(5)).await.unwrap();
            tx.commit().await.unwrap();
            r
        }
    };
    assert_eq!(use_code(b.id, hashes[0]).await, None, "not for another account");
    let tasks = (0..20)
        .map(|_| {
            let used = use_code(a.id, hashes[0]);
            tokio::spawn(async move { used.await == Some(9) })
        })
        .collect::<Vec<_>>();
    assert_eq!(winners(tasks).await, 1, "one use, which counts nine left");
    assert_eq!(s.recovery_code_used(a.id, &hashes[0]).await.unwrap(), Some(true));
    let listed = s.recovery_codes_of(a.id).await.unwrap().unwrap();
    assert_eq!((listed.left, listed.last_used_at), (9, Some(at(5))));
    // Two codes used at once each report their own count.
    let (x, y) = tokio::join!(use_code(a.id, hashes[2]), use_code(a.id, hashes[3]));
    let mut lefts = [x.unwrap(), y.unwrap()];
    lefts.sort_unstable();
    assert_eq!(lefts, [7, 8]);
    // A new set replaces every code, used or not, in one unit.
    let fresh: Vec<TokenHash> = (10..20u8).map(|i| TokenHash::of(&[i])).collect();
    let set2 = Uuid::new_v4();
    let mut tx = s.tx().await;
    assert_eq!(tx.replace_recovery_codes(a.id, set2, &fresh, at(6)).await.unwrap(), 7);
    tx.commit().await.unwrap();
    assert_eq!(s.recovery_code_used(a.id, &hashes[1]).await.unwrap(), None);
    let listed = s.recovery_codes_of(a.id).await.unwrap().unwrap();
    assert_eq!((listed.id, listed.left), (set2, 10));
    let mut tx = s.tx().await;
    assert_eq!(tx.remove_recovery_codes(a.id, set, 0).await.unwrap(), Removal::NotFound);
    assert_eq!(tx.remove_recovery_codes(a.id, set2, 0).await.unwrap(), Removal::Removed);
    tx.commit().await.unwrap();
    assert_eq!(s.recovery_codes_of(a.id).await.unwrap(), None);
}

// ---------------------------------------------------------------- harness

fn oidc_client(
    client_id: &str,
    source: signet_core::oidc_client::ClientSource,
) -> signet_core::oidc_client::OidcClient {
    signet_core::oidc_client::OidcClient {
        id: Uuid::new_v4(),
        client_id: client_id.into(),
        name: "Wiki".into(),
        secret_hash: Some(TokenHash::of(b"secret")),
        settings: signet_core::oidc_client::ClientSettings {
            redirect_uris: vec!["https://wiki.example.com/cb".into()],
            first_party: true,
            ..Default::default()
        },
        source,
        created_at: T0,
        updated_at: T0,
        previous_secret: None,
    }
}

async fn oidc_client_updates_and_secret_rotations_spare_config_clients(s: Arc<SqlStore>) {
    use signet_core::oidc_client::{ClientSource, PreviousSecret};
    let mut cli = oidc_client("app", ClientSource::Admin);
    let conf = oidc_client("conf", ClientSource::Config);
    let mut tx = s.tx().await;
    tx.insert_oidc_client(&cli).await.unwrap();
    tx.put_config_oidc_client(&conf).await.unwrap();
    tx.commit().await.unwrap();

    cli.name = "Renamed".into();
    cli.settings.first_party = false;
    cli.updated_at = at(3);
    let mut tx = s.tx().await;
    assert!(tx.update_oidc_client(&cli).await.unwrap());
    assert!(!tx
        .update_oidc_client(&oidc_client("conf", ClientSource::Config))
        .await
        .unwrap());
    assert!(!tx
        .update_oidc_client(&oidc_client("nobody", ClientSource::Admin))
        .await
        .unwrap());
    tx.commit().await.unwrap();
    assert_eq!(s.oidc_client("app").await.unwrap().unwrap(), cli);

    // Rotation keeps the replaced hash, whatever it was at that moment.
    let new = TokenHash::of(b"new secret");
    let mut tx = s.tx().await;
    assert!(tx.rotate_oidc_client_secret("app", &new, at(100), at(4)).await.unwrap());
    assert!(!tx
        .rotate_oidc_client_secret("conf", &new, at(100), at(4))
        .await
        .unwrap());
    tx.commit().await.unwrap();
    let rotated = s.oidc_client("app").await.unwrap().unwrap();
    assert_eq!(rotated.secret_hash, Some(new));
    assert_eq!(
        rotated.previous_secret,
        Some(PreviousSecret {
            hash: TokenHash::of(b"secret"),
            expires_at: at(100)
        })
    );
    assert_eq!(rotated.updated_at, at(4));
    assert_eq!(rotated.accepted_secret_hashes(at(99)).len(), 2);
    assert_eq!(rotated.accepted_secret_hashes(at(100)), vec![&new]);
    assert_eq!(s.oidc_client("conf").await.unwrap().unwrap().previous_secret, None);

    // A public client has no secret to rotate.
    let mut public = oidc_client("spa", ClientSource::Admin);
    public.secret_hash = None;
    let mut tx = s.tx().await;
    tx.insert_oidc_client(&public).await.unwrap();
    assert!(!tx.rotate_oidc_client_secret("spa", &new, at(100), at(4)).await.unwrap());
    tx.commit().await.unwrap();
}

async fn a_stored_authorization_request_is_taken_once(s: Arc<SqlStore>) {
    let id = Uuid::new_v4();
    let mut tx = s.tx().await;
    tx.insert_oidc_request(id, "app", "{}", at(600)).await.unwrap();
    tx.commit().await.unwrap();
    let takers = (0..20).map(|_| {
        let s = s.clone();
        async move {
            let mut tx = s.tx().await;
            let took = tx.take_oidc_request(id).await.unwrap();
            tx.commit().await.unwrap();
            took
        }
    });
    let results = futures::future::join_all(takers).await;
    assert_eq!(results.iter().filter(|t| **t).count(), 1, "{results:?}");
}

async fn signing_keys_are_inserted_once_and_deleted_in_a_unit(s: Arc<SqlStore>) {
    let mut tx = s.tx().await;
    assert!(tx
        .insert_signing_key("oidc_signing_key_es256_v2", &[1; 40], T0)
        .await
        .unwrap());
    assert!(!tx
        .insert_signing_key("oidc_signing_key_es256_v2", &[2; 40], T0)
        .await
        .unwrap());
    tx.commit().await.unwrap();
    let rows = s.stored_server_secrets().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].value, vec![1; 40], "the first write wins");
    // Rolled back: nothing changes.
    let mut tx = s.tx().await;
    assert!(tx.delete_signing_key("oidc_signing_key_es256_v2").await.unwrap());
    tx.rollback().await.unwrap();
    assert_eq!(s.stored_server_secrets().await.unwrap().len(), 1);
    let mut tx = s.tx().await;
    assert!(tx.delete_signing_key("oidc_signing_key_es256_v2").await.unwrap());
    assert!(!tx.delete_signing_key("oidc_signing_key_es256_v2").await.unwrap());
    tx.commit().await.unwrap();
    assert!(s.stored_server_secrets().await.unwrap().is_empty());
}

/// The janitor's look for timed-out sessions that apps must be told of:
/// past their idle or absolute lifetime, with a redeemed code whose end no
/// app has been told yet; no other session.
async fn timed_out_sessions_with_apps_are_those_an_app_must_be_told_of(s: Arc<SqlStore>) {
    let account = user("timed-out@example.com");
    s.insert_user(&account).await.unwrap();
    let new_session = |idle_secs: u64, absolute: Timestamp| Session {
        idle_timeout: Duration::from_secs(idle_secs),
        absolute_expires_at: absolute,
        ..session(account.id, &PlainToken::generate(TokenKind::Session))
    };
    // Idle for 30 minutes at 2,000 s; past its absolute end; still live;
    // timed out without any code; with a code never redeemed; and one
    // whose end was announced already.
    let idle = new_session(1800, at(12 * 3600));
    let ended = new_session(86_400, at(1000));
    let live = new_session(86_400, at(86_400));
    let no_code = new_session(1800, at(12 * 3600));
    let unredeemed = new_session(1800, at(12 * 3600));
    let announced = new_session(1800, at(12 * 3600));
    let hashes: Vec<TokenHash> = (0..5u8).map(|i| TokenHash::of(&[b't', i])).collect();
    let with_code = [
        (&idle, true),
        (&ended, true),
        (&live, true),
        (&unredeemed, false),
        (&announced, true),
    ];
    let mut tx = s.tx().await;
    for sess in [&idle, &ended, &live, &no_code, &unredeemed, &announced] {
        tx.insert_session(sess).await.unwrap();
    }
    tx.commit().await.unwrap();
    // A code never redeemed was never stored (it lives sealed in the
    // browser's redirect until then).
    let mut tx = s.tx().await;
    for (i, (sess, redeem)) in with_code.iter().enumerate() {
        if *redeem {
            tx.redeem_oidc_code(
                &app_code(&hashes[i], Uuid::new_v4(), "app", account.id.0, sess.id.0),
                at(1),
            )
            .await
            .unwrap();
        }
    }
    tx.claim_oidc_logouts(account.id, Some(announced.id.0), at(2))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert!(s
        .timed_out_sessions_with_apps(at(100), None, 10)
        .await
        .unwrap()
        .is_empty());
    let mut want = vec![(account.id, idle.id), (account.id, ended.id)];
    want.sort_by_key(|(_, id)| id.0.to_string());
    assert_eq!(s.timed_out_sessions_with_apps(at(2000), None, 10).await.unwrap(), want);
    assert_eq!(
        s.timed_out_sessions_with_apps(at(2000), None, 1).await.unwrap(),
        want[..1]
    );
    assert_eq!(
        s.timed_out_sessions_with_apps(at(2000), Some(want[0].1), 10)
            .await
            .unwrap(),
        want[1..],
        "a look goes on from just after the last one"
    );

    // The purge removes the timed-out sessions no app must be told of, and
    // keeps the two that are waiting for their notices, and the live one.
    assert_eq!(s.purge_expired_sessions(at(2000)).await.unwrap(), 3);
    assert_eq!(s.timed_out_sessions_with_apps(at(2000), None, 10).await.unwrap(), want);
    let left: Vec<SessionId> = s
        .list_user_sessions(account.id, at(0))
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(left.len(), 3);
    for kept in [idle.id, ended.id, live.id] {
        assert!(left.contains(&kept));
    }

    // The janitor's end checks the timeout again: a live session stays.
    let mut tx = s.tx().await;
    assert!(!tx.delete_timed_out_session(live.id, at(2000)).await.unwrap());
    assert!(tx.delete_timed_out_session(idle.id, at(2000)).await.unwrap());
    assert!(!tx.delete_timed_out_session(idle.id, at(2000)).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        s.timed_out_sessions_with_apps(at(2000), None, 10).await.unwrap(),
        [(account.id, ended.id)]
    );
}

/// The account page's apps in one read: the clients a user approved and
/// those holding a live refresh token of theirs; nobody else's, and none
/// whose only token has expired or was revoked.
async fn the_apps_of_a_user_are_those_approved_or_holding_a_live_token(s: Arc<SqlStore>) {
    use signet_core::oidc_client::{ClientSource, OidcClient, OidcConsent};
    use signet_core::unit_of_work::NewRefreshToken;
    let ada = user("apps-ada@example.com");
    let bob = user("apps-bob@example.com");
    s.insert_user(&ada).await.unwrap();
    s.insert_user(&bob).await.unwrap();
    let consent = |client: &str| OidcConsent {
        client_id: client.into(),
        scopes: vec!["openid".into()],
        granted_at: T0,
    };
    let hashes: Vec<TokenHash> = (0..5u8).map(|i| TokenHash::of(&[b'a', i])).collect();
    let refresh = |i: usize, client: &'static str, user: &User, expires_at| NewRefreshToken {
        hash: &hashes[i],
        id: Uuid::new_v4(),
        family: Uuid::new_v4(),
        client_id: client,
        user_id: user.id.0,
        grant: "{}",
        expires_at,
    };
    let revoked = refresh(4, "revoked", &ada, at(600));
    let mut tx = s.tx().await;
    for id in ["approved", "holding", "spent", "bobs", "both", "revoked", "unused"] {
        tx.insert_oidc_client(&oidc_client(id, ClientSource::Admin))
            .await
            .unwrap();
    }
    tx.put_oidc_consent(ada.id, &consent("approved")).await.unwrap();
    tx.put_oidc_consent(ada.id, &consent("both")).await.unwrap();
    tx.put_oidc_consent(bob.id, &consent("bobs")).await.unwrap();
    tx.insert_oidc_refresh(&refresh(0, "holding", &ada, at(600)))
        .await
        .unwrap();
    tx.insert_oidc_refresh(&refresh(1, "both", &ada, at(600)))
        .await
        .unwrap();
    tx.insert_oidc_refresh(&refresh(2, "spent", &ada, at(10)))
        .await
        .unwrap();
    tx.insert_oidc_refresh(&refresh(3, "bobs", &bob, at(600)))
        .await
        .unwrap();
    tx.insert_oidc_refresh(&revoked).await.unwrap();
    tx.revoke_oidc_family(revoked.family, at(1)).await.unwrap();
    tx.commit().await.unwrap();

    let ids = |clients: Vec<OidcClient>| clients.into_iter().map(|c| c.client_id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.oidc_clients_of(ada.id, at(20)).await.unwrap()),
        ["approved", "both", "holding"]
    );
    assert_eq!(
        ids(s.oidc_clients_of(ada.id, at(5)).await.unwrap()),
        ["approved", "both", "holding", "spent"],
        "a token counts until it expires"
    );
    assert_eq!(ids(s.oidc_clients_of(bob.id, at(20)).await.unwrap()), ["bobs"]);
    let nobody = user("apps-nobody@example.com");
    assert!(s.oidc_clients_of(nobody.id, at(20)).await.unwrap().is_empty());
}

async fn oidc_clients_round_trip_and_config_never_takes_over_another_source(s: Arc<SqlStore>) {
    use signet_core::oidc_client::ClientSource;
    let cli = oidc_client("from-cli", ClientSource::Cli);
    let mut tx = s.tx().await;
    tx.insert_oidc_client(&cli).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.oidc_client("from-cli").await.unwrap().unwrap(), cli);
    assert!(
        s.oidc_client("FROM-CLI").await.unwrap().is_none(),
        "client ids are exact"
    );

    // A second registration of the same client_id is a conflict.
    let mut tx = s.tx().await;
    assert!(matches!(
        tx.insert_oidc_client(&oidc_client("from-cli", ClientSource::Cli)).await,
        Err(StoreError::Conflict(signet_core::ErrorCode::OidcClientIdTaken))
    ));
    tx.rollback().await.unwrap();

    // A config client is inserted, then replaced in place (same id and
    // creation time), and a public one keeps no hash.
    let mut conf = oidc_client("from-config", ClientSource::Config);
    let mut tx = s.tx().await;
    tx.put_config_oidc_client(&conf).await.unwrap();
    tx.commit().await.unwrap();
    let first = s.oidc_client("from-config").await.unwrap().unwrap();
    conf.id = Uuid::new_v4();
    conf.secret_hash = None;
    conf.name = "Wiki 2".into();
    conf.updated_at = at(5);
    let mut tx = s.tx().await;
    tx.put_config_oidc_client(&conf).await.unwrap();
    tx.commit().await.unwrap();
    let second = s.oidc_client("from-config").await.unwrap().unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.created_at, T0);
    assert_eq!(second.updated_at, at(5));
    assert_eq!(second.name, "Wiki 2");
    assert!(second.is_public());

    // The configuration cannot overwrite a client registered another way.
    let mut tx = s.tx().await;
    assert!(matches!(
        tx.put_config_oidc_client(&oidc_client("from-cli", ClientSource::Config))
            .await,
        Err(StoreError::Conflict(signet_core::ErrorCode::OidcClientIdTaken))
    ));
    tx.rollback().await.unwrap();
    assert_eq!(s.oidc_client("from-cli").await.unwrap().unwrap(), cli);
    let all: Vec<String> = s
        .list_oidc_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(all, ["from-cli", "from-config"]);
    let mut tx = s.tx().await;
    assert!(tx.delete_oidc_client("from-cli").await.unwrap());
    assert!(!tx.delete_oidc_client("from-cli").await.unwrap());
    tx.commit().await.unwrap();
    assert!(s.oidc_client("from-cli").await.unwrap().is_none());
}

async fn sqlite_store() -> (Arc<SqlStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/signet.db", dir.path().display());
    (Arc::new(SqlStore::connect(&url).await.unwrap()), dir)
}

fn phone(user: UserId, number: &str) -> signet_core::credential::PhoneCredential {
    signet_core::credential::PhoneCredential {
        id: Uuid::new_v4(),
        user_id: user,
        phone: signet_core::user::Phone::from_trusted(number.into()),
        name: "Phone".into(),
        created_at: at(1),
        last_used_at: None,
    }
}

async fn phones_are_one_per_account_and_removable(s: Arc<SqlStore>) {
    let (a, b) = (user("a@example.com"), user("b@example.com"));
    s.insert_user(&a).await.unwrap();
    s.insert_user(&b).await.unwrap();
    let p = phone(a.id, "+447400123456");
    let mut tx = s.begin().await.unwrap();
    tx.insert_phone(&p).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.phones_of(a.id).await.unwrap(), vec![p.clone()]);
    assert!(s.phones_of(b.id).await.unwrap().is_empty());
    // A second phone for the same account is refused and writes nothing.
    let mut tx = s.begin().await.unwrap();
    assert!(matches!(
        tx.insert_phone(&phone(a.id, "+447400123457")).await,
        Err(StoreError::Conflict(signet_core::ErrorCode::PhoneExists))
    ));
    drop(tx);
    // The same number on another account is allowed (a shared family phone).
    let mut tx = s.begin().await.unwrap();
    tx.insert_phone(&phone(b.id, "+447400123456")).await.unwrap();
    assert!(tx.rename_phone(a.id, p.id, "Work").await.unwrap());
    assert!(!tx.rename_phone(b.id, p.id, "Stolen").await.unwrap());
    tx.touch_phone(p.id, at(7)).await.unwrap();
    tx.commit().await.unwrap();
    let now = s.phones_of(a.id).await.unwrap().remove(0);
    assert_eq!((now.name.as_str(), now.last_used_at), ("Work", Some(at(7))));
    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.remove_phone(b.id, p.id, 0).await.unwrap(), Removal::NotFound);
    assert_eq!(tx.remove_phone(a.id, p.id, 1).await.unwrap(), Removal::LastCredential);
    assert_eq!(tx.remove_phone(a.id, p.id, 0).await.unwrap(), Removal::Removed);
    tx.commit().await.unwrap();
    assert!(s.phones_of(a.id).await.unwrap().is_empty());
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let (store, _dir) = super::sqlite_store().await;
                    assert_eq!(signet_core::store::Store::backend(&*store), "sqlite");
                    super::$check(store).await;
                }
            )*
        }
        // Without SIGNET_TEST_DATABASE_URL these are reported as ignored, with
        // the reason, rather than passing without having run: see build.rs
        // for why a compile-time cfg is the honest option in stable libtest.
        mod postgres {
            $(
                #[cfg_attr(
                    not(signet_test_postgres),
                    ignore = "SKIPPED: set SIGNET_TEST_DATABASE_URL to run on PostgreSQL"
                )]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let base = std::env::var("SIGNET_TEST_DATABASE_URL").ok().filter(|s| !s.is_empty()).expect(
                        "SIGNET_TEST_DATABASE_URL is unset: this PostgreSQL test was built for it or asked for \
                         with --include-ignored; set it (cargo rebuilds when it changes)",
                    );
                    let db = super::ScratchDb::create(&base).await.expect("PostgreSQL from SIGNET_TEST_DATABASE_URL is unreachable");
                    let store = std::sync::Arc::new(super::SqlStore::connect(&db.url).await.unwrap());
                    assert_eq!(signet_core::store::Store::backend(&*store), "postgres");
                    super::$check(store.clone()).await;
                    store.close().await;
                    db.drop_now().await.unwrap();
                }
            )*
        }
    };
}

/// A family revoked while one of its refresh tokens rotates leaves no token
/// that rotates as standing, in whichever order the two units land. On
/// PostgreSQL (READ COMMITTED) the revocation's `UPDATE` cannot see a token
/// inserted by a rotation that commits after it began; that token is still
/// refused, because every rotation reads its family's code, which the
/// revocation marked.
///
/// Both ways of rotating are raced: the locked statement, and the checked
/// write that follows a read (ADR 0040).
async fn a_family_revoked_while_a_token_rotates_leaves_nothing_usable(s: Arc<SqlStore>) {
    let account = user("oidc-race@example.com");
    s.insert_user(&account).await.unwrap();
    for (n, checked) in [(0u8, false), (1u8, true)] {
        revoke_while_rotating(&s, account.id.0, n, checked).await;
    }
}

async fn revoke_while_rotating(s: &Arc<SqlStore>, user: Uuid, n: u8, checked: bool) {
    use signet_core::unit_of_work::RefreshRotation;
    for round in 0..12u8 {
        let round_key = [n, round];
        let first = TokenHash::of(&[b'f', round_key[0], round_key[1]]);
        let next = TokenHash::of(&[b'n', round_key[0], round_key[1]]);
        let family = family_of(s, user, &TokenHash::of(&[b'c', round_key[0], round_key[1]]), &first).await;

        // The rotation issues the next token only when the family stood, as
        // the refresh grant does.
        let rotation = {
            let s = s.clone();
            tokio::spawn(async move {
                let mut tx = s.begin().await.unwrap();
                let stood = if checked {
                    match tx.rotate_oidc_refresh_checked(&first, "app", at(2)).await {
                        Ok(()) => true,
                        Err(StoreError::Refused(Refusal::RefreshRaced)) => false,
                        Err(e) => panic!("{e:?}"),
                    }
                } else {
                    matches!(
                        tx.rotate_oidc_refresh(&first, at(2)).await.unwrap(),
                        RefreshRotation::Rotated {
                            revoked: false,
                            grant_standing: true,
                            ..
                        }
                    )
                };
                if !stood {
                    tx.rollback().await.unwrap();
                    return false;
                }
                tx.insert_oidc_refresh(&app_refresh(&next, family, user)).await.unwrap();
                // On SQLite the checked write is refused at the commit.
                match tx.commit().await {
                    Ok(()) => true,
                    Err(StoreError::Refused(Refusal::RefreshRaced)) if checked => false,
                    Err(e) => panic!("{e:?}"),
                }
            })
        };
        let revocation = {
            let s = s.clone();
            tokio::spawn(async move {
                let mut tx = s.begin().await.unwrap();
                tx.revoke_oidc_family(family, at(2)).await.unwrap();
                tx.commit().await.unwrap();
            })
        };
        let issued = rotation.await.unwrap();
        revocation.await.unwrap();
        if issued {
            let mut tx = s.begin().await.unwrap();
            let later = tx.rotate_oidc_refresh(&next, at(3)).await.unwrap();
            tx.rollback().await.unwrap();
            assert!(
                !matches!(
                    later,
                    RefreshRotation::Rotated {
                        revoked: false,
                        grant_standing: true,
                        ..
                    }
                ),
                "round {round}: a token of a revoked family rotated as standing"
            );
        }
    }
}

/// A refresh token read as committed and found usable is rotated by a
/// checked write (the token endpoint's first way, ADR 0040): of 20
/// concurrent rotations exactly one commits and the others are refused
/// `refresh_raced`, on PostgreSQL at the write and on SQLite at the
/// commit; a token whose family's code was revoked, or whose user was
/// disabled, since it was read is refused too.
async fn a_refresh_token_read_usable_rotates_by_one_checked_write(s: Arc<SqlStore>) {
    use signet_core::unit_of_work::StoredRefresh;
    let account = user("oidc-read-rotation@example.com");
    s.insert_user(&account).await.unwrap();
    let user = account.id.0;
    let stored = |family: Uuid, rotated: bool, grant_standing: bool, user_active: bool| StoredRefresh {
        family,
        client_id: "app".into(),
        grant: "{}".into(),
        expires_at: at(600),
        revoked: false,
        rotated,
        grant_standing,
        user_active,
    };
    // Two families, each a code redeemed with its first refresh token.
    let mut families = Vec::new();
    for n in 0..2u8 {
        let token = TokenHash::of(&[b'r', n]);
        let family = family_of(&s, user, &TokenHash::of(&[b'c', n]), &token).await;
        families.push((family, token));
    }
    let (family, token) = families[0];
    assert_eq!(
        s.oidc_refresh_token(&token).await.unwrap(),
        Some(stored(family, false, true, true))
    );
    assert_eq!(s.oidc_refresh_token(&TokenHash::of(b"nope")).await.unwrap(), None);

    let rotate = |token: TokenHash, when: u64| {
        let s = s.clone();
        async move {
            let mut tx = s.begin().await.unwrap();
            tx.rotate_oidc_refresh_checked(&token, "app", at(when)).await?;
            tx.insert_oidc_refresh(&app_refresh(&TokenHash::of(&when.to_be_bytes()), family, user))
                .await?;
            tx.commit().await
        }
    };
    let tasks = (0..20u64)
        .map(|i| tokio::spawn(rotate(token, 2 + i)))
        .collect::<Vec<_>>();
    assert_eq!(committed_refusing_the_rest(tasks, Refusal::RefreshRaced).await, 1);
    assert_eq!(
        s.oidc_refresh_token(&token).await.unwrap(),
        Some(stored(family, true, true, true)),
        "rotated out once"
    );
    assert!(matches!(
        rotate(token, 40).await,
        Err(StoreError::Refused(Refusal::RefreshRaced))
    ));

    // Another client's rotation, or one once the token expired, is refused.
    let (_, second_token) = families[1];
    for (client, when) in [("other", 2), ("app", 600)] {
        let r = rotate_alone(&s, &second_token, client, at(when)).await;
        assert!(
            matches!(r, Err(StoreError::Refused(Refusal::RefreshRaced))),
            "{client} at {when}: {r:?}"
        );
    }

    // The second family: its code revoked since the read, then its user
    // disabled; either way the checked rotation is refused.
    let (second, token) = families[1];
    let mut tx = s.begin().await.unwrap();
    tx.revoke_oidc_family(second, at(3)).await.unwrap();
    tx.commit().await.unwrap();
    let read = s.oidc_refresh_token(&token).await.unwrap().unwrap();
    assert!(read.revoked && !read.grant_standing, "{read:?}");
    let r = rotate_alone(&s, &token, "app", at(4)).await;
    assert!(matches!(r, Err(StoreError::Refused(Refusal::RefreshRaced))), "{r:?}");

    // A token of the first family (its code unrevoked), its user disabled.
    let third = TokenHash::of(b"third");
    let mut tx = s.begin().await.unwrap();
    tx.insert_oidc_refresh(&app_refresh(&third, family, user))
        .await
        .unwrap();
    assert!(tx
        .set_user_status(UserId(user), signet_core::user::UserStatus::Disabled, at(6))
        .await
        .unwrap());
    tx.commit().await.unwrap();
    assert!(!s.oidc_refresh_token(&third).await.unwrap().unwrap().user_active);
    let r = rotate_alone(&s, &third, "app", at(7)).await;
    assert!(matches!(r, Err(StoreError::Refused(Refusal::RefreshRaced))), "{r:?}");
}

/// A unit that only rotates `token` by the checked write, as `client` at
/// `now`, and commits: refused on PostgreSQL at the write, on SQLite at the
/// commit.
async fn rotate_alone(s: &Arc<SqlStore>, token: &TokenHash, client: &str, now: Timestamp) -> StoreResult<()> {
    let mut tx = s.begin().await?;
    tx.rotate_oidc_refresh_checked(token, client, now).await?;
    tx.commit().await
}

async fn oidc_codes_and_refresh_tokens_are_single_use_and_revoke_their_family(s: Arc<SqlStore>) {
    use signet_core::unit_of_work::{CodeRedemption, RefreshRotation};
    let account = user("oidc-grants@example.com");
    s.insert_user(&account).await.unwrap();
    let user = account.id.0;
    let session = Uuid::new_v4();
    let code = TokenHash::of(b"code");
    let code_id = Uuid::new_v4();
    let mut tx = s.begin().await.unwrap();
    // The redeeming statement inserts the code's row and reads its user
    // (no session or consent of this user exists).
    assert!(matches!(
        tx.redeem_oidc_code(&app_code(&code, code_id, "app", user, session), at(1)).await.unwrap(),
        CodeRedemption::Redeemed { user: Some(u), session_live: false, consented: None, client_live: false }
            if u.id == account.id && u.email == account.email && u.is_active()
    ));
    let rt = TokenHash::of(b"refresh");
    tx.insert_oidc_refresh(&app_refresh(&rt, code_id, user)).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.oidc_code_standing(code_id).await.unwrap(), Some(true));
    assert!(matches!(
        tx.rotate_oidc_refresh(&rt, at(2)).await.unwrap(),
        RefreshRotation::Rotated { family, revoked: false, grant_standing: true, user_active: true, .. }
            if family == code_id
    ));
    assert!(matches!(
        tx.rotate_oidc_refresh(&rt, at(3)).await.unwrap(),
        RefreshRotation::Reused { family, .. } if family == code_id
    ));
    // Presented again, the same code (by its id, or its hash) finds its
    // row taken and revokes it.
    assert!(matches!(
        tx.redeem_oidc_code(&app_code(&code, code_id, "app", user, session), at(4)).await.unwrap(),
        CodeRedemption::Reused { id, ref client_id } if id == code_id && client_id == "app"
    ));
    assert_eq!(tx.oidc_code_standing(code_id).await.unwrap(), Some(false));
    assert!(matches!(
        tx.redeem_oidc_code(&app_code(&TokenHash::of(b"elsewhere"), code_id, "app", user, session), at(4))
            .await
            .unwrap(),
        CodeRedemption::Reused { id, .. } if id == code_id
    ));
    assert!(
        matches!(
            tx.redeem_oidc_code(&app_code(&code, Uuid::new_v4(), "app", user, session), at(4))
                .await
                .unwrap(),
            CodeRedemption::Unknown
        ),
        "a taken hash under another id is no redemption"
    );
    assert_eq!(tx.oidc_code_standing(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(
        tx.oidc_refresh_owner(&rt).await.unwrap(),
        Some((code_id, "app".to_owned())),
        "a rotated-out token still names its family"
    );
    assert_eq!(tx.oidc_refresh_owner(&TokenHash::of(b"nope")).await.unwrap(), None);
    tx.commit().await.unwrap();

    // A user's grants are revoked together.
    let other = TokenHash::of(b"other code");
    let other_id = Uuid::new_v4();
    let mut tx = s.begin().await.unwrap();
    assert!(matches!(
        tx.redeem_oidc_code(&app_code(&other, other_id, "app", user, session), at(5))
            .await
            .unwrap(),
        CodeRedemption::Redeemed { .. }
    ));
    assert_eq!(
        tx.revoke_oidc_user(UserId(user), at(5)).await.unwrap(),
        1,
        "the rotated-out refresh token of the first family"
    );
    assert_eq!(tx.oidc_code_standing(other_id).await.unwrap(), Some(false));
    // A revoked code presented again reads as reused.
    assert!(matches!(
        tx.redeem_oidc_code(&app_code(&other, other_id, "app", user, session), at(6))
            .await
            .unwrap(),
        CodeRedemption::Reused { .. }
    ));
    // The rotating statement tells a family whose code was revoked after
    // the token was stored, and a disabled user.
    let late = TokenHash::of(b"late refresh");
    tx.insert_oidc_refresh(&app_refresh(&late, other_id, user))
        .await
        .unwrap();
    assert!(tx
        .set_user_status(UserId(user), signet_core::user::UserStatus::Disabled, at(6))
        .await
        .unwrap());
    assert!(matches!(
        tx.rotate_oidc_refresh(&late, at(6)).await.unwrap(),
        RefreshRotation::Rotated {
            revoked: false,
            grant_standing: false,
            user_active: false,
            ..
        }
    ));
    // A code whose user is gone comes back without one.
    let orphan = TokenHash::of(b"orphan code");
    let orphan_id = Uuid::new_v4();
    assert!(matches!(
        tx.redeem_oidc_code(&app_code(&orphan, orphan_id, "app", Uuid::new_v4(), session), at(6))
            .await
            .unwrap(),
        CodeRedemption::Redeemed { user: None, .. }
    ));
    tx.commit().await.unwrap();
    // Introspection's pool read of the same standing, once committed.
    assert_eq!(s.oidc_grant_standing(orphan_id).await.unwrap(), Some(true));
    assert_eq!(s.oidc_grant_standing(other_id).await.unwrap(), Some(false));
    assert_eq!(s.oidc_grant_standing(Uuid::new_v4()).await.unwrap(), None);

    // Back-channel logout: only redeemed codes, of the session asked, each
    // announced once.
    let mut tx = s.begin().await.unwrap();
    let second_session = Uuid::new_v4();
    for (n, (client, sid)) in [("app", second_session), ("wiki", second_session), ("wiki", session)]
        .into_iter()
        .enumerate()
    {
        let h = TokenHash::of(format!("logout code {n}").as_bytes());
        tx.redeem_oidc_code(&app_code(&h, Uuid::new_v4(), client, user, sid), at(6))
            .await
            .unwrap();
    }
    assert_eq!(
        tx.claim_oidc_logouts(UserId(user), Some(second_session), at(7))
            .await
            .unwrap(),
        vec![("app".to_owned(), second_session), ("wiki".to_owned(), second_session)]
    );
    assert_eq!(
        tx.claim_oidc_logouts(UserId(user), Some(second_session), at(8))
            .await
            .unwrap(),
        vec![],
        "announced once"
    );
    assert_eq!(
        tx.claim_oidc_logouts(UserId(user), None, at(9)).await.unwrap(),
        vec![("app".to_owned(), session), ("wiki".to_owned(), session)],
        "the first two codes (one pair) and the wiki's"
    );
    assert_eq!(tx.claim_oidc_logouts(UserId(user), None, at(10)).await.unwrap(), vec![]);

    // A step-up replaces the session: the code follows it, keeping its sid.
    let (before, after) = (Uuid::new_v4(), Uuid::new_v4());
    let h = TokenHash::of(b"stepped-up code");
    tx.redeem_oidc_code(&app_code(&h, Uuid::new_v4(), "app", user, before), at(11))
        .await
        .unwrap();
    assert_eq!(
        tx.move_oidc_session(UserId(Uuid::new_v4()), before, after)
            .await
            .unwrap(),
        0,
        "another user's"
    );
    assert_eq!(tx.move_oidc_session(UserId(user), before, after).await.unwrap(), 1);
    assert_eq!(
        tx.claim_oidc_logouts(UserId(user), Some(before), at(12)).await.unwrap(),
        vec![]
    );
    assert_eq!(
        tx.claim_oidc_logouts(UserId(user), Some(after), at(12)).await.unwrap(),
        vec![("app".to_owned(), before)]
    );
    tx.commit().await.unwrap();
}

// Concurrent ends of the same sessions (a sign-out racing an admin's
// disable): each code's end is announced by exactly one of them.
async fn concurrent_logout_claims_announce_each_code_once(s: Arc<SqlStore>) {
    let user = Uuid::new_v4();
    let mut tx = s.begin().await.unwrap();
    for n in 0..5 {
        let h = TokenHash::of(format!("claimed code {n}").as_bytes());
        tx.redeem_oidc_code(
            &app_code(&h, Uuid::new_v4(), &format!("app{n}"), user, Uuid::new_v4()),
            at(1),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let tasks = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut tx = s.begin().await.unwrap();
                let claimed = tx.claim_oidc_logouts(UserId(user), None, at(2)).await.unwrap();
                tx.commit().await.unwrap();
                claimed.len()
            })
        })
        .collect::<Vec<_>>();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 5);
}

// What a redemption reads with its insert: whether the code's session is
// still live (present, its user's, not timed out), the user's consent for
// the code's client, and whether that client is still registered.
async fn redeeming_a_code_reads_its_session_and_consent(s: Arc<SqlStore>) {
    use signet_core::oidc_client::{ClientSource, OidcConsent};
    use signet_core::unit_of_work::CodeRedemption;
    let account = user("oidc-redeem-reads@example.com");
    let other = user("oidc-redeem-other@example.com");
    s.insert_user(&account).await.unwrap();
    s.insert_user(&other).await.unwrap();
    let live = session(account.id, &PlainToken::generate(TokenKind::Session));
    let someone_elses = session(other.id, &PlainToken::generate(TokenKind::Session));
    let mut tx = s.tx().await;
    tx.insert_session(&live).await.unwrap();
    tx.insert_session(&someone_elses).await.unwrap();
    tx.insert_oidc_client(&oidc_client("third", ClientSource::Admin))
        .await
        .unwrap();
    tx.put_oidc_consent(
        account.id,
        &OidcConsent {
            client_id: "third".into(),
            scopes: vec!["openid".into(), "email".into()],
            granted_at: T0,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let redeem = |n: u8, client: &'static str, session: Uuid, now: Timestamp| {
        let s = s.clone();
        async move {
            let hash = TokenHash::of(&[b'r', n]);
            let mut tx = s.tx().await;
            let got = tx
                .redeem_oidc_code(&app_code(&hash, Uuid::new_v4(), client, account.id.0, session), now)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            match got {
                CodeRedemption::Redeemed {
                    session_live,
                    consented,
                    user,
                    client_live,
                } => {
                    assert_eq!(user.map(|u| u.id), Some(account.id));
                    assert_eq!(client_live, client == "third", "only `third` is registered");
                    (session_live, consented)
                }
                other => panic!("not redeemed: {other:?}"),
            }
        }
    };
    assert_eq!(
        redeem(1, "third", live.id.0, at(1)).await,
        (true, Some(vec!["openid".to_owned(), "email".to_owned()]))
    );
    assert_eq!(
        redeem(2, "first", live.id.0, at(1)).await,
        (true, None),
        "no consent for this client"
    );
    assert_eq!(
        redeem(3, "first", someone_elses.id.0, at(1)).await,
        (false, None),
        "another user's session"
    );
    assert_eq!(
        redeem(4, "first", live.id.0, at(1900)).await,
        (false, None),
        "idle past its timeout"
    );
    assert_eq!(
        redeem(5, "first", Uuid::new_v4(), at(1)).await,
        (false, None),
        "no such session"
    );
}

// A code redeemed while its user is signed out everywhere: whichever unit
// goes first, the code does not stand once both committed. On PostgreSQL
// (READ COMMITTED) this holds because the redemption locks the session row
// before its insert; SQLite's single writer orders the two units.
async fn a_redemption_racing_an_end_everywhere_never_stands(s: Arc<SqlStore>) {
    use signet_core::unit_of_work::CodeRedemption;
    let account = user("oidc-race-end@example.com");
    s.insert_user(&account).await.unwrap();
    let (first, second) = (
        session(account.id, &PlainToken::generate(TokenKind::Session)),
        session(account.id, &PlainToken::generate(TokenKind::Session)),
    );
    // The redemption first: the end waits for it and revokes its code.
    s.insert_session(&first).await.unwrap();
    let (hash, id) = (TokenHash::of(b"race first"), Uuid::new_v4());
    let mut redemption = s.begin().await.unwrap();
    assert!(matches!(
        redemption
            .redeem_oidc_code(&app_code(&hash, id, "app", account.id.0, first.id.0), at(1))
            .await
            .unwrap(),
        CodeRedemption::Redeemed { session_live: true, .. }
    ));
    let ending = {
        let (s, user) = (s.clone(), account.id);
        tokio::spawn(async move {
            let mut tx = s.begin().await.unwrap();
            tx.delete_user_sessions(user).await.unwrap();
            tx.revoke_oidc_user(user, at(2)).await.unwrap();
            tx.commit().await.unwrap();
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    redemption.commit().await.unwrap();
    ending.await.unwrap();
    assert_eq!(
        s.oidc_grant_standing(id).await.unwrap(),
        Some(false),
        "revoked by the end"
    );

    // The end first: the redemption waits for it and finds no session.
    s.insert_session(&second).await.unwrap();
    let mut ending = s.begin().await.unwrap();
    ending.delete_user_sessions(account.id).await.unwrap();
    let redeeming = {
        let s = s.clone();
        tokio::spawn(async move {
            let (hash, id) = (TokenHash::of(b"race second"), Uuid::new_v4());
            let mut tx = s.begin().await.unwrap();
            let got = tx
                .redeem_oidc_code(&app_code(&hash, id, "app", account.id.0, second.id.0), at(1))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            got
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    ending.revoke_oidc_user(account.id, at(2)).await.unwrap();
    ending.commit().await.unwrap();
    assert!(matches!(
        redeeming.await.unwrap(),
        CodeRedemption::Redeemed {
            session_live: false,
            ..
        }
    ));
}

// Concurrent redemptions of one code: exactly one inserts its row, every
// other finds it taken (on PostgreSQL it waits for the winner's commit).
async fn concurrent_code_redemptions_have_one_winner(s: Arc<SqlStore>) {
    use signet_core::unit_of_work::CodeRedemption;
    let code = TokenHash::of(b"contended code");
    let (id, user, session) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let tasks = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut tx = s.begin().await.unwrap();
                let won = matches!(
                    tx.redeem_oidc_code(&app_code(&code, id, "app", user, session), at(1))
                        .await
                        .unwrap(),
                    CodeRedemption::Redeemed { .. }
                );
                tx.commit().await.unwrap();
                won
            })
        })
        .collect();
    assert_eq!(winners(tasks).await, 1);
}

conformance!(
    users_are_unique_by_case_insensitive_email,
    users_list_in_pages,
    disabling_a_user_ends_all_their_sessions,
    sessions_round_trip_and_rotate,
    sessions_expire_and_end_with_their_credential,
    flows_update_by_compare_and_swap_and_expire,
    one_time_secrets_are_used_once_and_scoped_by_purpose,
    fifty_concurrent_redemptions_give_exactly_one_session,
    a_flows_code_is_redeemed_by_exactly_one_racer_and_only_by_its_flow_and_user,
    a_refusal_before_the_units_last_call_ends_the_unit,
    redemption_for_the_wrong_user_writes_nothing,
    admin_tokens_are_found_by_hash_until_revoked,
    recovery_ticket_people_count_once_and_approval_flips_once,
    cooling_off_and_known_devices_are_kept_per_credential_and_per_user,
    audit_chains_stay_whole_under_concurrent_appends,
    outbox_leases_retries_and_scrubs,
    outbox_records_and_claims_in_one_unit,
    outbox_queued_leased_is_held_like_a_claim,
    concurrent_workers_never_share_a_message,
    a_renewed_lease_keeps_a_slow_send_to_its_worker,
    expired_messages_are_dropped_with_their_record,
    retry_now_makes_every_waiting_message_due,
    throttle_windows_count_and_roll_over,
    concurrent_hits_each_get_a_distinct_count,
    failure_runs_grow_until_cleared,
    failure_runs_change_inside_a_unit_and_roll_back_with_it,
    a_run_ended_in_a_unit_answers_what_it_was_and_counts_the_attempt,
    a_swap_racing_a_run_being_ended_waits_and_does_not_land,
    a_flows_secrets_are_revoked_together,
    a_failure_run_is_swapped_by_exactly_one_of_many,
    secrets_issued_at_once_for_one_flow_leave_exactly_one_live,
    ping_answers,
    passkeys_round_trip_and_are_unique_across_users,
    a_passkey_use_is_one_conditional_write,
    removing_passkeys_keeps_the_last_when_asked,
    ceremonies_are_taken_once_by_their_session,
    server_secrets_are_created_once,
    a_failed_audit_append_rolls_its_change_back,
    a_flow_is_finished_once_and_remembered,
    checked_writes_let_exactly_one_racer_commit_and_spare_its_neighbours,
    an_abandoned_unit_of_work_leaves_nothing,
    server_secrets_are_swapped_only_from_the_expected_value,
    phones_are_one_per_account_and_removable,
    totp_credentials_round_trip_and_advance_once_per_step,
    recovery_codes_are_used_once_and_replaced_together,
    oidc_clients_round_trip_and_config_never_takes_over_another_source,
    the_apps_of_a_user_are_those_approved_or_holding_a_live_token,
    timed_out_sessions_with_apps_are_those_an_app_must_be_told_of,
    oidc_client_updates_and_secret_rotations_spare_config_clients,
    signing_keys_are_inserted_once_and_deleted_in_a_unit,
    a_stored_authorization_request_is_taken_once,
    oidc_codes_and_refresh_tokens_are_single_use_and_revoke_their_family,
    a_refresh_token_read_usable_rotates_by_one_checked_write,
    a_family_revoked_while_a_token_rotates_leaves_nothing_usable,
    concurrent_code_redemptions_have_one_winner,
    redeeming_a_code_reads_its_session_and_consent,
    a_redemption_racing_an_end_everywhere_never_stands,
    concurrent_logout_claims_announce_each_code_once,
);

/// How many records the audit log holds (on PostgreSQL a failed append
/// leaves a gap in `seq`, so counting records, not reading the newest
/// `seq`, says how many were appended).
async fn audit_count(s: &SqlStore) -> usize {
    s.audit_range(0, u32::MAX).await.unwrap().len()
}

/// PostgreSQL (ADR 0036): an append takes a lane no other transaction
/// holds, so a transaction sitting on a lane (here, a connection of the
/// test's own holding fifteen of the sixteen) holds up no other unit; with
/// every lane held, an append waits for one and commits when it is free; a
/// unit's records share its lane; and the log verifies across its lanes.
#[cfg_attr(
    not(signet_test_postgres),
    ignore = "SKIPPED: set SIGNET_TEST_DATABASE_URL to run on PostgreSQL"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_append_takes_a_lane_no_one_holds_and_waits_only_when_all_are_held() {
    use sqlx::Connection;
    let db = postgres_scratch().await;
    let s = Arc::new(SqlStore::connect(&db.url).await.unwrap());
    let ev = AuditEvent::new(EventType::UserCreated, Actor::Cli, Outcome::Success);
    // Two records of one unit: one lane, linked one after the other.
    let mut tx = s.tx().await;
    audit_in(&mut tx, &ev).await.unwrap();
    audit_in(&mut tx, &ev).await.unwrap();
    tx.commit().await.unwrap();
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT id FROM audit_head WHERE id < 16 FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), s.append_audit(&ev, Uuid::new_v4(), at(2)))
        .await
        .expect("an append waited for a lane while one was free")
        .unwrap();
    sqlx::query("SELECT id FROM audit_head WHERE id = 16 FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let waiting = {
        let (s, ev) = (s.clone(), ev.clone());
        tokio::spawn(async move { s.append_audit(&ev, Uuid::new_v4(), at(3)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "every lane is held: the append waits");
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the append went on once its lane was free")
        .unwrap()
        .unwrap();
    let records = s.audit_range(0, 100).await.unwrap();
    assert_eq!(records.len(), 4);
    assert_eq!(records[0].lane, records[1].lane, "a unit's records share its lane");
    assert_eq!(records[1].prev_hash, records[0].hash);
    assert_eq!(records[2].lane, 16, "the third record took the one free lane");
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
    let mut v = Verifier::new(&s.audit_ends().await.unwrap());
    for r in &records {
        v.check(r).unwrap();
    }
    assert_eq!(v.finish().unwrap(), 4);
    s.close().await;
    db.drop_now().await.unwrap();
}

/// Appends a record while another connection holds every audit lane, and
/// returns how long the append waited before it failed as `Busy` (the
/// lanes are released after).
async fn append_while_every_lane_is_held(url: &str, s: &Arc<SqlStore>) -> Duration {
    use sqlx::Connection;
    let mut holder = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT id FROM audit_head FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let ev = AuditEvent::new(EventType::UserCreated, Actor::Cli, Outcome::Success);
    let started = std::time::Instant::now();
    let waited = tokio::time::timeout(Duration::from_secs(15), s.append_audit(&ev, Uuid::new_v4(), at(1)))
        .await
        .expect("the wait for a lane ends at the lock timeout");
    assert!(matches!(waited, Err(StoreError::Busy(_))), "{waited:?}");
    let elapsed = started.elapsed();
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    elapsed
}

/// PostgreSQL: a unit that waits for a row lock longer than the store's
/// `lock_timeout` (5 s, the counterpart of SQLite's `busy_timeout`) fails
/// as `Busy`, answered 503 `storage_busy`, rather than waiting until the
/// request deadline cancels it; and nothing of it is written. Here every
/// audit lane is held by another connection.
#[cfg_attr(
    not(signet_test_postgres),
    ignore = "SKIPPED: set SIGNET_TEST_DATABASE_URL to run on PostgreSQL"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_unit_waiting_on_a_lock_past_the_lock_timeout_is_busy() {
    let db = postgres_scratch().await;
    let s = Arc::new(SqlStore::connect(&db.url).await.unwrap());
    let waited = append_while_every_lane_is_held(&db.url, &s).await;
    assert!(
        waited >= Duration::from_secs(4),
        "it waited for the timeout: {waited:?}"
    );
    assert_eq!(audit_count(&s).await, 0);
    // The connection that timed out serves the next unit.
    let ev = AuditEvent::new(EventType::UserCreated, Actor::Cli, Outcome::Success);
    s.append_audit(&ev, Uuid::new_v4(), at(2)).await.unwrap();
    assert_eq!(audit_count(&s).await, 1);
    s.close().await;
    db.drop_now().await.unwrap();
}

/// PostgreSQL: a `lock_timeout` the URL sets wins over the store's 5 s,
/// and migrating waits as long as another migration (here, a connection
/// holding the migrations table) takes, longer than those 5 s, instead of
/// failing.
#[cfg_attr(
    not(signet_test_postgres),
    ignore = "SKIPPED: set SIGNET_TEST_DATABASE_URL to run on PostgreSQL"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_operators_lock_timeout_wins_and_migrations_wait_without_one() {
    use sqlx::Connection;
    let db = postgres_scratch().await;
    // The operator's own value (here 1 s) wins over the store's 5 s (shown
    // by `postgres_a_unit_waiting_on_a_lock_past_the_lock_timeout_is_busy`).
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let own = Arc::new(
        SqlStore::connect(&format!("{}{sep}options=-c%20lock_timeout%3D1s", db.url))
            .await
            .unwrap(),
    );
    let waited = append_while_every_lane_is_held(&db.url, &own).await;
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    own.close().await;

    let s = SqlStore::connect(&db.url).await.unwrap();
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(6)).await;
        sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    });
    let started = std::time::Instant::now();
    s.migrate().await.expect("migrating waits for the lock, past 5 s");
    assert!(started.elapsed() >= Duration::from_secs(5));
    release.await.unwrap();
    s.close().await;
    db.drop_now().await.unwrap();
}

/// A record inserted behind the store's back (its lane's head not moved)
/// is caught by the next verification, even though the walk takes a record
/// above its lane's head for one appended while it ran (ADR 0036).
async fn a_record_inserted_without_its_head_fails_verification(url: &str) {
    use sqlx::Connection;
    let s = Arc::new(SqlStore::connect(url).await.unwrap());
    let ev = AuditEvent::new(EventType::UserCreated, Actor::Cli, Outcome::Success);
    s.append_audit(&ev, Uuid::new_v4(), at(1)).await.unwrap();
    // The walk `signet audit verify` makes.
    let verify = || async {
        let mut v = Verifier::new(&s.audit_ends().await.unwrap());
        for r in s.audit_range(0, 100).await.unwrap() {
            if r.seq > v.covers() {
                break;
            }
            v.check(&r)?;
        }
        v.finish()
    };
    assert_eq!(verify().await, Ok(1));
    let forge = "INSERT INTO audit_log (seq, id, at, type, actor, outcome, details, prev_hash, hash, lane) \
                 VALUES (1000, '00000000-0000-4000-8000-00000000f06e', 0, 'user.created', 'cli', 'success', '{}', ";
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let zero = "decode(repeat('00', 32), 'hex')";
        sqlx::query(&format!("{forge}{zero}, {zero}, 1)"))
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let zero = format!("X'{}'", "00".repeat(32));
        sqlx::query(&format!("{forge}{zero}, {zero}, 1)"))
            .execute(&mut c)
            .await
            .unwrap();
    }
    assert!(matches!(
        verify().await,
        Err(signet_core::audit::ChainError::AboveHead {
            lane: 1,
            newest: 1_000,
            ..
        })
    ));
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_record_inserted_without_its_head_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    a_record_inserted_without_its_head_fails_verification(&format!("sqlite://{}/signet.db", dir.path().display()))
        .await;
}

#[cfg_attr(
    not(signet_test_postgres),
    ignore = "SKIPPED: set SIGNET_TEST_DATABASE_URL to run on PostgreSQL"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_record_inserted_without_its_head_fails_verification() {
    let db = postgres_scratch().await;
    a_record_inserted_without_its_head_fails_verification(&db.url).await;
    db.drop_now().await.unwrap();
}

/// A fresh PostgreSQL database under `SIGNET_TEST_DATABASE_URL`, for the
/// PostgreSQL-only tests outside [`conformance!`].
async fn postgres_scratch() -> ScratchDb {
    let base = std::env::var("SIGNET_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .expect("SIGNET_TEST_DATABASE_URL is unset");
    ScratchDb::create(&base)
        .await
        .expect("PostgreSQL from SIGNET_TEST_DATABASE_URL is unreachable")
}
