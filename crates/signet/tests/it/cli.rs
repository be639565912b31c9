//! The `signet` binary itself, run as a person would.

use std::process::Output;

use tokio::process::Command;

use reqwest::{Method, StatusCode};

use crate::support::{redeem_api, TestServer};

pub async fn signet(srv: &TestServer, args: &[&str]) -> Output {
    signet_with_env(srv, args, None).await
}

/// [`signet`] with one more environment variable.
pub async fn signet_with_env(srv: &TestServer, args: &[&str], extra: Option<(String, String)>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SIGNET_DATABASE__URL", &srv.db_url)
        .env("SIGNET_PUBLIC_URL", &srv.base)
        .envs(srv.sealing_env.iter().cloned());
    if let Some(smtp) = &srv.smtp {
        cmd.env("SIGNET_EMAIL__SMTP_URL", smtp.url());
    }
    if let Some((k, v)) = extra {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "exactly one JSON object: {stdout}");
    serde_json::from_str(stdout.trim()).unwrap()
}

#[tokio::test]
async fn user_add_then_invite_delivers_over_smtp_and_redeems_into_an_enrollment_session() {
    let srv = TestServer::start().await;
    let added = json(
        &signet(
            &srv,
            &[
                "user",
                "add",
                "ops@example.com",
                "--role",
                "admin",
                "--name",
                "Ops",
                "--json",
            ],
        )
        .await,
    );
    let id = added["id"].as_str().unwrap().to_owned();

    let out = signet(&srv, &["user", "invite", "ops@example.com", "--json"]).await;
    let invited = json(&out);
    assert_eq!(
        invited["delivered"],
        true,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = invited["link"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&srv.url("/invite/sgi_")), "{link}");
    assert!(invited["expires_at"].is_string());

    let mail = srv.wait_mail("ops@example.com", 0).await;
    assert_eq!(
        mail.find_link(&srv.url("/invite/")).as_deref(),
        Some(link.as_str()),
        "the mailed link is the printed one"
    );

    let token = redeem_api(&srv, &link).await;
    let (s, session) = srv.call(Method::GET, "/api/v1/session", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(session["scope"], "enrollment");
    assert_eq!(session["user"]["id"], id.as_str());
    assert_eq!(
        session["tier"], "privileged",
        "the admin role maps to the privileged tier"
    );
    srv.stop().await;
}

#[tokio::test]
async fn user_commands_list_show_disable_and_report_errors() {
    let srv = TestServer::start().await;
    json(&signet(&srv, &["user", "add", "b@example.com", "--json"]).await);
    json(
        &signet(
            &srv,
            &["user", "add", "a@example.com", "--phone", "+14155550100", "--json"],
        )
        .await,
    );
    let list = json(&signet(&srv, &["user", "list", "--json"]).await);
    let emails: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["a@example.com", "b@example.com"]);
    let shown = json(&signet(&srv, &["user", "show", "A@EXAMPLE.COM", "--json"]).await);
    assert_eq!(shown["phone"], "+14155550100");
    let disabled = json(&signet(&srv, &["user", "disable", "a@example.com", "--json"]).await);
    assert_eq!(disabled["status"], "disabled");

    let dup = signet(&srv, &["user", "add", "B@example.com", "--json"]).await;
    assert!(!dup.status.success());
    let err: serde_json::Value = serde_json::from_slice(&dup.stdout).unwrap();
    assert_eq!(err["error"], "email_taken");
    let bad = signet(&srv, &["user", "add", "nope"]).await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid email"));
    let missing = signet(&srv, &["user", "show", "ghost@example.com"]).await;
    assert!(!missing.status.success());
    srv.stop().await;
}

