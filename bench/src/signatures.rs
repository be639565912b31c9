//! `--only signatures`: assertion signature verifies per second on one
//! core, for the verifier the server uses (aws-lc-rs) and the one it used
//! before (webauthn-rs-core's RustCrypto `p256`), on the same ES256 key,
//! message and signature. No server, no database: only the §7.2 step 21
//! cost that every passkey login and step-up pays once
//! (docs/adr/0030-assertion-signatures-with-aws-lc.md).
//!
//! The message has the shape of a real one: 37 bytes of authenticatorData
//! followed by the 32-byte SHA-256 of clientDataJSON. Each verifier runs for
//! `--seconds-per-verifier` (default 1 s) on the calling thread, after a
//! short warm-up; the figure is the count divided by the elapsed time, so
//! other work on the machine lowers it.

use std::time::{Duration, Instant};

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use signet_passkey::{CredentialPublicKey, Verifier};

use crate::Args;

/// An ES256 key, a message shaped like `authenticatorData ‖ hash`, and its
/// DER signature, made with RustCrypto's signer.
struct Sample {
    key: CredentialPublicKey,
    message: Vec<u8>,
    signature: Vec<u8>,
}

fn sample() -> anyhow::Result<Sample> {
    let signer = SigningKey::from_slice(&[7u8; 32]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let point = signer.verifying_key().to_sec1_point(false);
    let bytes = point.as_bytes();
    let (x, y) = (bytes.get(1..33), bytes.get(33..65));
    let (Some(x), Some(y)) = (x, y) else {
        anyhow::bail!("unexpected SEC 1 point length {}", bytes.len())
    };
    let message = [0x5au8; 37 + 32].to_vec();
    let signature: Signature = signer.sign(&message);
    Ok(Sample {
        key: CredentialPublicKey::es256(x, y),
        message,
        signature: signature.to_der().as_bytes().to_vec(),
    })
}

/// Verifies per second on this thread for about `duration`. Every verify
/// must succeed: a verifier that refused the valid signature would look fast.
pub fn verifies_per_second(verifier: Verifier, duration: Duration) -> anyhow::Result<f64> {
    let s = sample()?;
    let warm_up = Instant::now();
    while warm_up.elapsed() < duration / 10 {
        verifier.verify(&s.key, &s.signature, &s.message)?;
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < duration {
        for _ in 0..16 {
            verifier.verify(&s.key, &s.signature, &s.message)?;
        }
        n += 16;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

pub fn name(v: Verifier) -> &'static str {
    match v {
        Verifier::AwsLc => "aws-lc-rs (server)",
        Verifier::WebauthnCore => "webauthn-rs-core RustCrypto p256 (before)",
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let duration = Duration::from_secs_f64(args.seconds_per_verifier.max(0.1));
    println!("signet-bench signatures: ES256 assertion verifies per second, one core");
    println!("{:<44} {:>12} {:>10}", "verifier", "verifies/s", "µs each");
    let mut results = Vec::new();
    for v in [Verifier::WebauthnCore, Verifier::AwsLc] {
        let per_second = verifies_per_second(v, duration)?;
        println!("{:<44} {:>12.0} {:>10.1}", name(v), per_second, 1e6 / per_second);
        results.push(per_second);
    }
    if let [before, after] = results[..] {
        println!("speed-up: {:.1}x", after / before);
    }
    Ok(())
}
