//! Logout: RP-initiated (OpenID Connect RP-Initiated Logout 1.0) and
//! back-channel (OpenID Connect Back-Channel Logout 1.0).
//!
//! # RP-initiated logout (`end_session_endpoint`)
//!
//! A relying party sends the browser to `GET` or `POST` [`END_SESSION_PATH`]
//! with `id_token_hint`, `client_id`, `post_logout_redirect_uri` and `state`
//! (§2). What must stay true:
//! - `id_token_hint` must be an ID token Signet signed, for this issuer
//!   (§2: the OP validates it was the issuer); an **expired** one is
//!   accepted (§4: "the OP SHOULD accept ID Tokens ... when ... the
//!   `exp` time has passed").
//! - `post_logout_redirect_uri` is compared **exactly** with the client's
//!   registered list (§3.1), the client being `client_id` or the hint's
//!   `aud` (they must agree). A mismatch, or a URI without a way to tell
//!   the client, is an error page at Signet, never a redirect: Signet is
//!   not an open redirector (§5.1).
//! - Signing out without asking happens only with a valid hint naming the
//!   signed-in user (§2: the hint is the RP's proof that the user is known
//!   to it). Otherwise the person gets a confirmation page whose form
//!   posts back to [`CONFIRM_PATH`] from Signet's own origin, so a
//!   cross-site link or image cannot sign anyone out (§6, logout CSRF).
//! - `state` is echoed on the redirect (§3).
//!
//! # Back-channel logout
//!
//! When a Signet session ends for any reason (sign-out, ending a session
//! from the account page, removing the credential that proved it,
//! [`crate::sessions::end_everywhere`]: an admin disabling the user,
//! account recovery, "this wasn't me"), every client
//! that redeemed a code of that session and registered a
//! `backchannel_logout_uri` is sent a logout token (§2.4): a JWT signed
//! with the provider's default key, `typ: logout+jwt`, with `iss`, `aud`,
//! `iat`, `exp`, `jti`, `sub`, `sid` and the back-channel `events` member,
//! and never a `nonce` (§2.4). It is queued in the durable outbox **in the
//! same unit of work** as the session's end ([`notify_in`]), so it exists
//! if and only if the session ended, and the courier POSTs it
//! (`logout_token=...`, §2.5) with the outbox's retries until a 2xx (§2.8).
//! A code is claimed for its notice by one conditional write, so a
//! session's end is announced to each client once (ADR 0025).
//!
//! A session that **times out** (its idle or absolute lifetime passes) ends
//! too: the janitor's pass ([`announce_timed_out`]) removes each timed-out
//! session a client holds a grant of, with its notices, in one unit of
//! work per session; its purge never removes such a session itself. So a
//! client hears of it within one janitor interval (five minutes) rather
//! than at once.

use std::time::Duration;

use serde_json::{json, Value};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::oidc_client::OidcClient;
use signet_core::outbox::{Channel, Draft};
use signet_core::session::SessionId;
use signet_core::unit_of_work::Transaction;
use signet_core::user::UserId;
use signet_core::Result;
use uuid::Uuid;

use super::authorize::Params;
use super::discovery::issuer;
use crate::sessions::Current;
use crate::App;

/// The path of the end-session endpoint (RP-Initiated Logout 1.0 §2).
pub const END_SESSION_PATH: &str = "/oauth2/logout";
/// Where the confirmation page's form posts (same origin only).
pub const CONFIRM_PATH: &str = "/oauth2/logout/confirm";
/// The `typ` of a logout token (Back-Channel Logout 1.0 §2.4).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";
/// The event a logout token carries (§2.4).
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token is valid, and so how long the outbox keeps
/// retrying it (ADR 0025): long enough for about nine attempts through a
/// relying party's short outage, short enough that a token found later in
/// a log is of no use.
pub const LOGOUT_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// The template name of queued logout tokens (the outbox's `template`).
pub const LOGOUT_TEMPLATE: &str = "backchannel_logout";

/// An end-session request's parameters (§2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogoutRequest {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

