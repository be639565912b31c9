//! SMS pumping protection: who may be texted, and how often.
//!
//! SMS pumping ("artificially inflated traffic", toll fraud) makes a
//! service text numbers whose operator shares the termination fee with the
//! fraudster: premium ranges, or whole blocks of numbers in expensive
//! destinations, walked through a public "send me a code" form. Every send
//! that may reach a number passes [`admit`] first, in this order (the first
//! refusal wins, and nothing after it is counted):
//!
//! 1. **Country allow-list** (`[sms] allowed_countries`). The default is
//!    short on purpose ([`DEFAULT_COUNTRIES`]): a deployment lists where its
//!    users are, and fraud aimed at other destinations never starts.
//! 2. **Number type**: premium-rate, shared-cost, VoIP, fixed-line and the
//!    other ranges that do not reach one person's handset are never texted
//!    ([`crate::phone_numbers`]); unassigned ranges never parse.
//! 3. **Per number** (`sends_per_number`, default 3 per `window`, 1 hour).
//! 4. **Per prefix**: the first `prefix_digits` (8) digits of the E.164
//!    number, `sends_per_prefix` (10) per window: pumping walks a range.
//! 5. **Per client IP** (`sends_per_ip`, 10 per window).
//! 6. **Global hourly cap** (`global_per_hour`, 200): the bill has a ceiling
//!    whatever the other limits miss (many IPs, many ranges).
//!
//! The counters live in the shared throttle table (one atomic statement
//! each), so they hold across nodes. A refusal is a [`Blocked`] reason: the
//! caller counts it in `signet_sms_blocked_total{reason}` and audits it
//! (`sms.blocked`) through [`record_blocked`]. Where the answer could tell
//! whether an account exists or has a phone (a sign-in's send), the caller
//! answers exactly as for a send that went out; where the person is signed
//! in and typed the number themselves (enrolling a phone), it says why.

use std::time::Duration;

use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::Timestamp;
use signet_core::store::Store;
use signet_core::user::UserId;
use signet_core::Result;

use crate::metrics::Metrics;
use crate::phone_numbers::Number;

/// The built-in country allow-list: a few large markets with low
/// termination fees and mature anti-fraud regimes. Replace it with where
/// your users are; `["*"]` allows every country (not recommended).
pub const DEFAULT_COUNTRIES: [&str; 9] = ["US", "CA", "GB", "IE", "DE", "FR", "NL", "AU", "NZ"];

/// `[sms]` limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmsLimits {
    /// ISO 3166-1 alpha-2 regions that may be texted; `*` allows all.
    pub allowed_countries: Vec<String>,
    /// The window the per-number, per-prefix and per-IP limits count over.
    pub window: Duration,
    pub sends_per_number: u32,
    pub sends_per_prefix: u32,
    /// Digits of the E.164 number (after `+`) that make its prefix.
    pub prefix_digits: usize,
    pub sends_per_ip: u32,
    /// Texts per clock hour over the whole deployment.
    pub global_per_hour: u32,
}

impl Default for SmsLimits {
    fn default() -> Self {
        Self {
            allowed_countries: DEFAULT_COUNTRIES.iter().map(|c| (*c).to_owned()).collect(),
            window: Duration::from_secs(3600),
            sends_per_number: 3,
            sends_per_prefix: 10,
            prefix_digits: 8,
            sends_per_ip: 10,
            global_per_hour: 200,
        }
    }
}

impl SmsLimits {
    /// Whether `number`'s country is on the allow-list.
    pub fn allows_country(&self, number: &Number) -> bool {
        self.allowed_countries.iter().any(|c| c == "*")
            || number
                .region
                .as_deref()
                .is_some_and(|r| self.allowed_countries.iter().any(|c| c.eq_ignore_ascii_case(r)))
    }
}

/// Why a send was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    Country,
    NumberType,
    Number,
    Prefix,
    Ip,
    Global,
}

