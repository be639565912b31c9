//! Step-up: it raises exactly the live session it names, once.

use std::time::Duration;

use signet_app::journeys::StepOutcome;
use signet_app::{sessions, step_up};
use signet_core::audit::EventType;
use signet_core::method::{MethodName, StepInput};
use signet_core::session::{Aal, SessionId};
use signet_core::{ErrorCode, Result};

use crate::harness::{code_of, completed, details, names, origin, Harness, RIGHT};

async fn step(h: &Harness, flow: &str, session: Option<SessionId>) -> Result<StepOutcome> {
    signet_app::login::step(
        &h.app,
        signet_app::journeys::FlowRef::Handle(flow),
        MethodName::Passkey.as_str(),
        Ok(StepInput::Code(RIGHT.into())),
        None,
        &origin(),
        session,
    )
    .await
}

#[tokio::test]
async fn a_step_up_raises_exactly_the_session_it_names_and_only_when_presented_by_it() {
    let h = Harness::with_fakes().await;
    let user = h.user("ada@example.com", &[]).await;
    let a = h.login("ada@example.com").await;
    let b = h.login("ada@example.com").await;
    h.advance(Duration::from_secs(120));

    let started = step_up::start(&h.app, &a, None, None, &origin()).await.unwrap();
    assert_eq!(names(&started.methods), [MethodName::Passkey, MethodName::Totp]);
    let flow = started.handle;

    // Without a session the caller is not signed in; with another session
    // of the same user the step-up is not theirs.
    assert_eq!(code_of(step(&h, &flow, None).await), ErrorCode::Unauthenticated);
    assert_eq!(
        code_of(step(&h, &flow, Some(b.session.id)).await),
        ErrorCode::StepUpSessionMismatch
    );

    let raised = completed(step(&h, &flow, Some(a.session.id)).await.unwrap()).session;
    assert_ne!(raised.id, a.session.id, "a raised session is a new session (rotation)");
    assert_eq!(raised.aal, Aal::Aal2);
    assert_eq!(raised.auth_time, h.app.clock.now(), "the step-up's proof is fresh");
    assert_eq!(
        raised.absolute_expires_at, a.session.absolute_expires_at,
        "a step-up never extends a session's life"
    );

    let live: Vec<SessionId> = sessions::list_own(&h.app, user.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(!live.contains(&a.session.id), "the named session was replaced");
    assert!(live.contains(&raised.id));
    assert!(live.contains(&b.session.id), "the other session is untouched");
    assert_eq!(live.len(), 2);

    let records = h.records(EventType::SessionSteppedUp).await;
    assert_eq!(records.len(), 1);
    assert_eq!(details(&records[0])["old_session_id"], a.session.id.0.to_string());
    h.assert_chain_intact().await;
}

#[tokio::test]
async fn a_step_up_of_a_session_that_ended_meanwhile_raises_nothing() {
    let h = Harness::with_fakes().await;
    let user = h.user("ada@example.com", &[]).await;
    let a = h.login("ada@example.com").await;
    let started = step_up::start(&h.app, &a, None, None, &origin()).await.unwrap();
    sessions::end(&h.app, &a, &origin()).await.unwrap();

    assert_eq!(
        code_of(step(&h, &started.handle, Some(a.session.id)).await),
        ErrorCode::Unauthenticated
    );
    assert!(sessions::list_own(&h.app, user.id).await.unwrap().is_empty());
    assert!(h.records(EventType::SessionSteppedUp).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_completions_of_one_step_up_raise_the_session_once() {
    let h = Harness::with_fakes().await;
    let user = h.user("ada@example.com", &[]).await;
    let a = h.login("ada@example.com").await;
    let started = step_up::start(&h.app, &a, None, None, &origin()).await.unwrap();
    let flow = started.handle;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let app = h.app.clone();
        let session = a.session.id;
        let flow = flow.clone();
        tasks.spawn(async move {
            signet_app::login::step(
                &app,
                signet_app::journeys::FlowRef::Handle(&flow),
                MethodName::Passkey.as_str(),
                Ok(StepInput::Code(RIGHT.into())),
                None,
                &origin(),
                Some(session),
            )
            .await
        });
    }
    let mut raised = 0;
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            Ok(outcome) => {
                completed(outcome);
                raised += 1;
            }
            Err(e) => assert!(
                matches!(e.code(), ErrorCode::FlowExpired | ErrorCode::Unauthenticated),
                "a losing completion is told the flow or the session is gone, not {:?}",
                e.code()
            ),
        }
    }
    assert_eq!(raised, 1);
    assert_eq!(sessions::list_own(&h.app, user.id).await.unwrap().len(), 1);
    assert_eq!(h.records(EventType::SessionSteppedUp).await.len(), 1);
    h.assert_chain_intact().await;
}
