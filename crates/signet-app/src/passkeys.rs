//! Passkey enrollment (WebAuthn registration), and the relying party and
//! decoy key that enrollment shares with the passkey method
//! ([`crate::methods::PasskeyMethod`], which also lists, renames and removes
//! passkeys as a credential kind).
//!
//! **Enrollment** (`/api/v1/credentials/passkey/begin` and `/finish`). `begin`
//! creates discoverable credential options that exclude the user's existing
//! passkeys and stores the registration state server-side as a ceremony
//! bound to the session that began it, valid for five minutes
//! ([`signet_passkey::CEREMONY_TIMEOUT`]). `finish` takes the ceremony out of
//! storage (one `DELETE ... RETURNING`: used once, only by that session,
//! only before it expires) and then verifies the response off the reactor.
//! The credential id is unique across all users (WebAuthn L3 §7.1 step 26):
//! the store's unique index decides, so a race cannot register it twice.
//!
//! **Binding assurance**, the record and the notices of a new passkey are
//! the rules every credential kind shares ([`crate::credentials`]): once the
//! account holds an aal2 authenticator, binding another needs a fresh aal2
//! session, so an invitation's enrollment session (aal1) can add only the
//! account's *first* passkey.

use signet_core::ErrorCode;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::Timestamp;
use signet_core::credential::{Ceremony, Passkey};
use signet_core::method::MethodName;
use signet_core::policy::PasskeyPolicy;
use signet_core::sealing::KeyRing;
use signet_core::store::StoreError;
use signet_core::store::{CredentialStore, SealedSecretStore};
use signet_core::user::User;
use signet_core::{Error, Result};
use signet_passkey::{
    CredentialId, PasskeyError, RegistrationState, RelyingParty, SerializedPasskey, StoredPasskey, CEREMONY_TIMEOUT,
};
use uuid::Uuid;

use crate::methods::passkey::info;
use crate::sessions::Current;
use crate::{credentials, App};

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

/// What `begin` returns: the ceremony to finish and the options for
/// `navigator.credentials.create()`.
#[derive(Serialize)]
pub struct Begun {
    pub ceremony_id: Uuid,
    #[serde(rename = "publicKey")]
    pub public_key: Value,
}

/// `POST /api/v1/credentials/passkey/begin`
pub async fn begin(app: &App, current: &Current, name: Option<&str>) -> Result<Begun> {
    let name = name.map(credentials::valid_name).transpose()?;
    let user = &current.user;
    credentials::require_binding_assurance(app, current, &credentials::list(app, user).await?, "add_credential")?;
    let exclude = app
        .store
        .passkeys_of(user.id)
        .await?
        .iter()
        .map(|p| to_stored(p).map(|s| s.credential_id))
        .collect::<Result<Vec<_>>>()?;
    let (options, state) = app.passkeys.rp.start_registration(
        user.id,
        user.email.as_str(),
        user.name.as_deref().unwrap_or(""),
        &exclude,
        policy_for(app, user),
    )?;
    let now = app.clock.now();
    let ceremony = Ceremony {
        id: Uuid::new_v4(),
        session_id: current.session.id,
        user_id: user.id,
        state: state.to_json(),
        name,
        created_at: now,
        expires_at: now.plus(CEREMONY_TIMEOUT),
    };
    app.store.insert_ceremony(&ceremony).await?;
    Ok(Begun {
        ceremony_id: ceremony.id,
        public_key: options,
    })
}

fn ceremony_gone() -> Error {
    Error::gone(
        ErrorCode::CeremonyExpired,
        "this passkey setup has expired or was already used; start again",
    )
}

/// `POST /api/v1/credentials/passkey/finish`
pub async fn finish(
    app: &App,
    current: &Current,
    origin: &Origin,
    ceremony_id: &str,
    credential: Value,
) -> Result<Passkey> {
    let user = &current.user;
    let id = Uuid::parse_str(ceremony_id).map_err(|_| ceremony_gone())?;
    let now = app.clock.now();
    let ceremony = app
        .store
        .take_ceremony(id, current.session.id, now)
        .await?
        .filter(|c| c.user_id == user.id)
        .ok_or_else(ceremony_gone)?;
    let state = RegistrationState::from_json(&ceremony.state)?;
    if state.user_id() != user.id {
        return Err(ceremony_gone());
    }
    // Another session may have added a credential since `begin`.
    credentials::require_binding_assurance(app, current, &credentials::list(app, user).await?, "add_credential")?;
    let policy = policy_for(app, user).clone();
    let rp = app.passkeys.rp.clone();
    let verified = tokio::task::spawn_blocking(move || rp.finish_registration(state, &credential, &policy))
        .await
        .map_err(Error::internal)?;
    let new = match verified {
        Ok(n) => n,
        Err(e) => return Err(refused(app, current, origin, e).await),
    };
    let name = match ceremony.name {
        Some(n) => n,
        None => new.authenticator_name.unwrap_or("Passkey").to_owned(),
    };
    let passkey = Passkey {
        id: Uuid::new_v4(),
        user_id: user.id,
        credential_id: new.credential_id.to_base64url(),
        record: new.passkey.as_str().to_owned(),
        counter: new.counter,
        backup_eligible: new.backup_eligible,
        backup_state: new.backup_state,
        user_verified: new.user_verified,
        aaguid: new.aaguid,
        transports: new.transports,
        name,
        created_at: now,
        last_used_at: None,
    };
    let kind = app
        .registry
        .get(MethodName::Passkey)
        .and_then(|m| m.credentials())
        .ok_or_else(|| Error::internal_msg("passkeys are not registered as a credential kind"))?;
    // A new way into the account never exists without its record and its
    // notices: they commit together.
    let mut tx = app.store.begin().await?;
    match tx.insert_passkey(&passkey).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            tx.rollback().await?;
            return Err(refused(app, current, origin, PasskeyError::CredentialAlreadyRegistered).await);
        }
        Err(e) => return Err(e.into()),
    }
    let mut details = serde_json::Map::new();
    details.insert("aaguid".into(), json!(passkey.aaguid));
    details.insert("backup_eligible".into(), json!(passkey.backup_eligible));
    details.insert("user_verified".into(), json!(passkey.user_verified));
    credentials::added(app, &mut *tx, current, origin, kind, &info(&passkey), details).await?;
    tx.commit().await?;
    app.courier.wake();
    Ok(passkey)
}

/// Audits a refused registration and returns the error to answer with.
async fn refused(app: &App, current: &Current, origin: &Origin, e: PasskeyError) -> Error {
    let ev = AuditEvent::new(
        EventType::CredentialRefused,
        Actor::User(current.user.id),
        Outcome::Denied,
    )
    .user(current.user.id)
    .from_origin(origin)
    .details(json!({ "type": "passkey", "error": e.code() }));
    if let Err(audit) = app.audit().record(ev).await {
        return audit;
    }
    e.into()
}
