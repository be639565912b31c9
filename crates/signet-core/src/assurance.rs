//! The assurance model: what each method proves on its own, and what
//! combinations prove, following NIST SP 800-63B rev. 4.
//!
//! | method          | authenticator type (SP 800-63B §3.1)          | alone | phishing-resistant | notes |
//! |-----------------|-----------------------------------------------|-------|--------------------|-------|
//! | `passkey` + UV  | multi-factor cryptographic authenticator §3.1.7 | aal2 | yes (§3.2.5, verifier-name binding) | aal3 only if device-bound, UV, and its AAGUID is allow-listed (a hardware-protected, non-exportable key, §2.3) |
//! | `passkey` no UV | single-factor cryptographic authenticator §3.1.6 | aal1 | yes | |
//! | `totp`          | single-factor OTP device §3.1.4               | aal1  | no | |
//! | `recovery_code` | look-up secret §3.1.2                         | aal1  | no | |
//! | `email_otp`, `magic_link` | out-of-band via email — email is not an acceptable out-of-band channel (§3.1.3.1), so these are never above aal1, alone or combined with another email method | aal1 | no | |
//! | `sms_otp`       | out-of-band via PSTN: a *restricted* authenticator (§3.2.9) | aal1 | no | |
//!
//! Combinations (§2.2): two *distinct factors* make aal2. Signet counts a
//! combination as aal2 when it has at least two distinct methods, at least
//! one of which is not email-based (two email methods prove one mailbox, not
//! two factors). A session never claims more than the strongest of these
//! rules gives, and phishing resistance is claimed only when a
//! phishing-resistant method was actually used.

use crate::method::MethodName;
use crate::session::{Aal, Proof};

/// Facts about a method that do not depend on the credential used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodFacts {
    /// What it proves alone, in its best configuration (a passkey with UV).
    pub aal_alone: Aal,
    pub phishing_resistant: bool,
    /// Proves control of a mailbox.
    pub email_based: bool,
    /// NIST "restricted" authenticator (SMS / PSTN).
    pub restricted: bool,
}

pub fn facts(method: MethodName) -> MethodFacts {
    let base = MethodFacts {
        aal_alone: Aal::Aal1,
        phishing_resistant: false,
        email_based: false,
        restricted: false,
    };
    match method {
        MethodName::Passkey => MethodFacts {
            aal_alone: Aal::Aal2,
            phishing_resistant: true,
            ..base
        },
        MethodName::MagicLink | MethodName::EmailOtp => MethodFacts {
            email_based: true,
            ..base
        },
        MethodName::SmsOtp => MethodFacts {
            restricted: true,
            ..base
        },
        MethodName::Totp | MethodName::RecoveryCode => base,
    }
}

/// One completed step of a flow: which method, and what it proved.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub method: MethodName,
    pub proof: Proof,
}

/// What a sequence of completed steps proves together.
pub fn combine(steps: &[Step]) -> Option<Proof> {
    let strongest = steps.iter().max_by_key(|s| s.proof.aal)?;
    let mut distinct: Vec<MethodName> = Vec::new();
    for s in steps {
        if !distinct.contains(&s.method) {
            distinct.push(s.method);
        }
    }
    let two_factors = distinct.len() >= 2 && distinct.iter().any(|m| !facts(*m).email_based);
    let mut aal = strongest.proof.aal;
    if two_factors && aal < Aal::Aal2 {
        aal = Aal::Aal2;
    }
    let mut amr: Vec<String> = Vec::new();
    for s in steps {
        for a in &s.proof.amr {
            if !amr.contains(a) {
                amr.push(a.clone());
            }
        }
    }
    if two_factors && !amr.iter().any(|a| a == "mfa") {
        amr.push("mfa".into());
    }
    Some(Proof {
        aal,
        amr,
        phishing_resistant: steps.iter().any(|s| s.proof.phishing_resistant),
        // The credential the session rests on: the strongest step's, else
        // any credential a step used (a passkey without UV next to an email
        // code ties at aal1, and the passkey must still be recorded, so that
        // removing it ends the session).
        credential_id: strongest
            .proof
            .credential_id
            .or_else(|| steps.iter().rev().find_map(|s| s.proof.credential_id)),
        user_id: steps.iter().find_map(|s| s.proof.user_id),
    })
}

