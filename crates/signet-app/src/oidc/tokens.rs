//! The token endpoint (RFC 6749 §3.2) and what it issues.
//!
//! Built: the `client_credentials` grant (RFC 6749 §4.4), for a
//! confidential client acting on its own behalf. Its access token is a JWT
//! in the RFC 9068 profile (`typ: at+jwt`; `iss`, `exp`, `aud`, `sub`,
//! `client_id`, `iat`, `jti`, `scope`), signed with the provider's default
//! key, so a resource server verifies it against the JWK Set without
//! calling Signet. `sub` is the client id (RFC 9068 §2.2: no resource owner
//! is involved), `aud` the client id too (no `resource` indicator is
//! supported yet). Lifetimes are the client's `access_token_ttl_secs`.
//!
//! Every grant and every refusal is recorded in the audit log. A grant's
//! writes (a code redeemed, a refresh token rotated) and its record are one
//! unit of work that commits before the answer is sent; tokens are signed
//! after that commit, never while the unit holds SQLite's single writer
//! (ADR 0032).
//!
//! Also built: the `authorization_code` grant (RFC 6749 §4.1.3, OpenID
//! Connect Core §3.1.3), which redeems a code (see [`super::codes`]) and
//! answers an ES256 ID token beside the access token.
//!
//! And the `refresh_token` grant (RFC 6749 §6), in [`super::refresh`].

use serde::Serialize;
use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::oidc_client::{GrantType, OidcClient};
use signet_core::secret::{PlainToken, TokenKind};
use signet_core::store::{Refusal, StoreError};
use signet_core::unit_of_work::Tx;
use signet_core::user::User;
use uuid::Uuid;

use super::clients::{self, ClientAuth};
use super::codes::CodeGrant;
use super::discovery::issuer;
use super::error::{OAuthCode, OAuthError};
use super::refresh::Rotation;
use crate::App;

