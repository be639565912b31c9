//! Registration ceremony, WebAuthn L3 §7.1.
//!
//! Options (§5.4): a discoverable credential (`residentKey: "required"`,
//! §5.4.6) so that usernameless login and autofill work; user verification
//! from the tier (`required` by default); `"none"` attestation (§5.4.7) with
//! ES256, ES384 and RS256 offered; the user's existing credentials in
//! `excludeCredentials` so one authenticator is not registered twice;
//! `credProps` to learn whether the browser made the credential
//! discoverable; `credProtect` level 3 when UV is required (a discoverable
//! credential that cannot even be listed without UV).
//!
//! Verification: webauthn-rs-core runs §7.1 steps 5–24 (client data type,
//! challenge, origin, cross-origin, rpIdHash, UP, UV, attestation statement,
//! algorithm, BS-without-BE); we add, on the same bytes:
//! - `type == "public-key"`, `id == base64url(rawId)` and `rawId` equal to
//!   the credential id in the attested credential data (step 25 length too);
//! - the AAGUID, read by us (see [`crate::authdata`]);
//! - `excludeCredentials` as a refusal (`credential_already_registered`);
//! - the tier: UV, `device_bound_only` (BE=1 refused), `allowed_aaguids`.
//!
//! Step 26 (the credential id is not registered to anyone) is the store's:
//! a unique index on the credential id, whose conflict the caller reports as
//! `credential_already_registered`.

use serde::{Deserialize, Serialize};
use signet_core::policy::{PasskeyPolicy, UserVerification};
use signet_core::user::UserId;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, CredProtect, CredentialProtectionPolicy, RegisterPublicKeyCredential,
    RegistrationState as CoreRegistrationState, RequestRegistrationExtensions, UserVerificationPolicy,
};

use crate::aaguid::authenticator_name;
use crate::authdata::{auth_data_of_attestation_object, AuthenticatorData};
use crate::credential::{transports_to_strings, CredentialId, NewPasskey, SerializedPasskey};
use crate::error::PasskeyError;
use crate::rp::RelyingParty;

/// Largest attestation object we decode. Real ones are a few hundred bytes
/// ("none") to a few KiB (TPM certificate chains).
pub(crate) const MAX_ATTESTATION_OBJECT: usize = 64 * 1024;
/// Largest clientDataJSON we accept.
pub(crate) const MAX_CLIENT_DATA: usize = 8 * 1024;

/// The server-side state of a registration. Serialisable only so that it can
/// be stored with the enrollment ceremony; it is never sent to the client.
/// Use it once: the store takes it out atomically before calling
/// [`RelyingParty::finish_registration`].
#[derive(Clone, Serialize, Deserialize)]
pub struct RegistrationState {
    v: u8,
    user_id: UserId,
    exclude: Vec<CredentialId>,
    core: CoreRegistrationState,
}

impl RegistrationState {
    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    pub fn to_json(&self) -> String {
        crate::state::encode(self)
    }

    pub fn from_json(s: &str) -> Result<Self, PasskeyError> {
        crate::state::decode(s)
    }
}

impl crate::state::Versioned for RegistrationState {
    fn version(&self) -> u8 {
        self.v
    }
}

