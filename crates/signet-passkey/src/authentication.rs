//! Authentication ceremony, WebAuthn L3 §7.2 ("Verifying an Authentication
//! Assertion"), and what it proves (NIST SP 800-63B, RFC 8176).
//!
//! Three ways to start:
//! - **with an identifier** and the user's passkeys: `allowCredentials` lists
//!   them (§5.5), and only they may answer (§7.2 step 5);
//! - **discoverable** (no identifier): `allowCredentials` is empty, the
//!   authenticator offers its discoverable credentials, and the response's
//!   `userHandle` names the user (§7.2 step 6) — the request behind the
//!   "Sign in with a passkey" button and behind autofill (conditional
//!   mediation, which the page asks for with `mediation: "conditional"`);
//! - **decoy**, for an identifier that matches no account: see
//!   [`crate::decoy`]. The answer has the same shape as a real user's and the
//!   ceremony can never succeed.
//!
//! The split between webauthn-rs-core and this module, step by step (§7.2):
//!
//! | step | check | done by |
//! |------|-------|---------|
//! | 5 | `rawId` is in `allowCredentials` | us (state) |
//! | 6 | the credential's owner is the identified user; `userHandle`, when present, is that user; for discoverable login `userHandle` is present and is the owner | us |
//! | 7 | the credential record exists (looked up by `rawId`, never by `userHandle`) | the caller's lookup, then us (`rawId` equals the stored id) |
//! | 11 | `clientDataJSON.type == "webauthn.get"` | webauthn-rs |
//! | 12 | challenge | webauthn-rs |
//! | 13 | origin is allowed (exact match) | webauthn-rs |
//! | 14 | not in a cross-origin iframe (`crossOrigin` false, no `topOrigin`) | us (webauthn-rs checks this at registration only) |
//! | 15 | `rpIdHash == SHA-256(rp_id)` | webauthn-rs |
//! | 16 | UP set | webauthn-rs and us |
//! | 17 | UV set when required | webauthn-rs (the ceremony's request and the registration's), and us (the tier now) |
//! | 18 | BE equals the stored value (both directions) | webauthn-rs (`allow_backup_eligible_upgrade = false`) and us |
//! | 19 | BS is recorded | us, returned in [`Verified`] for the single update |
//! | 21 | signature over `authenticatorData ‖ SHA-256(clientDataJSON)` | us, with aws-lc-rs ([`crate::signature`]); see below |
//! | 22 | signCount increased (when either side is non-zero) | webauthn-rs in strict mode, and us; relaxed per tier only by us |
//! | — | tier: `device_bound_only`, `allowed_aaguids` | us |
//!
//! Steps 8–10 are decoding (`serde` and our [`crate::authdata`] parser), and
//! step 20 (client extension outputs) has nothing to check: we request none.
//!
//! # Step 21 with aws-lc-rs, every other check by webauthn-rs
//! webauthn-rs-core verifies signatures with pure-Rust RustCrypto and has no
//! switch for another backend. We keep all of its checks by calling it as
//! before, but with the credential's key replaced by one whose verification
//! always fails ([`crate::signature`]): it then returns
//! `AuthenticationFailure` exactly when everything before the signature
//! passed, and we verify the signature with the stored key and aws-lc-rs.
//! Its counter check, which comes after the signature, is the one we make
//! ourselves below. `finish_authentication_by(Verifier::WebauthnCore, ..)`
//! keeps the old path, and the tests hold both to the same verdict on valid,
//! tampered and hostile assertions (docs/adr/0030-assertion-signatures-with-aws-lc.md).
//!
//! The counter, BE and BS in storage are the truth: before verification the
//! stored credential record's copies are overwritten from the columns, so a
//! stale serialised record can never lower the bar.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use signet_core::policy::{PasskeyPolicy, UserVerification};
use signet_core::session::{Aal, Proof};
use signet_core::user::UserId;
use uuid::Uuid;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{AllowCredentials, AuthenticationState as CoreAuthenticationState, PublicKeyCredential};

