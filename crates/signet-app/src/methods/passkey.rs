//! `passkey`: WebAuthn authentication as a login method.
//!
//! **Offer.** What the flow knows decides the request options, and all three
//! kinds look alike on the wire:
//! - an identified user with passkeys: `allowCredentials` lists them;
//! - an unknown identifier, or a user without passkeys: decoy credential ids
//!   derived by HMAC from the identifier with a key every node shares
//!   ([`crate::passkeys::load_decoy_key`]), so the same identifier always
//!   gets the same one or two ids, shaped like real ones;
//! - no identifier: a discoverable request (usernameless login, autofill).
//!
//! The ceremony state goes into the flow's scratch map (never to the client),
//! with a five-minute expiry.
//!
//! **Verify.** The state is first taken out of the flow with the flow's
//! compare-and-swap update, so of any number of concurrent submissions only
//! one proceeds (the others get 409 `flow_conflict` or 410
//! `ceremony_expired`). Then: parse the assertion, find the credential by
//! id, read its owner's tier policy, verify off the reactor (every WebAuthn
//! L3 §7.2 check, in `signet-passkey`), and record counter, backup state and
//! last use in one conditional write on the previous counter. A counter
//! regression is refused and audited (a tier with `counter =
//! "allow_regression"` lets it through, still audited). The proof names the credential's
//! owner, which is how a usernameless flow learns its user.

use signet_core::ErrorCode;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use signet_core::audit::{Actor, AuditEvent, EventType, Outcome};
use signet_core::clock::{SharedClock, Timestamp};
use signet_core::credential::PasskeyUse;
use signet_core::credential::{Ceremony, Passkey, Removal};
use signet_core::flow::Flow;
use signet_core::method::{
    CredentialInfo, CredentialKind, EnrollContext, Enrollment, Input, LoginStep, Method, MethodName, NewCredential,
    Offer, StepContext, StepEffect, StepInput, Verified,
};
use signet_core::policy::{CounterCheck, Policy};
use signet_core::session::Aal;
use signet_core::store::Store;
use signet_core::unit_of_work::Transaction;
use signet_core::user::UserId;
use signet_core::{Error, Result};
use signet_passkey::authenticator_name;
use signet_passkey::{
    Assertion, AuthenticationState, CounterPolicy, PasskeyError, RegistrationState, CEREMONY_TIMEOUT,
};
use uuid::Uuid;

use crate::passkeys::{to_stored, Passkeys};

/// The key of this method's entry in the flow's scratch map.
const SCRATCH: &str = "passkey";

/// What the flow keeps between offer and verify.
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    expires_at: i64,
}

pub struct PasskeyMethod {
    store: Arc<dyn Store>,
    clock: SharedClock,
    policy: Arc<Policy>,
    passkeys: Passkeys,
}

impl PasskeyMethod {
    pub fn new(store: Arc<dyn Store>, clock: SharedClock, policy: Arc<Policy>, passkeys: Passkeys) -> Self {
        Self {
            store,
            clock,
            policy,
            passkeys,
        }
    }

    fn gone() -> Error {
        Error::gone(
            ErrorCode::CeremonyExpired,
            "this passkey request has expired or was already used; start signing in again",
        )
    }

    /// Takes the ceremony state out of the flow (in memory: the engine's
    /// unit of work consumes or updates the stored flow, and so picks the
    /// one winner among concurrent submissions of the same assertion).
    fn take_state(&self, flow: &mut Flow) -> Result<AuthenticationState> {
        let raw = flow.state.scratch.remove(SCRATCH).ok_or_else(Self::gone)?;
        let pending: Pending = serde_json::from_value(raw).map_err(|_| Self::gone())?;
        if self.clock.now() >= Timestamp::from_millis(pending.expires_at) {
            return Err(Self::gone());
        }
        Ok(AuthenticationState::from_json(&pending.state)?)
    }
}

/// What a verified assertion leaves to write, in the step's unit of work:
/// the new counter, backup state and last use (a conditional write on the
/// previous counter, so a cloned authenticator racing the real one loses),
/// and the record of a counter regression the tier let through.
struct RecordUse {
    used: PasskeyUse,
    regression: Option<AuditEvent>,
}

