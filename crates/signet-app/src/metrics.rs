//! Prometheus counters for what Signet does. Later methods add their own
//! label values (e.g. `signet_logins_total{method="passkey",result="success"}`);
//! the families are registered once here and exposed by `signet-web` at
//! `/metrics` in the OpenMetrics text format. Label values are static
//! strings, so counting on the request path allocates nothing.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodResult {
    pub method: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// Why a request or connection was refused by admission control.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShedLabels {
    /// `ops`, `anonymous`, `standard` or `connection`.
    pub class: &'static str,
    /// `in_flight` (budget full), `deadline` or `connections` (cap reached).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub class: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub logins: Family<MethodResult, Counter>,
    pub login_flows: Family<ResultLabel, Counter>,
    pub invitations_sent: Counter,
    pub invitation_redemptions: Family<ResultLabel, Counter>,
    pub sessions_created: Counter,
    pub http_responses: Family<HttpLabels, Counter>,
    /// Governed fallback sign-ins by method and result (`allowed`, `refused`).
    pub fallback_uses: Family<MethodResult, Counter>,
    /// Queued messages dropped unsent because their content (a code, a
    /// link) expired first: `signet_messages_expired_total`.
    pub messages_expired: Counter,
    /// Requests and connections refused by admission control (ADR 0013).
    pub shed: Family<ShedLabels, Counter>,
    /// SMS not sent because pumping protection refused them, by reason
    /// (`country`, `number_type`, `per_number`, `per_prefix`, `per_ip`,
    /// `global`): `signet_sms_blocked_total`.
    pub sms_blocked: Family<ReasonLabel, Counter>,
    /// The outbox's undelivered messages, read from the store when
    /// `/metrics` is scraped ([`Metrics::refresh`]): shared by every node,
    /// so any node's scrape shows the whole queue.
    outbox_pending: Gauge,
    outbox_dead: Gauge,
    outbox_oldest_pending_age: Gauge,
    /// When the outbox gauges were last read (ms since the epoch, on the
    /// app's clock; `i64::MIN` before the first), and whether a scrape is
    /// reading them now: at most one read at a time and one per
    /// [`OUTBOX_READ_EVERY`], however often `/metrics` is scraped.
    outbox_read_at: AtomicI64,
    outbox_reading: AtomicBool,
}

/// How long the outbox gauges are served from the last read.
const OUTBOX_READ_EVERY: Duration = Duration::from_secs(10);
/// How long a scrape waits for that read before it answers with the last
/// values: a database that hangs does not hold up the scrape.
const OUTBOX_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Clears the "reading" flag when the read ends, or is cancelled.
struct Reading<'a>(&'a AtomicBool);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("signet");
        let logins = Family::<MethodResult, Counter>::default();
        registry.register("logins", "Login steps by method and result", logins.clone());
        let login_flows = Family::<ResultLabel, Counter>::default();
        registry.register("login_flows", "Login flows started and completed", login_flows.clone());
        let invitations_sent = Counter::default();
        registry.register("invitations_sent", "Invitations issued", invitations_sent.clone());
        let invitation_redemptions = Family::<ResultLabel, Counter>::default();
        registry.register(
            "invitation_redemptions",
            "Invitation redemptions by result",
            invitation_redemptions.clone(),
        );
        let sessions_created = Counter::default();
        registry.register("sessions_created", "Sessions established", sessions_created.clone());
        let http_responses = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_responses",
            "HTTP responses by status class",
            http_responses.clone(),
        );
        let fallback_uses = Family::<MethodResult, Counter>::default();
        registry.register(
            "fallback_uses",
            "Governed fallback sign-ins by method and result",
            fallback_uses.clone(),
        );
        let messages_expired = Counter::default();
        registry.register(
            "messages_expired",
            "Queued messages dropped unsent because their content expired",
            messages_expired.clone(),
        );
        let shed = Family::<ShedLabels, Counter>::default();
        registry.register(
            "requests_shed",
            "Requests and connections refused by admission control, by class and reason",
            shed.clone(),
        );
        let sms_blocked = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "sms_blocked",
            "SMS refused by pumping protection, by reason",
            sms_blocked.clone(),
        );
        let outbox_pending = Gauge::default();
        registry.register(
            "outbox_pending",
            "Messages in the outbox waiting for delivery or a retry (all nodes)",
            outbox_pending.clone(),
        );
        let outbox_dead = Gauge::default();
        registry.register(
            "outbox_dead",
            "Messages given up on after their last attempt, until purged (all nodes)",
            outbox_dead.clone(),
        );
        let outbox_oldest_pending_age = Gauge::default();
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Seconds since the oldest waiting message was queued (0 when none waits)",
            outbox_oldest_pending_age.clone(),
        );
        Self {
            outbox_read_at: AtomicI64::new(i64::MIN),
            outbox_reading: AtomicBool::new(false),
            outbox_pending,
            outbox_dead,
            outbox_oldest_pending_age,
            sms_blocked,
            messages_expired,
            shed,
            fallback_uses,
            registry,
            logins,
            login_flows,
            invitations_sent,
            invitation_redemptions,
            sessions_created,
            http_responses,
        }
    }

    pub fn login(&self, method: &'static str, result: &'static str) {
        self.logins.get_or_create(&MethodResult { method, result }).inc();
    }

    /// Counts one refusal by admission control.
    pub fn shed(&self, class: &'static str, reason: &'static str) {
        self.shed.get_or_create(&ShedLabels { class, reason }).inc();
    }

    /// Counts one SMS refused by pumping protection.
    pub fn sms_blocked(&self, reason: &'static str) {
        self.sms_blocked.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Reads what the outbox gauges show from the store, before a scrape
    /// renders them: at most once per [`OUTBOX_READ_EVERY`] and one read at
    /// a time (a scrape that finds a read under way renders the last
    /// values), waiting at most [`OUTBOX_READ_TIMEOUT`]. When the store
    /// cannot answer in time, the gauges keep their last values and the
    /// scrape still succeeds: `/readyz` is what reports storage trouble.
    pub async fn refresh(&self, store: &dyn signet_core::store::Store, now: signet_core::clock::Timestamp) {
        let fresh_until = self
            .outbox_read_at
            .load(Ordering::Acquire)
            .saturating_add(i64::try_from(OUTBOX_READ_EVERY.as_millis()).unwrap_or(i64::MAX));
        if now.as_millis() < fresh_until || self.outbox_reading.swap(true, Ordering::AcqRel) {
            return;
        }
        let _reading = Reading(&self.outbox_reading);
        match tokio::time::timeout(OUTBOX_READ_TIMEOUT, store.outbox_depth()).await {
            Ok(Ok(depth)) => {
                let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                self.outbox_pending.set(gauge(depth.pending));
                self.outbox_dead.set(gauge(depth.dead));
                let age_ms = depth
                    .oldest_pending_at
                    .map_or(0, |at| now.as_millis().saturating_sub(at.as_millis()).max(0));
                self.outbox_oldest_pending_age.set(age_ms / 1000);
                self.outbox_read_at.store(now.as_millis(), Ordering::Release);
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics: the outbox depth could not be read"),
            Err(_) => tracing::warn!("metrics: reading the outbox depth timed out"),
        }
    }

    /// The exposition text for `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
