//! Signet's process configuration: an optional TOML file plus `SIGNET_*`
//! environment overrides, validated completely before anything starts.
//!
//! # Precedence
//!
//! Each setting is taken from the first of these that provides it:
//!
//! 1. the environment variable `SIGNET_<KEY>`: the key in upper case, with a
//!    double underscore between a table and its key (`listen` is
//!    `SIGNET_LISTEN`, `[database] url` is `SIGNET_DATABASE__URL`);
//! 2. the config file, when one is given;
//! 3. the built-in default, which on its own gives a working development
//!    server (SQLite under `./signet-data`, `127.0.0.1:8080`, the development
//!    outbox instead of real email and SMS).
//!
//! Environment values are strings and are converted to the key's type:
//! `true`/`false` for booleans, decimal integers, durations such as `72h`.
//!
//! # Nothing is silently ignored
//!
//! A setting that Signet would not act on is an error, not a warning:
//!
//! - an unknown key or table in the file is refused, with the toml parser's
//!   message, which gives the line and column;
//! - a `SIGNET_*` variable that names no setting is refused, naming the
//!   variable. The only exemptions are `SIGNET_CONFIG` (the CLI's default for
//!   `--config`) and anything starting with `SIGNET_TEST_` (the test suite's);
//! - an empty environment value is refused rather than read as "unset";
//! - every value is checked here, and the error names the key and where the
//!   value came from (`from SIGNET_PUBLIC_URL`, or the file and line).
//!
//! No error or `Debug` output repeats a password or URL query string, because
//! database, SMTP and webhook URLs may carry credentials.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use signet_core::sealing::SealingKey;
use signet_core::secret::TokenHash;
use toml::Spanned;
use url::Url;

/// Every environment override starts with this.
pub const ENV_PREFIX: &str = "SIGNET_";
/// Names the config file for the CLI; not a setting, so [`Config::load`]
/// neither reads nor refuses it.
pub const CONFIG_PATH_ENV: &str = "SIGNET_CONFIG";
/// Variables with this prefix belong to the test suite and are ignored.
pub const TEST_ENV_PREFIX: &str = "SIGNET_TEST_";

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_PUBLIC_URL: &str = "http://localhost:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./signet-data/signet.db";
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
pub const DEFAULT_EMAIL_FROM: &str = "Signet <signet@localhost>";
pub const DEFAULT_LOG_LEVEL: &str = "info";
pub const DEFAULT_INVITATION_TTL: Duration = Duration::from_secs(72 * 3600);

/// Bounds for `invitation_ttl`, inclusive.
pub const MIN_INVITATION_TTL: Duration = Duration::from_secs(5 * 60);
pub const MAX_INVITATION_TTL: Duration = Duration::from_secs(30 * 86_400);
/// Bounds for `[database] max_connections`, inclusive.
pub const MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;

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
    "log.format",
    "log.level",
    "login.code_length",
    "login.code_ttl",
    "login.send_window",
    "login.sends_per_address",
    "login.sends_per_ip",
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
];

/// Bounds of the `[login]` settings, inclusive.
pub const CODE_TTL_RANGE: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(3600));
pub const SEND_WINDOW_RANGE: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(86_400));
pub const SENDS_RANGE: std::ops::RangeInclusive<i64> = 1..=10_000;

/// The environment variable that overrides a dotted key:
/// `database.url` → `SIGNET_DATABASE__URL`.
pub fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_ascii_uppercase())
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// The origin users reach Signet at: `http` or `https`, a host, an
    /// optional port, no path. Because [`Url`] always writes the root path,
    /// `as_str()` ends in `/`; `origin().ascii_serialization()` is the form
    /// without it (what signet-app's `Settings::origin` gives).
    pub public_url: Url,
    /// Policy file; `None` means the built-in passkey-first policy.
    pub policy: Option<PathBuf>,
    /// Certificate and key for serving HTTPS directly.
    pub tls: Option<TlsFiles>,
    pub database: Database,
    pub email: Email,
    pub sms: Sms,
    pub log: Log,
    /// How long an invitation link stays valid.
    pub invitation_ttl: Duration,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy
    /// that sets it).
    pub trust_forwarded_for: bool,
    /// True when neither email nor SMS has real delivery configured: the
    /// development outbox page (`/dev/outbox`) exists only then.
    pub dev_outbox: bool,
    /// `[login]`: email codes and magic links.
    pub login: signet_app::EmailLogin,
    /// `[webauthn]`: the passkey relying party (extension).
    pub webauthn: WebAuthn,
    /// `[metrics] token` (extension), kept only as its SHA-256: when set,
    /// `/metrics` answers only a scraper that presents it as a bearer token.
    pub metrics_token: Option<TokenHash>,
    /// `[sealing]` (extension): the keys that seal secrets at rest.
    pub sealing: Sealing,
    /// `[limits]` (extension): admission control (ADR 0013).
    pub limits: Limits,
}

/// `[limits]` (an extension of the contract's keys): how much work the
/// server admits at once. Past these, requests and connections are refused
/// at once with 503 `overloaded` and `Retry-After` instead of queueing
/// (ADR 0013, docs/operations.md "Admission control").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open client connections (TCP, with or without TLS). One more is
    /// answered 503 and closed.
    pub max_connections: u32,
    /// Requests in progress at once, all routes except the operational ones.
    pub max_in_flight: u32,
    /// Of `max_in_flight`, how many may be anonymous starts (login and
    /// step-up sends, login starts, invitation redemptions): they are shed first.
    pub anonymous_in_flight: u32,
    /// `/healthz`, `/readyz` and `/metrics` in progress at once: a budget of
    /// their own, so probes still answer while the rest is shed.
    pub ops_in_flight: u32,
    /// The deadline of a whole request, from admission to the response.
    pub request_timeout: Duration,
}

pub const DEFAULT_LIMITS: Limits = Limits {
    max_connections: 1024,
    max_in_flight: 256,
    anonymous_in_flight: 64,
    ops_in_flight: 16,
    request_timeout: Duration::from_secs(10),
};

impl Default for Limits {
    fn default() -> Self {
        DEFAULT_LIMITS
    }
}

