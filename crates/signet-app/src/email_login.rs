//! The settings of the email sign-in methods (`email_otp`, `magic_link`) and
//! the rules they must follow.
//!
//! [`EmailLogin::new`] is the one place these bounds are checked. It knows
//! nothing about where the values came from (the `[login]` table of the
//! config file, an environment variable, a test): its [`EmailLoginError`]
//! names the field and the reason, and the caller adds the source.
//!
//! Why the bounds:
//! - `code_digits` 6 to 8 ([`signet_core::secret::CODE_DIGITS`]): fewer than
//!   six digits is guessable within the send limits (NIST SP 800-63B §5.1.1.2
//!   asks for at least six for a look-up or out-of-band code); more than eight
//!   is not typed reliably.
//! - `ttl` 1 minute to 1 hour: a code must survive slow mail but not linger
//!   in an inbox.
//! - `send_window` 1 minute to 1 day, and 1 to 10,000 sends per address and
//!   per IP in it: a zero would lock everyone out, a huge value is no limit.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use signet_core::duration;

/// Bounds of [`EmailLogin::ttl`], inclusive.
pub const CODE_TTL_RANGE: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(3600));
/// Bounds of [`EmailLogin::send_window`], inclusive.
pub const SEND_WINDOW_RANGE: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(86_400));
/// Bounds of [`EmailLogin::sends_per_address`] and
/// [`EmailLogin::sends_per_ip`], inclusive.
pub const SENDS_RANGE: RangeInclusive<i64> = 1..=10_000;

/// Settings of the email sign-in methods (`email_otp`, `magic_link`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailLogin {
    /// Digits in a code (6 to 8).
    pub code_digits: u8,
    /// How long a code or link stays valid.
    pub ttl: Duration,
    /// The window the send limits count over.
    pub send_window: Duration,
    /// Sends per address (known or not) per window.
    pub sends_per_address: u32,
    /// Sends per client IP per window.
    pub sends_per_ip: u32,
    /// Sign-in starts per client IP per minute, whatever the method
    /// ([`crate::start_limit`]).
    pub starts_per_ip: u32,
}

impl Default for EmailLogin {
    fn default() -> Self {
        Self {
            code_digits: 6,
            ttl: Duration::from_secs(10 * 60),
            send_window: Duration::from_secs(10 * 60),
            sends_per_address: 3,
            sends_per_ip: 30,
            starts_per_ip: 60,
        }
    }
}

/// A setting of [`EmailLogin`] outside its bounds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct EmailLoginError {
    /// The [`EmailLogin`] field: `code_digits`, `ttl`, `send_window`,
    /// `sends_per_address`, `sends_per_ip` or `starts_per_ip`.
    pub field: &'static str,
    pub problem: EmailLoginProblem,
}

/// Why a value was refused. Its text is for a person and never names a
/// source; counts are kept as given, so a negative one is shown as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmailLoginProblem {
    CodeDigits {
        got: i64,
    },
    Duration {
        min: Duration,
        max: Duration,
        got: Duration,
    },
    Count {
        got: i64,
    },
}

impl fmt::Display for EmailLoginProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = signet_core::secret::CODE_DIGITS;
        match self {
            EmailLoginProblem::CodeDigits { got } => write!(
                f,
                "must be between {} and {} digits, got {got}",
                digits.start(),
                digits.end()
            ),
            EmailLoginProblem::Duration { min, max, got } => write!(
                f,
                "must be between {} and {}, got {}",
                duration::format(*min),
                duration::format(*max),
                duration::format(*got)
            ),
            EmailLoginProblem::Count { got } => write!(
                f,
                "must be between {} and {}, got {got}",
                SENDS_RANGE.start(),
                SENDS_RANGE.end()
            ),
        }
    }
}

