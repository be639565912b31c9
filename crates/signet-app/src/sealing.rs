//! Secrets that must be readable again are stored sealed by the key ring of
//! [`signet_core::sealing`] (DESIGN.md: "TOTP seeds and signing keys are
//! encrypted at rest"). This module holds the two use cases around them:
//!
//! - [`server_secret`]: a random secret shared by every node (the passkey
//!   decoy key), created sealed by whichever node writes first, and sealed in
//!   place if an older version left it in plaintext;
//! - [`reseal_all`]: `signet keys rotate-sealing`, which re-seals every value
//!   of every [`SealedKind`] (server secrets, TOTP seeds) under the ring's
//!   current key.
//!
//! It also holds [`Envelope`], the one way a value travels sealed in what a
//! client holds instead of being stored (flow handles, ADR 0014;
//! authorization codes, ADR 0038).
//!
//! Both rewrite a row only by compare-and-swap on its exact old bytes
//! ([`SealedSecretStore::swap_server_secret`]), so any number of nodes and
//! CLI runs may do it at once: a loser re-reads and finds the value already
//! done. Re-sealing never changes a plaintext, so running servers that hold
//! the decoy key in memory keep producing the same decoys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use signet_core::audit::{Actor, AuditEvent, EventType, Outcome};
use signet_core::clock::Timestamp;
use signet_core::sealing::{Binding, KeyRing, SecretBytes, MIN_SEALED_LEN};
use signet_core::store::{CredentialStore, SealedKind, SealedSecretStore, StoredSecret};
use signet_core::unit_of_work::UnitOfWork;
use signet_core::{Error, Result};

/// How often a compare-and-swap is retried after losing to another writer.
/// Each loss means someone else wrote a newer value, so a few rounds are
/// always enough unless the key configuration differs between writers.
const SWAP_ATTEMPTS: usize = 5;

/// The secret stored under `name` in `server_secrets`: `len` random bytes,
/// sealed for [`Binding::server_secret`]. The first node to start stores its
/// candidate, every other node opens that one (insert-if-absent), so all
/// nodes share one value. A plaintext value of exactly `len` bytes (`len`
/// below [`MIN_SEALED_LEN`], so it cannot be a sealed value) was written by a
/// version before sealing: it is kept, and sealed in place.
pub async fn server_secret<S>(store: &S, ring: &KeyRing, name: &str, len: usize, now: Timestamp) -> Result<SecretBytes>
where
    S: CredentialStore + SealedSecretStore + ?Sized,
{
    let binding = Binding::server_secret(name);
    let mut raw = vec![0u8; len];
    signet_core::secret::fill_random(&mut raw);
    let fresh = SecretBytes::new(raw);
    let candidate = ring.seal(fresh.expose_secret(), &binding).map_err(Error::internal)?;
    let mut stored = store.server_secret(name, &candidate, now).await?;
    for _ in 0..SWAP_ATTEMPTS {
        if !is_legacy_plaintext(&stored, len) {
            let opened = ring
                .open(&stored, &binding)
                .map_err(|e| Error::internal_msg(format!("server secret {name}: {e}")))?;
            return Ok(opened.plaintext);
        }
        let sealed = ring.seal(&stored, &binding).map_err(Error::internal)?;
        if store.swap_server_secret(name, &stored, &sealed).await? {
            tracing::info!(secret = name, key_id = %ring.current_id(), "sealed a server secret stored in plaintext by an earlier version");
            return Ok(SecretBytes::new(stored));
        }
        // Another node sealed it first: read what it wrote.
        stored = store.server_secret(name, &candidate, now).await?;
    }
    Err(Error::internal_msg(format!(
        "server secret {name}: it kept changing while being sealed"
    )))
}

fn is_legacy_plaintext(stored: &[u8], len: usize) -> bool {
    len < MIN_SEALED_LEN && stored.len() == len
}

/// What [`reseal_all`] did. Values are named `table/row`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResealReport {
    /// The key every value is now sealed under (16 hex digits).
    pub current_key_id: String,
    /// The ids of the keys the ring can open with besides the current one.
    pub previous_key_ids: Vec<String>,
    /// Values moved to the current key.
    pub resealed: Vec<String>,
    /// Values that were under the current key already.
    pub already_current: Vec<String>,
    /// Values that could not be re-sealed, with the reason. They are left
    /// as they were.
    pub failed: Vec<ResealFailure>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResealFailure {
    pub value: String,
    pub error: String,
}

