//! Fault injection: a [`Store`] that passes everything through to the real
//! one, except that an armed audit append fails inside its unit of work, as
//! a full disk would fail it. A use case must then leave nothing of its
//! unit behind (ADR 0010).

use std::sync::{Arc, Mutex};

use signet_core::admin_token::AdminToken;
use signet_core::audit::{AuditEvent, AuditRecord, EventType};
use signet_core::clock::Timestamp;
use signet_core::credential::{
    Ceremony, Passkey, PasskeyUse, PhoneCredential, RecoveryCodeSet, Removal, TotpCredential,
};
use signet_core::flow::{Flow, FlowId};
use signet_core::outbox::{Lease, Message};
use signet_core::secret::TokenHash;
use signet_core::session::{Session, SessionId};
use signet_core::store::*;
use signet_core::unit_of_work::*;
use signet_core::user::{User, UserId, UserStatus};
use signet_store::SqlStore;
use uuid::Uuid;

/// Which audit appends fail.
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<Option<EventType>>>);

impl Faults {
    /// Every append of an `event_type` record fails until [`Faults::heal`].
    pub fn fail_audit(&self, event_type: EventType) {
        *self.0.lock().unwrap() = Some(event_type);
    }

    pub fn heal(&self) {
        *self.0.lock().unwrap() = None;
    }

    fn fails(&self, event: &AuditEvent) -> bool {
        *self.0.lock().unwrap() == Some(event.event_type)
    }
}

pub struct FailingStore {
    inner: Arc<SqlStore>,
    faults: Faults,
}

impl FailingStore {
    pub fn new(inner: Arc<SqlStore>, faults: Faults) -> Self {
        Self { inner, faults }
    }
}

pub struct FailingTx {
    inner: Tx,
    faults: Faults,
    /// A record that "cannot be written" was appended: the commit, where
    /// records are chained, fails as a full disk would make it.
    doomed: bool,
}

#[async_trait::async_trait]
impl UnitOfWork for FailingStore {
    async fn begin(&self) -> StoreResult<Tx> {
        Ok(Box::new(FailingTx {
            doomed: false,
            inner: self.inner.begin().await?,
            faults: self.faults.clone(),
        }))
    }
}

#[async_trait::async_trait]
impl Store for FailingStore {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
    async fn probe_write(&self, now: Timestamp) -> StoreResult<()> {
        self.inner.probe_write(now).await
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

#[async_trait::async_trait]
impl AuditAppend for FailingTx {
    async fn append_audit(&mut self, event: &AuditEvent, id: Uuid, at: Timestamp) -> StoreResult<()> {
        if self.faults.fails(event) {
            self.doomed = true;
        }
        self.inner.append_audit(event, id, at).await
    }
}

#[async_trait::async_trait]
impl Transaction for FailingTx {
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        if self.doomed {
            self.inner.rollback().await?;
            return Err(StoreError::Full("injected: no space left on device".into()));
        }
        self.inner.commit().await
    }
    async fn rollback(self: Box<Self>) -> StoreResult<()> {
        self.inner.rollback().await
    }
}

// Everything else passes through.

#[async_trait::async_trait]
impl UserStore for FailingStore {
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        self.inner.user_by_id(id).await
    }
    async fn user_by_email(&self, email_normalized: &str) -> StoreResult<Option<User>> {
        self.inner.user_by_email(email_normalized).await
    }
    async fn list_users(&self, after_email: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
        self.inner.list_users(after_email, limit).await
    }
}

#[async_trait::async_trait]
impl SessionStore for FailingStore {
    async fn session_with_user_by_token(&self, token: &TokenHash) -> StoreResult<Option<(Session, Option<User>)>> {
        self.inner.session_with_user_by_token(token).await
    }
    async fn touch_session(&self, id: SessionId, now: Timestamp) -> StoreResult<()> {
        self.inner.touch_session(id, now).await
    }
    async fn list_user_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<Session>> {
        self.inner.list_user_sessions(user, now).await
    }
    async fn purge_expired_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        self.inner.purge_expired_sessions(now).await
    }
    async fn timed_out_sessions_with_apps(
        &self,
        now: Timestamp,
        after: Option<signet_core::session::SessionId>,
        limit: u32,
    ) -> StoreResult<Vec<(UserId, signet_core::session::SessionId)>> {
        self.inner.timed_out_sessions_with_apps(now, after, limit).await
    }
}

