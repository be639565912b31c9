//! The authorization endpoint (OpenID Connect Core 1.0 §3.1.2, RFC 6749
//! §4.1.1), for the authorization code flow only.
//!
//! - `response_type=code` only (anything else: `unsupported_response_type`)
//!   and `response_mode=query` only; every answer to the client carries
//!   `iss` (RFC 9207 §2) besides `code` or `error`, and `state` when sent.
//! - The client and its redirect URI are checked first, and the URI by exact
//!   string comparison (RFC 9700 §4.1.3). Until both are known good nothing
//!   is sent to the URI: the browser gets an error page at Signet (RFC 6749
//!   §4.1.2.1), so Signet is never an open redirector.
//! - PKCE (RFC 7636) with `S256` only (RFC 9700 §2.1.1): `plain`, or a
//!   challenge without a method (which RFC 7636 §4.3 would read as
//!   `plain`), is refused; a public client must send a challenge.
//! - What the sign-in must prove is one [`Demand`]: the client's floor,
//!   `acr_values`, `max_age` and `prompt=login`, combined with
//!   [`Demand::and`] (the stricter wins). A session that meets it gets a
//!   code at once; `prompt=none` without one is `login_required` (Core
//!   §3.1.2.6); otherwise the request is stored server-side and the user
//!   signs in with a flow whose continuation is
//!   [`signet_core::flow::Continuation::Authorization`], so any node can
//!   resume it when the login completes.

use serde::{Deserialize, Serialize};
use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::Timestamp;
use signet_core::flow::Demand;
use signet_core::oidc_client::{GrantType, OidcClient};
use signet_core::session::{Aal, Session, SessionScope};
use signet_core::Result;
use url::Url;
use uuid::Uuid;

use super::codes;
use super::discovery::issuer;
use crate::sessions::Current;
use crate::App;

/// The path of the authorization endpoint.
pub const AUTHORIZATION_PATH: &str = "/oauth2/authorize";
/// Where a login that was started for an authorization request returns to.
pub const RESUME_PATH: &str = "/oauth2/authorize/resume/";

/// How long a stored request waits for its login: as long as a login flow.
const REQUEST_LIFETIME: std::time::Duration = crate::journeys::FLOW_MAX_LIFETIME;

/// The request, as stored while the user signs in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// The S256 PKCE challenge, if one was sent.
    pub code_challenge: Option<String>,
    pub demand: Demand,
    pub login_hint: Option<String>,
    /// When the request arrived (ms): a `prompt=login` is satisfied only by
    /// an authentication after it.
    pub requested_at: i64,
    /// `prompt=consent`: show the consent page even if the scopes were
    /// approved before (third-party clients).
    #[serde(default)]
    pub prompt_consent: bool,
}

/// What the browser should be shown.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// An error page at Signet: the client or its redirect URI is not known
    /// good, so nothing may be sent to it.
    ErrorPage(String),
    /// A redirect to the client (a code or an error).
    Redirect(String),
    /// Sign in first, then come back to `RESUME_PATH{request_id}`.
    Login {
        request_id: Uuid,
        login_hint: Option<String>,
    },
    /// The signed-in session falls short of the demand: raise it with a
    /// step-up journey (`/login?step_up=1&return_to=RESUME_PATH{request_id}`)
    /// instead of a new sign-in.
    StepUp { request_id: Uuid },
    /// Ask the signed-in user to approve the third-party client
    /// (`CONSENT_PATH{request_id}`, [`super::consent`]).
    Consent { request_id: Uuid },
}

/// The longest `nonce` accepted (it travels sealed in the code, which
/// must stay within [`super::codes::MAX_LEN`]).
pub const MAX_NONCE_LEN: usize = 512;

/// The consent page of a stored request.
pub const CONSENT_PATH: &str = "/oauth2/consent/";

/// One parameter list (query or form). A parameter sent twice is refused
/// (RFC 6749 §3.1); empty values count as absent.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> std::result::Result<Self, String> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in pairs {
            if v.is_empty() {
                continue;
            }
            if out.iter().any(|(seen, _)| *seen == k) {
                return Err(k);
            }
            out.push((k, v));
        }
        Ok(Params(out))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// An error sent back to the client's redirect URI (RFC 6749 §4.1.2.1,
/// OpenID Connect Core §3.1.2.6).
struct Refusal {
    error: &'static str,
    description: String,
}

fn refuse(error: &'static str, description: impl Into<String>) -> Refusal {
    Refusal {
        error,
        description: description.into(),
    }
}

