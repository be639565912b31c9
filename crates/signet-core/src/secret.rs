//! Secrets are types, not strings (DESIGN.md habit 1).
//!
//! A [`PlainToken`] is born here from the OS CSPRNG (256 bits, NIST SP 800-63B
//! §3.1.1.2 asks for at least 112 bits of entropy for a look-up secret; we use
//! far more because tokens are bearer credentials). The server keeps only its
//! [`TokenHash`]. Because the token carries 256 random bits, a single SHA-256 is
//! sufficient: there is nothing for an offline guesser to enumerate, so a slow
//! password hash would add latency and no security.
//!
//! `expose_secret()` is the single point where the plaintext leaves the type,
//! and `Debug` is redacted so a token never ends up in a log line.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token is for. The prefix makes leaked tokens easy to recognise for
/// secret scanners and for a person reading a support ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Session,
    Admin,
    Invitation,
    Recovery,
    MagicLink,
    BrowserBinding,
    /// A security notice's "this wasn't me" link.
    NotMe,
    /// An OIDC client secret (`signet client add`).
    ClientSecret,
    /// An OIDC authorization code (single use, 60 seconds).
    AuthorizationCode,
    /// An OIDC refresh token (rotated on every use).
    RefreshToken,
    /// A browser's device cookie (tells a new device from a known one).
    Device,
}

impl TokenKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::Session => "sgs_",
            TokenKind::Admin => "sga_",
            TokenKind::Invitation => "sgi_",
            TokenKind::Recovery => "sgr_",
            TokenKind::MagicLink => "sgm_",
            TokenKind::BrowserBinding => "sgb_",
            TokenKind::NotMe => "sgn_",
            TokenKind::ClientSecret => "sgcs_",
            TokenKind::AuthorizationCode => "sgac_",
            TokenKind::RefreshToken => "sgrt_",
            TokenKind::Device => "sgd_",
        }
    }
}

/// Fills `buf` from the operating system's CSPRNG. The one entry point for
/// randomness in Signet.
pub fn fill_random(buf: &mut [u8]) {
    OsRng.fill_bytes(buf);
}

/// A uniformly random `u64` from the CSPRNG.
pub fn random_u64() -> u64 {
    OsRng.next_u64()
}

/// A uniformly random integer in `0..bound` from the CSPRNG, by rejection
/// sampling: draws at or above the largest multiple of `bound` that fits in
/// a `u64` are thrown away, so no value is more likely than another (a plain
/// `% bound` would favour the low values).
pub fn random_below(bound: u64) -> u64 {
    let bound = bound.max(1);
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let v = random_u64();
        if v < zone {
            return v % bound;
        }
    }
}

/// Shortest and longest one-time code Signet issues.
pub const CODE_DIGITS: std::ops::RangeInclusive<u8> = 6..=8;

/// A one-time numeric code (email or SMS), `digits` long with leading zeros,
/// uniform over all `10^digits` values. `Debug` is redacted.
#[derive(Clone)]
pub struct OneTimeCode(String);

impl OneTimeCode {
    /// A fresh code of `digits` digits, clamped to [`CODE_DIGITS`].
    pub fn generate(digits: u8) -> Self {
        let digits = digits.clamp(*CODE_DIGITS.start(), *CODE_DIGITS.end());
        let n = random_below(10u64.pow(u32::from(digits)));
        Self(format!("{n:0width$}", width = usize::from(digits)))
    }

    /// Accepts a code as a person typed it: surrounding whitespace and inner
    /// spaces or hyphens (`123 456`, `123-456`) are ignored; anything but
    /// `digits` decimal digits is refused.
    pub fn parse(presented: &str, digits: u8) -> Option<Self> {
        if presented.len() > 64 {
            return None;
        }
        let cleaned: String = presented.trim().chars().filter(|c| *c != ' ' && *c != '-').collect();
        (cleaned.len() == usize::from(digits) && cleaned.bytes().all(|b| b.is_ascii_digit())).then_some(Self(cleaned))
    }

    /// The hash stored for this code, bound to `scope` (the flow's id): the
    /// same digits in another flow hash differently, so a code from flow A
    /// can never be redeemed in flow B, and equal codes in two flows never
    /// collide in storage.
    pub fn hash_for(&self, scope: &[u8]) -> TokenHash {
        let mut input = Vec::with_capacity(scope.len() + 1 + self.0.len());
        input.extend_from_slice(scope);
        input.push(b':');
        input.extend_from_slice(self.0.as_bytes());
        TokenHash::of(&input)
    }

    /// The digits. Call only to put the code in the message to its owner.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneTimeCode(<redacted>)")
    }
}

/// A freshly generated or user-presented bearer token.
#[derive(Clone)]
pub struct PlainToken(String);

