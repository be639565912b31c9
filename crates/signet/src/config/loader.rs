//! The loader: where a value comes from, and how it is read.
//!
//! Sources ([`Sources`]) hold the file's text (for line numbers) and the
//! `SIGNET_*` variables, collected once ([`collect_env`]): an unknown
//! variable is refused with a suggestion, an empty one is refused rather
//! than read as unset. [`Sources::pick`] takes a key's value from the
//! environment or else the file, and [`Sourced`] carries it with its
//! [`Origin`], so a section's check only says what is wrong and
//! [`Sourced::error`] adds the key and "(from SIGNET_...)" or the file line.
//!
//! The sections (`super::database` and the rest) own their raw tables;
//! [`RawFile`] only gathers them, and refuses unknown keys and tables.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::database::RawDatabase;
use super::email::RawEmail;
use super::limits::RawLimits;
use super::log::RawLog;
use super::login::RawLogin;
use super::metrics::RawMetrics;
use super::sealing::RawSealing;
use super::sms::RawSms;
use super::webauthn::RawWebAuthn;

/// Every environment override starts with this.
pub const ENV_PREFIX: &str = "SIGNET_";
/// Names the config file for the CLI; not a setting, so [`Config::load`](super::Config::load)
/// neither reads nor refuses it.
pub const CONFIG_PATH_ENV: &str = "SIGNET_CONFIG";
/// Variables with this prefix belong to the test suite and are ignored.
pub const TEST_ENV_PREFIX: &str = "SIGNET_TEST_";
/// The admin token a help-desk CLI command acts as (`signet
/// recovery-ticket`); a credential, not a setting.
pub const ADMIN_TOKEN_ENV: &str = "SIGNET_ADMIN_TOKEN";

/// Every setting, as a dotted key (`table.key`). [`env_var_name`] gives the
/// variable that overrides it.
pub const KEYS: &[&str] = &[
    "listen",
    "public_url",
    "policy",
    "tls_cert",
    "tls_key",
    "invitation_ttl",
    "trust_forwarded_for",
    "database.url",
    "database.max_connections",
    "email.from",
    "email.smtp_url",
    "sms.webhook_url",
    "sms.twilio_account_sid",
    "sms.twilio_auth_token",
    "sms.twilio_from",
    "sms.twilio_base_url",
    "sms.allowed_countries",
    "sms.send_window",
    "sms.sends_per_number",
    "sms.sends_per_prefix",
    "sms.sends_per_ip",
    "sms.global_per_hour",
    "log.format",
    "log.level",
    "login.code_length",
    "login.code_ttl",
    "login.send_window",
    "login.sends_per_address",
    "login.sends_per_ip",
    "login.starts_per_ip",
    "webauthn.rp_id",
    "webauthn.extra_origins",
    "metrics.token",
    "sealing.key",
    "sealing.previous_keys",
    "limits.max_connections",
    "limits.max_in_flight",
    "limits.anonymous_in_flight",
    "limits.ops_in_flight",
    "limits.request_timeout",
    "limits.header_read_timeout",
    "courier.concurrency",
];

/// The environment variable that overrides a dotted key:
/// `database.url` → `SIGNET_DATABASE__URL`.
pub fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_ascii_uppercase())
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    File { path: PathBuf, line: Option<usize> },
    Env { var: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default value"),
            Origin::File { path, line: Some(line) } => write!(f, "from {}, line {line}", path.display()),
            Origin::File { path, line: None } => write!(f, "from {}", path.display()),
            Origin::Env { var } => write!(f, "from {var}"),
        }
    }
}

/// Why the configuration could not be loaded. Every message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config error: cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a value of the wrong type in the file.
    /// `message` is the toml parser's, with line and column.
    #[error("config error: {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error(
        "config error: unknown environment variable {var}: it names no Signet setting{}",
        unknown_env_hint(.suggestion)
    )]
    UnknownEnv {
        var: String,
        /// The variable that was probably meant.
        suggestion: Option<String>,
    },
    #[error("config error: environment variable {var} is not valid UTF-8")]
    EnvNotUnicode { var: String },
    /// A value that does not pass validation.
    #[error("config error: {key} ({origin}): {message}")]
    Invalid {
        /// Dotted key, e.g. `database.url`.
        key: &'static str,
        origin: Origin,
        message: String,
    },
}

