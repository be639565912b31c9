//! A user's credentials as the store keeps them. Today: passkeys (WebAuthn
//! credentials) and the server-side state of their enrollment ceremonies.
//!
//! The WebAuthn specifics (parsing, verification, the serialised public key)
//! belong to `signet-passkey`; this module only names the columns the store
//! needs, so `signet-core` stays free of WebAuthn dependencies.
//!
//! Invariants every store keeps (checked by the conformance suite):
//! - a credential id is registered at most once across **all** users
//!   (WebAuthn L3 §7.1 step 26): a second insert is `Conflict("credential_already_registered")`;
//! - a login updates counter, backup state and last use in one conditional
//!   write on the previous counter, so of two concurrent uses of the same
//!   counter value only one is recorded;
//! - removing a credential and checking what remains is one transaction, so
//!   two concurrent removals cannot both take a user's last credential;
//! - an enrollment ceremony is taken out (deleted) once, only by the session
//!   that began it and only before it expires.

use uuid::Uuid;

use crate::clock::Timestamp;
use crate::session::SessionId;
use crate::user::{Phone, UserId};

/// A registered passkey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passkey {
    /// Our row id: what `/api/v1/credentials` shows and what a session's
    /// `credential_id` records.
    pub id: Uuid,
    pub user_id: UserId,
    /// The authenticator's credential id, base64url without padding.
    pub credential_id: String,
    /// The verifier's serialised credential record (opaque here).
    pub record: String,
    /// Signature counter (0 for authenticators that do not count).
    pub counter: u32,
    /// BE: may be synced; fixed for the credential's lifetime.
    pub backup_eligible: bool,
    /// BS: currently synced / backed up. Updated at every login.
    pub backup_state: bool,
    /// Whether the user was verified (PIN, biometric) at registration: such
    /// a passkey is a multi-factor authenticator (NIST SP 800-63B aal2).
    pub user_verified: bool,
    /// The authenticator model the authenticator claims (nil if undisclosed).
    pub aaguid: Uuid,
    pub transports: Vec<String>,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// What a successful login changes on a passkey, written as one conditional
/// update on `previous_counter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasskeyUse {
    pub id: Uuid,
    pub previous_counter: u32,
    pub counter: u32,
    pub backup_state: bool,
    pub at: Timestamp,
}

/// How a removal went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    Removed,
    NotFound,
    /// Refused: fewer than the required number of passkeys would remain.
    LastCredential,
}

/// The credentials a user holds, counted per method inside the unit of work
/// that removes one (after locking the user's row), so the last-way-in rule
/// is judged on what is stored at that moment, not on an earlier read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaysIn {
    pub passkeys: u32,
    pub totp: u32,
    pub phones: u32,
    /// Unused recovery codes (a spent set is no way in).
    pub recovery_codes: u32,
}

impl WaysIn {
    /// The methods the user holds at least one credential of.
    pub fn methods(&self) -> Vec<crate::method::MethodName> {
        use crate::method::MethodName;
        [
            (MethodName::Passkey, self.passkeys),
            (MethodName::Totp, self.totp),
            (MethodName::SmsOtp, self.phones),
            (MethodName::RecoveryCode, self.recovery_codes),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(m, _)| m)
        .collect()
    }
}

/// The server-side state of an enrollment ceremony (passkey registration),
/// bound to the session that began it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ceremony {
    pub id: Uuid,
    pub session_id: SessionId,
    pub user_id: UserId,
    /// Opaque, serialised by the method (never sent to a client).
    pub state: String,
    /// The name the user asked for, if any.
    pub name: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A phone number the user proved they receive texts at (an `sms_otp`
/// credential). Only a verified number is stored here: a number typed in
/// but not yet confirmed lives in an enrollment ceremony, and a number an
/// administrator set on the account (`users.phone`) is a contact for
/// notices, never a way in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneCredential {
    pub id: Uuid,
    pub user_id: UserId,
    /// E.164, normalised by the phone-number library.
    pub phone: Phone,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// An authenticator app's shared secret (RFC 6238), as stored.
///
/// Invariants every store keeps (checked by the conformance suite):
/// - `seed` is stored exactly as given (sealed by the app: the store never
///   sees the plaintext);
/// - a login advances `last_step` with one conditional write on
///   `last_step < step`, so of any number of concurrent uses of one code
///   (one time step) exactly one is recorded (RFC 6238 §5.2).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCredential {
    pub id: Uuid,
    pub user_id: UserId,
    pub name: String,
    /// The seed sealed with the key ring for [`TotpCredential::binding`].
    pub sealed_seed: Vec<u8>,
    /// The last time step a code was accepted for (-1: never).
    pub last_step: i64,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

impl TotpCredential {
    /// What the seed is sealed for: this row only.
    pub fn binding(id: Uuid) -> crate::sealing::Binding {
        crate::store::SealedKind::TotpSeed.binding(&id.to_string())
    }
}

impl std::fmt::Debug for TotpCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpCredential")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// A user's set of recovery codes: how many are left, out of how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryCodeSet {
    /// Every code of a set shares this id: it is the set's id in the
    /// credentials list.
    pub id: Uuid,
    pub user_id: UserId,
    pub total: u32,
    pub left: u32,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}
