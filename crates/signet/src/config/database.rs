//! `[database]`: where Signet stores its data.
//!
//! The rules are signet-store's, next to the code that opens the database:
//! which URLs it can open ([`signet_store::check_url`]) and the pool sizes
//! it takes ([`signet_store::ConnectOptions::check_max_connections`]). This
//! section reads the values and says where a refused one came from.

use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::loader::{env_integer, env_string, redact_str, ConfigError, Sources};

pub use signet_store::MAX_CONNECTIONS_RANGE;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./signet-data/signet.db";
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

#[derive(Clone, PartialEq, Eq)]
pub struct Database {
    /// `sqlite://PATH`, `sqlite:PATH`, `postgres://...` or `postgresql://...`.
    pub url: String,
    /// Connection pool size (PostgreSQL).
    pub max_connections: u32,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("url", &redact_str(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    url: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
}

pub(super) fn build(raw: RawDatabase, src: &Sources) -> Result<Database, ConfigError> {
    let url = src.pick_or("database.url", raw.url, env_string, DEFAULT_DATABASE_URL.into())?;
    signet_store::check_url(&url.value).map_err(|e| url.error(e.to_string()))?;
    let max = src.pick_or(
        "database.max_connections",
        raw.max_connections,
        env_integer,
        i64::from(DEFAULT_MAX_CONNECTIONS),
    )?;
    let max_connections =
        signet_store::ConnectOptions::check_max_connections(max.value).map_err(|e| max.error(e.to_string()))?;
    Ok(Database {
        url: url.value,
        max_connections,
    })
}
