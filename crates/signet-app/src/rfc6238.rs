//! HOTP (RFC 4226) and TOTP (RFC 6238), nothing else: the arithmetic an
//! authenticator app and the server must agree on.
//!
//! - HOTP (RFC 4226 §5.3): HMAC over the 8-byte big-endian counter, dynamic
//!   truncation (the low nibble of the last byte picks 4 bytes, top bit
//!   masked), modulo 10^digits, zero-padded.
//! - TOTP (RFC 6238 §4): the counter is the time step
//!   `floor((unix_time - T0) / X)` with T0 = 0 and X = 30 s here, and the
//!   HMAC may be SHA-1, SHA-256 or SHA-512 (§1.2). Real apps support only
//!   SHA-1 with 6 digits and 30 s reliably, which is what enrollment uses; the
//!   others exist for the Appendix B vectors and for completeness.
//!
//! Comparison of a presented code is constant-time ([`matches`]). Which
//! steps are tried (±1, RFC 6238 §5.2's "one time step ... of network
//! delay") and replay prevention are the method's business.

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// The HMAC the code is computed with (RFC 6238 §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name the otpauth URI uses.
    pub fn uri_name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

/// The step length enrollment uses (RFC 6238 §5.2 recommends 30 s).
pub const STEP_SECONDS: i64 = 30;

fn mac(algorithm: Algorithm, key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length (longer ones are hashed, RFC 2104
    // §3), so `new_from_slice` cannot fail; the fallback is unreachable.
    macro_rules! run {
        ($h:ty) => {
            match Hmac::<$h>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(msg);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        };
    }
    match algorithm {
        Algorithm::Sha1 => run!(sha1::Sha1),
        Algorithm::Sha256 => run!(sha2::Sha256),
        Algorithm::Sha512 => run!(sha2::Sha512),
    }
}

/// The HOTP value for `counter` (RFC 4226 §5.3), `digits` long (6 to 9).
pub fn hotp(algorithm: Algorithm, key: &[u8], counter: u64, digits: u32) -> String {
    let digest = mac(algorithm, key, &counter.to_be_bytes());
    let Some(last) = digest.last() else {
        return String::new();
    };
    let offset = usize::from(last & 0x0f);
    let word = match digest.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a & 0x7f, b, c, d]),
        _ => return String::new(),
    };
    let modulus = 10u64.pow(digits);
    format!("{:0width$}", u64::from(word) % modulus, width = digits as usize)
}

/// The time step that `unix_seconds` falls in (RFC 6238 §4.2, T0 = 0).
pub fn step_at(unix_seconds: i64, step_seconds: i64) -> i64 {
    unix_seconds.div_euclid(step_seconds)
}

/// The TOTP value at time step `step`.
pub fn totp_at_step(algorithm: Algorithm, key: &[u8], step: i64, digits: u32) -> String {
    hotp(algorithm, key, u64::try_from(step).unwrap_or(0), digits)
}

/// Constant-time equality of two codes of the same length.
pub fn matches(expected: &str, presented: &str) -> bool {
    expected.len() == presented.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the seeds are the ASCII digits repeated to the
    /// hash's output length.
    const SEED20: &[u8] = b"12345678901234567890";
    const SEED32: &[u8] = b"12345678901234567890123456789012";
    const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    /// (time, SHA1, SHA256, SHA512), 8 digits.
    const VECTORS: [(i64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ];

    #[test]
    fn rfc6238_appendix_b_vectors() {
        for (time, sha1, sha256, sha512) in VECTORS {
            // A pinned clock: the step comes from the vector's time only.
            let step = step_at(time, STEP_SECONDS);
            assert_eq!(totp_at_step(Algorithm::Sha1, SEED20, step, 8), sha1, "SHA1 at {time}");
            assert_eq!(
                totp_at_step(Algorithm::Sha256, SEED32, step, 8),
                sha256,
                "SHA256 at {time}"
            );
            assert_eq!(
                totp_at_step(Algorithm::Sha512, SEED64, step, 8),
                sha512,
                "SHA512 at {time}"
            );
        }
    }

    #[test]
    fn rfc4226_appendix_d_hotp_values() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489",
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(hotp(Algorithm::Sha1, SEED20, counter as u64, 6), *want);
        }
    }

    #[test]
    fn steps_are_floor_of_thirty_seconds() {
        assert_eq!(step_at(0, 30), 0);
        assert_eq!(step_at(29, 30), 0);
        assert_eq!(step_at(30, 30), 1);
        assert_eq!(step_at(59, 30), 1);
    }

    #[test]
    fn matches_compares_whole_codes() {
        assert!(matches("123456", "123456"));
        assert!(!matches("123456", "123457"));
        assert!(!matches("123456", "12345"));
    }
}