use crate::authdata::AuthenticatorData;
use crate::credential::{transports_from_strings, CredentialId, StoredPasskey};
use crate::decoy::{decoy_allow_credentials, AllowedCredential};
use crate::error::PasskeyError;
use crate::registration::{uv_policy, MAX_CLIENT_DATA};
use crate::rp::RelyingParty;
use crate::signature::{deferred_key, CredentialPublicKey, Verifier};

/// Largest authenticatorData we accept (37 bytes plus extensions).
const MAX_AUTHENTICATOR_DATA: usize = 8 * 1024;
/// Largest signature (an RSA-4096 signature is 512 bytes).
const MAX_SIGNATURE: usize = 1024;

#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Expect {
    Identified {
        user_id: UserId,
        allowed: Vec<CredentialId>,
    },
    Discoverable,
    Decoy,
}

/// The server-side state of an authentication. Serialisable only so that it
/// can be stored with the login flow; it is never sent to the client. Use it
/// once: the store takes it out atomically before calling
/// [`RelyingParty::finish_authentication`], which also consumes it.
#[derive(Clone, Serialize, Deserialize)]
pub struct AuthenticationState {
    v: u8,
    expect: Expect,
    core: CoreAuthenticationState,
}

impl crate::state::Versioned for AuthenticationState {
    fn version(&self) -> u8 {
        self.v
    }
}

impl AuthenticationState {
    pub fn to_json(&self) -> String {
        crate::state::encode(self)
    }

    pub fn from_json(s: &str) -> Result<Self, PasskeyError> {
        crate::state::decode(s)
    }

    /// The user this ceremony was started for, if an identifier named one.
    pub fn identified_user(&self) -> Option<UserId> {
        match &self.expect {
            Expect::Identified { user_id, .. } => Some(*user_id),
            Expect::Discoverable | Expect::Decoy => None,
        }
    }

    /// Whether this is a usernameless (discoverable) ceremony.
    pub fn is_discoverable(&self) -> bool {
        matches!(self.expect, Expect::Discoverable)
    }
}

impl std::fmt::Debug for AuthenticationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.expect {
            Expect::Identified { .. } => "identified",
            Expect::Discoverable => "discoverable",
            Expect::Decoy => "identified", // a decoy never says so, not even in a log
        };
        f.debug_struct("AuthenticationState")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

/// A parsed assertion (`PublicKeyCredential.toJSON()` from `get()`), so the
/// caller can look up the credential by id before verification.
#[derive(Clone, Debug)]
pub struct Assertion {
    pkc: PublicKeyCredential,
    auth_data: AuthenticatorData,
    credential_id: CredentialId,
}

impl Assertion {
    /// Decodes and bounds-checks the browser's JSON. Cheap; no crypto.
    pub fn parse(credential_json: &serde_json::Value) -> Result<Self, PasskeyError> {
        let pkc = PublicKeyCredential::deserialize(credential_json)
            .map_err(|_| PasskeyError::malformed("not a PublicKeyCredential assertion response"))?;
        if pkc.type_ != "public-key" {
            return Err(PasskeyError::malformed("credential type is not public-key"));
        }
        let r = &pkc.response;
        if r.authenticator_data.len() > MAX_AUTHENTICATOR_DATA
            || r.client_data_json.len() > MAX_CLIENT_DATA
            || r.signature.len() > MAX_SIGNATURE
            || r.user_handle.as_ref().is_some_and(|h| h.len() > 64)
        {
            return Err(PasskeyError::malformed("response is too large"));
        }
        let credential_id = CredentialId::from_base64url(&pkc.id)?;
        if credential_id.as_bytes() != pkc.raw_id.as_slice() {
            return Err(PasskeyError::malformed("id and rawId differ"));
        }
        let auth_data = AuthenticatorData::parse(&r.authenticator_data)?;
        Ok(Self {
            pkc,
            auth_data,
            credential_id,
        })
    }

    /// The credential to look up (by this, never by the user handle).
    pub fn credential_id(&self) -> &CredentialId {
        &self.credential_id
    }

