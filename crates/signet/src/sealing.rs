//! Where the sealing keys come from (the ring itself is
//! `signet_core::sealing`; why secrets are sealed is DESIGN.md's "TOTP
//! seeds and signing keys are encrypted at rest", and ADR 0009).
//!
//! 1. `[sealing] key` (and `previous_keys`) in the configuration, or
//!    `SIGNET_SEALING__KEY`: always wins. This is the only choice with
//!    PostgreSQL, where several nodes must share the key; without it Signet
//!    refuses to start rather than give each node its own key.
//! 2. Otherwise, with the embedded SQLite database, a key file beside the
//!    database ([`KEY_FILE_NAME`], e.g. `./signet-data/sealing.key`). It is
//!    created on first start with mode 0600, never overwritten (only
//!    `signet keys rotate-sealing` replaces it, atomically), and its path is
//!    logged at every start. It must be backed up with the database: a
//!    database without its key file has secrets nobody can read.
//! 3. An in-memory SQLite database gets a key that lives as long as it does.
//!
//! The key file is a TOML fragment with the same keys as `[sealing]`, so an
//! operator who moves to a configured key can paste it into the config.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use serde::Deserialize;
use signet_core::sealing::{KeyRing, SealingKey};

use crate::config::Config;

/// The key file's name, in the directory of the SQLite database.
pub const KEY_FILE_NAME: &str = "sealing.key";

/// Where the ring came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `[sealing] key`.
    Config,
    /// The key file beside the SQLite database.
    File(PathBuf),
    /// Generated for an in-memory database.
    Ephemeral,
}

/// The ring and where it came from.
#[derive(Clone, Debug)]
pub struct SealingKeys {
    pub ring: Arc<KeyRing>,
    pub source: KeySource,
}

/// Resolves the key ring for `config`: configured keys, else the key file
/// (created if missing), else a refusal on PostgreSQL.
pub fn load(config: &Config) -> anyhow::Result<SealingKeys> {
    if let Some(key) = &config.sealing.key {
        tracing::info!(key_id = %key.id(), previous = config.sealing.previous_keys.len(), "sealing with the configured [sealing] key");
        if let Some(path) = key_file_path(&config.database.url).filter(|p| p.exists()) {
            tracing::warn!(
                path = %path.display(),
                "sealing: [sealing] key is configured, so the key file is ignored; \
                 list its key in [sealing] previous_keys while values sealed with it remain"
            );
        }
        return Ok(SealingKeys {
            ring: Arc::new(KeyRing::new(key.clone(), config.sealing.previous_keys.clone())),
            source: KeySource::Config,
        });
    }
    let url = &config.database.url;
    if !url.starts_with("sqlite:") {
        bail!(
            "sealing: no [sealing] key is configured. With PostgreSQL every node must seal with the same key, \
             so Signet does not generate one: set [sealing] key (or SIGNET_SEALING__KEY) on every node to the \
             base64 of 32 random bytes, e.g. the output of `openssl rand -base64 32` (see docs/configuration.md)"
        );
    }
    let Some(path) = key_file_path(url) else {
        tracing::warn!("sealing: in-memory database, so the sealing key lives only as long as this process");
        return Ok(SealingKeys {
            ring: Arc::new(KeyRing::new(SealingKey::generate(), [])),
            source: KeySource::Ephemeral,
        });
    };
    let ring = match read_key_file(&path)? {
        Some(ring) => {
            tracing::info!(path = %path.display(), key_id = %ring.current_id(), "sealing keys read from the key file");
            ring
        }
        None => {
            let ring = KeyRing::new(SealingKey::generate(), []);
            match create_key_file(&path, &ring) {
                Ok(()) => {
                    tracing::warn!(
                        path = %path.display(),
                        key_id = %ring.current_id(),
                        "generated a sealing key file: back it up together with the database, \
                         which cannot be read without it"
                    );
                    ring
                }
                // Another process created it between our read and write.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    read_key_file(&path)?.with_context(|| format!("sealing: {} appeared empty", path.display()))?
                }
                Err(e) => return Err(e).with_context(|| format!("sealing: cannot create {}", path.display())),
            }
        }
    };
    Ok(SealingKeys {
        ring: Arc::new(ring),
        source: KeySource::File(path),
    })
}

/// The key file for a `sqlite:` URL, or `None` for an in-memory database.
pub fn key_file_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let db = rest.split_once('?').map_or(rest, |(path, _)| path);
    if db.is_empty() || db.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let dir = Path::new(db).parent().filter(|d| !d.as_os_str().is_empty());
    Some(dir.unwrap_or(Path::new(".")).join(KEY_FILE_NAME))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    key: String,
    #[serde(default)]
    previous_keys: Vec<String>,
}

/// Reads the key file, or `None` if there is none. Errors name the file
/// but never repeat its content.
pub fn read_key_file(path: &Path) -> anyhow::Result<Option<KeyRing>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("sealing: cannot read {}", path.display())),
    };
    warn_if_readable_by_others(path);
    let file: KeyFile = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "sealing: {} is not a key file (expected key = \"...\" and optional previous_keys = [...]): {}",
            path.display(),
            e.message()
        )
    })?;
    let key =
        SealingKey::from_base64(&file.key).map_err(|e| anyhow::anyhow!("sealing: {}: key {e}", path.display()))?;
    let mut previous = Vec::new();
    for (i, text) in file.previous_keys.iter().enumerate() {
        previous.push(
            SealingKey::from_base64(text)
                .map_err(|e| anyhow::anyhow!("sealing: {}: previous_keys entry {}: {e}", path.display(), i + 1))?,
        );
    }
    Ok(Some(KeyRing::new(key, previous)))
}

