//! The tamper-evident audit log.
//!
//! Every security event becomes a record: who (actor), what (type, user,
//! details), when, where from (IP, user agent) and the outcome. Records form a
//! hash chain: each record's hash covers its own canonical encoding and the
//! previous record's hash, with a dense sequence number. Editing a record
//! breaks its hash; deleting or reordering records breaks the sequence or the
//! link to the previous hash; truncating the tail is caught by comparing the
//! last record with the chain head the store keeps beside it.
//!
//! The canonical encoding is length-prefixed, so no two different records can
//! encode to the same bytes, and it hashes the exact `details` text that was
//! stored (no re-serialisation on verify).

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::user::UserId;

/// The hash that precedes the first record.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// What happened. The string form is the stable `type` in the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    UserCreated,
    UserDisabled,
    UserEnabled,
    AdminTokenCreated,
    AdminTokenRevoked,
    AdminAccess,
    InvitationCreated,
    InvitationRedeemed,
    InvitationRejected,
    LoginSucceeded,
    LoginFailed,
    SessionEnded,
    SessionSteppedUp,
    RecoveryCompleted,
    FallbackUsed,
    FallbackRefused,
    LoginCodeSent,
    LoginCrossDevice,
    /// A browser sign-in from a device the account had not used before.
    LoginNewDevice,
    LoginLocked,
    CredentialAdded,
    CredentialRenamed,
    CredentialRemoved,
    CredentialRefused,
    CounterRegression,
    /// `signet keys rotate-sealing` re-sealed values under the current key.
    SecretsResealed,
    /// A queued message expired before it could be delivered and was
    /// dropped (marked dead) instead of sent.
    MessageExpired,
    /// An operator made every pending message due now (`signet outbox
    /// retry`, `POST /api/v1/admin/outbox/retry`).
    OutboxRetried,
    /// An SMS was not sent because a pumping protection refused it (a
    /// country off the allow-list, a premium or unassigned range, a send
    /// limit or the global hourly cap).
    SmsBlocked,
    OidcClientRegistered,
    OidcClientConfigured,
    OidcClientDeleted,
    OidcTokenIssued,
    OidcTokenRefused,
    OidcAuthorized,
    OidcAuthorizationRefused,
    OidcCodeReused,
    OidcRefreshReused,
    /// A client revoked a token (RFC 7009), or asked to revoke one that was
    /// not its own or not known.
    OidcTokenRevoked,
    /// RP-initiated logout ended a session (OpenID Connect RP-Initiated
    /// Logout 1.0), or refused a request (unregistered redirect URI).
    OidcLogout,
    /// Back-channel logout tokens were queued for the clients holding a
    /// grant of sessions that ended (OpenID Connect Back-Channel Logout 1.0).
    OidcBackchannelLogoutQueued,
    /// `signet keys rotate`: a new generation of signing keys was added.
    OidcSigningKeyRotated,
    /// An admin changed a client's settings.
    OidcClientUpdated,
    /// An admin rotated a client's secret (the old one has a grace period).
    OidcClientSecretRotated,
    /// A user allowed a third-party client the scopes it asked for.
    OidcConsentGranted,
    /// A user refused a third-party client on the consent page.
    OidcConsentDenied,
    /// A user revoked an app's access from the account page.
    OidcConsentRevoked,
    /// A help-desk recovery ticket was opened.
    RecoveryTicketCreated,
    /// An admin approved a help-desk recovery ticket.
    RecoveryTicketApproved,
    /// A help-desk recovery link was refused (malformed, unknown, used or
    /// expired, or its account disabled).
    RecoveryLinkRejected,
}