/// Bounds of the `[limits]` settings, inclusive.
pub const LIMITS_MAX_CONNECTIONS_RANGE: std::ops::RangeInclusive<i64> = 1..=1_000_000;
pub const LIMITS_IN_FLIGHT_RANGE: std::ops::RangeInclusive<i64> = 1..=100_000;
pub const REQUEST_TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(300));

/// `[sealing]` (an extension of the contract's keys): the key ring that
/// seals secrets stored at rest (see `signet_core::sealing`). Without `key`,
/// an embedded SQLite deployment keeps its keys in a key file beside the
/// database (see `crate::sealing`); PostgreSQL refuses to start, because
/// every node must share the key.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Sealing {
    /// The key that seals new values (and opens them).
    pub key: Option<SealingKey>,
    /// Keys that only open values sealed before a rotation.
    pub previous_keys: Vec<SealingKey>,
}

/// `[webauthn]` (an extension of the contract's keys): where passkeys are
/// scoped. Both are optional; the defaults come from `public_url`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WebAuthn {
    /// The RP ID: `public_url`'s host (the default) or a registrable parent
    /// domain of it, so that passkeys also work on sibling hosts.
    pub rp_id: Option<String>,
    /// More origins (scheme, host, port) whose pages may run ceremonies,
    /// each under the RP ID. `public_url`'s origin is always allowed.
    pub extra_origins: Vec<Url>,
}

impl WebAuthn {
    /// The relying-party settings for `public_url`.
    pub fn relying_party(&self, public_url: &Url) -> signet_passkey::RelyingPartyConfig {
        let mut rp = signet_passkey::RelyingPartyConfig::new(public_url.clone());
        rp.rp_id = self.rp_id.clone();
        rp.extra_origins = self.extra_origins.clone();
        rp
    }
}

/// PEM certificate chain and private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Database {
    /// `sqlite://PATH`, `sqlite:PATH`, `postgres://...` or `postgresql://...`.
    pub url: String,
    /// Connection pool size (PostgreSQL).
    pub max_connections: u32,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    /// Sender mailbox: `Name <addr@example.com>` or `addr@example.com`.
    pub from: String,
    /// `smtp://` (plain) or `smtps://` (TLS); `None` sends email to the
    /// outbox.
    pub smtp_url: Option<Url>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Sms {
    /// Receives `POST {"to", "body"}`; `None` sends SMS to the outbox.
    pub webhook_url: Option<Url>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive such as `info` or
    /// `info,signet=debug`.
    pub level: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Config {
    /// Reads `file` (if any), applies the `SIGNET_*` entries of `env` on top,
    /// and validates the result.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let env = collect_env(env)?;
        let (raw, text) = match file {
            Some(path) => read_file(path)?,
            None => (RawFile::default(), String::new()),
        };
        let sources = Sources {
            file: file.map(Path::to_path_buf),
            text,
            env,
        };
        build(raw, &sources)
    }

    /// [`Config::load`] with the process environment.
    pub fn from_env_and_file(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut env = Vec::new();
        for (name, value) in std::env::vars_os() {
            let lossy = name.to_string_lossy().into_owned();
            if !lossy.starts_with(ENV_PREFIX) || is_exempt(&lossy) {
                continue;
            }
            match (name.into_string(), value.into_string()) {
                (Ok(name), Ok(value)) => env.push((name, value)),
                _ => return Err(ConfigError::EnvNotUnicode { var: lossy }),
            }
        }
        Config::load(file, env)
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("url", &redact_str(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("from", &self.from)
            .field("smtp_url", &self.smtp_url.as_ref().map(redact))
            .finish()
    }
}

impl fmt::Debug for Sms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sms")
            .field("webhook_url", &self.webhook_url.as_ref().map(redact))
            .finish()
    }
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
             {CONFIG_PATH_ENV} and {TEST_ENV_PREFIX}*)"
        ),
    }
}

// ---------------------------------------------------------------------------
// Loading

