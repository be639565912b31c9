//! The policy file: risk tiers, their methods and limits, tier assignment and
//! sensitive actions (format fixed in the public contract).
//!
//! This module parses and validates the file strictly: unknown keys, unknown
//! method names, bad durations and references to undefined tiers are errors
//! that name the key and the line (the `toml` parser reports positions).
//! Judging whether a valid policy is *wise* is `signet policy check`'s job.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::method::MethodName;
use crate::session::Aal;

/// The built-in "passkey-first with governed fallback" policy (pattern A).
pub const BUILTIN_PASSKEY_FIRST: &str = include_str!("../policies/passkey-first.toml");

/// Sensitive actions Signet itself guards with step-up. A policy may set
/// their requirements under `[actions.NAME]`; unset ones default to the
/// tier's `required_aal` (at least aal2) and `step_up_max_age`.
pub const BUILTIN_ACTIONS: [&str; 6] = [
    "add_credential",
    "remove_credential",
    "change_email",
    "change_phone",
    "regenerate_recovery_codes",
    "admin",
];

/// The three deployment patterns `signet policy init` writes, by name.
pub const PATTERNS: [(&str, &str); 3] = [
    ("passkey-first", BUILTIN_PASSKEY_FIRST),
    (
        "magic-link-with-step-up",
        include_str!("../policies/magic-link-with-step-up.toml"),
    ),
    ("otp-transitional", include_str!("../policies/otp-transitional.toml")),
];

/// A pattern's commented policy text.
pub fn pattern(name: &str) -> Option<&'static str> {
    PATTERNS.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub tiers: BTreeMap<String, Tier>,
    pub assignment: Assignment,
    #[serde(default)]
    pub actions: BTreeMap<String, Action>,
}

pub mod check;

/// How much is at stake in a tier; sets the severity of `policy check` findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Optional (extension): overrides the risk derived from the tier's name
    /// and `required_aal`.
    #[serde(default)]
    pub risk: Option<Risk>,
    pub login: Vec<MethodName>,
    #[serde(default)]
    pub second_factor: Vec<MethodName>,
    pub required_aal: Aal,
    #[serde(default)]
    pub recovery: Vec<RecoveryPath>,
    pub session: SessionLimits,
    #[serde(with = "crate::duration::serde_human", default = "default_step_up_max_age")]
    pub step_up_max_age: Duration,
    #[serde(default)]
    pub passkey: PasskeyPolicy,
    pub fallback: Option<Fallback>,
    pub helpdesk: Option<Helpdesk>,
}

fn default_step_up_max_age() -> Duration {
    Duration::from_secs(300)
}

/// One proof a recovery path asks for (the contract's single path names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecoveryProof {
    RecoveryCode,
    BackupPasskey,
    Email,
    Sms,
    Helpdesk,
}

impl RecoveryProof {
    pub const ALL: [RecoveryProof; 5] = [
        RecoveryProof::RecoveryCode,
        RecoveryProof::BackupPasskey,
        RecoveryProof::Email,
        RecoveryProof::Sms,
        RecoveryProof::Helpdesk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryProof::RecoveryCode => "recovery_code",
            RecoveryProof::BackupPasskey => "backup_passkey",
            RecoveryProof::Email => "email",
            RecoveryProof::Sms => "sms",
            RecoveryProof::Helpdesk => "helpdesk",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The concrete methods a recovery flow offers for this proof (the
    /// contract's list); any one of them proves it. A help-desk ticket is
    /// proven by its own link, never by a method in a flow.
    pub fn methods(self) -> &'static [MethodName] {
        match self {
            RecoveryProof::BackupPasskey => &[MethodName::Passkey],
            RecoveryProof::RecoveryCode => &[MethodName::RecoveryCode],
            RecoveryProof::Email => &[MethodName::EmailOtp, MethodName::MagicLink],
            RecoveryProof::Sms => &[MethodName::SmsOtp],
            RecoveryProof::Helpdesk => &[],
        }
    }

    /// Whether a step by `method` proves this.
    pub fn proven_by(self, method: MethodName) -> bool {
        self.methods().contains(&method)
    }
}

/// One entry of a tier's `recovery` list: a single proof (`"email"`) or
/// several joined with `+` (`"recovery_code+email"`), every one of which
/// must be shown. NIST SP 800-63B rev. 4 (account recovery) lets an aal2
/// account be recovered with two recovery secrets obtained by different
/// means, or a recovery secret and a remaining authenticator: a combined
/// path is how a tier says so. Parts are distinct, and `helpdesk` stands
/// alone (a ticket is a journey of its own, not a step of a flow).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RecoveryPath {
    parts: Vec<RecoveryProof>,
}