#[tokio::test]
async fn admin_token_is_shown_once_and_works_on_the_admin_api() {
    let srv = TestServer::start().await;
    let created = json(&signet(&srv, &["admin-token", "create", "helpdesk-1", "--json"]).await);
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("sga_"));
    let (s, _) = srv
        .call(
            Method::POST,
            "/api/v1/admin/users",
            Some(&token),
            Some(serde_json::json!({ "email": "t@example.com" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let again = signet(&srv, &["admin-token", "create", "helpdesk-1"]).await;
    assert!(!again.status.success(), "names are unique");
    let listed = json(&signet(&srv, &["admin-token", "list", "--json"]).await);
    assert!(!listed.to_string().contains(&token), "the token is never shown again");
    json(&signet(&srv, &["admin-token", "revoke", "helpdesk-1", "--json"]).await);
    let (s, _) = srv
        .call(
            Method::POST,
            "/api/v1/admin/users",
            Some(&token),
            Some(serde_json::json!({ "email": "u@example.com" })),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    srv.stop().await;
}

#[tokio::test]
async fn config_errors_name_the_key_and_exit_non_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["migrate"])
        .env_clear()
        .env("SIGNET_PUBLIC_URL", "not a url")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("public_url"));
    let out = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["migrate"])
        .env_clear()
        .env("SIGNET_LISTN", "127.0.0.1:1")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIGNET_LISTN"));
}

#[tokio::test]
async fn policy_check_reports_findings_as_json_and_exits_by_severity() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    let out = signet(
        &srv,
        &[
            "policy",
            "init",
            "--pattern",
            "passkey-first",
            "-o",
            path.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = signet(
        &srv,
        &[
            "policy",
            "init",
            "--pattern",
            "passkey-first",
            "-o",
            path.to_str().unwrap(),
        ],
    )
    .await;
    assert!(!again.status.success(), "init never overwrites");

    let clean = json(&signet(&srv, &["policy", "check", path.to_str().unwrap(), "--json"]).await);
    assert_eq!(clean["findings"], serde_json::json!([]));
    assert!(clean["matrix"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["tier"] == "privileged" && r["method"] == "passkey"));

    let weak = std::fs::read_to_string(&path)
        .unwrap()
        .replace("approvals = 2", "approvals = 1");
    std::fs::write(&path, weak).unwrap();
    let out = signet(&srv, &["policy", "check", path.to_str().unwrap(), "--json"]).await;
    assert_eq!(out.status.code(), Some(1), "an error finding exits 1");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "single-approver-helpdesk")
        .unwrap();
    assert_eq!(f["severity"], "error");
    assert_eq!(f["tier"], "privileged");
    assert!(f["message"].as_str().unwrap().contains("help-desk"));

    let otp = dir.path().join("otp.toml");
    assert!(signet(
        &srv,
        &[
            "policy",
            "init",
            "--pattern",
            "otp-transitional",
            "-o",
            otp.to_str().unwrap()
        ]
    )
    .await
    .status
    .success());
    let out = signet(&srv, &["policy", "check", otp.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "warnings only exit 0");
    assert!(String::from_utf8_lossy(&out.stdout).contains("warning [sms-in-high-tier]"));

    std::fs::write(&path, "[tiers.x]\nlogin = [\"carrier_pigeon\"]\n").unwrap();
    let out = signet(&srv, &["policy", "check", path.to_str().unwrap()]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("carrier_pigeon") && err.contains("line 2"), "{err}");
    srv.stop().await;
}

#[tokio::test]
async fn policy_explain_names_the_tier_and_why() {
    let srv = TestServer::start().await;
    json(
        &signet(
            &srv,
            &[
                "user",
                "add",
                "boss@example.com",
                "--role",
                "staff",
                "--role",
                "admin",
                "--json",
            ],
        )
        .await,
    );
    let out = json(&signet(&srv, &["policy", "explain", "boss@example.com", "--json"]).await);
    assert_eq!(out["tier"], "privileged");
    assert_eq!(out["required_aal"], "aal2");
    assert_eq!(out["login"], serde_json::json!(["passkey"]));
    assert!(out["why"].as_str().unwrap().contains("role admin"));
    srv.stop().await;
}
