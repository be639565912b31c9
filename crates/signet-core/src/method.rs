//! Authentication methods: what each declares it can do, and the registry
//! that journeys consult.
//!
//! The grid has two axes (DESIGN.md, "Flows x methods"). This module is the
//! method axis. A method is one module that implements [`Method`]: its name
//! and assurance facts ([`crate::assurance`], NIST SP 800-63B rev. 4 §3.1),
//! the modes it works in, and the optional capabilities it has:
//! - a **login step** ([`LoginStep`]): offer, optional send, verify;
//! - **enrollment** ([`Enrollment`]): the ceremony that binds a new
//!   credential (`/api/v1/credentials/{method}/begin` and `/finish`);
//! - a **credential kind** ([`CredentialKind`]): list, rename, remove the
//!   user's credentials of this method (the rules all kinds share, the last
//!   way in, binding assurance and notices, live once in the app's
//!   credentials module);
//! - a **recovery step**: the same [`LoginStep`], offered by a recovery
//!   journey for the tier's recovery paths.
//!
//! A journey never names a method: it asks the [`Registry`] which methods
//! have the capability it needs, intersects that with what the tier allows,
//! and dispatches the step a request names explicitly (no "try every
//! strategy" loop). What a page needs to render an offered method is in its
//! [`Offer`] (the input kind, whether there is a send step, the channel,
//! a label), so the page script knows no method by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::assurance::{self, MethodFacts};
use crate::audit::Origin;
use crate::clock::Timestamp;
use crate::error::Result;
use crate::flow::Flow;
use crate::session::{Proof, SessionMode};
use crate::unit_of_work::Transaction;
use crate::user::UserId;

/// The contract's method names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodName {
    Passkey,
    MagicLink,
    EmailOtp,
    SmsOtp,
    Totp,
    RecoveryCode,
}

