//! Sealed secrets at rest: a key ring that encrypts values Signet must be
//! able to read back (the passkey decoy key today, TOTP seeds and OIDC
//! signing keys next).
//!
//! # Why
//!
//! DESIGN.md's security invariants say "TOTP seeds and signing keys are
//! encrypted at rest". Tokens and codes can be stored as hashes, but these
//! secrets must be used, not just compared, so they are sealed with an AEAD
//! under a key that never enters the database: a stolen backup or a read-only
//! SQL injection then yields ciphertext only. ADR 0009 records the choices.
//!
//! # Algorithm
//!
//! XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha, built on RFC 8439) with a
//! 256-bit key and a 192-bit nonce drawn from the OS CSPRNG for every value.
//! A 192-bit random nonce can be drawn for the life of a key without a
//! realistic chance of repeating (the 96-bit nonce of AES-GCM or
//! ChaCha20-Poly1305 would cap a key at about 2^32 random nonces, NIST SP
//! 800-38D §8.3), so no counter has to be coordinated between nodes.
//!
//! # Format (version 1)
//!
//! ```text
//! +---------+-------------+-------------+-------------------------------+
//! | version | key id      | nonce       | ciphertext ‖ Poly1305 tag     |
//! | 1 byte  | 8 bytes     | 24 bytes    | len(plaintext) + 16 bytes     |
//! +---------+-------------+-------------+-------------------------------+
//! ```
//!
//! - `version` is [`FORMAT_VERSION`]. Another value is refused, never guessed.
//! - `key id` names the ring key that sealed the value: the first 8 bytes of
//!   SHA-256 over a fixed label and the key ([`SealingKey::id`]). It is
//!   derived, so operators configure keys only, and it reveals nothing of the
//!   key. Opening picks the key by id, which is what makes rotation work: the
//!   ring holds the current key (which seals) and previous keys (which still
//!   open), and `signet keys rotate-sealing` re-seals old values.
//! - The associated data is the version byte, the key id and the value's
//!   [`Binding`], e.g. `server_secret:passkey_decoy_hmac_v1`. A sealed value
//!   copied into another row or column therefore fails to open, as does a
//!   value whose header was edited.
//!
//! Opening fails closed: a malformed value, an unknown key id, a wrong
//! binding and any flipped bit are all errors, and no partial plaintext is
//! ever returned.
//!
//! This module does no I/O: where keys come from (configuration or a key
//! file) is the binary's business, where values live is the store's.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::secret::fill_random;

/// The first byte of every sealed value.
pub const FORMAT_VERSION: u8 = 1;
/// Length of a sealing key, in bytes (256 bits).
pub const KEY_LEN: usize = 32;
/// Length of a key id, in bytes.
pub const KEY_ID_LEN: usize = 8;
/// Length of an XChaCha20 nonce, in bytes.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag, in bytes.
pub const TAG_LEN: usize = 16;
/// Version, key id and nonce.
pub const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// The shortest sealed value (an empty plaintext). Anything shorter is not
/// a sealed value, which is how a legacy plaintext secret of 32 bytes is
/// told apart from a sealed one.
pub const MIN_SEALED_LEN: usize = HEADER_LEN + TAG_LEN;

/// Domain separation for [`SealingKey::id`].
const KEY_ID_LABEL: &[u8] = b"signet sealing key id v1\0";

/// Why a value could not be sealed or opened, or a key not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Too short, or otherwise not shaped like a sealed value.
    #[error("not a sealed value ({len} bytes, at least {MIN_SEALED_LEN} expected)")]
    Malformed { len: usize },
    #[error("sealed value has unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// Sealed under a key the ring does not hold (a previous key removed too
    /// early, or a key from another deployment).
    #[error("sealed under key {0}, which is not in the key ring (is it missing from [sealing] previous_keys?)")]
    UnknownKey(KeyId),
    /// The tag did not verify: the value was altered, or it belongs to
    /// another binding (row or column).
    #[error("sealed value failed authentication (altered, or moved from another row or column)")]
    Forged,
    /// The plaintext is too long to seal.
    #[error("value too long to seal")]
    TooLong,
    /// A key that is not base64 of 32 bytes.
    #[error("{0}")]
    BadKey(String),
}