impl EventType {
    pub const ALL: &'static [EventType] = &[
        EventType::UserCreated,
        EventType::UserDisabled,
        EventType::UserEnabled,
        EventType::AdminTokenCreated,
        EventType::RecoveryTicketCreated,
        EventType::RecoveryTicketApproved,
        EventType::RecoveryLinkRejected,
        EventType::AdminTokenRevoked,
        EventType::AdminAccess,
        EventType::InvitationCreated,
        EventType::InvitationRedeemed,
        EventType::InvitationRejected,
        EventType::LoginSucceeded,
        EventType::LoginFailed,
        EventType::SessionEnded,
        EventType::SessionSteppedUp,
        EventType::RecoveryCompleted,
        EventType::FallbackUsed,
        EventType::FallbackRefused,
        EventType::LoginCodeSent,
        EventType::LoginCrossDevice,
        EventType::LoginNewDevice,
        EventType::LoginLocked,
        EventType::CredentialAdded,
        EventType::CredentialRenamed,
        EventType::CredentialRemoved,
        EventType::CredentialRefused,
        EventType::CounterRegression,
        EventType::SecretsResealed,
        EventType::MessageExpired,
        EventType::OutboxRetried,
        EventType::SmsBlocked,
        EventType::OidcClientRegistered,
        EventType::OidcClientConfigured,
        EventType::OidcClientDeleted,
        EventType::OidcTokenIssued,
        EventType::OidcTokenRefused,
        EventType::OidcAuthorized,
        EventType::OidcAuthorizationRefused,
        EventType::OidcCodeReused,
        EventType::OidcRefreshReused,
        EventType::OidcTokenRevoked,
        EventType::OidcLogout,
        EventType::OidcBackchannelLogoutQueued,
        EventType::OidcSigningKeyRotated,
        EventType::OidcClientUpdated,
        EventType::OidcClientSecretRotated,
        EventType::OidcConsentGranted,
        EventType::OidcConsentDenied,
        EventType::OidcConsentRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::UserDisabled => "user.disabled",
            EventType::UserEnabled => "user.enabled",
            EventType::AdminTokenCreated => "admin_token.created",
            EventType::RecoveryTicketCreated => "recovery_ticket.created",
            EventType::RecoveryTicketApproved => "recovery_ticket.approved",
            EventType::RecoveryLinkRejected => "recovery_link.rejected",
            EventType::AdminTokenRevoked => "admin_token.revoked",
            EventType::AdminAccess => "admin.access",
            EventType::InvitationCreated => "invitation.created",
            EventType::InvitationRedeemed => "invitation.redeemed",
            EventType::InvitationRejected => "invitation.rejected",
            EventType::LoginSucceeded => "login.succeeded",
            EventType::LoginFailed => "login.failed",
            EventType::SessionEnded => "session.ended",
            EventType::SessionSteppedUp => "session.stepped_up",
            EventType::RecoveryCompleted => "recovery.completed",
            EventType::FallbackUsed => "login.fallback_used",
            EventType::FallbackRefused => "login.fallback_refused",
            EventType::LoginCodeSent => "login.code_sent",
            EventType::LoginCrossDevice => "login.cross_device",
            EventType::LoginNewDevice => "login.new_device",
            EventType::LoginLocked => "login.locked",
            EventType::CredentialAdded => "credential.added",
            EventType::CredentialRenamed => "credential.renamed",
            EventType::CredentialRemoved => "credential.removed",
            EventType::CredentialRefused => "credential.refused",
            EventType::CounterRegression => "credential.counter_regression",
            EventType::SecretsResealed => "sealing.resealed",
            EventType::MessageExpired => "message.expired",
            EventType::OutboxRetried => "outbox.retried",
            EventType::SmsBlocked => "sms.blocked",
            EventType::OidcClientRegistered => "oidc.client_registered",
            EventType::OidcClientConfigured => "oidc.client_configured",
            EventType::OidcClientDeleted => "oidc.client_deleted",
            EventType::OidcTokenIssued => "oidc.token_issued",
            EventType::OidcTokenRefused => "oidc.token_refused",
            EventType::OidcAuthorized => "oidc.authorized",
            EventType::OidcAuthorizationRefused => "oidc.authorization_refused",
            EventType::OidcCodeReused => "oidc.code_reused",
            EventType::OidcRefreshReused => "oidc.refresh_reused",
            EventType::OidcTokenRevoked => "oidc.token_revoked",
            EventType::OidcLogout => "oidc.logout",
            EventType::OidcBackchannelLogoutQueued => "oidc.backchannel_logout_queued",
            EventType::OidcSigningKeyRotated => "oidc.signing_key_rotated",
            EventType::OidcClientUpdated => "oidc.client_updated",
            EventType::OidcClientSecretRotated => "oidc.client_secret_rotated",
            EventType::OidcConsentGranted => "oidc.consent_granted",
            EventType::OidcConsentDenied => "oidc.consent_denied",
            EventType::OidcConsentRevoked => "oidc.consent_revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            "denied" => Some(Outcome::Denied),
            _ => None,
        }
    }
}

