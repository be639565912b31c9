//! `[metrics]` (an extension of the contract's keys): the bearer token a
//! scraper of `/metrics` must present, kept only as its SHA-256.
//!
//! The token's rules are the binary's (no crate owns a "metrics token"
//! type; `TokenHash` is only its digest), so they live here.

use serde::Deserialize;
use signet_core::secret::TokenHash;
use toml::Spanned;

use super::loader::{env_string, ConfigError, Sources};

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    token: Option<Spanned<String>>,
}

pub(super) fn build(raw: RawMetrics, src: &Sources) -> Result<Option<TokenHash>, ConfigError> {
    Ok(match src.pick("metrics.token", raw.token, env_string)? {
        Some(t) => Some(check_metrics_token(&t.value).map_err(|m| t.error(m))?),
        None => None,
    })
}

/// Shortest `[metrics] token` accepted: 32 characters of a random token are
/// far beyond guessing, and a short one is a mistake to refuse early.
pub const MIN_METRICS_TOKEN_LEN: usize = 32;

/// A bearer token must be visible ASCII (RFC 6750 `b64token` is narrower;
/// anything a header can carry verbatim is accepted) and long enough.
fn check_metrics_token(token: &str) -> Result<TokenHash, String> {
    if token.len() < MIN_METRICS_TOKEN_LEN {
        return Err(format!(
            "must be at least {MIN_METRICS_TOKEN_LEN} characters (for example: openssl rand -hex 32)"
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    Ok(TokenHash::of(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures::*;

    #[test]
    fn metrics_token_is_kept_as_a_hash_and_must_be_long_and_printable() {
        assert_eq!(load_env(&[]).unwrap().metrics_token, None);
        let token = "0123456789abcdef0123456789abcdef";
        let c = load_env(&[("SIGNET_METRICS__TOKEN", token)]).unwrap();
        assert_eq!(c.metrics_token, Some(TokenHash::of(token.as_bytes())));
        assert!(!format!("{c:?}").contains(token), "never in debug output");
        for bad in [
            "short",
            "0123456789abcdef 0123456789abcdef",
            "0123456789abcdef\t0123456789abcdef",
        ] {
            let err = load_env(&[("SIGNET_METRICS__TOKEN", bad)]).unwrap_err().to_string();
            assert!(err.contains("SIGNET_METRICS__TOKEN"), "{err}");
        }
        let err = load_file("[metrics]\ntoken = \"short\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.token") && err.contains("line 2"), "{err}");
    }
}