#[async_trait::async_trait]
impl FlowStore for FailingStore {
    async fn insert_flow(&self, flow: &Flow) -> StoreResult<()> {
        self.inner.insert_flow(flow).await
    }
    async fn flow(&self, id: FlowId, now: Timestamp) -> StoreResult<Option<Flow>> {
        self.inner.flow(id, now).await
    }
    async fn is_finished(&self, id: FlowId) -> StoreResult<bool> {
        self.inner.is_finished(id).await
    }
    async fn update_flow(&self, flow: &Flow, now: Timestamp) -> StoreResult<bool> {
        self.inner.update_flow(flow, now).await
    }
    async fn purge_expired_flows(&self, now: Timestamp) -> StoreResult<u64> {
        self.inner.purge_expired_flows(now).await
    }
}

#[async_trait::async_trait]
impl SecretStore for FailingStore {
    async fn peek_secret(&self, purpose: SecretPurpose, hash: &TokenHash) -> StoreResult<Option<OneTimeSecret>> {
        self.inner.peek_secret(purpose, hash).await
    }
    async fn consume_secret(
        &self,
        purpose: SecretPurpose,
        hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<OneTimeSecret>> {
        self.inner.consume_secret(purpose, hash, now).await
    }
    async fn purge_spent_secrets(&self, before: Timestamp) -> StoreResult<u64> {
        self.inner.purge_spent_secrets(before).await
    }
}

#[async_trait::async_trait]
impl ThrottleStore for FailingStore {
    async fn hit(&self, key: &str, now: Timestamp, window: std::time::Duration) -> StoreResult<WindowCount> {
        self.inner.hit(key, now, window).await
    }
    async fn record_failure(&self, key: &str, now: Timestamp) -> StoreResult<Failures> {
        self.inner.record_failure(key, now).await
    }
    async fn failures(&self, key: &str) -> StoreResult<Option<Failures>> {
        self.inner.failures(key).await
    }
    async fn swap_failures(&self, key: &str, expected: Option<Failures>, new: Failures) -> StoreResult<bool> {
        self.inner.swap_failures(key, expected, new).await
    }
    async fn clear_failures(&self, key: &str) -> StoreResult<()> {
        self.inner.clear_failures(key).await
    }
    async fn purge_throttles(&self, before: Timestamp) -> StoreResult<u64> {
        self.inner.purge_throttles(before).await
    }
}

#[async_trait::async_trait]
impl OidcClientStore for FailingStore {
    async fn oidc_client(&self, client_id: &str) -> StoreResult<Option<signet_core::oidc_client::OidcClient>> {
        self.inner.oidc_client(client_id).await
    }

    async fn list_oidc_clients(&self) -> StoreResult<Vec<signet_core::oidc_client::OidcClient>> {
        self.inner.list_oidc_clients().await
    }

    async fn oidc_consent(
        &self,
        user: UserId,
        client_id: &str,
    ) -> StoreResult<Option<signet_core::oidc_client::OidcConsent>> {
        self.inner.oidc_consent(user, client_id).await
    }

    async fn list_oidc_consents(&self, user: UserId) -> StoreResult<Vec<signet_core::oidc_client::OidcConsent>> {
        self.inner.list_oidc_consents(user).await
    }