impl RecoveryPath {
    /// Parses `"recovery_code+email"`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        for raw in text.split('+') {
            let raw = raw.trim();
            let part = RecoveryProof::parse(raw).ok_or_else(|| {
                format!(
                    "unknown recovery path {raw:?}; expected backup_passkey, recovery_code, email, sms, helpdesk, or a combination joined with \"+\""
                )
            })?;
            if parts.contains(&part) {
                return Err(format!("recovery path {text:?} names {raw} twice"));
            }
            parts.push(part);
        }
        if parts.len() > 1 && parts.contains(&RecoveryProof::Helpdesk) {
            return Err(format!(
                "recovery path {text:?}: helpdesk is a path of its own and cannot be combined with \"+\""
            ));
        }
        Ok(Self { parts })
    }

    /// A path of one proof.
    pub fn single(part: RecoveryProof) -> Self {
        Self { parts: vec![part] }
    }

    pub fn parts(&self) -> &[RecoveryProof] {
        &self.parts
    }

    /// Whether this path is exactly `part` alone.
    pub fn is(&self, part: RecoveryProof) -> bool {
        self.parts == [part]
    }

    /// Whether `part` is one of this path's proofs.
    pub fn includes(&self, part: RecoveryProof) -> bool {
        self.parts.contains(&part)
    }

    /// The concrete methods that prove one of its parts.
    pub fn methods(&self) -> impl Iterator<Item = MethodName> + '_ {
        self.parts.iter().flat_map(|p| p.methods().iter().copied())
    }

    /// The best level its self-service proofs reach together, by the
    /// assurance table ([`crate::assurance`]): the strongest part alone, or
    /// aal2 for two distinct factors that are not both email (a recovery
    /// code and an emailed code are two secrets by different means). `None`
    /// for the help desk, whose strength depends on its governance.
    pub fn self_service_aal(&self) -> Option<Aal> {
        if self.includes(RecoveryProof::Helpdesk) {
            return None;
        }
        let facts: Vec<crate::assurance::MethodFacts> = self
            .parts
            .iter()
            .filter_map(|p| p.methods().first())
            .map(|m| crate::assurance::facts(*m))
            .collect();
        let single = facts.iter().map(|f| f.aal_alone).max().unwrap_or(Aal::Aal1);
        let two_factors = facts.len() >= 2 && facts.iter().any(|f| !f.email_based);
        Some(if two_factors { single.max(Aal::Aal2) } else { single })
    }

    /// Whether any of its parts resists phishing (a backup passkey).
    pub fn phishing_resistant(&self) -> bool {
        self.parts
            .iter()
            .filter_map(|p| p.methods().first())
            .any(|m| crate::assurance::facts(*m).phishing_resistant)
    }
}

impl TryFrom<String> for RecoveryPath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl std::fmt::Display for RecoveryPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.parts.iter().map(|p| p.as_str()).collect();
        f.write_str(&names.join("+"))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionLimits {
    #[serde(with = "crate::duration::serde_human")]
    pub idle: Duration,
    #[serde(with = "crate::duration::serde_human")]
    pub absolute: Duration,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserVerification {
    #[default]
    Required,
    Preferred,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyPolicy {
    #[serde(default)]
    pub user_verification: UserVerification,
    #[serde(default)]
    pub device_bound_only: bool,
    #[serde(default)]
    pub allowed_aaguids: Vec<uuid::Uuid>,
    /// (Extension.) What a signature counter that did not increase means:
    /// `strict` (the default) refuses the login as a possible cloned key;
    /// `allow_regression` lets it through (still audited), for fleets of
    /// authenticators known to reset their counters.
    #[serde(default)]
    pub counter: CounterCheck,
}

/// See [`PasskeyPolicy::counter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterCheck {
    #[default]
    Strict,
    AllowRegression,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    pub methods: Vec<MethodName>,
    pub max_uses: u32,
    #[serde(with = "crate::duration::serde_human")]
    pub per: Duration,
    #[serde(default)]
    pub notify: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Helpdesk {
    pub approvals: u32,
    #[serde(with = "crate::duration::serde_human")]
    pub cooling_off: Duration,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub default: String,
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub aal: Aal,
    #[serde(with = "crate::duration::serde_human")]
    pub max_age: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// Tier rank used when several roles match: the most demanding tier wins.
/// Ranked by risk (the tier's `risk`, else what its name and level say, as
/// `policy check` judges it), then required AAL, device-bound passkeys
/// only, the shorter idle and absolute sessions and step-up window; two
/// tiers equal in all of these are ordered by name, so the answer never
/// depends on the order of a user's roles.
type Strength<'a> = (
    Risk,
    Aal,
    bool,
    std::cmp::Reverse<Duration>,
    std::cmp::Reverse<Duration>,
    std::cmp::Reverse<Duration>,
    std::cmp::Reverse<&'a str>,
);

fn strength<'a>(name: &'a str, t: &Tier) -> Strength<'a> {
    use std::cmp::Reverse;
    (
        check::risk(name, t),
        t.required_aal,
        t.passkey.device_bound_only,
        Reverse(t.session.idle),
        Reverse(t.session.absolute),
        Reverse(t.step_up_max_age),
        Reverse(name),
    )
}

