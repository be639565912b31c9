//! Authorization codes (RFC 6749 §4.1.2, OpenID Connect Core §3.1.3,
//! RFC 9700 §2.1.1 and §4.5).
//!
//! A code is 256 random bits (`sgac_` + 43 base64url characters), stored
//! only as its SHA-256 hash, lives 60 seconds (RFC 6749 §4.1.2 recommends
//! at most 10 minutes; a browser redirect needs a few seconds), and is
//! bound to the client, the redirect URI and the PKCE challenge it was
//! issued for. It is redeemed by one conditional write, so of concurrent
//! redemptions exactly one wins; presenting it again revokes it and, with
//! it, the access token issued from it (RFC 6749 §4.1.2: "SHOULD revoke
//! (when possible) all tokens previously issued based on that
//! authorization code").

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::oidc_client::OidcClient;
use signet_core::secret::{PlainToken, TokenHash, TokenKind};
use signet_core::unit_of_work::{CodeRedemption, NewCode, Tx};
use signet_core::user::User;
use signet_core::Result;
use uuid::Uuid;

use super::authorize::{acr_of, AuthorizationRequest};
use super::error::{OAuthCode, OAuthError};
use super::tokens::Refused;
use crate::sessions::Current;
use crate::App;

/// How long a code may wait for its redemption.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// What a code stands for: who signed in, how, for which client and
/// redirect, with which PKCE challenge. Stored beside the code's hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeGrant {
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub scope: Vec<String>,
    pub nonce: Option<String>,
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// Seconds since the epoch.
    pub auth_time: i64,
    pub acr: String,
    pub amr: Vec<String>,
}

/// Issues a code for `request` and the signed-in `current` session, in one
/// unit of work with its audit record (and the removal of the stored
/// request it answers, if any).
pub async fn issue(
    app: &App,
    origin: &Origin,
    client: &OidcClient,
    request: &AuthorizationRequest,
    current: &Current,
    stored: Option<Uuid>,
) -> Result<PlainToken> {
    let s = &current.session;
    let grant = CodeGrant {
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        scope: request.scope.clone(),
        nonce: request.nonce.clone(),
        user_id: s.user_id.0,
        session_id: s.id.0,
        auth_time: s.auth_time.as_millis() / 1000,
        acr: acr_of(s).to_owned(),
        amr: s.amr.clone(),
    };
    let body =
        serde_json::to_string(&grant).map_err(|e| signet_core::Error::Internal(format!("code grant: {e}").into()))?;
    let code = PlainToken::generate(TokenKind::AuthorizationCode);
    let expires_at = app.clock.now().plus(CODE_LIFETIME);
    let record = AuditEvent::new(EventType::OidcAuthorized, Actor::User(s.user_id), Outcome::Success)
        .from_origin(origin)
        .details(json!({
            "client_id": client.client_id,
            "scope": grant.scope.join(" "),
            "acr": grant.acr,
            "session_id": s.id.0,
        }));
    let mut tx = app.store.begin().await?;
    // A stored request is answered once: of concurrent resumptions or
    // consent approvals, only the one that deletes it gets a code.
    if let Some(id) = stored {
        if !tx.take_oidc_request(id).await? {
            return Err(signet_core::Error::invalid(
                signet_core::ErrorCode::InvalidRequest,
                "this sign-in request was answered already; go back to the app and start again",
            ));
        }
    }
    // Inserted last: on SQLite it then goes in with the record's call
    // (`SqlTx::write_later`).
    tx.insert_oidc_code(&NewCode {
        hash: &code.hash(),
        id: signet_core::ids::time_ordered(),
        client_id: &client.client_id,
        user_id: s.user_id.0,
        session_id: s.id.0,
        grant: &body,
        expires_at,
    })
    .await?;
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    Ok(code)
}

/// A redeemed code: its id (the `jti` of the access token issued from it),
/// what it stands for, and its user (active: checked).
pub struct Redeemed {
    pub id: Uuid,
    pub grant: CodeGrant,
    pub user: User,
}

