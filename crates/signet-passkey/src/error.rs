//! Stable error codes for every way a ceremony can be refused.
//!
//! Every variant is caused by what the client sent (or by the policy it ran
//! into), so every variant maps to a 4xx: a hostile credential must never
//! produce a 5xx. The codes are part of the API (`{"error": code}`) and must
//! not be renamed. The only error that is the operator's fault, a bad RP
//! configuration, is a separate type ([`ConfigError`]) returned at start-up.

use std::borrow::Cow;

use signet_core::ErrorCode;
use webauthn_rs_core::error::WebauthnError;

/// Why a registration or an authentication was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyError {
    /// The credential JSON, its base64url fields, the CBOR attestation object
    /// or the authenticator data are malformed, or the attestation statement
    /// does not verify.
    #[error("the passkey response is malformed: {0}")]
    InvalidCredential(Cow<'static, str>),
    /// `clientDataJSON.type` is not the ceremony's (`webauthn.create` for
    /// registration, `webauthn.get` for authentication), L3 §7.1 step 7 / §7.2 step 11.
    #[error("the passkey response is for another kind of ceremony")]
    CeremonyTypeMismatch,
    /// `clientDataJSON.challenge` is not this ceremony's challenge (a replay or
    /// a response to another ceremony), L3 §7.1 step 8 / §7.2 step 12.
    #[error("the passkey response answers another challenge")]
    ChallengeMismatch,
    /// `clientDataJSON.origin` is not one of the allowed origins, or the
    /// request came from a cross-origin iframe, L3 §7.1 steps 9–10 / §7.2 steps 13–14.
    #[error("the passkey response was made for another site")]
    OriginMismatch,
    /// `rpIdHash` in authenticatorData is not SHA-256 of our RP ID, L3 §7.1 step 13 / §7.2 step 15.
    #[error("the passkey is scoped to another relying party")]
    RpIdMismatch,
    /// The UP flag is not set, L3 §7.1 step 14 / §7.2 step 16.
    #[error("the authenticator did not test for user presence")]
    UserPresenceRequired,
    /// The UV flag is not set although the policy requires user verification,
    /// L3 §7.1 step 15 / §7.2 step 17.
    #[error("this sign-in needs user verification (PIN or biometric) on the authenticator")]
    UserVerificationRequired,
    /// The BE flag differs from the value recorded at registration, L3 §7.2 step 18
    /// and §6.1.3: backup eligibility is fixed for a credential's lifetime.
    #[error("the passkey's backup eligibility changed since it was registered")]
    BackupEligibilityChanged,
    /// The signature over `authenticatorData || SHA-256(clientDataJSON)` does
    /// not verify with the stored public key, L3 §7.2 step 21.
    #[error("the passkey signature does not verify")]
    InvalidSignature,
    /// The signature counter did not increase: the credential may be cloned,
    /// L3 §7.2 step 22 and §6.1.1.
    #[error("the passkey's signature counter went backwards; the key may have been cloned")]
    CounterRegression,
    /// The credential is not one this ceremony allows, or not a credential we
    /// know, L3 §7.2 steps 5–7.
    #[error("this passkey is not registered here")]
    CredentialNotFound,
    /// `userHandle` is missing for a discoverable login, or names another user
    /// than the credential's owner, L3 §7.2 step 6.
    #[error("the passkey's user handle does not belong to its owner")]
    UserHandleMismatch,
    /// The credential is backup eligible (a synced passkey) and the policy
    /// allows only device-bound passkeys.
    #[error("this account needs a device-bound passkey (for example a security key), not a synced one")]
    SyncedPasskeyNotAllowed,
    /// The authenticator model (AAGUID) is not in the policy's allow-list.
    #[error("this authenticator model is not allowed for this account")]
    AuthenticatorNotAllowed,
    /// The credential id is already registered (to this user or another one),
    /// L3 §7.1 step 26.
    #[error("this passkey is already registered")]
    CredentialAlreadyRegistered,
    /// The public key algorithm was not one we offered, L3 §7.1 step 16.
    #[error("the passkey uses an algorithm that was not offered")]
    AlgorithmNotAllowed,
    /// The stored ceremony state cannot be read (for example after an upgrade
    /// changed its format). The ceremony must be started again.
    #[error("this passkey ceremony is no longer valid; start again")]
    CeremonyInvalid,
    /// The user name or display name given to a registration is unusable.
    #[error("the account name for the passkey is invalid")]
    InvalidUserName,
}

