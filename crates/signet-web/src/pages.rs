//! Server-rendered pages (askama): the invitation page, the `/login` shell
//! and `/account`. Small, accessible, no third-party assets: the only
//! script and stylesheet are served from `/static/` (CSP `'self'`).

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use signet_app::login::StepOutcome;
use signet_app::sessions::Current;
use signet_core::session::{Session, SessionMode, SessionScope};
use signet_core::Error;
use signet_core::ErrorCode;

use crate::error::{log_if_server_error, public_message, status_of};
use crate::extract::{client_origin, is_same_origin, Client, MaybeAuth};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/account") }))
        .route("/login", get(login))
        .route("/recover", get(recover))
        .route("/not-me/{token}", get(not_me).post(not_me_confirm))
        .route("/account", get(account))
        .route("/enroll", get(enroll))
        .route("/invite/{token}", get(invite).post(invite_accept))
        .route("/recover/{token}", get(recover_link).post(recover_link_accept))
        .route("/login/magic/{token}", get(magic).post(magic_confirm))
        .route("/static/signet.css", get(css))
        .route("/static/signet.js", get(js))
}

/// An error rendered as a page rather than JSON.
pub struct PageError(pub Error);

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        log_if_server_error(&self.0);
        let status = status_of(&self.0);
        let title = match status {
            StatusCode::GONE => "This link no longer works",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            s if s.is_server_error() => "Something went wrong",
            _ => "That didn't work",
        };
        let page = ErrorPage {
            title,
            message: public_message(&self.0),
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, public_message(&self.0)).into_response(),
        }
    }
}

pub type PageResult = Result<Response, PageError>;

pub fn render(t: &impl Template) -> PageResult {
    let html = t.render().map_err(Error::internal)?;
    Ok(Html(html).into_response())
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    /// The app the sign-in continues to, when an app asked for it.
    app_name: Option<&'a str>,
}

async fn login(State(state): State<AppState>, RawQuery(query): RawQuery) -> PageResult {
    // Signed in for an app (OpenID Connect): say which one, so the person
    // knows where the sign-in leads. An unknown or expired request shows
    // the plain page; the resume path explains.
    let return_to = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned());
    let app_name = match return_to.as_deref().and_then(signet_app::oidc::authorize::resume_id) {
        Some(id) => signet_app::oidc::authorize::asking_app(&state.app, id).await?,
        None => None,
    };
    render(&LoginPage {
        app_name: app_name.as_deref(),
    })
}

#[derive(Template)]
#[template(path = "recover.html")]
struct RecoverPage;

/// `/recover`: self-service recovery (`POST /api/v1/recovery`), rendered
/// from the flow's offers like a login; it ends on `/enroll`.
async fn recover() -> PageResult {
    render(&RecoverPage)
}

#[derive(Template)]
#[template(path = "not_me.html")]
struct NotMePage<'a> {
    email: &'a str,
    token: &'a str,
}

#[derive(Template)]
#[template(path = "not_me_done.html")]
struct NotMeDonePage<'a> {
    product: &'a str,
}

/// `GET`/`HEAD /not-me/{token}`: a security notice's "this wasn't me" link.
/// Shows what confirming does and changes nothing (mail scanners prefetch).
async fn not_me(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    let preview = signet_app::not_me::preview(&state.app, &token).await?;
    render(&NotMePage {
        email: &preview.email,
        token: &token,
    })
}

/// `POST /not-me/{token}`: the page's form. Locks the account and ends
/// every session, once; signs no one in. Same origin only: a cross-site
/// form must not lock someone's account.
async fn not_me_confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: axum::http::HeaderMap,
    Client(origin): Client,
) -> PageResult {
    if !is_same_origin(&headers, &state) {
        return Err(Error::forbidden(
            ErrorCode::CrossOriginRequest,
            "this form must be submitted from this site",
        )
        .into());
    }
    signet_app::not_me::confirm(&state.app, &token, &origin).await?;
    render(&NotMeDonePage {
        product: &state.app.settings.product_name,
    })
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    email: &'a str,
    session: &'a Session,
    credentials: Vec<CredentialRow>,
    sessions: Vec<Row>,
    /// The self-service ways back in, as a person reads them.
    ways_back: Vec<String>,
    helpdesk: bool,
    /// Apps with access to the account (OIDC consent or a live grant).
    apps: Vec<signet_app::oidc::consent::Authorized>,
}