/// The file as written. Every field is optional; unknown keys are refused.
/// Strings are checked after merging so errors can name the key and line.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    listen: Option<Spanned<String>>,
    public_url: Option<Spanned<String>>,
    policy: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    invitation_ttl: Option<Spanned<String>>,
    trust_forwarded_for: Option<Spanned<bool>>,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    email: RawEmail,
    #[serde(default)]
    sms: RawSms,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    login: RawLogin,
    #[serde(default)]
    webauthn: RawWebAuthn,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    sealing: RawSealing,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<Spanned<i64>>,
    max_in_flight: Option<Spanned<i64>>,
    anonymous_in_flight: Option<Spanned<i64>>,
    ops_in_flight: Option<Spanned<i64>>,
    request_timeout: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSealing {
    key: Option<Spanned<String>>,
    previous_keys: Option<Spanned<Vec<String>>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    token: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebAuthn {
    rp_id: Option<Spanned<String>>,
    extra_origins: Option<Spanned<Vec<String>>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    code_length: Option<Spanned<i64>>,
    code_ttl: Option<Spanned<String>>,
    send_window: Option<Spanned<String>>,
    sends_per_address: Option<Spanned<i64>>,
    sends_per_ip: Option<Spanned<i64>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    from: Option<Spanned<String>>,
    smtp_url: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSms {
    webhook_url: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<Spanned<String>>,
    level: Option<Spanned<String>>,
}

fn is_exempt(var: &str) -> bool {
    var == CONFIG_PATH_ENV || var.starts_with(TEST_ENV_PREFIX)
}

/// Keeps the `SIGNET_*` entries, keyed by dotted key. Sorted so that the
/// first unknown variable reported is always the same one.
fn collect_env(
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
fn suggest(var: &str) -> Option<String> {
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

fn read_file(path: &Path) -> Result<(RawFile, String), ConfigError> {
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

struct Sources {
    file: Option<PathBuf>,
    text: String,
    env: BTreeMap<&'static str, (String, String)>,
}

/// A value and where it came from.
struct Sourced<T> {
    key: &'static str,
    value: T,
    origin: Origin,
}

impl<T> Sourced<T> {
    fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: self.key,
            origin: self.origin.clone(),
            message: message.into(),
        }
    }
}

impl Sources {
    /// The environment's value for `key` if set, else the file's.
    fn pick<T>(
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
    fn pick_or<T>(
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

fn env_string(s: &str) -> Result<String, String> {
    Ok(s.to_owned())
}

fn env_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got {s:?}")),
    }
}

fn env_integer(s: &str) -> Result<i64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a whole number, got {s:?}"))
}

fn build(raw: RawFile, src: &Sources) -> Result<Config, ConfigError> {
    let listen_src = src.pick_or("listen", raw.listen, env_string, DEFAULT_LISTEN.into())?;
    let listen = parse_listen(&listen_src.value).map_err(|m| listen_src.error(m))?;

    let public_url_src = src.pick_or("public_url", raw.public_url, env_string, DEFAULT_PUBLIC_URL.into())?;
    let public_url = parse_public_url(&public_url_src.value).map_err(|m| public_url_src.error(m))?;

    let policy = match src.pick("policy", raw.policy, env_string)? {
        Some(p) => Some(check_readable(&p.value).map_err(|m| p.error(m))?),
        None => None,
    };

    let tls_cert = src.pick("tls_cert", raw.tls_cert, env_string)?;
    let tls_key = src.pick("tls_key", raw.tls_key, env_string)?;
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: check_readable(&cert.value).map_err(|m| cert.error(m))?,
            key: check_readable(&key.value).map_err(|m| key.error(m))?,
        }),
        (Some(cert), None) => return Err(cert.error("tls_cert is set but tls_key is not; set both or neither")),
        (None, Some(key)) => return Err(key.error("tls_key is set but tls_cert is not; set both or neither")),
        (None, None) => None,
    };

    let ttl = src.pick("invitation_ttl", raw.invitation_ttl, env_string)?;
    let invitation_ttl = match ttl {
        Some(ttl) => parse_invitation_ttl(&ttl.value).map_err(|m| ttl.error(m))?,
        None => DEFAULT_INVITATION_TTL,
    };

    let trust_forwarded_for = src
        .pick_or("trust_forwarded_for", raw.trust_forwarded_for, env_bool, false)?
        .value;

    let db_url = src.pick_or(
        "database.url",
        raw.database.url,
        env_string,
        DEFAULT_DATABASE_URL.into(),
    )?;
    check_database_url(&db_url.value).map_err(|m| db_url.error(m))?;
    let max = src.pick_or(
        "database.max_connections",
        raw.database.max_connections,
        env_integer,
        i64::from(DEFAULT_MAX_CONNECTIONS),
    )?;
    let max_connections = u32::try_from(max.value)
        .ok()
        .filter(|n| MAX_CONNECTIONS_RANGE.contains(n))
        .ok_or_else(|| {
            max.error(format!(
                "must be between {} and {}, got {}",
                MAX_CONNECTIONS_RANGE.start(),
                MAX_CONNECTIONS_RANGE.end(),
                max.value
            ))
        })?;

    let from = src.pick_or("email.from", raw.email.from, env_string, DEFAULT_EMAIL_FROM.into())?;
    check_mailbox(&from.value).map_err(|m| from.error(m))?;
    let smtp_url = match src.pick("email.smtp_url", raw.email.smtp_url, env_string)? {
        Some(u) => Some(parse_smtp_url(&u.value).map_err(|m| u.error(m))?),
        None => None,
    };

    let webhook_url = match src.pick("sms.webhook_url", raw.sms.webhook_url, env_string)? {
        Some(u) => Some(parse_webhook_url(&u.value).map_err(|m| u.error(m))?),
        None => None,
    };

    let format = src.pick_or("log.format", raw.log.format, env_string, "text".into())?;
    let format = match format.value.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => return Err(format.error(format!("expected \"text\" or \"json\", got {other:?}"))),
    };
    let level = src.pick_or("log.level", raw.log.level, env_string, DEFAULT_LOG_LEVEL.into())?;
    check_log_level(&level.value).map_err(|m| level.error(m))?;

    let login = build_login(raw.login, src)?;
    let webauthn = build_webauthn(raw.webauthn, src, &public_url, &public_url_src)?;

    let metrics_token = match src.pick("metrics.token", raw.metrics.token, env_string)? {
        Some(t) => Some(check_metrics_token(&t.value).map_err(|m| t.error(m))?),
        None => None,
    };

    let sealing = build_sealing(raw.sealing, src)?;
    let limits = build_limits(raw.limits, src)?;

    let dev_outbox = smtp_url.is_none() && webhook_url.is_none();
    if dev_outbox && !listen.ip().is_loopback() {
        return Err(listen_src.error(
            "is not a loopback address, and no email.smtp_url or sms.webhook_url is set: the development outbox \
             (/dev/outbox) would show every sign-in code and link to anyone who can reach this address; \
             configure real delivery, or listen on 127.0.0.1 or [::1]",
        ));
    }
    Ok(Config {
        listen,
        public_url,
        policy,
        tls,
        database: Database {
            url: db_url.value,
            max_connections,
        },
        email: Email {
            from: from.value,
            smtp_url,
        },
        sms: Sms { webhook_url },
        log: Log {
            format,
            level: level.value,
        },
        invitation_ttl,
        trust_forwarded_for,
        dev_outbox,
        login,
        webauthn,
        metrics_token,
        sealing,
        limits,
    })
}

