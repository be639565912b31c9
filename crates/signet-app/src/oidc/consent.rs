//! Consent for third-party clients (OpenID Connect Core §3.1.2.4, RFC 6749
//! §4.1.1 "the authorization server ... obtains an authorization
//! decision").
//!
//! - A **first-party** client (`first_party = true`, the organisation's own
//!   apps) never shows the consent page: the organisation consented for
//!   its users when it registered the app.
//! - A **third-party** client gets, after sign-in, a page that lists the
//!   requested scopes in plain words. Approval is remembered per user and
//!   client as the set of scopes approved ([`OidcConsent`]); a later
//!   request for the same or fewer scopes is not asked again, one for a new
//!   scope is. `prompt=consent` asks again anyway (Core §3.1.2.1), and
//!   `prompt=none` when consent would be needed is `consent_required`
//!   (Core §3.1.2.6).
//! - Denial sends `access_denied` to the client (RFC 6749 §4.1.2.1).
//! - The decision is a same-origin form post by the signed-in browser, about
//!   a request stored server-side under a random id: another site can
//!   neither post it (its `Origin` differs) nor name a request it did not
//!   start.
//! - The account page lists the apps a user approved or that hold a live
//!   refresh token, and revoking one forgets the approval and revokes the
//!   user's codes, refresh tokens and access tokens of that client, in one
//!   unit with its audit record.

use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::oidc_client::{OidcClient, OidcConsent};
use signet_core::user::UserId;
use signet_core::{Error, ErrorCode, Result};
use uuid::Uuid;

use super::authorize::{self, Answer, AuthorizationRequest};
use crate::sessions::Current;
use crate::App;

/// Whether the request needs the user's approval before a code is issued.
pub async fn required(app: &App, client: &OidcClient, user: UserId, request: &AuthorizationRequest) -> Result<bool> {
    if client.settings.first_party {
        return Ok(false);
    }
    if request.prompt_consent {
        return Ok(true);
    }
    let given = app.store.oidc_consent(user, &client.client_id).await?;
    Ok(!given.is_some_and(|c| c.covers(&request.scope)))
}

/// A scope as a person reads it.
pub fn describe(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are: your account's identifier at this organisation".into(),
        "email" => "See your email address".into(),
        "profile" => "See your name".into(),
        "offline_access" => "Keep access while you are not using it (until you revoke it here)".into(),
        other => format!("Use the permission \u{201c}{other}\u{201d}"),
    }
}

/// What the consent page shows.
#[derive(Debug)]
pub struct Pending {
    pub client_name: String,
    pub client_id: String,
    /// Where the app lives (the host of the redirect URI), so the user can
    /// tell which app asks.
    pub redirect_host: String,
    /// The registered redirect URI the decision sends the browser to (the
    /// page's form may lead there: its CSP `form-action` must allow it).
    pub redirect_uri: String,
    pub scopes: Vec<String>,
}

/// The pending request `id` as the consent page shows it, or an error page
/// (expired, or the client is gone).
pub async fn pending(app: &App, id: Uuid) -> Result<std::result::Result<Pending, Answer>> {
    let (request, client) = match authorize::load_stored(app, id).await? {
        Ok(found) => found,
        Err(answer) => return Ok(Err(answer)),
    };
    let redirect_host = url::Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| request.redirect_uri.clone());
    Ok(Ok(Pending {
        client_name: client.name,
        client_id: client.client_id,
        redirect_host,
        redirect_uri: request.redirect_uri.clone(),
        scopes: request.scope.iter().map(|s| describe(s)).collect(),
    }))
}

