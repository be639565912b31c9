//! What the store keeps about a passkey, and the uniqueness rule it enforces.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use signet_core::user::UserId;
use uuid::Uuid;
use webauthn_rs_core::proto::{AuthenticatorTransport, Credential};

use crate::error::PasskeyError;

/// A WebAuthn credential id (L3 §4 "Credential ID"): 1 to 1023 opaque bytes,
/// chosen by the authenticator. Shown and stored as base64url without padding.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialId(Vec<u8>);

impl CredentialId {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// base64url without padding, as in WebAuthn JSON.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }

    pub fn from_base64url(s: &str) -> Result<Self, PasskeyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| PasskeyError::malformed("credential id is not base64url"))?;
        if bytes.is_empty() || bytes.len() > crate::authdata::MAX_CREDENTIAL_ID_LEN {
            return Err(PasskeyError::malformed("credential id must be 1 to 1023 bytes long"));
        }
        Ok(Self(bytes))
    }
}

impl std::fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CredentialId({})", self.to_base64url())
    }
}

impl std::fmt::Display for CredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl Serialize for CredentialId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64url())
    }
}

impl<'de> Deserialize<'de> for CredentialId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CredentialId::from_base64url(&s).map_err(serde::de::Error::custom)
    }
}

/// The webauthn-rs credential record (public key, algorithm, registration
/// details) as JSON text, for a TEXT column. Opaque to everything but this
/// crate. The mutable parts (counter, BS) live in their own columns, which
/// are the truth: the record's copies are overwritten from them before every
/// verification.
#[derive(Clone, PartialEq, Eq)]
pub struct SerializedPasskey(String);

impl SerializedPasskey {
    pub(crate) fn from_credential(cred: &Credential) -> Result<Self, PasskeyError> {
        serde_json::to_string(cred)
            .map(Self)
            .map_err(|_| PasskeyError::malformed("credential could not be serialised"))
    }

    /// Wraps a value read back from storage.
    pub fn from_stored(json: String) -> Self {
        Self(json)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn credential(&self) -> Result<Credential, PasskeyError> {
        serde_json::from_str(&self.0).map_err(|_| PasskeyError::CeremonyInvalid)
    }
}

impl std::fmt::Debug for SerializedPasskey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SerializedPasskey({} bytes)", self.0.len())
    }
}

/// What a successful registration asks the store to insert.
#[derive(Clone, Debug)]
pub struct NewPasskey {
    pub user_id: UserId,
    pub credential_id: CredentialId,
    pub passkey: SerializedPasskey,
    /// Signature counter at registration (0 for authenticators without one).
    pub counter: u32,
    /// BE: the credential may be synced between devices. Fixed for its lifetime.
    pub backup_eligible: bool,
    /// BS: the credential is currently backed up / synced.
    pub backup_state: bool,
    /// Whether the user was verified (PIN, biometric) at registration.
    pub user_verified: bool,
    /// Read from the attested credential data by us; all zeros when the
    /// authenticator does not disclose its model.
    pub aaguid: Uuid,
    /// From the AAGUID table, for a default credential name.
    pub authenticator_name: Option<&'static str>,
    /// `getTransports()` as reported by the browser: hints for allowCredentials.
    pub transports: Vec<String>,
    /// The `credProps.rk` client extension output, when the browser reported
    /// it: whether a discoverable credential was created. Unsigned, a hint only.
    pub discoverable: Option<bool>,
}

/// A registered passkey as the store gives it back, with the columns that
/// verification needs.
#[derive(Clone, Debug)]
pub struct StoredPasskey {
    /// The store's row id (what `/api/v1/credentials` shows and what a
    /// session's `credential_id` records).
    pub id: Uuid,
    pub user_id: UserId,
    pub credential_id: CredentialId,
    pub passkey: SerializedPasskey,
    pub counter: u32,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub aaguid: Uuid,
    pub transports: Vec<String>,
}

pub(crate) fn transports_to_strings(t: Option<&[AuthenticatorTransport]>) -> Vec<String> {
    t.unwrap_or_default()
        .iter()
        .filter(|t| !matches!(t, AuthenticatorTransport::Unknown))
        .map(|t| t.as_ref().to_owned())
        .collect()
}

pub(crate) fn transports_from_strings(t: &[String]) -> Option<Vec<AuthenticatorTransport>> {
    let v: Vec<AuthenticatorTransport> = t.iter().filter_map(|s| s.parse().ok()).collect();
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_ids_round_trip_as_unpadded_base64url() {
        let id = CredentialId::from_bytes(vec![0xfb, 0xff, 0x01]);
        assert_eq!(id.to_base64url(), "-_8B");
        assert_eq!(CredentialId::from_base64url("-_8B").unwrap(), id);
        assert!(CredentialId::from_base64url("+/8B").is_err(), "standard alphabet");
        assert!(CredentialId::from_base64url("").is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"-_8B\"");
        assert_eq!(serde_json::from_str::<CredentialId>(&json).unwrap(), id);
    }

    #[test]
    fn transports_keep_only_known_values() {
        let t = transports_from_strings(&["usb".into(), "carrier-pigeon".into(), "hybrid".into()]).unwrap();
        assert_eq!(transports_to_strings(Some(&t)), vec!["usb", "hybrid"]);
        assert!(transports_from_strings(&[]).is_none());
    }
}
