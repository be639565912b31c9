//! One unit of work (ADR 0010): when a use case's audit record cannot be
//! written, nothing of its change remains, and what it would have consumed
//! (a flow, an invitation) still works once storage does.

use signet_app::{credentials, invitations, sessions, Actor};
use signet_core::audit::EventType;
use signet_core::flow::Demand;
use signet_core::method::MethodName;
use signet_core::session::{Aal, SessionMode};
use signet_core::store::RecoveryTicketStore;
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

#[tokio::test]
async fn a_last_approval_that_cannot_be_recorded_leaves_the_ticket_pending_and_uncounted() {
    use signet_app::recovery_tickets::{self, NewTicket};
    use signet_core::recovery_ticket::TicketStatus;
    let h = Harness::with_policy(
        r#"
[tiers.standard]
login = ["passkey", "email_otp"]
required_aal = "aal1"
recovery = ["helpdesk"]
session = { idle = "30m", absolute = "12h" }
[tiers.standard.helpdesk]
approvals = 2
cooling_off = "24h"
[assignment]
default = "standard"
"#,
        Vec::new(),
    )
    .await;
    let ada = h.user("ada@example.com", &[]).await;
    let mut admins = Vec::new();
    for name in ["desk-a", "desk-b"] {
        let (token, _) = signet_app::admin::create_token(&h.app, &Actor::Cli, &origin(), name)
            .await
            .unwrap();
        admins.push(Actor::Admin {
            id: token.id,
            name: token.name,
        });
    }
    let new = NewTicket {
        user_id: ada.id,
        reason: "lost every device".into(),
        evidence_kind: "video_call".into(),
        evidence_reference: "CASE-9".into(),
    };
    let ticket = recovery_tickets::create(&h.app, &admins[0], &origin(), new)
        .await
        .unwrap();
    assert_eq!(ticket.status, TicketStatus::Pending);

    h.faults.fail_audit(EventType::RecoveryTicketApproved);
    assert_eq!(
        code_of(recovery_tickets::approve(&h.app, &admins[1], &origin(), ticket.id).await),
        ErrorCode::StorageFull
    );
    let stored = h.store.ticket(ticket.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TicketStatus::Pending, "no approval without its record");
    assert_eq!(h.store.ticket_actors(ticket.id).await.unwrap(), vec![ticket.created_by]);

    h.faults.heal();
    assert_eq!(
        recovery_tickets::approve(&h.app, &admins[1], &origin(), ticket.id)
            .await
            .unwrap(),
        TicketStatus::Approved
    );
    assert_eq!(h.records(EventType::RecoveryTicketApproved).await.len(), 1);
    h.assert_chain_intact().await;
}
