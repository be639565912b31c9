//! Test support: a software authenticator (1Password's `passkey` crates, a
//! real CTAP2 authenticator and WebAuthn client in software), and a forge
//! that builds and signs WebAuthn responses byte by byte with a key we
//! control, so that one field at a time can be made wrong while everything
//! else, the signature included, stays valid.

#![allow(dead_code)]

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use passkey::types::Passkey;
use serde_cbor_2::Value as Cbor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use url::Url;

pub const ORIGIN: &str = "https://login.example.com";
pub const RP_ID: &str = "example.com";
pub const ONE_PASSWORD: &str = "bada5566-a7aa-401f-bd96-45619a55120d";
pub const YUBIKEY: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

pub fn challenge_of(options: &Value) -> Vec<u8> {
    unb64(options["challenge"].as_str().unwrap())
}

/// The person at the authenticator: always present, verified if able.
pub struct Person {
    pub can_verify: bool,
}

#[async_trait::async_trait]
impl UserValidationMethod for Person {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Passkey>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence,
            verification: verification && self.can_verify,
        })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(self.can_verify)
    }
}

pub type SoftClient = Client<Option<Passkey>, Person, RustCryptoBackend, public_suffix::PublicSuffixList, ()>;

/// One software authenticator holding one discoverable credential.
pub struct SoftAuthenticator {
    pub client: SoftClient,
    pub origin: Url,
}

impl SoftAuthenticator {
    pub fn new(aaguid: &str, can_verify: bool, counting: bool) -> Self {
        let aaguid = Aaguid::from(*uuid::Uuid::parse_str(aaguid).unwrap().as_bytes());
        let mut auth = Authenticator::new(aaguid, None, Person { can_verify }, RustCryptoBackend);
        auth.set_make_credentials_with_signature_counter(counting);
        let client = Client::new(auth)
            .user_verification_when_preferred(can_verify)
            .allows_insecure_localhost(true);
        Self {
            client,
            origin: Url::parse(ORIGIN).unwrap(),
        }
    }

    /// The page's origin, as the browser reports it.
    pub fn at(mut self, origin: &str) -> Self {
        self.origin = Url::parse(origin).unwrap();
        self
    }

    /// `navigator.credentials.create({publicKey})` then `toJSON()`.
    pub async fn create(&mut self, public_key: &Value) -> Value {
        let options: CredentialCreationOptions = serde_json::from_value(json!({ "publicKey": public_key })).unwrap();
        let created = self
            .client
            .register(&self.origin, options, DefaultClientData)
            .await
            .unwrap();
        serde_json::to_value(created).unwrap()
    }

    /// `navigator.credentials.get({publicKey})` then `toJSON()`.
    pub async fn get(&mut self, public_key: &Value) -> Value {
        let options: CredentialRequestOptions = serde_json::from_value(json!({ "publicKey": public_key })).unwrap();
        let got = self
            .client
            .authenticate(&self.origin, options, DefaultClientData)
            .await
            .unwrap();
        serde_json::to_value(got).unwrap()
    }

    pub fn passkey(&self) -> Passkey {
        self.client.authenticator().store().clone().unwrap()
    }

    /// A forge that signs with this authenticator's own private key.
    pub fn forge(&self) -> Forge {
        let pk = self.passkey();
        // COSE_Key EC2 parameter -4 is the private scalar d (RFC 9053 §7.1.1).
        let d = pk
            .key
            .params
            .iter()
            .find_map(|(label, value)| (*label == passkey::crypto::coset::Label::Int(-4)).then(|| value.as_bytes()))
            .flatten()
            .unwrap()
            .clone();
        Forge {
            key: SigningKey::from_slice(&d).unwrap(),
            credential_id: pk.credential_id.to_vec(),
            user_handle: pk.user_handle.map(|h| h.to_vec()),
            // passkey-authenticator reports BE and BS, like the synced
            // password-manager passkeys it implements.
            flags: UP | UV | BE | BS,
        }
    }
}

/// Authenticator-data flag bits (WebAuthn L3 §6.1).
pub const UP: u8 = 0x01;
pub const UV: u8 = 0x04;
pub const BE: u8 = 0x08;
pub const BS: u8 = 0x10;
pub const AT: u8 = 0x40;

/// Builds and signs responses as an authenticator and browser would.
#[derive(Clone)]
pub struct Forge {
    pub key: SigningKey,
    pub credential_id: Vec<u8>,
    pub user_handle: Option<Vec<u8>>,
    /// The flags this authenticator normally reports.
    pub flags: u8,
}

/// Every field of an assertion, valid by default for a challenge.
#[derive(Clone)]
pub struct AssertionParts {
    pub client_type: String,
    pub challenge: Vec<u8>,
    pub origin: String,
    pub cross_origin: bool,
    pub top_origin: Option<String>,
    pub rp_id: String,
    pub flags: u8,
    pub counter: u32,
    pub user_handle: Option<Vec<u8>>,
    pub credential_id: Vec<u8>,
    pub corrupt_signature: bool,
}

