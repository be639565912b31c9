//! Builds the application from a validated [`Config`]: opens storage (and
//! migrates it), loads the policy, and assembles the courier and the
//! method registry. The server and every CLI command start here, so they
//! share one view of the configuration.

use std::sync::Arc;

use anyhow::Context;
use signet_app::methods::{
    EmailCode, MagicLink, Mailbox, PasskeyMethod, RecoveryCodes, SmsChannel, SmsCode, TotpMethod,
};
use signet_app::passkeys::{load_decoy_key, Passkeys};
use signet_app::{App, Settings};
use signet_core::clock::{SharedClock, SystemClock};
use signet_core::method::{Method, Registry};
use signet_core::policy::Policy;
use signet_courier::{Courier, Delivery};
use signet_store::SqlStore;

use crate::config::Config;
use crate::sealing::SealingKeys;

/// The parts of a running Signet that outlive one request.
pub struct Wired {
    pub app: App,
    pub store: Arc<SqlStore>,
    pub delivery: Delivery,
    /// The sealing key ring and where it came from.
    pub sealing: SealingKeys,
}

/// Reads the policy file named in the config, or the built-in policy.
pub fn load_policy(config: &Config) -> anyhow::Result<Policy> {
    match &config.policy {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("policy: cannot read {}", path.display()))?;
            Policy::parse(&text, &path.display().to_string()).map_err(|e| anyhow::anyhow!("policy error: {e}"))
        }
        None => Ok(Policy::builtin()),
    }
}

/// Builds the application. The built-in methods are registered first, then
/// `methods` (tests add doubles, which replace a built-in of the same name).
pub async fn wire(config: &Config, clock: Option<SharedClock>, methods: Vec<Arc<dyn Method>>) -> anyhow::Result<Wired> {
    let policy = load_policy(config)?;
    let sealing = crate::sealing::load(config)?;
    let store = Arc::new(
        SqlStore::connect_with(
            &config.database.url,
            &signet_store::ConnectOptions {
                migrate: true,
                max_connections: config.database.max_connections,
            },
        )
        .await?,
    );
    let delivery = Delivery::from_config(
        &config.email.from,
        config.email.smtp_url.as_ref().map(|u| u.as_str()),
        config.sms.webhook_url.as_ref().map(|u| u.as_str()),
    )
    .map_err(|e| anyhow::anyhow!("config error: {e}"))?;
    let delivery = match &config.sms.twilio {
        Some(account) => delivery.with_sms(signet_courier::SmsSender::Twilio(
            signet_courier::TwilioTransport::new(account.clone()).map_err(|e| anyhow::anyhow!("config error: {e}"))?,
        )),
        None => delivery,
    };
    let clock = clock.unwrap_or_else(|| Arc::new(SystemClock));
    let metrics = Arc::new(signet_app::metrics::Metrics::new());
    let expired = metrics.messages_expired.clone();
    let courier = Arc::new(
        Courier::new(store.clone(), clock.clone()).on_expired(Arc::new(move |_| {
            expired.inc();
        })),
    );
    let mut settings = Settings::new(config.public_url.clone());
    settings.invitation_ttl = config.invitation_ttl;
    settings.email_login = config.login.clone();
    settings.sms = config.sms.limits.clone();
    let settings = Arc::new(settings);
    let policy = Arc::new(policy);
    let mailbox = Mailbox {
        policy: policy.clone(),
        store: store.clone(),
        courier: courier.clone(),
        clock: clock.clone(),
        settings: settings.clone(),
    };
    let rp = signet_passkey::RelyingParty::new(&config.webauthn.relying_party(&config.public_url))
        .map_err(|e| anyhow::anyhow!("config error: {e}"))?;
    let decoy_key = load_decoy_key(&*store, &sealing.ring, clock.now())
        .await
        .context("loading the passkey decoy key")?;
    let passkeys = Passkeys::new(rp, decoy_key);
    let oidc = Arc::new(
        signet_app::oidc::Provider::load(&*store, &sealing.ring, clock.clone())
            .await
            .context("loading the OIDC signing keys")?,
    );
    let mut all: Vec<Arc<dyn Method>> = vec![
        Arc::new(PasskeyMethod::new(
            store.clone(),
            clock.clone(),
            policy.clone(),
            passkeys.clone(),
        )),
        Arc::new(EmailCode::new(mailbox.clone())),
        Arc::new(MagicLink::new(mailbox)),
        Arc::new(SmsCode::new(SmsChannel {
            policy: policy.clone(),
            store: store.clone(),
            courier: courier.clone(),
            clock: clock.clone(),
            settings: settings.clone(),
            metrics: metrics.clone(),
        })),
        Arc::new(TotpMethod::new(
            store.clone(),
            clock.clone(),
            sealing.ring.clone(),
            settings.product_name.clone(),
        )),
        Arc::new(RecoveryCodes::new(
            store.clone(),
            clock.clone(),
            courier.clone(),
            settings.clone(),
        )),
    ];
    // Extra methods (test doubles) come last and replace a built-in of the same name.
    all.extend(methods);
    let app = App {
        store: store.clone(),
        clock,
        courier,
        policy,
        registry: Arc::new(registry(all)),
        settings,
        metrics,
        passkeys,
        readiness: Default::default(),
        starts: Default::default(),
        sealing: sealing.ring.clone(),
        oidc,
    };
    signet_app::oidc::clients::apply_config(&app, &config.oidc_clients)
        .await
        .context("writing the OIDC clients of [[oidc.clients]]")?;
    Ok(Wired {
        app,
        store,
        delivery,
        sealing,
    })
}

fn registry(methods: Vec<Arc<dyn Method>>) -> Registry {
    let mut registry = Registry::new();
    for m in methods {
        registry.register(m);
    }
    registry
}