    /// The user handle the authenticator returned, if it is one of ours
    /// (16 bytes). Informational: ownership is checked in `finish`.
    pub fn user_handle(&self) -> Option<UserId> {
        self.raw_user_handle()
            .and_then(|h| Uuid::from_slice(h).ok())
            .map(UserId)
    }

    fn raw_user_handle(&self) -> Option<&[u8]> {
        self.pkc.response.user_handle.as_deref()
    }
}

/// What to do when the signature counter did not increase (§7.2 step 22).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CounterPolicy {
    /// Refuse (`counter_regression`). The default.
    #[default]
    Strict,
    /// Accept, and report it in [`Verified::counter_regressed`] so that it is
    /// audited. For tiers whose users share a credential across clones that
    /// keep separate counters.
    AllowRegression,
}

/// A verified assertion: who signed in, with what, and the single storage
/// update to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub user_id: UserId,
    /// The store's row id of the credential.
    pub credential: Uuid,
    pub credential_id: CredentialId,
    /// UV flag of this assertion.
    pub user_verified: bool,
    pub backup_eligible: bool,
    /// BS flag of this assertion: store it.
    pub backup_state: bool,
    pub aaguid: Uuid,
    /// The counter to store. Never lower than the stored one.
    pub counter: u32,
    /// The stored counter this verification saw: make the update conditional
    /// on it (`... WHERE counter = previous_counter`) so that two concurrent
    /// logins with a counting authenticator cannot both move it.
    pub previous_counter: u32,
    /// The authenticator's counter did not increase and the tier allowed it:
    /// audit it (possible cloned authenticator).
    pub counter_regressed: bool,
}

impl Verified {
    /// What this passkey proved, for the session (docs/policy.md §2):
    ///
    /// - `aal`: **aal2** with UV (a multi-factor cryptographic authenticator,
    ///   SP 800-63B §3.1.7); **aal1** without (single-factor, §3.1.6);
    ///   **aal3** only with UV, a device-bound credential (BE=0) and an AAGUID
    ///   in the tier's non-empty `allowed_aaguids` (a hardware-bound,
    ///   non-exportable key, §2.3). With `"none"` attestation the AAGUID is
    ///   the authenticator's own claim; see the crate docs.
    /// - `amr` (RFC 8176 §2): `hwk` for a device-bound credential (BE=0,
    ///   proof of possession of a key that cannot leave the device), `swk` for
    ///   a synced one (BE=1, the key lives in a sync fabric); always `user`
    ///   (UP: a presence test); plus `mfa` with UV, because the authenticator
    ///   itself checked a second factor (PIN or biometric) — RFC 8176 does not
    ///   let us say which (`pin`, `fpt`, `face`) since WebAuthn does not tell.
    /// - `phishing_resistant`: always (origin-bound, SP 800-63B §3.2.5).
    pub fn proof(&self, policy: &PasskeyPolicy) -> Proof {
        let device_bound = !self.backup_eligible;
        let aal = if !self.user_verified {
            Aal::Aal1
        } else if device_bound && !policy.allowed_aaguids.is_empty() && policy.allowed_aaguids.contains(&self.aaguid) {
            Aal::Aal3
        } else {
            Aal::Aal2
        };
        let mut amr = vec![if device_bound { "hwk" } else { "swk" }.to_owned(), "user".to_owned()];
        if self.user_verified {
            amr.push("mfa".to_owned());
        }
        Proof {
            aal,
            amr,
            phishing_resistant: true,
            credential_id: Some(self.credential),
            user_id: Some(self.user_id),
        }
    }
}

fn allow_list(creds: &[AllowedCredential]) -> Vec<AllowCredentials> {
    creds
        .iter()
        .map(|c| AllowCredentials {
            type_: "public-key".into(),
            id: c.id.as_bytes().to_vec(),
            transports: transports_from_strings(&c.transports),
        })
        .collect()
}