/// The user's decision on the pending request `id`. Approval is stored
/// (the union with what was approved before) and the request resumes, so a
/// code is issued if the session still meets its demand; denial answers
/// `access_denied` to the client.
pub async fn decide(app: &App, origin: &Origin, id: Uuid, current: &Current, approve: bool) -> Result<Answer> {
    let (request, client) = match authorize::load_stored(app, id).await? {
        Ok(found) => found,
        Err(answer) => return Ok(answer),
    };
    let user = current.user.id;
    if !approve {
        let record = AuditEvent::new(EventType::OidcConsentDenied, Actor::User(user), Outcome::Denied)
            .from_origin(origin)
            .details(json!({ "client_id": client.client_id, "scope": request.scope.join(" ") }));
        let mut tx = app.store.begin().await?;
        if !tx.take_oidc_request(id).await? {
            return Ok(Answer::ErrorPage(
                "This sign-in request was answered already. Go back to the app and start again.".into(),
            ));
        }
        app.audit().append(&mut *tx, &record).await?;
        tx.commit().await?;
        return Ok(authorize::denied(app, &request, "the user did not allow this app"));
    }
    let consent = OidcConsent {
        client_id: client.client_id.clone(),
        scopes: request.scope.clone(),
        granted_at: app.clock.now(),
    };
    let record = AuditEvent::new(EventType::OidcConsentGranted, Actor::User(user), Outcome::Success)
        .from_origin(origin)
        .details(json!({ "client_id": client.client_id, "scope": request.scope.join(" ") }));
    let mut tx = app.store.begin().await?;
    tx.put_oidc_consent(user, &consent).await?;
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    authorize::resume_consented(app, origin, &client, request, current, id).await
}

/// An app with access to the user's account.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Authorized {
    pub client_id: String,
    pub name: String,
    /// What the user approved (empty for a first-party app).
    pub scopes: Vec<String>,
    #[serde(with = "signet_core::clock::rfc3339::option")]
    pub approved_at: Option<signet_core::clock::Timestamp>,
    /// Whether it holds a live refresh token (it can act while the user is away).
    pub offline_access: bool,
}

/// The apps the user approved or that hold a live grant, by name. Three
/// reads, whatever the number of apps.
pub async fn authorized_apps(app: &App, user: UserId) -> Result<Vec<Authorized>> {
    let now = app.clock.now();
    let consents = app.store.list_oidc_consents(user).await?;
    let holding = app.store.oidc_clients_with_grants(user, now).await?;
    let clients = app.store.oidc_clients_of(user, now).await?;
    let mut out: Vec<Authorized> = clients
        .into_iter()
        .map(|client| {
            let consent = consents.iter().find(|c| c.client_id == client.client_id);
            Authorized {
                scopes: consent.map(|c| c.scopes.clone()).unwrap_or_default(),
                approved_at: consent.map(|c| c.granted_at),
                offline_access: holding.contains(&client.client_id),
                client_id: client.client_id,
                name: client.name,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.client_id.cmp(&b.client_id)));
    Ok(out)
}

/// Revokes an app's access to the user's account: forgets the approval and
/// revokes the user's codes and refresh tokens of that client (and the
/// access tokens issued from them). `oidc_client_not_found` when the app
/// had no access.
pub async fn revoke(app: &App, origin: &Origin, user: UserId, client_id: &str) -> Result<()> {
    let now = app.clock.now();
    let mut tx = app.store.begin().await?;
    let forgot = tx.delete_oidc_consent(user, client_id).await?;
    let revoked = tx.revoke_oidc_client_grants(client_id, Some(user), now).await?;
    if !forgot && revoked == 0 {
        tx.rollback().await?;
        return Err(Error::not_found(
            ErrorCode::OidcClientNotFound,
            "this app has no access to your account",
        ));
    }
    let record = AuditEvent::new(EventType::OidcConsentRevoked, Actor::User(user), Outcome::Success)
        .from_origin(origin)
        .details(json!({ "client_id": client_id, "grants_revoked": revoked }));
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_reads_as_plain_words() {
        assert!(describe("email").contains("email address"));
        assert!(describe("offline_access").contains("while you are not using it"));
        assert!(describe("reports:read").contains("reports:read"));
    }

    #[test]
    fn consent_covers_the_same_or_fewer_scopes_only() {
        let c = OidcConsent {
            client_id: "app".into(),
            scopes: vec!["openid".into(), "email".into()],
            granted_at: signet_core::clock::Timestamp::from_millis(0),
        };
        assert!(c.covers(&["openid".into()]));
        assert!(c.covers(&["openid".into(), "email".into()]));
        assert!(!c.covers(&["openid".into(), "profile".into()]));
    }
}
