//! Authorization requests waiting for a login and authorization codes
//! ([`OidcGrantWrites`]). A code is sealed, not stored, until it is
//! redeemed (ADR 0038): redemption inserts its row (by its hash and id
//! only) with `ON CONFLICT DO NOTHING`, so among concurrent redemptions
//! exactly one inserts it (OpenID Connect Core §3.1.3.2, RFC 9700 §4.5:
//! single use) and every other finds it taken.

use signet_core::clock::Timestamp;
use signet_core::oidc_client::OidcClient;
use signet_core::secret::TokenHash;
use signet_core::store::{Refusal, StoreResult};
use signet_core::unit_of_work::{CodeRedemption, NewCode, NewRefreshToken, OidcGrantWrites, RefreshRotation};
use signet_core::user::{UserId, UserStatus};
use uuid::Uuid;

use crate::backend;
use crate::deferred::Deferred;
use crate::oidc_clients::{oidc_client_columns, oidc_client_read_columns, ClientRow};
use crate::rows::{uuid, OwnerColumns};
use crate::tx::{in_tx, SqlTx};

/// The columns of the user `$owner` (an SQL expression naming a user id),
/// each a scalar subquery, so that the statement that redeems a code also
/// reads its user: NULL throughout if the account is gone.
macro_rules! user_of {
    ($owner:literal) => {
        concat!(
            "(SELECT email FROM users WHERE users.id = ",
            $owner,
            ") AS user_email, ",
            "(SELECT phone FROM users WHERE users.id = ",
            $owner,
            ") AS user_phone, ",
            "(SELECT name FROM users WHERE users.id = ",
            $owner,
            ") AS user_name, ",
            "(SELECT roles FROM users WHERE users.id = ",
            $owner,
            ") AS user_roles, ",
            "(SELECT status FROM users WHERE users.id = ",
            $owner,
            ") AS user_status, ",
            "(SELECT created_at FROM users WHERE users.id = ",
            $owner,
            ") AS user_created_at, ",
            "(SELECT updated_at FROM users WHERE users.id = ",
            $owner,
            ") AS user_updated_at"
        )
    };
}

/// A code this call redeemed, with its user's columns.
#[derive(sqlx::FromRow)]
struct RedeemedRow {
    user_id: String,
    session_live: i64,
    consented: Option<String>,
    client_live: i64,
    #[sqlx(flatten)]
    user: OwnerColumns,
}

impl RedeemedRow {
    fn into_redemption(self) -> StoreResult<CodeRedemption> {
        Ok(CodeRedemption::Redeemed {
            user: self.user.into_user(self.user_id)?,
            session_live: self.session_live > 0,
            consented: self.consented.as_deref().map(crate::oidc_clients::scope_list),
            client_live: self.client_live > 0,
        })
    }
}

crate::refusals::checked_write!(
    /// A refresh token's rotation after it was read usable: it changes the
    /// row only if the token is this client's, unexpired, still not rotated
    /// out nor revoked, its family's code unrevoked and its user active
    /// (every check the read passed), so of concurrent uses at most one
    /// rotates it, and nothing that ended it since the read is passed over.
    ROTATE,
    ROTATE_CHECKED,
    "refresh_raced",
    "UPDATE oidc_refresh_tokens SET rotated_at = $2 \
     WHERE token_hash = $1 AND client_id = $3 AND expires_at > $2 AND rotated_at IS NULL AND revoked_at IS NULL \
     AND EXISTS (SELECT 1 FROM oidc_codes \
                 WHERE oidc_codes.id = oidc_refresh_tokens.family_id AND oidc_codes.revoked_at IS NULL) \
     AND EXISTS (SELECT 1 FROM users WHERE users.id = oidc_refresh_tokens.user_id AND users.status = 'active')"
);

