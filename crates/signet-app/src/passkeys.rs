//! Passkeys as a user's credentials: enrollment (WebAuthn registration),
//! listing, renaming and removal, and the relying party they share with the
//! passkey login method ([`crate::methods::PasskeyLogin`]).
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
//! **Binding assurance** (NIST SP 800-63B §4.1.2.1 / §6.1.2.1). Once an
//! account has a multi-factor authenticator (a passkey registered with user
//! verification), binding or removing one is the sensitive action
//! `add_credential` / `remove_credential`: a full session at aal2 or above,
//! as fresh as the policy's `[actions.*]` ask (checked by
//! [`crate::step_up::require`]). Below that the answer is 403
//! `step_up_required`, and `POST /api/v1/step-up` raises the session. An invitation's enrollment session (aal1) can
//! therefore add only the account's *first* passkey; afterwards the person
//! signs in with it.
//!
//! **Removal** refuses to take away the user's last way to sign in
//! (`last_credential`): the last passkey can go only when the user's tier
//! lets an email method complete a login on its own. Removing a passkey
//! ends every session that was created with it.
//!
//! Every change is audited and the owner is told by email.

use signet_core::ErrorCode;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::{rfc3339, Timestamp};
use signet_core::credential::{Ceremony, Passkey, Removal};
use signet_core::error::StepUp;
use signet_core::method::MethodName;
use signet_core::policy::{PasskeyPolicy, Tier};
use signet_core::sealing::KeyRing;
use signet_core::session::{device_label, Aal};
use signet_core::store::StoreError;
use signet_core::store::{CredentialStore, SealedSecretStore};
use signet_core::unit_of_work::OutboxWrites;
use signet_core::user::User;
use signet_core::{Error, Result};
use signet_courier::templates::{self, CredentialChange, Requester};
use signet_passkey::{
    authenticator_name, CredentialId, PasskeyError, RegistrationState, RelyingParty, SerializedPasskey, StoredPasskey,
    CEREMONY_TIMEOUT,
};
use uuid::Uuid;

use crate::sessions::Current;
use crate::{step_up, App};

/// The name under which the decoy HMAC key is stored ([`CredentialStore::server_secret`]).
///
/// [`CredentialStore::server_secret`]: signet_core::store::CredentialStore::server_secret
pub const DECOY_KEY: &str = "passkey_decoy_hmac_v1";

/// The longest passkey name we keep, in characters.
pub const MAX_NAME_CHARS: usize = 64;

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

/// A passkey as `/api/v1/credentials` shows it.
#[derive(Serialize)]
pub struct CredentialView<'a> {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: &'a str,
    #[serde(with = "rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "rfc3339::option")]
    pub last_used_at: Option<Timestamp>,
    /// The authenticator model's name from the AAGUID the authenticator
    /// claimed, if we know it (not attested: see docs/passkeys.md).
    pub authenticator: Option<&'static str>,
    pub aaguid: Uuid,
    /// BS: the passkey is currently backed up / synced between devices.
    pub synced: bool,
    /// BE: the passkey can be synced (a "synced passkey"); false for a
    /// device-bound one such as a security key.
    pub backup_eligible: bool,
    pub transports: &'a [String],
}

impl<'a> CredentialView<'a> {
    pub fn new(p: &'a Passkey) -> Self {
        Self {
            id: p.id,
            kind: "passkey",
            name: &p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            authenticator: authenticator_name(&p.aaguid),
            aaguid: p.aaguid,
            synced: p.backup_state,
            backup_eligible: p.backup_eligible,
            transports: &p.transports,
        }
    }
}

/// A user-chosen name: trimmed, 1 to 64 characters, no control characters.
pub fn valid_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            ErrorCode::InvalidName,
            "a passkey name is 1 to 64 characters, without control characters",
        ));
    }
    Ok(name.to_owned())
}

fn tier_of<'a>(app: &'a App, user: &User) -> &'a Tier {
    app.policy.tier_for_roles(&user.roles).1
}

