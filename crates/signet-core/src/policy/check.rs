//! `signet policy check`: turns a policy into threat-model findings and a
//! decision matrix.
//!
//! Each rule names one threat in one sentence. Severity depends on the
//! tier's risk: the tier's `risk` key when set (`low`, `medium`, `high`);
//! otherwise the conventional names `privileged` (high) and `low` (low);
//! otherwise its `required_aal` (aal3 high, aal2 medium, aal1 low). Risk is
//! never derived from the methods being judged, or a weak method would lower
//! the bar it is measured against.
//!
//! Session limits follow NIST SP 800-63B rev. 4 §2.1.3/§2.2.3/§2.3.3
//! (reauthentication): aal1 at most 30 days; aal2 at most 24 hours overall
//! and 1 hour idle; aal3 at most 12 hours overall and 15 minutes idle.

use std::time::Duration;

use serde::Serialize;

use super::{Policy, RecoveryPath, RecoveryProof, Tier};
use crate::assurance::facts;
use crate::method::MethodName;
use crate::session::Aal;

pub use super::Risk;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub tier: String,
    pub message: String,
}

/// The fixed rule ids (public contract).
pub const RULES: [&str; 10] = [
    "recovery-weaker-than-login",
    "email-circular-trust",
    "sms-in-high-tier",
    "email-primary-in-high-tier",
    "no-phishing-resistant-option",
    "ungoverned-fallback",
    "session-exceeds-aal-limit",
    "single-approver-helpdesk",
    "synced-passkey-at-aal3",
    "no-recovery-path",
];

pub fn risk(name: &str, tier: &Tier) -> Risk {
    if let Some(r) = tier.risk {
        return r;
    }
    match (name, tier.required_aal) {
        ("privileged", _) | (_, Aal::Aal3) => Risk::High,
        ("low", _) | (_, Aal::Aal1) => Risk::Low,
        (_, Aal::Aal2) => Risk::Medium,
    }
}

/// Errors in high and medium tiers, warnings in low ones.
fn by_risk(r: Risk) -> Severity {
    if r >= Risk::Medium {
        Severity::Error
    } else {
        Severity::Warning
    }
}

/// What a recovery path proves: the level an attacker must reach to use
/// it, and whether it resists phishing. A combined path is as strong as its
/// proofs together ([`RecoveryPath::self_service_aal`]); the help desk is
/// aal2 only when governed (two people and a cooling-off period).
pub fn recovery_strength(path: &RecoveryPath, tier: &Tier) -> (Aal, bool) {
    match path.self_service_aal() {
        Some(aal) => (aal, path.phishing_resistant()),
        None => {
            let governed = tier
                .helpdesk
                .as_ref()
                .is_some_and(|h| h.approvals >= 2 && !h.cooling_off.is_zero());
            (if governed { Aal::Aal2 } else { Aal::Aal1 }, false)
        }
    }
}

/// Whether every login method of the tier resists phishing: then so must
/// every self-service recovery path.
pub fn login_phishing_resistant_only(t: &Tier) -> bool {
    t.login.iter().all(|m| facts(*m).phishing_resistant)
}

/// The rule `recovery-weaker-than-login`, which the runtime applies too (a
/// recovery flow never offers or completes such a path): the path reaches
/// less than the tier's `required_aal`, or the tier's login resists
/// phishing and this self-service path does not.
pub fn weaker_than_login(p: &RecoveryPath, t: &Tier) -> bool {
    let (aal, pr) = recovery_strength(p, t);
    aal < t.required_aal || (login_phishing_resistant_only(t) && !pr && !p.is(RecoveryProof::Helpdesk))
}

fn names(methods: &[MethodName]) -> String {
    methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
}

/// NIST reauthentication limits for a level: (absolute, idle).
pub fn session_limits(aal: Aal) -> (Duration, Option<Duration>) {
    match aal {
        Aal::Aal1 => (Duration::from_secs(30 * 86_400), None),
        Aal::Aal2 => (Duration::from_secs(24 * 3600), Some(Duration::from_secs(3600))),
        Aal::Aal3 => (Duration::from_secs(12 * 3600), Some(Duration::from_secs(15 * 60))),
    }
}

/// Every finding for every tier, in tier order then rule order.
pub fn check(policy: &Policy) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, tier) in &policy.tiers {
        check_tier(name, tier, &mut out);
    }
    out
}

