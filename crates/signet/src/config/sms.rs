//! `[sms]`: the SMS webhook.
//!
//! What a usable `webhook_url` is belongs to the courier, which POSTs to it
//! ([`signet_courier::check_webhook_url`]); this section says where a
//! refused value came from.

use std::fmt;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::loader::{env_string, redact, ConfigError, Sources};

#[derive(Clone, PartialEq, Eq)]
pub struct Sms {
    /// Receives `POST {"to", "body"}`; `None` sends SMS to the outbox.
    pub webhook_url: Option<Url>,
}

impl fmt::Debug for Sms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sms")
            .field("webhook_url", &self.webhook_url.as_ref().map(redact))
            .finish()
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSms {
    webhook_url: Option<Spanned<String>>,
}

pub(super) fn build(raw: RawSms, src: &Sources) -> Result<Sms, ConfigError> {
    let webhook_url = match src.pick("sms.webhook_url", raw.webhook_url, env_string)? {
        Some(u) => Some(signet_courier::check_webhook_url(&u.value).map_err(|e| u.error(e.to_string()))?),
        None => None,
    };
    Ok(Sms { webhook_url })
}
