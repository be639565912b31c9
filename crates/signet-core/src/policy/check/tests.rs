//! Table-driven: for every rule, a policy that fires it and the same policy
//! with the threat removed, which does not.

use super::*;
use crate::policy::{Policy, BUILTIN_PASSKEY_FIRST};

/// A privileged tier with no findings at all; each case edits it.
const CLEAN: &str = r#"
[tiers.privileged]
login = ["passkey"]
second_factor = ["passkey"]
required_aal = "aal2"
recovery = ["backup_passkey", "helpdesk"]
session = { idle = "15m", absolute = "12h" }

[tiers.privileged.helpdesk]
approvals = 2
cooling_off = "24h"

[assignment]
default = "privileged"
"#;

const GOVERNED_FALLBACK: &str = r#"
[tiers.privileged.fallback]
methods = ["email_otp"]
max_uses = 3
per = "30d"
notify = true
"#;

fn findings(toml: &str) -> Vec<Finding> {
    check(&Policy::parse(toml, "test").unwrap())
}

fn edit(from: &str, to: &str) -> String {
    assert!(CLEAN.contains(from), "{from}");
    CLEAN.replacen(from, to, 1)
}

fn fires(toml: &str, rule: &str) -> Option<Severity> {
    findings(toml).into_iter().find(|f| f.rule == rule).map(|f| f.severity)
}

#[test]
fn the_clean_policy_has_no_findings() {
    assert_eq!(findings(CLEAN), vec![]);
}

#[test]
fn the_builtin_policy_has_no_findings() {
    assert_eq!(findings(BUILTIN_PASSKEY_FIRST), vec![]);
}