/// `[limits]`: every budget at least 1; the anonymous budget is a share of
/// `max_in_flight`, so it cannot be larger.
fn build_limits(raw: RawLimits, src: &Sources) -> Result<Limits, ConfigError> {
    let d = DEFAULT_LIMITS;
    let count = |key: &'static str,
                 raw: Option<Spanned<i64>>,
                 default: u32,
                 range: &std::ops::RangeInclusive<i64>|
     -> Result<Sourced<u32>, ConfigError> {
        let v = src.pick_or(key, raw, env_integer, i64::from(default))?;
        let n = u32::try_from(v.value)
            .ok()
            .filter(|n| range.contains(&i64::from(*n)))
            .ok_or_else(|| {
                v.error(format!(
                    "must be between {} and {}, got {}",
                    range.start(),
                    range.end(),
                    v.value
                ))
            })?;
        Ok(Sourced {
            key,
            value: n,
            origin: v.origin,
        })
    };
    let max_connections = count(
        "limits.max_connections",
        raw.max_connections,
        d.max_connections,
        &LIMITS_MAX_CONNECTIONS_RANGE,
    )?;
    let max_in_flight = count(
        "limits.max_in_flight",
        raw.max_in_flight,
        d.max_in_flight,
        &LIMITS_IN_FLIGHT_RANGE,
    )?;
    let anonymous = count(
        "limits.anonymous_in_flight",
        raw.anonymous_in_flight,
        d.anonymous_in_flight.min(max_in_flight.value),
        &LIMITS_IN_FLIGHT_RANGE,
    )?;
    if anonymous.value > max_in_flight.value {
        return Err(anonymous.error(format!(
            "is a share of limits.max_in_flight ({}), so it cannot be larger; got {}",
            max_in_flight.value, anonymous.value
        )));
    }
    let ops = count(
        "limits.ops_in_flight",
        raw.ops_in_flight,
        d.ops_in_flight,
        &LIMITS_IN_FLIGHT_RANGE,
    )?;
    let request_timeout = match src.pick("limits.request_timeout", raw.request_timeout, env_string)? {
        Some(v) => parse_bounded_duration(&v.value, REQUEST_TIMEOUT_RANGE.0, REQUEST_TIMEOUT_RANGE.1)
            .map_err(|m| v.error(m))?,
        None => d.request_timeout,
    };
    Ok(Limits {
        max_connections: max_connections.value,
        max_in_flight: max_in_flight.value,
        anonymous_in_flight: anonymous.value,
        ops_in_flight: ops.value,
        request_timeout,
    })
}

/// `[sealing]`: base64 keys, checked here so a typo stops the start with
/// the key's name and line, never with a decryption error later. No message
/// repeats a key.
fn build_sealing(raw: RawSealing, src: &Sources) -> Result<Sealing, ConfigError> {
    let key = src.pick("sealing.key", raw.key, env_string)?;
    let previous = src.pick("sealing.previous_keys", raw.previous_keys, env_list)?;
    let current = match &key {
        Some(k) => Some(SealingKey::from_base64(&k.value).map_err(|e| k.error(e.to_string()))?),
        None => None,
    };
    let mut previous_keys = Vec::new();
    if let Some(p) = &previous {
        if current.is_none() {
            return Err(
                p.error("is set but sealing.key is not; set the new key as sealing.key and list only older keys here")
            );
        }
        for (i, text) in p.value.iter().enumerate() {
            let k = SealingKey::from_base64(text).map_err(|e| p.error(format!("entry {}: {e}", i + 1)))?;
            previous_keys.push(k);
        }
    }
    Ok(Sealing {
        key: current,
        previous_keys,
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

/// `[webauthn]`, checked by building the relying party the server will use:
/// a configuration WebAuthn cannot work with is refused at start-up.
fn build_webauthn(
    raw: RawWebAuthn,
    src: &Sources,
    public_url: &Url,
    public_url_src: &Sourced<String>,
) -> Result<WebAuthn, ConfigError> {
    let rp_id = src.pick("webauthn.rp_id", raw.rp_id, env_string)?;
    let origins = src.pick("webauthn.extra_origins", raw.extra_origins, env_list)?;
    let mut extra_origins = Vec::new();
    if let Some(o) = &origins {
        for s in &o.value {
            let url = Url::parse(s.trim()).map_err(|e| o.error(format!("{s:?} is not a URL: {e}")))?;
            extra_origins.push(url);
        }
    }
    let webauthn = WebAuthn {
        rp_id: rp_id.as_ref().map(|r| r.value.trim().to_owned()),
        extra_origins,
    };
    if let Err(e) = signet_passkey::RelyingParty::new(&webauthn.relying_party(public_url)) {
        let message = format!("{e} (passkeys need a host name in public_url, or see webauthn.rp_id)");
        return Err(match (&rp_id, &origins) {
            (Some(r), _) => r.error(message),
            (None, Some(o)) => o.error(message),
            (None, None) => public_url_src.error(message),
        });
    }
    Ok(webauthn)
}

/// A comma-separated list from the environment.
fn env_list(s: &str) -> Result<Vec<String>, String> {
    Ok(s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect())
}

fn build_login(raw: RawLogin, src: &Sources) -> Result<signet_app::EmailLogin, ConfigError> {
    let defaults = signet_app::EmailLogin::default();
    let digits = signet_core::secret::CODE_DIGITS;
    let length = src.pick_or(
        "login.code_length",
        raw.code_length,
        env_integer,
        i64::from(defaults.code_digits),
    )?;
    let code_digits = u8::try_from(length.value)
        .ok()
        .filter(|n| digits.contains(n))
        .ok_or_else(|| {
            length.error(format!(
                "must be between {} and {} digits, got {}",
                digits.start(),
                digits.end(),
                length.value
            ))
        })?;
    let duration = |key: &'static str,
                    raw: Option<Spanned<String>>,
                    default: Duration,
                    (lo, hi): (Duration, Duration)| match src.pick(key, raw, env_string)? {
        Some(v) => parse_bounded_duration(&v.value, lo, hi).map_err(|m| v.error(m)),
        None => Ok(default),
    };
    let ttl = duration("login.code_ttl", raw.code_ttl, defaults.ttl, CODE_TTL_RANGE)?;
    let send_window = duration(
        "login.send_window",
        raw.send_window,
        defaults.send_window,
        SEND_WINDOW_RANGE,
    )?;
    let count = |key: &'static str, raw: Option<Spanned<i64>>, default: u32| -> Result<u32, ConfigError> {
        let v = src.pick_or(key, raw, env_integer, i64::from(default))?;
        u32::try_from(v.value)
            .ok()
            .filter(|n| SENDS_RANGE.contains(&i64::from(*n)))
            .ok_or_else(|| {
                v.error(format!(
                    "must be between {} and {}, got {}",
                    SENDS_RANGE.start(),
                    SENDS_RANGE.end(),
                    v.value
                ))
            })
    };
    Ok(signet_app::EmailLogin {
        code_digits,
        ttl,
        send_window,
        sends_per_address: count(
            "login.sends_per_address",
            raw.sends_per_address,
            defaults.sends_per_address,
        )?,
        sends_per_ip: count("login.sends_per_ip", raw.sends_per_ip, defaults.sends_per_ip)?,
    })
}

fn parse_bounded_duration(s: &str, lo: Duration, hi: Duration) -> Result<Duration, String> {
    let d = signet_core::duration::parse(s)?;
    if d < lo || d > hi {
        return Err(format!(
            "must be between {} and {}, got {}",
            signet_core::duration::format(lo),
            signet_core::duration::format(hi),
            signet_core::duration::format(d)
        ));
    }
    Ok(d)
}

// ---------------------------------------------------------------------------
// Checks. Each returns a message for a person; the caller adds key and origin.
// None repeats a URL, which may carry a password.

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("{s:?} is not a socket address; use IP:PORT such as 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080")
    })
}