impl MethodName {
    pub const ALL: [MethodName; 6] = [
        MethodName::Passkey,
        MethodName::MagicLink,
        MethodName::EmailOtp,
        MethodName::SmsOtp,
        MethodName::Totp,
        MethodName::RecoveryCode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MethodName::Passkey => "passkey",
            MethodName::MagicLink => "magic_link",
            MethodName::EmailOtp => "email_otp",
            MethodName::SmsOtp => "sms_otp",
            MethodName::Totp => "totp",
            MethodName::RecoveryCode => "recovery_code",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl std::fmt::Display for MethodName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a method may know about the request it serves.
#[derive(Clone, Copy, Debug)]
pub struct StepContext<'a> {
    /// Where the request came from (IP, User-Agent): for rate limits, audit
    /// records and "a sign-in was requested from ..." messages.
    pub origin: &'a Origin,
}

/// How a person enters a step's proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "input")]
pub enum Input {
    /// `navigator.credentials.get` with the offer's `publicKey`; the step
    /// posts `{"credential": PublicKeyCredential.toJSON()}`.
    Webauthn,
    /// A code of `code_length` digits; the step posts `{"code": "..."}`.
    Code { code_length: u8 },
    /// Nothing to type here: the proof arrives elsewhere (a link in an
    /// email) and is confirmed by its own page.
    Elsewhere,
}

/// Where a method delivers a secret before its step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

/// One entry of a flow's `methods` list: enough for a page to render the
/// method without knowing it. Serialises as `{"method", "label", "input",
/// "code_length"?, "send", "channel"?, ...extra}`; `extra` carries what is
/// the method's own (a passkey's WebAuthn `publicKey` request options).
#[derive(Clone, Debug, Serialize)]
pub struct Offer {
    pub method: MethodName,
    /// A button label for a person ("Use a passkey", "Email me a code").
    pub label: &'static str,
    #[serde(flatten)]
    pub input: Input,
    /// Whether `.../{method}/send` must be called before the step.
    pub send: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// What to tell the person once the send step is done ("Check your
    /// email for a link").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<&'static str>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a step's request carries, typed: exactly one of these.
#[derive(Clone, Debug, PartialEq)]
pub enum StepInput {
    /// A WebAuthn `PublicKeyCredential.toJSON()` (parsed by the method).
    Credential(Value),
    /// A code a person typed.
    Code(String),
    /// A token from a link.
    Token(String),
}

/// What a verified step still has to write (a passkey's new counter and
/// last use). The journey engine applies it in the unit of work that
/// records the step: the journey's completion, or the flow's update when
/// it continues. So a step is one durable commit, and a write of a step
/// that loses the race for its flow never lands.
#[async_trait::async_trait]
pub trait StepEffect: Send {
    async fn apply(self: Box<Self>, tx: &mut dyn Transaction) -> Result<()>;
}

/// A verified step: what it proved, and what it leaves to write.
pub struct Verified {
    pub proof: Proof,
    pub effect: Option<Box<dyn StepEffect>>,
    /// The account the method read to verify the proof, if it did (a
    /// passkey's owner), so that the engine does not read it again.
    pub owner: Option<crate::user::User>,
    /// The end of the proof's credential's cooling-off (`None`: it has
    /// none), if the method read it with the credential, so that the
    /// engine does not read it again. `None` when it did not.
    pub cooling_off: Option<Option<crate::clock::Timestamp>>,
}

impl Verified {
    /// Adds `then` to the step's effect, applied after what it has.
    pub fn and_then(mut self, then: Box<dyn StepEffect>) -> Self {
        self.effect = Some(match self.effect.take() {
            Some(first) => Box::new(Both(first, then)),
            None => then,
        });
        self
    }
}

/// Two effects, in order.
struct Both(Box<dyn StepEffect>, Box<dyn StepEffect>);

#[async_trait::async_trait]
impl StepEffect for Both {
    async fn apply(self: Box<Self>, tx: &mut dyn Transaction) -> Result<()> {
        let Both(first, then) = *self;
        first.apply(tx).await?;
        then.apply(tx).await
    }
}

impl From<Proof> for Verified {
    fn from(proof: Proof) -> Self {
        Self {
            proof,
            effect: None,
            owner: None,
            cooling_off: None,
        }
    }
}

/// One way of proving something in a flow (login, step-up, recovery).
#[async_trait::async_trait]
pub trait LoginStep: Send + Sync {
    /// This method's entry in the flow's `methods` list. May record scratch
    /// state in the flow (a WebAuthn challenge).
    async fn offer(&self, flow: &mut Flow, ctx: StepContext<'_>) -> Result<Offer>;

    /// Sends a code or link (`.../{method}/send`). Only methods whose offer
    /// says `send` are asked to; the engine refuses the others.
    ///
    /// The send's writes (its limits' hits, revoking the flow's earlier
    /// codes) go into `tx`, the engine's unit of work, which then stores the
    /// flow and commits: one durable commit per send. While `tx` is open
    /// touch storage only through it (it holds SQLite's one writer); work
    /// that must read or write on its own belongs in a task of its own.
    async fn send(
        &self,
        _flow: &mut Flow,
        _ctx: StepContext<'_>,
        _tx: &mut dyn crate::unit_of_work::Transaction,
    ) -> Result<()> {
        Err(crate::Error::invalid(
            crate::ErrorCode::MethodHasNoSend,
            "this method does not send anything",
        ))
    }

    /// Checks the submitted proof. On success returns what was proven and
    /// what is left to write. Verification itself writes nothing durable
    /// that a lost race would have to undo: the flow's consumption (or its
    /// compare-and-swap update) in the engine's unit of work picks the one
    /// winner among concurrent submissions of the same proof.
    async fn verify(&self, flow: &mut Flow, input: StepInput, ctx: StepContext<'_>) -> Result<Verified>;
}

/// One of a user's credentials, as every kind lists it
/// (`GET /api/v1/credentials`).
#[derive(Clone, Debug, Serialize)]
pub struct CredentialInfo {
    pub id: Uuid,
    /// The kind's method (`passkey`, `totp`, ...), serialised as `type`.
    #[serde(rename = "type")]
    pub kind: MethodName,
    pub name: String,
    #[serde(with = "crate::clock::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "crate::clock::rfc3339::option")]
    pub last_used_at: Option<Timestamp>,
    /// What this credential proves alone (for the last-way-in rule and the
    /// binding level).
    #[serde(skip)]
    pub aal: crate::session::Aal,
    /// Kind-specific facts for the page (a passkey's authenticator name,
    /// whether it is synced).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The user's credentials of one method: list, rename, remove. What all
/// kinds share is enforced by the app's credentials module, which calls
/// these inside its unit of work.
#[async_trait::async_trait]
pub trait CredentialKind: Send + Sync {
    /// How a person calls one ("passkey", "authenticator app"), for notices.
    fn noun(&self) -> &'static str;
    async fn list(&self, user: UserId) -> Result<Vec<CredentialInfo>>;
    /// Renames; `None` if the user has no such credential.
    async fn rename(&self, tx: &mut dyn Transaction, user: UserId, id: Uuid, name: &str) -> Result<Option<()>>;
    /// Removes the credential unless fewer than `keep` of this kind would
    /// remain (deciding and deleting in one statement set, in `tx`), and ends
    /// the sessions resting on it. See [`crate::credential::Removal`].
    async fn remove(
        &self,
        tx: &mut dyn Transaction,
        user: UserId,
        id: Uuid,
        keep: u32,
    ) -> Result<crate::credential::Removal>;
}

/// Who is binding a credential: the account and the session doing it.
#[derive(Clone, Copy, Debug)]
pub struct EnrollContext<'a> {
    pub user: &'a crate::user::User,
    pub session: &'a crate::session::Session,
}

/// Binding a new credential of a method to the account
/// (`/api/v1/credentials/{method}/begin` and `/finish`). What every kind
/// shares (binding assurance, the record, the notices, the one unit of
/// work) is the app's credentials module's; the method does its ceremony.
#[async_trait::async_trait]
pub trait Enrollment: Send + Sync {
    /// Starts a ceremony bound to `ctx.session`; returns what the client
    /// needs to answer it (a passkey's `ceremony_id` and `publicKey`).
    async fn begin(&self, ctx: EnrollContext<'_>, name: Option<String>) -> Result<Map<String, Value>>;
    /// Takes the ceremony out of storage (once, by its session) and checks
    /// the client's answer. Writes nothing else: the new credential is
    /// stored by [`NewCredential::store`] in the module's unit of work.
    async fn finish(
        &self,
        ctx: EnrollContext<'_>,
        ceremony_id: &str,
        input: StepInput,
    ) -> Result<Box<dyn NewCredential>>;
}

/// A verified new credential, ready to store.
#[async_trait::async_trait]
pub trait NewCredential: Send {
    /// How it will be listed.
    fn info(&self) -> CredentialInfo;
    /// The kind's own facts for its `credential.added` record.
    fn details(&self) -> Map<String, Value>;
    /// Stores it in `tx`. A credential registered to anyone already is a
    /// refusal (409), and then nothing is written.
    async fn store(self: Box<Self>, tx: &mut dyn Transaction) -> Result<()>;
}

/// A method: its name, facts, modes and capabilities.
pub trait Method: Send + Sync + 'static {
    fn name(&self) -> MethodName;

    /// What it proves, from the assurance table.
    fn facts(&self) -> MethodFacts {
        assurance::facts(self.name())
    }

    /// The session modes it works in (a magic link needs a browser).
    fn modes(&self) -> &'static [SessionMode] {
        &[SessionMode::Browser, SessionMode::Api]
    }

    /// Its login step, if it can prove something in a flow.
    fn login(&self) -> Option<&dyn LoginStep> {
        None
    }

    /// Its step in a recovery journey, if it may prove something there.
    fn recovery(&self) -> Option<&dyn LoginStep> {
        None
    }

    /// Its credential kind, if a user holds credentials of it.
    fn credentials(&self) -> Option<&dyn CredentialKind> {
        None
    }

    /// How a credential of it is bound, if users can bind one themselves.
    fn enrollment(&self) -> Option<&dyn Enrollment> {
        None
    }
}

/// The methods this server offers, by name.
#[derive(Clone, Default)]
pub struct Registry {
    methods: BTreeMap<MethodName, Arc<dyn Method>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, method: Arc<dyn Method>) {
        self.methods.insert(method.name(), method);
    }

    pub fn get(&self, name: MethodName) -> Option<&Arc<dyn Method>> {
        self.methods.get(&name)
    }

    /// Of `wanted`, those this server implements, in the order given.
    pub fn available<'a>(&'a self, wanted: &'a [MethodName]) -> impl Iterator<Item = &'a Arc<dyn Method>> + 'a {
        wanted.iter().filter_map(|m| self.methods.get(m))
    }

    /// Every registered method with a credential kind.
    pub fn credential_kinds(&self) -> impl Iterator<Item = &Arc<dyn Method>> {
        self.methods.values().filter(|m| m.credentials().is_some())
    }
}