#[async_trait::async_trait]
impl StepEffect for RecordUse {
    async fn apply(self: Box<Self>, tx: &mut dyn Transaction) -> Result<()> {
        if let Some(ev) = &self.regression {
            tx.append_audit(ev, signet_core::ids::time_ordered(), self.used.at)
                .await?;
        }
        Ok(tx.record_passkey_use_or_refuse(&self.used).await?)
    }
}

impl Method for PasskeyMethod {
    fn name(&self) -> MethodName {
        MethodName::Passkey
    }

    fn login(&self) -> Option<&dyn LoginStep> {
        Some(self)
    }

    /// The `backup_passkey` recovery path: another passkey of the account.
    fn recovery(&self) -> Option<&dyn LoginStep> {
        Some(self)
    }

    fn credentials(&self) -> Option<&dyn CredentialKind> {
        Some(self)
    }

    fn enrollment(&self) -> Option<&dyn Enrollment> {
        Some(self)
    }
}

fn ceremony_gone() -> Error {
    Error::gone(
        ErrorCode::CeremonyExpired,
        "this passkey setup has expired or was already used; start again",
    )
}

/// Registration (WebAuthn L3 §7.1). `begin` creates discoverable
/// credential options that exclude the user's existing passkeys and stores
/// the registration state server-side as a ceremony bound to the session
/// that began it, valid for five minutes ([`CEREMONY_TIMEOUT`]). `finish`
/// takes the ceremony out of storage (one `DELETE ... RETURNING`: used once,
/// only by that session, only before it expires), then verifies the
/// response off the reactor. The credential id is unique across all users
/// (§7.1 step 26): the store's unique index decides, so a race cannot
/// register it twice.
#[async_trait::async_trait]
impl Enrollment for PasskeyMethod {
    async fn begin(&self, ctx: EnrollContext<'_>, name: Option<String>) -> Result<Map<String, Value>> {
        let user = ctx.user;
        let exclude = self
            .store
            .passkeys_of(user.id)
            .await?
            .iter()
            .map(|p| to_stored(p).map(|s| s.credential_id))
            .collect::<Result<Vec<_>>>()?;
        let policy = &self.policy.tier_for_roles(&user.roles).1.passkey;
        let (options, state) = self.passkeys.rp.start_registration(
            user.id,
            user.email.as_str(),
            user.name.as_deref().unwrap_or(""),
            &exclude,
            policy,
        )?;
        let now = self.clock.now();
        let ceremony = Ceremony {
            id: Uuid::new_v4(),
            session_id: ctx.session.id,
            user_id: user.id,
            state: state.to_json(),
            name,
            created_at: now,
            expires_at: now.plus(CEREMONY_TIMEOUT),
        };
        self.store.insert_ceremony(&ceremony).await?;
        let mut begun = Map::new();
        begun.insert("ceremony_id".into(), json!(ceremony.id));
        begun.insert("publicKey".into(), options);
        Ok(begun)
    }

    async fn finish(
        &self,
        ctx: EnrollContext<'_>,
        ceremony_id: &str,
        input: StepInput,
    ) -> Result<Box<dyn NewCredential>> {
        let StepInput::Credential(credential) = input else {
            return Err(Error::invalid(
                ErrorCode::InvalidRequest,
                "send {\"ceremony_id\", \"credential\": PublicKeyCredential.toJSON()}",
            ));
        };
        let user = ctx.user;
        let id = Uuid::parse_str(ceremony_id).map_err(|_| ceremony_gone())?;
        let now = self.clock.now();
        let ceremony = self
            .store
            .take_ceremony(id, ctx.session.id, now)
            .await?
            .filter(|c| c.user_id == user.id)
            .ok_or_else(ceremony_gone)?;
        let state = RegistrationState::from_json(&ceremony.state)?;
        if state.user_id() != user.id {
            return Err(ceremony_gone());
        }
        let policy = self.policy.tier_for_roles(&user.roles).1.passkey.clone();
        let rp = self.passkeys.rp.clone();
        let new = tokio::task::spawn_blocking(move || rp.finish_registration(state, &credential, &policy))
            .await
            .map_err(Error::internal)??;
        let name = match ceremony.name {
            Some(n) => n,
            None => new.authenticator_name.unwrap_or("Passkey").to_owned(),
        };
        Ok(Box::new(NewPasskey(Passkey {
            id: Uuid::new_v4(),
            user_id: user.id,
            credential_id: new.credential_id.to_base64url(),
            record: new.passkey.as_str().to_owned(),
            counter: new.counter,
            backup_eligible: new.backup_eligible,
            backup_state: new.backup_state,
            user_verified: new.user_verified,
            aaguid: new.aaguid,
            transports: new.transports,
            name,
            created_at: now,
            last_used_at: None,
        })))
    }
}