#[async_trait::async_trait]
impl OidcGrantWrites for SqlTx {
    async fn insert_oidc_request(
        &mut self,
        id: Uuid,
        client_id: &str,
        request: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        in_tx!(self, |c| {
            sqlx::query("INSERT INTO oidc_requests (id, client_id, request, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(id.to_string())
                .bind(client_id)
                .bind(request)
                .bind(expires_at.as_millis())
                .execute(&mut *c)
                .await
                .map_err(backend)?;
        })
    }

    async fn oidc_request(&mut self, id: Uuid, now: Timestamp) -> StoreResult<Option<String>> {
        in_tx!(self, |c| {
            let row: Option<(String,)> =
                sqlx::query_as("SELECT request FROM oidc_requests WHERE id = $1 AND expires_at > $2")
                    .bind(id.to_string())
                    .bind(now.as_millis())
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(backend)?;
            row.map(|(r,)| r)
        })
    }

    async fn delete_oidc_request(&mut self, id: Uuid) -> StoreResult<()> {
        in_tx!(self, |c| {
            sqlx::query("DELETE FROM oidc_requests WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *c)
                .await
                .map_err(backend)?;
        })
    }

    async fn take_oidc_request(&mut self, id: Uuid) -> StoreResult<bool> {
        in_tx!(self, |c| {
            sqlx::query("DELETE FROM oidc_requests WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected()
                == 1
        })
    }

    async fn redeem_oidc_code(&mut self, code: &NewCode<'_>, now: Timestamp) -> StoreResult<CodeRedemption> {
        if !self.defers() {
            // PostgreSQL (READ COMMITTED): the rows whose removal would
            // refuse this code are locked first, so a unit that ends the
            // session, forgets the consent or deletes the client either
            // commits before the insert below (whose fresh snapshot then
            // sees it) or waits for this unit, and then its revoking and
            // logout statements see the code's row. SQLite's single writer
            // orders the two units anyway.
            in_tx!(self, |c| {
                sqlx::query(
                    "WITH s AS (SELECT 1 FROM sessions WHERE id = $1 FOR KEY SHARE), \
                     c AS (SELECT 1 FROM oidc_consents WHERE user_id = $2 AND client_id = $3 FOR KEY SHARE), \
                     k AS (SELECT 1 FROM oidc_clients WHERE client_id = $3 FOR KEY SHARE) \
                     SELECT (SELECT COUNT(*) FROM s) + (SELECT COUNT(*) FROM c) + (SELECT COUNT(*) FROM k)",
                )
                .bind(code.session_id.to_string())
                .bind(code.user_id.to_string())
                .bind(code.client_id)
                .execute(&mut *c)
                .await
                .map_err(backend)?;
            })?;
        }
        let won: Option<RedeemedRow> = in_tx!(self, |c| {
            sqlx::query_as(concat!(
                "INSERT INTO oidc_codes \
                 (code_hash, id, client_id, user_id, sid, session_id, grant_data, expires_at, redeemed_at) \
                 VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8) ON CONFLICT DO NOTHING \
                 RETURNING user_id, \
                 (SELECT COUNT(*) FROM sessions \
                 WHERE sessions.id = oidc_codes.session_id AND sessions.user_id = oidc_codes.user_id AND NOT ",
                crate::sessions::timed_out!("sessions", "$8"),
                ") AS session_live, \
                 (SELECT scopes FROM oidc_consents WHERE oidc_consents.user_id = oidc_codes.user_id \
                 AND oidc_consents.client_id = oidc_codes.client_id) AS consented, \
                 (SELECT COUNT(*) FROM oidc_clients WHERE oidc_clients.client_id = oidc_codes.client_id) \
                 AS client_live, ",
                user_of!("oidc_codes.user_id")
            ))
            .bind(code.hash.as_bytes().to_vec())
            .bind(code.id.to_string())
            .bind(code.client_id)
            .bind(code.user_id.to_string())
            .bind(code.session_id.to_string())
            .bind(code.grant)
            .bind(code.expires_at.as_millis())
            .bind(now.as_millis())
            .fetch_optional(&mut *c)
            .await
            .map_err(backend)?
        })?;
        if let Some(row) = won {
            return row.into_redemption();
        }
        // Its id was taken: this code was redeemed before.
        let reused: Option<(String, String)> = in_tx!(self, |c| {
            sqlx::query_as(
                "UPDATE oidc_codes SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
                 RETURNING id, client_id",
            )
            .bind(code.id.to_string())
            .bind(now.as_millis())
            .fetch_optional(&mut *c)
            .await
            .map_err(backend)?
        })?;
        Ok(match reused {
            Some((id, client_id)) => CodeRedemption::Reused {
                id: uuid(&id)?,
                client_id,
            },
            None => CodeRedemption::Unknown,
        })
    }

    async fn burn_oidc_code(&mut self, id: Uuid, now: Timestamp) -> StoreResult<()> {
        in_tx!(self, |c| {
            sqlx::query(
                "UPDATE oidc_codes SET revoked_at = COALESCE(revoked_at, $2), \
                 logged_out_at = COALESCE(logged_out_at, $2) WHERE id = $1",
            )
            .bind(id.to_string())
            .bind(now.as_millis())
            .execute(&mut *c)
            .await
            .map_err(backend)?;
        })
    }

    async fn oidc_code_standing(&mut self, id: Uuid) -> StoreResult<Option<bool>> {
        in_tx!(self, |c| {
            let row: Option<(Option<i64>,)> = sqlx::query_as("SELECT revoked_at FROM oidc_codes WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&mut *c)
                .await
                .map_err(backend)?;
            row.map(|(revoked,)| revoked.is_none())
        })
    }

    /// On SQLite the `INSERT` goes with the unit's next call on the writer
    /// (the grant's audit record's, [`SqlTx::write_later`]).
    async fn insert_oidc_refresh(&mut self, t: &NewRefreshToken<'_>) -> StoreResult<()> {
        self.write_later(Deferred {
            sql: "INSERT INTO oidc_refresh_tokens (token_hash, id, family_id, client_id, user_id, grant_data, expires_at) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7)",
            values: vec![
                t.hash.as_bytes().to_vec().into(),
                t.id.to_string().into(),
                t.family.to_string().into(),
                t.client_id.into(),
                t.user_id.to_string().into(),
                t.grant.into(),
                t.expires_at.as_millis().into(),
            ],
        })
        .await
    }

    async fn rotate_oidc_refresh(&mut self, hash: &TokenHash, now: Timestamp) -> StoreResult<RefreshRotation> {
        // The family's code and the user are read by subqueries of the
        // rotating statement itself: one round trip to the writer.
        type Won = (String, String, String, i64, Option<i64>, i64, Option<String>);
        let won: Option<Won> = in_tx!(self, |c| {
            sqlx::query_as(
                "UPDATE oidc_refresh_tokens SET rotated_at = $2 WHERE token_hash = $1 AND rotated_at IS NULL \
                 RETURNING family_id, client_id, grant_data, expires_at, revoked_at, \
                 (SELECT COUNT(*) FROM oidc_codes \
                  WHERE oidc_codes.id = oidc_refresh_tokens.family_id AND oidc_codes.revoked_at IS NULL), \
                 (SELECT status FROM users WHERE users.id = oidc_refresh_tokens.user_id)",
            )
            .bind(hash.as_bytes().to_vec())
            .bind(now.as_millis())
            .fetch_optional(&mut *c)
            .await
            .map_err(backend)?
        })?;
        if let Some((family, client_id, grant, expires_at, revoked_at, standing, status)) = won {
            return Ok(RefreshRotation::Rotated {
                family: uuid(&family)?,
                client_id,
                grant,
                expires_at: Timestamp::from_millis(expires_at),
                revoked: revoked_at.is_some(),
                grant_standing: standing == 1,
                user_active: status.as_deref().and_then(UserStatus::parse) == Some(UserStatus::Active),
            });
        }
        Ok(match self.oidc_refresh_owner(hash).await? {
            Some((family, client_id)) => RefreshRotation::Reused { family, client_id },
            None => RefreshRotation::Unknown,
        })
    }

    async fn rotate_oidc_refresh_checked(
        &mut self,
        hash: &TokenHash,
        client_id: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        let values = vec![
            hash.as_bytes().to_vec().into(),
            now.as_millis().into(),
            client_id.into(),
        ];
        self.write_checked(Refusal::RefreshRaced, ROTATE, ROTATE_CHECKED, values)
            .await
    }

    async fn revoke_oidc_family(&mut self, family: Uuid, now: Timestamp) -> StoreResult<u64> {
        self.revoke_tokens_then_codes(
            "UPDATE oidc_refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
            "UPDATE oidc_codes SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
            family.to_string(),
            now,
        )
        .await
    }

    async fn revoke_oidc_user(&mut self, user: UserId, now: Timestamp) -> StoreResult<u64> {
        self.revoke_tokens_then_codes(
            "UPDATE oidc_refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            "UPDATE oidc_codes SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            user.0.to_string(),
            now,
        )
        .await
    }

    async fn oidc_refresh_owner(&mut self, hash: &TokenHash) -> StoreResult<Option<(Uuid, String)>> {
        let row: Option<(String, String)> = in_tx!(self, |c| {
            sqlx::query_as("SELECT family_id, client_id FROM oidc_refresh_tokens WHERE token_hash = $1")
                .bind(hash.as_bytes().to_vec())
                .fetch_optional(&mut *c)
                .await
                .map_err(backend)?
        })?;
        row.map(|(family, client_id)| Ok((uuid(&family)?, client_id)))
            .transpose()
    }

    async fn claim_oidc_logouts(
        &mut self,
        user: UserId,
        session: Option<Uuid>,
        now: Timestamp,
    ) -> StoreResult<Vec<(String, Uuid)>> {
        let rows: Vec<(String, Option<String>)> = in_tx!(self, |c| {
            match session {
                Some(session) => sqlx::query_as(
                    "UPDATE oidc_codes SET logged_out_at = $3 WHERE user_id = $1 AND session_id = $2 \
                     AND redeemed_at IS NOT NULL AND logged_out_at IS NULL RETURNING client_id, sid",
                )
                .bind(user.0.to_string())
                .bind(session.to_string())
                .bind(now.as_millis())
                .fetch_all(&mut *c)
                .await
                .map_err(backend)?,
                None => sqlx::query_as(
                    "UPDATE oidc_codes SET logged_out_at = $2 WHERE user_id = $1 \
                     AND redeemed_at IS NOT NULL AND logged_out_at IS NULL RETURNING client_id, sid",
                )
                .bind(user.0.to_string())
                .bind(now.as_millis())
                .fetch_all(&mut *c)
                .await
                .map_err(backend)?,
            }
        })?;
        let mut out: Vec<(String, Uuid)> = Vec::new();
        for (client_id, sid) in rows {
            // Codes issued before sessions were recorded name none.
            let Some(sid) = sid else { continue };
            let pair = (client_id, uuid(&sid)?);
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn move_oidc_session(&mut self, user: UserId, from: Uuid, to: Uuid) -> StoreResult<u64> {
        in_tx!(self, |c| {
            sqlx::query("UPDATE oidc_codes SET session_id = $3 WHERE user_id = $1 AND session_id = $2")
                .bind(user.0.to_string())
                .bind(from.to_string())
                .bind(to.to_string())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected()
        })
    }

    async fn oidc_client_in_tx(&mut self, client_id: &str) -> StoreResult<Option<OidcClient>> {
        let row: Option<ClientRow> = in_tx!(self, |c| {
            sqlx::query_as(concat!(
                "SELECT ",
                oidc_client_read_columns!(),
                " FROM oidc_clients WHERE client_id = $1"
            ))
            .bind(client_id)
            .fetch_optional(&mut *c)
            .await
            .map_err(backend)?
        })?;
        row.map(OidcClient::try_from).transpose()
    }
}

impl SqlTx {
    /// Revokes the refresh tokens `tokens` selects by `key` (`$1`, with
    /// `now` as `$2`), then the codes `codes` selects, and returns the
    /// tokens revoked. The refresh tokens first, then the code: a rotation
    /// locks its token, then (inserting the next one) keys its code, so
    /// every writer of a family takes its rows in that order. Code first,
    /// two revocations and a rotation of one family deadlocked on
    /// PostgreSQL (concurrent replays of one token).
    async fn revoke_tokens_then_codes(
        &mut self,
        tokens: &'static str,
        codes: &'static str,
        key: String,
        now: Timestamp,
    ) -> StoreResult<u64> {
        in_tx!(self, |c| {
            let revoked = sqlx::query(tokens)
                .bind(key.as_str())
                .bind(now.as_millis())
                .execute(&mut *c)
                .await
                .map_err(backend)?
                .rows_affected();
            sqlx::query(codes)
                .bind(key.as_str())
                .bind(now.as_millis())
                .execute(&mut *c)
                .await
                .map_err(backend)?;
            revoked
        })
    }
}
