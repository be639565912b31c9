//! `[sms]`: how texts leave (the webhook, or Twilio) and SMS pumping
//! protection.
//!
//! What a usable `webhook_url` is belongs to the courier, which POSTs to it
//! ([`signet_courier::check_webhook_url`]); this section says where a
//! refused value came from. The pumping limits are signet-app's
//! ([`signet_app::sms_pumping::SmsLimits`], defaults and reasons there).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use signet_app::sms_pumping::SmsLimits;
use signet_courier::TwilioAccount;
use toml::Spanned;
use url::Url;

use super::loader::{env_integer, env_list, env_string, redact, ConfigError, Sources};

#[derive(Clone, PartialEq, Eq)]
pub struct Sms {
    /// Receives `POST {"to", "body"}`; `None` sends SMS to the outbox.
    pub webhook_url: Option<Url>,
    /// The Twilio Messages API sender, when its three keys are set.
    pub twilio: Option<TwilioAccount>,
    /// Pumping protection.
    pub limits: SmsLimits,
}

impl Sms {
    /// Whether texts really leave Signet.
    pub fn delivers(&self) -> bool {
        self.webhook_url.is_some() || self.twilio.is_some()
    }
}

impl fmt::Debug for Sms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sms")
            .field("webhook_url", &self.webhook_url.as_ref().map(redact))
            .field("twilio", &self.twilio)
            .field("limits", &self.limits)
            .finish()
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSms {
    webhook_url: Option<Spanned<String>>,
    twilio_account_sid: Option<Spanned<String>>,
    twilio_auth_token: Option<Spanned<String>>,
    twilio_from: Option<Spanned<String>>,
    twilio_base_url: Option<Spanned<String>>,
    allowed_countries: Option<Spanned<Vec<String>>>,
    send_window: Option<Spanned<String>>,
    sends_per_number: Option<Spanned<i64>>,
    sends_per_prefix: Option<Spanned<i64>>,
    sends_per_ip: Option<Spanned<i64>>,
    global_per_hour: Option<Spanned<i64>>,
}

/// Bounds of the send counts, inclusive.
const COUNT_RANGE: std::ops::RangeInclusive<i64> = 1..=1_000_000;
/// Bounds of `send_window`, inclusive.
const WINDOW_RANGE: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(7 * 86_400));

pub(super) fn build(raw: RawSms, src: &Sources) -> Result<Sms, ConfigError> {
    let webhook = src.pick("sms.webhook_url", raw.webhook_url, env_string)?;
    let webhook_url = match &webhook {
        Some(u) => Some(signet_courier::check_webhook_url(&u.value).map_err(|e| u.error(e.to_string()))?),
        None => None,
    };
    let sid = src.pick("sms.twilio_account_sid", raw.twilio_account_sid, env_string)?;
    let token = src.pick("sms.twilio_auth_token", raw.twilio_auth_token, env_string)?;
    let from = src.pick("sms.twilio_from", raw.twilio_from, env_string)?;
    let base = src.pick("sms.twilio_base_url", raw.twilio_base_url, env_string)?;
    let twilio = match (sid, token, from) {
        (None, None, None) => {
            if let Some(b) = base {
                return Err(b.error("is set, but twilio_account_sid, twilio_auth_token and twilio_from are not"));
            }
            None
        }
        (Some(sid), Some(token), Some(from)) => {
            if !signet_courier::transport::check_twilio_sid(sid.value.trim()) {
                return Err(sid.error("must be AC followed by 32 hexadecimal digits"));
            }
            if token.value.trim().is_empty() {
                return Err(token.error("must not be empty"));
            }
            let base_url = match base {
                Some(b) => signet_courier::check_webhook_url(&b.value).map_err(|e| b.error(e.to_string()))?,
                None => Url::parse(signet_courier::TWILIO_BASE_URL).map_err(|e| sid.error(e.to_string()))?,
            };
            Some(TwilioAccount {
                account_sid: sid.value.trim().to_owned(),
                auth_token: token.value.trim().to_owned(),
                from: from.value.trim().to_owned(),
                base_url,
            })
        }
        (sid, token, from) => {
            let set = [sid, token, from].into_iter().flatten().next();
            return Err(match set {
                Some(s) => s.error("Twilio needs all of twilio_account_sid, twilio_auth_token and twilio_from"),
                None => ConfigError::Invalid {
                    key: "sms.twilio_account_sid",
                    origin: super::loader::Origin::Default,
                    message: "Twilio needs all three keys".into(),
                },
            });
        }
    };
    if let (Some(w), Some(_)) = (&webhook, &twilio) {
        return Err(w.error("set either webhook_url or the twilio_* keys, not both"));
    }
    let d = SmsLimits::default();
    let allowed_countries = match src.pick("sms.allowed_countries", raw.allowed_countries, env_list)? {
        Some(list) => {
            let mut out = Vec::new();
            for c in &list.value {
                let c = c.trim().to_ascii_uppercase();
                let ok = c == "*" || (c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()));
                if !ok {
                    return Err(list.error(format!(
                        "{c:?} is not an ISO 3166-1 alpha-2 country code (such as \"US\") or \"*\""
                    )));
                }
                out.push(c);
            }
            out
        }
        None => d.allowed_countries.clone(),
    };
    let window = match src.pick("sms.send_window", raw.send_window, env_string)? {
        Some(v) => {
            let w = v.duration()?;
            if w < WINDOW_RANGE.0 || w > WINDOW_RANGE.1 {
                return Err(v.error("must be between 1m and 7d"));
            }
            w
        }
        None => d.window,
    };
    let count = |key: &'static str, raw: Option<Spanned<i64>>, default: u32| -> Result<u32, ConfigError> {
        let v = src.pick_or(key, raw, env_integer, i64::from(default))?;
        if !COUNT_RANGE.contains(&v.value) {
            return Err(v.error(format!("must be between 1 and {}, got {}", COUNT_RANGE.end(), v.value)));
        }
        u32::try_from(v.value).map_err(|_| v.error("out of range"))
    };
    Ok(Sms {
        webhook_url,
        twilio,
        limits: SmsLimits {
            allowed_countries,
            window,
            sends_per_number: count("sms.sends_per_number", raw.sends_per_number, d.sends_per_number)?,
            sends_per_prefix: count("sms.sends_per_prefix", raw.sends_per_prefix, d.sends_per_prefix)?,
            prefix_digits: d.prefix_digits,
            sends_per_ip: count("sms.sends_per_ip", raw.sends_per_ip, d.sends_per_ip)?,
            global_per_hour: count("sms.global_per_hour", raw.global_per_hour, d.global_per_hour)?,
        },
    })
}