/// The form fields the token endpoint reads (RFC 6749 §4.4.2).
#[derive(Clone, Debug, Default)]
pub struct TokenForm {
    pub grant_type: Option<String>,
    pub scope: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// A refusal at the token endpoint, with the unit of work whose writes
/// must stand with its audit record (a reused code's or refresh token's
/// revoked family, a code burnt by a failed check), if there is one: the
/// record then joins that unit, and both commit together.
pub struct Refused {
    error: OAuthError,
    unit: Option<Tx>,
}

impl Refused {
    /// A refusal whose `unit` commits with its audit record.
    pub fn with_unit(error: OAuthError, unit: Tx) -> Self {
        Refused {
            error,
            unit: Some(unit),
        }
    }
}

impl From<OAuthError> for Refused {
    fn from(error: OAuthError) -> Self {
        Refused { error, unit: None }
    }
}

impl From<signet_core::Error> for Refused {
    fn from(e: signet_core::Error) -> Self {
        OAuthError::from(e).into()
    }
}

impl From<signet_core::store::StoreError> for Refused {
    fn from(e: signet_core::store::StoreError) -> Self {
        OAuthError::from(e).into()
    }
}

/// A grant decided, not yet answered: its unit of work (still open, for
/// the audit record to join) and what to sign once that unit commits.
struct Settled {
    client: OidcClient,
    grant: GrantType,
    unit: Tx,
    scope: Option<String>,
    tokens: Tokens,
}

enum Tokens {
    /// `client_credentials`: signed before the unit opened (nothing in it
    /// depends on storage).
    Signed(TokenResponse),
    /// A user's grant (a code or a refresh token): signed after the unit
    /// commits, so the single writer is never held for cryptography.
    User(Box<UserTokens>),
}

/// What a user's grant issues.
struct UserTokens {
    grant: CodeGrant,
    /// The id of the code the grant descends from (`grant_id` claim).
    grant_id: Uuid,
    /// Given for the code grant: an ID token is issued about this user.
    user: Option<User>,
    refresh: Option<PlainToken>,
}

/// Runs one token request: client authentication, then the grant. `auth`
/// is how the client presented itself, or why that could not be told (two
/// methods at once, a malformed Basic header): that refusal is audited
/// like any other.
///
/// Each outcome is one unit of work: the grant's writes (a code redeemed, a
/// refresh token rotated) and its audit record commit together before the
/// answer is sent, and tokens are signed only after.
///
/// A refresh token is first rotated the way that holds no writer
/// ([`Rotation::Read`]); if a concurrent use refuses that rotation when it
/// commits, the request is run again the locked way, which answers it as
/// the loser of the race it is (a replay: the family is revoked).
pub async fn exchange(
    app: &App,
    origin: &Origin,
    auth: Result<ClientAuth, OAuthError>,
    form: &TokenForm,
) -> Result<TokenResponse, OAuthError> {
    let auth = match auth {
        Ok(auth) => auth,
        // No client named itself in a way that could be read.
        Err(e) => {
            return settle(app, origin, None, form, Err(e.into()))
                .await
                .unwrap_or_else(Raced::answer)
        }
    };
    let claimed = Some(auth.client_id());
    let first = grant(app, origin, &auth, form).await;
    match settle(app, origin, claimed, form, first).await {
        Ok(answer) => answer,
        // The same client, already authenticated, tries again.
        Err(Raced(client)) => {
            let again = refresh_grant(app, origin, client, form, Rotation::Locked).await;
            settle(app, origin, claimed, form, again)
                .await
                .unwrap_or_else(Raced::answer)
        }
    }
}

/// A refresh rotated the [`Rotation::Read`] way was refused at its commit:
/// a concurrent use of the token won, or its grant ended since the read.
/// Nothing of the unit was written. Carries the authenticated client.
struct Raced(OidcClient);

impl Raced {
    /// The answer where no second try follows (the locked way never races,
    /// so none is given in practice).
    fn answer(self) -> Result<TokenResponse, OAuthError> {
        Err(OAuthError::new(
            OAuthCode::InvalidGrant,
            "the refresh token was used at the same moment elsewhere",
        ))
    }
}

/// Commits a grant's unit with its audit record and answers it, or records
/// and answers its refusal.
async fn settle(
    app: &App,
    origin: &Origin,
    claimed: Option<&str>,
    form: &TokenForm,
    result: Result<Settled, Refused>,
) -> Result<Result<TokenResponse, OAuthError>, Raced> {
    match result {
        Ok(settled) => issue(app, origin, settled).await,
        Err(refused) => Ok(refuse(app, origin, claimed, form, refused).await),
    }
}

/// Commits a grant's unit with its record, then signs what it issues.
async fn issue(app: &App, origin: &Origin, settled: Settled) -> Result<Result<TokenResponse, OAuthError>, Raced> {
    let mut details = json!({
        "client_id": settled.client.client_id,
        "grant_type": settled.grant.as_str(),
        "scope": settled.scope,
    });
    let mut record =
        AuditEvent::new(EventType::OidcTokenIssued, Actor::Anonymous, Outcome::Success).from_origin(origin);
    // A user's grant names whose sign-in it rests on: for a code issued at
    // once to an SSO session this is the only record of the authorization
    // (ADR 0038).
    if let (Tokens::User(t), Some(obj)) = (&settled.tokens, details.as_object_mut()) {
        obj.insert("user_id".into(), json!(t.grant.user_id));
        obj.insert("session_id".into(), json!(t.grant.session_id));
        obj.insert("acr".into(), json!(t.grant.acr));
        obj.insert("grant_id".into(), json!(t.grant_id));
        record = record.user(signet_core::user::UserId(t.grant.user_id));
    }
    let record = record.details(details);
    let mut tx = settled.unit;
    if let Err(e) = app.audit().append(&mut *tx, &record).await {
        return Ok(Err(e.into()));
    }
    match tx.commit().await {
        Ok(()) => {}
        Err(StoreError::Refused(Refusal::RefreshRaced)) if settled.grant == GrantType::RefreshToken => {
            return Err(Raced(settled.client))
        }
        Err(e) => return Ok(Err(e.into())),
    }
    Ok(match settled.tokens {
        Tokens::Signed(response) => Ok(response),
        Tokens::User(tokens) => sign_user_tokens(app, &settled.client, *tokens, settled.scope).await,
    })
}

/// Records a refusal the client can read (in the refused grant's unit, if
/// it left one open) and answers it.
async fn refuse(
    app: &App,
    origin: &Origin,
    claimed: Option<&str>,
    form: &TokenForm,
    refused: Refused,
) -> Result<TokenResponse, OAuthError> {
    match refused {
        Refused {
            error: OAuthError::Refused { code, description },
            unit,
        } => {
            let record = AuditEvent::new(EventType::OidcTokenRefused, Actor::Anonymous, Outcome::Denied)
                .from_origin(origin)
                .details(json!({
                    "client_id": claimed,
                    "grant_type": form.grant_type,
                    "error": code.as_str(),
                }));
            let mut tx = match unit {
                Some(tx) => tx,
                None => app.store.begin().await?,
            };
            app.audit().append(&mut *tx, &record).await?;
            tx.commit().await?;
            Err(OAuthError::Refused { code, description })
        }
        // The unit, if any, is dropped: rolled back.
        Refused { error, .. } => Err(error),
    }
}

async fn grant(app: &App, origin: &Origin, auth: &ClientAuth, form: &TokenForm) -> Result<Settled, Refused> {
    let grant_type = form
        .grant_type
        .as_deref()
        .ok_or_else(|| OAuthError::new(OAuthCode::InvalidRequest, "grant_type is required"))?;
    let grant = match GrantType::parse(grant_type) {
        Some(GrantType::ClientCredentials) => GrantType::ClientCredentials,
        Some(GrantType::AuthorizationCode) => GrantType::AuthorizationCode,
        Some(GrantType::RefreshToken) => GrantType::RefreshToken,
        _ => return Err(OAuthError::new(OAuthCode::UnsupportedGrantType, "this grant type is not supported").into()),
    };
    let client = clients::authenticate(app, auth).await?;
    let unauthorized = || OAuthError::new(OAuthCode::UnauthorizedClient, "this client may not use this grant type");
    match grant {
        GrantType::RefreshToken => {
            if !client.allows_grant(grant) {
                return Err(unauthorized().into());
            }
            refresh_grant(app, origin, client, form, Rotation::Read).await
        }
        GrantType::AuthorizationCode => {
            if !client.allows_grant(grant) {
                return Err(unauthorized().into());
            }
            authorization_code(app, origin, client, form).await
        }
        _ => {
            if !client.allows_grant(grant) || client.is_public() {
                return Err(unauthorized().into());
            }
            let scope = granted_scope(&client, form.scope.as_deref())?;
            let response = client_credentials(app, &client, scope)?;
            let unit = app.store.begin().await?;
            Ok(Settled {
                scope: response.scope.clone(),
                tokens: Tokens::Signed(response),
                client,
                grant,
                unit,
            })
        }
    }
}

/// The `refresh_token` grant for an authenticated client allowed it.
async fn refresh_grant(
    app: &App,
    origin: &Origin,
    client: OidcClient,
    form: &TokenForm,
    rotation: Rotation,
) -> Result<Settled, Refused> {
    let (unit, rotated) = super::refresh::refresh(
        app,
        origin,
        &client,
        form.refresh_token.as_deref(),
        form.scope.as_deref(),
        rotation,
    )
    .await?;
    Ok(Settled {
        scope: Some(rotated.grant.scope.join(" ")),
        tokens: Tokens::User(Box::new(UserTokens {
            grant: rotated.grant,
            grant_id: rotated.family,
            user: None,
            refresh: Some(rotated.next),
        })),
        client,
        grant: GrantType::RefreshToken,
        unit,
    })
}

/// The scopes granted: the requested ones, each allowed to the client.
/// `openid` names a user's identity, which this grant has none of, so it is
/// refused here (RFC 6749 §5.2 `invalid_scope`).
fn granted_scope(client: &OidcClient, requested: Option<&str>) -> Result<Option<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(None);
    };
    let mut granted: Vec<&str> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if s == "openid" || !client.settings.scopes.iter().any(|a| a == s) {
            return Err(OAuthError::new(
                OAuthCode::InvalidScope,
                format!("scope {s:?} is not allowed for this client and grant"),
            ));
        }
        if !granted.contains(&s) {
            granted.push(s);
        }
    }
    Ok((!granted.is_empty()).then(|| granted.join(" ")))
}

