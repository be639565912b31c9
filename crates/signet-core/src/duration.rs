//! Human durations as written in config and policy files: `90s`, `30m`, `12h`,
//! `30d`, or a combination such as `1h30m`. A bare number is refused so a
//! reader never has to guess the unit.

use std::time::Duration;

pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => {
                return Err(format!(
                    "bad duration {input:?}: unknown unit {ch:?} (use s, m, h, d or w)"
                ))
            }
        };
        if digits.is_empty() {
            return Err(format!("bad duration {input:?}: a unit needs a number before it"));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("bad duration {input:?}: number too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("bad duration {input:?}: too large"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!(
            "bad duration {input:?}: missing unit after {digits} (e.g. {digits}m)"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// Writes a duration back in the same notation, largest units first.
pub fn format(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Serde adapter so config structs can hold a `Duration` written as `"30m"`.
pub mod serde_human {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("30d").unwrap(), Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn refuses_ambiguous_or_garbage() {
        for bad in ["", "30", "m", "5x", "1h30", "-5m", "99999999999999999999s"] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn format_round_trips() {
        for s in ["30m", "12h", "1d2h", "45s"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }
}