/// Handles an authorization request (GET query or POST form).
pub async fn authorize(
    app: &App,
    origin: &Origin,
    params: std::result::Result<Params, String>,
    session: Option<&Current>,
) -> Result<Answer> {
    let params = match params {
        Ok(p) => p,
        Err(dup) => {
            return Ok(Answer::ErrorPage(format!(
                "The parameter {dup:?} appears more than once."
            )))
        }
    };
    let Some(client_id) = params.get("client_id") else {
        return Ok(Answer::ErrorPage("The request names no client (client_id).".into()));
    };
    let Some(client) = app.oidc.clients.get(app, client_id).await? else {
        return Ok(Answer::ErrorPage("The request names an unknown client.".into()));
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Ok(Answer::ErrorPage("The request names no redirect URI.".into()));
    };
    if !client.has_redirect_uri(redirect_uri) {
        audit_refusal(app, origin, &client.client_id, "redirect_uri_mismatch").await?;
        return Ok(Answer::ErrorPage(
            "The redirect URI is not registered for this app (it must match exactly).".into(),
        ));
    }
    let state = params.get("state").map(str::to_owned);
    let now = app.clock.now();
    let request = match validate(&client, &params, now) {
        Ok(r) => r,
        Err(refusal) => {
            audit_refusal(app, origin, &client.client_id, refusal.error).await?;
            return Ok(Answer::Redirect(error_redirect(
                app,
                redirect_uri,
                state.as_deref(),
                &refusal,
            )));
        }
    };
    let prompt_none = params.get("prompt").is_some_and(|p| p.split(' ').any(|v| v == "none"));
    decide(app, origin, &client, request, session, prompt_none, None, false).await
}

/// Resumes the stored request `id` once the login it started completed.
pub async fn resume(app: &App, origin: &Origin, id: Uuid, session: Option<&Current>) -> Result<Answer> {
    match load_stored(app, id).await? {
        Ok((request, client)) => decide(app, origin, &client, request, session, false, Some(id), false).await,
        Err(answer) => Ok(answer),
    }
}

/// Resumes the stored request `id` after the user approved it on the
/// consent page.
pub(crate) async fn resume_consented(
    app: &App,
    origin: &Origin,
    client: &OidcClient,
    request: AuthorizationRequest,
    current: &Current,
    id: Uuid,
) -> Result<Answer> {
    decide(app, origin, client, request, Some(current), false, Some(id), true).await
}

/// The stored request `id` and its client, or the error page to show when
/// it expired or its client or redirect URI is gone.
pub(crate) async fn load_stored(
    app: &App,
    id: Uuid,
) -> Result<std::result::Result<(AuthorizationRequest, OidcClient), Answer>> {
    let now = app.clock.now();
    let mut tx = app.store.begin().await?;
    let stored = tx.oidc_request(id, now).await?;
    tx.rollback().await?;
    let Some(stored) = stored else {
        return Ok(Err(Answer::ErrorPage(
            "This sign-in request has expired. Go back to the app and start again.".into(),
        )));
    };
    let request: AuthorizationRequest = serde_json::from_str(&stored)
        .map_err(|e| signet_core::Error::Internal(format!("stored authorization request: {e}").into()))?;
    let Some(client) = app.store.oidc_client(&request.client_id).await? else {
        return Ok(Err(Answer::ErrorPage(
            "The app that asked for this sign-in is gone.".into(),
        )));
    };
    if !client.has_redirect_uri(&request.redirect_uri) {
        return Ok(Err(Answer::ErrorPage(
            "The app's redirect URI is no longer registered.".into(),
        )));
    }
    Ok(Ok((request, client)))
}

/// `access_denied` sent back to the client of `request`.
pub(crate) fn denied(app: &App, request: &AuthorizationRequest, why: &str) -> Answer {
    Answer::Redirect(error_redirect(
        app,
        &request.redirect_uri,
        request.state.as_deref(),
        &refuse("access_denied", why),
    ))
}

/// The login demand of the stored request `id`, for the login flow it
/// starts (so the journey itself asks for what the app needs).
pub async fn stored_demand(app: &App, id: Uuid) -> Result<Option<Demand>> {
    Ok(stored_request(app, id).await?.map(|r| r.demand))
}

/// The name of the app whose stored request `id` is waiting for a login,
/// for the login page to say who is asking ("to continue to …").
pub async fn asking_app(app: &App, id: Uuid) -> Result<Option<String>> {
    let Some(request) = stored_request(app, id).await? else {
        return Ok(None);
    };
    Ok(app.store.oidc_client(&request.client_id).await?.map(|c| c.name))
}

