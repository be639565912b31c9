//! `email_otp`: a one-time code sent by email, typed back into the flow.
//! Works in browser and api mode. Proves aal1 with `amr` `["otp", "mail"]`.
//! Issuing, limits and checking live in [`super::email`].

use signet_core::flow::Flow;
use signet_core::method::{LoginStep, Method, MethodName, Offer, StepContext, StepInput, Verified};
use signet_core::unit_of_work::Transaction;
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

impl Method for EmailCode {
    fn name(&self) -> MethodName {
        MethodName::EmailOtp
    }

    fn login(&self) -> Option<&dyn LoginStep> {
        Some(self)
    }

    /// The `email` recovery path: a code to an address on file.
    fn recovery(&self) -> Option<&dyn LoginStep> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl LoginStep for EmailCode {
    async fn offer(&self, _flow: &mut Flow, _ctx: StepContext<'_>) -> Result<Offer> {
        Ok(self.mailbox.offer(
            MethodName::EmailOtp,
            "Email me a code",
            "We sent a code to your email. Type it here.",
        ))
    }

    async fn send(&self, flow: &mut Flow, ctx: StepContext<'_>, tx: &mut dyn Transaction) -> Result<()> {
        self.mailbox.send(flow, ctx.origin, tx, false).await
    }

    async fn verify(&self, flow: &mut Flow, input: StepInput, ctx: StepContext<'_>) -> Result<Verified> {
        match input {
            StepInput::Code(code) => self.mailbox.check_code(flow, &code, ctx.origin).await,
            _ => Err(Error::invalid(ErrorCode::InvalidRequest, "send {\"code\": \"...\"}")),
        }
    }
}