fn check_tier(name: &str, t: &Tier, out: &mut Vec<Finding>) {
    let r = risk(name, t);
    let mut add = |rule: &'static str, severity: Severity, message: String| {
        out.push(Finding {
            rule,
            severity,
            tier: name.to_owned(),
            message,
        });
    };
    let login_pr_only = login_phishing_resistant_only(t);
    let all_methods: Vec<MethodName> = t.login.iter().chain(&t.second_factor).copied().collect();

    // recovery-weaker-than-login
    for p in &t.recovery {
        if weaker_than_login(p, t) {
            add(
                "recovery-weaker-than-login",
                by_risk(r),
                format!(
                    "recovery by {} is weaker than this tier's login ({}{}): attackers go after recovery, not login",
                    p,
                    t.required_aal.as_str(),
                    if login_pr_only { ", phishing-resistant" } else { "" }
                ),
            );
        }
    }

    // email-circular-trust
    let email_login: Vec<MethodName> = t.login.iter().copied().filter(|m| facts(*m).email_based).collect();
    // Only email *alone*: a path that also needs a recovery code is not
    // opened by the mailbox.
    if !email_login.is_empty() && t.recovery.iter().any(|p| p.is(RecoveryProof::Email)) {
        add(
            "email-circular-trust",
            if r == Risk::Low { Severity::Warning } else { Severity::Error },
            format!(
                "email is both a login method ({}) and a recovery path: whoever controls the mailbox controls the account twice over (circular trust)",
                names(&email_login)
            ),
        );
    }

    // sms-in-high-tier
    if r >= Risk::Medium
        && (all_methods.contains(&MethodName::SmsOtp) || t.recovery.iter().any(|p| p.includes(RecoveryProof::Sms)))
    {
        add(
            "sms-in-high-tier",
            if r == Risk::High { Severity::Error } else { Severity::Warning },
            "SMS is allowed in a tier that needs strong assurance: SIM swaps and number ports hand the code to an attacker (NIST restricted authenticator)".into(),
        );
    }

    // email-primary-in-high-tier
    if r == Risk::High && !email_login.is_empty() {
        add(
            "email-primary-in-high-tier",
            Severity::Error,
            format!(
                "{} can start a login in a high-risk tier: an inbox compromise becomes an account takeover",
                names(&email_login)
            ),
        );
    }

    // no-phishing-resistant-option
    if t.required_aal >= Aal::Aal2 && !all_methods.iter().any(|m| facts(*m).phishing_resistant) {
        add(
            "no-phishing-resistant-option",
            by_risk(r),
            "no phishing-resistant method is offered at aal2 or above: NIST SP 800-63B rev. 4 §2.2 requires offering one".into(),
        );
    }

    // ungoverned-fallback: weaker login methods next to a phishing-resistant one
    if r >= Risk::Medium && t.login.iter().any(|m| facts(*m).phishing_resistant) {
        let weaker: Vec<MethodName> = t
            .login
            .iter()
            .copied()
            .filter(|m| !facts(*m).phishing_resistant)
            .collect();
        let governed = |m: &MethodName| {
            t.fallback
                .as_ref()
                .is_some_and(|f| f.methods.contains(m) && f.max_uses > 0 && f.notify)
        };
        let ungoverned: Vec<MethodName> = weaker.into_iter().filter(|m| !governed(m)).collect();
        if !ungoverned.is_empty() {
            add(
                "ungoverned-fallback",
                by_risk(r),
                format!(
                    "{} may log in without a [fallback] limit and notification: an attacker downgrades every login to the weakest method",
                    names(&ungoverned)
                ),
            );
        }
    }

    // session-exceeds-aal-limit
    let (max_abs, max_idle) = session_limits(t.required_aal);
    let idle_over = max_idle.is_some_and(|i| t.session.idle > i);
    if t.session.absolute > max_abs || idle_over {
        add(
            "session-exceeds-aal-limit",
            by_risk(r),
            format!(
                "sessions (idle {}, absolute {}) exceed NIST's {} reauthentication limits (absolute {}{}): a stolen session lives too long",
                crate::duration::format(t.session.idle),
                crate::duration::format(t.session.absolute),
                t.required_aal.as_str(),
                crate::duration::format(max_abs),
                max_idle.map(|i| format!(", idle {}", crate::duration::format(i))).unwrap_or_default()
            ),
        );
    }

    // single-approver-helpdesk
    if t.recovery.iter().any(|p| p.is(RecoveryProof::Helpdesk)) && t.helpdesk.as_ref().is_none_or(|h| h.approvals < 2) {
        add(
            "single-approver-helpdesk",
            by_risk(r),
            "one help-desk agent alone can recover an account: a single social-engineered call is enough (MGM Resorts, 2023)".into(),
        );
    }

    // synced-passkey-at-aal3
    if t.required_aal == Aal::Aal3 && all_methods.contains(&MethodName::Passkey) && !t.passkey.device_bound_only {
        add(
            "synced-passkey-at-aal3",
            Severity::Error,
            "synced passkeys are allowed at aal3: their keys can be exported to other devices, so they are not hardware-bound".into(),
        );
    }

    // no-recovery-path
    if t.recovery.is_empty() {
        add(
            "no-recovery-path",
            Severity::Warning,
            "no recovery path: users who lose their authenticator are locked out and land on the help desk anyway"
                .into(),
        );
    }
}