impl EmailLogin {
    /// Checks each setting against its bounds, in field order, and returns
    /// the first that is outside them. Counts are taken as any integer so
    /// that the error can repeat a negative or huge value as written.
    pub fn new(
        code_digits: i64,
        ttl: Duration,
        send_window: Duration,
        sends_per_address: i64,
        sends_per_ip: i64,
        starts_per_ip: i64,
    ) -> Result<EmailLogin, EmailLoginError> {
        Ok(EmailLogin {
            code_digits: Self::check_code_digits(code_digits)?,
            ttl: check_duration("ttl", ttl, CODE_TTL_RANGE)?,
            send_window: check_duration("send_window", send_window, SEND_WINDOW_RANGE)?,
            sends_per_address: check_count("sends_per_address", sends_per_address)?,
            sends_per_ip: check_count("sends_per_ip", sends_per_ip)?,
            starts_per_ip: check_count("starts_per_ip", starts_per_ip)?,
        })
    }

    /// `code_digits` alone, for a caller that checks settings one by one.
    pub fn check_code_digits(got: i64) -> Result<u8, EmailLoginError> {
        u8::try_from(got)
            .ok()
            .filter(|n| signet_core::secret::CODE_DIGITS.contains(n))
            .ok_or(EmailLoginError {
                field: "code_digits",
                problem: EmailLoginProblem::CodeDigits { got },
            })
    }

    /// `ttl` alone.
    pub fn check_ttl(ttl: Duration) -> Result<Duration, EmailLoginError> {
        check_duration("ttl", ttl, CODE_TTL_RANGE)
    }

    /// `send_window` alone.
    pub fn check_send_window(window: Duration) -> Result<Duration, EmailLoginError> {
        check_duration("send_window", window, SEND_WINDOW_RANGE)
    }

    /// `sends_per_address` or `sends_per_ip` alone; `field` names which.
    pub fn check_sends(field: &'static str, got: i64) -> Result<u32, EmailLoginError> {
        check_count(field, got)
    }
}

fn check_duration(
    field: &'static str,
    got: Duration,
    (min, max): (Duration, Duration),
) -> Result<Duration, EmailLoginError> {
    if got < min || got > max {
        return Err(EmailLoginError {
            field,
            problem: EmailLoginProblem::Duration { min, max, got },
        });
    }
    Ok(got)
}

fn check_count(field: &'static str, got: i64) -> Result<u32, EmailLoginError> {
    u32::try_from(got)
        .ok()
        .filter(|n| SENDS_RANGE.contains(&i64::from(*n)))
        .ok_or(EmailLoginError {
            field,
            problem: EmailLoginProblem::Count { got },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_their_own_rules() {
        let d = EmailLogin::default();
        let checked = EmailLogin::new(
            i64::from(d.code_digits),
            d.ttl,
            d.send_window,
            i64::from(d.sends_per_address),
            i64::from(d.sends_per_ip),
            i64::from(d.starts_per_ip),
        );
        assert_eq!(checked, Ok(d));
    }

    #[test]
    fn each_refusal_names_its_field_and_bound() {
        let min = Duration::from_secs(60);
        let cases = [
            (
                EmailLogin::new(5, min, min, 1, 1, 1),
                "code_digits: must be between 6 and 8 digits, got 5",
            ),
            (
                EmailLogin::new(300, min, min, 1, 1, 1),
                "code_digits: must be between 6 and 8 digits, got 300",
            ),
            (
                EmailLogin::new(6, Duration::from_secs(7200), min, 1, 1, 1),
                "ttl: must be between 1m and 1h, got 2h",
            ),
            (
                EmailLogin::new(6, min, Duration::from_secs(30), 1, 1, 1),
                "send_window: must be between 1m and 1d, got 30s",
            ),
            (
                EmailLogin::new(6, min, min, 0, 1, 1),
                "sends_per_address: must be between 1 and 10000, got 0",
            ),
            (
                EmailLogin::new(6, min, min, 1, -3, 1),
                "sends_per_ip: must be between 1 and 10000, got -3",
            ),
            (
                EmailLogin::new(6, min, min, 1, 1, 0),
                "starts_per_ip: must be between 1 and 10000, got 0",
            ),
        ];
        for (result, says) in cases {
            match result {
                Err(e) => assert_eq!(e.to_string(), says),
                Ok(ok) => panic!("{says}: accepted {ok:?}"),
            }
        }
    }
}
