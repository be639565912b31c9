//! `[webauthn]` (an extension of the contract's keys): the passkey relying
//! party.
//!
//! The rules (the RP ID is the host of `public_url` or a registrable parent
//! of it; every origin is a secure context under the RP ID) are
//! signet-passkey's: [`signet_passkey::RelyingParty::new`] checks a
//! [`signet_passkey::RelyingPartyConfig`]. This section parses the origins'
//! syntax, builds that config and names the key a refusal is about.

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::loader::{env_list, env_string, ConfigError, Sourced, Sources};

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

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebAuthn {
    rp_id: Option<Spanned<String>>,
    extra_origins: Option<Spanned<Vec<String>>>,
}

/// `[webauthn]`, checked by building the relying party the server will use:
/// a configuration WebAuthn cannot work with is refused at start-up.
pub(super) fn build(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures::*;

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
}
