//! Invitations: a link redeemed once, whatever the concurrency.

use signet_app::{invitations, sessions, Actor};
use signet_core::audit::EventType;
use signet_core::session::{Aal, SessionMode, SessionScope};
use signet_core::ErrorCode;

use crate::harness::{origin, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_redemptions_of_one_invitation_give_exactly_one_session() {
    let h = Harness::new().await;
    let ada = h.user("ada@example.com", &[]).await;
    let issued = invitations::invite(&h.app, &Actor::Cli, &origin(), ada.id)
        .await
        .unwrap();
    let token = issued.link.rsplit('/').next().unwrap().to_owned();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let app = h.app.clone();
        let token = token.clone();
        tasks.spawn(async move { invitations::redeem(&app, &token, SessionMode::Api, &origin(), None).await });
    }
    let mut won = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            Ok(issued) => won.push(issued.session),
            Err(e) => assert_eq!(e.code(), ErrorCode::InvitationInvalid),
        }
    }
    assert_eq!(won.len(), 1, "one redemption wins");
    let session = &won[0];
    assert_eq!(
        session.scope,
        SessionScope::Enrollment,
        "an invitation only lets its holder enroll"
    );
    assert_eq!(session.aal, Aal::Aal1, "a mailbox proves aal1 at most");

    let live = sessions::list_own(&h.app, ada.id).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, session.id);
    assert_eq!(h.records(EventType::InvitationRedeemed).await.len(), 1);
    assert_eq!(h.records(EventType::InvitationRejected).await.len(), 49);
    h.assert_chain_intact().await;
}