impl RelyingParty {
    fn start(
        &self,
        allow: &[AllowedCredential],
        expect: Expect,
        policy: &PasskeyPolicy,
    ) -> Result<(serde_json::Value, AuthenticationState), PasskeyError> {
        let core = &self.inner.core;
        // The allow list lives in our state, not webauthn-rs's: we verify
        // against the credential record read at finish time (fresh counter
        // and flags), never a copy taken at start.
        let builder = core
            .new_challenge_authenticate_builder(Vec::new(), Some(uv_policy(policy.user_verification)))?
            .allow_backup_eligible_upgrade(false)
            .extensions(None)
            .hints(None);
        let (mut rcr, core_state) = core.generate_challenge_authenticate(builder)?;
        rcr.public_key.allow_credentials = allow_list(allow);
        let options = serde_json::to_value(&rcr.public_key)
            .map_err(|_| PasskeyError::malformed("options could not be serialised"))?;
        Ok((
            options,
            AuthenticationState {
                v: crate::state::VERSION,
                expect,
                core: core_state,
            },
        ))
    }

    /// Begins an authentication. `Some(passkeys)` (all of one user, at least
    /// one) lists them in `allowCredentials`; `None` makes the request
    /// discoverable (usernameless login, autofill). Returns the `publicKey`
    /// member of `CredentialRequestOptions` in L3 JSON and the state.
    ///
    /// A known user with no passkey must get the same answer as an unknown
    /// identifier: call [`RelyingParty::start_decoy_authentication`] for both
    /// (this function refuses an empty list with `credential_not_found`).
    ///
    /// `policy` sets `userVerification`: the user's tier with an identifier,
    /// the default tier without one (the tier of a usernameless user is known
    /// only at finish, where it is enforced).
    pub fn start_authentication(
        &self,
        allow: Option<&[StoredPasskey]>,
        policy: &PasskeyPolicy,
    ) -> Result<(serde_json::Value, AuthenticationState), PasskeyError> {
        match allow {
            None => self.start(&[], Expect::Discoverable, policy),
            Some(passkeys) => {
                let user_id = passkeys.first().ok_or(PasskeyError::CredentialNotFound)?.user_id;
                if passkeys.iter().any(|p| p.user_id != user_id) {
                    return Err(PasskeyError::CredentialNotFound);
                }
                let allowed: Vec<AllowedCredential> = passkeys
                    .iter()
                    .map(|p| AllowedCredential {
                        id: p.credential_id.clone(),
                        transports: p.transports.clone(),
                    })
                    .collect();
                let ids = allowed.iter().map(|a| a.id.clone()).collect();
                self.start(&allowed, Expect::Identified { user_id, allowed: ids }, policy)
            }
        }
    }

    /// Begins an authentication that looks exactly like a real user's but
    /// can never succeed: for an identifier that matches no account, or an
    /// account without passkeys. `decoy_key` is a server secret, the same on
    /// every node and across restarts (see [`crate::decoy`]); `identifier` is
    /// the normalised email.
    pub fn start_decoy_authentication(
        &self,
        decoy_key: &[u8],
        identifier: &str,
        policy: &PasskeyPolicy,
    ) -> Result<(serde_json::Value, AuthenticationState), PasskeyError> {
        self.start(&decoy_allow_credentials(decoy_key, identifier), Expect::Decoy, policy)
    }

    /// Verifies an assertion against the ceremony `state` and the `stored`
    /// credential the caller looked up by [`Assertion::credential_id`].
    /// Runs a signature verification: call it from `spawn_blocking`.
    ///
    /// `policy` is the passkey policy of the *credential owner's* tier (for a
    /// usernameless login the caller learns the owner from `stored`).
    pub fn finish_authentication(
        &self,
        state: AuthenticationState,
        assertion: &Assertion,
        stored: &StoredPasskey,
        policy: &PasskeyPolicy,
        counter_policy: CounterPolicy,
    ) -> Result<Verified, PasskeyError> {
        self.finish_authentication_by(Verifier::AwsLc, state, assertion, stored, policy, counter_policy)
    }

