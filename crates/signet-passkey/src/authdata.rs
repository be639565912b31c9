//! Our own reading of authenticator data (WebAuthn L3 §6.1) and of the
//! attestation object (§6.5).
//!
//! webauthn-rs verifies these structures, but it keeps the AAGUID only when
//! an attestation statement carries one, so with `"none"` attestation (what
//! we request, §5.4.7) the authenticator model would be lost. We read it
//! ourselves from the attested credential data (§6.5.1):
//!
//! ```text
//! rpIdHash(32) flags(1) signCount(4) [ aaguid(16) credentialIdLength(2, big-endian) credentialId(L) credentialPublicKey(COSE) ] [ extensions ]
//! ```
//!
//! The flags (§6.1, table "flags") are read here as well so that the checks
//! Signet adds on top of webauthn-rs (BE equality, device-bound policy, UV per
//! tier) work on the exact bytes that were signed.
//!
//! Everything here is total: any input, however short or hostile, gives a
//! value or an [`PasskeyError::InvalidCredential`], never a panic.

use serde_cbor_2::Value;
use uuid::Uuid;

use crate::error::PasskeyError;

/// Flag bits of authenticatorData, WebAuthn L3 §6.1.
pub mod flag {
    /// User Present.
    pub const UP: u8 = 0x01;
    /// User Verified.
    pub const UV: u8 = 0x04;
    /// Backup Eligibility (§6.1.3): the credential may be synced. Fixed for its lifetime.
    pub const BE: u8 = 0x08;
    /// Backup State: the credential is currently backed up / synced.
    pub const BS: u8 = 0x10;
    /// Attested credential data included.
    pub const AT: u8 = 0x40;
    /// Extension data included.
    pub const ED: u8 = 0x80;
}

/// Longest credential id a relying party accepts, L3 §7.1 step 25 ("≤ 1023 bytes").
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;

/// The fixed part of authenticatorData, plus the attested credential data
/// when the AT flag is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatorData {
    pub rp_id_hash: [u8; 32],
    pub flags: u8,
    pub sign_count: u32,
    pub attested: Option<AttestedCredential>,
}

/// Attested credential data (§6.5.1), without the public key, which
/// webauthn-rs decodes and verifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestedCredential {
    pub aaguid: Uuid,
    pub credential_id: Vec<u8>,
}

impl AuthenticatorData {
    pub fn parse(bytes: &[u8]) -> Result<Self, PasskeyError> {
        let short = || PasskeyError::malformed("authenticatorData is too short");
        let rp_id_hash: [u8; 32] = bytes.get(..32).and_then(|s| s.try_into().ok()).ok_or_else(short)?;
        let flags = *bytes.get(32).ok_or_else(short)?;
        let sign_count = bytes
            .get(33..37)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(short)?;
        let attested = if flags & flag::AT != 0 {
            let aaguid = bytes
                .get(37..53)
                .and_then(|s| <[u8; 16]>::try_from(s).ok())
                .map(Uuid::from_bytes)
                .ok_or_else(short)?;
            let len = bytes
                .get(53..55)
                .and_then(|s| <[u8; 2]>::try_from(s).ok())
                .map(|b| usize::from(u16::from_be_bytes(b)))
                .ok_or_else(short)?;
            if len == 0 || len > MAX_CREDENTIAL_ID_LEN {
                return Err(PasskeyError::malformed("credential id must be 1 to 1023 bytes long"));
            }
            let credential_id = bytes.get(55..55 + len).ok_or_else(short)?.to_vec();
            // A COSE key must follow; webauthn-rs parses it.
            if bytes.len() <= 55 + len {
                return Err(PasskeyError::malformed("attested credential data has no public key"));
            }
            Some(AttestedCredential { aaguid, credential_id })
        } else {
            if flags & flag::ED == 0 && bytes.len() != 37 {
                return Err(PasskeyError::malformed("authenticatorData has trailing bytes"));
            }
            None
        };
        Ok(AuthenticatorData {
            rp_id_hash,
            flags,
            sign_count,
            attested,
        })
    }

    pub fn user_present(&self) -> bool {
        self.flags & flag::UP != 0
    }
    pub fn user_verified(&self) -> bool {
        self.flags & flag::UV != 0
    }
    pub fn backup_eligible(&self) -> bool {
        self.flags & flag::BE != 0
    }
    pub fn backup_state(&self) -> bool {
        self.flags & flag::BS != 0
    }
}

/// WebAuthn L3 §7.1 step 10 / §7.2 step 14: Signet's pages are never meant
/// to run a ceremony inside a cross-origin iframe, so `crossOrigin` must be
/// absent or false and `topOrigin` absent. (webauthn-rs-core checks
/// `crossOrigin` at registration only; this covers both ceremonies.)
pub fn check_not_framed(client_data_json: &[u8]) -> Result<(), PasskeyError> {
    let v: serde_json::Value =
        serde_json::from_slice(client_data_json).map_err(|_| PasskeyError::malformed("clientDataJSON is not JSON"))?;
    let cross_origin = match v.get("crossOrigin") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => return Err(PasskeyError::malformed("clientDataJSON.crossOrigin is not a boolean")),
    };
    if cross_origin || v.get("topOrigin").is_some_and(|t| !t.is_null()) {
        return Err(PasskeyError::OriginMismatch);
    }
    Ok(())
}

