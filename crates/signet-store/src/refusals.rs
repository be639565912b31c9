//! Writes checked inside SQLite, so that they can travel with the unit's
//! later statements (ADR 0035).
//!
//! # Why
//!
//! Some writes of a unit must change exactly one row or the unit must not
//! go on: a flow's completion (the insert that lands picks the single
//! winner) and a passkey's counter update (a compare-and-swap on the
//! previous counter). Reading their outcome back in a call of their own
//! costs the unit a turn on SQLite's single writer each: a hand-off to the
//! connection's thread and back to the unit's task, which is what bounds a
//! login on SQLite (`docs/benchmarks.md`). If SQLite itself refuses the
//! unit when such a write changed no row, the write needs no answer and
//! can wait, like an insert nobody reads back ([`crate::deferred`]), for
//! the call that carries the unit's session, audit record and release.
//!
//! # How
//!
//! The writer connection has a temporary view, `signet_expect(refusal,
//! ok)`, and for each [`Refusal`] an `INSTEAD OF INSERT` trigger that
//! raises `ABORT` with the refusal's name when `ok` is false. A checked
//! write is its statement followed by [`expect_one!`]:
//! `INSERT INTO signet_expect VALUES ('<name>', changes() = 1)`. SQLite
//! runs a call's statements in order and stops at the first error, so a
//! refusal stops the call before anything after it (the audit record, the
//! release into the group) has run: the unit is rolled back to its
//! savepoint alone, and its group goes on. [`refusal_of`] turns the raised
//! error into `StoreError::Refused`, which the client hears exactly as it
//! heard the `false` of an immediate check.

use signet_core::store::Refusal;

/// The text that checks the statement before it changed exactly one row,
/// else raises `$name` (a [`Refusal::name`]).
macro_rules! expect_one {
    ($name:literal) => {
        concat!(
            "INSERT INTO temp.signet_expect (refusal, ok) VALUES ('",
            $name,
            "', changes() = 1)"
        )
    };
}
pub(crate) use expect_one;