impl PlainToken {
    /// 32 random bytes, base64url without padding, behind the kind's prefix.
    pub fn generate(kind: TokenKind) -> Self {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes);
        Self(format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Accepts a token presented by a client. Anything that is not shaped like
    /// one of ours is refused before it reaches storage, which keeps garbage
    /// (and very long strings) out of every query.
    pub fn parse(kind: TokenKind, presented: &str) -> Option<Self> {
        let body = presented.strip_prefix(kind.prefix())?;
        if body.len() != 43
            || !body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        Some(Self(presented.to_owned()))
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.as_bytes())
    }

    /// The plaintext. Call only to hand the token to its owner, once.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainToken(<redacted>)")
    }
}

/// SHA-256 of a token; what the database stores and looks up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, for keys that must be text (throttle counters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Constant-time comparison, for the rare place that compares in memory.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = PlainToken::generate(TokenKind::Session);
        let b = PlainToken::generate(TokenKind::Session);
        assert_ne!(a.expose_secret(), b.expose_secret());
        let parsed = PlainToken::parse(TokenKind::Session, a.expose_secret()).unwrap();
        assert!(parsed.hash().ct_eq(&a.hash()));
    }

    #[test]
    fn wrong_kind_or_shape_is_refused() {
        let a = PlainToken::generate(TokenKind::Session);
        assert!(PlainToken::parse(TokenKind::Admin, a.expose_secret()).is_none());
        assert!(PlainToken::parse(TokenKind::Session, "sgs_short").is_none());
        let mut long = a.expose_secret().to_owned();
        long.push('A');
        assert!(PlainToken::parse(TokenKind::Session, &long).is_none());
        let bad = format!("sgs_{}", "!".repeat(43));
        assert!(PlainToken::parse(TokenKind::Session, &bad).is_none());
    }

    #[test]
    fn codes_have_the_asked_length_and_only_digits() {
        for digits in [6u8, 7, 8] {
            for _ in 0..200 {
                let c = OneTimeCode::generate(digits);
                assert_eq!(c.expose_secret().len(), usize::from(digits));
                assert!(c.expose_secret().bytes().all(|b| b.is_ascii_digit()));
            }
        }
        // Out-of-range lengths are clamped, never shorter than 6.
        assert_eq!(OneTimeCode::generate(3).expose_secret().len(), 6);
        assert_eq!(OneTimeCode::generate(12).expose_secret().len(), 8);
    }

    #[test]
    fn codes_are_uniform_enough() {
        // 10 buckets on the first digit; with 20 000 draws each bucket
        // expects 2 000. A biased generator (e.g. modulo bias on a small
        // range) or a stuck digit would fall far outside 1 700..2 300.
        let mut buckets = [0u32; 10];
        for _ in 0..20_000 {
            let c = OneTimeCode::generate(6);
            buckets[usize::from(c.expose_secret().as_bytes()[0] - b'0')] += 1;
        }
        assert!(buckets.iter().all(|n| (1700..2300).contains(n)), "{buckets:?}");
    }

    #[test]
    fn rejection_sampling_stays_below_the_bound() {
        for bound in [1u64, 2, 3, 7, 10, 1_000_000, 100_000_000] {
            for _ in 0..100 {
                assert!(random_below(bound) < bound);
            }
        }
        assert_eq!(random_below(0), 0);
    }

    #[test]
    fn typed_codes_are_normalised_or_refused() {
        let c = OneTimeCode::parse(" 123 456 ", 6).unwrap();
        assert_eq!(c.expose_secret(), "123456");
        assert_eq!(OneTimeCode::parse("123-456", 6).unwrap().expose_secret(), "123456");
        assert!(OneTimeCode::parse("12345", 6).is_none());
        assert!(OneTimeCode::parse("1234567", 6).is_none());
        assert!(OneTimeCode::parse("12345a", 6).is_none());
        assert!(OneTimeCode::parse("١٢٣٤٥٦", 6).is_none(), "non-ASCII digits");
        assert!(OneTimeCode::parse(&"1".repeat(1000), 6).is_none());
    }

    #[test]
    fn a_code_hash_is_bound_to_its_flow() {
        let c = OneTimeCode::parse("123456", 6).unwrap();
        assert!(c.hash_for(b"flow-a").ct_eq(&c.hash_for(b"flow-a")));
        assert!(!c.hash_for(b"flow-a").ct_eq(&c.hash_for(b"flow-b")));
        let d = OneTimeCode::parse("123457", 6).unwrap();
        assert!(!c.hash_for(b"flow-a").ct_eq(&d.hash_for(b"flow-a")));
        assert!(!format!("{c:?}").contains("123456"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let a = PlainToken::generate(TokenKind::Admin);
        let shown = format!("{a:?}");
        assert!(!shown.contains(&a.expose_secret()[4..]));
    }
}