impl std::fmt::Debug for RegistrationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationState")
            .field("user_id", &self.user_id)
            .field("exclude", &self.exclude.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn uv_policy(uv: UserVerification) -> UserVerificationPolicy {
    match uv {
        UserVerification::Required => UserVerificationPolicy::Required,
        UserVerification::Preferred => UserVerificationPolicy::Preferred,
    }
}

impl RelyingParty {
    /// Begins a registration. Returns the `publicKey` member of
    /// `CredentialCreationOptions` in WebAuthn L3 JSON (what
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` takes), and the
    /// state to keep on the server.
    ///
    /// `user_id` becomes `user.id` (the user handle, §5.4.3): 16 opaque
    /// bytes, no personal data. `user_name` is what the passkey is filed
    /// under (the email), `display_name` the person's name (falls back to
    /// `user_name`).
    pub fn start_registration(
        &self,
        user_id: UserId,
        user_name: &str,
        display_name: &str,
        exclude: &[CredentialId],
        policy: &PasskeyPolicy,
    ) -> Result<(serde_json::Value, RegistrationState), PasskeyError> {
        let user_name = user_name.trim();
        let display_name = match display_name.trim() {
            "" => user_name,
            d => d,
        };
        if user_name.is_empty() || user_name.len() > 256 || display_name.len() > 256 {
            return Err(PasskeyError::InvalidUserName);
        }
        let uv = uv_policy(policy.user_verification);
        let extensions = RequestRegistrationExtensions {
            cred_protect: matches!(uv, UserVerificationPolicy::Required).then_some(CredProtect {
                credential_protection_policy: CredentialProtectionPolicy::UserVerificationRequired,
                // Enforcing makes authenticators without credProtect fail
                // outright; UV is enforced by us at every login anyway.
                enforce_credential_protection_policy: Some(false),
            }),
            uvm: None,
            cred_props: Some(true),
            min_pin_length: None,
            hmac_create_secret: None,
        };
        let core = &self.inner.core;
        let builder = core
            .new_challenge_register_builder(user_id.0.as_bytes(), user_name, display_name)?
            .attestation(AttestationConveyancePreference::None)
            .user_verification_policy(uv)
            .require_resident_key(true)
            .authenticator_attachment(None)
            .reject_synchronised_authenticators(policy.device_bound_only)
            .exclude_credentials(if exclude.is_empty() {
                None
            } else {
                Some(exclude.iter().map(|c| c.as_bytes().to_vec()).collect())
            })
            .hints(None)
            .extensions(Some(extensions));
        let (ccr, core_state) = core.generate_challenge_register(builder)?;
        let options = serde_json::to_value(&ccr.public_key)
            .map_err(|_| PasskeyError::malformed("options could not be serialised"))?;
        Ok((
            options,
            RegistrationState {
                v: crate::state::VERSION,
                user_id,
                exclude: exclude.to_vec(),
                core: core_state,
            },
        ))
    }

    /// Verifies the browser's `PublicKeyCredential.toJSON()` for a
    /// registration and returns what to store. Signature and attestation
    /// checks run here: call it from `spawn_blocking`.
    ///
    /// `policy` is the tier's passkey policy now; the UV requested at start
    /// is also enforced (by webauthn-rs, from the state).
    pub fn finish_registration(
        &self,
        state: RegistrationState,
        credential_json: &serde_json::Value,
        policy: &PasskeyPolicy,
    ) -> Result<NewPasskey, PasskeyError> {
        let reg = RegisterPublicKeyCredential::deserialize(credential_json)
            .map_err(|_| PasskeyError::malformed("not a PublicKeyCredential registration response"))?;
        if reg.type_ != "public-key" {
            return Err(PasskeyError::malformed("credential type is not public-key"));
        }
        if reg.response.attestation_object.len() > MAX_ATTESTATION_OBJECT
            || reg.response.client_data_json.len() > MAX_CLIENT_DATA
        {
            return Err(PasskeyError::malformed("response is too large"));
        }
        let auth_data = AuthenticatorData::parse(&auth_data_of_attestation_object(&reg.response.attestation_object)?)?;
        let attested = auth_data
            .attested
            .as_ref()
            .ok_or_else(|| PasskeyError::malformed("no attested credential data"))?;
        if reg.raw_id != attested.credential_id
            || CredentialId::from_base64url(&reg.id).map(|c| c.into_bytes()).ok() != Some(reg.raw_id.clone())
        {
            return Err(PasskeyError::malformed(
                "id, rawId and the attested credential id differ",
            ));
        }
        if state
            .exclude
            .iter()
            .any(|c| c.as_bytes() == attested.credential_id.as_slice())
        {
            return Err(PasskeyError::CredentialAlreadyRegistered);
        }

        let cred = match self.inner.core.register_credential(&reg, &state.core, None) {
            Ok(c) => c,
            // Refused by the state's reject-synchronised flag, or BS set
            // without BE (which no honest authenticator reports).
            Err(WebauthnError::CredentialMayNotBeHardwareBound) => {
                return Err(if auth_data.backup_eligible() {
                    PasskeyError::SyncedPasskeyNotAllowed
                } else {
                    PasskeyError::malformed("backup state set without backup eligibility")
                });
            }
            Err(e) => return Err(e.into()),
        };
        if cred.cred_id.as_slice() != attested.credential_id.as_slice()
            || cred.backup_eligible != auth_data.backup_eligible()
            || cred.backup_state != auth_data.backup_state()
        {
            return Err(PasskeyError::malformed("authenticator data was read inconsistently"));
        }

        crate::authdata::check_not_framed(&reg.response.client_data_json)?;

        // The tier, as it is now.
        if matches!(policy.user_verification, UserVerification::Required) && !auth_data.user_verified() {
            return Err(PasskeyError::UserVerificationRequired);
        }
        if policy.device_bound_only && auth_data.backup_eligible() {
            return Err(PasskeyError::SyncedPasskeyNotAllowed);
        }
        if !policy.allowed_aaguids.is_empty() && !policy.allowed_aaguids.contains(&attested.aaguid) {
            return Err(PasskeyError::AuthenticatorNotAllowed);
        }

        Ok(NewPasskey {
            user_id: state.user_id,
            credential_id: CredentialId::from_bytes(cred.cred_id.clone()),
            passkey: SerializedPasskey::from_credential(&cred)?,
            counter: auth_data.sign_count,
            backup_eligible: auth_data.backup_eligible(),
            backup_state: auth_data.backup_state(),
            user_verified: auth_data.user_verified(),
            aaguid: attested.aaguid,
            authenticator_name: authenticator_name(&attested.aaguid),
            transports: transports_to_strings(reg.response.transports.as_deref()),
            discoverable: reg.extensions.cred_props.as_ref().and_then(|p| p.rk),
        })
    }
}