/// Names a ring key inside sealed values. Shown as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    pub fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A 256-bit sealing key. `Debug` shows only its id, the bytes are wiped
/// when it is dropped, and equality is constant-time.
#[derive(Clone)]
pub struct SealingKey {
    id: KeyId,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl SealingKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let digest = Sha256::new()
            .chain_update(KEY_ID_LABEL)
            .chain_update(bytes.as_slice())
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self { id: KeyId(id), bytes }
    }

    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(bytes.as_mut_slice());
        Self::from_bytes(*bytes)
    }

    /// Reads standard base64 (with or without `=` padding) of exactly 32
    /// bytes, as `openssl rand -base64 32` prints. The error never repeats
    /// the input.
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let text = text.trim().trim_end_matches('=');
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(text)
                .map_err(|_| {
                    SealError::BadKey("is not base64 (generate a key with: openssl rand -base64 32)".into())
                })?,
        );
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            SealError::BadKey(format!(
                "must be base64 of exactly {KEY_LEN} bytes, got {} bytes (generate a key with: openssl rand -base64 32)",
                decoded.len()
            ))
        })?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key as standard base64, to write it to a key file. The one place
    /// key material leaves the type.
    pub fn expose_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes.as_slice()))
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    fn cipher(&self) -> Result<XChaCha20Poly1305, SealError> {
        XChaCha20Poly1305::new_from_slice(self.bytes.as_slice())
            .map_err(|_| SealError::BadKey("wrong key length".into()))
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealingKey({}, <redacted>)", self.id)
    }
}

impl PartialEq for SealingKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.as_slice().ct_eq(other.bytes.as_slice()).into()
    }
}

impl Eq for SealingKey {}

/// What a sealed value is bound to: its purpose and location. It becomes
/// associated data, so a value opens only where it was sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding(String);

impl Binding {
    /// `kind:row`, e.g. `totp_seed:<credential id>`.
    pub fn new(kind: &str, row: &str) -> Self {
        Self(format!("{kind}:{row}"))
    }

    /// A row of `server_secrets`: `server_secret:<name>`.
    pub fn server_secret(name: &str) -> Self {
        Self::new("server_secret", name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Plaintext that came out of a sealed value. `Debug` is redacted and the
/// bytes are wiped on drop.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The plaintext. Call only where the secret is used.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes({} bytes, <redacted>)", self.0.len())
    }
}

/// A value opened by [`KeyRing::open`].
#[derive(Debug)]
pub struct Opened {
    pub plaintext: SecretBytes,
    /// The key that had sealed it.
    pub key_id: KeyId,
}

/// The header of a sealed value, without opening it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub key_id: KeyId,
}

impl Header {
    /// Parses the header of `sealed`, checking only its shape and version.
    pub fn parse(sealed: &[u8]) -> Result<Self, SealError> {
        if sealed.len() < MIN_SEALED_LEN {
            return Err(SealError::Malformed { len: sealed.len() });
        }
        let version = sealed[0];
        if version != FORMAT_VERSION {
            return Err(SealError::UnsupportedVersion(version));
        }
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&sealed[1..1 + KEY_ID_LEN]);
        Ok(Self {
            version,
            key_id: KeyId(id),
        })
    }
}

/// The current key, which seals, and previous keys, which still open.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: SealingKey,
    previous: Vec<SealingKey>,
}

impl KeyRing {
    /// A ring sealing with `current`. A previous key equal to the current
    /// one, or listed twice, is kept once.
    pub fn new(current: SealingKey, previous: impl IntoIterator<Item = SealingKey>) -> Self {
        let mut ring = Self {
            current,
            previous: Vec::new(),
        };
        for key in previous {
            if ring.key(key.id()).is_none() {
                ring.previous.push(key);
            }
        }
        ring
    }

    pub fn current(&self) -> &SealingKey {
        &self.current
    }

    pub fn current_id(&self) -> KeyId {
        self.current.id()
    }

    pub fn previous(&self) -> &[SealingKey] {
        &self.previous
    }