impl Policy {
    /// Whether tier `tier` ranks at or below tier `ceiling` in the tier
    /// order above (risk, then required AAL, then the rest of
    /// [`Strength`], the name aside): the staff-ceiling rule of help-desk
    /// recovery. False when `ceiling` names no tier.
    pub fn tier_at_or_below(&self, tier: &str, ceiling: &str) -> bool {
        let (Some(t), Some(c)) = (self.tier(tier), self.tier(ceiling)) else {
            return false;
        };
        if tier == ceiling {
            return true;
        }
        let (a, b) = (strength(tier, t), strength(ceiling, c));
        (a.0, a.1, a.2, a.3, a.4, a.5) <= (b.0, b.1, b.2, b.3, b.4, b.5)
    }

    /// Parses and validates a policy file's text. `origin` names the file in
    /// error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError(format!("{origin}: {e}")))?;
        policy.validate().map_err(|e| {
            let key = e.split(':').next().unwrap_or_default();
            match line_of(text, key) {
                Some(line) => PolicyError(format!("{origin}: line {line}: {e}")),
                None => PolicyError(format!("{origin}: {e}")),
            }
        })?;
        Ok(policy)
    }

    pub fn builtin() -> Self {
        // The built-in text is covered by a unit test, so this cannot fail at
        // run time; fall back to an empty-tier error path rather than panic.
        Self::parse(BUILTIN_PASSKEY_FIRST, "built-in policy").unwrap_or_else(|_| Policy {
            tiers: BTreeMap::new(),
            assignment: Assignment {
                default: String::new(),
                roles: BTreeMap::new(),
            },
            actions: BTreeMap::new(),
        })
    }

    fn validate(&self) -> Result<(), String> {
        if self.tiers.is_empty() {
            return Err("[tiers]: at least one tier is required".into());
        }
        if !self.tiers.contains_key(&self.assignment.default) {
            return Err(format!(
                "assignment.default: tier {:?} is not defined under [tiers]",
                self.assignment.default
            ));
        }
        for (role, tier) in &self.assignment.roles {
            crate::user::validate_role(role).map_err(|e| format!("assignment.roles.{role}: {e}"))?;
            if !self.tiers.contains_key(tier) {
                return Err(format!(
                    "assignment.roles.{role}: tier {tier:?} is not defined under [tiers]"
                ));
            }
        }
        for (name, tier) in &self.tiers {
            if tier.login.is_empty() {
                return Err(format!("tiers.{name}.login: at least one login method is required"));
            }
            if tier.session.idle.is_zero() || tier.session.absolute.is_zero() {
                return Err(format!("tiers.{name}.session: idle and absolute must be more than 0s"));
            }
            if tier.session.idle > tier.session.absolute {
                return Err(format!("tiers.{name}.session: idle must not exceed absolute"));
            }
            if let Some(fb) = &tier.fallback {
                if fb.per.is_zero() {
                    return Err(format!("tiers.{name}.fallback.per: must be more than 0s"));
                }
            }
            if let Some(hd) = &tier.helpdesk {
                if hd.approvals == 0 {
                    return Err(format!("tiers.{name}.helpdesk.approvals: must be at least 1"));
                }
            }
        }
        Ok(())
    }

    /// The tier for a user with these roles: the most demanding tier any role
    /// maps to, otherwise the default tier.
    pub fn tier_for_roles(&self, roles: &[String]) -> (&str, &Tier) {
        let mut best: Option<(&str, &Tier)> = None;
        for role in roles {
            if let Some(name) = self.assignment.roles.get(role) {
                if let Some(tier) = self.tiers.get(name) {
                    let better = best.is_none_or(|(b_name, b)| strength(name, tier) > strength(b_name, b));
                    if better {
                        best = Some((name.as_str(), tier));
                    }
                }
            }
        }
        best.unwrap_or_else(|| self.default_tier())
    }

    /// The default tier (validated to exist at load time).
    pub fn default_tier(&self) -> (&str, &Tier) {
        let name = self.assignment.default.as_str();
        match self.tiers.get_key_value(name) {
            Some((k, t)) => (k.as_str(), t),
            // Unreachable after validation; pick any tier rather than panic.
            None => self
                .tiers
                .iter()
                .next()
                .map(|(k, t)| (k.as_str(), t))
                .unwrap_or((name, &FALLBACK_TIER)),
        }
    }

    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.tiers.get(name)
    }

    /// What a sensitive action demands of a session in `tier`: the level and
    /// how recent the authentication must be. `None` for an action that is
    /// neither built in nor declared under `[actions]`.
    pub fn action(&self, name: &str, tier: &Tier) -> Option<Action> {
        match self.actions.get(name) {
            Some(a) => Some(a.clone()),
            None if BUILTIN_ACTIONS.contains(&name) => Some(Action {
                aal: tier.required_aal.max(Aal::Aal2),
                max_age: tier.step_up_max_age,
            }),
            None => None,
        }
    }
}