fn client_credentials(app: &App, client: &OidcClient, scope: Option<String>) -> Result<TokenResponse, OAuthError> {
    let now = app.clock.now().as_millis() / 1000;
    let ttl = client.settings.access_token_ttl_secs;
    let mut claims = json!({
        "iss": issuer(&app.settings),
        "sub": client.client_id,
        "aud": client.client_id,
        "client_id": client.client_id,
        "iat": now,
        "exp": now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
        "jti": Uuid::new_v4().to_string(),
    });
    if let (Some(scope), Some(obj)) = (&scope, claims.as_object_mut()) {
        obj.insert("scope".into(), scope.clone().into());
    }
    let access_token = app.oidc.keys.default_key().sign("at+jwt", &claims)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope,
        id_token: None,
        refresh_token: None,
    })
}

/// The `authorization_code` grant: redeem the code and, when the grant
/// includes `offline_access`, store the family's first refresh token, in
/// one unit of work handed back open. The tokens are signed after it
/// commits ([`sign_user_tokens`]).
async fn authorization_code(
    app: &App,
    origin: &Origin,
    client: OidcClient,
    form: &TokenForm,
) -> Result<Settled, Refused> {
    // Made before the unit opens (random bits and a hash), used only if
    // the grant turns out to include `offline_access`.
    let refresh = client
        .allows_grant(GrantType::RefreshToken)
        .then(|| PlainToken::generate(TokenKind::RefreshToken));
    let (mut unit, redeemed) = super::codes::redeem(
        app,
        origin,
        &client,
        form.code.as_deref(),
        form.redirect_uri.as_deref(),
        form.code_verifier.as_deref(),
    )
    .await?;
    let refresh = match refresh {
        Some(token) if super::refresh::offered(&client, &redeemed.grant) => {
            let body = serde_json::to_string(&redeemed.grant)
                .map_err(|e| signet_core::Error::Internal(format!("refresh grant: {e}").into()))?;
            super::refresh::issue_in(
                app,
                &mut *unit,
                &client,
                &token,
                redeemed.grant.user_id,
                &body,
                redeemed.id,
            )
            .await?;
            Some(token)
        }
        _ => None,
    };
    Ok(Settled {
        client,
        grant: GrantType::AuthorizationCode,
        unit,
        scope: Some(redeemed.grant.scope.join(" ")),
        tokens: Tokens::User(Box::new(UserTokens {
            grant: redeemed.grant,
            grant_id: redeemed.id,
            user: Some(redeemed.user),
            refresh,
        })),
    })
}

