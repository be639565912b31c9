//! Decoy credentials for identifiers that match no account.
//!
//! A login with an identifier answers with `allowCredentials`. If unknown
//! identifiers got an empty list, or a list that changed on every request,
//! anyone could test which emails have accounts. So an unknown identifier
//! gets credential ids derived from it with HMAC-SHA256 under a server
//! secret (the approach of webauthn-rs's `WebauthnFakeCredentialGenerator`):
//!
//! - **stable:** the same identifier gets the same ids on every request, on
//!   every node and after a restart, as a real user's would (so the key must
//!   be a persisted secret, not generated at start-up);
//! - **same shape:** one or, for about one identifier in four, two
//!   credentials, each with a length and transports taken from real
//!   authenticator families (16 bytes `hybrid,internal` like Google Password
//!   Manager, 20 like iCloud Keychain, 32 `internal` like Windows Hello, 64
//!   `nfc,usb` like a security key), picked by the HMAC;
//! - **unlinkable:** without the key, the ids say nothing about the
//!   identifier, and different identifiers give unrelated ids.
//!
//! Limits: an observer who already knows a real user's authenticators can
//! of course compare; and timing is the caller's to equalise (look the user
//! up, and build the options, the same way for both paths).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::credential::CredentialId;

/// One entry of `allowCredentials`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedCredential {
    pub id: CredentialId,
    pub transports: Vec<String>,
}

/// Shapes of real credentials: id length and `getTransports()` (sorted, as
/// browsers report them).
const SHAPES: [(usize, &[&str]); 4] = [
    (16, &["hybrid", "internal"]),
    (20, &["hybrid", "internal"]),
    (32, &["internal"]),
    (64, &["nfc", "usb"]),
];

fn prf(key: &[u8], identifier: &str, label: &[u8], counter: u8) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(b"signet-passkey decoy v1\0");
    mac.update(label);
    mac.update(&[0, counter, 0]);
    mac.update(identifier.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The fake `allowCredentials` for `identifier` (pass the normalised email,
/// so that case variants get the same answer).
pub fn decoy_allow_credentials(hmac_key: &[u8], identifier: &str) -> Vec<AllowedCredential> {
    let plan = prf(hmac_key, identifier, b"plan", 0);
    let count: u8 = if plan[0] & 0b11 == 0 { 2 } else { 1 };
    (0..count)
        .map(|i| {
            let (len, transports) = SHAPES[usize::from(plan[1 + usize::from(i)] % 4)];
            let mut id = Vec::with_capacity(len);
            let mut block = 0u8;
            while id.len() < len {
                let chunk = prf(hmac_key, identifier, b"id", i.wrapping_mul(16).wrapping_add(block));
                let take = (len - id.len()).min(chunk.len());
                id.extend_from_slice(&chunk[..take]);
                block = block.wrapping_add(1);
            }
            AllowedCredential {
                id: CredentialId::from_bytes(id),
                transports: transports.iter().map(|t| (*t).to_owned()).collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn decoys_are_stable_and_depend_on_key_and_identifier() {
        let a = decoy_allow_credentials(KEY, "nobody@example.com");
        assert_eq!(a, decoy_allow_credentials(KEY, "nobody@example.com"));
        assert_ne!(a, decoy_allow_credentials(KEY, "someone@example.com"));
        assert_ne!(a, decoy_allow_credentials(b"another key", "nobody@example.com"));
    }

    #[test]
    fn decoys_have_plausible_shapes() {
        let mut counts = [0usize; 3];
        let mut lengths = std::collections::BTreeSet::new();
        for n in 0..400 {
            let d = decoy_allow_credentials(KEY, &format!("user{n}@example.com"));
            counts[d.len()] += 1;
            for c in &d {
                lengths.insert(c.id.as_bytes().len());
                assert!(SHAPES
                    .iter()
                    .any(|(l, t)| *l == c.id.as_bytes().len() && *t == c.transports));
            }
            if d.len() == 2 {
                assert_ne!(d[0].id, d[1].id);
            }
        }
        assert_eq!(counts[0], 0);
        assert!(counts[2] > 50 && counts[2] < 150, "{counts:?}");
        assert_eq!(lengths.len(), SHAPES.len(), "every shape occurs");
    }
}