fn unknown_env_hint(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s}? nested keys use a double underscore)"),
        None => format!(
            " (the {ENV_PREFIX} prefix is reserved for the settings in docs/configuration.md, \
             {CONFIG_PATH_ENV}, {ADMIN_TOKEN_ENV} and {TEST_ENV_PREFIX}*)"
        ),
    }
}

/// The file as written. Every field is optional; unknown keys are refused.
/// Strings are checked after merging so errors can name the key and line.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) public_url: Option<Spanned<String>>,
    pub(super) policy: Option<Spanned<String>>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
    pub(super) invitation_ttl: Option<Spanned<String>>,
    pub(super) trust_forwarded_for: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) database: RawDatabase,
    #[serde(default)]
    pub(super) email: RawEmail,
    #[serde(default)]
    pub(super) sms: RawSms,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) login: RawLogin,
    #[serde(default)]
    pub(super) webauthn: RawWebAuthn,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    #[serde(default)]
    pub(super) sealing: RawSealing,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) oidc: super::oidc::RawOidc,
    #[serde(default)]
    pub(super) courier: super::courier::RawCourier,
}

pub(super) fn is_exempt(var: &str) -> bool {
    var == CONFIG_PATH_ENV || var == ADMIN_TOKEN_ENV || var.starts_with(TEST_ENV_PREFIX)
}

/// Keeps the `SIGNET_*` entries, keyed by dotted key. Sorted so that the
/// first unknown variable reported is always the same one.
pub(super) fn collect_env(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<&'static str, (String, String)>, ConfigError> {
    let ours: BTreeMap<String, String> = env
        .into_iter()
        .filter(|(var, _)| var.starts_with(ENV_PREFIX) && !is_exempt(var))
        .collect();
    let mut out = BTreeMap::new();
    for (var, value) in ours {
        match KEYS.iter().find(|key| env_var_name(key) == var) {
            Some(key) => {
                out.insert(*key, (var, value));
            }
            None => {
                let suggestion = suggest(&var);
                return Err(ConfigError::UnknownEnv { var, suggestion });
            }
        }
    }
    Ok(out)
}

/// A known variable that differs from `var` only in case or underscores.
pub(super) fn suggest(var: &str) -> Option<String> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_')
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    let wanted = squash(var);
    KEYS.iter()
        .map(|key| env_var_name(key))
        .find(|name| squash(name) == wanted)
}

pub(super) fn read_file(path: &Path) -> Result<(RawFile, String), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let raw = toml::from_str::<RawFile>(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    Ok((raw, text))
}

pub(super) struct Sources {
    pub(super) file: Option<PathBuf>,
    pub(super) text: String,
    pub(super) env: BTreeMap<&'static str, (String, String)>,
}

/// A value and where it came from.
pub(super) struct Sourced<T> {
    pub(super) key: &'static str,
    pub(super) value: T,
    pub(super) origin: Origin,
}

impl<T> Sourced<T> {
    pub(super) fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: self.key,
            origin: self.origin.clone(),
            message: message.into(),
        }
    }
}

impl Sources {
    /// The environment's value for `key` if set, else the file's.
    pub(super) fn pick<T>(
        &self,
        key: &'static str,
        file: Option<Spanned<T>>,
        from_env: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<Sourced<T>>, ConfigError> {
        if let Some((var, value)) = self.env.get(key) {
            let origin = Origin::Env { var: var.clone() };
            let invalid = |message: String| ConfigError::Invalid {
                key,
                origin: origin.clone(),
                message,
            };
            if value.is_empty() {
                return Err(invalid(format!(
                    "the variable is set but empty; unset {var} to use the config file or default"
                )));
            }
            let value = from_env(value).map_err(invalid)?;
            return Ok(Some(Sourced { key, value, origin }));
        }
        Ok(file.map(|spanned| {
            let line = self.line_of(spanned.span().start);
            Sourced {
                key,
                origin: Origin::File {
                    path: self.file.clone().unwrap_or_default(),
                    line,
                },
                value: spanned.into_inner(),
            }
        }))
    }

    /// Like [`Sources::pick`], falling back to `default`.
    pub(super) fn pick_or<T>(
        &self,
        key: &'static str,
        file: Option<Spanned<T>>,
        from_env: impl FnOnce(&str) -> Result<T, String>,
        default: T,
    ) -> Result<Sourced<T>, ConfigError> {
        Ok(self.pick(key, file, from_env)?.unwrap_or(Sourced {
            key,
            value: default,
            origin: Origin::Default,
        }))
    }

    fn line_of(&self, offset: usize) -> Option<usize> {
        self.text.get(..offset).map(|before| before.matches('\n').count() + 1)
    }
}

pub(super) fn env_string(s: &str) -> Result<String, String> {
    Ok(s.to_owned())
}

pub(super) fn env_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got {s:?}")),
    }
}

