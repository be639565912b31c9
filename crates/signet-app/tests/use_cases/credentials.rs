//! A user's credentials: listing, renaming, the last way in, and what a
//! removal takes with it. Passkey rows are inserted through a unit of work
//! (registering one for real needs an authenticator).

use std::time::Duration;

use signet_app::credentials;
use signet_app::sessions::{self, Current, Grant};
use signet_core::audit::EventType;
use signet_core::credential::Passkey;
use signet_core::method::MethodName;
use signet_core::session::{Aal, Proof, SessionMode, SessionScope};
use signet_core::user::User;
use signet_core::ErrorCode;
use uuid::Uuid;

use crate::harness::{code_of, details, origin, Harness};

/// A user-verified (aal2) passkey of `user`, stored as enrollment would.
pub(crate) async fn passkey(h: &Harness, user: &User, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    let row = Passkey {
        id,
        user_id: user.id,
        credential_id: id.simple().to_string(),
        record: "{}".into(),
        counter: 0,
        backup_eligible: true,
        backup_state: true,
        user_verified: true,
        aaguid: Uuid::nil(),
        transports: vec!["internal".into()],
        name: name.into(),
        created_at: h.app.clock.now(),
        last_used_at: None,
    };
    let mut tx = h.app.store.begin().await.unwrap();
    tx.insert_passkey(&row).await.unwrap();
    tx.commit().await.unwrap();
    id
}

/// A full aal2 session resting on the passkey `credential`, as a passkey
/// login establishes it.
pub(crate) async fn signed_in_with(h: &Harness, user: &User, credential: Uuid) -> Current {
    let grant = Grant {
        user,
        proven_at: signet_core::clock::Clock::now(&*h.clock),
        proof: Proof {
            aal: Aal::Aal2,
            amr: vec!["hwk".into(), "user".into()],
            phishing_resistant: true,
            credential_id: Some(credential),
            user_id: Some(user.id),
        },
        scope: SessionScope::Full,
        mode: SessionMode::Api,
        origin: &origin(),
    };
    let issued = sessions::establish(&h.app, grant, None, EventType::LoginSucceeded)
        .await
        .unwrap();
    h.current(&issued).await
}

#[tokio::test]
async fn credentials_of_every_kind_are_listed_and_a_rename_is_validated_and_recorded() {
    let h = Harness::new().await;
    let ada = h.user("ada@example.com", &[]).await;
    let eve = h.user("eve@example.com", &[]).await;
    let laptop = passkey(&h, &ada, "Laptop").await;
    let phone = passkey(&h, &ada, "Phone").await;
    let eves = passkey(&h, &eve, "Eve's key").await;
    let current = signed_in_with(&h, &ada, laptop).await;

    let listed = credentials::list(&h.app, &ada).await.unwrap();
    let mut ids: Vec<Uuid> = listed.iter().map(|c| c.id).collect();
    ids.sort();
    let mut expected = vec![laptop, phone];
    expected.sort();
    assert_eq!(ids, expected, "the user's own credentials, no one else's");
    assert!(listed
        .iter()
        .all(|c| c.kind == MethodName::Passkey && c.aal == Aal::Aal2));

    let renamed = credentials::rename(&h.app, &current, &origin(), phone, "  Work phone ")
        .await
        .unwrap();
    assert_eq!(renamed.name, "Work phone");
    let listed = credentials::list(&h.app, &ada).await.unwrap();
    assert!(listed.iter().any(|c| c.id == phone && c.name == "Work phone"));
    let records = h.records(EventType::CredentialRenamed).await;
    assert_eq!(records.len(), 1);
    assert_eq!(details(&records[0])["name"], "Work phone");

    for bad in ["", "   ", "tab\tname", &"x".repeat(65)] {
        assert_eq!(
            code_of(credentials::rename(&h.app, &current, &origin(), phone, bad).await),
            ErrorCode::InvalidName,
            "{bad:?}"
        );
    }
    // Another account's credential is indistinguishable from a missing one.
    assert_eq!(
        code_of(credentials::rename(&h.app, &current, &origin(), eves, "Mine now").await),
        ErrorCode::CredentialNotFound
    );
    assert_eq!(h.records(EventType::CredentialRenamed).await.len(), 1);
    h.assert_chain_intact().await;
}

#[tokio::test]
async fn the_last_way_into_an_aal2_tier_cannot_be_removed() {
    // The standard tier needs aal2, which email cannot reach: the one
    // passkey is the only way in.
    let h = Harness::new().await;
    let ada = h.user("ada@example.com", &[]).await;
    let only = passkey(&h, &ada, "Only key").await;
    let current = signed_in_with(&h, &ada, only).await;

    assert_eq!(
        code_of(credentials::remove(&h.app, &current, &origin(), only).await),
        ErrorCode::LastCredential
    );
    assert_eq!(credentials::list(&h.app, &ada).await.unwrap().len(), 1);
    assert_eq!(sessions::list_own(&h.app, ada.id).await.unwrap().len(), 1);
    assert!(h.records(EventType::CredentialRemoved).await.is_empty());
}

#[tokio::test]
async fn removing_a_credential_needs_a_fresh_aal2_session() {
    let h = Harness::new().await;
    let ada = h.user("ada@example.com", &[]).await;
    let laptop = passkey(&h, &ada, "Laptop").await;
    let phone = passkey(&h, &ada, "Phone").await;
    let current = signed_in_with(&h, &ada, laptop).await;
    // The built-in `remove_credential` action wants aal2 within 5 minutes.
    h.advance(Duration::from_secs(5 * 60 + 1));
    assert_eq!(
        code_of(credentials::remove(&h.app, &current, &origin(), phone).await),
        ErrorCode::StepUpRequired
    );
    assert_eq!(credentials::list(&h.app, &ada).await.unwrap().len(), 2);
}

#[tokio::test]
async fn removing_a_credential_ends_the_sessions_resting_on_it_and_no_others() {
    let h = Harness::new().await;
    let ada = h.user("ada@example.com", &[]).await;
    let laptop = passkey(&h, &ada, "Laptop").await;
    let phone = passkey(&h, &ada, "Phone").await;
    let on_laptop = signed_in_with(&h, &ada, laptop).await;
    let on_phone = signed_in_with(&h, &ada, phone).await;
    let before = h.outbox().await.len();

    credentials::remove(&h.app, &on_laptop, &origin(), laptop)
        .await
        .unwrap();

    let listed = credentials::list(&h.app, &ada).await.unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), [phone]);
    let live: Vec<_> = sessions::list_own(&h.app, ada.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, [on_phone.session.id], "only the laptop's session ended");

    let records = h.records(EventType::CredentialRemoved).await;
    assert_eq!(records.len(), 1);
    assert_eq!(details(&records[0])["sessions_ended"], 1);
    let outbox = h.outbox().await;
    assert_eq!(outbox.len(), before + 1, "one notice, queued with the removal");
    let notice = outbox
        .iter()
        .find(|m| m.template == signet_app::messages::CREDENTIAL_REMOVED)
        .unwrap();
    assert_eq!(notice.recipient, "ada@example.com");
    h.assert_chain_intact().await;
}