    async fn oidc_clients_with_grants(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<String>> {
        self.inner.oidc_clients_with_grants(user, now).await
    }
    async fn oidc_clients_of(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> StoreResult<Vec<signet_core::oidc_client::OidcClient>> {
        self.inner.oidc_clients_of(user, now).await
    }

    async fn oidc_grant_standing(&self, id: Uuid) -> StoreResult<Option<bool>> {
        self.inner.oidc_grant_standing(id).await
    }
    async fn oidc_refresh_token(
        &self,
        hash: &TokenHash,
    ) -> StoreResult<Option<signet_core::unit_of_work::StoredRefresh>> {
        self.inner.oidc_refresh_token(hash).await
    }
}

#[async_trait::async_trait]
impl OidcClientWrites for FailingTx {
    async fn insert_oidc_client(&mut self, client: &signet_core::oidc_client::OidcClient) -> StoreResult<()> {
        self.inner.insert_oidc_client(client).await
    }

    async fn put_config_oidc_client(&mut self, client: &signet_core::oidc_client::OidcClient) -> StoreResult<()> {
        self.inner.put_config_oidc_client(client).await
    }

    async fn delete_oidc_client(&mut self, client_id: &str) -> StoreResult<bool> {
        self.inner.delete_oidc_client(client_id).await
    }

    async fn update_oidc_client(&mut self, client: &signet_core::oidc_client::OidcClient) -> StoreResult<bool> {
        self.inner.update_oidc_client(client).await
    }

    async fn rotate_oidc_client_secret(
        &mut self,
        client_id: &str,
        new_hash: &TokenHash,
        previous_expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.inner
            .rotate_oidc_client_secret(client_id, new_hash, previous_expires_at, now)
            .await
    }

    async fn revoke_oidc_client_grants(
        &mut self,
        client_id: &str,
        user: Option<UserId>,
        now: Timestamp,
    ) -> StoreResult<u64> {
        self.inner.revoke_oidc_client_grants(client_id, user, now).await
    }

    async fn put_oidc_consent(
        &mut self,
        user: UserId,
        consent: &signet_core::oidc_client::OidcConsent,
    ) -> StoreResult<()> {
        self.inner.put_oidc_consent(user, consent).await
    }

    async fn delete_oidc_consent(&mut self, user: UserId, client_id: &str) -> StoreResult<bool> {
        self.inner.delete_oidc_consent(user, client_id).await
    }
}

#[async_trait::async_trait]
impl OidcKeyWrites for FailingTx {
    async fn insert_signing_key(&mut self, name: &str, sealed: &[u8], now: Timestamp) -> StoreResult<bool> {
        self.inner.insert_signing_key(name, sealed, now).await
    }

    async fn delete_signing_key(&mut self, name: &str) -> StoreResult<bool> {
        self.inner.delete_signing_key(name).await
    }
}

#[async_trait::async_trait]
impl AdminTokenStore for FailingStore {
    async fn admin_token_by_hash(&self, hash: &TokenHash) -> StoreResult<Option<AdminToken>> {
        self.inner.admin_token_by_hash(hash).await
    }
    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminToken>> {
        self.inner.list_admin_tokens().await
    }
}

#[async_trait::async_trait]
impl AuditStore for FailingStore {
    async fn query_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        self.inner.query_audit(query).await
    }
    async fn audit_range(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        self.inner.audit_range(after_seq, limit).await
    }
    async fn audit_ends(&self) -> StoreResult<signet_core::audit::ChainEnds> {
        self.inner.audit_ends().await
    }
}

#[async_trait::async_trait]
impl OutboxStore for FailingStore {
    async fn enqueue_message(&self, message: &Message) -> StoreResult<()> {
        self.inner.enqueue_message(message).await
    }
    async fn renew_message_lease(&self, id: Uuid, lease: Lease) -> StoreResult<bool> {
        self.inner.renew_message_lease(id, lease).await
    }
    async fn recent_messages(&self, limit: u32) -> StoreResult<Vec<Message>> {
        self.inner.recent_messages(limit).await
    }
    async fn purge_finished_messages(&self, before: Timestamp) -> StoreResult<u64> {
        self.inner.purge_finished_messages(before).await
    }
    async fn message(&self, id: Uuid) -> StoreResult<Option<Message>> {
        self.inner.message(id).await
    }
    async fn outbox_depth(&self) -> StoreResult<signet_core::outbox::OutboxDepth> {
        self.inner.outbox_depth().await
    }
}

#[async_trait::async_trait]
impl CredentialStore for FailingStore {
    async fn passkeys_of(&self, user: UserId) -> StoreResult<Vec<Passkey>> {
        self.inner.passkeys_of(user).await
    }
    async fn passkey_by_credential_id(&self, credential_id: &str) -> StoreResult<Option<Passkey>> {
        self.inner.passkey_by_credential_id(credential_id).await
    }
    async fn record_passkey_use(&self, used: &PasskeyUse) -> StoreResult<bool> {
        self.inner.record_passkey_use(used).await
    }
    async fn insert_ceremony(&self, ceremony: &Ceremony) -> StoreResult<()> {
        self.inner.insert_ceremony(ceremony).await
    }
    async fn take_ceremony(&self, id: Uuid, session: SessionId, now: Timestamp) -> StoreResult<Option<Ceremony>> {
        self.inner.take_ceremony(id, session, now).await
    }
    async fn purge_expired_ceremonies(&self, now: Timestamp) -> StoreResult<u64> {
        self.inner.purge_expired_ceremonies(now).await
    }
    async fn server_secret(&self, name: &str, candidate: &[u8], now: Timestamp) -> StoreResult<Vec<u8>> {
        self.inner.server_secret(name, candidate, now).await
    }
}

#[async_trait::async_trait]
impl PhoneStore for FailingStore {
    async fn phones_of(&self, user: UserId) -> StoreResult<Vec<PhoneCredential>> {
        self.inner.phones_of(user).await
    }
}

#[async_trait::async_trait]
impl RecoveryTicketStore for FailingStore {
    async fn ticket(&self, id: Uuid) -> StoreResult<Option<signet_core::recovery_ticket::RecoveryTicket>> {
        self.inner.ticket(id).await
    }
    async fn ticket_actors(&self, id: Uuid) -> StoreResult<Vec<Uuid>> {
        self.inner.ticket_actors(id).await
    }
    async fn list_tickets(
        &self,
        user: Option<UserId>,
        limit: u32,
    ) -> StoreResult<Vec<signet_core::recovery_ticket::RecoveryTicket>> {
        self.inner.list_tickets(user, limit).await
    }
    async fn cooling_off_until(&self, credential: Uuid) -> StoreResult<Option<Timestamp>> {
        self.inner.cooling_off_until(credential).await
    }
}

#[async_trait::async_trait]
impl signet_core::unit_of_work::DeviceWrites for FailingTx {
    async fn remember_device(
        &mut self,
        user: UserId,
        device: &signet_core::secret::TokenHash,
        now: Timestamp,
    ) -> StoreResult<(bool, u64)> {
        self.inner.remember_device(user, device, now).await
    }
}

#[async_trait::async_trait]
impl RecoveryTicketWrites for FailingTx {
    async fn insert_ticket(&mut self, ticket: &signet_core::recovery_ticket::RecoveryTicket) -> StoreResult<()> {
        self.inner.insert_ticket(ticket).await
    }
    async fn add_ticket_actor(&mut self, ticket: Uuid, actor: Uuid, at: Timestamp) -> StoreResult<Option<u32>> {
        self.inner.add_ticket_actor(ticket, actor, at).await
    }
    async fn approve_ticket(&mut self, ticket: Uuid, now: Timestamp) -> StoreResult<bool> {
        self.inner.approve_ticket(ticket, now).await
    }
    async fn start_cooling_off(&mut self, credential: Uuid, user: UserId, until: Timestamp) -> StoreResult<()> {
        self.inner.start_cooling_off(credential, user, until).await
    }
}

#[async_trait::async_trait]
impl OtpCredentialStore for FailingStore {
    async fn totps_of(&self, user: UserId) -> StoreResult<Vec<TotpCredential>> {
        self.inner.totps_of(user).await
    }
    async fn recovery_codes_of(&self, user: UserId) -> StoreResult<Option<RecoveryCodeSet>> {
        self.inner.recovery_codes_of(user).await
    }
    async fn recovery_code_used(&self, user: UserId, hash: &TokenHash) -> StoreResult<Option<bool>> {
        self.inner.recovery_code_used(user, hash).await
    }
}

#[async_trait::async_trait]
impl PhoneWrites for FailingTx {
    async fn phones_in_unit(&mut self, user: UserId) -> StoreResult<Vec<PhoneCredential>> {
        self.inner.phones_in_unit(user).await
    }
    async fn insert_phone(&mut self, phone: &PhoneCredential) -> StoreResult<()> {
        self.inner.insert_phone(phone).await
    }
    async fn rename_phone(&mut self, user: UserId, id: Uuid, name: &str) -> StoreResult<bool> {
        self.inner.rename_phone(user, id, name).await
    }
    async fn remove_phone(&mut self, user: UserId, id: Uuid, keep: u32) -> StoreResult<Removal> {
        self.inner.remove_phone(user, id, keep).await
    }
    async fn touch_phone(&mut self, id: Uuid, at: Timestamp) -> StoreResult<()> {
        self.inner.touch_phone(id, at).await
    }
}

#[async_trait::async_trait]
impl OtpCredentialWrites for FailingTx {
    async fn insert_totp(&mut self, totp: &TotpCredential) -> StoreResult<()> {
        self.inner.insert_totp(totp).await
    }
    async fn rename_totp(&mut self, user: UserId, id: Uuid, name: &str) -> StoreResult<bool> {
        self.inner.rename_totp(user, id, name).await
    }
    async fn remove_totp(&mut self, user: UserId, id: Uuid, keep: u32) -> StoreResult<Removal> {
        self.inner.remove_totp(user, id, keep).await
    }
    async fn advance_totp_step(&mut self, id: Uuid, step: i64, at: Timestamp) -> StoreResult<bool> {
        self.inner.advance_totp_step(id, step, at).await
    }
    async fn advance_totp_step_or_refuse(&mut self, id: Uuid, step: i64, at: Timestamp) -> StoreResult<()> {
        self.inner.advance_totp_step_or_refuse(id, step, at).await
    }
    async fn replace_recovery_codes(
        &mut self,
        user: UserId,
        set_id: Uuid,
        hashes: &[TokenHash],
        now: Timestamp,
    ) -> StoreResult<u64> {
        self.inner.replace_recovery_codes(user, set_id, hashes, now).await
    }
    async fn use_recovery_code(&mut self, user: UserId, hash: &TokenHash, now: Timestamp) -> StoreResult<Option<u32>> {
        self.inner.use_recovery_code(user, hash, now).await
    }
    async fn remove_recovery_codes(&mut self, user: UserId, set_id: Uuid, keep: u32) -> StoreResult<Removal> {
        self.inner.remove_recovery_codes(user, set_id, keep).await
    }
}

#[async_trait::async_trait]
impl UserWrites for FailingTx {
    async fn insert_user(&mut self, user: &User) -> StoreResult<()> {
        self.inner.insert_user(user).await
    }
    async fn set_user_status(&mut self, id: UserId, status: UserStatus, now: Timestamp) -> StoreResult<bool> {
        self.inner.set_user_status(id, status, now).await
    }
}

#[async_trait::async_trait]
impl SessionWrites for FailingTx {
    async fn insert_session(&mut self, session: &Session) -> StoreResult<()> {
        self.inner.insert_session(session).await
    }
    async fn delete_session(&mut self, id: SessionId) -> StoreResult<bool> {
        self.inner.delete_session(id).await
    }
    async fn delete_user_session(&mut self, user: UserId, id: SessionId) -> StoreResult<bool> {
        self.inner.delete_user_session(user, id).await
    }
    async fn delete_user_sessions(&mut self, user: UserId) -> StoreResult<u64> {
        self.inner.delete_user_sessions(user).await
    }
    async fn delete_credential_sessions(
        &mut self,
        user: UserId,
        credential_id: Uuid,
    ) -> StoreResult<Vec<signet_core::session::SessionId>> {
        self.inner.delete_credential_sessions(user, credential_id).await
    }
    async fn delete_timed_out_session(
        &mut self,
        id: signet_core::session::SessionId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.inner.delete_timed_out_session(id, now).await
    }
}

#[async_trait::async_trait]
impl FlowWrites for FailingTx {
    async fn insert_flow(&mut self, flow: &Flow) -> StoreResult<()> {
        self.inner.insert_flow(flow).await
    }
    async fn finish_flow(&mut self, id: FlowId, expires_at: Timestamp) -> StoreResult<bool> {
        self.inner.finish_flow(id, expires_at).await
    }
    async fn finish_flow_or_refuse(&mut self, id: FlowId, expires_at: Timestamp) -> StoreResult<()> {
        self.inner.finish_flow_or_refuse(id, expires_at).await
    }
    async fn update_flow(&mut self, flow: &Flow, now: Timestamp) -> StoreResult<bool> {
        self.inner.update_flow(flow, now).await
    }
}

#[async_trait::async_trait]
impl SecretWrites for FailingTx {
    async fn issue_secrets(&mut self, secrets: &[OneTimeSecret], now: Timestamp) -> StoreResult<()> {
        self.inner.issue_secrets(secrets, now).await
    }
    async fn consume_secret(
        &mut self,
        purpose: SecretPurpose,
        hash: &TokenHash,
        now: Timestamp,
    ) -> StoreResult<Option<OneTimeSecret>> {
        self.inner.consume_secret(purpose, hash, now).await
    }
    async fn consume_flow_code_or_refuse(
        &mut self,
        purpose: SecretPurpose,
        hash: &TokenHash,
        flow: FlowId,
        user: Option<UserId>,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.inner
            .consume_flow_code_or_refuse(purpose, hash, flow, user, now)
            .await
    }
    async fn revoke_flow_secrets(&mut self, flow: FlowId, now: Timestamp) -> StoreResult<u64> {
        self.inner.revoke_flow_secrets(flow, now).await
    }
}

#[async_trait::async_trait]
impl CredentialWrites for FailingTx {
    async fn insert_passkey(&mut self, passkey: &Passkey) -> StoreResult<()> {
        self.inner.insert_passkey(passkey).await
    }
    async fn rename_passkey(&mut self, user: UserId, id: Uuid, name: &str) -> StoreResult<bool> {
        self.inner.rename_passkey(user, id, name).await
    }
    async fn remove_passkey(&mut self, user: UserId, id: Uuid, keep: u32) -> StoreResult<Removal> {
        self.inner.remove_passkey(user, id, keep).await
    }
    async fn lock_ways_in(&mut self, user: UserId) -> StoreResult<signet_core::credential::WaysIn> {
        self.inner.lock_ways_in(user).await
    }
    async fn record_passkey_use(&mut self, used: &PasskeyUse) -> StoreResult<bool> {
        self.inner.record_passkey_use(used).await
    }
    async fn record_passkey_use_or_refuse(&mut self, used: &PasskeyUse) -> StoreResult<()> {
        self.inner.record_passkey_use_or_refuse(used).await
    }
}

#[async_trait::async_trait]
impl AdminTokenWrites for FailingTx {
    async fn insert_admin_token(&mut self, token: &AdminToken) -> StoreResult<()> {
        self.inner.insert_admin_token(token).await
    }
    async fn revoke_admin_token(&mut self, name: &str, now: Timestamp) -> StoreResult<bool> {
        self.inner.revoke_admin_token(name, now).await
    }
}

#[async_trait::async_trait]
impl OutboxWrites for FailingTx {
    async fn enqueue_message(&mut self, message: &Message, lease: Option<Lease>) -> StoreResult<()> {
        self.inner.enqueue_message(message, lease).await
    }
    async fn expire_message(&mut self, id: Uuid, lease_token: Uuid, now: Timestamp) -> StoreResult<bool> {
        self.inner.expire_message(id, lease_token, now).await
    }
    async fn make_pending_messages_due(&mut self, now: Timestamp) -> StoreResult<u64> {
        self.inner.make_pending_messages_due(now).await
    }
    async fn claim_due_messages(&mut self, now: Timestamp, lease: Lease, limit: u32) -> StoreResult<Vec<Message>> {
        self.inner.claim_due_messages(now, lease, limit).await
    }
    async fn mark_message_sent(
        &mut self,
        id: Uuid,
        lease_token: Uuid,
        now: Timestamp,
        scrub: bool,
    ) -> StoreResult<bool> {
        self.inner.mark_message_sent(id, lease_token, now, scrub).await
    }
    async fn mark_message_failed(
        &mut self,
        id: Uuid,
        lease_token: Uuid,
        error: &str,
        next_attempt_at: Timestamp,
        dead: bool,
    ) -> StoreResult<bool> {
        self.inner
            .mark_message_failed(id, lease_token, error, next_attempt_at, dead)
            .await
    }
}

#[async_trait::async_trait]
impl ThrottleWrites for FailingTx {
    async fn hit(&mut self, key: &str, now: Timestamp, window: std::time::Duration) -> StoreResult<WindowCount> {
        self.inner.hit(key, now, window).await
    }
    async fn record_failure(&mut self, key: &str, now: Timestamp) -> StoreResult<Failures> {
        self.inner.record_failure(key, now).await
    }
    async fn failures(&mut self, key: &str) -> StoreResult<Option<Failures>> {
        self.inner.failures(key).await
    }
    async fn swap_failures(&mut self, key: &str, expected: Option<Failures>, new: Failures) -> StoreResult<bool> {
        self.inner.swap_failures(key, expected, new).await
    }
    async fn clear_failures(&mut self, key: &str) -> StoreResult<()> {
        self.inner.clear_failures(key).await
    }
    async fn end_run_and_count(
        &mut self,
        run: &str,
        attempt: &str,
        now: Timestamp,
    ) -> StoreResult<(Option<Failures>, Failures)> {
        self.inner.end_run_and_count(run, attempt, now).await
    }
}

#[async_trait::async_trait]
impl OidcGrantWrites for FailingTx {
    async fn insert_oidc_request(
        &mut self,
        id: Uuid,
        client_id: &str,
        request: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        self.inner.insert_oidc_request(id, client_id, request, expires_at).await
    }
    async fn oidc_request(&mut self, id: Uuid, now: Timestamp) -> StoreResult<Option<String>> {
        self.inner.oidc_request(id, now).await
    }
    async fn delete_oidc_request(&mut self, id: Uuid) -> StoreResult<()> {
        self.inner.delete_oidc_request(id).await
    }

