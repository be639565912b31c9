//! Authenticator names by AAGUID, from a small table shipped as data
//! (`data/aaguids.json`, compiled in with `include_str!`).
//!
//! The AAGUID (WebAuthn L3 §6.5.1) identifies an authenticator *model*. With
//! `"none"` attestation it is the authenticator's own claim, not verified by
//! a certificate chain, so the name is for people ("iCloud Keychain", "YubiKey
//! 5 Series") in the credential list, and `allowed_aaguids` is a policy about
//! declared models. The all-zero AAGUID means "not disclosed".

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;
use uuid::Uuid;

const TABLE_JSON: &str = include_str!("../data/aaguids.json");

#[derive(Deserialize)]
struct Table {
    authenticators: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    aaguid: Uuid,
    name: String,
}

static TABLE: LazyLock<HashMap<Uuid, String>> = LazyLock::new(|| {
    // The file is compiled in and covered by a test, so a parse failure is a
    // build-time mistake; it degrades to "no names" rather than a panic.
    serde_json::from_str::<Table>(TABLE_JSON)
        .map(|t| t.authenticators.into_iter().map(|e| (e.aaguid, e.name)).collect())
        .unwrap_or_default()
});

/// The human name of an authenticator model, if the table knows it.
pub fn authenticator_name(aaguid: &Uuid) -> Option<&'static str> {
    TABLE.get(aaguid).map(String::as_str)
}

/// How many models the table knows.
pub fn known_authenticators() -> usize {
    TABLE.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_loads_and_names_well_known_authenticators() {
        assert!(serde_json::from_str::<Table>(TABLE_JSON).is_ok());
        assert!(known_authenticators() >= 12);
        let name = |s: &str| authenticator_name(&Uuid::parse_str(s).unwrap());
        assert_eq!(
            name("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4"),
            Some("Google Password Manager")
        );
        assert_eq!(name("fbfc3007-154e-4ecc-8c0b-6e020557d7bd"), Some("iCloud Keychain"));
        assert_eq!(name("08987058-cadc-4b81-b6e1-30de50dcbe96"), Some("Windows Hello"));
        assert_eq!(name("bada5566-a7aa-401f-bd96-45619a55120d"), Some("1Password"));
        assert_eq!(name("cb69481e-8ff7-4039-93ec-0a2729a154a8"), Some("YubiKey 5 Series"));
        assert_eq!(name("00000000-0000-0000-0000-000000000000"), None);
    }

    #[test]
    fn the_table_has_no_duplicate_aaguids() {
        let t: Table = serde_json::from_str(TABLE_JSON).unwrap();
        assert_eq!(t.authenticators.len(), known_authenticators());
    }
}
