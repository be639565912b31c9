//! Tracing set-up: text or JSON lines on stderr, filtered by `[log] level`
//! (validated when the configuration loads; `RUST_LOG` is not read, so the
//! config is the one source of truth). CLI commands other than `serve` log
//! warnings only, so their stdout stays clean for `--json`.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

pub fn init(config: &Config, serving: bool) {
    let directive = if serving {
        config.log.level.clone()
    } else {
        "warn".to_owned()
    };
    let filter = EnvFilter::new(directive);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
