//! The top-level keys: `listen`, `public_url`, `policy`, `tls_cert` and
//! `tls_key`, `invitation_ttl`, `trust_forwarded_for`.
//!
//! These describe the process itself (what it binds, the origin it is
//! reached at, the files it reads), which the binary owns, so their rules
//! live here. The keys are read by `super::build`, which also applies the
//! one rule that spans sections (no development outbox beyond loopback).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::loader::{ConfigError, Sourced};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_PUBLIC_URL: &str = "http://localhost:8080";
pub const DEFAULT_INVITATION_TTL: Duration = Duration::from_secs(72 * 3600);

/// Bounds for `invitation_ttl`, inclusive.
pub const MIN_INVITATION_TTL: Duration = Duration::from_secs(5 * 60);
pub const MAX_INVITATION_TTL: Duration = Duration::from_secs(30 * 86_400);

/// PEM certificate chain and private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Both TLS files or neither; each must be readable.
pub(super) fn tls(
    cert: Option<Sourced<String>>,
    key: Option<Sourced<String>>,
) -> Result<Option<TlsFiles>, ConfigError> {
    Ok(match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: check_readable(&cert.value).map_err(|m| cert.error(m))?,
            key: check_readable(&key.value).map_err(|m| key.error(m))?,
        }),
        (Some(cert), None) => return Err(cert.error("tls_cert is set but tls_key is not; set both or neither")),
        (None, Some(key)) => return Err(key.error("tls_key is set but tls_cert is not; set both or neither")),
        (None, None) => None,
    })
}

pub(super) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("{s:?} is not a socket address; use IP:PORT such as 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080")
    })
}

pub(super) fn parse_public_url(s: &str) -> Result<Url, String> {
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

pub(super) fn parse_invitation_ttl(s: &str) -> Result<Duration, String> {
    parse_bounded_duration(s, MIN_INVITATION_TTL, MAX_INVITATION_TTL)
}

/// The path, if it names a regular file this process can open.
pub(super) fn check_readable(s: &str) -> Result<PathBuf, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures::*;

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
}
