//! One unit of work (ADR 0010): when a use case's audit record cannot be
//! written, nothing of its change remains, and what it would have consumed
//! (a flow, an invitation) still works once storage does.

use signet_app::{credentials, invitations, sessions, Actor};
use signet_core::audit::EventType;
use signet_core::flow::Demand;
use signet_core::method::MethodName;
use signet_core::session::{Aal, SessionMode};
use signet_core::ErrorCode;

use crate::credentials::{passkey, signed_in_with};
use crate::harness::{code_of, completed, origin, Harness, RIGHT};

#[tokio::test]
async fn a_login_whose_success_record_cannot_be_written_leaves_no_session_and_burns_no_flow() {
    let h = Harness::with_fakes().await;
    let ada = h.user("ada@example.com", &[]).await;
    let flow = h.start_login("ada@example.com", Demand::level(Aal::Aal1)).await.handle;
    let code = h.send_code(&flow, "ada@example.com").await;
    h.step(&flow, MethodName::EmailOtp, &code).await.unwrap();

    h.faults.fail_audit(EventType::LoginSucceeded);
    assert_eq!(
        code_of(h.step(&flow, MethodName::Passkey, RIGHT).await),
        ErrorCode::StorageFull
    );
    assert!(sessions::list_own(&h.app, ada.id).await.unwrap().is_empty());
    assert!(h.records(EventType::LoginSucceeded).await.is_empty());
    assert!(
        h.records(EventType::FallbackUsed).await.is_empty(),
        "the fallback use counts only with its login"
    );
    assert!(h
        .outbox()
        .await
        .iter()
        .all(|m| m.template != signet_app::messages::FALLBACK_USED));

    // Nothing was consumed: once storage works, the same flow completes.
    h.faults.heal();
    let issued = completed(h.step(&flow, MethodName::Passkey, RIGHT).await.unwrap());
    let live = sessions::list_own(&h.app, ada.id).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, issued.session.id);
    assert_eq!(h.records(EventType::LoginSucceeded).await.len(), 1);
    assert_eq!(h.records(EventType::FallbackUsed).await.len(), 1);
    h.assert_chain_intact().await;
}

#[tokio::test]
async fn a_removal_whose_record_cannot_be_written_keeps_the_credential_and_its_sessions() {
    let h = Harness::new().await;
    let ada = h.user("ada@example.com", &[]).await;
    let laptop = passkey(&h, &ada, "Laptop").await;
    passkey(&h, &ada, "Phone").await;
    let current = signed_in_with(&h, &ada, laptop).await;
    let queued = h.outbox().await.len();

    h.faults.fail_audit(EventType::CredentialRemoved);
    assert_eq!(
        code_of(credentials::remove(&h.app, &current, &origin(), laptop).await),
        ErrorCode::StorageFull
    );
    assert_eq!(credentials::list(&h.app, &ada).await.unwrap().len(), 2);
    assert_eq!(sessions::list_own(&h.app, ada.id).await.unwrap().len(), 1);
    assert_eq!(
        h.outbox().await.len(),
        queued,
        "no notice of a removal that did not happen"
    );
    h.assert_chain_intact().await;
}

#[tokio::test]
async fn an_invitation_whose_redemption_cannot_be_recorded_is_not_burned() {
    let h = Harness::new().await;
    let ada = h.user("ada@example.com", &[]).await;
    let link = invitations::invite(&h.app, &Actor::Cli, &origin(), ada.id)
        .await
        .unwrap()
        .link;
    let token = link.rsplit('/').next().unwrap();

    h.faults.fail_audit(EventType::InvitationRedeemed);
    let failed = invitations::redeem(&h.app, token, SessionMode::Api, &origin(), None).await;
    assert_eq!(code_of(failed), ErrorCode::StorageFull);
    assert!(sessions::list_own(&h.app, ada.id).await.unwrap().is_empty());

    h.faults.heal();
    invitations::redeem(&h.app, token, SessionMode::Api, &origin(), None)
        .await
        .unwrap();
    assert_eq!(sessions::list_own(&h.app, ada.id).await.unwrap().len(), 1);
    h.assert_chain_intact().await;
}