impl ResealReport {
    /// True when every value now opens with the current key alone, so the
    /// previous keys may be removed once no node seals with them any more.
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Re-seals every sealed value under the ring's current key and records a
/// `sealing.resealed` audit event. A value that does not open (its key is
/// missing from the ring, or it was altered) is reported and left alone; the
/// others are still re-sealed.
pub async fn reseal_all<S>(store: &S, ring: &KeyRing, actor: Actor, now: Timestamp) -> Result<ResealReport>
where
    S: SealedSecretStore + UnitOfWork + ?Sized,
{
    let mut report = ResealReport {
        current_key_id: ring.current_id().to_string(),
        previous_key_ids: ring.previous().iter().map(|k| k.id().to_string()).collect(),
        ..Default::default()
    };
    for kind in SealedKind::ALL {
        for row in store.stored_sealed(kind).await? {
            let label = format!("{}/{}", kind.table(), row.name);
            match reseal_one(store, ring, kind, row).await? {
                Ok(true) => report.resealed.push(label),
                Ok(false) => report.already_current.push(label),
                Err(error) => report.failed.push(ResealFailure { value: label, error }),
            }
        }
    }
    let outcome = if report.complete() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    let event = AuditEvent::new(EventType::SecretsResealed, actor, outcome).details(serde_json::json!({
        "current_key_id": report.current_key_id,
        "resealed": report.resealed.len(),
        "already_current": report.already_current.len(),
        "failed": report.failed,
    }));
    // Each swap is its own compare-and-swap (several nodes may run), so the
    // summary is recorded in a unit of its own once they are done.
    let mut tx = store.begin().await?;
    tx.append_audit(&event, signet_core::ids::time_ordered(), now).await?;
    tx.commit().await?;
    Ok(report)
}

/// `Ok(Ok(true))` re-sealed, `Ok(Ok(false))` already current, `Ok(Err(_))`
/// cannot be opened (reported, not fatal), `Err(_)` storage failed.
async fn reseal_one<S>(
    store: &S,
    ring: &KeyRing,
    kind: SealedKind,
    mut row: StoredSecret,
) -> Result<std::result::Result<bool, String>>
where
    S: SealedSecretStore + ?Sized,
{
    let binding = kind.binding(&row.name);
    for _ in 0..SWAP_ATTEMPTS {
        let resealed = match ring.reseal(&row.value, &binding) {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(Ok(false)),
            Err(e) if row.value.len() < MIN_SEALED_LEN => {
                return Ok(Err(format!(
                    "{e}; it may be plaintext from an earlier version, which `signet serve` seals when it starts"
                )))
            }
            Err(e) => return Ok(Err(e.to_string())),
        };
        if store.swap_sealed(kind, &row.name, &row.value, &resealed).await? {
            return Ok(Ok(true));
        }
        // Someone else rewrote it meanwhile (another node, another run):
        // start again from what is stored now.
        match store
            .stored_sealed(kind)
            .await?
            .into_iter()
            .find(|r| r.name == row.name)
        {
            Some(now) => row = now,
            None => return Ok(Err("deleted while being re-sealed".into())),
        }
    }
    Ok(Err("kept changing while being re-sealed".into()))
}

/// How a value travels sealed in what a client holds: its JSON, padded to
/// a multiple of `bucket` bytes (so its length tells less), sealed under
/// the key ring and bound to `purpose` (so a value of one kind never opens
/// as another), in base64url behind `prefix`.
pub(crate) struct Envelope {
    pub(crate) prefix: &'static str,
    pub(crate) purpose: &'static str,
    /// The longest value [`Envelope::open`] looks at, in characters: a guard
    /// before any work.
    pub(crate) max_len: usize,
    pub(crate) bucket: usize,
}

impl Envelope {
    fn binding(&self) -> Binding {
        Binding::new(self.purpose, "v1")
    }

    /// `value`, sealed.
    pub(crate) fn seal<T: Serialize>(&self, ring: &KeyRing, value: &T) -> Result<String> {
        let mut plain = serde_json::to_vec(value).map_err(Error::internal)?;
        // JSON readers skip trailing whitespace.
        plain.resize(plain.len().div_ceil(self.bucket) * self.bucket, b' ');
        let sealed = ring.seal(&plain, &self.binding()).map_err(Error::internal)?;
        Ok(format!("{}{}", self.prefix, URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// The value in `presented`, if this server sealed it for this purpose
    /// (with a key it still holds).
    pub(crate) fn open<T: DeserializeOwned>(&self, ring: &KeyRing, presented: &str) -> Option<T> {
        if presented.len() > self.max_len {
            return None;
        }
        let sealed = URL_SAFE_NO_PAD.decode(presented.strip_prefix(self.prefix)?).ok()?;
        let opened = ring.open(&sealed, &self.binding()).ok()?;
        serde_json::from_slice(opened.plaintext.expose_secret()).ok()
    }
}
