//! The assertion signature, WebAuthn L3 §7.2 step 21: "Using
//! credentialPublicKey, verify that sig is a valid signature over the binary
//! concatenation of authData and hash."
//!
//! Two verifiers, one answer (docs/adr/0030-assertion-signatures-with-aws-lc.md):
//! - [`Verifier::AwsLc`], what logins use: aws-lc-rs (AWS-LC, a FIPS 140-3
//!   validated BoringSSL descendant, already in the workspace for the server's
//!   other crypto). About five times faster than the pure-Rust P-256 below.
//! - [`Verifier::WebauthnCore`], the reference: webauthn-rs-core's own
//!   `COSEKey::verify_signature` (RustCrypto `p256`, `p384` and `rsa` through
//!   crypto-glue). Kept for the agreement tests and the benchmark, and as the
//!   path a test can compare a whole ceremony against.
//!
//! webauthn-rs-core 0.6.2 has no switch for its crypto backend, so the choice
//! is made here, after every other check has run (see [`crate::authentication`]).
//!
//! # The rules, per COSE key (RFC 9053 §2.1, §7.1; RFC 8812 §2)
//! The key, not the `alg` label, decides, as in webauthn-rs-core:
//! - EC2 P-256 → ECDSA with SHA-256, ASN.1 DER signature (WebAuthn L3 §6.5.6
//!   "Signature Formats": ES256 signatures are DER `Ecdsa-Sig-Value`);
//! - EC2 P-384 → ECDSA with SHA-384, DER;
//! - RSA → RSASSA-PKCS1-v1_5 with SHA-256 (RS256), modulus 2048 to 8192 bits.
//!   The reference also takes 1024-bit to 2047-bit moduli; we do not (NIST SP
//!   800-131A rev. 2 §3 disallows RSA below 2048 bits for signatures), so such a
//!   credential, which no current authenticator makes, would stop verifying;
//! - EC2 P-521, OKP (EdDSA): refused by both. Registration offers ES256, ES384
//!   and RS256 only, so no such key is ever stored.
//!
//! Any refusal of the signature itself is `invalid_signature`; a stored key
//! that cannot be a key at all is `invalid_credential`, as before.

use aws_lc_rs::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm, ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1,
    RSA_PKCS1_2048_8192_SHA256,
};
use webauthn_rs_core::proto::{COSEAlgorithm, COSEEC2Key, COSEKey, COSEKeyType, COSERSAKey, ECDSACurve};

use crate::error::PasskeyError;

/// A credential's public key as registered (the COSE key webauthn-rs-core
/// decoded and stored in the credential record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialPublicKey(pub(crate) COSEKey);

impl CredentialPublicKey {
    /// An ES256 key from its affine coordinates (32 bytes each, big-endian),
    /// as in a COSE EC2 key (RFC 9053 §7.1.1). For tests and the benchmark;
    /// logins read the key from the stored credential record.
    pub fn es256(x: &[u8], y: &[u8]) -> Self {
        Self::ec2(COSEAlgorithm::ES256, ECDSACurve::SECP256R1, x, y)
    }

    /// An ES384 key from its affine coordinates (48 bytes each).
    pub fn es384(x: &[u8], y: &[u8]) -> Self {
        Self::ec2(COSEAlgorithm::ES384, ECDSACurve::SECP384R1, x, y)
    }

    fn ec2(alg: COSEAlgorithm, curve: ECDSACurve, x: &[u8], y: &[u8]) -> Self {
        Self(COSEKey {
            type_: alg,
            key: COSEKeyType::EC_EC2(COSEEC2Key {
                curve,
                x: x.to_vec(),
                y: y.to_vec(),
            }),
        })
    }

    /// An RS256 key from its modulus and its 3-byte public exponent (COSE
    /// RSA key, RFC 8230 §4), both big-endian.
    pub fn rs256(n: &[u8], e: [u8; 3]) -> Self {
        Self(COSEKey {
            type_: COSEAlgorithm::RS256,
            key: COSEKeyType::RSA(COSERSAKey { n: n.to_vec(), e }),
        })
    }
}

/// Which library checks the signature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verifier {
    /// aws-lc-rs: what the server uses.
    #[default]
    AwsLc,
    /// webauthn-rs-core's RustCrypto verification: the reference.
    WebauthnCore,
}

impl Verifier {
    /// Verifies `signature` over `signed` (authenticatorData ‖
    /// SHA-256(clientDataJSON)) with `key`.
    pub fn verify(self, key: &CredentialPublicKey, signature: &[u8], signed: &[u8]) -> Result<(), PasskeyError> {
        match self {
            Verifier::AwsLc => verify_aws_lc(&key.0, signature, signed),
            Verifier::WebauthnCore => match key.0.verify_signature(signature, signed)? {
                true => Ok(()),
                false => Err(PasskeyError::InvalidSignature),
            },
        }
    }
}