impl Blocked {
    /// The metric label and the audit record's `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Blocked::Country => "country",
            Blocked::NumberType => "number_type",
            Blocked::Number => "per_number",
            Blocked::Prefix => "per_prefix",
            Blocked::Ip => "per_ip",
            Blocked::Global => "global",
        }
    }
}

/// Decides whether `number` may be texted now, counting the send on each
/// limit it passes (module docs for the order). `Ok(Err(reason))` is a
/// refusal; `Err` is storage trouble.
pub async fn admit(
    store: &dyn Store,
    limits: &SmsLimits,
    now: Timestamp,
    number: &Number,
    ip: Option<&str>,
) -> Result<std::result::Result<(), Blocked>> {
    if !limits.allows_country(number) {
        return Ok(Err(Blocked::Country));
    }
    if !number.textable() {
        return Ok(Err(Blocked::NumberType));
    }
    let window = limits.window;
    let over = |hits: u32, max: u32| hits > max;
    let n = store
        .hit(&format!("sms:number:{}", number.e164.as_str()), now, window)
        .await?;
    if over(n.hits, limits.sends_per_number) {
        return Ok(Err(Blocked::Number));
    }
    let p = store
        .hit(
            &format!("sms:prefix:{}", number.prefix(limits.prefix_digits)),
            now,
            window,
        )
        .await?;
    if over(p.hits, limits.sends_per_prefix) {
        return Ok(Err(Blocked::Prefix));
    }
    if let Some(ip) = ip {
        let i = store.hit(&format!("sms:ip:{ip}"), now, window).await?;
        if over(i.hits, limits.sends_per_ip) {
            return Ok(Err(Blocked::Ip));
        }
    }
    let g = store.hit("sms:global", now, Duration::from_secs(3600)).await?;
    if over(g.hits, limits.global_per_hour) {
        return Ok(Err(Blocked::Global));
    }
    Ok(Ok(()))
}

/// `+44••••••••56`: enough for its owner to recognise, too little to use.
pub fn mask(e164: &str) -> String {
    let digits: Vec<char> = e164.trim_start_matches('+').chars().collect();
    let n = digits.len();
    digits
        .iter()
        .enumerate()
        .map(|(i, d)| if i < 2 || i + 2 >= n { *d } else { '•' })
        .fold(String::from("+"), |mut s, c| {
            s.push(c);
            s
        })
}

/// Counts a refused send (`signet_sms_blocked_total{reason}`) and audits it
/// (`sms.blocked`, outcome `denied`), with the number masked.
#[allow(clippy::too_many_arguments)]
pub async fn record_blocked(
    store: &dyn Store,
    metrics: &Metrics,
    now: Timestamp,
    reason: Blocked,
    number: &Number,
    user: Option<UserId>,
    purpose: &'static str,
    origin: &Origin,
) -> Result<()> {
    metrics.sms_blocked(reason.as_str());
    let mut ev = AuditEvent::new(EventType::SmsBlocked, Actor::System, Outcome::Denied)
        .from_origin(origin)
        .details(json!({
            "reason": reason.as_str(),
            "purpose": purpose,
            "to": mask(number.e164.as_str()),
            "country": number.region,
            "number_type": number.kind,
        }));
    if let Some(u) = user {
        ev = ev.user(u);
    }
    crate::audit::record(store, now, &ev).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_all_but_the_ends() {
        assert_eq!(mask("+447400123456"), "+44••••••••56");
        assert_eq!(mask("+12015550123"), "+12•••••••23");
    }

    #[test]
    fn the_allow_list_is_by_region() {
        let limits = SmsLimits::default();
        let gb = crate::phone_numbers::parse("+447400123456").unwrap();
        let br = crate::phone_numbers::parse("+5511961234567").unwrap();
        assert!(limits.allows_country(&gb));
        assert!(!limits.allows_country(&br));
        let all = SmsLimits {
            allowed_countries: vec!["*".into()],
            ..SmsLimits::default()
        };
        assert!(all.allows_country(&br));
    }
}