    /// The ring key with this id.
    pub fn key(&self, id: KeyId) -> Option<&SealingKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == id)
    }

    /// Seals `plaintext` for `binding` under the current key, with a fresh
    /// random nonce.
    pub fn seal(&self, plaintext: &[u8], binding: &Binding) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        self.seal_with_nonce(plaintext, binding, nonce)
    }

    fn seal_with_nonce(
        &self,
        plaintext: &[u8],
        binding: &Binding,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>, SealError> {
        let key = &self.current;
        let mut out = Vec::with_capacity(MIN_SEALED_LEN + plaintext.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(key.id().as_bytes());
        out.extend_from_slice(&nonce);
        let aad = associated_data(FORMAT_VERSION, key.id(), binding);
        let ciphertext = key
            .cipher()?
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::TooLong)?;
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a value sealed for `binding` by any key of the ring.
    pub fn open(&self, sealed: &[u8], binding: &Binding) -> Result<Opened, SealError> {
        let header = Header::parse(sealed)?;
        let key = self.key(header.key_id).ok_or(SealError::UnknownKey(header.key_id))?;
        let nonce = XNonce::try_from(&sealed[1 + KEY_ID_LEN..HEADER_LEN])
            .map_err(|_| SealError::Malformed { len: sealed.len() })?;
        let aad = associated_data(header.version, header.key_id, binding);
        let plaintext = key
            .cipher()?
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Forged)?;
        Ok(Opened {
            plaintext: SecretBytes::new(plaintext),
            key_id: header.key_id,
        })
    }

    /// The value sealed again under the current key, or `None` when it
    /// already is. It must open first, so a forged value is an error.
    pub fn reseal(&self, sealed: &[u8], binding: &Binding) -> Result<Option<Vec<u8>>, SealError> {
        let opened = self.open(sealed, binding)?;
        if opened.key_id == self.current_id() {
            return Ok(None);
        }
        self.seal(opened.plaintext.expose_secret(), binding).map(Some)
    }
}