impl LogoutRequest {
    /// From a query or form; a parameter sent twice is an error page.
    pub fn from_params(params: std::result::Result<Params, String>) -> std::result::Result<Self, String> {
        let p = params.map_err(|dup| format!("The parameter {dup:?} appears more than once."))?;
        let get = |k: &str| p.get(k).map(str::to_owned);
        Ok(Self {
            id_token_hint: get("id_token_hint"),
            client_id: get("client_id"),
            post_logout_redirect_uri: get("post_logout_redirect_uri"),
            state: get("state"),
        })
    }
}

/// What the browser is shown.
#[derive(Debug, PartialEq, Eq)]
pub enum LogoutAnswer {
    /// An error page at Signet; nothing is sent anywhere.
    ErrorPage(String),
    /// Signed out (or was not signed in): back to the client.
    Redirect(String),
    /// Signed out; no place to return to.
    SignedOut,
    /// Ask the person first; the page's form posts these back to
    /// [`CONFIRM_PATH`].
    Confirm {
        client_name: Option<String>,
        request: LogoutRequest,
    },
}

/// A request whose parameters were checked.
struct Checked {
    client: Option<OidcClient>,
    /// The hint's `sub`, when a valid hint was sent.
    hint_sub: Option<String>,
    /// Where to send the browser afterwards, `state` included.
    redirect: Option<String>,
}

/// Where a logout request arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The end-session endpoint. `cookieless`: the request may not have
    /// carried the session cookie even if the browser has one (a
    /// cross-site `POST`: cookies are `SameSite=Lax`), so not seeing a
    /// session proves nothing and the person is asked instead.
    EndSession { cookieless: bool },
    /// The confirmation page's form (the caller checked it came from
    /// Signet's own origin): the person asked to sign out.
    Confirmation,
}

/// Handles an end-session request or its confirmation: signs the session
/// out when the request may (a valid hint for the signed-in user, or the
/// person's confirmation), asks otherwise, and says where to go next.
pub async fn end_session(
    app: &App,
    origin: &Origin,
    request: std::result::Result<LogoutRequest, String>,
    current: Option<&Current>,
    via: Via,
) -> Result<LogoutAnswer> {
    let request = match request {
        Ok(r) => r,
        Err(why) => return Ok(LogoutAnswer::ErrorPage(why)),
    };
    let checked = match check(app, origin, &request).await? {
        Ok(c) => c,
        Err(page) => return Ok(page),
    };
    let hinted = |c: &Current| checked.hint_sub.as_deref() == Some(c.user.id.to_string().as_str());
    match (current, via) {
        (Some(current), Via::Confirmation) => sign_out(app, origin, current, &checked).await,
        (Some(current), _) if hinted(current) => sign_out(app, origin, current, &checked).await,
        (Some(_), _) | (None, Via::EndSession { cookieless: true }) => Ok(confirm_page(checked, request)),
        (None, _) => Ok(done(checked)),
    }
}

fn confirm_page(checked: Checked, request: LogoutRequest) -> LogoutAnswer {
    LogoutAnswer::Confirm {
        client_name: checked.client.map(|c| c.name),
        request,
    }
}

fn done(checked: Checked) -> LogoutAnswer {
    match checked.redirect {
        Some(to) => LogoutAnswer::Redirect(to),
        None => LogoutAnswer::SignedOut,
    }
}

async fn sign_out(app: &App, origin: &Origin, current: &Current, checked: &Checked) -> Result<LogoutAnswer> {
    let client_id = checked.client.as_ref().map(|c| c.client_id.clone());
    crate::sessions::end_with(app, current, origin, "rp_initiated_logout", client_id).await?;
    Ok(done(Checked {
        client: None,
        hint_sub: None,
        redirect: checked.redirect.clone(),
    }))
}

