//! A stand-in sign-in method for tests of the journey engine: it offers a
//! code, accepts [`RIGHT`] for a flow that knows its account, and proves
//! what it was built to prove. Real methods are tested with their real
//! peers (an SMTP sink, a software authenticator); this double lets the
//! engine's rules (demands, tiers, step-up, races) be tested with any mix
//! of assurance.

use serde_json::Map;
use signet_core::assurance::{self, MethodFacts};
use signet_core::flow::Flow;
use signet_core::method::{Input, LoginStep, Method, MethodName, Offer, StepContext, StepInput, Verified};
use signet_core::session::{Aal, Proof};
use signet_core::{Error, ErrorCode, Result};

/// The code every [`FakeMethod`] accepts.
pub const RIGHT: &str = "right";

/// A method named `name` that proves `aal` (with `amr`, and phishing
/// resistance as given) when it is sent [`RIGHT`].
pub struct FakeMethod {
    pub name: MethodName,
    pub aal: Aal,
    pub amr: &'static str,
    pub phishing_resistant: bool,
}

impl Method for FakeMethod {
    fn name(&self) -> MethodName {
        self.name
    }

    fn facts(&self) -> MethodFacts {
        MethodFacts {
            phishing_resistant: self.phishing_resistant,
            ..assurance::facts(self.name)
        }
    }

    fn login(&self) -> Option<&dyn LoginStep> {
        Some(self)
    }

    /// The same step serves a recovery journey (a recovery code, a backup
    /// passkey), as the real methods' do.
    fn recovery(&self) -> Option<&dyn LoginStep> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl LoginStep for FakeMethod {
    async fn offer(&self, flow: &mut Flow, _ctx: StepContext<'_>) -> Result<Offer> {
        flow.state
            .scratch
            .insert(self.name.as_str().into(), serde_json::Value::String("offered".into()));
        Ok(Offer {
            method: self.name,
            label: "Fake",
            input: Input::Code { code_length: 5 },
            send: false,
            channel: None,
            sent: None,
            extra: Map::new(),
        })
    }

    async fn verify(&self, flow: &mut Flow, input: StepInput, _ctx: StepContext<'_>) -> Result<Verified> {
        if flow.state.user_id.is_none() || input != StepInput::Code(RIGHT.into()) {
            return Err(Error::invalid(ErrorCode::InvalidCode, "that code is not right"));
        }
        Ok(Proof {
            aal: self.aal,
            amr: vec![self.amr.into()],
            phishing_resistant: self.phishing_resistant,
            credential_id: None,
            user_id: None,
        }
        .into())
    }
}
