//! `[courier]` (an extension of the contract's keys): how the courier
//! worker delivers queued email and SMS.
//!
//! `concurrency` is the number of deliveries in flight at once (and so of
//! messages leased at once and of SMTP connections kept open for reuse).
//! The rule is signet-courier's ([`WorkerConfig::check_concurrency`]); this
//! section reads the value and says where a refused one came from.

use serde::Deserialize;
use signet_courier::WorkerConfig;
use toml::Spanned;

use super::loader::{env_integer, ConfigError, Sources};

pub use signet_courier::CONCURRENCY_RANGE as COURIER_CONCURRENCY_RANGE;

/// The courier settings; the rest of [`WorkerConfig`] keeps its defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CourierSettings {
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for CourierSettings {
    fn default() -> Self {
        CourierSettings {
            concurrency: WorkerConfig::default().concurrency,
        }
    }
}

impl CourierSettings {
    /// The worker configuration these settings give.
    pub fn worker(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: self.concurrency,
            ..WorkerConfig::default()
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCourier {
    concurrency: Option<Spanned<i64>>,
}

pub(super) fn build(raw: RawCourier, src: &Sources) -> Result<CourierSettings, ConfigError> {
    let default = CourierSettings::default();
    let n = src.pick_or(
        "courier.concurrency",
        raw.concurrency,
        env_integer,
        i64::try_from(default.concurrency).unwrap_or(i64::MAX),
    )?;
    let concurrency = WorkerConfig::check_concurrency(n.value).map_err(|m| n.error(m))?;
    Ok(CourierSettings { concurrency })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures::*;

    #[test]
    fn concurrency_defaults_to_the_workers_and_is_bounded() {
        let c = load_env(&[]).unwrap();
        assert_eq!(c.courier.concurrency, 16);
        assert_eq!(c.courier.worker(), WorkerConfig::default());
        let c = load_env(&[("SIGNET_COURIER__CONCURRENCY", "4")]).unwrap();
        assert_eq!(c.courier.worker().concurrency, 4);
        let c = load_file("[courier]\nconcurrency = 32\n", &[]).unwrap();
        assert_eq!(c.courier.concurrency, 32);
        for bad in ["0", "257", "-1"] {
            let e = load_env(&[("SIGNET_COURIER__CONCURRENCY", bad)])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("courier.concurrency") || e.contains("SIGNET_COURIER__CONCURRENCY"),
                "{e}"
            );
            assert!(e.contains("between 1 and 256"), "{e}");
        }
        assert!(
            load_file("[courier]\nslots = 3\n", &[]).is_err(),
            "unknown keys are refused"
        );
    }
}
