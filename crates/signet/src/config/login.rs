//! `[login]`: email codes and magic links, built into
//! [`signet_app::EmailLogin`].
//!
//! The bounds (code length 6 to 8, code lifetime, send window, sends per
//! address and per IP) are signet-app's, next to the type
//! ([`EmailLogin::check_code_digits`] and the rest; see
//! `signet_app::email_login`). This section reads each value in turn and
//! attaches the key and where it came from to a refusal. The keys differ
//! from the field names in one place: `code_length` is `code_digits`.

use serde::Deserialize;
use signet_app::{EmailLogin, EmailLoginError};
use toml::Spanned;

use super::loader::{env_integer, env_string, ConfigError, Sourced, Sources};

pub use signet_app::email_login::{CODE_TTL_RANGE, SENDS_RANGE, SEND_WINDOW_RANGE};

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogin {
    code_length: Option<Spanned<i64>>,
    code_ttl: Option<Spanned<String>>,
    send_window: Option<Spanned<String>>,
    sends_per_address: Option<Spanned<i64>>,
    sends_per_ip: Option<Spanned<i64>>,
    starts_per_ip: Option<Spanned<i64>>,
}

/// The key and source of `v`, and signet-app's reason.
fn refused<T>(v: &Sourced<T>) -> impl FnOnce(EmailLoginError) -> ConfigError + '_ {
    move |e| v.error(e.problem.to_string())
}

pub(super) fn build(raw: RawLogin, src: &Sources) -> Result<EmailLogin, ConfigError> {
    let d = EmailLogin::default();
    let length = src.pick_or(
        "login.code_length",
        raw.code_length,
        env_integer,
        i64::from(d.code_digits),
    )?;
    let code_digits = EmailLogin::check_code_digits(length.value).map_err(refused(&length))?;
    let ttl = match src.pick("login.code_ttl", raw.code_ttl, env_string)? {
        Some(v) => EmailLogin::check_ttl(v.duration()?).map_err(refused(&v))?,
        None => d.ttl,
    };
    let send_window = match src.pick("login.send_window", raw.send_window, env_string)? {
        Some(v) => EmailLogin::check_send_window(v.duration()?).map_err(refused(&v))?,
        None => d.send_window,
    };
    let sends = |key: &'static str, field: &'static str, raw: Option<Spanned<i64>>, default: u32| {
        let v = src.pick_or(key, raw, env_integer, i64::from(default))?;
        EmailLogin::check_sends(field, v.value).map_err(refused(&v))
    };
    let sends_per_address = sends(
        "login.sends_per_address",
        "sends_per_address",
        raw.sends_per_address,
        d.sends_per_address,
    )?;
    let sends_per_ip = sends("login.sends_per_ip", "sends_per_ip", raw.sends_per_ip, d.sends_per_ip)?;
    let starts_per_ip = sends(
        "login.starts_per_ip",
        "starts_per_ip",
        raw.starts_per_ip,
        d.starts_per_ip,
    )?;
    Ok(EmailLogin {
        code_digits,
        ttl,
        send_window,
        sends_per_address,
        sends_per_ip,
        starts_per_ip,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::fixtures::*;

    #[test]
    fn login_settings_from_env_and_their_bounds() {
        let c = load_env(&[
            ("SIGNET_LOGIN__CODE_LENGTH", "8"),
            ("SIGNET_LOGIN__CODE_TTL", "5m"),
            ("SIGNET_LOGIN__SEND_WINDOW", "1h"),
            ("SIGNET_LOGIN__SENDS_PER_ADDRESS", "5"),
            ("SIGNET_LOGIN__SENDS_PER_IP", "100"),
        ])
        .unwrap();
        assert_eq!(c.login.code_digits, 8);
        assert_eq!(c.login.ttl, Duration::from_secs(300));
        assert_eq!(c.login.send_window, Duration::from_secs(3600));
        assert_eq!((c.login.sends_per_address, c.login.sends_per_ip), (5, 100));
        for (var, value, says) in [
            ("SIGNET_LOGIN__CODE_LENGTH", "5", "between 6 and 8 digits"),
            ("SIGNET_LOGIN__CODE_LENGTH", "9", "between 6 and 8 digits"),
            ("SIGNET_LOGIN__CODE_TTL", "2h", "between 1m and 1h"),
            ("SIGNET_LOGIN__SENDS_PER_ADDRESS", "0", "between 1 and 10000"),
            ("SIGNET_LOGIN__SENDS_PER_IP", "-3", "between 1 and 10000"),
        ] {
            let msg = load_env(&[(var, value)]).unwrap_err().to_string();
            assert!(msg.contains(says), "{var}={value}: {msg}");
        }
    }
}
