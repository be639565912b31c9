//! Throw-away PostgreSQL databases for tests: each test gets a fresh database
//! on the server named by a base URL, dropped again when the guard is dropped
//! (or at the next run, if the process died).

use sqlx::postgres::PgConnection;
use sqlx::Connection;

/// A database created for one test. Call [`ScratchDb::drop_now`] at the end
/// of the test; databases left behind by crashed runs are harmless.
#[derive(Debug)]
pub struct ScratchDb {
    base_url: String,
    name: String,
    pub url: String,
}

impl ScratchDb {
    /// Creates `signet_test_<random>` on the server of `base_url`.
    pub async fn create(base_url: &str) -> Result<Self, sqlx::Error> {
        let name = format!("signet_test_{:016x}", signet_core::secret::random_u64());
        let mut conn = PgConnection::connect(base_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let mut url = url::Url::parse(base_url).map_err(|e| sqlx::Error::Configuration(Box::new(e)))?;
        url.set_path(&name);
        Ok(Self {
            base_url: base_url.to_owned(),
            name,
            url: url.to_string(),
        })
    }

    pub async fn drop_now(self) -> Result<(), sqlx::Error> {
        let mut conn = PgConnection::connect(&self.base_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .execute(&mut conn)
            .await?;
        conn.close().await
    }
}
