//! Secrets at rest are sealed (DESIGN.md: "TOTP seeds and signing keys are
//! encrypted at rest"): what the database holds for the passkey decoy key,
//! the migration from plaintext, and `signet keys rotate-sealing`.

use std::process::Output;

use reqwest::Method;
use serde_json::Value;
use signet_app::passkeys::DECOY_KEY;
use signet_core::clock::{Clock, SystemClock};
use signet_core::sealing::{Binding, Header, KeyRing, SealingKey, MIN_SEALED_LEN};
use signet_core::store::{CredentialStore, SealedKind, SealedSecretStore};
use signet_store::scratch::ScratchDb;
use signet_store::SqlStore;
use tokio::process::Command;

use crate::otp::{enroll as enroll_totp, invited, oathtool, start as start_login_flow, type_totp, TOTP_FIRST_POLICY};
use crate::passkeys::start_login;
use crate::support::{postgres_url, Options, TestServer};

/// The decoy key row exactly as stored.
async fn stored_decoy_key(db_url: &str) -> Vec<u8> {
    let store = SqlStore::connect(db_url).await.unwrap();
    let rows = store.stored_server_secrets().await.unwrap();
    store.close().await;
    rows.into_iter().find(|r| r.name == DECOY_KEY).unwrap().value
}

/// The decoys an unknown identifier is offered.
async fn decoys(srv: &TestServer) -> Value {
    let (_, entry) = start_login(srv, Some("nobody@example.com")).await;
    let allowed = entry["publicKey"]["allowCredentials"].clone();
    assert!(allowed.as_array().is_some_and(|a| !a.is_empty()), "{entry}");
    allowed
}

/// Runs the binary against `srv`'s database with exactly these sealing settings.
async fn signet(srv: &TestServer, sealing: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SIGNET_DATABASE__URL", &srv.db_url)
        .env("SIGNET_PUBLIC_URL", &srv.base)
        .envs(sealing.iter().copied())
        .output()
        .await
        .unwrap()
}

fn json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim().lines().count(), 1, "exactly one JSON object: {stdout}");
    serde_json::from_str(stdout.trim()).unwrap()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test]
async fn the_decoy_key_is_stored_sealed_never_in_plaintext() {
    let srv = TestServer::start().await;
    let key = srv.app().passkeys.decoy_key().to_vec();
    assert_eq!(key.len(), 32);
    let stored = stored_decoy_key(&srv.db_url).await;
    assert_eq!(stored.len(), MIN_SEALED_LEN + key.len());
    assert!(
        !stored.windows(8).any(|w| key.windows(8).any(|k| k == w)),
        "no part of the key in the row"
    );
    let ring = &srv.app().sealing;
    assert_eq!(Header::parse(&stored).unwrap().key_id, ring.current_id());
    let opened = ring.open(&stored, &Binding::server_secret(DECOY_KEY)).unwrap();
    assert_eq!(opened.plaintext.expose_secret(), key.as_slice());
    // Bound to its row: the same bytes do not open as another secret.
    assert!(ring.open(&stored, &Binding::server_secret("another")).is_err());
    srv.stop().await;
}