/// Who did it, as a stable string: `user:<uuid>`, `admin:<name>`, `cli`,
/// `system` or `anonymous`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    Admin { id: Uuid, name: String },
    Cli,
    System,
    Anonymous,
}

impl Actor {
    pub fn to_wire(&self) -> String {
        match self {
            Actor::User(id) => format!("user:{id}"),
            Actor::Admin { name, .. } => format!("admin:{name}"),
            Actor::Cli => "cli".into(),
            Actor::System => "system".into(),
            Actor::Anonymous => "anonymous".into(),
        }
    }
}

/// Where a request came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The hash of the browser's device cookie (`signet_device`), if it has
    /// one: how "a new device" is told (docs/recovery.md). Never logged.
    pub device: Option<crate::secret::TokenHash>,
}

/// An event before it is appended.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub event_type: EventType,
    pub actor: Actor,
    pub user_id: Option<UserId>,
    pub origin: Origin,
    pub outcome: Outcome,
    pub details: serde_json::Value,
}

impl AuditEvent {
    pub fn new(event_type: EventType, actor: Actor, outcome: Outcome) -> Self {
        Self {
            event_type,
            actor,
            user_id: None,
            origin: Origin::default(),
            outcome,
            details: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn user(mut self, id: UserId) -> Self {
        self.user_id = Some(id);
        self
    }

    pub fn from_origin(mut self, origin: &Origin) -> Self {
        self.origin = origin.clone();
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// A stored record, as read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub id: Uuid,
    pub at: Timestamp,
    pub event_type: String,
    pub actor: String,
    pub user_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub outcome: String,
    /// The exact JSON text that was hashed.
    pub details: String,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl AuditRecord {
    /// Seals a new record onto a chain whose last record was `prev`.
    pub fn seal(event: &AuditEvent, id: Uuid, at: Timestamp, prev_seq: i64, prev_hash: [u8; 32]) -> Self {
        let mut rec = AuditRecord {
            seq: prev_seq + 1,
            id,
            at,
            event_type: event.event_type.as_str().to_owned(),
            actor: event.actor.to_wire(),
            user_id: event.user_id.map(|u| u.0),
            ip: event.origin.ip.clone(),
            user_agent: event.origin.user_agent.clone(),
            outcome: event.outcome.as_str().to_owned(),
            details: event.details.to_string(),
            prev_hash,
            hash: [0; 32],
        };
        rec.hash = rec.compute_hash();
        rec
    }

    /// SHA-256 over the length-prefixed canonical fields and `prev_hash`.
    pub fn compute_hash(&self) -> [u8; 32] {
        fn field(h: &mut Sha256, bytes: &[u8]) {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        }
        fn opt(h: &mut Sha256, v: Option<&str>) {
            match v {
                Some(s) => {
                    h.update([1]);
                    field(h, s.as_bytes());
                }
                None => h.update([0]),
            }
        }
        let mut h = Sha256::new();
        h.update(b"signet-audit-v1");
        h.update(self.prev_hash);
        h.update(self.seq.to_be_bytes());
        h.update(self.id.as_bytes());
        h.update(self.at.as_millis().to_be_bytes());
        field(&mut h, self.event_type.as_bytes());
        field(&mut h, self.actor.as_bytes());
        opt(&mut h, self.user_id.map(|u| u.to_string()).as_deref());
        opt(&mut h, self.ip.as_deref());
        opt(&mut h, self.user_agent.as_deref());
        field(&mut h, self.outcome.as_bytes());
        field(&mut h, self.details.as_bytes());
        h.finalize().into()
    }
}

/// Why verification failed, naming the first bad record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("record seq {seq} (id {id}): contents do not match its hash (edited)")]
    Edited { seq: i64, id: Uuid },
    #[error("record seq {seq} (id {id}): does not link to the record before it (deleted, inserted or reordered)")]
    BrokenLink { seq: i64, id: Uuid },
    #[error("record seq {seq} (id {id}): expected seq {expected} (a record is missing or out of order)")]
    Gap { seq: i64, id: Uuid, expected: i64 },
    #[error("the log ends at seq {last} but the chain head says {head}: records were removed from the end")]
    Truncated { last: i64, head: i64 },
}

/// Streaming verifier: feed records in `seq` order, then call [`Verifier::finish`].
#[derive(Debug)]
pub struct Verifier {
    expected_seq: i64,
    prev_hash: [u8; 32],
    checked: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS,
            checked: 0,
        }
    }
}

impl Verifier {
    pub fn check(&mut self, rec: &AuditRecord) -> Result<(), ChainError> {
        if rec.seq != self.expected_seq {
            return Err(ChainError::Gap {
                seq: rec.seq,
                id: rec.id,
                expected: self.expected_seq,
            });
        }
        if rec.prev_hash != self.prev_hash {
            return Err(ChainError::BrokenLink {
                seq: rec.seq,
                id: rec.id,
            });
        }
        if rec.compute_hash() != rec.hash {
            return Err(ChainError::Edited {
                seq: rec.seq,
                id: rec.id,
            });
        }
        self.expected_seq += 1;
        self.prev_hash = rec.hash;
        self.checked += 1;
        Ok(())
    }