impl Forge {
    /// A fresh device-bound credential (BE=0) with a key of our own, like a
    /// security key: the `passkey` crate only makes synced ones.
    pub fn new_credential(seed: u8, credential_id: Vec<u8>, user_handle: Vec<u8>) -> Self {
        let mut d = [0u8; 32];
        d[31] = seed.max(1);
        d[0] = 0x42;
        Forge {
            key: SigningKey::from_slice(&d).unwrap(),
            credential_id,
            user_handle: Some(user_handle),
            flags: UP | UV,
        }
    }

    pub fn parts(&self, challenge: Vec<u8>) -> AssertionParts {
        AssertionParts {
            client_type: "webauthn.get".into(),
            challenge,
            origin: ORIGIN.into(),
            cross_origin: false,
            top_origin: None,
            rp_id: RP_ID.into(),
            flags: self.flags,
            counter: 0,
            user_handle: self.user_handle.clone(),
            credential_id: self.credential_id.clone(),
            corrupt_signature: false,
        }
    }

    fn client_data(ty: &str, challenge: &[u8], origin: &str, cross_origin: bool, top_origin: Option<&str>) -> Vec<u8> {
        let mut c = json!({
            "type": ty,
            "challenge": b64(challenge),
            "origin": origin,
            "crossOrigin": cross_origin,
        });
        if let Some(t) = top_origin {
            c["topOrigin"] = json!(t);
        }
        serde_json::to_vec(&c).unwrap()
    }

    fn rp_id_hash(rp_id: &str) -> Vec<u8> {
        Sha256::digest(rp_id.as_bytes()).to_vec()
    }

    /// An assertion, `toJSON()` shaped.
    pub fn assertion(&self, p: &AssertionParts) -> Value {
        let client_data = Self::client_data(
            &p.client_type,
            &p.challenge,
            &p.origin,
            p.cross_origin,
            p.top_origin.as_deref(),
        );
        let mut auth_data = Self::rp_id_hash(&p.rp_id);
        auth_data.push(p.flags);
        auth_data.extend_from_slice(&p.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let sig: Signature = self.key.sign(&signed);
        let mut der = sig.to_der().as_bytes().to_vec();
        if p.corrupt_signature {
            let last = der.len() - 1;
            der[last] ^= 0x01;
        }
        let mut response = json!({
            "clientDataJSON": b64(&client_data),
            "authenticatorData": b64(&auth_data),
            "signature": b64(&der),
        });
        if let Some(h) = &p.user_handle {
            response["userHandle"] = json!(b64(h));
        }
        json!({
            "id": b64(&p.credential_id),
            "rawId": b64(&p.credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
            "authenticatorAttachment": "cross-platform",
        })
    }

    /// A `"none"`-attestation registration response for this key.
    pub fn registration(&self, challenge: &[u8], flags: u8, aaguid: &str) -> Value {
        self.registration_at(challenge, flags, aaguid, ORIGIN, RP_ID)
    }

    /// [`Forge::registration`] for another relying party (a test server).
    pub fn registration_at(&self, challenge: &[u8], flags: u8, aaguid: &str, origin: &str, rp_id: &str) -> Value {
        let client_data = Self::client_data("webauthn.create", challenge, origin, false, None);
        let point = self.key.verifying_key().to_sec1_point(false);
        let xy = point.as_bytes();
        let mut cose = BTreeMap::new();
        cose.insert(Cbor::Integer(1), Cbor::Integer(2)); // kty: EC2
        cose.insert(Cbor::Integer(3), Cbor::Integer(-7)); // alg: ES256
        cose.insert(Cbor::Integer(-1), Cbor::Integer(1)); // crv: P-256
        cose.insert(Cbor::Integer(-2), Cbor::Bytes(xy[1..33].to_vec()));
        cose.insert(Cbor::Integer(-3), Cbor::Bytes(xy[33..65].to_vec()));
        let mut auth_data = Self::rp_id_hash(rp_id);
        auth_data.push(flags | AT);
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(uuid::Uuid::parse_str(aaguid).unwrap().as_bytes());
        auth_data.extend_from_slice(&u16::try_from(self.credential_id.len()).unwrap().to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend_from_slice(&serde_cbor_2::to_vec(&Cbor::Map(cose)).unwrap());
        let mut att = BTreeMap::new();
        att.insert(Cbor::Text("fmt".into()), Cbor::Text("none".into()));
        att.insert(Cbor::Text("attStmt".into()), Cbor::Map(BTreeMap::new()));
        att.insert(Cbor::Text("authData".into()), Cbor::Bytes(auth_data));
        let attestation_object = serde_cbor_2::to_vec(&Cbor::Map(att)).unwrap();
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation_object),
                "transports": ["hybrid", "internal"],
            },
            "clientExtensionResults": { "credProps": { "rk": true } },
            "authenticatorAttachment": "platform",
        })
    }
}