    /// [`RelyingParty::finish_authentication`] with a chosen signature
    /// verifier. [`Verifier::WebauthnCore`] is the previous path, webauthn-rs
    /// verifying the signature itself: for the tests that hold the two to the
    /// same verdict on every input, and for the benchmark.
    pub fn finish_authentication_by(
        &self,
        verifier: Verifier,
        state: AuthenticationState,
        assertion: &Assertion,
        stored: &StoredPasskey,
        policy: &PasskeyPolicy,
        counter_policy: CounterPolicy,
    ) -> Result<Verified, PasskeyError> {
        // §7.2 step 7: the record is the one the response names.
        if stored.credential_id != assertion.credential_id {
            return Err(PasskeyError::CredentialNotFound);
        }
        let owner_handle = stored.user_id.0.as_bytes().as_slice();
        // §7.2 steps 5–6.
        match &state.expect {
            Expect::Decoy => return Err(PasskeyError::CredentialNotFound),
            Expect::Identified { user_id, allowed } => {
                if !allowed.contains(&assertion.credential_id) || stored.user_id != *user_id {
                    return Err(PasskeyError::CredentialNotFound);
                }
                if assertion.raw_user_handle().is_some_and(|h| h != owner_handle) {
                    return Err(PasskeyError::UserHandleMismatch);
                }
            }
            Expect::Discoverable => {
                if assertion.raw_user_handle() != Some(owner_handle) {
                    return Err(PasskeyError::UserHandleMismatch);
                }
            }
        }

        // The stored columns are the truth for the mutable fields.
        let mut cred = stored.passkey.credential()?;
        if cred.cred_id.as_slice() != stored.credential_id.as_bytes() {
            return Err(PasskeyError::CeremonyInvalid);
        }
        cred.backup_eligible = stored.backup_eligible;
        cred.backup_state = stored.backup_state;
        cred.counter = match counter_policy {
            CounterPolicy::Strict => stored.counter,
            // webauthn-rs always refuses a regression; with a zero stored
            // counter it skips the comparison, and we make it below.
            CounterPolicy::AllowRegression => 0,
        };

        // §7.2 steps 11–18 by webauthn-rs; step 21 (the signature) by
        // `verifier`; step 22 by webauthn-rs (reference path) and by us.
        match verifier {
            Verifier::WebauthnCore => {
                let result = self
                    .inner
                    .core
                    .authenticate_single_credential(&assertion.pkc, &state.core, &cred)?;
                let ad = &assertion.auth_data;
                if result.backup_eligible() != ad.backup_eligible()
                    || result.backup_state() != ad.backup_state()
                    || result.user_verified() != ad.user_verified()
                    || result.counter() != ad.sign_count
                {
                    return Err(PasskeyError::malformed("authenticator data was read inconsistently"));
                }
            }
            Verifier::AwsLc => {
                // webauthn-rs runs every check with a key whose verification
                // always says no (crate::signature::deferred_key): reaching
                // `AuthenticationFailure`, which it returns only after the
                // last check, means every other check passed. Then the real
                // key verifies, over the same bytes webauthn-rs would sign-check.
                let key = CredentialPublicKey(std::mem::replace(&mut cred.cred, deferred_key()));
                match self
                    .inner
                    .core
                    .authenticate_single_credential(&assertion.pkc, &state.core, &cred)
                {
                    Err(WebauthnError::AuthenticationFailure) => {}
                    // Impossible with the pinned webauthn-rs-core; never a success.
                    Ok(_) => return Err(PasskeyError::InvalidSignature),
                    Err(other) => return Err(other.into()),
                }
                let r = &assertion.pkc.response;
                let mut signed = Vec::with_capacity(r.authenticator_data.len() + 32);
                signed.extend_from_slice(&r.authenticator_data);
                signed.extend_from_slice(&Sha256::digest(&r.client_data_json));
                verifier.verify(&key, &r.signature, &signed)?;
            }
        }
        let ad = &assertion.auth_data;

        // Ours, on the same signed bytes.
        crate::authdata::check_not_framed(&assertion.pkc.response.client_data_json)?;
        if !ad.user_present() {
            return Err(PasskeyError::UserPresenceRequired);
        }
        if ad.backup_eligible() != stored.backup_eligible {
            return Err(PasskeyError::BackupEligibilityChanged);
        }
        if matches!(policy.user_verification, UserVerification::Required) && !ad.user_verified() {
            return Err(PasskeyError::UserVerificationRequired);
        }
        if policy.device_bound_only && ad.backup_eligible() {
            return Err(PasskeyError::SyncedPasskeyNotAllowed);
        }
        if !policy.allowed_aaguids.is_empty() && !policy.allowed_aaguids.contains(&stored.aaguid) {
            return Err(PasskeyError::AuthenticatorNotAllowed);
        }
        let counting = ad.sign_count > 0 || stored.counter > 0;
        let regressed = counting && ad.sign_count <= stored.counter;
        if regressed && counter_policy == CounterPolicy::Strict {
            return Err(PasskeyError::CounterRegression);
        }

        Ok(Verified {
            user_id: stored.user_id,
            credential: stored.id,
            credential_id: stored.credential_id.clone(),
            user_verified: ad.user_verified(),
            backup_eligible: ad.backup_eligible(),
            backup_state: ad.backup_state(),
            aaguid: stored.aaguid,
            counter: ad.sign_count.max(stored.counter),
            previous_counter: stored.counter,
            counter_regressed: regressed,
        })
    }

