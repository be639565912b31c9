use crate::cli::signet;
use crate::support::TestServer;

/// Edits one stored audit record behind Signet's back, the way an attacker
/// with database access would (first removing the append-only trigger).
async fn tamper(db_url: &str, seq: i64) {
    use sqlx::Connection;
    if db_url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(db_url).await.unwrap();
        sqlx::query("DROP TRIGGER audit_log_no_update")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("UPDATE audit_log SET actor = 'cli-forged' WHERE seq = $1")
            .bind(seq)
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(db_url).await.unwrap();
        sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("UPDATE audit_log SET actor = 'cli-forged' WHERE seq = $1")
            .bind(seq)
            .execute(&mut c)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn audit_verify_passes_on_an_intact_log_and_names_an_edited_record() {
    let srv = TestServer::start().await;
    for e in ["one@example.com", "two@example.com", "three@example.com"] {
        assert!(signet(&srv, &["user", "add", e]).await.status.success());
    }
    let ok = signet(&srv, &["audit", "verify", "--json"]).await;
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["status"], "intact");
    assert_eq!(report["records"], 3);

    tamper(&srv.db_url, 2).await;
    let bad = signet(&srv, &["audit", "verify"]).await;
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stdout);
    assert!(said.contains("seq 2") && said.contains("edited"), "{said}");
    srv.stop().await;
}

#[tokio::test]
async fn the_database_refuses_to_edit_audit_records() {
    use sqlx::Connection;
    let srv = TestServer::start().await;
    assert!(signet(&srv, &["user", "add", "x@example.com"]).await.status.success());
    let result = if srv.db_url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&srv.db_url).await.unwrap();
        sqlx::query("DELETE FROM audit_log").execute(&mut c).await.map(|_| ())
    } else {
        let mut c = sqlx::PgConnection::connect(&srv.db_url).await.unwrap();
        let truncate = sqlx::query("TRUNCATE audit_log").execute(&mut c).await;
        assert!(truncate.is_err(), "TRUNCATE is refused too");
        sqlx::query("DELETE FROM audit_log").execute(&mut c).await.map(|_| ())
    };
    assert!(result.is_err(), "append-only trigger refuses deletion");
    srv.stop().await;
}
