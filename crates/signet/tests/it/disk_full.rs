//! A full disk under SQLite: Signet answers 503 `storage_full`, never 500
//! and never a 2xx for what it could not store, `/readyz` says so, it
//! recovers by itself once space is freed, and after a restart every
//! acknowledged write is there and a used invitation stays used.
//!
//! The database lives on a small tmpfs that the test mounts (CI runs as
//! root). Where mounting is not allowed the test says so and does nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{redeem_api, Options, TestServer};

/// A tmpfs mounted for one test, lazily unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "signet-test",
                &dir.path().display().to_string(),
            ])
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes zeros to `path` until the file system refuses more.
fn fill(path: &PathBuf) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // Whatever is left below one chunk.
    while f.write_all(&[0u8; 512]).is_ok() {}
    let _ = f.sync_all();
}

async fn add_user(srv: &TestServer, admin: &str, email: &str) -> (StatusCode, serde_json::Value) {
    srv.call(
        Method::POST,
        "/api/v1/admin/users",
        Some(admin),
        Some(json!({ "email": email })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_503_storage_full_and_every_acknowledged_write_survives_a_restart() {
    if crate::support::postgres_url().is_some() {
        // The SQLite run covers it; PostgreSQL's disk is not ours to fill.
        return;
    }
    let Some(fs) = Tmpfs::mount("6m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); the disk-full test did not run");
        return;
    };
    let db = format!("sqlite://{}/signet.db", fs.path().display());
    let opts = || Options {
        shared_db: Some(db.clone()),
        ..Default::default()
    };
    let srv = TestServer::start_with(opts()).await;
    let admin = srv.admin_token().await;
    let id = srv.create_user(&admin, "used@example.com").await;
    let link = srv.invite(&admin, &id, "used@example.com").await;
    redeem_api(&srv, &link).await;

    let filler = fs.path().join("filler");
    fill(&filler);
    let mut acknowledged = Vec::new();
    let mut full = 0;
    for i in 0..3000 {
        let email = format!("u{i}@example.com");
        let (s, body) = add_user(&srv, &admin, &email).await;
        match s {
            StatusCode::CREATED => acknowledged.push(email),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["error"], "storage_full", "{body}");
                full += 1;
                if full >= 20 {
                    break;
                }
            }
            other => panic!("a write on a full disk answered {other}: {body}"),
        }
    }
    assert!(
        full >= 20,
        "the disk never filled ({} writes acknowledged)",
        acknowledged.len()
    );
    let ready = srv.http.get(srv.url("/readyz")).send().await.unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "/readyz while writes fail"
    );

    // Space comes back: so do writes, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = false;
    for i in 0..50 {
        let email = format!("after{i}@example.com");
        let (s, body) = add_user(&srv, &admin, &email).await;
        match s {
            StatusCode::CREATED => {
                acknowledged.push(email);
                recovered = true;
            }
            StatusCode::SERVICE_UNAVAILABLE => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            other => panic!("{other}: {body}"),
        }
    }
    assert!(recovered, "writes did not come back after space was freed");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let ready = srv.http.get(srv.url("/readyz")).send().await.unwrap();
        if ready.status() == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed 503 after recovery"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // Every acknowledged write is there after a restart.
    srv.stop().await;
    let srv = TestServer::start_with(opts()).await;
    let admin = srv.admin_token().await;
    for email in &acknowledged {
        let (s, body) = add_user(&srv, &admin, email).await;
        assert_eq!(s, StatusCode::CONFLICT, "{email} was acknowledged but is gone: {body}");
    }
    let (s, _) = srv
        .call(
            Method::POST,
            "/api/v1/invitations/redeem",
            None,
            Some(json!({ "token": crate::support::token_of(&link), "mode": "api" })),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::GONE,
        "a used invitation redeemed again after the disk filled"
    );
    srv.stop().await;
}
