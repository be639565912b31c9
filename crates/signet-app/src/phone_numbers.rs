//! Phone numbers people type: parsed, validated and classified with the
//! `phonenumber` crate (a Rust port of Google's libphonenumber and its
//! metadata), then kept in E.164 form (ITU-T E.164: `+`, country code,
//! national number, at most 15 digits).
//!
//! What the library can tell, and what Signet does with it:
//! - **Valid** means the number falls in a range its country's numbering
//!   plan has assigned: an unassigned range is `invalid_phone`.
//! - **The country** (ISO 3166-1 region) for `[sms] allowed_countries`.
//! - **The number type**: only types that reach one person's handset
//!   (`mobile`, `fixed_line_or_mobile` where the plan cannot tell them apart,
//!   `personal`) are texted. Premium-rate and shared-cost ranges are what SMS
//!   pumping fraud profits from; toll-free, UAN, short codes, voicemail and
//!   pagers do not belong to one person; fixed lines cannot take a text; VoIP
//!   numbers are not bound to a device, which NIST SP 800-63B rev. 4 §3.1.3.3
//!   asks of an out-of-band device. All of these are `phone_not_allowed`.

use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, PhoneNumber, Type};
use signet_core::user::Phone;
use signet_core::{Error, ErrorCode, Result};

/// The longest input we try to parse (a formatted E.164 number with
/// spaces and dashes is well under this).
const MAX_INPUT: usize = 32;

/// A valid number, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Number {
    /// E.164.
    pub e164: Phone,
    /// ISO 3166-1 alpha-2 region (`US`, `GB`), when the plan names one.
    pub region: Option<String>,
    /// The library's number type, in snake_case (`mobile`, `premium_rate`).
    pub kind: &'static str,
}

impl Number {
    /// Whether the type reaches one person's handset (module docs).
    pub fn textable(&self) -> bool {
        matches!(self.kind, "mobile" | "fixed_line_or_mobile" | "personal")
    }

    /// The first `n` digits of the number after `+`: the range it belongs
    /// to, for the per-prefix send limit (pumping walks a range).
    pub fn prefix(&self, n: usize) -> &str {
        let digits = self.e164.as_str().trim_start_matches('+');
        digits.get(..n.min(digits.len())).unwrap_or(digits)
    }
}

fn kind(t: Type) -> &'static str {
    match t {
        Type::FixedLine => "fixed_line",
        Type::Mobile => "mobile",
        Type::FixedLineOrMobile => "fixed_line_or_mobile",
        Type::TollFree => "toll_free",
        Type::PremiumRate => "premium_rate",
        Type::SharedCost => "shared_cost",
        Type::PersonalNumber => "personal",
        Type::Voip => "voip",
        Type::Pager => "pager",
        Type::Uan => "uan",
        Type::Emergency => "emergency",
        Type::Voicemail => "voicemail",
        Type::ShortCode => "short_code",
        Type::StandardRate => "standard_rate",
        Type::Carrier => "carrier",
        Type::NoInternational => "no_international",
        Type::Unknown => "unknown",
    }
}

fn invalid(why: &str) -> Error {
    Error::invalid(
        ErrorCode::InvalidPhone,
        format!("{why}; give the number in E.164 form, e.g. +14155550100"),
    )
}

/// Parses what a person typed: `+` and the country code first (spaces,
/// dashes, dots and parentheses are allowed and dropped), a number in an
/// assigned range. `400 invalid_phone` otherwise.
pub fn parse(input: &str) -> Result<Number> {
    let s = input.trim();
    if s.chars().count() > MAX_INPUT || s.chars().any(|c| c.is_control()) {
        return Err(invalid("that is not a phone number"));
    }
    if !s.starts_with('+') {
        return Err(invalid("the number must start with + and the country code"));
    }
    if !s[1..]
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
    {
        return Err(invalid("a phone number has only digits after the +"));
    }
    let parsed: PhoneNumber = phonenumber::parse(None, s).map_err(|_| invalid("that is not a phone number"))?;
    if parsed.extension().is_some() || !parsed.is_valid() {
        return Err(invalid("that number is not in use in any numbering plan"));
    }
    let e164 = parsed.format().mode(Mode::E164).to_string();
    Ok(Number {
        e164: Phone::parse(&e164)?,
        region: parsed.country().id().map(|id| id.as_ref().to_owned()),
        kind: kind(parsed.number_type(&DATABASE)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_to_e164() {
        let n = parse(" +44 7400 123456 ").unwrap();
        assert_eq!(n.e164.as_str(), "+447400123456");
        assert_eq!(n.region.as_deref(), Some("GB"));
        assert_eq!(n.kind, "mobile");
        assert!(n.textable());
        assert_eq!(n.prefix(8), "44740012");
        let us = parse("+1 (201) 555-0123").unwrap();
        assert_eq!(us.e164.as_str(), "+12015550123");
        assert_eq!(us.region.as_deref(), Some("US"));
        assert_eq!(us.kind, "fixed_line_or_mobile");
    }

    #[test]
    fn premium_rate_and_fixed_lines_are_not_textable() {
        // UK premium rate (09) and a London fixed line.
        assert_eq!(parse("+44 909 8790000").unwrap().kind, "premium_rate");
        assert!(!parse("+44 909 8790000").unwrap().textable());
        assert_eq!(parse("+44 20 7946 0000").unwrap().kind, "fixed_line");
        // The numbers the HTTP tests use.
        for n in ["+447400123401", "+447500123402", "+447700123403", "+5511961234567"] {
            assert!(parse(n).unwrap().textable(), "{n}");
        }
    }

    #[test]
    fn bad_input_is_invalid_phone() {
        for bad in [
            "",
            "+",
            "14155550100",
            "+1 415 555 01x0",
            "+1\n4155550100",
            "+999 1234567",
            "+1 000 000 0000",
            "+٤٤٧٤٠٠١٢٣٤٥٦",
            "+44 7400 123456 ext. 12",
            &"+4".repeat(40),
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidPhone, "{bad:?}");
        }
    }
}
