//! Token revocation (RFC 7009): a client tells Signet it no longer needs a
//! token, so that it stops working.
//!
//! - The client authenticates as at the token endpoint (RFC 7009 §2.1:
//!   `client_secret_basic`, `client_secret_post`, or a public client's
//!   `client_id`); a failure is `invalid_client`.
//! - A **refresh token** revokes its whole family: every refresh token
//!   descended from the same authorization code, the code itself, and so
//!   every access token issued from them (§2.1: "If the particular token is
//!   a refresh token ... the authorization server SHOULD also invalidate
//!   all access tokens based on the same authorization grant").
//! - An **access token** (an RFC 9068 JWT, ADR 0021) cannot be revoked
//!   alone, since it is not stored; it is revoked through its `grant_id`,
//!   which revokes the grant it came from, refresh tokens included (§2.1
//!   allows this: "MAY revoke the respective refresh token as well").
//!   From then on UserInfo and introspection refuse it. A resource server
//!   that only checks signatures accepts it until it expires, which is why
//!   access tokens are short. A `client_credentials` token has no grant
//!   behind it and is `unsupported_token_type` (§2.2.1).
//! - A token Signet does not know, already invalid, expired, or malformed
//!   answers 200 like a revoked one (§2.2: "invalid tokens do not cause an
//!   error response"), so the endpoint tells nothing about tokens.
//! - A token of **another client** is not revoked (§2.1: the server
//!   "verifies whether the token was issued to the client making the
//!   revocation request"), but the answer is still 200, so the endpoint is
//!   neither an oracle nor a way to log other clients' users out; the
//!   attempt is audited as denied.
//!
//! `token_type_hint` is read only as a hint: Signet tells the two kinds
//! apart by their form, so a wrong hint changes nothing (§2.1).

use serde_json::{json, Value};
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::oidc_client::OidcClient;
use signet_core::secret::{PlainToken, TokenKind};
use uuid::Uuid;

use super::clients::{self, ClientAuth};
use super::discovery::issuer;
use super::error::{OAuthCode, OAuthError};
use super::introspection::ACCESS_TOKEN_TYP;
use crate::App;

/// What a presented token turned out to be.
enum Target {
    /// Not Signet's, malformed, expired, or unknown: nothing to do.
    Nothing,
    /// The grant (code id, the family id of its refresh tokens) and the
    /// client it was issued to.
    Grant {
        family: Uuid,
        owner: String,
        kind: &'static str,
    },
}

/// Revokes `token` for the client `auth`. `Ok(())` is RFC 7009's 200. A
/// refusal (a client that does not authenticate, no token, a token type
/// with no grant) is recorded as denied, as at the token endpoint, so that
/// guessing client secrets here leaves a trace.
pub async fn revoke(app: &App, origin: &Origin, auth: &ClientAuth, token: Option<&str>) -> Result<(), OAuthError> {
    match decide(app, origin, auth, token).await {
        Err(OAuthError::Refused { code, description }) => {
            let record = AuditEvent::new(EventType::OidcTokenRevoked, Actor::Anonymous, Outcome::Denied)
                .from_origin(origin)
                .details(json!({ "client_id": auth.client_id(), "error": code.as_str() }));
            let mut tx = app.store.begin().await?;
            app.audit().append(&mut *tx, &record).await?;
            tx.commit().await?;
            Err(OAuthError::Refused { code, description })
        }
        other => other,
    }
}

async fn decide(app: &App, origin: &Origin, auth: &ClientAuth, token: Option<&str>) -> Result<(), OAuthError> {
    let client = clients::authenticate(app, auth).await?;
    let token = token.ok_or_else(|| OAuthError::new(OAuthCode::InvalidRequest, "token is required"))?;
    let target = match PlainToken::parse(TokenKind::RefreshToken, token) {
        Some(refresh) => {
            let mut tx = app.store.begin().await?;
            let owner = tx.oidc_refresh_owner(&refresh.hash()).await?;
            tx.rollback().await?;
            match owner {
                Some((family, owner)) => Target::Grant {
                    family,
                    owner,
                    kind: "refresh_token",
                },
                None => Target::Nothing,
            }
        }
        None => access_token_grant(app, token)?,
    };
    let Target::Grant { family, owner, kind } = target else {
        return Ok(());
    };
    let now = app.clock.now();
    let mut tx = app.store.begin().await?;
    let mine = owner == client.client_id;
    let revoked = if mine {
        tx.revoke_oidc_family(family, now).await?
    } else {
        0
    };
    app.audit()
        .append(&mut *tx, &record(&client, origin, mine, kind, family, &owner, revoked))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The grant behind an access token of ours that has not expired;
/// `unsupported_token_type` for one with no grant (`client_credentials`).
fn access_token_grant(app: &App, token: &str) -> Result<Target, OAuthError> {
    let Some(claims) = app.oidc.keys.verify(token, ACCESS_TOKEN_TYP) else {
        return Ok(Target::Nothing);
    };
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str);
    let now_secs = app.clock.now().as_millis() / 1000;
    let live = str_claim("iss") == Some(issuer(&app.settings).as_str())
        && claims.get("exp").and_then(Value::as_i64).is_some_and(|e| e > now_secs);
    if !live {
        return Ok(Target::Nothing);
    }
    let Some(owner) = str_claim("client_id") else {
        return Ok(Target::Nothing);
    };
    match str_claim("grant_id").map(Uuid::parse_str) {
        Some(Ok(family)) => Ok(Target::Grant {
            family,
            owner: owner.to_owned(),
            kind: "access_token",
        }),
        Some(Err(_)) => Ok(Target::Nothing),
        None => Err(OAuthError::new(
            OAuthCode::UnsupportedTokenType,
            "a client_credentials access token cannot be revoked; it expires on its own",
        )),
    }
}

fn record(
    client: &OidcClient,
    origin: &Origin,
    mine: bool,
    kind: &str,
    family: Uuid,
    owner: &str,
    revoked: u64,
) -> AuditEvent {
    let outcome = if mine { Outcome::Success } else { Outcome::Denied };
    AuditEvent::new(EventType::OidcTokenRevoked, Actor::Anonymous, outcome)
        .from_origin(origin)
        .details(json!({
            "client_id": owner,
            "presented_by": client.client_id,
            "token_type": kind,
            "grant_id": family,
            "refresh_tokens_revoked": revoked,
        }))
}