    async fn take_oidc_request(&mut self, id: Uuid) -> StoreResult<bool> {
        self.inner.take_oidc_request(id).await
    }
    async fn redeem_oidc_code(
        &mut self,
        code: &signet_core::unit_of_work::NewCode<'_>,
        now: Timestamp,
    ) -> StoreResult<CodeRedemption> {
        self.inner.redeem_oidc_code(code, now).await
    }
    async fn burn_oidc_code(&mut self, id: Uuid, now: Timestamp) -> StoreResult<()> {
        self.inner.burn_oidc_code(id, now).await
    }
    async fn oidc_code_standing(&mut self, id: Uuid) -> StoreResult<Option<bool>> {
        self.inner.oidc_code_standing(id).await
    }
    async fn insert_oidc_refresh(&mut self, token: &NewRefreshToken<'_>) -> StoreResult<()> {
        self.inner.insert_oidc_refresh(token).await
    }
    async fn rotate_oidc_refresh(&mut self, hash: &TokenHash, now: Timestamp) -> StoreResult<RefreshRotation> {
        self.inner.rotate_oidc_refresh(hash, now).await
    }
    async fn rotate_oidc_refresh_checked(
        &mut self,
        hash: &TokenHash,
        client_id: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.inner.rotate_oidc_refresh_checked(hash, client_id, now).await
    }
    async fn revoke_oidc_family(&mut self, family: Uuid, now: Timestamp) -> StoreResult<u64> {
        self.inner.revoke_oidc_family(family, now).await
    }
    async fn revoke_oidc_user(&mut self, user: UserId, now: Timestamp) -> StoreResult<u64> {
        self.inner.revoke_oidc_user(user, now).await
    }
    async fn oidc_refresh_owner(&mut self, hash: &TokenHash) -> StoreResult<Option<(Uuid, String)>> {
        self.inner.oidc_refresh_owner(hash).await
    }
    async fn claim_oidc_logouts(
        &mut self,
        user: UserId,
        session: Option<Uuid>,
        now: Timestamp,
    ) -> StoreResult<Vec<(String, Uuid)>> {
        self.inner.claim_oidc_logouts(user, session, now).await
    }
    async fn move_oidc_session(&mut self, user: UserId, from: Uuid, to: Uuid) -> StoreResult<u64> {
        self.inner.move_oidc_session(user, from, to).await
    }
    async fn oidc_client_in_tx(
        &mut self,
        client_id: &str,
    ) -> StoreResult<Option<signet_core::oidc_client::OidcClient>> {
        self.inner.oidc_client_in_tx(client_id).await
    }
}
