//! `email_otp`: a one-time code sent by email, typed back into the flow.
//! Works in browser and api mode. Proves aal1 with `amr` `["otp", "mail"]`.
//! Issuing, limits and checking live in [`super::email`].

use serde_json::{Map, Value};
use signet_core::flow::Flow;
use signet_core::method::{LoginMethod, MethodName, StepContext};
use signet_core::session::Proof;
use signet_core::ErrorCode;
use signet_core::{Error, Result};

use super::email::Mailbox;

pub struct EmailCode {
    mailbox: Mailbox,
}

impl EmailCode {
    pub fn new(mailbox: Mailbox) -> Self {
        Self { mailbox }
    }
}

/// The `code` string of a step's body.
pub(super) fn code_of(input: &Value) -> Option<&str> {
    input.get("code").and_then(Value::as_str)
}

#[async_trait::async_trait]
impl LoginMethod for EmailCode {
    fn name(&self) -> MethodName {
        MethodName::EmailOtp
    }

    async fn offer(&self, _flow: &mut Flow, _ctx: StepContext<'_>) -> Result<Map<String, Value>> {
        Ok(self.mailbox.offer())
    }

    async fn send(&self, flow: &mut Flow, ctx: StepContext<'_>) -> Result<()> {
        self.mailbox.send(flow, ctx.origin, false).await
    }

    async fn verify(&self, flow: &mut Flow, input: Value, ctx: StepContext<'_>) -> Result<Proof> {
        let code =
            code_of(&input).ok_or_else(|| Error::invalid(ErrorCode::InvalidRequest, "send {\"code\": \"...\"}"))?;
        self.mailbox.check_code(flow, code, ctx.origin).await
    }
}
