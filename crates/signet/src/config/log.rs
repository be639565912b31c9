//! `[log]`: the log format and filter. The binary owns logging
//! (`crate::logging`), so these rules live here.

use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::loader::{env_string, ConfigError, Sources};

pub const DEFAULT_LOG_LEVEL: &str = "info";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive such as `info` or
    /// `info,signet=debug`.
    pub level: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    format: Option<Spanned<String>>,
    level: Option<Spanned<String>>,
}

pub(super) fn build(raw: RawLog, src: &Sources) -> Result<Log, ConfigError> {
    let format = src.pick_or("log.format", raw.format, env_string, "text".into())?;
    let format = match format.value.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => return Err(format.error(format!("expected \"text\" or \"json\", got {other:?}"))),
    };
    let level = src.pick_or("log.level", raw.level, env_string, DEFAULT_LOG_LEVEL.into())?;
    check_log_level(&level.value).map_err(|m| level.error(m))?;
    Ok(Log {
        format,
        level: level.value,
    })
}

fn check_log_level(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("empty; use a filter such as info or info,signet=debug".into());
    }
    tracing_subscriber::EnvFilter::try_new(s)
        .map(drop)
        .map_err(|e| format!("{s:?} is not a log filter ({e}); use e.g. info or warn,signet=debug"))
}