/// Signs the access token (and, for the code grant, the ID token) of a
/// user's grant whose unit committed. RS256 (a modular exponentiation of
/// about a millisecond) runs on the blocking pool, off the reactor; ES256
/// takes tens of microseconds and runs in place.
/// `scope` is the grant's scopes joined (what the audit record named).
async fn sign_user_tokens(
    app: &App,
    client: &OidcClient,
    tokens: UserTokens,
    scope: Option<String>,
) -> Result<TokenResponse, OAuthError> {
    let UserTokens {
        grant,
        grant_id,
        user,
        refresh,
    } = tokens;
    let keys = &app.oidc.keys;
    let access_token = keys.default_key().sign(
        super::introspection::ACCESS_TOKEN_TYP,
        &super::claims::access_token(app, client, &grant, grant_id, scope.as_deref().unwrap_or_default()),
    )?;
    let id_token = match user {
        Some(user) => {
            // The client's registered ID token algorithm (RS256 for relying
            // parties that verify nothing else), else the default ES256.
            let key = client
                .settings
                .id_token_signed_response_alg
                .as_deref()
                .and_then(super::keys::Alg::parse)
                .and_then(|alg| keys.for_alg(alg))
                .unwrap_or_else(|| keys.default_key());
            let claims = super::claims::id_token(app, client, &grant, &user);
            Some(super::keys::sign_off_reactor(key, "JWT", claims).await?)
        }
        None => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: client.settings.access_token_ttl_secs,
        scope,
        id_token,
        refresh_token: refresh.map(|t| t.expose_secret().to_owned()),
    })
}
