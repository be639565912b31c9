//! Authentication methods and the registry that flows consult.
//!
//! A flow never names a method: it asks the [`Registry`] which methods exist,
//! intersects that with what the user's tier allows, and dispatches the step
//! a request names explicitly (no "try every strategy" loop). Adding a method
//! means implementing [`LoginMethod`] in one module and registering it.

use crate::ErrorCode;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::audit::Origin;
use crate::error::Result;
use crate::flow::Flow;
use crate::session::Proof;

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

/// One way of proving something during a login-shaped flow.
#[async_trait::async_trait]
pub trait LoginMethod: Send + Sync + 'static {
    fn name(&self) -> MethodName;

    /// The entry for this method in a flow's `methods` list, beyond the name
    /// (for a passkey, the WebAuthn request options). May record scratch state
    /// in the flow.
    async fn offer(&self, flow: &mut Flow, ctx: StepContext<'_>) -> Result<serde_json::Map<String, serde_json::Value>>;

    /// Sends a code or link (`.../{method}/send`). Methods without a send
    /// step keep the default, which refuses.
    async fn send(&self, _flow: &mut Flow, _ctx: StepContext<'_>) -> Result<()> {
        Err(crate::Error::invalid(
            ErrorCode::MethodHasNoSend,
            "this method does not send anything",
        ))
    }

    /// Checks the submitted proof. On success returns what was proven.
    async fn verify(&self, flow: &mut Flow, input: serde_json::Value, ctx: StepContext<'_>) -> Result<Proof>;
}

/// The methods this server offers, by name.
#[derive(Clone, Default)]
pub struct Registry {
    methods: BTreeMap<MethodName, Arc<dyn LoginMethod>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, method: Arc<dyn LoginMethod>) {
        self.methods.insert(method.name(), method);
    }

    pub fn get(&self, name: MethodName) -> Option<&Arc<dyn LoginMethod>> {
        self.methods.get(&name)
    }

    /// Of `wanted`, those this server implements, in the order given.
    pub fn available<'a>(&'a self, wanted: &'a [MethodName]) -> impl Iterator<Item = &'a Arc<dyn LoginMethod>> + 'a {
        wanted.iter().filter_map(|m| self.methods.get(m))
    }
}