/// Version, key id and binding: everything that must match for a value to
/// open, besides the key and nonce.
fn associated_data(version: u8, key_id: KeyId, binding: &Binding) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + KEY_ID_LEN + binding.as_str().len());
    aad.push(version);
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(binding.as_str().as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Binding {
        Binding::server_secret("passkey_decoy_hmac_v1")
    }

    fn ring() -> KeyRing {
        KeyRing::new(SealingKey::generate(), [])
    }

    #[test]
    fn round_trip() {
        let ring = ring();
        for plaintext in [&b""[..], b"x", &[7u8; 32], &[0u8; 4096]] {
            let sealed = ring.seal(plaintext, &binding()).unwrap();
            assert_eq!(sealed.len(), MIN_SEALED_LEN + plaintext.len());
            assert_eq!(sealed[0], FORMAT_VERSION);
            let opened = ring.open(&sealed, &binding()).unwrap();
            assert_eq!(opened.plaintext.expose_secret(), plaintext);
            assert_eq!(opened.key_id, ring.current_id());
        }
    }

    #[test]
    fn the_ciphertext_does_not_contain_the_plaintext_and_nonces_differ() {
        let ring = ring();
        let secret = [0x5au8; 32];
        let a = ring.seal(&secret, &binding()).unwrap();
        let b = ring.seal(&secret, &binding()).unwrap();
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(!a.windows(8).any(|w| w == &secret[..8]));
    }

    #[test]
    fn a_value_sealed_under_an_unknown_key_id_does_not_open() {
        let sealed = ring().seal(b"seed", &binding()).unwrap();
        let other = ring();
        let err = other.open(&sealed, &binding()).unwrap_err();
        assert!(matches!(err, SealError::UnknownKey(_)), "{err:?}");

        // A header naming another ring key fails authentication.
        let k1 = SealingKey::generate();
        let k2 = SealingKey::generate();
        let ring = KeyRing::new(k1, [k2.clone()]);
        let mut sealed = ring.seal(b"seed", &binding()).unwrap();
        sealed[1..1 + KEY_ID_LEN].copy_from_slice(k2.id().as_bytes());
        assert_eq!(ring.open(&sealed, &binding()).unwrap_err(), SealError::Forged);
    }

    #[test]
    fn a_tampered_byte_anywhere_fails() {
        let ring = ring();
        let sealed = ring.seal(&[1u8; 32], &binding()).unwrap();
        for i in 0..sealed.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = sealed.clone();
                t[i] ^= bit;
                assert!(ring.open(&t, &binding()).is_err(), "byte {i} bit {bit:#x}");
            }
        }
        // Truncated or extended values fail too.
        assert!(ring.open(&sealed[..sealed.len() - 1], &binding()).is_err());
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(ring.open(&longer, &binding()).is_err());
        assert!(matches!(
            ring.open(&sealed[..MIN_SEALED_LEN - 1], &binding()),
            Err(SealError::Malformed { .. })
        ));
        let mut v2 = sealed.clone();
        v2[0] = 2;
        assert_eq!(
            ring.open(&v2, &binding()).unwrap_err(),
            SealError::UnsupportedVersion(2)
        );
    }

    #[test]
    fn a_value_moved_to_another_row_or_column_does_not_open() {
        let ring = ring();
        let sealed = ring.seal(b"seed", &binding()).unwrap();
        for other in [
            Binding::server_secret("another_secret"),
            Binding::new("totp_seed", "passkey_decoy_hmac_v1"),
            Binding::new("server_secret", ""),
        ] {
            assert_eq!(ring.open(&sealed, &other).unwrap_err(), SealError::Forged, "{other:?}");
        }
    }

    #[test]
    fn an_old_key_still_opens_after_rotation_and_reseal_moves_to_the_new_key() {
        let old = SealingKey::generate();
        let before = KeyRing::new(old.clone(), []);
        let sealed = before.seal(b"seed", &binding()).unwrap();

        let new = SealingKey::generate();
        let after = KeyRing::new(new.clone(), [old.clone()]);
        assert_eq!(after.open(&sealed, &binding()).unwrap().key_id, old.id());

        let resealed = after.reseal(&sealed, &binding()).unwrap().unwrap();
        assert_eq!(Header::parse(&resealed).unwrap().key_id, new.id());
        assert_eq!(after.reseal(&resealed, &binding()).unwrap(), None, "already current");
        // Once re-sealed, the new key alone opens it; the old one cannot.
        let only_new = KeyRing::new(new, []);
        assert_eq!(
            only_new.open(&resealed, &binding()).unwrap().plaintext.expose_secret(),
            b"seed"
        );
        assert!(matches!(
            before.open(&resealed, &binding()),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn keys_parse_from_base64_and_never_show_in_debug() {
        let key = SealingKey::generate();
        let text = key.expose_base64();
        let parsed = SealingKey::from_base64(&text).unwrap();
        assert_eq!(parsed, key);
        assert_eq!(parsed.id(), key.id());
        assert_eq!(SealingKey::from_base64(text.trim_end_matches('=')).unwrap(), key);
        let shown = format!("{key:?} {:?}", KeyRing::new(key.clone(), []));
        assert!(
            !shown.contains(text.as_str()) && !shown.contains(&text[..12]),
            "{shown}"
        );
        assert!(shown.contains(&key.id().to_string()));

        for bad in ["", "not base64!", "c2hvcnQ=", &STANDARD.encode([0u8; 33])] {
            assert!(
                matches!(SealingKey::from_base64(bad), Err(SealError::BadKey(_))),
                "{bad}"
            );
        }
        let secret = SecretBytes::new(b"hunter2".to_vec());
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn key_ids_are_stable_and_distinct() {
        let a = SealingKey::from_bytes([1u8; KEY_LEN]);
        assert_eq!(a.id(), SealingKey::from_bytes([1u8; KEY_LEN]).id());
        assert_ne!(a.id(), SealingKey::from_bytes([2u8; KEY_LEN]).id());
        let ring = KeyRing::new(a.clone(), [a.clone(), SealingKey::from_bytes([2u8; KEY_LEN]), a]);
        assert_eq!(ring.previous().len(), 1, "duplicates are kept once");
    }

    #[test]
    fn a_known_nonce_gives_a_stable_value() {
        // Pins the format: header layout and where the tag sits.
        let ring = KeyRing::new(SealingKey::from_bytes([9u8; KEY_LEN]), []);
        let a = ring.seal_with_nonce(b"abc", &binding(), [3u8; NONCE_LEN]).unwrap();
        let b = ring.seal_with_nonce(b"abc", &binding(), [3u8; NONCE_LEN]).unwrap();
        assert_eq!(a, b);
        assert_eq!(&a[1 + KEY_ID_LEN..HEADER_LEN], &[3u8; NONCE_LEN]);
        assert_eq!(a.len(), HEADER_LEN + 3 + TAG_LEN);
    }
}
