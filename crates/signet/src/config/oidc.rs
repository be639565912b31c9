//! `[[oidc.clients]]` (an extension of the contract's keys): OpenID Connect
//! clients declared in the configuration file, written to the database at
//! every start (`signet_app::oidc::clients::apply_config`).
//!
//! File only: an array of tables has no sensible environment form, so
//! `SIGNET_OIDC__CLIENTS` is refused like any unknown variable. The
//! per-client rules (redirect URIs, lifetimes) are the domain's
//! (`validate_settings`), checked here too so that a bad entry stops the
//! start with the key's line rather than later.

use serde::Deserialize;
use signet_app::oidc::clients::{validate_settings, ConfiguredClient, MIN_CONFIG_SECRET_LEN};
use signet_core::oidc_client::{ClientAssurance, ClientSettings, GrantType};
use signet_core::session::Aal;
use toml::Spanned;

use super::loader::{ConfigError, Sources};

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOidc {
    clients: Option<Spanned<Vec<RawClient>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    client_id: String,
    name: Option<String>,
    /// Absent: a public client (PKCE required).
    client_secret: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    scopes: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    first_party: bool,
    id_token_ttl: Option<String>,
    access_token_ttl: Option<String>,
    refresh_token_ttl: Option<String>,
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    backchannel_logout_session_required: bool,
    min_aal: Option<String>,
    #[serde(default)]
    phishing_resistant: bool,
    max_auth_age: Option<String>,
    id_token_signed_response_alg: Option<String>,
}

pub(super) fn build(raw: RawOidc, src: &Sources) -> Result<Vec<ConfiguredClient>, ConfigError> {
    let Some(clients) = src.pick("oidc.clients", raw.clients, |_| {
        Err("OIDC clients can only be set in the config file ([[oidc.clients]])".into())
    })?
    else {
        return Ok(Vec::new());
    };
    let mut out: Vec<ConfiguredClient> = Vec::new();
    for (i, c) in clients.value.iter().enumerate() {
        let at = |m: String| clients.error(format!("entry {} ({}): {m}", i + 1, c.client_id));
        if out.iter().any(|o| o.client_id == c.client_id) {
            return Err(at("client_id appears twice".into()));
        }
        if let Some(secret) = &c.client_secret {
            if secret.len() < MIN_CONFIG_SECRET_LEN {
                return Err(at(format!(
                    "client_secret must be at least {MIN_CONFIG_SECRET_LEN} characters (e.g. openssl rand -base64 32)"
                )));
            }
        }
        let ttl = |v: &Option<String>, default: u64| -> Result<u64, ConfigError> {
            match v {
                Some(text) => signet_core::duration::parse(text)
                    .map(|d| d.as_secs())
                    .map_err(|e| at(format!("lifetime {text:?}: {e}"))),
                None => Ok(default),
            }
        };
        let defaults = ClientSettings::default();
        let grant_types = match &c.grant_types {
            Some(list) => list
                .iter()
                .map(|g| GrantType::parse(g).ok_or_else(|| at(format!("unknown grant type {g:?}"))))
                .collect::<Result<Vec<_>, _>>()?,
            None => defaults.grant_types.clone(),
        };
        if c.client_secret.is_none() && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(at(
                "a public client (no client_secret) cannot use client_credentials".into()
            ));
        }
        let settings = ClientSettings {
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            scopes: c.scopes.clone().unwrap_or(defaults.scopes),
            grant_types,
            first_party: c.first_party,
            id_token_ttl_secs: ttl(&c.id_token_ttl, defaults.id_token_ttl_secs)?,
            access_token_ttl_secs: ttl(&c.access_token_ttl, defaults.access_token_ttl_secs)?,
            refresh_token_ttl_secs: ttl(&c.refresh_token_ttl, defaults.refresh_token_ttl_secs)?,
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: c.backchannel_logout_session_required,
            assurance: ClientAssurance {
                min_aal: match &c.min_aal {
                    Some(a) => {
                        Some(Aal::parse(a).ok_or_else(|| at(format!("min_aal {a:?} is not aal1, aal2 or aal3")))?)
                    }
                    None => None,
                },
                phishing_resistant: c.phishing_resistant,
                max_auth_age_secs: match &c.max_auth_age {
                    Some(_) => Some(ttl(&c.max_auth_age, 0)?),
                    None => None,
                },
            },
            id_token_signed_response_alg: c.id_token_signed_response_alg.clone(),
        };
        validate_settings(&settings).map_err(|e| at(e.to_string()))?;
        out.push(ConfiguredClient {
            client_id: c.client_id.clone(),
            name: c.name.clone().unwrap_or_else(|| c.client_id.clone()),
            secret: c.client_secret.clone(),
            settings,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::fixtures::*;

    #[test]
    fn clients_are_read_with_defaults() {
        let config = load_file(
            r#"
[[oidc.clients]]
client_id = "wiki"
client_secret = "0123456789abcdef0123456789abcdef"
redirect_uris = ["https://wiki.example.com/cb"]
post_logout_redirect_uris = ["https://wiki.example.com/bye"]
backchannel_logout_uri = "https://wiki.example.com/backchannel"
backchannel_logout_session_required = true
min_aal = "aal2"
access_token_ttl = "2m"

[[oidc.clients]]
client_id = "cli-app"
redirect_uris = ["http://127.0.0.1:7777/cb"]
"#,
            &[],
        )
        .unwrap();
        assert_eq!(config.oidc_clients.len(), 2);
        let wiki = &config.oidc_clients[0];
        assert_eq!(wiki.settings.access_token_ttl_secs, 120);
        assert_eq!(
            wiki.settings.post_logout_redirect_uris,
            ["https://wiki.example.com/bye"]
        );
        assert_eq!(
            wiki.settings.backchannel_logout_uri.as_deref(),
            Some("https://wiki.example.com/backchannel")
        );
        assert!(wiki.settings.backchannel_logout_session_required);
        assert!(!config.oidc_clients[1].settings.backchannel_logout_session_required);
        assert_eq!(wiki.settings.assurance.min_aal, Some(signet_core::session::Aal::Aal2));
        assert!(config.oidc_clients[1].secret.is_none());
    }

    #[test]
    fn a_bad_client_names_its_entry() {
        let err = err_file(
            r#"
[[oidc.clients]]
client_id = "wiki"
client_secret = "short"
redirect_uris = ["https://wiki.example.com/cb"]
"#,
        );
        assert!(
            err.contains("oidc.clients") && err.contains("wiki") && err.contains("32"),
            "{err}"
        );
        let err = err_file(
            r#"
[[oidc.clients]]
client_id = "wiki"
redirect_uris = ["http://wiki.example.com/cb"]
"#,
        );
        assert!(err.contains("loopback"), "{err}");
        let err = err_file(
            r#"
[[oidc.clients]]
client_id = "wiki"
redirect_uris = ["https://wiki.example.com/cb"]
colour = "blue"
"#,
        );
        assert!(err.contains("colour"), "{err}");
    }
}
