//! An [`App`] on SQLite in memory with a manual clock, built the way the
//! binary's wiring builds one (crates/signet/src/wiring.rs), minus what only
//! a server needs: the courier has no worker (messages stay in the outbox),
//! the sealing key ring holds one fixed key.
//!
//! In memory, reads and writes share one connection, which enforces ADR
//! 0010's "read before opening a unit of work": a use case that reads
//! through the pool while its unit is open waits for the pool's timeout
//! (10 s) and fails, so such a bug shows up here as a slow, failing test.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use signet_app::journeys::FlowRef;
use signet_app::journeys::{Started, StepOutcome};
use signet_app::methods::{EmailCode, MagicLink, Mailbox, PasskeyMethod};
use signet_app::passkeys::{load_decoy_key, Passkeys};
use signet_app::sessions::{Current, Issued};
use signet_app::{login, users, Actor, App, Origin, Settings};
use signet_core::audit::{AuditRecord, EventType};
use signet_core::clock::{Clock, ManualClock, SharedClock, Timestamp};
use signet_core::flow::Demand;
use signet_core::method::{Method, MethodName, Offer, Registry, StepInput};
use signet_core::outbox::Message;
use signet_core::policy::Policy;
use signet_core::sealing::{KeyRing, SealingKey};
use signet_core::session::{Aal, SessionMode};
use signet_core::store::{AuditQuery, Store};
use signet_core::user::{NewUser, User};
use signet_core::{ErrorCode, Result};
use signet_courier::Courier;
use signet_store::SqlStore;
use signet_testkit::FakeMethod;

use crate::faults::{FailingStore, Faults};

/// 2026-11-25T12:00:00Z: every test starts at the same instant.
pub const START: Timestamp = Timestamp::from_millis(1_795_608_000_000);

pub use signet_testkit::RIGHT;

/// Stand-ins for methods a test cannot drive for real (a passkey needs an
/// authenticator): they accept [`RIGHT`] for an identified flow and prove
/// what they were built to prove; their facts claim the phishing resistance
/// they prove, so the engine filters them like the real methods.
pub struct Fake;

impl Fake {
    /// A passkey with user verification: aal2, phishing-resistant.
    pub fn passkey() -> Arc<dyn Method> {
        Arc::new(FakeMethod {
            name: MethodName::Passkey,
            aal: Aal::Aal2,
            amr: "hwk",
            phishing_resistant: true,
        })
    }

    /// An authenticator app: aal2 with a code, not phishing-resistant.
    pub fn totp() -> Arc<dyn Method> {
        Arc::new(FakeMethod {
            name: MethodName::Totp,
            aal: Aal::Aal2,
            amr: "otp",
            phishing_resistant: false,
        })
    }
}

pub struct Harness {
    pub app: App,
    pub store: Arc<SqlStore>,
    pub clock: Arc<ManualClock>,
    /// Audit appends to make fail ([`FailingStore`]): the app's store
    /// passes everything through to `store` unless a fault is armed.
    pub faults: Faults,
}

impl Harness {
    /// The built-in policy with the real methods: passkey, email code and
    /// magic link.
    pub async fn new() -> Self {
        Self::build(Policy::builtin(), Vec::new()).await
    }

    /// The built-in policy, with the passkey replaced by an aal2
    /// phishing-resistant [`Fake`] and an aal2 [`Fake`] TOTP added.
    pub async fn with_fakes() -> Self {
        Self::build(Policy::builtin(), vec![Fake::passkey(), Fake::totp()]).await
    }

    /// A policy text, with `methods` registered after the real ones
    /// (replacing a real one of the same name).
    pub async fn with_policy(text: &str, methods: Vec<Arc<dyn Method>>) -> Self {
        let policy = Policy::parse(text, "test policy").unwrap();
        Self::build(policy, methods).await
    }

