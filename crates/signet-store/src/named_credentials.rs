//! Renaming and removing a user's credentials of one kind (passkeys, TOTP
//! apps, phones), written once for every table that holds them.
//!
//! Removal keeps the last-way-in rule: the caller says how many credentials
//! of the kind must remain (`keep`), and the count, the check and the
//! delete happen in the caller's unit of work after touching the user's row,
//! which serialises concurrent removals for one user (a row lock on
//! PostgreSQL; the single writer on SQLite). So two racing removals of a
//! user's last two passkeys cannot both succeed.

use signet_core::credential::{Removal, WaysIn};
use signet_core::store::StoreResult;
use signet_core::user::UserId;
use uuid::Uuid;

use crate::backend;
use crate::tx::{with_conn, Conn};

/// The statements for one table of named credentials. Each table has `id`,
/// `user_id` and `name` columns.
pub(crate) struct NamedCredentials {
    pub rename: &'static str,
    pub count: &'static str,
    pub delete: &'static str,
}

pub(crate) const PASSKEYS: NamedCredentials = NamedCredentials {
    rename: "UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3",
    count: "SELECT COUNT(*), COALESCE(SUM(CASE WHEN id = $2 THEN 1 ELSE 0 END), 0) FROM passkeys WHERE user_id = $1",
    delete: "DELETE FROM passkeys WHERE id = $1 AND user_id = $2",
};

pub(crate) const TOTP: NamedCredentials = NamedCredentials {
    rename: "UPDATE totp_credentials SET name = $1 WHERE id = $2 AND user_id = $3",
    count: "SELECT COUNT(*), COALESCE(SUM(CASE WHEN id = $2 THEN 1 ELSE 0 END), 0) \
            FROM totp_credentials WHERE user_id = $1",
    delete: "DELETE FROM totp_credentials WHERE id = $1 AND user_id = $2",
};

pub(crate) const PHONES: NamedCredentials = NamedCredentials {
    rename: "UPDATE phones SET name = $1 WHERE id = $2 AND user_id = $3",
    count: "SELECT COUNT(*), COALESCE(SUM(CASE WHEN id = $2 THEN 1 ELSE 0 END), 0) FROM phones WHERE user_id = $1",
    delete: "DELETE FROM phones WHERE id = $1 AND user_id = $2",
};

/// Renames the user's credential `id`; false if the user has no such one.
pub(crate) async fn rename(
    conn: Conn<'_>,
    table: &NamedCredentials,
    user: UserId,
    id: Uuid,
    name: &str,
) -> StoreResult<bool> {
    Ok(with_conn!(conn, |c| {
        sqlx::query(table.rename)
            .bind(name)
            .bind(id.to_string())
            .bind(user.0.to_string())
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected()
            == 1
    }))
}

/// Touches the user's row, which serialises removals for this user (a row
/// lock on PostgreSQL; the single writer on SQLite) until the unit ends.
const LOCK_USER: &str = "UPDATE users SET updated_at = updated_at WHERE id = $1";

/// Locks the user's row and counts their credentials of every kind, for a
/// last-way-in rule that looks across kinds.
pub(crate) async fn lock_ways_in(conn: Conn<'_>, user: UserId) -> StoreResult<WaysIn> {
    Ok(with_conn!(conn, |c| {
        sqlx::query(LOCK_USER)
            .bind(user.0.to_string())
            .execute(&mut *c)
            .await
            .map_err(backend)?;
        let (passkeys, totp, phones, codes): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM passkeys WHERE user_id = $1), \
                    (SELECT COUNT(*) FROM totp_credentials WHERE user_id = $1), \
                    (SELECT COUNT(*) FROM phones WHERE user_id = $1), \
                    (SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL)",
        )
        .bind(user.0.to_string())
        .fetch_one(&mut *c)
        .await
        .map_err(backend)?;
        let n = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        WaysIn {
            passkeys: n(passkeys),
            totp: n(totp),
            phones: n(phones),
            recovery_codes: n(codes),
        }
    }))
}

/// Removes the user's credential `id` unless fewer than `keep` of the kind
/// would remain.
pub(crate) async fn remove(
    conn: Conn<'_>,
    table: &NamedCredentials,
    user: UserId,
    id: Uuid,
    keep: u32,
) -> StoreResult<Removal> {
    Ok(with_conn!(conn, |c| {
        // Serialises removals for this user (row lock on PostgreSQL).
        sqlx::query(LOCK_USER)
            .bind(user.0.to_string())
            .execute(&mut *c)
            .await
            .map_err(backend)?;
        let (count, mine): (i64, i64) = sqlx::query_as(table.count)
            .bind(user.0.to_string())
            .bind(id.to_string())
            .fetch_one(&mut *c)
            .await
            .map_err(backend)?;
        if mine == 0 {
            Removal::NotFound
        } else if count - 1 < i64::from(keep) {
            Removal::LastCredential
        } else {
            sqlx::query(table.delete)
                .bind(id.to_string())
                .bind(user.0.to_string())
                .execute(&mut *c)
                .await
                .map_err(backend)?;
            Removal::Removed
        }
    }))
}
