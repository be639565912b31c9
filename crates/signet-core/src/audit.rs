//! The tamper-evident audit log.
//!
//! Every security event becomes a record: who (actor), what (type, user,
//! details), when, where from (IP, user agent) and the outcome. Records form
//! hash chains: each record's hash covers its own canonical encoding, its
//! sequence number and the previous record's hash **in the same lane**.
//! Editing a record breaks its hash; deleting, inserting or reordering
//! records breaks the link to the previous hash; truncating a lane's tail is
//! caught by comparing its last record with the lane's head, which the store
//! keeps beside the log and moves in the same transaction as each append.
//!
//! **Lanes** (ADR 0036). The log is one chain on SQLite, whose single writer
//! orders every append anyway (lane 1). On PostgreSQL a transaction holds
//! its lane's head row from its append until its commit has flushed, so one
//! chain would serialise every commit of every node behind one lock and one
//! WAL flush at a time. There the log is [`LANES`] interleaved chains: an
//! append takes a lane no other transaction holds, and its `seq` comes from
//! one database sequence drawn while the lane is held, so within a lane
//! `seq` order is chain order, and across lanes `seq` is one global order
//! (with gaps where a transaction failed after drawing its number; a gap is
//! not evidence of tampering, since every lane's links still must hold).
//!
//! The canonical encoding is length-prefixed, so no two different records can
//! encode to the same bytes, and it hashes the exact `details` text that was
//! stored (no re-serialisation on verify). The lane is not hashed: moving a
//! record to another lane breaks both lanes' links.

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::user::UserId;

/// The hash that precedes the first record of every lane.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// How many lanes the log has on PostgreSQL (ADR 0036); SQLite uses lane 1
/// only. Lanes are numbered from 1. PostgreSQL's migration 0035 creates the
/// `audit_head` rows and the `CHECK` that bound them: change all three
/// together.
pub const LANES: i16 = 16;

/// The lane every SQLite append and every record before lanes existed is in.
pub const FIRST_LANE: i16 = 1;

/// One lane's head: the `seq` and hash of its last record (0 and
/// [`GENESIS`] while it has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneHead {
    pub lane: i16,
    pub seq: i64,
    pub hash: [u8; 32],
}

/// Where the log ends, read in one statement (one snapshot): every lane's
/// head, and the highest `seq` each lane's records reach. A record commits
/// together with its lane's head, so in one snapshot no lane's records go
/// above its head. If one does, a record was inserted without its head, or
/// the head was moved back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainEnds {
    pub heads: Vec<LaneHead>,
    /// `(lane, highest seq)` for every lane that has records, including any
    /// lane without a head.
    pub newest: Vec<(i16, i64)>,
}

