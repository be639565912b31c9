//! Sessions and what they prove.
//!
//! A session records the assurance that was actually demonstrated: the
//! Authenticator Assurance Level of NIST SP 800-63B §2 (`aal`), the
//! Authentication Methods References of RFC 8176 (`amr`), whether a
//! phishing-resistant authenticator was used (SP 800-63B §3.2.5), and when
//! (`auth_time`, as in OIDC Core §2). A session never claims more than that.
//!
//! Expiry follows SP 800-63B §2.x reauthentication: an absolute lifetime from
//! `auth_time` and an idle timeout since the last activity. The idle clock is
//! refreshed at most once a minute per session so that reads do not turn into
//! a write per request.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::secret::TokenHash;
use crate::user::UserId;

/// Authenticator Assurance Level (NIST SP 800-63B §2.1–2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aal {
    Aal1,
    Aal2,
    Aal3,
}

impl Aal {
    pub fn as_str(self) -> &'static str {
        match self {
            Aal::Aal1 => "aal1",
            Aal::Aal2 => "aal2",
            Aal::Aal3 => "aal3",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "aal1" => Some(Aal::Aal1),
            "aal2" => Some(Aal::Aal2),
            "aal3" => Some(Aal::Aal3),
            _ => None,
        }
    }
}

/// What a session may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionScope {
    /// A normal signed-in session.
    Full,
    /// From an invitation: may only enroll a first credential.
    Enrollment,
    /// From account recovery: may only enroll a new credential.
    Recovery,
}

impl SessionScope {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionScope::Full => "full",
            SessionScope::Enrollment => "enrollment",
            SessionScope::Recovery => "recovery",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(SessionScope::Full),
            "enrollment" => Some(SessionScope::Enrollment),
            "recovery" => Some(SessionScope::Recovery),
            _ => None,
        }
    }
}

/// How the client holds the session: an HttpOnly cookie, or a bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    #[default]
    Browser,
    Api,
}

impl SessionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::Browser => "browser",
            SessionMode::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "browser" => Some(SessionMode::Browser),
            "api" => Some(SessionMode::Api),
            _ => None,
        }
    }
}

/// How often `last_seen_at` is written back. Coarser than any idle timeout a
/// policy can set, fine enough that idle expiry is accurate to the minute.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub Uuid);

impl SessionId {
    pub fn new() -> Self {
        Self(crate::ids::time_ordered())
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub token_hash: TokenHash,
    pub aal: Aal,
    pub amr: Vec<String>,
    pub phishing_resistant: bool,
    pub auth_time: Timestamp,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub idle_timeout: Duration,
    pub absolute_expires_at: Timestamp,
    pub tier: String,
    pub scope: SessionScope,
    pub mode: SessionMode,
    pub ip: Option<String>,
    pub device: String,
    /// The credential that authenticated this session, if any, so that
    /// deleting that credential can end the sessions it created.
    pub credential_id: Option<Uuid>,
    /// Set when the session was raised by a step-up that named an action:
    /// its freshness then counts for that action only.
    pub step_up_action: Option<String>,
}

impl Session {
    /// When the session ends if nothing else happens.
    pub fn expires_at(&self) -> Timestamp {
        let idle = self.last_seen_at.plus(self.idle_timeout);
        idle.min(self.absolute_expires_at)
    }

    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at()
    }

    /// Whether this request should write `last_seen_at` back.
    pub fn needs_touch(&self, now: Timestamp) -> bool {
        now >= self.last_seen_at.plus(TOUCH_INTERVAL)
    }
}

/// What an authentication proved, before it becomes a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub aal: Aal,
    pub amr: Vec<String>,
    pub phishing_resistant: bool,
    pub credential_id: Option<Uuid>,
    /// The account the method itself identified, for methods that find the
    /// user from the proof (a discoverable passkey names its owner through
    /// the credential). The login engine adopts it for a usernameless flow
    /// and refuses it if it differs from the flow's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
}

impl Proof {
    /// What following a link that was sent to a registered channel proves
    /// (an invitation, a help-desk recovery link): control of that channel,
    /// aal1 at most, without phishing resistance or a credential.
    pub fn of_link(amr: &str) -> Self {
        Proof {
            aal: Aal::Aal1,
            amr: vec![amr.to_owned()],
            phishing_resistant: false,
            credential_id: None,
            user_id: None,
        }
    }
}

/// A short human label for a device, from its User-Agent header. Only the
/// browser family and platform are kept: enough for "Chrome on macOS" in a
/// session list or a new-sign-in email, without storing a fingerprint.
pub fn device_label(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent else {
        return "Unknown device".into();
    };
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("OPR/") || ua.contains("Opera") {
        "Opera"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") || ua.contains("HeadlessChrome/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else if ua.starts_with("curl/") {
        "curl"
    } else {
        ""
    };
    let platform = if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Android") {
        "Android"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("CrOS") {
        "ChromeOS"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        ""
    };
    match (browser, platform) {
        ("", "") => "Unknown device".into(),
        (b, "") => b.into(),
        ("", p) => format!("Browser on {p}"),
        (b, p) => format!("{b} on {p}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aal_orders_by_strength() {
        assert!(Aal::Aal1 < Aal::Aal2 && Aal::Aal2 < Aal::Aal3);
    }

    #[test]
    fn device_labels() {
        let chrome_mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        assert_eq!(device_label(Some(chrome_mac)), "Chrome on macOS");
        assert_eq!(device_label(Some("curl/8.0")), "curl");
        assert_eq!(device_label(None), "Unknown device");
    }

    #[test]
    fn expiry_is_the_earlier_of_idle_and_absolute() {
        let t0 = Timestamp::from_millis(0);
        let s = Session {
            id: SessionId::new(),
            user_id: UserId::new(),
            token_hash: TokenHash::of(b"x"),
            aal: Aal::Aal1,
            amr: vec![],
            phishing_resistant: false,
            auth_time: t0,
            created_at: t0,
            last_seen_at: t0,
            idle_timeout: Duration::from_secs(600),
            absolute_expires_at: t0.plus(Duration::from_secs(300)),
            tier: "standard".into(),
            scope: SessionScope::Full,
            mode: SessionMode::Api,
            ip: None,
            device: "x".into(),
            credential_id: None,
            step_up_action: None,
        };
        assert_eq!(s.expires_at(), t0.plus(Duration::from_secs(300)));
        assert!(s.is_live(t0.plus(Duration::from_secs(299))));
        assert!(!s.is_live(t0.plus(Duration::from_secs(300))));
    }
}
