//! `[sealing]` (an extension of the contract's keys): the key ring that
//! seals secrets at rest.
//!
//! A key's own rules (base64 of 32 bytes, never repeated in an error) are
//! `signet_core::sealing::SealingKey::from_base64`'s. The ring's rule (old
//! keys only beside a current one) belongs to [`Sealing`], which the binary
//! owns, so it is checked here.

use serde::Deserialize;
use signet_core::sealing::SealingKey;
use toml::Spanned;

use super::loader::{env_list, env_string, ConfigError, Sources};

/// `[sealing]` (an extension of the contract's keys): the key ring that
/// seals secrets stored at rest (see `signet_core::sealing`). Without `key`,
/// an embedded SQLite deployment keeps its keys in a key file beside the
/// database (see `crate::sealing`); PostgreSQL refuses to start, because
/// every node must share the key.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Sealing {
    /// The key that seals new values (and opens them).
    pub key: Option<SealingKey>,
    /// Keys that only open values sealed before a rotation.
    pub previous_keys: Vec<SealingKey>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSealing {
    key: Option<Spanned<String>>,
    previous_keys: Option<Spanned<Vec<String>>>,
}

/// `[sealing]`: base64 keys, checked here so a typo stops the start with
/// the key's name and line, never with a decryption error later. No message
/// repeats a key.
pub(super) fn build(raw: RawSealing, src: &Sources) -> Result<Sealing, ConfigError> {
    let key = src.pick("sealing.key", raw.key, env_string)?;
    let previous = src.pick("sealing.previous_keys", raw.previous_keys, env_list)?;
    let current = match &key {
        Some(k) => Some(SealingKey::from_base64(&k.value).map_err(|e| k.error(e.to_string()))?),
        None => None,
    };
    let mut previous_keys = Vec::new();
    if let Some(p) = &previous {
        if current.is_none() {
            return Err(
                p.error("is set but sealing.key is not; set the new key as sealing.key and list only older keys here")
            );
        }
        for (i, text) in p.value.iter().enumerate() {
            let k = SealingKey::from_base64(text).map_err(|e| p.error(format!("entry {}: {e}", i + 1)))?;
            previous_keys.push(k);
        }
    }
    Ok(Sealing {
        key: current,
        previous_keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures::*;

    #[test]
    fn sealing_keys_are_base64_of_32_bytes_and_never_repeated() {
        assert_eq!(load_env(&[]).unwrap().sealing, Sealing::default());
        let new = SealingKey::generate();
        let old = SealingKey::generate();
        let c = load_env(&[
            ("SIGNET_SEALING__KEY", new.expose_base64().as_str()),
            ("SIGNET_SEALING__PREVIOUS_KEYS", old.expose_base64().as_str()),
        ])
        .unwrap();
        assert_eq!(c.sealing.key.as_ref(), Some(&new));
        assert_eq!(c.sealing.previous_keys, vec![old.clone()]);
        assert!(
            !format!("{c:?}").contains(new.expose_base64().as_str()),
            "never in debug output"
        );

        let text = format!(
            "[sealing]\nkey = \"{}\"\nprevious_keys = [\"{}\"]\n",
            new.expose_base64().as_str(),
            old.expose_base64().as_str()
        );
        assert_eq!(load_file(&text, &[]).unwrap().sealing, c.sealing);

        let short = "c2hvcnQ=";
        let msg = err_env(&[("SIGNET_SEALING__KEY", short)]);
        assert!(
            msg.contains("sealing.key (from SIGNET_SEALING__KEY)") && msg.contains("32 bytes"),
            "{msg}"
        );
        assert!(!msg.contains(short), "{msg}");
        let msg = err_file("\n[sealing]\nkey = \"not base64!\"\n");
        assert!(msg.contains("sealing.key") && msg.contains("line 3"), "{msg}");
        let msg = err_env(&[
            ("SIGNET_SEALING__KEY", new.expose_base64().as_str()),
            (
                "SIGNET_SEALING__PREVIOUS_KEYS",
                &format!("{}, {short}", old.expose_base64().as_str()),
            ),
        ]);
        assert!(
            msg.contains("sealing.previous_keys") && msg.contains("entry 2"),
            "{msg}"
        );
        let msg = err_env(&[("SIGNET_SEALING__PREVIOUS_KEYS", old.expose_base64().as_str())]);
        assert!(
            msg.contains("sealing.previous_keys") && msg.contains("sealing.key is not"),
            "{msg}"
        );
    }
}