/// One credential on `/account`, of any kind. A passkey's extras (its
/// authenticator's name, whether it is synced) show when the kind lists
/// them.
struct CredentialRow {
    id: String,
    name: String,
    /// What kind it is, for a person ("passkey", "totp").
    kind: String,
    /// A line under the name: a passkey's authenticator model.
    detail: String,
    /// (class, title, text) of a badge, for a passkey: synced or device-bound.
    badge: Option<(&'static str, &'static str, &'static str)>,
    /// Whether the kind has names of its own (a set of recovery codes has not).
    renamable: bool,
    created_at: String,
    created_human: String,
    last_used_at: Option<String>,
    last_used_human: String,
}

impl CredentialRow {
    fn new(c: &signet_core::method::CredentialInfo) -> Self {
        let flag = |k: &str| c.extra.get(k).and_then(serde_json::Value::as_bool);
        let badge = match (flag("synced"), flag("backup_eligible")) {
            (Some(true), _) => Some(("synced", "Backed up and available on your other devices", "Synced")),
            (Some(false), Some(true)) => Some(("", "Can be synced, but is not backed up right now", "Not backed up")),
            (Some(false), Some(false)) => Some(("bound", "Lives only on this authenticator", "Device-bound")),
            _ => None,
        };
        let count = |k: &str| c.extra.get(k).and_then(serde_json::Value::as_u64);
        let detail = match (
            c.extra.get("authenticator"),
            c.extra.get("phone"),
            count("remaining"),
            count("total"),
        ) {
            (Some(serde_json::Value::String(name)), ..) => name.clone(),
            (Some(serde_json::Value::Null), ..) => "Model not disclosed".to_owned(),
            // A verified phone, masked.
            (_, Some(serde_json::Value::String(phone)), ..) => format!("Texts to {phone}"),
            (_, _, Some(left), Some(total)) => format!("{left} of {total} codes left"),
            _ => String::new(),
        };
        Self {
            id: c.id.to_string(),
            name: c.name.clone(),
            kind: c.kind.as_str().replace('_', " "),
            detail,
            badge,
            renamable: c.kind != signet_core::method::MethodName::RecoveryCode,
            created_at: c.created_at.to_rfc3339(),
            created_human: c.created_at.to_human(),
            last_used_at: c.last_used_at.map(|t| t.to_rfc3339()),
            last_used_human: c.last_used_at.map(|t| t.to_human()).unwrap_or_default(),
        }
    }
}

struct Row {
    id: String,
    device: String,
    ip: String,
    created_at: String,
    created_human: String,
    last_seen_at: String,
    last_seen_human: String,
    aal: &'static str,
    current: bool,
}

async fn account(State(state): State<AppState>, MaybeAuth(auth): MaybeAuth) -> PageResult {
    let Some(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    let Current { session, user } = &auth.current;
    // A session that may only enroll has its own page.
    if session.scope != SessionScope::Full {
        return Ok(Redirect::to("/enroll").into_response());
    }
    let credentials = signet_app::credentials::list(&state.app, user).await?;
    let sessions = signet_app::sessions::list_own(&state.app, user.id).await?;
    let rows = sessions
        .iter()
        .map(|s| Row {
            id: s.id.0.to_string(),
            device: s.device.clone(),
            ip: s.ip.clone().unwrap_or_else(|| "unknown".into()),
            created_at: s.created_at.to_rfc3339(),
            created_human: s.created_at.to_human(),
            last_seen_at: s.last_seen_at.to_rfc3339(),
            last_seen_human: s.last_seen_at.to_human(),
            aal: s.aal.as_str(),
            current: s.id == session.id,
        })
        .collect();
    render(&AccountPage {
        email: user.email.as_str(),
        session,
        ways_back: signet_app::recovery::ways_back(&state.app, user, &credentials),
        helpdesk: signet_app::recovery::helpdesk_listed(&state.app, user),
        credentials: credentials.iter().map(CredentialRow::new).collect(),
        sessions: rows,
        apps: signet_app::oidc::consent::authorized_apps(&state.app, user.id).await?,
    })
}

#[derive(Template)]
#[template(path = "enroll.html")]
struct EnrollPage<'a> {
    email: &'a str,
    product: &'a str,
}

/// `/enroll`: where an invitation's enrollment session creates the
/// account's first passkey. Full sessions manage passkeys on `/account`.
async fn enroll(State(state): State<AppState>, MaybeAuth(auth): MaybeAuth) -> PageResult {
    let Some(auth) = auth else {
        return Ok(Redirect::to("/login").into_response());
    };
    if auth.current.session.scope == SessionScope::Full {
        return Ok(Redirect::to("/account").into_response());
    }
    render(&EnrollPage {
        email: auth.current.user.email.as_str(),
        product: &state.app.settings.product_name,
    })
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage<'a> {
    email: &'a str,
    expires_at: String,
    expires_human: String,
    token: &'a str,
}

/// `GET /invite/{token}`: shows the invitation; changes nothing, so mail
/// scanners that prefetch the link do not burn it.
async fn invite(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    let preview = signet_app::invitations::preview(&state.app, &token).await?;
    render(&InvitePage {
        email: &preview.email,
        expires_at: preview.expires_at.to_rfc3339(),
        expires_human: preview.expires_at.to_human(),
        token: &token,
    })
}

/// A page form that signs this browser in (invitation, magic link).
///
/// Login CSRF: such a form carries no session cookie yet (and perhaps no
/// cookie at all), so the global cookie guard may not apply; a cross-site
/// form must never sign this browser in, so the `Origin` is checked here.
struct SignInForm {
    origin: signet_app::Origin,
    /// The session the browser already had: rotated out on success.
    replaces: Option<signet_core::session::SessionId>,
    /// The browser's flow-binding cookie, hashed.
    binding: Option<signet_core::secret::TokenHash>,
}

impl axum::extract::FromRequestParts<AppState> for SignInForm {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, PageError> {
        if !is_same_origin(&parts.headers, state) {
            return Err(Error::forbidden(
                ErrorCode::CrossOriginRequest,
                "this form must be submitted from this site",
            )
            .into());
        }
        let MaybeAuth(prior) = MaybeAuth::from_request_parts(parts, state)
            .await
            .map_err(|e| PageError(e.0))?;
        Ok(Self {
            origin: client_origin(parts, state),
            replaces: prior.as_ref().map(|a| a.current.session.id),
            binding: crate::routes::login::binding(state, &parts.headers),
        })
    }
}

/// A redirect to `to` that sets the new session's cookie.
fn signed_in(state: &AppState, issued: &signet_app::sessions::Issued, to: &str) -> Response {
    let mut resp = Redirect::to(to).into_response();
    if let Some(v) = state.cookies.for_session(issued) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `POST /invite/{token}`: the page's form. Redeems in browser mode, sets
/// the (enrollment-only) session cookie and continues to `/enroll`.
async fn invite_accept(State(state): State<AppState>, Path(token): Path<String>, form: SignInForm) -> PageResult {
    let issued =
        signet_app::invitations::redeem(&state.app, &token, SessionMode::Browser, &form.origin, form.replaces).await?;
    Ok(signed_in(&state, &issued, "/enroll"))
}

#[derive(Template)]
#[template(path = "recover_link.html")]
struct RecoverLinkPage<'a> {
    email: &'a str,
    expires_at: String,
    expires_human: String,
    token: &'a str,
}

/// `GET /recover/{token}`: a help-desk recovery link's page; changes
/// nothing (mail scanners prefetch links).
async fn recover_link(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    let preview = signet_app::recovery_links::preview(&state.app, &token).await?;
    render(&RecoverLinkPage {
        email: &preview.email,
        expires_at: preview.expires_at.to_rfc3339(),
        expires_human: preview.expires_at.to_human(),
        token: &token,
    })
}

/// `POST /recover/{token}`: the page's form. Redeems the link in browser
/// mode (the recovery completes: every session ends, every channel is
/// told) and continues to `/enroll` with the recovery session.
async fn recover_link_accept(State(state): State<AppState>, Path(token): Path<String>, form: SignInForm) -> PageResult {
    let issued =
        signet_app::recovery_links::redeem(&state.app, &token, SessionMode::Browser, &form.origin, form.replaces)
            .await?;
    Ok(signed_in(&state, &issued, "/enroll"))
}

#[derive(Template)]
#[template(path = "magic.html")]
struct MagicPage<'a> {
    token: &'a str,
    expires_at: String,
    expires_human: String,
}