/// NIST SP 800-63B §4.1.2.1: once the account has an aal2 authenticator
/// (a passkey registered with user verification), changing its
/// authenticators is the sensitive action `action` ([`step_up::require`]:
/// a full session, at the action's level, within its `max_age`), and never
/// below aal2 whatever the policy says. Before that, an account's first
/// passkey may be bound by the session that exists (an invitation's).
fn require_binding_assurance(app: &App, current: &Current, existing: &[Passkey], action: &str) -> Result<()> {
    if !existing.iter().any(|p| p.user_verified) {
        return Ok(());
    }
    step_up::require(app, current, action)?;
    if current.session.aal < Aal::Aal2 {
        let tier = tier_of(app, &current.user);
        return Err(Error::StepUpRequired(Box::new(StepUp {
            required_aal: Aal::Aal2,
            max_age: tier.step_up_max_age.as_secs(),
            methods: step_up::methods(app, tier),
        })));
    }
    Ok(())
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
    let name = name.map(valid_name).transpose()?;
    let user = &current.user;
    let existing = app.store.passkeys_of(user.id).await?;
    require_binding_assurance(app, current, &existing, "add_credential")?;
    let exclude = existing
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
    // Another session may have added a passkey since `begin`.
    let existing = app.store.passkeys_of(user.id).await?;
    require_binding_assurance(app, current, &existing, "add_credential")?;
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
    // A new way into the account never exists without its record: the
    // passkey and its `credential.added` commit together.
    let record = AuditEvent::new(EventType::CredentialAdded, Actor::User(user.id), Outcome::Success)
        .user(user.id)
        .from_origin(origin)
        .details(json!({
            "credential_id": passkey.id,
            "type": "passkey",
            "name": passkey.name,
            "aaguid": passkey.aaguid,
            "backup_eligible": passkey.backup_eligible,
            "user_verified": passkey.user_verified,
            "session_id": current.session.id.0,
            "scope": current.session.scope,
        }));
    let mut tx = app.store.begin().await?;
    match tx.insert_passkey(&passkey).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            tx.rollback().await?;
            return Err(refused(app, current, origin, PasskeyError::CredentialAlreadyRegistered).await);
        }
        Err(e) => return Err(e.into()),
    }
    app.audit().append(&mut *tx, &record).await?;
    notify(app, &mut *tx, user, CredentialChange::Added, &passkey.name, origin).await?;
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

async fn notify(
    app: &App,
    tx: &mut dyn OutboxWrites,
    user: &User,
    change: CredentialChange,
    name: &str,
    origin: &Origin,
) -> Result<()> {
    let device = device_label(origin.user_agent.as_deref());
    let draft = templates::credential_changed(
        &user.email,
        change,
        name,
        app.clock.now(),
        &Requester {
            device: &device,
            ip: origin.ip.as_deref(),
        },
        &app.settings.product_name,
    );
    let what = match change {
        CredentialChange::Added => format!("a passkey \"{name}\" was added to your account."),
        CredentialChange::Removed => format!("a passkey \"{name}\" was removed from your account."),
    };
    crate::notices::security_notice(app, tx, user, draft, &what).await
}

/// The user's passkeys, oldest first.
pub async fn list(app: &App, user: &User) -> Result<Vec<Passkey>> {
    Ok(app.store.passkeys_of(user.id).await?)
}

fn not_found() -> Error {
    Error::not_found(ErrorCode::CredentialNotFound, "no such credential")
}

/// `PATCH /api/v1/credentials/{id}`
pub async fn rename(app: &App, current: &Current, origin: &Origin, id: Uuid, raw_name: &str) -> Result<Passkey> {
    let name = valid_name(raw_name)?;
    let user = &current.user;
    let mut tx = app.store.begin().await?;
    if !tx.rename_passkey(user.id, id, &name).await? {
        return Err(not_found());
    }
    let record = AuditEvent::new(EventType::CredentialRenamed, Actor::User(user.id), Outcome::Success)
        .user(user.id)
        .from_origin(origin)
        .details(json!({ "credential_id": id, "name": name }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    app.store
        .passkeys_of(user.id)
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(not_found)
}

/// Whether the user's tier lets them complete a login without a passkey (an
/// email method that reaches the tier's level on its own).
fn can_sign_in_without_passkey(app: &App, tier: &Tier) -> bool {
    tier.required_aal == Aal::Aal1
        && tier
            .login
            .iter()
            .any(|m| matches!(m, MethodName::EmailOtp | MethodName::MagicLink) && app.registry.get(*m).is_some())
}

/// `DELETE /api/v1/credentials/{id}`
pub async fn remove(app: &App, current: &Current, origin: &Origin, id: Uuid) -> Result<()> {
    let user = &current.user;
    let existing = app.store.passkeys_of(user.id).await?;
    let target = existing.iter().find(|p| p.id == id).ok_or_else(not_found)?.clone();
    require_binding_assurance(app, current, &existing, "remove_credential")?;
    let keep = if can_sign_in_without_passkey(app, tier_of(app, user)) {
        0
    } else {
        1
    };
    // The removal, the sessions resting on the passkey, the record and the
    // notices are one unit of work.
    let mut tx = app.store.begin().await?;
    match tx.remove_passkey(user.id, id, keep).await? {
        Removal::Removed => {}
        Removal::NotFound => return Err(not_found()),
        Removal::LastCredential => {
            return Err(Error::conflict(
                ErrorCode::LastCredential,
                "this is your last way to sign in; add another passkey before removing this one",
            ))
        }
    }
    let ended = tx.delete_credential_sessions(id).await?;
    let record = AuditEvent::new(EventType::CredentialRemoved, Actor::User(user.id), Outcome::Success)
        .user(user.id)
        .from_origin(origin)
        .details(json!({
            "credential_id": id,
            "type": "passkey",
            "name": target.name,
            "sessions_ended": ended,
        }));
    app.audit().append(&mut *tx, &record).await?;
    notify(app, &mut *tx, user, CredentialChange::Removed, &target.name, origin).await?;
    tx.commit().await?;
    app.courier.wake();
    Ok(())
}