/// The best a set of methods can reach in one login, used by policy checks:
/// the strongest single method, or aal2 for two distinct factors that are not
/// both email-based.
pub fn best_reachable(login: &[MethodName], second: &[MethodName]) -> Aal {
    let single = login.iter().map(|m| facts(*m).aal_alone).max().unwrap_or(Aal::Aal1);
    let pair = login.iter().any(|a| {
        second
            .iter()
            .any(|b| a != b && !(facts(*a).email_based && facts(*b).email_based))
    });
    if pair {
        single.max(Aal::Aal2)
    } else {
        single
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(method: MethodName, aal: Aal, amr: &str, pr: bool) -> Step {
        Step {
            method,
            proof: Proof {
                aal,
                amr: vec![amr.into()],
                phishing_resistant: pr,
                credential_id: None,
                user_id: None,
            },
        }
    }

    #[test]
    fn a_passkey_with_uv_alone_is_aal2_and_phishing_resistant() {
        let p = combine(&[step(MethodName::Passkey, Aal::Aal2, "hwk", true)]).unwrap();
        assert_eq!((p.aal, p.phishing_resistant), (Aal::Aal2, true));
    }

    #[test]
    fn the_session_records_the_passkey_even_when_another_step_ties_with_it() {
        let cred = uuid::Uuid::new_v4();
        let mut passkey = step(MethodName::Passkey, Aal::Aal1, "swk", true);
        passkey.proof.credential_id = Some(cred);
        let email = step(MethodName::EmailOtp, Aal::Aal1, "otp", false);
        for steps in [[passkey.clone(), email.clone()], [email, passkey]] {
            assert_eq!(combine(&steps).unwrap().credential_id, Some(cred), "{steps:?}");
        }
    }

    #[test]
    fn email_methods_never_exceed_aal1_even_together() {
        let p = combine(&[
            step(MethodName::MagicLink, Aal::Aal1, "email", false),
            step(MethodName::EmailOtp, Aal::Aal1, "otp", false),
        ])
        .unwrap();
        assert_eq!(p.aal, Aal::Aal1);
        assert!(!p.phishing_resistant);
    }

    #[test]
    fn an_email_code_plus_totp_is_two_factors() {
        let p = combine(&[
            step(MethodName::EmailOtp, Aal::Aal1, "otp", false),
            step(MethodName::Totp, Aal::Aal1, "otp", false),
        ])
        .unwrap();
        assert_eq!(p.aal, Aal::Aal2);
        assert_eq!(p.amr, vec!["otp", "mfa"]);
        assert!(!p.phishing_resistant, "no phishing resistance was shown");
    }

    #[test]
    fn the_same_method_twice_is_one_factor() {
        let p = combine(&[
            step(MethodName::Totp, Aal::Aal1, "otp", false),
            step(MethodName::Totp, Aal::Aal1, "otp", false),
        ])
        .unwrap();
        assert_eq!(p.aal, Aal::Aal1);
    }

    #[test]
    fn nothing_proven_is_nothing() {
        assert!(combine(&[]).is_none());
    }

    #[test]
    fn reachable_levels() {
        use MethodName::*;
        assert_eq!(best_reachable(&[Passkey], &[]), Aal::Aal2);
        assert_eq!(
            best_reachable(&[MagicLink, EmailOtp], &[MagicLink, EmailOtp]),
            Aal::Aal1
        );
        assert_eq!(best_reachable(&[EmailOtp], &[Totp]), Aal::Aal2);
        assert_eq!(best_reachable(&[SmsOtp], &[]), Aal::Aal1);
    }
}