fn render(ring: &KeyRing) -> zeroize::Zeroizing<String> {
    let mut text = String::from(
        "# Signet sealing keys (docs/operations.md, \"Sealing keys\").\n\
         # Back this file up together with the database: sealed secrets cannot be read without it.\n\
         # `key` seals new values; `previous_keys` only open values sealed before a rotation.\n",
    );
    text.push_str(&format!("key = \"{}\"\n", ring.current().expose_base64().as_str()));
    let previous: Vec<String> = ring
        .previous()
        .iter()
        .map(|k| format!("\"{}\"", k.expose_base64().as_str()))
        .collect();
    text.push_str(&format!("previous_keys = [{}]\n", previous.join(", ")));
    zeroize::Zeroizing::new(text)
}

/// Creates `path` with mode 0600, failing with `AlreadyExists` rather than
/// overwriting anything.
fn create_key_file(path: &Path, ring: &KeyRing) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(render(ring).as_bytes())?;
    file.sync_all()
}

/// Makes a new key current in the key file, keeping every old key as a
/// previous key, and returns the new ring. The file is replaced atomically
/// (a new file renamed over it), so a crash leaves the old or the new file,
/// never half of one.
pub fn rotate_key_file(path: &Path, ring: &KeyRing) -> anyhow::Result<KeyRing> {
    let mut previous = vec![ring.current().clone()];
    previous.extend(ring.previous().iter().cloned());
    let rotated = KeyRing::new(SealingKey::generate(), previous);
    let tmp = path.with_file_name(format!("{KEY_FILE_NAME}.new"));
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("sealing: cannot remove {}", tmp.display())),
    }
    create_key_file(&tmp, &rotated).with_context(|| format!("sealing: cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("sealing: cannot replace {}", path.display()))?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(rotated)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "sealing: the key file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_core::sealing::Binding;

    fn config(env: &[(&str, &str)]) -> Config {
        Config::load(None, env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))).unwrap()
    }

    #[test]
    fn the_key_file_sits_beside_the_database() {
        assert_eq!(
            key_file_path("sqlite://./signet-data/signet.db"),
            Some(PathBuf::from("./signet-data/sealing.key"))
        );
        assert_eq!(
            key_file_path("sqlite:///var/lib/signet/db.sqlite?mode=rwc"),
            Some(PathBuf::from("/var/lib/signet/sealing.key"))
        );
        assert_eq!(key_file_path("sqlite:signet.db"), Some(PathBuf::from("./sealing.key")));
        assert_eq!(key_file_path("sqlite::memory:"), None);
        assert_eq!(key_file_path("postgres://h/db"), None);
    }

    #[test]
    fn a_key_file_is_created_once_with_mode_0600_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/data/signet.db", dir.path().display());
        let first = load(&config(&[("SIGNET_DATABASE__URL", &url)])).unwrap();
        let path = dir.path().join("data").join(KEY_FILE_NAME);
        assert_eq!(first.source, KeySource::File(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let again = load(&config(&[("SIGNET_DATABASE__URL", &url)])).unwrap();
        assert_eq!(again.ring.current(), first.ring.current(), "never overwritten");
    }

    #[test]
    fn a_configured_key_wins_and_postgres_without_one_is_refused() {
        let key = SealingKey::generate();
        let keys = load(&config(&[
            ("SIGNET_DATABASE__URL", "postgres://u@h/db"),
            ("SIGNET_SEALING__KEY", key.expose_base64().as_str()),
        ]))
        .unwrap();
        assert_eq!(keys.source, KeySource::Config);
        assert_eq!(keys.ring.current(), &key);

        let err = load(&config(&[("SIGNET_DATABASE__URL", "postgres://u@h/db")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[sealing] key") && err.contains("SIGNET_SEALING__KEY"),
            "{err}"
        );
    }

    #[test]
    fn rotating_the_key_file_keeps_old_keys_able_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        let ring = KeyRing::new(SealingKey::generate(), []);
        create_key_file(&path, &ring).unwrap();
        assert_eq!(
            create_key_file(&path, &ring).unwrap_err().kind(),
            std::io::ErrorKind::AlreadyExists
        );
        let sealed = ring.seal(b"seed", &Binding::server_secret("x")).unwrap();

        let rotated = rotate_key_file(&path, &ring).unwrap();
        assert_ne!(rotated.current_id(), ring.current_id());
        let reread = read_key_file(&path).unwrap().unwrap();
        assert_eq!(reread.current(), rotated.current());
        assert_eq!(reread.previous(), &[ring.current().clone()]);
        assert!(reread.open(&sealed, &Binding::server_secret("x")).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_broken_key_file_is_named_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        std::fs::write(&path, "key = \"c2hvcnQ=\"\n").unwrap();
        let err = format!("{:#}", read_key_file(&path).unwrap_err());
        assert!(
            err.contains(KEY_FILE_NAME) && err.contains("32 bytes") && !err.contains("c2hvcnQ"),
            "{err}"
        );
        std::fs::write(&path, "nonsense").unwrap();
        assert!(read_key_file(&path).is_err());
    }
}
