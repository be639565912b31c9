use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use signet_app::journeys::FlowRef;
use signet_app::login::{Start, StepOutcome};
use signet_core::clock::rfc3339;
use signet_core::method::{Offer, StepInput};
use signet_core::secret::{PlainToken, TokenHash, TokenKind};
use signet_core::session::SessionMode;
use signet_core::ErrorCode;

use crate::cookies;
use crate::error::ApiResult;
use crate::extract::{ApiJson, Client, MaybeAuth};
use crate::routes::invitations::session_response;
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    identifier: Option<String>,
    #[serde(default)]
    mode: SessionMode,
    return_to: Option<String>,
}

#[derive(serde::Serialize)]
struct Started {
    /// The flow's sealed handle (see `signet_app::flow_handles`).
    flow_id: String,
    #[serde(with = "rfc3339")]
    expires_at: signet_core::clock::Timestamp,
    methods: Vec<Offer>,
}

/// The browser-binding cookie's hash, if the request carries a well-formed one.
pub(crate) fn binding(state: &AppState, headers: &HeaderMap) -> Option<TokenHash> {
    cookies::read(headers, state.cookies.flow)
        .and_then(|v| PlainToken::parse(TokenKind::BrowserBinding, v))
        .map(|t| t.hash())
}

/// `POST /api/v1/login`
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Client(origin): Client,
    ApiJson(body): ApiJson<StartBody>,
) -> ApiResult<Response> {
    let (bind_hash, new_cookie) = browser_binding(&state, &headers, body.mode);
    let started = signet_app::login::start(
        &state.app,
        Start {
            binding: bind_hash,
            ..Start::new(body.identifier, body.mode, body.return_to, origin)
        },
    )
    .await?;
    Ok(started_response(&state, started, new_cookie))
}

/// A browser keeps one binding cookie for all its flows; a new one is minted
/// only when it has none. Api-mode flows are not bound to a cookie.
pub(crate) fn browser_binding(
    state: &AppState,
    headers: &HeaderMap,
    mode: SessionMode,
) -> (Option<TokenHash>, Option<PlainToken>) {
    match (mode, binding(state, headers)) {
        (SessionMode::Api, _) => (None, None),
        (SessionMode::Browser, Some(h)) => (Some(h), None),
        (SessionMode::Browser, None) => {
            let t = PlainToken::generate(TokenKind::BrowserBinding);
            (Some(t.hash()), Some(t))
        }
    }
}

/// The 200 answer to starting a flow (login or step-up), setting a new
/// binding cookie if one was minted.
pub(crate) fn started_response(
    state: &AppState,
    started: signet_app::login::Started,
    new_cookie: Option<PlainToken>,
) -> Response {
    let mut resp = Json(Started {
        flow_id: started.handle,
        expires_at: started.flow.expires_at,
        methods: started.methods,
    })
    .into_response();
    if let Some(t) = new_cookie {
        let ttl = signet_app::login::FLOW_MAX_LIFETIME.as_secs();
        if let Some(v) = state.cookies.set(state.cookies.flow, t.expose_secret(), Some(ttl)) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    resp
}

/// The body of `.../send`: nothing (`{}`); any field is refused with 400.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {}

/// The body of a step: exactly one of `credential` (a WebAuthn
/// `PublicKeyCredential.toJSON()`), `code` (a typed code) or `token` (a
/// link's token), typed into a [`StepInput`]. Anything else is refused with
/// 400, as everywhere in the API; whether the method takes that kind of
/// input, and its value, the method itself checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepBody {
    credential: Option<Value>,
    code: Option<Value>,
    token: Option<Value>,
}

impl StepBody {
    pub(crate) fn into_input(self) -> Result<StepInput, signet_core::Error> {
        let text = |v: Value, what: &str| match v {
            Value::String(s) => Ok(s),
            _ => Err(signet_core::Error::invalid(
                ErrorCode::InvalidRequest,
                format!("{what} must be a string"),
            )),
        };
        match (self.credential, self.code, self.token) {
            (Some(c), None, None) => Ok(StepInput::Credential(c)),
            (None, Some(c), None) => Ok(StepInput::Code(text(c, "code")?)),
            (None, None, Some(t)) => Ok(StepInput::Token(text(t, "token")?)),
            _ => Err(signet_core::Error::invalid(
                ErrorCode::InvalidRequest,
                "send exactly one of \"credential\", \"code\" or \"token\"",
            )),
        }
    }
}

/// `POST /api/v1/login/{flow_id}/{method}/send`
pub async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    MaybeAuth(current): MaybeAuth,
    Client(origin): Client,
    Path((flow, method)): Path<(String, String)>,
    ApiJson(SendBody {}): ApiJson<SendBody>,
) -> ApiResult<impl IntoResponse> {
    signet_app::login::send(
        &state.app,
        FlowRef::Handle(&flow),
        &method,
        binding(&state, &headers).as_ref(),
        &origin,
        current.as_ref().map(|a| a.current.session.id),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({}))))
}

/// `POST /api/v1/login/{flow_id}/{method}`
pub async fn step(
    State(state): State<AppState>,
    headers: HeaderMap,
    MaybeAuth(prior): MaybeAuth,
    Client(origin): Client,
    Path((flow, method)): Path<(String, String)>,
    ApiJson(body): ApiJson<StepBody>,
) -> ApiResult<Response> {
    let replaces = prior.as_ref().map(|a| a.current.session.id);
    let outcome = signet_app::login::step(
        &state.app,
        FlowRef::Handle(&flow),
        &method,
        body.into_input(),
        binding(&state, &headers).as_ref(),
        &origin,
        replaces,
    )
    .await?;
    Ok(match outcome {
        StepOutcome::Complete {
            issued,
            user,
            continuation,
        } => {
            let return_to = crate::routes::oidc::continuation_target(&continuation);
            session_response(
                &state,
                &issued,
                &user,
                json!({ "state": "complete", "return_to": return_to }),
            )
        }
        StepOutcome::Continue {
            required_aal, methods, ..
        } => Json(json!({ "state": "continue", "required_aal": required_aal, "methods": methods })).into_response(),
    })
}