/// The 1-based line where a dotted key such as `tiers.standard.session` or
/// `assignment.roles.admin` is written: the deepest table header that is a
/// prefix of the key, then the first line in that section starting with the
/// next key segment. Semantic errors (found after parsing) use this to point
/// at the line as the parser does for syntax errors.
fn line_of(text: &str, dotted: &str) -> Option<usize> {
    let parts: Vec<&str> = dotted.split('.').collect();
    let lines: Vec<&str> = text.lines().collect();
    for depth in (1..parts.len()).rev() {
        let header = format!("[{}]", parts[..depth].join("."));
        let Some(start) = lines.iter().position(|l| l.trim() == header) else {
            continue;
        };
        let key = parts[depth];
        for (i, line) in lines.iter().enumerate().skip(start + 1) {
            let t = line.trim_start();
            if t.starts_with('[') {
                break;
            }
            if t.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
            {
                return Some(i + 1);
            }
        }
        return Some(start + 1);
    }
    None
}

static FALLBACK_TIER: Tier = Tier {
    risk: Some(Risk::High),
    login: Vec::new(),
    second_factor: Vec::new(),
    required_aal: Aal::Aal3,
    recovery: Vec::new(),
    session: SessionLimits {
        idle: Duration::from_secs(60),
        absolute: Duration::from_secs(60),
    },
    step_up_max_age: Duration::from_secs(60),
    passkey: PasskeyPolicy {
        user_verification: UserVerification::Required,
        device_bound_only: true,
        allowed_aaguids: Vec::new(),
        counter: CounterCheck::Strict,
    },
    fallback: None,
    helpdesk: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_policy_parses() {
        let p = Policy::parse(BUILTIN_PASSKEY_FIRST, "builtin").unwrap();
        assert_eq!(p.default_tier().0, "standard");
        assert_eq!(p.tiers.len(), 3);
    }

    #[test]
    fn highest_tier_wins_across_roles() {
        let p = Policy::builtin();
        assert_eq!(p.tier_for_roles(&[]).0, "standard");
        assert_eq!(p.tier_for_roles(&["nobody".into()]).0, "standard");
        assert_eq!(p.tier_for_roles(&["staff".into(), "admin".into()]).0, "privileged");
    }

    #[test]
    fn the_more_demanding_of_two_equal_level_tiers_wins_whatever_the_role_order() {
        // The built-in standard and privileged tiers are both aal2 with 12 h
        // sessions: risk (privileged is high) and the shorter idle decide.
        let text = BUILTIN_PASSKEY_FIRST.replace(
            "roles = { admin = \"privileged\" }",
            "roles = { admin = \"privileged\", staff = \"standard\" }",
        );
        let p = Policy::parse(&text, "p.toml").unwrap();
        for roles in [["staff", "admin"], ["admin", "staff"]] {
            let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
            assert_eq!(p.tier_for_roles(&roles).0, "privileged", "{roles:?}");
        }
        // Tiers equal in every respect are ordered by name, not by role order.
        let twins = r#"
[tiers.a]
login = ["passkey"]
required_aal = "aal2"
session = { idle = "30m", absolute = "12h" }
[tiers.b]
login = ["passkey"]
required_aal = "aal2"
session = { idle = "30m", absolute = "12h" }
[assignment]
default = "a"
roles = { x = "a", y = "b" }
"#;
        let p = Policy::parse(twins, "t.toml").unwrap();
        let xy = p.tier_for_roles(&["x".into(), "y".into()]).0.to_owned();
        let yx = p.tier_for_roles(&["y".into(), "x".into()]).0.to_owned();
        assert_eq!(xy, yx);
    }

    #[test]
    fn unknown_keys_and_methods_are_refused_with_position() {
        let bad_key = BUILTIN_PASSKEY_FIRST.replace("step_up_max_age = \"15m\"", "step_up_max_ag = \"15m\"");
        let err = Policy::parse(&bad_key, "p.toml").unwrap_err().0;
        assert!(err.contains("step_up_max_ag") && err.contains("line"), "{err}");

        let bad_method = BUILTIN_PASSKEY_FIRST.replacen("\"magic_link\"", "\"carrier_pigeon\"", 1);
        let err = Policy::parse(&bad_method, "p.toml").unwrap_err().0;
        assert!(err.contains("carrier_pigeon") && err.contains("line"), "{err}");
    }

    #[test]
    fn undefined_tier_reference_is_refused() {
        let bad = BUILTIN_PASSKEY_FIRST.replace("admin = \"privileged\"", "admin = \"gold\"");
        let err = Policy::parse(&bad, "p.toml").unwrap_err().0;
        assert!(err.contains("assignment.roles.admin") && err.contains("gold"), "{err}");
    }

    #[test]
    fn semantic_errors_name_the_line() {
        let bad = BUILTIN_PASSKEY_FIRST.replace("admin = \"privileged\"", "admin = \"gold\"");
        let err = Policy::parse(&bad, "p.toml").unwrap_err().0;
        let line = bad.lines().position(|l| l.contains("gold")).unwrap() + 1;
        assert!(err.contains(&format!("line {line}:")), "{err}");

        let bad = BUILTIN_PASSKEY_FIRST.replace(
            "session = { idle = \"30m\", absolute = \"12h\" }",
            "session = { idle = \"13h\", absolute = \"12h\" }",
        );
        let err = Policy::parse(&bad, "p.toml").unwrap_err().0;
        let line = bad.lines().position(|l| l.contains("idle = \"13h\"")).unwrap() + 1;
        assert!(
            err.contains(&format!("line {line}:")) && err.contains("tiers.standard.session"),
            "{err}"
        );
    }

    #[test]
    fn recovery_paths_combine_with_plus() {
        let p = RecoveryPath::parse("recovery_code+email").unwrap();
        assert_eq!(p.parts(), [RecoveryProof::RecoveryCode, RecoveryProof::Email]);
        assert_eq!(p.to_string(), "recovery_code+email");
        assert_eq!(p.self_service_aal(), Some(Aal::Aal2));
        assert_eq!(
            RecoveryPath::parse("email").unwrap().self_service_aal(),
            Some(Aal::Aal1)
        );
        assert_eq!(
            RecoveryPath::parse("backup_passkey").unwrap().self_service_aal(),
            Some(Aal::Aal2)
        );
        assert_eq!(RecoveryPath::parse("helpdesk").unwrap().self_service_aal(), None);
        for bad in ["email+email", "helpdesk+email", "email+carrier_pigeon", "", "email+"] {
            assert!(RecoveryPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_recovery_path_in_a_policy_is_refused_with_position() {
        let bad = BUILTIN_PASSKEY_FIRST.replacen(
            "recovery = [\"backup_passkey\", \"helpdesk\"]",
            "recovery = [\"backup_passkey\", \"helpdesk+email\"]",
            1,
        );
        let err = Policy::parse(&bad, "p.toml").unwrap_err().0;
        assert!(err.contains("helpdesk") && err.contains("line"), "{err}");
        let good = BUILTIN_PASSKEY_FIRST.replacen(
            "recovery = [\"backup_passkey\", \"helpdesk\"]",
            "recovery = [\"backup_passkey\", \"recovery_code+email\", \"helpdesk\"]",
            1,
        );
        let p = Policy::parse(&good, "p.toml").unwrap();
        assert!(p.tiers["standard"].recovery.iter().any(|r| r.parts().len() == 2));
    }

    #[test]
    fn bad_duration_is_refused() {
        let bad = BUILTIN_PASSKEY_FIRST.replace("idle = \"30m\"", "idle = \"30\"");
        let err = Policy::parse(&bad, "p.toml").unwrap_err().0;
        assert!(err.contains("missing unit"), "{err}");
    }
}