/// One cell row of the decision matrix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MatrixRow {
    pub tier: String,
    pub risk: Risk,
    pub method: String,
    /// `login`, `second_factor` or `recovery`.
    pub role: &'static str,
    pub phishing_resistance: &'static str,
    pub device_trust: &'static str,
    pub recovery_complexity: &'static str,
    pub sso_fit: &'static str,
    pub implementation_effort: &'static str,
}

fn method_row(tier_name: &str, t: &Tier, m: MethodName, role: &'static str) -> MatrixRow {
    let (pr, device, recovery, sso, effort) = match m {
        MethodName::Passkey => (
            "high",
            if t.passkey.device_bound_only && !t.passkey.allowed_aaguids.is_empty() {
                "high (device-bound, allow-listed authenticators)"
            } else if t.passkey.device_bound_only {
                "high (device-bound)"
            } else {
                "medium (synced passkeys allowed)"
            },
            if t.passkey.device_bound_only {
                "high (a lost device needs a backup or the help desk)"
            } else {
                "low (synced across the user's devices)"
            },
            "high (WebAuthn, phishing-resistant at the IdP)",
            "medium (WebAuthn ceremonies, browser support)",
        ),
        MethodName::Totp => (
            "low",
            "medium (shared secret on an app)",
            "medium (re-enroll the app)",
            "medium",
            "low",
        ),
        MethodName::RecoveryCode => (
            "low",
            "low (printable secret)",
            "medium (new codes after use)",
            "low (backup only)",
            "low",
        ),
        MethodName::MagicLink => (
            "low",
            "none (any browser with the mailbox)",
            "low (mailbox access)",
            "medium",
            "low",
        ),
        MethodName::EmailOtp => (
            "low",
            "none (any device with the mailbox)",
            "low (mailbox access)",
            "medium",
            "low",
        ),
        MethodName::SmsOtp => (
            "low",
            "low (SIM swap and porting)",
            "low (phone number)",
            "medium",
            "medium (SMS provider, costs)",
        ),
    };
    MatrixRow {
        tier: tier_name.to_owned(),
        risk: risk(tier_name, t),
        method: m.as_str().to_owned(),
        role,
        phishing_resistance: pr,
        device_trust: device,
        recovery_complexity: recovery,
        sso_fit: sso,
        implementation_effort: effort,
    }
}

fn proof_row(p: RecoveryProof) -> (&'static str, &'static str, &'static str, &'static str) {
    match p {
        RecoveryProof::BackupPasskey => (
            "high",
            "high (a second registered authenticator)",
            "low for the user",
            "low",
        ),
        RecoveryProof::RecoveryCode => ("low", "low (printable secret)", "low for the user", "low"),
        RecoveryProof::Email => ("low", "none (mailbox)", "low for the user", "low"),
        RecoveryProof::Sms => ("low", "low (SIM swap)", "low for the user", "medium"),
        RecoveryProof::Helpdesk => (
            "medium (a person checks evidence)",
            "n/a",
            "high (approvals, cooling-off)",
            "high (staff, process)",
        ),
    }
}

fn recovery_row(tier_name: &str, t: &Tier, p: &RecoveryPath) -> MatrixRow {
    let (pr, device, complexity, effort) = match p.parts() {
        [one] => proof_row(*one),
        _ => (
            if p.phishing_resistant() { "high" } else { "low" },
            "medium (two proofs by different means)",
            "medium for the user (every part must be shown)",
            "low",
        ),
    };
    MatrixRow {
        tier: tier_name.to_owned(),
        risk: risk(tier_name, t),
        method: p.to_string(),
        role: "recovery",
        phishing_resistance: pr,
        device_trust: device,
        recovery_complexity: complexity,
        sso_fit: "n/a",
        implementation_effort: effort,
    }
}

/// The decision matrix: every method and recovery path each tier allows.
pub fn matrix(policy: &Policy) -> Vec<MatrixRow> {
    let mut rows = Vec::new();
    for (name, t) in &policy.tiers {
        for m in &t.login {
            rows.push(method_row(name, t, *m, "login"));
        }
        for m in t.second_factor.iter().filter(|m| !t.login.contains(m)) {
            rows.push(method_row(name, t, *m, "second_factor"));
        }
        for p in &t.recovery {
            rows.push(recovery_row(name, t, p));
        }
    }
    rows
}

#[cfg(test)]
mod tests;