/// A checked write's two texts (ADR 0035, [`crate::tx::SqlTx::write_checked`]):
/// `$write` is `$sql` as PostgreSQL runs it, its row count deciding, and
/// `$checked` is `$sql` followed by its [`expect_one!`] for `$refusal` (a
/// [`Refusal::name`]), which SQLite runs with the unit's next call.
macro_rules! checked_write {
    ($(#[$doc:meta])* $write:ident, $checked:ident, $refusal:literal, $sql:literal) => {
        $(#[$doc])*
        const $write: &str = $sql;
        #[doc = concat!("[`", stringify!($write), "`], checked: refused as `", $refusal, "` unless it changed one row.")]
        const $checked: &str = concat!($sql, "; ", $crate::refusals::expect_one!($refusal));
    };
}
pub(crate) use checked_write;

/// The check a leader of handed units opens its group with when it sealed
/// their records against the chain head the last group left
/// (`crate::group_commit`): `$1` and `$2` are that head's sequence number
/// and hash. Unless `audit_head` still holds them (another process, the
/// CLI, appended since), it raises [`HEAD_MOVED`] and the call stops
/// before any record is written. Not a [`Refusal`]: no client hears it.
pub(crate) const HEAD_CHECK: &str = "INSERT INTO temp.signet_expect (refusal, ok) SELECT 'audit_head', \
     EXISTS (SELECT 1 FROM audit_head WHERE id = 1 AND seq = $1 AND hash = $2)";

/// What [`HEAD_CHECK`] raises.
pub(crate) const HEAD_MOVED: &str = "signet_audit_head_moved";

/// What the writer runs when it connects: the view and its triggers.
pub(crate) fn setup_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(build_setup_sql)
}

fn build_setup_sql() -> String {
    let mut sql = String::from("CREATE TEMP VIEW IF NOT EXISTS signet_expect (refusal, ok) AS SELECT NULL, NULL;");
    let mut known = Vec::new();
    for r in Refusal::ALL {
        let name = r.name();
        sql.push_str(&format!(
            " CREATE TEMP TRIGGER IF NOT EXISTS signet_expect_{name} INSTEAD OF INSERT ON signet_expect \
             WHEN NEW.refusal = '{name}' AND NOT NEW.ok BEGIN SELECT RAISE(ABORT, '{RAISED}{name}'); END;"
        ));
        known.push(format!("'{name}'"));
    }
    sql.push_str(&format!(
        " CREATE TEMP TRIGGER IF NOT EXISTS signet_expect_audit_head INSTEAD OF INSERT ON signet_expect \
         WHEN NEW.refusal = 'audit_head' AND NOT NEW.ok BEGIN SELECT RAISE(ABORT, '{HEAD_MOVED}'); END;"
    ));
    known.push("'audit_head'".to_owned());
    // A check naming no refusal (a typo, a name missing from
    // `Refusal::ALL`) must not pass silently: it fails closed, as a storage
    // error rather than a refusal, whatever `ok` says.
    sql.push_str(&format!(
        " CREATE TEMP TRIGGER IF NOT EXISTS signet_expect_unknown INSTEAD OF INSERT ON signet_expect \
         WHEN NEW.refusal NOT IN ({}) BEGIN SELECT RAISE(ABORT, 'signet_expect: no such refusal'); END;",
        known.join(", ")
    ));
    sql
}

/// The prefix of a raised refusal's message.
const RAISED: &str = "signet_refused:";

/// The refusal an engine error reports, if it is one.
pub(crate) fn refusal_of(message: &str) -> Option<Refusal> {
    let name = message.strip_prefix(RAISED)?;
    Refusal::ALL.into_iter().find(|r| r.name() == name)
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, SqliteConnection};

    use super::*;

    async fn conn() -> SqliteConnection {
        let mut c = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::raw_sql(setup_sql()).execute(&mut c).await.unwrap();
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .execute(&mut c)
            .await
            .unwrap();
        c
    }

    #[tokio::test]
    async fn a_checked_write_that_changed_no_row_stops_the_call_with_its_refusal() {
        let mut c = conn().await;
        let checked = concat!(
            "INSERT INTO t (k) VALUES ('a') ON CONFLICT (k) DO NOTHING; ",
            expect_one!("flow_finished"),
            "; INSERT INTO t (k) VALUES ('after')"
        );
        // The first time the write lands, the check passes, the call goes on.
        sqlx::raw_sql(checked).execute(&mut c).await.unwrap();
        // The second time it changes nothing: refused, and nothing after
        // the check ran.
        sqlx::query("DELETE FROM t WHERE k = 'after'")
            .execute(&mut c)
            .await
            .unwrap();
        let e = sqlx::raw_sql(checked).execute(&mut c).await.unwrap_err();
        assert_eq!(refused(&e), Some(Refusal::FlowFinished), "{e}");
        let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE k = 'after'")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(after, 0);
        // Each check raises its own name.
        let e = sqlx::raw_sql(concat!(
            "UPDATE t SET k = k WHERE k = 'none'; ",
            expect_one!("passkey_raced")
        ))
        .execute(&mut c)
        .await
        .unwrap_err();
        assert_eq!(refused(&e), Some(Refusal::PasskeyRaced), "{e}");
        // A check naming no refusal fails closed, even when the write
        // landed, and is not taken for a refusal.
        let e = sqlx::raw_sql(concat!("INSERT INTO t (k) VALUES ('b'); ", expect_one!("flow_finishd")))
            .execute(&mut c)
            .await
            .unwrap_err();
        assert_eq!(refused(&e), None, "{e}");
        assert!(e.to_string().contains("no such refusal"), "{e}");
    }

    fn refused(e: &sqlx::Error) -> Option<Refusal> {
        match e {
            sqlx::Error::Database(db) => refusal_of(db.message()),
            _ => None,
        }
    }

    #[test]
    fn every_refusal_has_a_trigger_and_is_recognised() {
        let sql = setup_sql();
        for r in Refusal::ALL {
            assert!(sql.contains(&format!("signet_expect_{}", r.name())));
            assert_eq!(refusal_of(&format!("{RAISED}{}", r.name())), Some(r));
        }
        assert_eq!(refusal_of("signet_refused:unknown"), None);
        assert_eq!(refusal_of("UNIQUE constraint failed"), None);
    }
}