/// A verified registration, stored by the credentials module's unit of work.
struct NewPasskey(Passkey);

#[async_trait::async_trait]
impl NewCredential for NewPasskey {
    fn info(&self) -> CredentialInfo {
        info(&self.0)
    }

    fn details(&self) -> Map<String, Value> {
        let mut details = Map::new();
        details.insert("aaguid".into(), json!(self.0.aaguid));
        details.insert("backup_eligible".into(), json!(self.0.backup_eligible));
        details.insert("user_verified".into(), json!(self.0.user_verified));
        details
    }

    async fn store(self: Box<Self>, tx: &mut dyn Transaction) -> Result<()> {
        match tx.insert_passkey(&self.0).await {
            Ok(()) => Ok(()),
            Err(signet_core::store::StoreError::Conflict(_)) => Err(PasskeyError::CredentialAlreadyRegistered.into()),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait::async_trait]
impl CredentialKind for PasskeyMethod {
    fn noun(&self) -> &'static str {
        "passkey"
    }

    async fn list(&self, user: UserId) -> Result<Vec<CredentialInfo>> {
        Ok(self.store.passkeys_of(user).await?.iter().map(info).collect())
    }

    async fn rename(&self, tx: &mut dyn Transaction, user: UserId, id: Uuid, name: &str) -> Result<Option<()>> {
        Ok(tx.rename_passkey(user, id, name).await?.then_some(()))
    }

    async fn remove(&self, tx: &mut dyn Transaction, user: UserId, id: Uuid, keep: u32) -> Result<Removal> {
        Ok(tx.remove_passkey(user, id, keep).await?)
    }
}

/// A passkey as `/api/v1/credentials` lists it.
pub fn info(p: &Passkey) -> CredentialInfo {
    let mut extra = Map::new();
    // The authenticator model's name from the AAGUID the authenticator
    // claimed, if we know it (not attested: see docs/passkeys.md).
    extra.insert("authenticator".into(), json!(authenticator_name(&p.aaguid)));
    extra.insert("aaguid".into(), json!(p.aaguid));
    // BS: backed up / synced now; BE: can be synced (false for a
    // device-bound passkey such as a security key).
    extra.insert("synced".into(), json!(p.backup_state));
    extra.insert("backup_eligible".into(), json!(p.backup_eligible));
    extra.insert("transports".into(), json!(p.transports));
    CredentialInfo {
        id: p.id,
        kind: MethodName::Passkey,
        name: p.name.clone(),
        created_at: p.created_at,
        last_used_at: p.last_used_at,
        // With user verification a passkey is a multi-factor
        // cryptographic authenticator (SP 800-63B §3.1.7).
        aal: if p.user_verified { Aal::Aal2 } else { Aal::Aal1 },
        extra,
    }
}

#[async_trait::async_trait]
impl LoginStep for PasskeyMethod {
    async fn offer(&self, flow: &mut Flow, _ctx: StepContext<'_>) -> Result<Offer> {
        let policy = &self
            .policy
            .tier(&flow.state.tier)
            .ok_or_else(|| Error::internal_msg(format!("flow refers to unknown tier {}", flow.state.tier)))?
            .passkey;
        let rp = &self.passkeys.rp;
        let (options, state) = match (flow.state.identified, flow.state.user_id) {
            (false, _) => rp.start_authentication(None, policy)?,
            (true, user) => {
                // The same read for an unknown identifier (of a user id
                // nobody has), so both take one more query and look alike.
                let owner = user.unwrap_or(UserId(Uuid::nil()));
                let stored = self
                    .store
                    .passkeys_of(owner)
                    .await?
                    .iter()
                    .filter(|p| Some(p.user_id) == user)
                    .map(to_stored)
                    .collect::<Result<Vec<_>>>()?;
                if stored.is_empty() {
                    let identifier = flow.state.identifier_hash.as_deref().unwrap_or_default();
                    rp.start_decoy_authentication(self.passkeys.decoy_key(), identifier, policy)?
                } else {
                    rp.start_authentication(Some(&stored), policy)?
                }
            }
        };
        let pending = Pending {
            state: state.to_json(),
            expires_at: self.clock.now().plus(CEREMONY_TIMEOUT).as_millis(),
        };
        flow.state
            .scratch
            .insert(SCRATCH.into(), serde_json::to_value(&pending).map_err(Error::internal)?);
        let mut extra = Map::new();
        extra.insert("publicKey".into(), options);
        Ok(Offer {
            method: MethodName::Passkey,
            label: "Use a passkey",
            input: Input::Webauthn,
            send: false,
            channel: None,
            sent: None,
            extra,
        })
    }