fn parse_public_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must start with http:// or https://, not {}://", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    if url.query().is_some() {
        return Err("must not have a query string".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    if !(url.path().is_empty() || url.path() == "/") {
        return Err(format!(
            "must be an origin such as https://id.example.com, without a path (got path {:?}); \
             Signet is served from the root of its host",
            url.path()
        ));
    }
    Ok(url)
}

fn parse_invitation_ttl(s: &str) -> Result<Duration, String> {
    parse_bounded_duration(s, MIN_INVITATION_TTL, MAX_INVITATION_TTL)
}

/// The path, if it names a regular file this process can open.
fn check_readable(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("empty path".into());
    }
    let path = PathBuf::from(s);
    let meta = std::fs::metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    std::fs::File::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(path)
}

fn check_database_url(s: &str) -> Result<(), String> {
    if let Some(rest) = s.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split_once('?').map_or(rest, |(path, _)| path);
        if path.is_empty() {
            return Err("the sqlite URL has no database path; e.g. sqlite://./signet-data/signet.db".into());
        }
        Ok(())
    } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Url::parse(s)
            .map(drop)
            .map_err(|e| format!("not a valid PostgreSQL URL: {e}"))
    } else {
        Err("unsupported database; use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE".into())
    }
}

fn parse_smtp_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "smtp" | "smtps") {
        return Err(format!(
            "must start with smtp:// (plain) or smtps:// (TLS), not {}://",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !(url.path().is_empty() || url.path() == "/") {
        return Err("must be only scheme, credentials, host and port, but it has a path".into());
    }
    if url.query().is_some() {
        return Err("must be only scheme, credentials, host and port, but it has a query".into());
    }
    if url.fragment().is_some() {
        return Err("must be only scheme, credentials, host and port, but it has a fragment".into());
    }
    match (url.username().is_empty(), url.password().is_some()) {
        (false, false) => Err("has a user name but no password".into()),
        (true, true) => Err("has a password but no user name".into()),
        _ => Ok(url),
    }
}

fn parse_webhook_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must start with http:// or https://, not {}://", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    Ok(url)
}

fn check_log_level(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("empty; use a filter such as info or info,signet=debug".into());
    }
    tracing_subscriber::EnvFilter::try_new(s)
        .map(drop)
        .map_err(|e| format!("{s:?} is not a log filter ({e}); use e.g. info or warn,signet=debug"))
}

/// `[email] from` must be a mailbox under the one email grammar in
/// `signet_core::user` (a sender may use a dotless domain such as the default
/// `signet@localhost`; see `Domains`).
fn check_mailbox(s: &str) -> Result<(), String> {
    const EXAMPLE: &str = "e.g. \"Signet <signet@example.com>\" or signet@example.com";
    signet_core::user::Mailbox::parse(s)
        .map(drop)
        .map_err(|e| format!("{s:?} is not a mailbox: {e}; {EXAMPLE}"))
}