#[tokio::test]
async fn a_plaintext_decoy_key_from_an_older_version_is_sealed_on_first_start() {
    // A database as an earlier Signet left it: the key in plaintext.
    let dir = tempfile::tempdir().unwrap();
    let scratch = match postgres_url() {
        Some(base) => Some(ScratchDb::create(&base).await.unwrap()),
        None => None,
    };
    let db_url = match &scratch {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}/signet.db", dir.path().display()),
    };
    let legacy = [0x42u8; 32];
    let store = SqlStore::connect(&db_url).await.unwrap();
    store
        .server_secret(DECOY_KEY, &legacy, SystemClock.now())
        .await
        .unwrap();
    store.close().await;

    let srv = TestServer::start_with(Options {
        shared_db: Some(db_url.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        srv.app().passkeys.decoy_key(),
        legacy,
        "the same key, so the same decoys as before"
    );
    let stored = stored_decoy_key(&db_url).await;
    assert_ne!(stored, legacy);
    let opened = srv
        .app()
        .sealing
        .open(&stored, &Binding::server_secret(DECOY_KEY))
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), legacy);
    let before = decoys(&srv).await;

    // A second node starting later finds it sealed and opens the same key.
    let other = TestServer::start_with(Options {
        shared_db: Some(db_url.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(other.app().passkeys.decoy_key(), legacy);
    assert_eq!(decoys(&other).await, before);
    other.stop().await;
    srv.stop().await;
    if let Some(db) = scratch {
        db.drop_now().await.unwrap();
    }
}

#[tokio::test]
async fn rotate_sealing_reseals_under_the_new_key_and_decoys_stay_the_same() {
    let old = SealingKey::generate();
    let new = SealingKey::generate();
    let (old_b64, new_b64) = (old.expose_base64(), new.expose_base64());
    let a = TestServer::start_with(Options {
        env: env(&[("SIGNET_SEALING__KEY", old_b64.as_str())]),
        ..Default::default()
    })
    .await;
    let before = decoys(&a).await;
    let sealed_before = stored_decoy_key(&a.db_url).await;
    assert_eq!(Header::parse(&sealed_before).unwrap().key_id, old.id());

    // The operator makes the new key current and keeps the old one, then
    // re-seals while the first node is still running.
    let rotated = [
        ("SIGNET_SEALING__KEY", new_b64.as_str()),
        ("SIGNET_SEALING__PREVIOUS_KEYS", old_b64.as_str()),
    ];
    let out = json(&signet(&a, &rotated, &["keys", "rotate-sealing", "--json"]).await);
    assert_eq!(out["key_source"], "config");
    assert_eq!(out["generated_key"], false);
    assert_eq!(out["current_key_id"], new.id().to_string());
    assert_eq!(out["previous_key_ids"], serde_json::json!([old.id().to_string()]));
    // Every sealed server secret moves: the OIDC signing keys too.
    assert_eq!(
        out["resealed"],
        serde_json::json!([
            "server_secrets/oidc_signing_key_es256_v1",
            "server_secrets/oidc_signing_key_rs256_v1",
            format!("server_secrets/{DECOY_KEY}")
        ])
    );
    assert_eq!(out["failed"], serde_json::json!([]));
    let sealed_after = stored_decoy_key(&a.db_url).await;
    assert_eq!(Header::parse(&sealed_after).unwrap().key_id, new.id());
    let only_new = KeyRing::new(new.clone(), []);
    assert_eq!(
        only_new
            .open(&sealed_after, &Binding::server_secret(DECOY_KEY))
            .unwrap()
            .plaintext
            .expose_secret(),
        a.app().passkeys.decoy_key()
    );

    // A second run finds nothing left to do.
    let again = json(&signet(&a, &rotated, &["keys", "rotate-sealing", "--json"]).await);
    assert_eq!(again["resealed"], serde_json::json!([]));
    assert_eq!(
        again["already_current"],
        serde_json::json!([
            "server_secrets/oidc_signing_key_es256_v1",
            "server_secrets/oidc_signing_key_rs256_v1",
            format!("server_secrets/{DECOY_KEY}")
        ])
    );

    // A node with only the new key starts and gives the same decoys; the
    // node still running gives them too.
    let b = TestServer::start_with(Options {
        shared_db: Some(a.db_url.clone()),
        env: env(&[("SIGNET_SEALING__KEY", new_b64.as_str())]),
        ..Default::default()
    })
    .await;
    assert_eq!(decoys(&b).await, before);
    assert_eq!(decoys(&a).await, before);

    // It is a security event, in the audit log.
    let admin = a.admin_token().await;
    let (_, audit) = a
        .call(
            Method::GET,
            "/api/v1/admin/audit?type=sealing.resealed",
            Some(&admin),
            None,
        )
        .await;
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{audit}");
    // The decoy key and the two OIDC signing keys.
    assert!(events.iter().any(|e| e["details"]["resealed"] == 3), "{audit}");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn rotate_sealing_reseals_totp_seeds_so_codes_work_with_the_new_key_alone() {
    let old = SealingKey::generate();
    let new = SealingKey::generate();
    let (old_b64, new_b64) = (old.expose_base64(), new.expose_base64());
    let a = TestServer::start_with(Options {
        env: env(&[("SIGNET_SEALING__KEY", old_b64.as_str())]),
        policy: Some(TOTP_FIRST_POLICY.into()),
        ..Default::default()
    })
    .await;
    let email = "seed@example.com";
    let token = invited(&a, email).await;
    let (secret, _) = enroll_totp(&a, &token, "Phone").await;
    let store = SqlStore::connect(&a.db_url).await.unwrap();
    let seeds = store.stored_sealed(SealedKind::TotpSeed).await.unwrap();
    assert_eq!(seeds.len(), 1);
    assert_eq!(Header::parse(&seeds[0].value).unwrap().key_id, old.id());

    let rotated = [
        ("SIGNET_SEALING__KEY", new_b64.as_str()),
        ("SIGNET_SEALING__PREVIOUS_KEYS", old_b64.as_str()),
    ];
    let out = json(&signet(&a, &rotated, &["keys", "rotate-sealing", "--json"]).await);
    let label = format!("totp_credentials/{}", seeds[0].name);
    assert!(
        out["resealed"].as_array().unwrap().iter().any(|v| v == label.as_str()),
        "{out}"
    );
    assert_eq!(out["failed"], serde_json::json!([]));
    let after = store.stored_sealed(SealedKind::TotpSeed).await.unwrap();
    assert_eq!(Header::parse(&after[0].value).unwrap().key_id, new.id());
    store.close().await;

    // A node that knows only the new key accepts the app's next code.
    let b = TestServer::start_with(Options {
        shared_db: Some(a.db_url.clone()),
        env: env(&[("SIGNET_SEALING__KEY", new_b64.as_str())]),
        policy: Some(TOTP_FIRST_POLICY.into()),
        ..Default::default()
    })
    .await;
    b.clock.advance(std::time::Duration::from_secs(90));
    let flow = start_login_flow(&b, email).await;
    let (s, done) = type_totp(
        &b,
        flow["flow_id"].as_str().unwrap(),
        serde_json::json!(oathtool(&b, &secret, 0)),
    )
    .await;
    assert_eq!(s, reqwest::StatusCode::OK, "{done}");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_node_without_the_key_that_sealed_the_decoy_key_refuses_to_start() {
    let first = TestServer::start().await;
    let other = SealingKey::generate();
    let config = signet::config::Config::load(
        None,
        env(&[
            ("SIGNET_DATABASE__URL", first.db_url.as_str()),
            ("SIGNET_SEALING__KEY", other.expose_base64().as_str()),
        ]),
    )
    .unwrap();
    let err = signet::wiring::wire(&config, None, Vec::new()).await.err().unwrap();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("not in the key ring") && msg.contains("previous_keys"),
        "{msg}"
    );
    first.stop().await;
}

#[tokio::test]
async fn the_key_file_is_created_beside_sqlite_and_rotated_by_the_cli() {
    if postgres_url().is_some() {
        // PostgreSQL has no key file: the key is configured (see the test above).
        return;
    }
    let a = TestServer::start().await;
    let path = signet::sealing::key_file_path(&a.db_url).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let first = signet::sealing::read_key_file(&path).unwrap().unwrap();
    assert_eq!(first.current_id(), a.app().sealing.current_id());
    let before = decoys(&a).await;

    let out = json(&signet(&a, &[], &["keys", "rotate-sealing", "--json"]).await);
    assert_eq!(out["key_source"], "file");
    assert_eq!(out["key_file"], path.display().to_string());
    assert_eq!(out["generated_key"], true);
    assert_eq!(
        out["resealed"],
        serde_json::json!([
            "server_secrets/oidc_signing_key_es256_v1",
            "server_secrets/oidc_signing_key_rs256_v1",
            format!("server_secrets/{DECOY_KEY}")
        ])
    );
    let rotated = signet::sealing::read_key_file(&path).unwrap().unwrap();
    assert_eq!(out["current_key_id"], rotated.current_id().to_string());
    assert_ne!(rotated.current_id(), first.current_id());
    assert_eq!(
        rotated.previous(),
        &[first.current().clone()],
        "the old key stays to open old values"
    );
    assert_eq!(
        Header::parse(&stored_decoy_key(&a.db_url).await).unwrap().key_id,
        rotated.current_id()
    );

    // --reseal-only keeps the key; nothing is left to re-seal.
    let out = json(&signet(&a, &[], &["keys", "rotate-sealing", "--reseal-only", "--json"]).await);
    assert_eq!(out["generated_key"], false);
    assert_eq!(out["current_key_id"], rotated.current_id().to_string());
    assert_eq!(out["resealed"], serde_json::json!([]));

    // A restarted node reads the rotated file and gives the same decoys.
    let b = TestServer::start_with(Options {
        shared_db: Some(a.db_url.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(b.app().sealing.current_id(), rotated.current_id());
    assert_eq!(decoys(&b).await, before);
    b.stop().await;
    a.stop().await;
}