    /// [`Assertion::parse`], the lookup, and
    /// [`RelyingParty::finish_authentication`] in one call, for callers whose
    /// lookup is synchronous. An unknown credential id is `credential_not_found`.
    pub fn finish_authentication_with(
        &self,
        state: AuthenticationState,
        credential_json: &serde_json::Value,
        lookup: impl FnOnce(&CredentialId) -> Option<StoredPasskey>,
        policy: &PasskeyPolicy,
        counter_policy: CounterPolicy,
    ) -> Result<Verified, PasskeyError> {
        let assertion = Assertion::parse(credential_json)?;
        let stored = lookup(assertion.credential_id()).ok_or(PasskeyError::CredentialNotFound)?;
        self.finish_authentication(state, &assertion, &stored, policy, counter_policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(uv: bool, be: bool, aaguid: Uuid) -> Verified {
        Verified {
            user_id: UserId::new(),
            credential: Uuid::new_v4(),
            credential_id: CredentialId::from_bytes(vec![1; 16]),
            user_verified: uv,
            backup_eligible: be,
            backup_state: be,
            aaguid,
            counter: 0,
            previous_counter: 0,
            counter_regressed: false,
        }
    }

    #[test]
    fn assurance_follows_uv_device_binding_and_the_aaguid_allow_list() {
        let yubikey = Uuid::parse_str("cb69481e-8ff7-4039-93ec-0a2729a154a8").unwrap();
        let any = PasskeyPolicy::default();
        let listed = PasskeyPolicy {
            allowed_aaguids: vec![yubikey],
            ..PasskeyPolicy::default()
        };

        let synced = verified(true, true, Uuid::nil()).proof(&any);
        assert_eq!(
            (synced.aal, synced.amr.clone()),
            (Aal::Aal2, vec!["swk".into(), "user".into(), "mfa".into()])
        );
        assert!(synced.phishing_resistant);

        let no_uv = verified(false, false, yubikey).proof(&listed);
        assert_eq!((no_uv.aal, no_uv.amr), (Aal::Aal1, vec!["hwk".into(), "user".into()]));

        assert_eq!(verified(true, false, yubikey).proof(&listed).aal, Aal::Aal3);
        assert_eq!(
            verified(true, false, yubikey).proof(&any).aal,
            Aal::Aal2,
            "no allow-list, no aal3"
        );
        assert_eq!(
            verified(true, true, yubikey).proof(&listed).aal,
            Aal::Aal2,
            "synced is never aal3"
        );
        assert_eq!(verified(true, false, Uuid::nil()).proof(&listed).aal, Aal::Aal2);
    }
}