impl ChainEnds {
    /// The highest `seq` any lane's head has reached: the newest record a
    /// healthy log holds.
    pub fn last_seq(&self) -> i64 {
        self.heads.iter().map(|h| h.seq).max().unwrap_or(0)
    }
}

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
    /// The chain this record links into (ADR 0036).
    pub lane: i16,
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
    /// Seals a new record onto lane 1 after the record `prev_seq`, as
    /// SQLite's single writer does: the next number, dense.
    pub fn seal(event: &AuditEvent, id: Uuid, at: Timestamp, prev_seq: i64, prev_hash: [u8; 32]) -> Self {
        Self::seal_in_lane(event, id, at, FIRST_LANE, prev_seq + 1, prev_hash)
    }

    /// Seals a new record numbered `seq` onto `lane`, whose last record's
    /// hash is `prev_hash`.
    pub fn seal_in_lane(event: &AuditEvent, id: Uuid, at: Timestamp, lane: i16, seq: i64, prev_hash: [u8; 32]) -> Self {
        let mut rec = AuditRecord {
            seq,
            lane,
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
    #[error("record seq {seq} (id {id}): does not link to the record before it in lane {lane} (deleted, inserted or reordered)")]
    BrokenLink { seq: i64, id: Uuid, lane: i16 },
    /// A walk fed out of `seq` order; a walk that reads in `seq` order, as
    /// `signet audit verify` does, never sees it.
    #[error("record seq {seq} (id {id}): comes after seq {after} in lane {lane} (out of order)")]
    OutOfOrder { seq: i64, id: Uuid, lane: i16, after: i64 },
    #[error("record seq {seq} (id {id}): names lane {lane}, which has no head (inserted)")]
    UnknownLane { seq: i64, id: Uuid, lane: i16 },
    #[error("lane {lane} ends at seq {last} but its head says {head}: records were removed from the end")]
    Truncated { lane: i16, last: i64, head: i64 },
    #[error("lane {lane} holds seq {newest}, above its head at seq {head}: a record was inserted without its head, or the head was moved back")]
    AboveHead { lane: i16, newest: i64, head: i64 },
}

/// Streaming verifier of every lane at once, against where the log ended
/// before the walk ([`ChainEnds`]): feed records in `seq` order (lanes
/// interleaved, as the log stores them), then call [`Verifier::finish`].
///
/// A record above its lane's head was appended after the ends were read and
/// is not judged now (on PostgreSQL, a lower `seq` in another lane may still
/// have been in flight when the walk passed it); the next verification
/// judges it. A record above its lane's head in the ends' own snapshot
/// cannot be such a record, and fails the verification.
#[derive(Debug)]
pub struct Verifier {
    ends: ChainEnds,
    /// Per lane: the last checked record's `seq` and hash.
    walked: std::collections::BTreeMap<i16, (i64, [u8; 32])>,
    checked: u64,
}

impl Verifier {
    pub fn new(ends: &ChainEnds) -> Self {
        Self {
            ends: ends.clone(),
            walked: Default::default(),
            checked: 0,
        }
    }

    /// The newest `seq` the heads cover: a walk may stop above it.
    pub fn covers(&self) -> i64 {
        self.ends.last_seq()
    }

    fn head(&self, lane: i16) -> Option<&LaneHead> {
        self.ends.heads.iter().find(|h| h.lane == lane)
    }

    pub fn check(&mut self, rec: &AuditRecord) -> Result<(), ChainError> {
        let (seq, id, lane) = (rec.seq, rec.id, rec.lane);
        let Some(head) = self.head(lane) else {
            return Err(ChainError::UnknownLane { seq, id, lane });
        };
        if seq > head.seq {
            return Ok(());
        }
        let (last_seq, last_hash) = self.walked.get(&lane).copied().unwrap_or((0, GENESIS));
        if seq <= last_seq {
            return Err(ChainError::OutOfOrder {
                seq,
                id,
                lane,
                after: last_seq,
            });
        }
        if rec.prev_hash != last_hash {
            return Err(ChainError::BrokenLink { seq, id, lane });
        }
        if rec.compute_hash() != rec.hash {
            return Err(ChainError::Edited { seq, id });
        }
        self.walked.insert(lane, (seq, rec.hash));
        self.checked += 1;
        Ok(())
    }

    /// Compares where each lane's walk ended with its head, and the newest
    /// record with the heads. Returns the number of records checked.
    pub fn finish(self) -> Result<u64, ChainError> {
        for head in &self.ends.heads {
            let (last, hash) = self.walked.get(&head.lane).copied().unwrap_or((0, GENESIS));
            if last != head.seq || hash != head.hash {
                return Err(ChainError::Truncated {
                    lane: head.lane,
                    last,
                    head: head.seq,
                });
            }
        }
        for &(lane, newest) in &self.ends.newest {
            let head = self.head(lane).map_or(0, |h| h.seq);
            if newest > head {
                return Err(ChainError::AboveHead { lane, newest, head });
            }
        }
        Ok(self.checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> AuditEvent {
        AuditEvent::new(EventType::UserCreated, Actor::Cli, Outcome::Success).details(serde_json::json!({ "n": n }))
    }

    fn chain(n: usize) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let (seq, prev) = out.last().map(|r| (r.seq, r.hash)).unwrap_or((0, GENESIS));
            out.push(AuditRecord::seal(
                &event(i),
                Uuid::new_v4(),
                Timestamp::from_millis(i as i64),
                seq,
                prev,
            ));
        }
        out
    }

    /// Records as PostgreSQL's lanes store them: `seq` drawn from one
    /// sequence (with the gaps a failed transaction leaves), each record
    /// linked to the last one of its own lane.
    fn lanes(plan: &[(i16, i64)]) -> (Vec<AuditRecord>, ChainEnds) {
        let mut heads: Vec<LaneHead> = (FIRST_LANE..=LANES)
            .map(|lane| LaneHead {
                lane,
                seq: 0,
                hash: GENESIS,
            })
            .collect();
        let mut out = Vec::new();
        for (i, &(lane, seq)) in plan.iter().enumerate() {
            let head = &mut heads[(lane - FIRST_LANE) as usize];
            let rec = AuditRecord::seal_in_lane(
                &event(i),
                Uuid::new_v4(),
                Timestamp::from_millis(seq),
                lane,
                seq,
                head.hash,
            );
            head.seq = rec.seq;
            head.hash = rec.hash;
            out.push(rec);
        }
        let newest = heads.iter().filter(|h| h.seq > 0).map(|h| (h.lane, h.seq)).collect();
        (out, ChainEnds { heads, newest })
    }

    /// SQLite's ends: one lane, its head at the last record.
    fn head_of(c: &[AuditRecord]) -> ChainEnds {
        let last = c.last().unwrap();
        ChainEnds {
            heads: vec![LaneHead {
                lane: FIRST_LANE,
                seq: last.seq,
                hash: last.hash,
            }],
            newest: vec![(FIRST_LANE, last.seq)],
        }
    }

    fn verify(recs: &[AuditRecord], ends: &ChainEnds) -> Result<u64, ChainError> {
        let mut v = Verifier::new(ends);
        for r in recs {
            v.check(r)?;
        }
        v.finish()
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify(&c, &head_of(&c)), Ok(5));
    }

    #[test]
    fn edit_is_caught_and_named() {
        let mut c = chain(5);
        let heads = head_of(&c);
        c[2].details = r#"{"n":99}"#.into();
        assert_eq!(verify(&c, &heads), Err(ChainError::Edited { seq: 3, id: c[2].id }));
    }

    #[test]
    fn deletion_is_caught() {
        let mut c = chain(5);
        let heads = head_of(&c);
        let removed = c.remove(1);
        assert!(
            matches!(verify(&c, &heads), Err(ChainError::BrokenLink { seq: 3, .. })),
            "{removed:?}"
        );
    }

    #[test]
    fn reordering_is_caught() {
        let mut c = chain(5);
        let heads = head_of(&c);
        c.swap(1, 2);
        assert!(matches!(verify(&c, &heads), Err(ChainError::BrokenLink { seq: 3, .. })));
        // Even with seq numbers patched back into order, the links break.
        c[1].seq = 2;
        c[2].seq = 3;
        assert!(matches!(verify(&c, &heads), Err(ChainError::BrokenLink { seq: 2, .. })));
    }

    #[test]
    fn truncation_is_caught() {
        let c = chain(5);
        assert_eq!(
            verify(&c[..4], &head_of(&c)),
            Err(ChainError::Truncated {
                lane: FIRST_LANE,
                last: 4,
                head: 5
            })
        );
    }

    #[test]
    fn interleaved_lanes_with_gaps_verify() {
        let (c, heads) = lanes(&[(1, 1), (2, 2), (1, 3), (3, 5), (2, 6), (2, 7), (1, 9)]);
        assert_eq!(verify(&c, &heads), Ok(7));
    }

    #[test]
    fn a_record_moved_to_another_lane_breaks_both() {
        let (mut c, heads) = lanes(&[(1, 1), (2, 2), (1, 3), (2, 4)]);
        c[2].lane = 2;
        assert!(matches!(
            verify(&c, &heads),
            Err(ChainError::BrokenLink { seq: 3, lane: 2, .. })
        ));
    }

    #[test]
    fn a_lane_cut_short_is_caught_even_when_others_are_whole() {
        let (c, heads) = lanes(&[(1, 1), (2, 2), (1, 3), (2, 4), (1, 5)]);
        let without_last_of_lane_2: Vec<_> = c.iter().filter(|r| r.seq != 4).cloned().collect();
        assert_eq!(
            verify(&without_last_of_lane_2, &heads),
            Err(ChainError::Truncated {
                lane: 2,
                last: 2,
                head: 4
            })
        );
    }

    #[test]
    fn a_lane_without_a_head_is_named() {
        let (c, _) = lanes(&[(1, 1), (2, 2)]);
        let heads = head_of(&c[..1]);
        assert_eq!(
            verify(&c, &heads),
            Err(ChainError::UnknownLane {
                seq: 2,
                id: c[1].id,
                lane: 2
            })
        );
    }

    #[test]
    fn records_above_their_lanes_head_wait_for_the_next_walk() {
        // The heads were read before lane 2's second record committed; lane
        // 1's record 5 was there already.
        let (c, mut ends) = lanes(&[(1, 1), (2, 2), (2, 4), (1, 5)]);
        let (seq, hash) = (c[1].seq, c[1].hash);
        ends.heads[1].seq = seq;
        ends.heads[1].hash = hash;
        ends.newest = vec![(1, 5), (2, seq)];
        let mut v = Verifier::new(&ends);
        assert_eq!(v.covers(), 5);
        for r in &c {
            v.check(r).unwrap();
        }
        assert_eq!(v.finish(), Ok(3));
    }

    #[test]
    fn a_record_above_its_lanes_head_in_the_same_snapshot_is_caught() {
        // Inserted into an idle lane without touching its head: below the
        // other lanes' heads, so the walk alone would take it for a record
        // appended after the heads were read.
        let (c, mut ends) = lanes(&[(1, 1), (2, 2), (1, 3)]);
        ends.newest.push((16, 2_000));
        assert_eq!(
            verify(&c, &ends),
            Err(ChainError::AboveHead {
                lane: 16,
                newest: 2_000,
                head: 0
            })
        );
        // A head moved back over its lane's last record.
        let c = chain(4);
        let mut ends = head_of(&c[..3]);
        ends.newest = vec![(FIRST_LANE, 4)];
        assert_eq!(
            verify(&c, &ends),
            Err(ChainError::AboveHead {
                lane: FIRST_LANE,
                newest: 4,
                head: 3
            })
        );
    }
}
