//! `magic_link`: a link `{public_url}/login/magic/{token}` sent by email,
//! browser mode only (the flow engine never offers it in api mode).
//!
//! Mail security scanners (Safe Links, Proofpoint, Mimecast) fetch links
//! before the person does. So:
//! - `GET`/`HEAD` of the link only show a "Continue signing in" page
//!   ([`preview`] reads, never writes); its form `POST`s back ([`confirm`]).
//! - The confirming `POST` goes through the flow engine with the browser's
//!   flow-binding cookie. Only the browser that started the flow gets a
//!   session. Any other browser (or a scanner that submits forms) is told to
//!   go back to the original device or type the code, the attempt is audited
//!   as `login.cross_device`, and the link is **not** consumed, so the real
//!   person can still use it.
//! - Every link email also carries the flow's code, which can be typed on
//!   the original device (as `email_otp`, or as `{"code"}` to this method).
//!
//! Proves aal1 with `amr` `["mail"]` (or `["otp", "mail"]` for a typed code).

use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::Timestamp;
use signet_core::flow::Flow;
use signet_core::method::{LoginStep, Method, MethodName, Offer, StepContext, StepInput, Verified};
use signet_core::secret::{PlainToken, TokenHash, TokenKind};
use signet_core::session::{SessionId, SessionMode};
use signet_core::store::SecretPurpose;
use signet_core::unit_of_work::Transaction;
use signet_core::ErrorCode;
use signet_core::{Error, Result};

use super::email::Mailbox;
use crate::journeys::StepOutcome;
use crate::App;

pub struct MagicLink {
    mailbox: Mailbox,
}

impl MagicLink {
    pub fn new(mailbox: Mailbox) -> Self {
        Self { mailbox }
    }
}

impl Method for MagicLink {
    fn name(&self) -> MethodName {
        MethodName::MagicLink
    }

    /// A link opens in a browser: there is no api-mode magic link.
    fn modes(&self) -> &'static [SessionMode] {
        &[SessionMode::Browser]
    }

    fn login(&self) -> Option<&dyn LoginStep> {
        Some(self)
    }

    /// The `email` recovery path, as a link.
    fn recovery(&self) -> Option<&dyn LoginStep> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl LoginStep for MagicLink {
    /// The link's email carries the flow's code too, which can be typed on
    /// this page: the offer asks for a code after the send.
    async fn offer(&self, _flow: &mut Flow, _ctx: StepContext<'_>) -> Result<Offer> {
        Ok(self.mailbox.offer(
            MethodName::MagicLink,
            "Email me a link",
            "We sent a link and a code to your email. Open the link in this browser, or type the code here.",
        ))
    }

    async fn send(&self, flow: &mut Flow, ctx: StepContext<'_>, tx: &mut dyn Transaction) -> Result<()> {
        self.mailbox.send(flow, ctx.origin, tx, true).await
    }

    /// A token from the link's page, or a code typed from the same email.
    async fn verify(&self, flow: &mut Flow, input: StepInput, ctx: StepContext<'_>) -> Result<Verified> {
        match input {
            StepInput::Token(token) => Ok(self.mailbox.check_link(flow, &token).await?.into()),
            StepInput::Code(code) => self.mailbox.check_code(flow, &code, ctx.origin).await,
            StepInput::Credential(_) => Err(Error::invalid(
                ErrorCode::InvalidRequest,
                "send {\"token\": \"...\"} or {\"code\": \"...\"}",
            )),
        }
    }
}

fn link_invalid() -> Error {
    Error::gone(
        ErrorCode::LinkInvalid,
        "this sign-in link is invalid, already used or expired",
    )
}

/// What the link's page shows before anyone confirms.
#[derive(Debug)]
pub struct LinkPreview {
    pub expires_at: Timestamp,
}

/// `GET`/`HEAD /login/magic/{token}`: whether the link can still be used.
/// Reads only: a scanner fetching the link changes nothing.
pub async fn preview(app: &App, presented: &str) -> Result<LinkPreview> {
    let token = PlainToken::parse(TokenKind::MagicLink, presented).ok_or_else(link_invalid)?;
    let now = app.clock.now();
    let secret = app
        .store
        .peek_secret(SecretPurpose::MagicLink, &token.hash())
        .await?
        .filter(|s| s.consumed_at.is_none() && s.expires_at > now)
        .ok_or_else(link_invalid)?;
    let flow = secret.flow_id.ok_or_else(link_invalid)?;
    app.store.flow(flow, now).await?.ok_or_else(link_invalid)?;
    Ok(LinkPreview {
        expires_at: secret.expires_at,
    })
}

/// `POST /login/magic/{token}`: completes the link's flow through the flow
/// engine, in the browser holding the flow's binding cookie only.
pub async fn confirm(
    app: &App,
    presented: &str,
    binding: Option<&TokenHash>,
    origin: &Origin,
    replaces: Option<SessionId>,
) -> Result<StepOutcome> {
    let token = PlainToken::parse(TokenKind::MagicLink, presented).ok_or_else(link_invalid)?;
    let secret = app
        .store
        .peek_secret(SecretPurpose::MagicLink, &token.hash())
        .await?
        .ok_or_else(link_invalid)?;
    let flow = secret.flow_id.ok_or_else(link_invalid)?;
    match crate::journeys::step(
        app,
        crate::journeys::FlowRef::Stored(flow),
        MethodName::MagicLink.as_str(),
        Ok(StepInput::Token(presented.to_owned())),
        binding,
        origin,
        replaces,
    )
    .await
    {
        Err(e) if e.code() == ErrorCode::FlowBindingMismatch => {
            app.audit()
                .record(
                    AuditEvent::new(EventType::LoginCrossDevice, Actor::Anonymous, Outcome::Denied)
                        .user(secret.user_id)
                        .from_origin(origin)
                        .details(json!({ "flow_id": flow.0, "method": MethodName::MagicLink.as_str() })),
                )
                .await?;
            Err(Error::forbidden(
                ErrorCode::OtherDevice,
                "this link was opened in a different browser from the one that asked for it; go back to \
                 that browser and open the link there, or type the code from the email on its sign-in page",
            ))
        }
        Err(e) if e.code() == ErrorCode::FlowExpired => Err(link_invalid()),
        other => other,
    }
}