/// The `authData` byte string of a CBOR attestation object (§6.5, figure
/// "attestation object"): a map with text keys `fmt`, `attStmt`, `authData`.
pub fn auth_data_of_attestation_object(attestation_object: &[u8]) -> Result<Vec<u8>, PasskeyError> {
    let value: Value = serde_cbor_2::from_slice(attestation_object)
        .map_err(|_| PasskeyError::malformed("attestationObject is not valid CBOR"))?;
    let Value::Map(map) = value else {
        return Err(PasskeyError::malformed("attestationObject is not a CBOR map"));
    };
    match map.get(&Value::Text("authData".into())) {
        Some(Value::Bytes(b)) => Ok(b.clone()),
        _ => Err(PasskeyError::malformed("attestationObject has no authData byte string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn attested(aaguid: [u8; 16], cred_id: &[u8], flags: u8) -> Vec<u8> {
        let mut v = vec![7u8; 32];
        v.push(flags | flag::AT);
        v.extend_from_slice(&5u32.to_be_bytes());
        v.extend_from_slice(&aaguid);
        v.extend_from_slice(&u16::try_from(cred_id.len()).unwrap().to_be_bytes());
        v.extend_from_slice(cred_id);
        v.extend_from_slice(&[0xa0]); // an (empty) CBOR map stands in for the key
        v
    }

    #[test]
    fn reads_aaguid_credential_id_flags_and_counter() {
        let aaguid = *Uuid::parse_str("bada5566-a7aa-401f-bd96-45619a55120d")
            .unwrap()
            .as_bytes();
        let bytes = attested(aaguid, b"credential-id-16", flag::UP | flag::UV | flag::BE | flag::BS);
        let ad = AuthenticatorData::parse(&bytes).unwrap();
        assert_eq!(ad.sign_count, 5);
        assert!(ad.user_present() && ad.user_verified() && ad.backup_eligible() && ad.backup_state());
        let at = ad.attested.unwrap();
        assert_eq!(at.aaguid.to_string(), "bada5566-a7aa-401f-bd96-45619a55120d");
        assert_eq!(at.credential_id, b"credential-id-16");
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = attested([1; 16], &[9; 40], flag::UP);
        for n in 0..bytes.len() {
            assert!(AuthenticatorData::parse(&bytes[..n]).is_err(), "prefix {n}");
        }
        // A declared credential id length beyond the data.
        let mut lying = bytes.clone();
        lying[53] = 0xff;
        assert!(AuthenticatorData::parse(&lying).is_err());
        // An assertion's authenticatorData is exactly 37 bytes without ED.
        let mut assertion = vec![0u8; 37];
        assertion[32] = flag::UP;
        assert!(AuthenticatorData::parse(&assertion).is_ok());
        assertion.push(0);
        assert!(AuthenticatorData::parse(&assertion).is_err());
    }

    #[test]
    fn zero_length_and_overlong_credential_ids_are_refused() {
        assert!(AuthenticatorData::parse(&attested([0; 16], &[], flag::UP)).is_err());
        assert!(AuthenticatorData::parse(&attested([0; 16], &[1; 1024], flag::UP)).is_err());
        assert!(AuthenticatorData::parse(&attested([0; 16], &[1; 1023], flag::UP)).is_ok());
    }

    #[test]
    fn ceremonies_in_cross_origin_frames_are_refused() {
        let ok = br#"{"type":"webauthn.create","challenge":"AA","origin":"https://a.example"}"#;
        assert!(check_not_framed(ok).is_ok());
        let ok = br#"{"type":"webauthn.get","crossOrigin":false,"topOrigin":null}"#;
        assert!(check_not_framed(ok).is_ok());
        let framed = br#"{"type":"webauthn.create","crossOrigin":true}"#;
        assert_eq!(check_not_framed(framed), Err(PasskeyError::OriginMismatch));
        let top = br#"{"type":"webauthn.create","topOrigin":"https://evil.example"}"#;
        assert_eq!(check_not_framed(top), Err(PasskeyError::OriginMismatch));
        assert!(check_not_framed(br#"{"crossOrigin":"yes"}"#).is_err());
        assert!(check_not_framed(b"\xff").is_err());
    }

    #[test]
    fn auth_data_is_taken_from_the_attestation_object() {
        let mut m = BTreeMap::new();
        m.insert(Value::Text("fmt".into()), Value::Text("none".into()));
        m.insert(Value::Text("attStmt".into()), Value::Map(BTreeMap::new()));
        m.insert(Value::Text("authData".into()), Value::Bytes(vec![1, 2, 3]));
        let cbor = serde_cbor_2::to_vec(&Value::Map(m)).unwrap();
        assert_eq!(auth_data_of_attestation_object(&cbor).unwrap(), vec![1, 2, 3]);
        assert!(auth_data_of_attestation_object(b"not cbor at all").is_err());
        assert!(auth_data_of_attestation_object(&serde_cbor_2::to_vec(&Value::Integer(3)).unwrap()).is_err());
        assert!(auth_data_of_attestation_object(&[]).is_err());
        // Deeply nested CBOR is refused by the decoder's recursion limit, not a stack overflow.
        let mut deep = vec![0x81u8; 10_000];
        deep.push(0x00);
        assert!(auth_data_of_attestation_object(&deep).is_err());
    }
}
