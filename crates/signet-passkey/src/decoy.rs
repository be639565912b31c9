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
//! - **same shape:** one to four credentials (one for about half the
//!   identifiers, two for 30 %, three for 13 %, four for 7 %, roughly how
//!   many passkeys people keep), each with a length and transports taken
//!   from real authenticator families (16 bytes `hybrid,internal` like
//!   Google Password Manager or a UUID-keyed password manager, 20 like
//!   iCloud Keychain, 32 `internal` like Windows Hello, 32 `hybrid,internal`
//!   like other synced managers, 48 `usb` and 64 `nfc,usb` like security
//!   keys), picked by the HMAC;
//! - **unlinkable:** without the key, the ids say nothing about the
//!   identifier, and different identifiers give unrelated ids.
//!
//! Limits: an observer who already knows a real user's authenticators can
//! of course compare; an account with more than four passkeys, or with an
//! authenticator whose id length or transports are not among these shapes,
//! stands out; and timing is the caller's to equalise (look the user up,
//! and build the options, the same way for both paths).

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
const SHAPES: [(usize, &[&str]); 6] = [
    (16, &["hybrid", "internal"]),
    (20, &["hybrid", "internal"]),
    (32, &["internal"]),
    (32, &["hybrid", "internal"]),
    (48, &["usb"]),
    (64, &["nfc", "usb"]),
];

/// How many decoys an identifier gets, from one HMAC byte: out of 256,
/// 128 get one, 77 two, 33 three and 18 four.
fn decoy_count(byte: u8) -> u8 {
    match byte {
        0..=127 => 1,
        128..=204 => 2,
        205..=237 => 3,
        _ => 4,
    }
}

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
    let count = decoy_count(plan[0]);
    (0..count)
        .map(|i| {
            // `% 6` over a byte favours the first four shapes by 43/42: noise.
            let (len, transports) = SHAPES[usize::from(plan[1 + usize::from(i)]) % SHAPES.len()];
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
        let mut counts = [0usize; 5];
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..2000 {
            let d = decoy_allow_credentials(KEY, &format!("user{n}@example.com"));
            counts[d.len()] += 1;
            for c in &d {
                let shape = SHAPES
                    .iter()
                    .position(|(l, t)| *l == c.id.as_bytes().len() && *t == c.transports);
                shapes.insert(shape.expect("a known shape"));
            }
            let distinct: std::collections::BTreeSet<_> = d.iter().map(|c| c.id.clone()).collect();
            assert_eq!(distinct.len(), d.len(), "no id repeats within a list");
        }
        assert_eq!(counts[0], 0);
        // Expected out of 2000: 1000, 602, 258, 141.
        assert!((850..1150).contains(&counts[1]), "{counts:?}");
        assert!((480..720).contains(&counts[2]), "{counts:?}");
        assert!((180..340).contains(&counts[3]), "{counts:?}");
        assert!((80..210).contains(&counts[4]), "{counts:?}");
        assert_eq!(shapes.len(), SHAPES.len(), "every shape occurs");
    }
}