fn verify_aws_lc(key: &COSEKey, signature: &[u8], signed: &[u8]) -> Result<(), PasskeyError> {
    match &key.key {
        COSEKeyType::EC_EC2(ec) => {
            let (alg, len): (&'static dyn VerificationAlgorithm, usize) = match ec.curve {
                ECDSACurve::SECP256R1 => (&ECDSA_P256_SHA256_ASN1, 32),
                ECDSACurve::SECP384R1 => (&ECDSA_P384_SHA384_ASN1, 48),
                ECDSACurve::SECP521R1 => return Err(PasskeyError::AlgorithmNotAllowed),
            };
            if ec.x.len() != len || ec.y.len() != len {
                return Err(PasskeyError::malformed("the stored EC public key has the wrong size"));
            }
            // SEC 1 v2 §2.3.3, uncompressed: 0x04 ‖ x ‖ y. aws-lc checks that
            // the point is on the curve before it verifies.
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&ec.x);
            point.extend_from_slice(&ec.y);
            UnparsedPublicKey::new(alg, point)
                .verify(signed, signature)
                .map_err(|_| PasskeyError::InvalidSignature)
        }
        COSEKeyType::RSA(rsa) => {
            // aws-lc refuses big-endian integers with a leading zero byte;
            // the value is the same without them.
            let e = strip_leading_zeros(&rsa.e);
            let n = strip_leading_zeros(&rsa.n);
            RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, signed, signature)
                .map_err(|_| PasskeyError::InvalidSignature)
        }
        COSEKeyType::EC_OKP(_) => Err(PasskeyError::AlgorithmNotAllowed),
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(first..).unwrap_or_default()
}

/// A key that webauthn-rs-core 0.6.2 accepts as a key but for which its
/// `verify_signature` answers "no" without looking at the signature: P-521,
/// whose verification it leaves unimplemented (`Ok(false)`). Given in place of
/// the real key, it lets webauthn-rs-core run every check of its assertion
/// verification and stop at the very last one, the signature, with
/// `AuthenticationFailure`, the error it returns nowhere else. The point is
/// the P-521 base point (SEC 2 v2 §2.6.1), so it is on the curve.
///
/// Should a later webauthn-rs-core verify P-521 and a client send a P-521
/// signature by this point's known private key (1), the caller still refuses:
/// it treats success with this key as a failure, and only its own
/// verification with the real key can accept.
pub(crate) fn deferred_key() -> COSEKey {
    const GX: [u8; 66] = [
        0x00, 0xc6, 0x85, 0x8e, 0x06, 0xb7, 0x04, 0x04, 0xe9, 0xcd, 0x9e, 0x3e, 0xcb, 0x66, 0x23, 0x95, 0xb4, 0x42,
        0x9c, 0x64, 0x81, 0x39, 0x05, 0x3f, 0xb5, 0x21, 0xf8, 0x28, 0xaf, 0x60, 0x6b, 0x4d, 0x3d, 0xba, 0xa1, 0x4b,
        0x5e, 0x77, 0xef, 0xe7, 0x59, 0x28, 0xfe, 0x1d, 0xc1, 0x27, 0xa2, 0xff, 0xa8, 0xde, 0x33, 0x48, 0xb3, 0xc1,
        0x85, 0x6a, 0x42, 0x9b, 0xf9, 0x7e, 0x7e, 0x31, 0xc2, 0xe5, 0xbd, 0x66,
    ];
    const GY: [u8; 66] = [
        0x01, 0x18, 0x39, 0x29, 0x6a, 0x78, 0x9a, 0x3b, 0xc0, 0x04, 0x5c, 0x8a, 0x5f, 0xb4, 0x2c, 0x7d, 0x1b, 0xd9,
        0x98, 0xf5, 0x44, 0x49, 0x57, 0x9b, 0x44, 0x68, 0x17, 0xaf, 0xbd, 0x17, 0x27, 0x3e, 0x66, 0x2c, 0x97, 0xee,
        0x72, 0x99, 0x5e, 0xf4, 0x26, 0x40, 0xc5, 0x50, 0xb9, 0x01, 0x3f, 0xad, 0x07, 0x61, 0x35, 0x3c, 0x70, 0x86,
        0xa2, 0x72, 0xc2, 0x40, 0x88, 0xbe, 0x94, 0x76, 0x9f, 0xd1, 0x66, 0x50,
    ];
    COSEKey {
        type_: COSEAlgorithm::ES521,
        key: COSEKeyType::EC_EC2(COSEEC2Key {
            curve: ECDSACurve::SECP521R1,
            x: GX.to_vec(),
            y: GY.to_vec(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deferred_key_is_a_key_whose_verification_always_says_no() {
        // A valid point (webauthn-rs-core would say EcdsaPointInvalid
        // otherwise), and "no" whatever the signature.
        for sig in [&[][..], &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01], &[0xff; 139]] {
            assert_eq!(deferred_key().verify_signature(sig, b"data"), Ok(false));
        }
    }

    #[test]
    fn keys_we_never_offer_are_refused_by_both() {
        let p521 = CredentialPublicKey(deferred_key());
        for v in [Verifier::AwsLc, Verifier::WebauthnCore] {
            assert!(v.verify(&p521, &[0x30, 0], b"x").is_err());
        }
        let short = CredentialPublicKey::es256(&[1; 31], &[1; 32]);
        assert!(matches!(
            Verifier::AwsLc.verify(&short, &[0x30, 0], b"x"),
            Err(PasskeyError::InvalidCredential(_))
        ));
        assert!(matches!(
            Verifier::WebauthnCore.verify(&short, &[0x30, 0], b"x"),
            Err(PasskeyError::InvalidCredential(_))
        ));
    }

    #[test]
    fn leading_zeros_are_dropped_from_rsa_integers() {
        assert_eq!(strip_leading_zeros(&[0, 0, 3]), &[3]);
        assert_eq!(strip_leading_zeros(&[1, 0, 1]), &[1, 0, 1]);
        assert_eq!(strip_leading_zeros(&[0, 0]), &[] as &[u8]);
    }
}