/// Redeems `code` for `client` in a unit of work it opens and hands back
/// open, checking the redirect URI and the PKCE verifier, that the user
/// is still active and that the session the code came from is still live.
/// The redemption, whatever follows from it (a refresh
/// token) and its audit record then commit as one unit. Every failure is
/// `invalid_grant` (RFC 6749 §5.2), except a verifier sent for a code
/// without a challenge, which is a PKCE downgrade attempt (RFC 9700
/// §2.1.1) and refused the same way.
///
/// A code that failed a check after it was redeemed stays redeemed (it is
/// burnt: RFC 6749 §4.1.2 allows one use, not one successful use), so the
/// refusal carries the unit for its audit record to commit with.
pub async fn redeem(
    app: &App,
    origin: &Origin,
    client: &OidcClient,
    code: Option<&str>,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> std::result::Result<(Tx, Redeemed), Refused> {
    let invalid = |why: &str| OAuthError::new(OAuthCode::InvalidGrant, why.to_owned());
    let code = code.ok_or_else(|| OAuthError::new(OAuthCode::InvalidRequest, "code is required"))?;
    let Some(code) = PlainToken::parse(TokenKind::AuthorizationCode, code) else {
        return Err(invalid("the code is not valid").into());
    };
    let hash = code.hash();
    let now = app.clock.now();
    let mut tx = app.store.begin().await?;
    let (id, owner, body, expires_at, user, session_live) = match tx.redeem_oidc_code(&hash, now).await? {
        // Nothing was written: the refusal's record takes this unit
        // rather than opening another.
        CodeRedemption::Unknown => return Err(Refused::with_unit(invalid("the code is not valid"), tx)),
        CodeRedemption::Reused { id, client_id } => {
            let record = AuditEvent::new(EventType::OidcCodeReused, Actor::Anonymous, Outcome::Denied)
                .from_origin(origin)
                .details(json!({ "client_id": client_id, "code_id": id, "presented_by": client.client_id }));
            tx.revoke_oidc_family(id, now).await?;
            app.audit().append(&mut *tx, &record).await?;
            return Err(Refused::with_unit(
                invalid("the code was already used; the tokens issued from it are revoked"),
                tx,
            ));
        }
        CodeRedemption::Redeemed {
            id,
            client_id,
            grant,
            expires_at,
            user,
            session_live,
        } => (id, client_id, grant, expires_at, user, session_live),
    };
    let checked = check(client, &owner, expires_at, now, &body, redirect_uri, verifier);
    let grant = match checked {
        Ok(grant) => grant,
        Err(refusal) => return Err(Refused::with_unit(refusal, tx)),
    };
    let Some(user) = user.filter(|u| u.is_active()) else {
        return Err(Refused::with_unit(invalid("the account is no longer active"), tx));
    };
    // Signed out (or timed out) between the code and its redemption: a
    // grant of an ended session would never hear of that end
    // (back-channel logout), so it is not made.
    if !session_live {
        return Err(Refused::with_unit(
            invalid("the sign-in this code came from has ended; sign in again"),
            tx,
        ));
    }
    Ok((tx, Redeemed { id, grant, user }))
}

/// The checks a redeemed code must pass (RFC 6749 §4.1.3, RFC 7636 §4.6):
/// its client, its lifetime, its redirect URI, its PKCE challenge.
fn check(
    client: &OidcClient,
    owner: &str,
    expires_at: signet_core::clock::Timestamp,
    now: signet_core::clock::Timestamp,
    body: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> std::result::Result<CodeGrant, OAuthError> {
    let invalid = |why: &str| OAuthError::new(OAuthCode::InvalidGrant, why.to_owned());
    if owner != client.client_id {
        return Err(invalid("the code was issued to another client"));
    }
    if expires_at <= now {
        return Err(invalid("the code has expired"));
    }
    let grant: CodeGrant = serde_json::from_str(body)
        .map_err(|e| signet_core::Error::Internal(format!("stored code grant: {e}").into()))?;
    if redirect_uri != Some(grant.redirect_uri.as_str()) {
        return Err(invalid("redirect_uri does not match the authorization request"));
    }
    match (&grant.code_challenge, verifier) {
        (None, None) => {}
        (Some(challenge), Some(verifier)) => {
            if !verifier_ok(verifier) || !s256(verifier).ct_eq_str(challenge) {
                return Err(invalid("the PKCE code_verifier does not match the challenge"));
            }
        }
        (Some(_), None) => return Err(invalid("code_verifier is required")),
        (None, Some(_)) => {
            return Err(invalid(
                "code_verifier sent, but the authorization request had no code_challenge",
            ))
        }
    }
    Ok(grant)
}

/// Whether the tokens issued from code `id` still stand, as committed (a
/// pool read: no unit of work, so introspection and UserInfo never wait
/// for SQLite's single writer).
pub async fn standing(app: &App, id: Uuid) -> Result<bool> {
    Ok(app.store.oidc_grant_standing(id).await? == Some(true))
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn verifier_ok(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// BASE64URL(SHA256(ASCII(verifier))) (RFC 7636 §4.2).
struct Challenge(String);

fn s256(verifier: &str) -> Challenge {
    Challenge(URL_SAFE_NO_PAD.encode(TokenHash::of(verifier.as_bytes()).as_bytes()))
}

impl Challenge {
    fn ct_eq_str(&self, other: &str) -> bool {
        let a = self.0.as_bytes();
        let b = other.as_bytes();
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(s256(verifier).ct_eq_str("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!s256(verifier).ct_eq_str("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
        assert!(verifier_ok(verifier));
        assert!(!verifier_ok("short"));
    }
}