    /// Compares the end of the walk with the stored chain head.
    pub fn finish(self, head_seq: i64, head_hash: [u8; 32]) -> Result<u64, ChainError> {
        let last = self.expected_seq - 1;
        if last != head_seq || self.prev_hash != head_hash {
            return Err(ChainError::Truncated { last, head: head_seq });
        }
        Ok(self.checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let (seq, prev) = out.last().map(|r| (r.seq, r.hash)).unwrap_or((0, GENESIS));
            let ev = AuditEvent::new(EventType::UserCreated, Actor::Cli, Outcome::Success)
                .details(serde_json::json!({ "n": i }));
            out.push(AuditRecord::seal(
                &ev,
                Uuid::new_v4(),
                Timestamp::from_millis(i as i64),
                seq,
                prev,
            ));
        }
        out
    }

    fn verify(recs: &[AuditRecord], head: (i64, [u8; 32])) -> Result<u64, ChainError> {
        let mut v = Verifier::default();
        for r in recs {
            v.check(r)?;
        }
        v.finish(head.0, head.1)
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        let head = (c[4].seq, c[4].hash);
        assert_eq!(verify(&c, head), Ok(5));
    }

    #[test]
    fn edit_is_caught_and_named() {
        let mut c = chain(5);
        let head = (c[4].seq, c[4].hash);
        c[2].details = r#"{"n":99}"#.into();
        assert_eq!(verify(&c, head), Err(ChainError::Edited { seq: 3, id: c[2].id }));
    }

    #[test]
    fn deletion_is_caught() {
        let mut c = chain(5);
        let head = (c[4].seq, c[4].hash);
        let removed = c.remove(1);
        assert!(
            matches!(verify(&c, head), Err(ChainError::Gap { expected: 2, .. })),
            "{removed:?}"
        );
    }

    #[test]
    fn reordering_is_caught() {
        let mut c = chain(5);
        let head = (c[4].seq, c[4].hash);
        c.swap(1, 2);
        assert!(verify(&c, head).is_err());
        // Even with seq numbers patched back into order, the links break.
        c[1].seq = 2;
        c[2].seq = 3;
        assert!(matches!(verify(&c, head), Err(ChainError::BrokenLink { seq: 2, .. })));
    }

    #[test]
    fn truncation_is_caught() {
        let c = chain(5);
        let head = (c[4].seq, c[4].hash);
        assert_eq!(verify(&c[..4], head), Err(ChainError::Truncated { last: 4, head: 5 }));
    }
}