async fn stored_request(app: &App, id: Uuid) -> Result<Option<AuthorizationRequest>> {
    let mut tx = app.store.begin().await?;
    let stored = tx.oidc_request(id, app.clock.now()).await?;
    tx.rollback().await?;
    Ok(stored.and_then(|s| serde_json::from_str::<AuthorizationRequest>(&s).ok()))
}

/// The request id in a same-origin `return_to` that resumes an
/// authorization request.
pub fn resume_id(path: &str) -> Option<Uuid> {
    let url = Url::parse("http://x").ok()?.join(path).ok()?;
    url.path()
        .strip_prefix(RESUME_PATH)
        .and_then(|id| Uuid::parse_str(id).ok())
}

#[allow(clippy::too_many_arguments)]
async fn decide(
    app: &App,
    origin: &Origin,
    client: &OidcClient,
    request: AuthorizationRequest,
    session: Option<&Current>,
    prompt_none: bool,
    stored: Option<Uuid>,
    consented: bool,
) -> Result<Answer> {
    let now = app.clock.now();
    if let Some(current) = session.filter(|c| satisfies(&c.session, &request, now)) {
        if !consented && super::consent::required(app, client, current.user.id, &request).await? {
            if prompt_none {
                let refusal = refuse("consent_required", "this app needs the user's consent first");
                return refuse_to_client(app, origin, &request, refusal).await;
            }
            let request_id = store_request(app, &request, stored, now).await?;
            return Ok(Answer::Consent { request_id });
        }
        let code = codes::issue(app, origin, client, &request, current, stored).await?;
        let mut url = redirect_base(&request.redirect_uri)?;
        url.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("iss", &issuer(&app.settings));
        if let Some(s) = &request.state {
            url.query_pairs_mut().append_pair("state", s);
        }
        return Ok(Answer::Redirect(url.to_string()));
    }
    if prompt_none {
        let refusal = refuse("login_required", "no session meets this request; sign in first");
        return refuse_to_client(app, origin, &request, refusal).await;
    }
    if let (Some(id), Some(_)) = (stored, session) {
        // The login this request started completed, yet its session does
        // not meet the demand (the user signed in elsewhere meanwhile, or
        // the login was not this request's): refuse rather than loop.
        let refusal = refuse(
            "access_denied",
            "the sign-in did not reach the assurance this app requires",
        );
        let mut tx = app.store.begin().await?;
        tx.delete_oidc_request(id).await?;
        tx.commit().await?;
        return refuse_to_client(app, origin, &request, refusal).await;
    }
    let login_hint = request.login_hint.clone();
    let request_id = store_request(app, &request, stored, now).await?;
    // A signed-in user whose session is too weak or too old steps up on it
    // (the same person, a fresh proof at the demanded level); `prompt=login`
    // asks for a new sign-in, which may be another account (Core
    // §3.1.2.1).
    if session.is_some_and(|c| c.session.scope == SessionScope::Full) && !request.demand.fresh {
        return Ok(Answer::StepUp { request_id });
    }
    Ok(Answer::Login { request_id, login_hint })
}

/// Audits a refusal and sends it to the request's (registered) redirect URI.
async fn refuse_to_client(
    app: &App,
    origin: &Origin,
    request: &AuthorizationRequest,
    refusal: Refusal,
) -> Result<Answer> {
    audit_refusal(app, origin, &request.client_id, refusal.error).await?;
    Ok(Answer::Redirect(error_redirect(
        app,
        &request.redirect_uri,
        request.state.as_deref(),
        &refusal,
    )))
}