    async fn build(policy: Policy, methods: Vec<Arc<dyn Method>>) -> Self {
        let sql = Arc::new(SqlStore::connect("sqlite::memory:").await.unwrap());
        let faults = Faults::default();
        let store: Arc<dyn Store> = Arc::new(FailingStore::new(sql.clone(), faults.clone()));
        let clock = Arc::new(ManualClock::new(START));
        let shared: SharedClock = clock.clone();
        let courier = Arc::new(Courier::new(store.clone(), shared.clone()));
        let settings = Arc::new(Settings::new(url::Url::parse("https://id.example.test").unwrap()));
        let policy = Arc::new(policy);
        let ring = Arc::new(KeyRing::new(SealingKey::from_bytes([7; 32]), []));
        let rp =
            signet_passkey::RelyingParty::new(&signet_passkey::RelyingPartyConfig::new(settings.public_url.clone()))
                .unwrap();
        let decoy = load_decoy_key(&*sql, &ring, clock.now()).await.unwrap();
        let passkeys = Passkeys::new(rp, decoy);
        let oidc = Arc::new(
            signet_app::oidc::Provider::load(&*sql, &ring, shared.clone())
                .await
                .unwrap(),
        );
        let mailbox = Mailbox {
            policy: policy.clone(),
            store: store.clone(),
            courier: courier.clone(),
            clock: shared.clone(),
            settings: settings.clone(),
        };
        let mut registry = Registry::new();
        let real: Vec<Arc<dyn Method>> = vec![
            Arc::new(PasskeyMethod::new(
                store.clone(),
                shared.clone(),
                policy.clone(),
                passkeys.clone(),
            )),
            Arc::new(EmailCode::new(mailbox.clone())),
            Arc::new(MagicLink::new(mailbox)),
        ];
        for m in real.into_iter().chain(methods) {
            registry.register(m);
        }
        let app = App {
            store: store.clone(),
            clock: shared,
            courier,
            policy,
            registry: Arc::new(registry),
            settings,
            metrics: Arc::new(signet_app::metrics::Metrics::new()),
            passkeys,
            readiness: Default::default(),
            starts: Default::default(),
            sealing: ring,
            oidc,
        };
        Harness {
            app,
            store: sql,
            clock,
            faults,
        }
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// A user created by the CLI, with `roles`.
    pub async fn user(&self, email: &str, roles: &[&str]) -> User {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        let new = NewUser::parse(email, None, None, &roles).unwrap();
        users::create(&self.app, &Actor::Cli, &origin(), new).await.unwrap()
    }

    /// Starts an api-mode login for `email`, demanding `demand` on top of
    /// the tier.
    pub async fn start_login(&self, email: &str, demand: Demand) -> Started {
        let mut req = login::Start::new(Some(email.into()), SessionMode::Api, None, origin());
        req.demand = demand;
        login::start(&self.app, req).await.unwrap()
    }

    /// One step of a flow by `method`, presenting `code`.
    pub async fn step(&self, flow: &str, method: MethodName, code: &str) -> Result<StepOutcome> {
        login::step(
            &self.app,
            FlowRef::Handle(flow),
            method.as_str(),
            Ok(StepInput::Code(code.into())),
            None,
            &origin(),
            None,
        )
        .await
    }

    /// Asks for an email code and returns it, once the background delivery
    /// has queued its message (bounded polling: the delivery is a task of
    /// its own so that the response never depends on the account).
    pub async fn send_code(&self, flow: &str, to: &str) -> String {
        let before: Vec<uuid::Uuid> = self.sign_in_mails(to).await.iter().map(|m| m.id).collect();
        login::send(&self.app, FlowRef::Handle(flow), "email_otp", None, &origin(), None)
            .await
            .unwrap();
        for _ in 0..200 {
            // Messages queued at the same (manual) instant have no order.
            if let Some(new) = self.sign_in_mails(to).await.iter().find(|m| !before.contains(&m.id)) {
                return code_in(new);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("no sign-in code was queued for {to}");
    }

    /// The sign-in emails queued for `to`.
    pub async fn sign_in_mails(&self, to: &str) -> Vec<Message> {
        self.outbox()
            .await
            .into_iter()
            .filter(|m| m.recipient == to && m.template.starts_with("sign_in"))
            .collect()
    }

    /// Every queued message.
    pub async fn outbox(&self) -> Vec<Message> {
        use signet_core::store::OutboxStore;
        self.store.recent_messages(1000).await.unwrap()
    }

    /// A full login: an email code, then the fake passkey (the built-in
    /// standard tier needs aal2). Needs [`Harness::with_fakes`].
    pub async fn login(&self, email: &str) -> Current {
        let started = self.start_login(email, Demand::level(Aal::Aal1)).await;
        let flow = started.handle;
        let code = self.send_code(&flow, email).await;
        let StepOutcome::Continue { .. } = self.step(&flow, MethodName::EmailOtp, &code).await.unwrap() else {
            panic!("an email code alone completed an aal2 login");
        };
        let issued = completed(self.step(&flow, MethodName::Passkey, RIGHT).await.unwrap());
        self.current(&issued).await
    }

    /// The session a token resolves to, as a request would see it.
    pub async fn current(&self, issued: &Issued) -> Current {
        signet_app::sessions::authenticate(&self.app, issued.token.expose_secret())
            .await
            .unwrap()
    }

    /// The audit records of `event_type`, newest first.
    pub async fn records(&self, event_type: EventType) -> Vec<AuditRecord> {
        self.app
            .audit()
            .query(&AuditQuery {
                user_id: None,
                event_type: Some(event_type.as_str().into()),
                before_seq: None,
                limit: 1000,
            })
            .await
            .unwrap()
    }

    /// Asserts that the audit chain verifies.
    pub async fn assert_chain_intact(&self) {
        match self.app.audit().verify().await.unwrap() {
            signet_app::audit::Verification::Intact { .. } => {}
            broken => panic!("the audit chain is broken: {broken:?}"),
        }
    }
}

/// The client's origin in every test.
pub fn origin() -> Origin {
    Origin {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("use-case tests".into()),
        device: None,
    }
}

/// The session a completed step issued.
pub fn completed(outcome: StepOutcome) -> Issued {
    match outcome {
        StepOutcome::Complete { issued, .. } => *issued,
        StepOutcome::Continue { methods, .. } => {
            panic!("the flow continues, offering {:?}", names(&methods))
        }
    }
}

/// The methods offered, by name.
pub fn names(offers: &[Offer]) -> Vec<MethodName> {
    offers.iter().map(|o| o.method).collect()
}

/// The code of a sign-in email's text part ("Your code: 123456").
pub fn code_in(mail: &Message) -> String {
    let text = mail.text_body.as_deref().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("Your code: "))
        .unwrap()
        .trim()
        .to_owned()
}

/// The error's stable code, from a result that must be an error.
pub fn code_of<T>(r: Result<T>) -> ErrorCode {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code(),
    }
}

/// A record's details as JSON.
pub fn details(rec: &AuditRecord) -> Value {
    serde_json::from_str(&rec.details).unwrap()
}
