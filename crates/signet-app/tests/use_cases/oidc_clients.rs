//! OIDC clients: registration and `[[oidc.clients]]`, with their audit
//! records in the same unit of work.

use signet_app::oidc::clients::{self, ClientAuth, ConfiguredClient, NewClient};
use signet_app::Actor;
use signet_core::audit::EventType;
use signet_core::oidc_client::{ClientSettings, ClientSource};
use signet_core::store::OidcClientStore;

use crate::harness::{origin, Harness};

fn settings() -> ClientSettings {
    ClientSettings {
        redirect_uris: vec!["https://wiki.example.com/cb".into()],
        ..Default::default()
    }
}

fn configured(secret: &str) -> ConfiguredClient {
    ConfiguredClient {
        client_id: "wiki".into(),
        name: "Wiki".into(),
        secret: Some(secret.into()),
        settings: settings(),
    }
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn config_clients_are_written_once_and_rewritten_only_when_changed() {
    let h = Harness::new().await;
    assert_eq!(clients::apply_config(&h.app, &[configured(SECRET)]).await.unwrap(), 1);
    // A restart with the same configuration writes and records nothing.
    assert_eq!(clients::apply_config(&h.app, &[configured(SECRET)]).await.unwrap(), 0);
    assert_eq!(h.records(EventType::OidcClientConfigured).await.len(), 1);
    let first = h.store.oidc_client("wiki").await.unwrap().unwrap();
    assert_eq!(first.source, ClientSource::Config);

    // A changed secret replaces the stored hash; the client keeps its id.
    let new_secret = "fedcba9876543210fedcba9876543210";
    assert_eq!(
        clients::apply_config(&h.app, &[configured(new_secret)]).await.unwrap(),
        1
    );
    let second = h.store.oidc_client("wiki").await.unwrap().unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.created_at, first.created_at);
    let old = ClientAuth::Post {
        client_id: "wiki".into(),
        secret: SECRET.into(),
    };
    assert!(clients::authenticate(&h.app, &old).await.is_err());
    let new = ClientAuth::Basic {
        client_id: "wiki".into(),
        secret: new_secret.into(),
    };
    assert_eq!(clients::authenticate(&h.app, &new).await.unwrap().client_id, "wiki");
    assert_eq!(h.records(EventType::OidcClientConfigured).await.len(), 2);
    h.assert_chain_intact().await;
}

#[tokio::test]
async fn a_config_client_never_takes_over_a_registered_client_id() {
    let h = Harness::new().await;
    let (registered, secret) = clients::register(
        &h.app,
        &Actor::Cli,
        &origin(),
        NewClient {
            name: "Reports".into(),
            public: false,
            settings: settings(),
        },
        ClientSource::Cli,
    )
    .await
    .unwrap();
    let secret = secret.unwrap();
    let mut clash = configured(SECRET);
    clash.client_id = registered.client_id.clone();
    let err = clients::apply_config(&h.app, &[clash]).await.unwrap_err();
    assert_eq!(err.code().as_str(), "oidc_client_id_taken");
    // The registered client is untouched and still authenticates.
    let auth = ClientAuth::Basic {
        client_id: registered.client_id.clone(),
        secret: secret.expose_secret().into(),
    };
    assert_eq!(clients::authenticate(&h.app, &auth).await.unwrap().name, "Reports");
}

#[tokio::test]
async fn registration_is_undone_when_its_audit_record_cannot_be_written() {
    let h = Harness::new().await;
    h.faults.fail_audit(EventType::OidcClientRegistered);
    let result = clients::register(
        &h.app,
        &Actor::Cli,
        &origin(),
        NewClient {
            name: "Reports".into(),
            public: true,
            settings: settings(),
        },
        ClientSource::Cli,
    )
    .await;
    assert!(result.is_err());
    assert!(h.store.list_oidc_clients().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_config_client_is_changed_in_the_file_only() {
    let h = Harness::new().await;
    clients::apply_config(&h.app, &[configured(SECRET)]).await.unwrap();
    let changes = clients::ClientChanges {
        name: Some("Renamed".into()),
        ..Default::default()
    };
    let err = clients::update(&h.app, &Actor::Cli, &origin(), "wiki", changes)
        .await
        .unwrap_err();
    assert_eq!(err.code(), signet_core::ErrorCode::OidcClientManagedByConfig);
    let err = clients::rotate_secret(&h.app, &Actor::Cli, &origin(), "wiki", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), signet_core::ErrorCode::OidcClientManagedByConfig);
    // Nothing changed and nothing was recorded.
    let stored = h.store.oidc_client("wiki").await.unwrap().unwrap();
    assert_eq!(stored.name, "Wiki");
    assert!(stored.previous_secret.is_none());
    assert!(h.records(EventType::OidcClientUpdated).await.is_empty());
    assert!(h.records(EventType::OidcClientSecretRotated).await.is_empty());
    // Its secret still authenticates.
    let auth = ClientAuth::Post {
        client_id: "wiki".into(),
        secret: SECRET.into(),
    };
    assert!(clients::authenticate(&h.app, &auth).await.is_ok());
}