impl PasskeyError {
    /// The stable snake_case code for `{"error": ...}`.
    pub fn code(&self) -> ErrorCode {
        match self {
            PasskeyError::InvalidCredential(_) => ErrorCode::InvalidCredential,
            PasskeyError::CeremonyTypeMismatch => ErrorCode::CeremonyTypeMismatch,
            PasskeyError::ChallengeMismatch => ErrorCode::ChallengeMismatch,
            PasskeyError::OriginMismatch => ErrorCode::OriginMismatch,
            PasskeyError::RpIdMismatch => ErrorCode::RpIdMismatch,
            PasskeyError::UserPresenceRequired => ErrorCode::UserPresenceRequired,
            PasskeyError::UserVerificationRequired => ErrorCode::UserVerificationRequired,
            PasskeyError::BackupEligibilityChanged => ErrorCode::BackupEligibilityChanged,
            PasskeyError::InvalidSignature => ErrorCode::InvalidSignature,
            PasskeyError::CounterRegression => ErrorCode::CounterRegression,
            PasskeyError::CredentialNotFound => ErrorCode::PasskeyNotRegistered,
            PasskeyError::UserHandleMismatch => ErrorCode::UserHandleMismatch,
            PasskeyError::SyncedPasskeyNotAllowed => ErrorCode::SyncedPasskeyNotAllowed,
            PasskeyError::AuthenticatorNotAllowed => ErrorCode::AuthenticatorNotAllowed,
            PasskeyError::CredentialAlreadyRegistered => ErrorCode::CredentialAlreadyRegistered,
            PasskeyError::AlgorithmNotAllowed => ErrorCode::AlgorithmNotAllowed,
            PasskeyError::CeremonyInvalid => ErrorCode::CeremonyInvalid,
            PasskeyError::InvalidUserName => ErrorCode::InvalidUserName,
        }
    }

    /// Every code, for docs/api.md and for tests that the list is stable.
    pub const ALL_CODES: [ErrorCode; 18] = [
        ErrorCode::InvalidCredential,
        ErrorCode::CeremonyTypeMismatch,
        ErrorCode::ChallengeMismatch,
        ErrorCode::OriginMismatch,
        ErrorCode::RpIdMismatch,
        ErrorCode::UserPresenceRequired,
        ErrorCode::UserVerificationRequired,
        ErrorCode::BackupEligibilityChanged,
        ErrorCode::InvalidSignature,
        ErrorCode::CounterRegression,
        ErrorCode::PasskeyNotRegistered,
        ErrorCode::UserHandleMismatch,
        ErrorCode::SyncedPasskeyNotAllowed,
        ErrorCode::AuthenticatorNotAllowed,
        ErrorCode::CredentialAlreadyRegistered,
        ErrorCode::AlgorithmNotAllowed,
        ErrorCode::CeremonyInvalid,
        ErrorCode::InvalidUserName,
    ];

    /// Whether this refusal is a policy decision about an otherwise valid
    /// credential (403) rather than a broken or forged response (400).
    pub fn is_policy_refusal(&self) -> bool {
        matches!(
            self,
            PasskeyError::UserVerificationRequired
                | PasskeyError::BackupEligibilityChanged
                | PasskeyError::CounterRegression
                | PasskeyError::SyncedPasskeyNotAllowed
                | PasskeyError::AuthenticatorNotAllowed
        )
    }

    pub(crate) fn malformed(why: impl Into<Cow<'static, str>>) -> Self {
        PasskeyError::InvalidCredential(why.into())
    }
}

/// 400 for a broken or forged response, 403 for a policy refusal, 409 for a
/// duplicate credential id. Never a 5xx: all of these are caused by input.
impl From<PasskeyError> for signet_core::Error {
    fn from(e: PasskeyError) -> Self {
        let code = e.code();
        let message = e.to_string();
        if matches!(e, PasskeyError::CredentialAlreadyRegistered) {
            signet_core::Error::conflict(code, message)
        } else if e.is_policy_refusal() {
            signet_core::Error::forbidden(code, message)
        } else {
            signet_core::Error::invalid(code, message)
        }
    }
}