pub(super) fn env_integer(s: &str) -> Result<i64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a whole number, got {s:?}"))
}

/// A comma-separated list from the environment.
pub(super) fn env_list(s: &str) -> Result<Vec<String>, String> {
    Ok(s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect())
}

impl Sourced<String> {
    /// The value as a duration such as `72h` (`signet_core::duration`); only
    /// the syntax: the bounds are the section's.
    pub(super) fn duration(&self) -> Result<Duration, ConfigError> {
        signet_core::duration::parse(&self.value).map_err(|m| self.error(m))
    }
}

/// A URL for `Debug`: the password and query string replaced.
pub(super) fn redact(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        // Only fails for URLs that cannot have credentials, which then have
        // no password to hide.
        let _ = url.set_password(Some("REDACTED"));
    }
    if url.query().is_some() {
        url.set_query(Some("REDACTED"));
    }
    url.into()
}

pub(super) fn redact_str(s: &str) -> String {
    match Url::parse(s) {
        Ok(url) => redact(&url),
        Err(_) => "<unparseable URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures::*;
    use crate::config::{Config, DEFAULT_DATABASE_URL};

    #[test]
    fn unknown_file_key_names_key_and_line() {
        let msg = err_file("listen = \"127.0.0.1:1\"\n\nlistne_addr = \"x\"\n");
        assert!(msg.contains("listne_addr"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");

        let msg = err_file("[database]\nurl = \"sqlite://x.db\"\npool = 3\n");
        assert!(msg.contains("pool") && msg.contains("line 3"), "{msg}");

        let msg = err_file("[smtp]\nhost = \"x\"\n");
        assert!(msg.contains("smtp") && msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn toml_syntax_error_has_line() {
        let msg = err_file("listen = \"127.0.0.1:1\"\npublic_url = \n");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn wrong_type_in_file_has_line() {
        let msg = err_file("\ntrust_forwarded_for = \"yes\"\n");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        let err = Config::load(Some(&path), env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("cannot read config file") && msg.contains("nope.toml"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_signet_env_var_is_named() {
        let msg = err_env(&[("SIGNET_LISTEN_ADDR", "x")]);
        assert!(msg.contains("SIGNET_LISTEN_ADDR"), "{msg}");

        // A single underscore for a nested key gets a suggestion.
        let err = load_env(&[("SIGNET_DATABASE_URL", "sqlite://x.db")]).unwrap_err();
        match &err {
            ConfigError::UnknownEnv { var, suggestion } => {
                assert_eq!(var, "SIGNET_DATABASE_URL");
                assert_eq!(suggestion.as_deref(), Some("SIGNET_DATABASE__URL"));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Tables are not settings.
        assert!(err_env(&[("SIGNET_DATABASE", "x")]).contains("SIGNET_DATABASE"));
    }

    #[test]
    fn exempt_and_foreign_env_vars_are_ignored() {
        let c = load_env(&[
            ("SIGNET_TEST_DATABASE_URL", "postgres://elsewhere/db"),
            ("SIGNET_CONFIG", "/etc/signet/signet.toml"),
            ("PATH", "/usr/bin"),
            ("signet_listen", "lowercase is not ours"),
        ])
        .unwrap();
        assert_eq!(c.database.url, DEFAULT_DATABASE_URL);
    }

    #[test]
    fn empty_env_value_is_refused() {
        let msg = err_env(&[("SIGNET_EMAIL__SMTP_URL", "")]);
        assert!(
            msg.contains("email.smtp_url") && msg.contains("SIGNET_EMAIL__SMTP_URL"),
            "{msg}"
        );
    }

    #[test]
    fn env_var_names() {
        assert_eq!(env_var_name("listen"), "SIGNET_LISTEN");
        assert_eq!(env_var_name("database.url"), "SIGNET_DATABASE__URL");
        assert_eq!(env_var_name("email.smtp_url"), "SIGNET_EMAIL__SMTP_URL");
        for key in KEYS {
            assert_eq!(suggest(&env_var_name(key)).as_deref(), Some(env_var_name(key).as_str()));
        }
    }
}