/// `GET`/`HEAD /login/magic/{token}`: a "Continue signing in" page. It only
/// reads, so a mail scanner that fetches the link changes nothing; the
/// person's click on the page's button is what signs in.
async fn magic(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    let preview = signet_app::methods::magic_link::preview(&state.app, &token).await?;
    render(&MagicPage {
        token: &token,
        expires_at: preview.expires_at.to_rfc3339(),
        expires_human: preview.expires_at.to_human(),
    })
}

#[derive(Template)]
#[template(path = "magic_elsewhere.html")]
struct MagicElsewherePage;

/// `POST /login/magic/{token}`: the page's button. Completes the flow
/// through the flow engine in the browser that started it; any other
/// browser gets a page saying where to finish instead.
async fn magic_confirm(State(state): State<AppState>, Path(token): Path<String>, form: SignInForm) -> PageResult {
    let app = &state.app;
    let outcome =
        signet_app::methods::magic_link::confirm(app, &token, form.binding.as_ref(), &form.origin, form.replaces).await;
    match outcome {
        Ok(StepOutcome::Complete {
            issued, continuation, ..
        }) => {
            let to = crate::routes::oidc::continuation_target(&continuation);
            Ok(signed_in(&state, &issued, to.as_deref().unwrap_or("/account")))
        }
        Ok(StepOutcome::Continue { handle, methods, .. }) => {
            // The next step's methods, for the page script to offer on this
            // flow. Serialised JSON inside <script type="application/json">
            // is data, not code; `<` is escaped so nothing in it can close
            // the element.
            let next = serde_json::json!({ "flow_id": handle, "methods": methods })
                .to_string()
                .replace('<', "\\u003c");
            render(&MagicContinuePage { next })
        }
        Err(e) if e.code() == ErrorCode::OtherDevice => {
            let mut resp = render(&MagicElsewherePage)?;
            *resp.status_mut() = StatusCode::FORBIDDEN;
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "magic_continue.html")]
struct MagicContinuePage {
    /// `{"flow_id", "methods"}` as JSON (see `magic_confirm`).
    next: String,
}

async fn css() -> Response {
    static_asset("text/css; charset=utf-8", include_str!("../static/signet.css"))
}

async fn js() -> Response {
    static_asset("text/javascript; charset=utf-8", include_str!("../static/signet.js"))
}

fn static_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
