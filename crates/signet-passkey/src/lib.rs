//! Signet's WebAuthn ceremonies: passkey registration (WebAuthn Level 3
//! §7.1) and authentication (§7.2), the checks Signet adds to them, decoys
//! for unknown users, and AAGUID names. No I/O: the caller stores what
//! [`RelyingParty::finish_registration`] returns, keeps ceremony state on
//! the server, and looks credentials up.
//!
//! # Shape of a ceremony
//! ```text
//! start_registration(user, exclude, policy)  -> (publicKey JSON, RegistrationState)
//!   ... browser: navigator.credentials.create(), PublicKeyCredential.toJSON() ...
//! finish_registration(state, credential JSON, policy) -> NewPasskey  (store it; unique credential id)
//!
//! start_authentication(Some(passkeys) | None, policy)  -> (publicKey JSON, AuthenticationState)
//! start_decoy_authentication(key, identifier, policy)   -> same shape, never succeeds
//!   ... browser: navigator.credentials.get(), toJSON() ...
//! Assertion::parse(credential JSON) -> credential_id  (look the credential up by it)
//! finish_authentication(state, assertion, stored, policy, counter policy) -> Verified
//!   -> one UPDATE (counter, BS, last_used_at), Verified::proof() for the session
//! ```
//!
//! # Why webauthn-rs-core and not the `webauthn_rs::Webauthn` wrapper
//! Issue 3 asks for webauthn-rs 0.6. Its safe wrapper, `webauthn_rs::Webauthn`,
//! is a thin layer over `webauthn_rs_core::WebauthnCore` (the same crate
//! version, `=0.6.2`, which does all the parsing and cryptography) that
//! hard-codes choices Signet's contract needs to make per tier:
//! - `start_passkey_registration`, `start_passkey_authentication` and
//!   `start_discoverable_authentication` always use
//!   `UserVerificationPolicy::Required`, so the policy key
//!   `user_verification = "preferred"` (an aal1 passkey, docs/policy.md §2)
//!   could not be expressed;
//! - `start_passkey_registration` always sets `require_resident_key(false)`
//!   (`residentKey: "discouraged"`), and its state would record that;
//! - `start_passkey_authentication` sets `allow_backup_eligible_upgrade(true)`,
//!   accepting a BE flip from 0 to 1, which issue 3 requires us to refuse;
//! - the counter check cannot be relaxed per tier through `Passkey` without
//!   the `danger-credential-internals` feature.
//!
//! So this crate builds `WebauthnCore` directly, and re-applies every safe
//! default of the wrapper: the same constructor arguments (exact origins, no
//! subdomains, no "any port", no cross-origin), the RP ID validated against
//! every origin (§5.1.3, §5.1.4.1), ES256/ES384/RS256, `"none"` attestation, the
//! `credProtect` extension when UV is required, strict counters by default.
//! What `danger-allow-state-serialisation` protects in the wrapper — that
//! ceremony state is serialised only to be kept server-side — is this
//! crate's [`RegistrationState`] and [`AuthenticationState`]: opaque, with
//! redacted `Debug`, versioned JSON for the store, never part of a response.
//!
//! # Security properties (see each module for the step-by-step)
//! - Every §7.2 check runs, split between webauthn-rs and this crate as the
//!   table in [`authentication`] shows; BE equality and the counter are
//!   checked by both. The assertion signature (step 21) is verified with
//!   aws-lc-rs ([`signature`]), after webauthn-rs-core has made every other
//!   check; its own RustCrypto verifier stays as the reference the tests
//!   compare against (docs/adr/0030-assertion-signatures-with-aws-lc.md).
//! - Policy is enforced at registration **and** at login: UV, `device_bound_only`
//!   (refuse backup-eligible credentials), `allowed_aaguids`.
//! - The AAGUID is read by us from the attested credential data
//!   ([`authdata`]), because webauthn-rs keeps it only for attestation
//!   formats that carry one. With `"none"` attestation it is the
//!   authenticator's claim: an allow-list keeps honest and managed
//!   authenticators to the listed models, and aal3 (device-bound + UV +
//!   allow-listed AAGUID) rests on that claim. Verifying attestation chains
//!   would need a trust store such as the FIDO Metadata Service, which
//!   Signet does not ship.
//! - Errors ([`PasskeyError`]) all map to 4xx with stable codes; malformed or
//!   hostile JSON and CBOR are errors, never panics.
//! - Ceremony state is single-use by construction in Rust (`finish_*` takes
//!   it by value) and in storage by the caller (take it out atomically, with
//!   its 5-minute expiry, bound to the flow or session that began it).
//!   An old response replayed into a new ceremony fails on the challenge;
//!   a replay of the same ceremony's state also fails on the counter for
//!   authenticators that count.
//!
//! # Threads
//! `start_*` are cheap (a random challenge). `finish_*` verify signatures
//! (and for registration, possibly attestation certificate chains): call them
//! from `tokio::task::spawn_blocking`, never on the reactor. [`RelyingParty`]
//! is `Clone + Send + Sync` for that.
//!
//! # Randomness and time
//! Challenges (32 bytes, §13.4.3) come from webauthn-rs-core's OS-seeded
//! CSPRNG; decoys from HMAC; nothing here reads the clock. Ceremony expiry is
//! the store's, on `signet_core::clock`.

pub mod aaguid;
pub mod authdata;
pub mod authentication;
pub mod credential;
pub mod decoy;
pub mod error;
pub mod registration;
pub mod rp;
pub mod signature;
mod state;

pub use aaguid::authenticator_name;
pub use authentication::{Assertion, AuthenticationState, CounterPolicy, Verified};
pub use credential::{CredentialId, NewPasskey, SerializedPasskey, StoredPasskey};
pub use decoy::{decoy_allow_credentials, AllowedCredential};
pub use error::{ConfigError, PasskeyError};
pub use registration::RegistrationState;
pub use rp::{RelyingParty, RelyingPartyConfig, CEREMONY_TIMEOUT};
pub use signature::{CredentialPublicKey, Verifier};
