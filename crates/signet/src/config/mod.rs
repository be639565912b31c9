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
//! - every value is checked when loading, and the error names the key and where the
//!   value came from (`from SIGNET_PUBLIC_URL`, or the file and line).
//!
//! No error or `Debug` output repeats a password or URL query string, because
//! database, SMTP and webhook URLs may carry credentials.
//!
//! # Where the rules live
//!
//! The loader (`loader.rs`) knows where values come from and how an error
//! names them; it knows no section's rules. Each section is a file here
//! with its raw table, its build function and its tests, and a rule lives
//! with the type it builds:
//!
//! | Keys | File (`config/`) | Rules owned by |
//! |------|------|----------------|
//! | `listen`, `public_url`, `policy`, `tls_*`, `invitation_ttl`, `trust_forwarded_for` | `server.rs` | this crate |
//! | `[database]` | `database.rs` | `signet_store::check_url`, `signet_store::ConnectOptions::check_max_connections` |
//! | `[email]` | `email.rs` | `signet_courier::check_smtp_url`; `signet_core::user::Mailbox` for `from` |
//! | `[sms]` | `sms.rs` | `signet_courier::check_webhook_url` |
//! | `[log]` | `log.rs` | this crate |
//! | `[login]` | `login.rs` | `signet_app::EmailLogin` (`signet_app::email_login`) |
//! | `[webauthn]` | `webauthn.rs` | `signet_passkey::RelyingParty::new` |
//! | `[metrics]` | `metrics.rs` | this crate |
//! | `[sealing]` | `sealing.rs` | `signet_core::sealing::SealingKey` for each key; the ring's rule here |
//! | `[limits]` | `limits.rs` | `signet_web::admission::Budgets::new`; `max_connections` here |
//! | `[courier]` | `courier.rs` | `signet_courier::WorkerConfig::check_concurrency` |
//!
//! A crate's validator returns a typed error with the field and the reason,
//! and nothing about TOML or the environment; the section maps the raw
//! value to it and adds the key and "(from SIGNET_...)" or the file line.
//! A new key is added to its section's raw table and to [`KEYS`].

mod courier;
mod database;
mod email;
mod limits;
mod loader;
mod log;
mod login;
mod metrics;
mod oidc;
mod sealing;
mod server;
mod sms;
mod webauthn;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use signet_core::secret::TokenHash;
use url::Url;

pub use courier::{CourierSettings, COURIER_CONCURRENCY_RANGE};
pub use database::{Database, DEFAULT_DATABASE_URL, DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS_RANGE};
pub use email::{Email, DEFAULT_EMAIL_FROM};
pub use limits::{Limits, DEFAULT_LIMITS, LIMITS_IN_FLIGHT_RANGE, LIMITS_MAX_CONNECTIONS_RANGE, REQUEST_TIMEOUT_RANGE};
pub use loader::{
    env_var_name, ConfigError, Origin, ADMIN_TOKEN_ENV, CONFIG_PATH_ENV, ENV_PREFIX, KEYS, TEST_ENV_PREFIX,
};
pub use log::{Log, LogFormat, DEFAULT_LOG_LEVEL};
pub use login::{CODE_TTL_RANGE, SENDS_RANGE, SEND_WINDOW_RANGE};
pub use metrics::MIN_METRICS_TOKEN_LEN;
pub use sealing::Sealing;
pub use server::{
    TlsFiles, DEFAULT_INVITATION_TTL, DEFAULT_LISTEN, DEFAULT_PUBLIC_URL, MAX_INVITATION_TTL, MIN_INVITATION_TTL,
};
pub use sms::Sms;
pub use webauthn::WebAuthn;

use loader::{collect_env, env_bool, env_string, is_exempt, read_file, RawFile, Sources};

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
    /// `[[oidc.clients]]` (extension): OIDC clients declared in the file.
    pub oidc_clients: Vec<signet_app::oidc::clients::ConfiguredClient>,
    /// `[courier]` (extension): the delivery worker's send slots.
    pub courier: CourierSettings,
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

fn build(raw: RawFile, src: &Sources) -> Result<Config, ConfigError> {
    let listen_src = src.pick_or("listen", raw.listen, env_string, DEFAULT_LISTEN.into())?;
    let listen = server::parse_listen(&listen_src.value).map_err(|m| listen_src.error(m))?;

    let public_url_src = src.pick_or("public_url", raw.public_url, env_string, DEFAULT_PUBLIC_URL.into())?;
    let public_url = server::parse_public_url(&public_url_src.value).map_err(|m| public_url_src.error(m))?;

    let policy = match src.pick("policy", raw.policy, env_string)? {
        Some(p) => Some(server::check_readable(&p.value).map_err(|m| p.error(m))?),
        None => None,
    };

    let tls_cert = src.pick("tls_cert", raw.tls_cert, env_string)?;
    let tls_key = src.pick("tls_key", raw.tls_key, env_string)?;
    let tls = server::tls(tls_cert, tls_key)?;

    let invitation_ttl = match src.pick("invitation_ttl", raw.invitation_ttl, env_string)? {
        Some(ttl) => server::parse_invitation_ttl(&ttl.value).map_err(|m| ttl.error(m))?,
        None => DEFAULT_INVITATION_TTL,
    };

    let trust_forwarded_for = src
        .pick_or("trust_forwarded_for", raw.trust_forwarded_for, env_bool, false)?
        .value;

    let database = database::build(raw.database, src)?;
    let email = email::build(raw.email, src)?;
    let sms = sms::build(raw.sms, src)?;
    let log = log::build(raw.log, src)?;
    let login = login::build(raw.login, src)?;
    let webauthn = webauthn::build(raw.webauthn, src, &public_url, &public_url_src)?;
    let metrics_token = metrics::build(raw.metrics, src)?;
    let sealing = sealing::build(raw.sealing, src)?;
    let limits = limits::build(raw.limits, src)?;
    let oidc_clients = oidc::build(raw.oidc, src)?;
    let courier = courier::build(raw.courier, src)?;

    let dev_outbox = email.smtp_url.is_none() && !sms.delivers();
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
        database,
        email,
        sms,
        log,
        invitation_ttl,
        trust_forwarded_for,
        dev_outbox,
        login,
        webauthn,
        metrics_token,
        sealing,
        limits,
        oidc_clients,
        courier,
    })
}

/// What the tests of every section share: loading from pairs and text.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::io::Write;

    use super::{Config, ConfigError};

    pub(crate) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    pub(crate) fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.flush().unwrap();
        f
    }

    pub(crate) fn load_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(None, env(pairs))
    }

    pub(crate) fn load_file(text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let f = file(text);
        Config::load(Some(f.path()), env(pairs))
    }

    pub(crate) fn err_env(pairs: &[(&str, &str)]) -> String {
        load_env(pairs).unwrap_err().to_string()
    }

    pub(crate) fn err_file(text: &str) -> String {
        load_file(text, &[]).unwrap_err().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::*;

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
}