#[test]
fn every_rule_fires_and_stays_quiet() {
    let recovery = r#"recovery = ["backup_passkey", "helpdesk"]"#;
    let login = r#"login = ["passkey"]"#;
    let second = r#"second_factor = ["passkey"]"#;
    // (rule, firing policy, quiet policy, expected severity)
    let cases: Vec<(&str, String, String, Severity)> = vec![
        (
            "recovery-weaker-than-login",
            edit(recovery, r#"recovery = ["backup_passkey", "helpdesk", "recovery_code"]"#),
            CLEAN.to_owned(),
            Severity::Error,
        ),
        (
            "email-circular-trust",
            edit(recovery, r#"recovery = ["backup_passkey", "helpdesk", "email"]"#)
                .replacen(login, r#"login = ["passkey", "email_otp"]"#, 1),
            edit(login, r#"login = ["passkey", "email_otp"]"#),
            Severity::Error,
        ),
        (
            "sms-in-high-tier",
            edit(second, r#"second_factor = ["passkey", "sms_otp"]"#),
            edit(second, r#"second_factor = ["passkey", "totp"]"#),
            Severity::Error,
        ),
        (
            "email-primary-in-high-tier",
            edit(login, r#"login = ["passkey", "magic_link"]"#),
            edit(second, r#"second_factor = ["passkey", "totp"]"#),
            Severity::Error,
        ),
        (
            "no-phishing-resistant-option",
            edit(login, r#"login = ["totp"]"#).replacen(second, r#"second_factor = ["recovery_code"]"#, 1),
            edit(second, r#"second_factor = ["passkey", "totp"]"#),
            Severity::Error,
        ),
        (
            "ungoverned-fallback",
            edit(login, r#"login = ["passkey", "email_otp"]"#),
            format!("{}{GOVERNED_FALLBACK}", edit(login, r#"login = ["passkey", "email_otp"]"#)),
            Severity::Error,
        ),
        (
            "session-exceeds-aal-limit",
            edit(r#"absolute = "12h""#, r#"absolute = "48h""#),
            edit(r#"absolute = "12h""#, r#"absolute = "24h""#),
            Severity::Error,
        ),
        ("single-approver-helpdesk", edit("approvals = 2", "approvals = 1"), CLEAN.to_owned(), Severity::Error),
        (
            "synced-passkey-at-aal3",
            edit(r#"required_aal = "aal2""#, r#"required_aal = "aal3""#),
            format!(
                "{}\n[tiers.privileged.passkey]\ndevice_bound_only = true\nallowed_aaguids = [\"cb69481e-8ff7-4039-93ec-0a2729a154a8\"]\n",
                edit(r#"required_aal = "aal2""#, r#"required_aal = "aal3""#)
            ),
            Severity::Error,
        ),
        ("no-recovery-path", edit(recovery, "recovery = []"), CLEAN.to_owned(), Severity::Warning),
    ];
    let covered: Vec<&str> = cases.iter().map(|c| c.0).collect();
    for rule in RULES {
        assert!(covered.contains(&rule), "{rule} has a case");
    }
    for (rule, firing, quiet, severity) in cases {
        assert_eq!(
            fires(&firing, rule),
            Some(severity),
            "{rule} should fire on:\n{firing}\n{:#?}",
            findings(&firing)
        );
        assert_eq!(
            fires(&quiet, rule),
            None,
            "{rule} should be quiet on:\n{quiet}\n{:#?}",
            findings(&quiet)
        );
    }
}

#[test]
fn severity_follows_the_tier_risk() {
    let low = CLEAN
        .replace("privileged", "low")
        .replacen("approvals = 2", "approvals = 1", 1);
    assert_eq!(fires(&low, "single-approver-helpdesk"), Some(Severity::Warning));
    let explicit = edit("[tiers.privileged]\n", "[tiers.privileged]\nrisk = \"low\"\n").replacen(
        "approvals = 2",
        "approvals = 1",
        1,
    );
    assert_eq!(fires(&explicit, "single-approver-helpdesk"), Some(Severity::Warning));
    let medium = CLEAN
        .replace("privileged", "staff")
        .replacen("approvals = 2", "approvals = 1", 1);
    assert_eq!(fires(&medium, "single-approver-helpdesk"), Some(Severity::Error));
}

#[test]
fn a_weak_login_method_does_not_lower_the_bar() {
    // Adding a magic link to a privileged tier must not make it "medium".
    let with_link = edit(r#"login = ["passkey"]"#, r#"login = ["passkey", "magic_link"]"#);
    assert_eq!(fires(&with_link, "email-primary-in-high-tier"), Some(Severity::Error));
}

#[test]
fn the_matrix_lists_every_method_and_path_per_tier() {
    let rows = matrix(&Policy::parse(BUILTIN_PASSKEY_FIRST, "builtin").unwrap());
    let privileged: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.tier == "privileged")
        .map(|r| (r.method.as_str(), r.role))
        .collect();
    assert_eq!(
        privileged,
        [
            ("passkey", "login"),
            ("backup_passkey", "recovery"),
            ("helpdesk", "recovery")
        ]
    );
    let passkey = rows.iter().find(|r| r.method == "passkey").unwrap();
    assert_eq!(passkey.phishing_resistance, "high");
    let email = rows.iter().find(|r| r.method == "email_otp").unwrap();
    assert_eq!(email.phishing_resistance, "low");
}

#[test]
fn every_pattern_parses_and_has_no_errors() {
    for (name, text) in crate::policy::PATTERNS {
        let policy = Policy::parse(text, name).unwrap();
        let errors: Vec<_> = check(&policy)
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        assert_eq!(errors, vec![], "{name}");
    }
    // The transitional pattern is expected to warn about SMS: that is its to-do list.
    let otp = Policy::parse(crate::policy::pattern("otp-transitional").unwrap(), "c").unwrap();
    assert!(check(&otp)
        .iter()
        .any(|f| f.rule == "sms-in-high-tier" && f.severity == Severity::Warning));
}

/// The built-in standard tier (aal2; passkey or an email code to start),
/// with `recovery` as given.
fn standard_with(recovery: &str) -> String {
    let from = r#"recovery = ["backup_passkey", "helpdesk"]"#;
    assert!(BUILTIN_PASSKEY_FIRST.contains(from));
    // The standard tier's line is the second of the two identical lines.
    let at = BUILTIN_PASSKEY_FIRST.find("[tiers.standard]").unwrap();
    let (head, tail) = BUILTIN_PASSKEY_FIRST.split_at(at);
    format!("{head}{}", tail.replacen(from, recovery, 1))
}

#[test]
fn a_combined_recovery_path_is_judged_by_what_its_proofs_reach_together() {
    // A recovery code and an emailed code are two secrets by different
    // means: aal2, as much as the tier's login. No finding at all.
    let combined = standard_with(r#"recovery = ["backup_passkey", "recovery_code+email", "helpdesk"]"#);
    assert_eq!(findings(&combined), vec![]);

    // Either proof alone is aal1: weaker than the login, and email alone
    // next to an email login is circular trust too.
    let alone = standard_with(r#"recovery = ["backup_passkey", "email", "recovery_code", "helpdesk"]"#);
    let fired: Vec<(&str, String)> = findings(&alone).into_iter().map(|f| (f.rule, f.message)).collect();
    let weaker: Vec<&String> = fired
        .iter()
        .filter(|(r, _)| *r == "recovery-weaker-than-login")
        .map(|(_, m)| m)
        .collect();
    assert_eq!(weaker.len(), 2, "{fired:?}");
    assert!(weaker[0].contains("recovery by email ") && weaker[1].contains("recovery by recovery_code "));
    assert!(fired.iter().any(|(r, _)| *r == "email-circular-trust"), "{fired:?}");
}

#[test]
fn a_combined_path_is_still_weaker_than_a_phishing_resistant_only_login() {
    let toml = CLEAN.replacen(
        r#"recovery = ["backup_passkey", "helpdesk"]"#,
        r#"recovery = ["backup_passkey", "recovery_code+email", "helpdesk"]"#,
        1,
    );
    assert_eq!(fires(&toml, "recovery-weaker-than-login"), Some(Severity::Error));
    // With a backup passkey as one of its proofs, it resists phishing.
    let toml = CLEAN.replacen(
        r#"recovery = ["backup_passkey", "helpdesk"]"#,
        r#"recovery = ["backup_passkey+recovery_code", "helpdesk"]"#,
        1,
    );
    assert_eq!(findings(&toml), vec![]);
}

#[test]
fn a_combined_path_appears_in_the_matrix_under_its_written_name() {
    let combined = standard_with(r#"recovery = ["backup_passkey", "recovery_code+email", "helpdesk"]"#);
    let rows = matrix(&Policy::parse(&combined, "t").unwrap());
    assert!(rows
        .iter()
        .any(|r| r.tier == "standard" && r.role == "recovery" && r.method == "recovery_code+email"));
}