/// The id of the stored request: `stored` if it is one already, else a new
/// row that waits [`REQUEST_LIFETIME`] for the login or the consent.
async fn store_request(
    app: &App,
    request: &AuthorizationRequest,
    stored: Option<Uuid>,
    now: Timestamp,
) -> Result<Uuid> {
    if let Some(id) = stored {
        return Ok(id);
    }
    let id = Uuid::new_v4();
    let body = serde_json::to_string(request)
        .map_err(|e| signet_core::Error::Internal(format!("authorization request: {e}").into()))?;
    let mut tx = app.store.begin().await?;
    tx.insert_oidc_request(id, &request.client_id, &body, now.plus(REQUEST_LIFETIME))
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// Whether a session meets the request's demand now.
fn satisfies(session: &Session, request: &AuthorizationRequest, now: Timestamp) -> bool {
    let d = &request.demand;
    if session.scope != SessionScope::Full || session.aal < d.aal {
        return false;
    }
    if d.phishing_resistant && !session.phishing_resistant {
        return false;
    }
    // A proof made after this request arrived (the login it sent the person
    // to) meets any `max_age`, 0 included: OIDC Core §3.1.2.1 makes
    // `max_age=0` the same as `prompt=login`, and the time the browser took
    // back to the resume path must not count against the budget.
    let proven_for_this_request = session.auth_time.as_millis() >= request.requested_at;
    if proven_for_this_request {
        return true;
    }
    let age_ms = now.as_millis().saturating_sub(session.auth_time.as_millis());
    if let Some(max) = d.max_age_secs {
        if age_ms > i64::try_from(max.saturating_mul(1000)).unwrap_or(i64::MAX) {
            return false;
        }
    }
    !d.fresh
}

fn validate(
    client: &OidcClient,
    params: &Params,
    now: Timestamp,
) -> std::result::Result<AuthorizationRequest, Refusal> {
    match params.get("response_type") {
        None => return Err(refuse("invalid_request", "response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Err(refuse(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return Err(refuse("invalid_request", "only response_mode=query is supported"));
    }
    if params.get("request").is_some() {
        return Err(refuse("request_not_supported", "request objects are not supported"));
    }
    if params.get("request_uri").is_some() {
        return Err(refuse("request_uri_not_supported", "request_uri is not supported"));
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(refuse(
            "unauthorized_client",
            "this client may not use the authorization code grant",
        ));
    }
    if params.get("nonce").is_some_and(|n| n.len() > MAX_NONCE_LEN) {
        return Err(refuse(
            "invalid_request",
            format!("nonce must be at most {MAX_NONCE_LEN} characters"),
        ));
    }
    let scope = requested_scope(client, params.get("scope"))?;
    let code_challenge = pkce(client, params)?;
    let mut demand = client_demand(client).and(acr_demand(params.get("acr_values")));
    if let Some(raw) = params.get("max_age") {
        let secs: u64 = raw
            .parse()
            .map_err(|_| refuse("invalid_request", "max_age must be a number of seconds"))?;
        demand = demand.and(Demand {
            max_age_secs: Some(secs),
            ..Demand::level(Aal::Aal1)
        });
    }
    if let Some(prompt) = params.get("prompt") {
        let values: Vec<&str> = prompt.split(' ').filter(|v| !v.is_empty()).collect();
        if values.contains(&"none") && values.len() > 1 {
            return Err(refuse(
                "invalid_request",
                "prompt=none cannot be combined with other values",
            ));
        }
        if values.contains(&"login") {
            demand = demand.and(Demand {
                fresh: true,
                ..Demand::level(Aal::Aal1)
            });
        }
    }
    let prompt_consent = params
        .get("prompt")
        .is_some_and(|p| p.split(' ').any(|v| v == "consent"));
    Ok(AuthorizationRequest {
        client_id: client.client_id.clone(),
        redirect_uri: params.get("redirect_uri").unwrap_or_default().to_owned(),
        scope,
        state: params.get("state").map(str::to_owned),
        nonce: params.get("nonce").map(str::to_owned),
        code_challenge,
        demand,
        login_hint: params.get("login_hint").map(str::to_owned),
        requested_at: now.as_millis(),
        prompt_consent,
    })
}

/// The scopes granted: `openid` must be among them (this is OpenID
/// Connect), every other one allowed to the client (`offline_access`
/// included: it yields a refresh token when the client may also use the
/// `refresh_token` grant).
fn requested_scope(client: &OidcClient, raw: Option<&str>) -> std::result::Result<Vec<String>, Refusal> {
    let mut out: Vec<String> = Vec::new();
    for s in raw.unwrap_or_default().split(' ').filter(|s| !s.is_empty()) {
        let allowed = s == "openid" || client.settings.scopes.iter().any(|a| a == s);
        if !allowed {
            return Err(refuse(
                "invalid_scope",
                format!("scope {s:?} is not allowed for this client"),
            ));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    if !out.iter().any(|s| s == "openid") {
        return Err(refuse("invalid_scope", "the openid scope is required"));
    }
    Ok(out)
}

/// PKCE (RFC 7636) with S256 only.
fn pkce(client: &OidcClient, params: &Params) -> std::result::Result<Option<String>, Refusal> {
    let challenge = params.get("code_challenge");
    let method = params.get("code_challenge_method");
    match (challenge, method) {
        (None, None) if client.is_public() => Err(refuse("invalid_request", "a public client must use PKCE (S256)")),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(refuse(
            "invalid_request",
            "code_challenge_method without code_challenge",
        )),
        (Some(_), None) | (Some(_), Some("plain")) => Err(refuse(
            "invalid_request",
            "only code_challenge_method=S256 is supported",
        )),
        (Some(_), Some(m)) if m != "S256" => Err(refuse(
            "invalid_request",
            "only code_challenge_method=S256 is supported",
        )),
        (Some(c), Some(_)) => {
            // RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters.
            let ok = c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if ok {
                Ok(Some(c.to_owned()))
            } else {
                Err(refuse("invalid_request", "code_challenge is not an S256 challenge"))
            }
        }
    }
}

/// The client's own floor (its `assurance` settings).
fn client_demand(client: &OidcClient) -> Demand {
    let a = &client.settings.assurance;
    Demand {
        aal: a.min_aal.unwrap_or(Aal::Aal1),
        phishing_resistant: a.phishing_resistant,
        max_age_secs: a.max_auth_age_secs,
        fresh: false,
    }
}

/// `acr_values` (Core §3.1.2.1), in order of preference: the first value
/// Signet knows is demanded. `phr` is a phishing-resistant sign-in, `phrh`
/// a phishing-resistant one at AAL3 (hardware-bound), `aal1`..`aal3` the
/// NIST SP 800-63B levels. Unknown values are ignored (they are voluntary).
pub fn acr_demand(raw: Option<&str>) -> Demand {
    for v in raw.unwrap_or_default().split(' ') {
        match v {
            "phr" => {
                return Demand {
                    phishing_resistant: true,
                    ..Demand::level(Aal::Aal1)
                }
            }
            "phrh" => {
                return Demand {
                    phishing_resistant: true,
                    ..Demand::level(Aal::Aal3)
                }
            }
            other => {
                if let Some(aal) = Aal::parse(other) {
                    return Demand::level(aal);
                }
            }
        }
    }
    Demand::level(Aal::Aal1)
}

/// The `acr` a session states: what it proved (`phrh`, `phr`, or its AAL).
pub fn acr_of(session: &Session) -> &'static str {
    match (session.phishing_resistant, session.aal) {
        (true, Aal::Aal3) => "phrh",
        (true, _) => "phr",
        (false, aal) => aal.as_str(),
    }
}

fn redirect_base(uri: &str) -> Result<Url> {
    Url::parse(uri).map_err(|e| signet_core::Error::Internal(format!("registered redirect URI: {e}").into()))
}

fn error_redirect(app: &App, redirect_uri: &str, state: Option<&str>, refusal: &Refusal) -> String {
    // The URI is registered (checked before any redirect), so it parses.
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return redirect_uri.to_owned();
    };
    url.query_pairs_mut()
        .append_pair("error", refusal.error)
        .append_pair("error_description", &refusal.description)
        .append_pair("iss", &issuer(&app.settings));
    if let Some(s) = state {
        url.query_pairs_mut().append_pair("state", s);
    }
    url.to_string()
}

async fn audit_refusal(app: &App, origin: &Origin, client_id: &str, error: &str) -> Result<()> {
    let record = AuditEvent::new(EventType::OidcAuthorizationRefused, Actor::Anonymous, Outcome::Denied)
        .from_origin(origin)
        .details(json!({ "client_id": client_id, "error": error }));
    let mut tx = app.store.begin().await?;
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_values_map_to_demands_first_known_wins() {
        assert!(acr_demand(Some("phr")).phishing_resistant);
        assert_eq!(acr_demand(Some("phrh")).aal, Aal::Aal3);
        assert_eq!(acr_demand(Some("urn:x aal2 phr")).aal, Aal::Aal2);
        assert!(!acr_demand(Some("urn:x aal2 phr")).phishing_resistant);
        assert_eq!(acr_demand(None), Demand::level(Aal::Aal1));
    }

    #[test]
    fn resume_ids_are_read_from_the_return_path_only() {
        let id = Uuid::new_v4();
        assert_eq!(resume_id(&format!("/oauth2/authorize/resume/{id}")), Some(id));
        assert_eq!(
            resume_id(&format!("https://id.example.com/oauth2/authorize/resume/{id}")),
            Some(id)
        );
        assert_eq!(resume_id("/account"), None);
        assert_eq!(resume_id("/oauth2/authorize/resume/nope"), None);
    }
}