/// A URL for `Debug`: the password and query string replaced.
fn redact(url: &Url) -> String {
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

fn redact_str(s: &str) -> String {
    match Url::parse(s) {
        Ok(url) => redact(&url),
        Err(_) => "<unparseable URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.flush().unwrap();
        f
    }

    fn load_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(None, env(pairs))
    }

    fn load_file(text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let f = file(text);
        Config::load(Some(f.path()), env(pairs))
    }

    fn err_env(pairs: &[(&str, &str)]) -> String {
        load_env(pairs).unwrap_err().to_string()
    }

    fn err_file(text: &str) -> String {
        load_file(text, &[]).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let c = load_env(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(c.public_url.origin().ascii_serialization(), "http://localhost:8080");
        assert_eq!(c.public_url.as_str(), "http://localhost:8080/");
        assert_eq!(c.public_url.scheme(), "http");
        assert_eq!(c.policy, None);
        assert_eq!(c.tls, None);
        assert_eq!(c.database.url, "sqlite://./signet-data/signet.db");
        assert_eq!(c.database.max_connections, 16);
        assert_eq!(c.email.from, "Signet <signet@localhost>");
        assert_eq!(c.email.smtp_url, None);
        assert_eq!(c.sms.webhook_url, None);
        assert!(c.dev_outbox, "no real delivery: the outbox page");
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.log.level, "info");
        assert_eq!(c.invitation_ttl, Duration::from_secs(72 * 3600));
        assert!(!c.trust_forwarded_for);
        assert_eq!(c.login, signet_app::EmailLogin::default());
        assert_eq!(c.login.code_digits, 6);
        assert_eq!(c.login.ttl, Duration::from_secs(600));
        assert_eq!((c.login.sends_per_address, c.login.sends_per_ip), (3, 30));
    }

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

    #[test]
    fn the_development_outbox_is_never_served_beyond_loopback() {
        for listen in ["0.0.0.0:8080", "[::]:8080", "192.0.2.10:8080"] {
            let err = load_env(&[("SIGNET_LISTEN", listen)]).unwrap_err().to_string();
            assert!(
                err.contains("SIGNET_LISTEN") && err.contains("/dev/outbox"),
                "{listen}: {err}"
            );
        }
        for listen in ["127.0.0.1:8080", "[::1]:8080"] {
            assert!(load_env(&[("SIGNET_LISTEN", listen)]).unwrap().dev_outbox, "{listen}");
        }
        let c = load_env(&[
            ("SIGNET_LISTEN", "0.0.0.0:8080"),
            ("SIGNET_EMAIL__SMTP_URL", "smtp://mail.example.com"),
        ])
        .unwrap();
        assert!(!c.dev_outbox, "real delivery: no outbox page, any address");
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(load_file("", &[]).unwrap(), load_env(&[]).unwrap());
    }

    #[test]
    fn file_values_and_env_precedence() {
        let text = r#"
listen = "0.0.0.0:9000"
public_url = "https://id.example.com"
invitation_ttl = "24h"
trust_forwarded_for = true

[database]
url = "postgres://signet:pw@db/signet"
max_connections = 40

[email]
from = "Example ID <id@example.com>"
smtp_url = "smtps://mailer:secret@smtp.example.com"

[log]
format = "json"
level = "info,signet=debug"
"#;
        let c = load_file(text, &[]).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.public_url.as_str(), "https://id.example.com/");
        assert_eq!(c.invitation_ttl, Duration::from_secs(24 * 3600));
        assert!(c.trust_forwarded_for);
        assert_eq!(c.database.url, "postgres://signet:pw@db/signet");
        assert_eq!(c.database.max_connections, 40);
        assert_eq!(
            c.email.smtp_url.as_ref().map(Url::as_str),
            Some("smtps://mailer:secret@smtp.example.com")
        );
        assert_eq!(c.sms.webhook_url, None);
        assert!(!c.dev_outbox, "outbox page only when no real delivery at all");
        assert_eq!(c.log.format, LogFormat::Json);

        let c = load_file(
            text,
            &[
                ("SIGNET_LISTEN", "127.0.0.1:7000"),
                ("SIGNET_PUBLIC_URL", "http://localhost:7000"),
                ("SIGNET_INVITATION_TTL", "1h"),
                ("SIGNET_TRUST_FORWARDED_FOR", "false"),
                ("SIGNET_DATABASE__MAX_CONNECTIONS", "5"),
                ("SIGNET_LOG__FORMAT", "text"),
                ("SIGNET_EMAIL__FROM", "ops@example.com"),
            ],
        )
        .unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.public_url.origin().ascii_serialization(), "http://localhost:7000");
        assert_eq!(c.invitation_ttl, Duration::from_secs(3600));
        assert!(!c.trust_forwarded_for);
        assert_eq!(c.database.max_connections, 5);
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.email.from, "ops@example.com");
        // Untouched keys still come from the file.
        assert_eq!(c.database.url, "postgres://signet:pw@db/signet");
        assert_eq!(c.log.level, "info,signet=debug");
    }

    #[test]
    fn nested_env_override() {
        let c = load_file(
            "[database]\nurl = \"sqlite://file.db\"\n",
            &[("SIGNET_DATABASE__URL", "postgresql://u:p@h:5432/d")],
        )
        .unwrap();
        assert_eq!(c.database.url, "postgresql://u:p@h:5432/d");

        let c = load_env(&[
            ("SIGNET_EMAIL__SMTP_URL", "smtp://localhost:2525"),
            ("SIGNET_SMS__WEBHOOK_URL", "https://sms.example.com/send?key=k"),
        ])
        .unwrap();
        assert_eq!(c.email.smtp_url.as_ref().and_then(Url::port), Some(2525));
        assert!(!c.dev_outbox);
    }

    #[test]
    fn overridden_file_value_is_type_checked_but_not_validated() {
        let text = "[email]\nsmtp_url = \"smtps://signet@smtp.example.com\"\n";
        let msg = load_file(text, &[]).unwrap_err().to_string();
        assert!(msg.contains("email.smtp_url") && msg.contains("line 2"), "{msg}");
        let c = load_file(
            text,
            &[("SIGNET_EMAIL__SMTP_URL", "smtps://signet:pw@smtp.example.com")],
        )
        .unwrap();
        assert_eq!(c.email.smtp_url.unwrap().password(), Some("pw"));

        let msg = load_file("listen = 8080\n", &[("SIGNET_LISTEN", "127.0.0.1:1")])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("line 1"), "{msg}");
    }

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
    fn bad_values_name_key_and_source() {
        let msg = err_env(&[("SIGNET_PUBLIC_URL", "id.example.com")]);
        assert_eq!(
            msg,
            "config error: public_url (from SIGNET_PUBLIC_URL): relative URL without a base"
        );

        let msg = err_env(&[("SIGNET_INVITATION_TTL", "3 days")]);
        assert!(msg.contains("invitation_ttl (from SIGNET_INVITATION_TTL)"), "{msg}");
        let msg = err_env(&[("SIGNET_INVITATION_TTL", "1m")]);
        assert!(
            msg.contains("invitation_ttl") && msg.contains("between 5m and 30d"),
            "{msg}"
        );
        let msg = err_env(&[("SIGNET_INVITATION_TTL", "31d")]);
        assert!(msg.contains("invitation_ttl"), "{msg}");

        let msg = err_env(&[("SIGNET_LISTEN", "localhost:8080")]);
        assert!(msg.contains("listen (from SIGNET_LISTEN)"), "{msg}");

        let msg = err_env(&[("SIGNET_TRUST_FORWARDED_FOR", "yes")]);
        assert!(
            msg.contains("trust_forwarded_for (from SIGNET_TRUST_FORWARDED_FOR)"),
            "{msg}"
        );

        let msg = err_env(&[("SIGNET_DATABASE__MAX_CONNECTIONS", "lots")]);
        assert!(msg.contains("database.max_connections"), "{msg}");
        let msg = err_env(&[("SIGNET_DATABASE__MAX_CONNECTIONS", "0")]);
        assert!(msg.contains("between 1 and 1000"), "{msg}");

        let msg = err_env(&[("SIGNET_LOG__FORMAT", "xml")]);
        assert!(msg.contains("log.format (from SIGNET_LOG__FORMAT)"), "{msg}");
        let msg = err_env(&[("SIGNET_LOG__LEVEL", "info,signet=loud")]);
        assert!(msg.contains("log.level"), "{msg}");

        let msg = err_env(&[("SIGNET_DATABASE__URL", "mysql://u:hunter2@h/d")]);
        assert!(msg.contains("database.url (from SIGNET_DATABASE__URL)"), "{msg}");
        assert!(!msg.contains("hunter2"), "errors must not repeat credentials: {msg}");
        let msg = err_env(&[("SIGNET_DATABASE__URL", "sqlite://")]);
        assert!(msg.contains("database.url"), "{msg}");

        let msg = err_env(&[("SIGNET_SMS__WEBHOOK_URL", "ftp://sms.example.com")]);
        assert!(msg.contains("sms.webhook_url"), "{msg}");
    }

    #[test]
    fn bad_file_values_name_key_file_and_line() {
        let f = file("\n\npublic_url = \"ftp://id.example.com\"\n");
        let msg = Config::load(Some(f.path()), env(&[])).unwrap_err().to_string();
        let expected = format!("public_url (from {}, line 3)", f.path().display());
        assert!(msg.contains(&expected), "{msg}");

        let msg = err_file("[log]\nformat = \"xml\"\n");
        assert!(msg.contains("log.format") && msg.contains("line 2"), "{msg}");

        let msg = err_file("invitation_ttl = \"72\"\n");
        assert!(msg.contains("invitation_ttl") && msg.contains("line 1"), "{msg}");

        let msg = err_file("[database]\nmax_connections = -3\n");
        assert!(
            msg.contains("database.max_connections") && msg.contains("line 2"),
            "{msg}"
        );
    }

    #[test]
    fn tls_needs_both_files() {
        let cert = file("cert");
        let key = file("key");
        let cert_path = cert.path().to_str().unwrap();
        let key_path = key.path().to_str().unwrap();

        let msg = err_env(&[("SIGNET_TLS_CERT", cert_path)]);
        assert!(msg.contains("tls_cert") && msg.contains("tls_key"), "{msg}");
        let msg = err_env(&[("SIGNET_TLS_KEY", key_path)]);
        assert!(msg.contains("tls_key") && msg.contains("tls_cert"), "{msg}");

        let c = load_env(&[("SIGNET_TLS_CERT", cert_path), ("SIGNET_TLS_KEY", key_path)]).unwrap();
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: cert.path().to_path_buf(),
                key: key.path().to_path_buf()
            })
        );

        let msg = err_env(&[
            ("SIGNET_TLS_CERT", cert_path),
            ("SIGNET_TLS_KEY", "/nonexistent/signet/key.pem"),
        ]);
        assert!(
            msg.contains("tls_key") && msg.contains("/nonexistent/signet/key.pem"),
            "{msg}"
        );
    }

    #[test]
    fn policy_file_must_exist() {
        let msg = err_env(&[("SIGNET_POLICY", "/nonexistent/policy.toml")]);
        assert!(msg.contains("policy (from SIGNET_POLICY)"), "{msg}");

        let policy = file("[assignment]\ndefault = \"standard\"\n");
        let c = load_env(&[("SIGNET_POLICY", policy.path().to_str().unwrap())]).unwrap();
        assert_eq!(c.policy.as_deref(), Some(policy.path()));
    }

    #[test]
    fn https_public_url_without_tls_is_fine() {
        let c = load_env(&[("SIGNET_PUBLIC_URL", "https://id.example.com")]).unwrap();
        assert_eq!(c.public_url.scheme(), "https");
        assert_eq!(c.tls, None);
    }

    #[test]
    fn smtp_url_rules() {
        let msg = err_env(&[("SIGNET_EMAIL__SMTP_URL", "http://mail.example.com")]);
        assert!(msg.contains("email.smtp_url (from SIGNET_EMAIL__SMTP_URL)"), "{msg}");
        assert!(msg.contains("smtp://") && msg.contains("smtps://"), "{msg}");

        for bad in [
            "smtp://mail.example.com/path",
            "smtp://mail.example.com?tls=required",
            "smtp://user@mail.example.com",
            "smtp://:pw@mail.example.com",
            "smtp://",
        ] {
            let msg = err_env(&[("SIGNET_EMAIL__SMTP_URL", bad)]);
            assert!(msg.contains("email.smtp_url"), "{bad}: {msg}");
            assert!(!msg.contains("pw@"), "{msg}");
        }

        let c = load_env(&[("SIGNET_EMAIL__SMTP_URL", "smtp://mail.example.com")]).unwrap();
        assert_eq!(c.email.smtp_url.as_ref().map(Url::port), Some(None));
    }

    #[test]
    fn public_url_shape() {
        for bad in [
            "https://id.example.com/auth",
            "https://id.example.com/?x=1",
            "https://id.example.com/#top",
            "https://user:pw@id.example.com",
            "mailto:id@example.com",
        ] {
            let msg = err_env(&[("SIGNET_PUBLIC_URL", bad)]);
            assert!(msg.contains("public_url (from SIGNET_PUBLIC_URL)"), "{bad}: {msg}");
        }
    }

    #[test]
    fn public_url_trailing_slash_is_canonicalized() {
        let a = load_env(&[("SIGNET_PUBLIC_URL", "https://ID.Example.com:443/")]).unwrap();
        let b = load_env(&[("SIGNET_PUBLIC_URL", "https://id.example.com")]).unwrap();
        assert_eq!(a.public_url, b.public_url);
        assert_eq!(a.public_url.as_str(), "https://id.example.com/");

        // An IP address cannot be a WebAuthn RP ID: passkeys need a host name.
        let err = load_env(&[("SIGNET_PUBLIC_URL", "http://[::1]:8443/")]).unwrap_err();
        assert!(err.to_string().contains("RP ID"), "{err}");
    }

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

    #[test]
    fn webauthn_rp_id_and_extra_origins() {
        let c = load_env(&[("SIGNET_PUBLIC_URL", "https://id.example.com")]).unwrap();
        assert_eq!(c.webauthn, WebAuthn::default());
        let c = load_env(&[
            ("SIGNET_PUBLIC_URL", "https://id.example.com"),
            ("SIGNET_WEBAUTHN__RP_ID", "example.com"),
            (
                "SIGNET_WEBAUTHN__EXTRA_ORIGINS",
                "https://app.example.com, https://example.com:8443",
            ),
        ])
        .unwrap();
        assert_eq!(c.webauthn.rp_id.as_deref(), Some("example.com"));
        assert_eq!(c.webauthn.extra_origins.len(), 2);
        for (rp_id, origins) in [
            ("other.org", ""),
            ("example.com", "http://app.example.com"),
            ("example.com", "not a url"),
        ] {
            let mut env = vec![
                ("SIGNET_PUBLIC_URL", "https://id.example.com"),
                ("SIGNET_WEBAUTHN__RP_ID", rp_id),
            ];
            if !origins.is_empty() {
                env.push(("SIGNET_WEBAUTHN__EXTRA_ORIGINS", origins));
            }
            let err = load_env(&env).unwrap_err();
            assert!(err.to_string().contains("webauthn."), "{rp_id} {origins}: {err}");
        }
    }

    #[test]
    fn the_default_sender_passes_the_core_email_grammar() {
        assert!(signet_core::user::Mailbox::parse(DEFAULT_EMAIL_FROM).is_ok());
        assert!(load_env(&[]).is_ok());
    }

    #[test]
    fn mailbox_validation() {
        for good in [
            "Signet <signet@localhost>",
            "signet@example.com",
            "<signet@example.com>",
            "\"Example, Inc.\" <id@example.com>",
            "O'Brien Identity <id@mail.example.co.uk>",
            "Zoë <zoe@example.com>",
        ] {
            let c = load_env(&[("SIGNET_EMAIL__FROM", good)]);
            assert!(c.is_ok(), "{good}: {:?}", c.err());
        }
        // The grammar itself is tested in signet-core (`Mailbox::parse`);
        // here, that a refusal names the key and where it came from.
        for bad in ["Signet <signet@localhost", "Signet <signet@localhost>\r\nBcc: x@y"] {
            let msg = err_env(&[("SIGNET_EMAIL__FROM", bad)]);
            assert!(msg.contains("email.from (from SIGNET_EMAIL__FROM)"), "{bad}: {msg}");
        }
    }

    #[test]
    fn debug_hides_credentials() {
        let c = load_env(&[
            ("SIGNET_DATABASE__URL", "postgres://signet:hunter2@db/signet"),
            ("SIGNET_EMAIL__SMTP_URL", "smtps://mailer:hunter3@smtp.example.com"),
            ("SIGNET_SMS__WEBHOOK_URL", "https://sms.example.com/send?token=hunter4"),
        ])
        .unwrap();
        let debug = format!("{c:?}");
        for secret in ["hunter2", "hunter3", "hunter4"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("db/signet"), "{debug}");
    }

    #[test]
    fn sealing_keys_are_base64_of_32_bytes_and_never_repeated() {
        assert_eq!(load_env(&[]).unwrap().sealing, Sealing::default());
        let new = SealingKey::generate();
        let old = SealingKey::generate();
        let c = load_env(&[
            ("SIGNET_SEALING__KEY", new.expose_base64().as_str()),
            ("SIGNET_SEALING__PREVIOUS_KEYS", old.expose_base64().as_str()),
        ])
        .unwrap();
        assert_eq!(c.sealing.key.as_ref(), Some(&new));
        assert_eq!(c.sealing.previous_keys, vec![old.clone()]);
        assert!(
            !format!("{c:?}").contains(new.expose_base64().as_str()),
            "never in debug output"
        );

        let text = format!(
            "[sealing]\nkey = \"{}\"\nprevious_keys = [\"{}\"]\n",
            new.expose_base64().as_str(),
            old.expose_base64().as_str()
        );
        assert_eq!(load_file(&text, &[]).unwrap().sealing, c.sealing);

        let short = "c2hvcnQ=";
        let msg = err_env(&[("SIGNET_SEALING__KEY", short)]);
        assert!(
            msg.contains("sealing.key (from SIGNET_SEALING__KEY)") && msg.contains("32 bytes"),
            "{msg}"
        );
        assert!(!msg.contains(short), "{msg}");
        let msg = err_file("\n[sealing]\nkey = \"not base64!\"\n");
        assert!(msg.contains("sealing.key") && msg.contains("line 3"), "{msg}");
        let msg = err_env(&[
            ("SIGNET_SEALING__KEY", new.expose_base64().as_str()),
            (
                "SIGNET_SEALING__PREVIOUS_KEYS",
                &format!("{}, {short}", old.expose_base64().as_str()),
            ),
        ]);
        assert!(
            msg.contains("sealing.previous_keys") && msg.contains("entry 2"),
            "{msg}"
        );
        let msg = err_env(&[("SIGNET_SEALING__PREVIOUS_KEYS", old.expose_base64().as_str())]);
        assert!(
            msg.contains("sealing.previous_keys") && msg.contains("sealing.key is not"),
            "{msg}"
        );
    }

    #[test]
    fn limits_defaults_bounds_and_the_anonymous_share() {
        assert_eq!(load_env(&[]).unwrap().limits, DEFAULT_LIMITS);
        let c = load_file(
            "[limits]\nmax_connections = 50\nmax_in_flight = 8\nanonymous_in_flight = 2\nops_in_flight = 1\nrequest_timeout = \"3s\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.limits,
            Limits {
                max_connections: 50,
                max_in_flight: 8,
                anonymous_in_flight: 2,
                ops_in_flight: 1,
                request_timeout: Duration::from_secs(3),
            }
        );
        // A small max_in_flight alone lowers the anonymous default with it.
        let c = load_env(&[("SIGNET_LIMITS__MAX_IN_FLIGHT", "4")]).unwrap();
        assert_eq!(c.limits.anonymous_in_flight, 4);
        let msg = err_env(&[
            ("SIGNET_LIMITS__MAX_IN_FLIGHT", "4"),
            ("SIGNET_LIMITS__ANONYMOUS_IN_FLIGHT", "5"),
        ]);
        assert!(
            msg.contains("limits.anonymous_in_flight") && msg.contains("max_in_flight"),
            "{msg}"
        );
        let msg = err_env(&[("SIGNET_LIMITS__MAX_CONNECTIONS", "0")]);
        assert!(
            msg.contains("limits.max_connections (from SIGNET_LIMITS__MAX_CONNECTIONS)"),
            "{msg}"
        );
        let msg = err_file("[limits]\nrequest_timeout = \"1h\"\n");
        assert!(
            msg.contains("limits.request_timeout") && msg.contains("line 2"),
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
