//! `signet policy check | init | explain`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use signet_core::method::MethodName;
use signet_core::policy::check::{self, Finding, MatrixRow, Severity};
use signet_core::policy::{self, Policy};
use signet_core::user::User;

use crate::cli::emit;
use crate::config::Config;

fn load(config: &Config, file: Option<&Path>) -> anyhow::Result<(String, Policy)> {
    let path = file.map(Path::to_path_buf).or_else(|| config.policy.clone());
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
            let policy = Policy::parse(&text, &p.display().to_string()).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok((p.display().to_string(), policy))
        }
        None => Ok(("built-in policy".into(), Policy::builtin())),
    }
}

/// `signet policy check [FILE]`: exit 0 with no or only warning findings, 1 with any error.
pub fn check(config: &Config, file: Option<&Path>, json_mode: bool) -> anyhow::Result<ExitCode> {
    let (source, policy) = load(config, file)?;
    let findings = check::check(&policy);
    let matrix = check::matrix(&policy);
    let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
    emit(json_mode, json!({ "findings": findings, "matrix": matrix }), || {
        render(&source, &policy, &findings, &matrix)
    });
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn render(source: &str, policy: &Policy, findings: &[Finding], matrix: &[MatrixRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Policy: {source}\n");
    for (name, tier) in &policy.tiers {
        let _ = writeln!(
            out,
            "Tier {name} (risk {:?}, completes at {}, sessions idle {} / absolute {})",
            check::risk(name, tier),
            tier.required_aal.as_str(),
            signet_core::duration::format(tier.session.idle),
            signet_core::duration::format(tier.session.absolute),
        );
        let rows: Vec<&MatrixRow> = matrix.iter().filter(|r| r.tier == *name).collect();
        let header = [
            "method",
            "role",
            "phishing resistance",
            "device trust",
            "recovery complexity",
            "SSO fit",
            "effort",
        ];
        let cells: Vec<[&str; 7]> = rows
            .iter()
            .map(|r| {
                [
                    r.method.as_str(),
                    r.role,
                    r.phishing_resistance,
                    r.device_trust,
                    r.recovery_complexity,
                    r.sso_fit,
                    r.implementation_effort,
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..7)
            .map(|i| {
                cells
                    .iter()
                    .map(|c| c[i].len())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |c: &[&str; 7]| -> String {
            c.iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:<w$}"))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        let _ = writeln!(out, "  {}", line(&header));
        let _ = writeln!(
            out,
            "  {}",
            widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-")
        );
        for c in &cells {
            let _ = writeln!(out, "  {}", line(c));
        }
        let _ = writeln!(out);
    }
    if findings.is_empty() {
        let _ = writeln!(out, "No findings.");
    } else {
        let _ = writeln!(out, "Findings:");
        for f in findings {
            let sev = match f.severity {
                Severity::Error => "ERROR  ",
                Severity::Warning => "warning",
            };
            let _ = writeln!(out, "  {sev} [{}] tier {}: {}", f.rule, f.tier, f.message);
        }
    }
    out.trim_end().to_owned()
}

/// `signet policy init --pattern P [--output FILE]`
pub fn init(pattern: &str, output: Option<&Path>, json_mode: bool) -> anyhow::Result<ExitCode> {
    let text = policy::pattern(pattern).ok_or_else(|| anyhow::anyhow!("unknown pattern {pattern}"))?;
    match output {
        Some(path) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            emit(
                json_mode,
                json!({ "pattern": pattern, "written": path.display().to_string() }),
                || {
                    format!(
                        "wrote the {pattern} pattern to {}; check it with: signet policy check {}",
                        path.display(),
                        path.display()
                    )
                },
            );
        }
        None => emit(json_mode, json!({ "pattern": pattern, "policy": text }), || {
            text.trim_end().to_owned()
        }),
    }
    Ok(ExitCode::SUCCESS)
}

/// `signet policy explain USER`
pub fn explain(app: &signet_app::App, user: &User, json_mode: bool) {
    let policy = &app.policy;
    let (tier_name, tier) = policy.tier_for_roles(&user.roles);
    let matched: Vec<(&String, &String)> = user
        .roles
        .iter()
        .filter_map(|r| policy.assignment.roles.get(r).map(|t| (r, t)))
        .collect();
    let why = if matched.is_empty() {
        format!("no role of the user is mapped to a tier, so the default tier {tier_name:?} applies")
    } else {
        let list = matched
            .iter()
            .map(|(r, t)| format!("role {r} → {t}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("{list}; the most demanding of these wins: {tier_name}")
    };
    let available = |ms: &[MethodName]| -> Vec<&'static str> {
        ms.iter()
            .filter(|m| app.registry.get(**m).is_some())
            .map(|m| m.as_str())
            .collect()
    };
    let names = |ms: &[MethodName]| -> Vec<&'static str> { ms.iter().map(|m| m.as_str()).collect() };
    let value = json!({
        "user": { "id": user.id, "email": user.email },
        "tier": tier_name,
        "why": why,
        "required_aal": tier.required_aal,
        "login": names(&tier.login),
        "second_factor": names(&tier.second_factor),
        "available_now": { "login": available(&tier.login), "second_factor": available(&tier.second_factor) },
        "session": {
            "idle": signet_core::duration::format(tier.session.idle),
            "absolute": signet_core::duration::format(tier.session.absolute),
        },
    });
    emit(json_mode, value, || {
        format!(
            "{email} is in tier {tier_name}\n  why: {why}\n  login completes at: {aal}\n  may log in with: {login}\n  second factors / step-up: {second}\n  implemented on this server now: {now}\n  sessions: idle {idle}, absolute {abs}",
            email = user.email,
            aal = tier.required_aal.as_str(),
            login = names(&tier.login).join(", "),
            second = names(&tier.second_factor).join(", "),
            now = {
                let a = available(&tier.login);
                if a.is_empty() { "none yet".to_owned() } else { a.join(", ") }
            },
            idle = signet_core::duration::format(tier.session.idle),
            abs = signet_core::duration::format(tier.session.absolute),
        )
    });
}
