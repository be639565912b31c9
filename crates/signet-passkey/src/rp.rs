//! The relying party: RP ID and allowed origins, from `public_url`.
//!
//! - The RP ID (WebAuthn L3 §4 "RP ID"; browsers enforce the suffix rule in
//!   §5.1.3 and §5.1.4.1) defaults to the host of `public_url`. It may be
//!   configured to a parent domain (a "registrable domain suffix" of every
//!   origin), so that passkeys keep working if Signet moves between
//!   `login.example.com` and `id.example.com`.
//! - The allowed origins are `public_url`'s origin plus any extra origins the
//!   operator lists; each must be a secure context (https, or http on
//!   localhost, as browsers require) whose host is the RP ID or under it.
//!   Origins are compared exactly (scheme, host and port): no wildcard
//!   subdomains, no "any port".

use std::sync::Arc;
use std::time::Duration;

use url::Url;
use webauthn_rs_core::WebauthnCore;

use crate::error::ConfigError;

/// How long the browser gives the person to answer; the server-side
/// ceremony state lives as long (issue 3: five minutes).
pub const CEREMONY_TIMEOUT: Duration = Duration::from_secs(300);

/// What the operator configures.
#[derive(Clone, Debug)]
pub struct RelyingPartyConfig {
    /// `public_url` from the configuration.
    pub public_url: Url,
    /// An explicit RP ID; `None` means the host of `public_url`.
    pub rp_id: Option<String>,
    /// Origins besides `public_url`'s that may run ceremonies.
    pub extra_origins: Vec<Url>,
    /// The name browsers show in their passkey dialogs.
    pub rp_name: String,
}

impl RelyingPartyConfig {
    pub fn new(public_url: Url) -> Self {
        Self {
            public_url,
            rp_id: None,
            extra_origins: Vec::new(),
            rp_name: "Signet".into(),
        }
    }
}

/// The configured relying party. Cheap to clone; `Send + Sync`.
#[derive(Clone, Debug)]
pub struct RelyingParty {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) core: WebauthnCore,
    pub(crate) rp_id: String,
    pub(crate) origins: Vec<Url>,
}

/// The origin of a URL (scheme, host, port): what browsers put in
/// `clientDataJSON.origin`. A path in `public_url` does not matter.
fn bare_origin(u: &Url) -> Result<Url, ConfigError> {
    let shown = u.as_str().to_owned();
    if !u.username().is_empty() || u.password().is_some() {
        return Err(ConfigError::NotAnOrigin(shown));
    }
    let origin = u.origin();
    if !origin.is_tuple() {
        return Err(ConfigError::NotAnOrigin(shown));
    }
    Url::parse(&origin.ascii_serialization()).map_err(|_| ConfigError::NotAnOrigin(shown))
}

fn is_localhost(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost")
}

impl RelyingParty {
    pub fn new(config: &RelyingPartyConfig) -> Result<Self, ConfigError> {
        let primary = bare_origin(&config.public_url)?;
        let host = primary
            .domain()
            .ok_or_else(|| ConfigError::NoDomain(config.public_url.to_string()))?
            .to_ascii_lowercase();
        let rp_id = config
            .rp_id
            .as_deref()
            .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or(host);
        let mut origins = vec![primary];
        for extra in &config.extra_origins {
            let o = bare_origin(extra)?;
            if !origins.contains(&o) {
                origins.push(o);
            }
        }
        for o in &origins {
            let domain = o
                .domain()
                .ok_or_else(|| ConfigError::NoDomain(o.to_string()))?
                .to_ascii_lowercase();
            let secure = o.scheme() == "https" || (o.scheme() == "http" && is_localhost(&domain));
            if !secure {
                return Err(ConfigError::InsecureOrigin(o.to_string()));
            }
            // The RP ID must be the origin's effective domain or a
            // registrable suffix of it (§5.1.3); the leading dot keeps
            // `myexample.com` from matching `example.com`.
            if !(domain == rp_id || domain.ends_with(&format!(".{rp_id}"))) || rp_id.is_empty() {
                return Err(ConfigError::RpIdNotRegistrable {
                    rp_id,
                    origin: o.to_string(),
                });
            }
        }
        let core = WebauthnCore::new_unsafe_experts_only(
            &config.rp_name,
            &rp_id,
            origins.clone(),
            CEREMONY_TIMEOUT,
            Some(false),
            Some(false),
        );
        Ok(Self {
            inner: Arc::new(Inner { core, rp_id, origins }),
        })
    }

    pub fn rp_id(&self) -> &str {
        &self.inner.rp_id
    }

    pub fn origins(&self) -> &[Url] {
        &self.inner.origins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(public: &str, rp_id: Option<&str>, extra: &[&str]) -> Result<RelyingParty, ConfigError> {
        let mut c = RelyingPartyConfig::new(Url::parse(public).unwrap());
        c.rp_id = rp_id.map(str::to_owned);
        c.extra_origins = extra.iter().map(|s| Url::parse(s).unwrap()).collect();
        RelyingParty::new(&c)
    }

    #[test]
    fn the_default_development_url_works() {
        let r = rp("http://localhost:8080", None, &[]).unwrap();
        assert_eq!(r.rp_id(), "localhost");
        assert_eq!(r.origins()[0].as_str(), "http://localhost:8080/");
    }

    #[test]
    fn the_rp_id_defaults_to_the_host_and_may_be_a_parent_domain() {
        assert_eq!(
            rp("https://login.example.com/", None, &[]).unwrap().rp_id(),
            "login.example.com"
        );
        let r = rp(
            "https://login.example.com/base/",
            Some("Example.COM"),
            &["https://id.example.com"],
        )
        .unwrap();
        assert_eq!(r.rp_id(), "example.com");
        assert_eq!(r.origins().len(), 2);
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(matches!(
            rp("https://login.example.com", Some("myexample.com"), &[]),
            Err(ConfigError::RpIdNotRegistrable { .. })
        ));
        assert!(matches!(
            rp("https://login.example.com", Some("example.com"), &["https://evil.test"]),
            Err(ConfigError::RpIdNotRegistrable { .. })
        ));
        assert!(matches!(
            rp("http://login.example.com", None, &[]),
            Err(ConfigError::InsecureOrigin(_))
        ));
        assert!(matches!(
            rp("https://127.0.0.1:8443", None, &[]),
            Err(ConfigError::NoDomain(_))
        ));
        assert!(matches!(
            rp(
                "https://login.example.com",
                Some("login.example.com"),
                &["https://example.com"]
            ),
            Err(ConfigError::RpIdNotRegistrable { .. })
        ));
    }
}
