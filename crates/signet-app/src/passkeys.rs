//! What passkey login and enrollment share: the relying party, the decoy
//! key, the store row's conversion, and the tier's passkey rules. The
//! method itself ([`crate::methods::PasskeyMethod`]) holds the login step,
//! the registration ceremony and the credential kind.
//!
//! **Binding assurance**, the record and the notices of a new passkey are
//! the rules every credential kind shares ([`crate::credentials`]): once the
//! account holds an aal2 authenticator, binding another needs a fresh aal2
//! session, so an invitation's enrollment session (aal1) can add only the
//! account's *first* passkey.

use std::sync::Arc;

use signet_core::clock::Timestamp;
use signet_core::credential::Passkey;
use signet_core::policy::PasskeyPolicy;
use signet_core::sealing::KeyRing;
use signet_core::store::{CredentialStore, SealedSecretStore};
use signet_core::user::User;
use signet_core::{Error, Result};
use signet_passkey::{CredentialId, RelyingParty, SerializedPasskey, StoredPasskey};

use crate::App;

/// The name under which the decoy HMAC key is stored ([`CredentialStore::server_secret`]).
///
/// [`CredentialStore::server_secret`]: signet_core::store::CredentialStore::server_secret
pub const DECOY_KEY: &str = "passkey_decoy_hmac_v1";

/// The relying party and the decoy key, shared by enrollment and login.
#[derive(Clone)]
pub struct Passkeys {
    pub rp: RelyingParty,
    decoy_key: Arc<Vec<u8>>,
}

impl Passkeys {
    pub fn new(rp: RelyingParty, decoy_key: Vec<u8>) -> Self {
        Self {
            rp,
            decoy_key: Arc::new(decoy_key),
        }
    }

    /// The HMAC key for decoy credential ids: the same on every node, so an
    /// unknown identifier gets the same decoys wherever it asks.
    pub fn decoy_key(&self) -> &[u8] {
        &self.decoy_key
    }
}

/// Length of the decoy HMAC key, in bytes.
pub const DECOY_KEY_LEN: usize = 32;

/// Loads the decoy key, creating it on first start (whichever node writes
/// first wins; the others read that value). It is stored sealed by `ring`;
/// a plaintext key left by an earlier version is sealed in place.
pub async fn load_decoy_key<S>(store: &S, ring: &KeyRing, now: Timestamp) -> Result<Vec<u8>>
where
    S: CredentialStore + SealedSecretStore + ?Sized,
{
    let key = crate::sealing::server_secret(store, ring, DECOY_KEY, DECOY_KEY_LEN, now).await?;
    Ok(key.expose_secret().to_vec())
}

/// The store's row as the ceremony crate wants it.
pub fn to_stored(p: &Passkey) -> Result<StoredPasskey> {
    Ok(StoredPasskey {
        id: p.id,
        user_id: p.user_id,
        credential_id: CredentialId::from_base64url(&p.credential_id)
            .map_err(|_| Error::internal_msg(format!("stored passkey {} has a malformed credential id", p.id)))?,
        passkey: SerializedPasskey::from_stored(p.record.clone()),
        counter: p.counter,
        backup_eligible: p.backup_eligible,
        backup_state: p.backup_state,
        aaguid: p.aaguid,
        transports: p.transports.clone(),
    })
}

/// The passkey rules of the user's tier.
pub fn policy_for<'a>(app: &'a App, user: &User) -> &'a PasskeyPolicy {
    &app.policy.tier_for_roles(&user.roles).1.passkey
}
