//! The browsers an account signed in from, by the hash of their device
//! cookie. A row per (user, device): the insert that finds one already
//! there inserts nothing (`ON CONFLICT DO NOTHING`, both engines), which is
//! how a known device is told from a new one in one statement.

use signet_core::clock::Timestamp;
use signet_core::secret::TokenHash;
use signet_core::store::StoreResult;
use signet_core::unit_of_work::DeviceWrites;
use signet_core::user::UserId;

use crate::backend;
use crate::tx::{in_tx, SqlTx};

#[async_trait::async_trait]
impl DeviceWrites for SqlTx {
    async fn remember_device(&mut self, user: UserId, device: &TokenHash, now: Timestamp) -> StoreResult<(bool, u64)> {
        in_tx!(self, |c| {
            let added = sqlx::query(
                "INSERT INTO known_devices (user_id, device_hash, first_seen, last_seen) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (user_id, device_hash) DO NOTHING",
            )
            .bind(user.0.to_string())
            .bind(device.as_bytes().as_slice())
            .bind(now.as_millis())
            .execute(&mut *c)
            .await
            .map_err(backend)?
            .rows_affected()
                == 1;
            if !added {
                sqlx::query("UPDATE known_devices SET last_seen = $3 WHERE user_id = $1 AND device_hash = $2")
                    .bind(user.0.to_string())
                    .bind(device.as_bytes().as_slice())
                    .bind(now.as_millis())
                    .execute(&mut *c)
                    .await
                    .map_err(backend)?;
            }
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM known_devices WHERE user_id = $1")
                .bind(user.0.to_string())
                .fetch_one(&mut *c)
                .await
                .map_err(backend)?;
            (added, u64::try_from(n).unwrap_or(0).saturating_sub(1))
        })
    }
}
