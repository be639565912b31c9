//! Signet's use cases.
//!
//! Each module is one part of the domain (users, admin tokens, invitations,
//! sessions, login flows, the audit log) written against the storage traits
//! of `signet-core`. The HTTP handlers in `signet-web` and the CLI in `signet`
//! both call these functions, so a user created from the command line goes
//! through exactly the same validation and auditing as one created over the
//! admin API. Nothing here knows about HTTP or SQL.

pub mod admin;
pub mod audit;
pub mod code_attempts;
pub mod cooling_off;
pub mod credentials;
pub mod devices;
pub mod email_login;
pub mod fallback;
pub mod flow_handles;
pub mod invitations;
pub mod journeys;
pub mod login;
pub mod messages;
pub mod methods;
pub mod metrics;
pub mod not_me;
pub mod notices;
pub mod oidc;
mod one_time;
pub mod outbox;
pub mod passkeys;
pub mod phone_enrollment;
pub mod phone_numbers;
pub mod readiness;
pub mod recovery;
pub mod recovery_links;
pub mod recovery_tickets;
pub mod rfc6238;
pub mod sealing;
pub mod sessions;
pub mod sms_pumping;
pub mod start_limit;
pub mod step_up;
pub mod throttle;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use signet_core::clock::SharedClock;
use signet_core::method::Registry;
use signet_core::policy::Policy;
use signet_core::store::Store;
use signet_courier::Courier;

pub use email_login::{EmailLogin, EmailLoginError, EmailLoginProblem};

pub use signet_core::audit::{Actor, Origin};

/// Settings the use cases need from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The public origin, without a trailing slash (e.g. `https://id.example.com`).
    pub public_url: url::Url,
    /// Shown in messages and pages.
    pub product_name: String,
    pub invitation_ttl: Duration,
    /// How long a login or step-up flow may take.
    pub flow_ttl: Duration,
    /// Email codes and magic links.
    pub email_login: EmailLogin,
    /// SMS pumping protection (`[sms]`).
    pub sms: sms_pumping::SmsLimits,
}

impl Settings {
    pub fn new(public_url: url::Url) -> Self {
        Self {
            public_url,
            product_name: "Signet".into(),
            invitation_ttl: signet_core::invitation::DEFAULT_TTL,
            flow_ttl: Duration::from_secs(15 * 60),
            email_login: EmailLogin::default(),
            sms: sms_pumping::SmsLimits::default(),
        }
    }

    /// `public_url` + `path`, built from configuration only (never from a
    /// request's Host header).
    pub fn link(&self, path: &str) -> String {
        let base = self.public_url.as_str().trim_end_matches('/');
        format!("{base}{path}")
    }

    /// The origin string browsers send in the `Origin` header.
    pub fn origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }
}

/// Everything a use case may touch, cheap to clone.
#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub courier: Arc<Courier>,
    pub policy: Arc<Policy>,
    pub registry: Arc<Registry>,
    pub settings: Arc<Settings>,
    pub metrics: Arc<metrics::Metrics>,
    /// The WebAuthn relying party, shared by passkey enrollment and login.
    pub passkeys: passkeys::Passkeys,
    /// The cached verdict of `/readyz`'s write probe.
    pub readiness: Arc<readiness::Readiness>,
    /// Sign-in starts per client address (in this node's memory).
    pub starts: Arc<start_limit::StartLimiter>,
    /// Seals and opens secrets stored at rest ([`sealing`]).
    pub sealing: Arc<signet_core::sealing::KeyRing>,
    /// The OpenID Provider's signing keys ([`oidc`]).
    pub oidc: Arc<oidc::Provider>,
}

impl App {
    pub fn audit(&self) -> audit::Auditor<'_> {
        audit::Auditor::new(self)
    }
}