/// Maps webauthn-rs-core's verdicts onto our codes. Anything that is not one
/// of the named checks is a malformed or unverifiable response.
impl From<WebauthnError> for PasskeyError {
    fn from(e: WebauthnError) -> Self {
        use WebauthnError as W;
        match e {
            W::InvalidClientDataType => PasskeyError::CeremonyTypeMismatch,
            W::MismatchedChallenge | W::ChallengeNotFound => PasskeyError::ChallengeMismatch,
            W::InvalidRPOrigin | W::CredentialCrossOrigin => PasskeyError::OriginMismatch,
            W::InvalidRPIDHash => PasskeyError::RpIdMismatch,
            W::UserNotPresent => PasskeyError::UserPresenceRequired,
            W::UserNotVerified => PasskeyError::UserVerificationRequired,
            W::CredentialBackupEligibilityInconsistent => PasskeyError::BackupEligibilityChanged,
            W::AuthenticationFailure | W::SignatureInvalid => PasskeyError::InvalidSignature,
            W::CredentialPossibleCompromise => PasskeyError::CounterRegression,
            W::CredentialNotFound => PasskeyError::CredentialNotFound,
            W::CredentialAlreadyExists | W::CredentialExcludedFromRequest => PasskeyError::CredentialAlreadyRegistered,
            W::CredentialAlteredAlgFromRequest | W::COSEKeyInvalidAlgorithm => PasskeyError::AlgorithmNotAllowed,
            W::InvalidUsername | W::InvalidUserUniqueId => PasskeyError::InvalidUserName,
            other => PasskeyError::malformed(other.to_string()),
        }
    }
}

/// A relying-party configuration the server cannot start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("public_url {0} has no host name that can be a WebAuthn RP ID (an IP address cannot)")]
    NoDomain(String),
    #[error("rp_id {rp_id:?} is not the host of {origin} or a parent domain of it (WebAuthn L3 §5.1.3)")]
    RpIdNotRegistrable { rp_id: String, origin: String },
    #[error("origin {0} is not a secure context: WebAuthn needs https, or http only on localhost")]
    InsecureOrigin(String),
    #[error("origin {0} must be an http(s) URL without user name or password")]
    NotAnOrigin(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_listed() {
        let all = [
            PasskeyError::InvalidCredential("x".into()),
            PasskeyError::CeremonyTypeMismatch,
            PasskeyError::ChallengeMismatch,
            PasskeyError::OriginMismatch,
            PasskeyError::RpIdMismatch,
            PasskeyError::UserPresenceRequired,
            PasskeyError::UserVerificationRequired,
            PasskeyError::BackupEligibilityChanged,
            PasskeyError::InvalidSignature,
            PasskeyError::CounterRegression,
            PasskeyError::CredentialNotFound,
            PasskeyError::UserHandleMismatch,
            PasskeyError::SyncedPasskeyNotAllowed,
            PasskeyError::AuthenticatorNotAllowed,
            PasskeyError::CredentialAlreadyRegistered,
            PasskeyError::AlgorithmNotAllowed,
            PasskeyError::CeremonyInvalid,
            PasskeyError::InvalidUserName,
        ];
        let codes: Vec<ErrorCode> = all.iter().map(PasskeyError::code).collect();
        assert_eq!(codes, PasskeyError::ALL_CODES);
        let core: Vec<ErrorCode> = all.into_iter().map(|e| signet_core::Error::from(e).code()).collect();
        assert_eq!(core, PasskeyError::ALL_CODES, "the core error keeps the passkey code");
    }

    #[test]
    fn every_error_is_a_4xx() {
        for e in [
            PasskeyError::InvalidCredential("x".into()),
            PasskeyError::InvalidSignature,
            PasskeyError::CounterRegression,
            PasskeyError::CredentialAlreadyRegistered,
        ] {
            let code = e.code();
            let core: signet_core::Error = e.into();
            assert_eq!(core.code(), code);
            assert!(matches!(
                core,
                signet_core::Error::Invalid { .. }
                    | signet_core::Error::Forbidden { .. }
                    | signet_core::Error::Conflict { .. }
            ));
        }
        // Even webauthn-rs's own "internal" sounding errors stay 4xx.
        let e: PasskeyError = WebauthnError::CredentialPersistenceError.into();
        assert_eq!(e.code(), ErrorCode::InvalidCredential);
    }
}
