//! Start-up and CLI failures name what broke, once: the PostgreSQL host and
//! port that refused, the SQLite path and the permission that is missing,
//! the key file that cannot be read.
//!
//! File permissions mean nothing to root, and the suite runs as root in CI:
//! there the command runs as `nobody` (uid 65534, through `setpriv`), so the
//! permissions apply as they would to a service user.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::support::TEST_SEALING_KEY;

fn signet(env: &[(&str, String)], args: &[&str], unprivileged: bool) -> Command {
    let bin = env!("CARGO_BIN_EXE_signet");
    let mut cmd = if unprivileged && running_as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", bin]);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.clone())));
    cmd
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn setpriv_missing() -> bool {
    running_as_root() && std::process::Command::new("setpriv").arg("--version").output().is_err()
}

fn stderr(out: &Output) -> String {
    assert!(!out.status.success(), "the command must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn once(haystack: &str, needle: &str) {
    assert_eq!(
        haystack.matches(needle).count(),
        1,
        "{needle:?} must appear exactly once in: {haystack}"
    );
}

#[tokio::test]
async fn an_unreachable_postgresql_is_named_by_host_and_port_at_once() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://signet:hunter2@127.0.0.1:{port}/signet");
    let started = Instant::now();
    let out = signet(
        &[
            ("SIGNET_DATABASE__URL", url),
            ("SIGNET_SEALING__KEY", TEST_SEALING_KEY.to_owned()),
        ],
        &["user", "list"],
        false,
    )
    .output()
    .await
    .unwrap();
    let err = stderr(&out);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no pool timeout: {:?}",
        started.elapsed()
    );
    assert!(err.contains(&format!("PostgreSQL at 127.0.0.1:{port}")), "{err}");
    once(&err, "Connection refused");
    assert!(!err.contains("hunter2"), "never the password: {err}");
    assert!(!err.contains("pool timed out"), "{err}");
}

/// A database created by another user (here root, mode 644): every command
/// names the file, the missing permission and who owns it, instead of
/// "internal error".
#[tokio::test]
async fn a_database_file_this_user_cannot_write_is_named_with_the_permission() {
    if setpriv_missing() {
        eprintln!("SKIPPED: running as root without setpriv");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let data = dir.path().join("data");
    let db = data.join("signet.db");
    let env = [
        ("SIGNET_DATABASE__URL", format!("sqlite://{}", db.display())),
        ("SIGNET_SEALING__KEY", TEST_SEALING_KEY.to_owned()),
    ];
    let out = signet(&env, &["migrate"], false).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    chmod(&db, 0o644);
    // The directory is writable by everyone: only the file is in the way.
    chmod(&data, 0o777);
    if !running_as_root() {
        chmod(&db, 0o444);
    }
    for args in [&["user", "list"][..], &["user", "add", "x@example.com"], &["serve"]] {
        let out = signet(&env, args, true).output().await.unwrap();
        let err = stderr(&out);
        assert!(
            err.contains(&format!("cannot read and write the database file {}", db.display())),
            "{args:?}: {err}"
        );
        once(&err, "Permission denied");
        assert!(err.contains("mode 644") || err.contains("mode 444"), "{err}");
        assert!(!err.contains("internal error"), "{err}");
    }
}

#[tokio::test]
async fn a_read_only_data_directory_is_named_with_the_permission() {
    if setpriv_missing() {
        eprintln!("SKIPPED: running as root without setpriv");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chmod(dir.path(), 0o755);
    chmod(&data, 0o555);
    let env = [
        ("SIGNET_DATABASE__URL", format!("sqlite://{}/signet.db", data.display())),
        ("SIGNET_SEALING__KEY", TEST_SEALING_KEY.to_owned()),
    ];
    let err = stderr(&signet(&env, &["user", "list", "--json"], true).output().await.unwrap());
    assert!(
        err.contains(&format!("in the data directory {}", data.display())),
        "{err}"
    );
    assert!(err.contains("-wal"), "says why the directory must be writable: {err}");
    once(&err, "Permission denied");
    chmod(&data, 0o755);
}

#[tokio::test]
async fn an_unreadable_sealing_key_file_is_named_with_the_permission() {
    if setpriv_missing() {
        eprintln!("SKIPPED: running as root without setpriv");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o777);
    let env = [(
        "SIGNET_DATABASE__URL",
        format!("sqlite://{}/signet.db", dir.path().display()),
    )];
    // Creates the database and its key file (mode 600) as this user.
    let out = signet(&env, &["migrate"], false).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = signet(&env, &["user", "add", "y@example.com"], false)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = dir.path().join("sealing.key");
    assert!(key.exists());
    if !running_as_root() {
        chmod(&key, 0o000);
    }
    let err = stderr(&signet(&env, &["user", "list"], true).output().await.unwrap());
    assert!(err.contains(&key.display().to_string()), "{err}");
    once(&err, "Permission denied");
}