    async fn verify(&self, flow: &mut Flow, input: StepInput, ctx: StepContext<'_>) -> Result<Verified> {
        let StepInput::Credential(credential) = input else {
            return Err(Error::invalid(
                ErrorCode::InvalidRequest,
                "send {\"credential\": PublicKeyCredential.toJSON()}",
            ));
        };
        let state = self.take_state(flow)?;
        let assertion = Assertion::parse(&credential)?;
        let found = self
            .store
            .passkey_and_owner(&assertion.credential_id().to_base64url())
            .await?
            .ok_or(PasskeyError::CredentialNotFound)?;
        let (row, cooling_off) = (found.passkey, found.cooling_off_until);
        let owner = found
            .owner
            .filter(|u| u.is_active())
            .ok_or(PasskeyError::CredentialNotFound)?;
        let policy = self.policy.tier_for_roles(&owner.roles).1.passkey.clone();
        let counter_policy = match policy.counter {
            CounterCheck::Strict => CounterPolicy::Strict,
            CounterCheck::AllowRegression => CounterPolicy::AllowRegression,
        };
        let stored = to_stored(&row)?;
        let rp = self.passkeys.rp.clone();
        let verified = {
            let policy = policy.clone();
            tokio::task::spawn_blocking(move || {
                rp.finish_authentication(state, &assertion, &stored, &policy, counter_policy)
            })
            .await
            .map_err(Error::internal)?
        };
        let regression = |outcome, allowed: bool| {
            AuditEvent::new(EventType::CounterRegression, Actor::Anonymous, outcome)
                .user(owner.id)
                .from_origin(ctx.origin)
                .details(json!({
                    "credential_id": row.id,
                    "stored_counter": row.counter,
                    "flow_id": flow.id.0,
                    "allowed": allowed,
                }))
        };
        let verified = match verified {
            Ok(v) => v,
            Err(PasskeyError::CounterRegression) => {
                let ev = regression(Outcome::Denied, false);
                crate::audit::record(&*self.store, self.clock.now(), &ev).await?;
                return Err(PasskeyError::CounterRegression.into());
            }
            Err(e) => return Err(e.into()),
        };
        let used = PasskeyUse {
            id: row.id,
            previous_counter: verified.previous_counter,
            counter: verified.counter,
            backup_state: verified.backup_state,
            at: self.clock.now(),
        };
        // The tier lets a regression through; the record still says it
        // happened, with the use it belongs to.
        let regression = verified.counter_regressed.then(|| regression(Outcome::Success, true));
        Ok(Verified {
            proof: verified.proof(&policy),
            effect: Some(Box::new(RecordUse { used, regression })),
            owner: Some(owner),
            cooling_off: Some(cooling_off),
        })
    }
}
