//! The bench's own authenticator for the load loop: it answers a passkey
//! request with an assertion signed by aws-lc-rs, from the key the
//! software authenticator ([`SoftAuthenticator`], 1Password's `passkey`
//! crates) created and registered.
//!
//! Why: the load generator shares the two cores with the server it
//! measures. The software authenticator is a faithful CTAP2 device and
//! browser (CBOR, a RustCrypto P-256 signature, about 0.2 ms of CPU per
//! assertion), and it cost the bench a sixth of the machine at full load,
//! CPU the server then did not have. A real client signs on its own
//! device, so the cheaper the bench's signature, the closer the figures
//! are to the server's own cost. Enrollment still goes through the
//! software authenticator, and the first login of each user checks that
//! the server accepts this signer's assertions (it refuses anything else:
//! the flags and counter below are what the authenticator reports).

use anyhow::Context;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::logins::SoftAuthenticator;

/// One registered credential's key, able to sign assertions.
pub(crate) struct FastPasskey {
    pair: EcdsaKeyPair,
    credential_id: String,
    user_handle: Option<String>,
    /// The flags the software authenticator reports (UP, UV, BE, BS).
    flags: u8,
    origin: String,
    rng: SystemRandom,
}

impl FastPasskey {
    /// The key of `auth`'s credential (enrolled already), for a page at
    /// `origin`.
    pub(crate) fn of(auth: &SoftAuthenticator, origin: &str) -> anyhow::Result<Self> {
        let forge = auth.forge();
        let private = forge.key.to_bytes();
        let public = forge.key.verifying_key().to_sec1_point(false);
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            private.as_slice(),
            public.as_bytes(),
        )
        .map_err(|e| anyhow::anyhow!("the authenticator's key: {e}"))?;
        Ok(Self {
            pair,
            credential_id: URL_SAFE_NO_PAD.encode(&forge.credential_id),
            user_handle: forge.user_handle.map(|h| URL_SAFE_NO_PAD.encode(h)),
            flags: forge.flags,
            origin: origin.to_owned(),
            rng: SystemRandom::new(),
        })
    }

    /// `navigator.credentials.get({publicKey})` then `toJSON()`, for the
    /// request options `public_key` (WebAuthn L3 §7.2: the signature covers
    /// the authenticator data and the hash of the client data).
    pub(crate) fn get(&self, public_key: &Value) -> anyhow::Result<Value> {
        let challenge = public_key["challenge"].as_str().context("challenge")?;
        let rp_id = public_key["rpId"].as_str().context("rpId")?;
        let client_data = serde_json::to_vec(&json!({
            "type": "webauthn.get",
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        }))?;
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags);
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature = self
            .pair
            .sign(&self.rng, &signed)
            .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
        let mut response = json!({
            "clientDataJSON": URL_SAFE_NO_PAD.encode(&client_data),
            "authenticatorData": URL_SAFE_NO_PAD.encode(&auth_data),
            "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
        });
        if let Some(h) = &self.user_handle {
            response["userHandle"] = json!(h);
        }
        Ok(json!({
            "id": self.credential_id,
            "rawId": self.credential_id,
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }))
    }
}