/// Checks the hint, the client and the redirect URI. `Err` is the error
/// page to show (the refusal is audited).
async fn check(
    app: &App,
    origin: &Origin,
    request: &LogoutRequest,
) -> Result<std::result::Result<Checked, LogoutAnswer>> {
    let hint = match &request.id_token_hint {
        Some(t) => match verify_hint(app, t) {
            Some(claims) => Some(claims),
            None => {
                return deny(
                    app,
                    origin,
                    request,
                    "The id_token_hint is not an ID token issued by this server.",
                )
                .await
            }
        },
        None => None,
    };
    let hint_aud = hint.as_ref().and_then(audience);
    let client_id = match (&request.client_id, hint_aud) {
        (Some(c), Some(a)) if *c != a => {
            return deny(
                app,
                origin,
                request,
                "The client_id does not match the audience of the id_token_hint.",
            )
            .await
        }
        (Some(c), _) => Some(c.clone()),
        (None, a) => a,
    };
    let client = match &client_id {
        Some(id) => match app.store.oidc_client(id).await? {
            Some(c) => Some(c),
            None => return deny(app, origin, request, "This application is not known.").await,
        },
        None => None,
    };
    let redirect = match (&request.post_logout_redirect_uri, &client) {
        (None, _) => None,
        (Some(_), None) => {
            let why = "A post_logout_redirect_uri needs a client_id or an id_token_hint to check it against.";
            return deny(app, origin, request, why).await;
        }
        (Some(uri), Some(c)) => match with_state(uri, request.state.as_deref()) {
            Some(to) if c.has_post_logout_redirect_uri(uri) => Some(to),
            _ => {
                let why = "The post_logout_redirect_uri is not registered for this application.";
                return deny(app, origin, request, why).await;
            }
        },
    };
    let hint_sub = hint
        .as_ref()
        .and_then(|h| h.get("sub"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Ok(Checked {
        client,
        hint_sub,
        redirect,
    }))
}

/// Audits a refused request and answers its error page.
async fn deny(
    app: &App,
    origin: &Origin,
    request: &LogoutRequest,
    why: &str,
) -> Result<std::result::Result<Checked, LogoutAnswer>> {
    let record = AuditEvent::new(EventType::OidcLogout, Actor::Anonymous, Outcome::Denied)
        .from_origin(origin)
        .details(json!({
            "client_id": request.client_id,
            "post_logout_redirect_uri": request.post_logout_redirect_uri,
            "reason": why,
        }));
    app.audit().record(record).await?;
    Ok(Err(LogoutAnswer::ErrorPage(why.to_owned())))
}

/// The claims of an ID token Signet signed for this issuer; its expiry is
/// not checked (RP-Initiated Logout 1.0 §4).
fn verify_hint(app: &App, token: &str) -> Option<Value> {
    let claims = app.oidc.keys.verify(token, "JWT")?;
    (claims.get("iss")?.as_str()? == issuer(&app.settings)).then_some(claims)
}

/// The single audience of an ID token (`aud` a string, or an array of one).
fn audience(claims: &Value) -> Option<String> {
    match claims.get("aud")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) if a.len() == 1 => a.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// `uri` with `state` appended to its query (§3), or `None` if it does not
/// parse (it was checked at registration, so it does).
fn with_state(uri: &str, state: Option<&str>) -> Option<String> {
    let mut url = url::Url::parse(uri).ok()?;
    if let Some(state) = state {
        url.query_pairs_mut().append_pair("state", state);
    }
    Some(url.into())
}

/// Queues a back-channel logout token, in `tx`, for every client with a
/// `backchannel_logout_uri` that redeemed a code of `user`'s session
/// `session` (or of any of the user's sessions when `None`), once per
/// client and session. Returns how many were queued; the caller wakes the
/// courier after its commit.
pub async fn notify_in(app: &App, tx: &mut dyn Transaction, user: UserId, session: Option<SessionId>) -> Result<usize> {
    let now = app.clock.now();
    let targets = tx.claim_oidc_logouts(user, session.map(|s| s.0), now).await?;
    let mut told: Vec<Value> = Vec::new();
    for (client_id, sid) in targets {
        // A client deleted since, or one that registered no URI, is not told.
        let Some(client) = tx.oidc_client_in_tx(&client_id).await? else {
            continue;
        };
        let Some(uri) = &client.settings.backchannel_logout_uri else {
            continue;
        };
        let expires_at = now.plus(LOGOUT_TOKEN_LIFETIME);
        let token = app
            .oidc
            .keys
            .default_key()
            .sign(LOGOUT_TOKEN_TYP, &logout_claims(app, &client_id, user, sid))?;
        let draft = Draft {
            channel: Channel::BackchannelLogout,
            recipient: uri.clone(),
            subject: format!("back-channel logout for client {client_id}"),
            text_body: token,
            html_body: None,
            template: LOGOUT_TEMPLATE,
            expires_at: Some(expires_at),
        };
        app.courier.enqueue_in(&mut *tx, draft).await?;
        told.push(json!({ "client_id": client_id, "sid": sid }));
    }
    if !told.is_empty() {
        let record = AuditEvent::new(EventType::OidcBackchannelLogoutQueued, Actor::System, Outcome::Success)
            .user(user)
            .details(json!({ "notices": told }));
        app.audit().append(&mut *tx, &record).await?;
    }
    Ok(told.len())
}

/// How many timed-out sessions one look takes ([`announce_timed_out`]).
const TIMED_OUT_BATCH: u32 = 100;

/// Ends every session that has timed out and that a client redeemed a code
/// of without being told its end yet, each in a unit of work of its own
/// with its logout tokens ([`notify_in`]), as signing out does. Until then
/// the janitor's purge keeps such a session
/// ([`signet_core::store::SessionStore::purge_expired_sessions`]), so none
/// goes untold. A session that another node's janitor, or a sign-out,
/// ended first is skipped: its notices went with that end; so is one that a
/// request renewed since the look (it is live again). A session whose
/// unit fails is logged and left for the next pass; the others go on.
/// Returns how many notices were queued, and wakes the courier if any were.
pub async fn announce_timed_out(app: &App) -> Result<usize> {
    let now = app.clock.now();
    let mut queued = 0;
    let mut after = None;
    loop {
        let batch = app
            .store
            .timed_out_sessions_with_apps(now, after, TIMED_OUT_BATCH)
            .await?;
        let full = batch.len() >= TIMED_OUT_BATCH as usize;
        for (user, session) in batch {
            after = Some(session);
            match end_timed_out(app, user, session, now).await {
                Ok(n) => queued += n,
                Err(e) => tracing::warn!(
                    session = %session.0,
                    error = %e,
                    "ending a timed-out session with its back-channel logout failed; the next pass tries again"
                ),
            }
        }
        if !full {
            break;
        }
    }
    if queued > 0 {
        app.courier.wake();
    }
    Ok(queued)
}

/// One timed-out session's end, its notices and its `session.ended`
/// record (`reason: "timed_out"`), in one unit of work: ending it is a
/// change, whether or not any client registered a URI to be told. The
/// delete checks the timeout again, so a session renewed since the look
/// stays.
async fn end_timed_out(
    app: &App,
    user: UserId,
    session: SessionId,
    now: signet_core::clock::Timestamp,
) -> Result<usize> {
    let mut tx = app.store.begin().await?;
    if !tx.delete_timed_out_session(session, now).await? {
        tx.rollback().await?;
        return Ok(0);
    }
    let queued = notify_in(app, &mut *tx, user, Some(session)).await?;
    let record = AuditEvent::new(EventType::SessionEnded, Actor::System, Outcome::Success)
        .user(user)
        .details(json!({ "session_id": session.0, "reason": "timed_out" }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    Ok(queued)
}

/// A logout token's claims (Back-Channel Logout 1.0 §2.4): no `nonce`.
pub fn logout_claims(app: &App, client_id: &str, user: UserId, sid: Uuid) -> Value {
    let now = app.clock.now().as_millis() / 1000;
    let ttl = i64::try_from(LOGOUT_TOKEN_LIFETIME.as_secs()).unwrap_or(i64::MAX);
    json!({
        "iss": issuer(&app.settings),
        "aud": client_id,
        "iat": now,
        "exp": now.saturating_add(ttl),
        "jti": Uuid::new_v4().to_string(),
        "sub": user.to_string(),
        "sid": sid.to_string(),
        "events": { BACKCHANNEL_EVENT: {} },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_appended_to_the_registered_uri() {
        assert_eq!(
            with_state("https://rp.example.com/bye?x=1", Some("a b")).as_deref(),
            Some("https://rp.example.com/bye?x=1&state=a+b")
        );
        assert_eq!(
            with_state("https://rp.example.com/bye", None).as_deref(),
            Some("https://rp.example.com/bye")
        );
    }

    #[test]
    fn an_id_token_has_one_audience() {
        assert_eq!(audience(&json!({"aud": "app"})).as_deref(), Some("app"));
        assert_eq!(audience(&json!({"aud": ["app"]})).as_deref(), Some("app"));
        assert_eq!(audience(&json!({"aud": ["a", "b"]})), None);
        assert_eq!(audience(&json!({})), None);
    }
}
