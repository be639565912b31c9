//! Authorization codes (RFC 6749 §4.1.2, OpenID Connect Core §3.1.3,
//! RFC 9700 §2.1.1 and §4.5).
//!
//! **A code is sealed, not stored, until it is redeemed (ADR 0038).** What
//! it stands for (the user, session, client, redirect URI, PKCE challenge,
//! scopes, nonce, what was proven) is sealed into the code itself with
//! XChaCha20-Poly1305 under the server's key ring, bound to its purpose, as
//! flow handles are (ADR 0014): it can be neither read nor forged, and any
//! node opens it. Issuing one therefore writes nothing, and a sign-in to an
//! app with an SSO session costs one durable commit (the redemption's)
//! instead of two. Guessing or forging a code means breaking the 256-bit
//! key; each carries a random 192-bit nonce and a fresh time-ordered id,
//! lives 60 seconds (RFC 6749 §4.1.2 recommends at most
//! 10 minutes; a browser redirect needs a few seconds), and is bound to the
//! client, the redirect URI and the PKCE challenge it was issued for.
//!
//! **Single use is one insert.** Redeeming a code inserts its row, keyed by
//! its hash and id, with `ON CONFLICT DO NOTHING`, in the unit of work that
//! also writes what is issued and the audit record: of concurrent
//! redemptions exactly one inserts it. Presenting it again finds the row
//! taken, revokes it and, with it, every token issued from it (RFC 6749
//! §4.1.2: "SHOULD revoke (when possible) all tokens previously issued based
//! on that authorization code"). The row is then the grant's anchor exactly
//! as a stored code was: revocation, UserInfo standing and back-channel
//! logout read it.
//!
//! **What could change while a code waits is read at redemption**, by the
//! inserting statement itself: the session must still be live (signed out,
//! ended everywhere or raised by a step-up: refused), the user active, and
//! a third-party client's consent must still cover the scopes (a revoked
//! consent takes the codes issued before it), and a deleted client
//! authenticates no more.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use signet_core::audit::{Actor, AuditEvent, EventType, Origin, Outcome};
use signet_core::clock::Timestamp;
use signet_core::oidc_client::{scopes_cover, OidcClient};
use signet_core::sealing::KeyRing;
use signet_core::secret::TokenHash;
use signet_core::unit_of_work::{CodeRedemption, NewCode, Tx};
use signet_core::user::User;
use signet_core::Result;
use uuid::Uuid;

use super::authorize::{acr_of, AuthorizationRequest};
use super::error::{OAuthCode, OAuthError};
use super::tokens::Refused;
use crate::sealing::Envelope;
use crate::sessions::Current;
use crate::App;

/// How long a code may wait for its redemption.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// Every code starts with this (as when codes were random tokens).
pub const PREFIX: &str = "sgac_";

/// The longest code accepted, in characters: a guard before any work. A
/// code's length follows its redirect URI (registered), its scopes (the
/// client's) and its nonce (at most [`super::authorize::MAX_NONCE_LEN`]).
pub const MAX_LEN: usize = 8 * 1024;

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

/// A code as it travels: sealed, so only this server reads it.
#[derive(Serialize, Deserialize)]
struct Sealed {
    /// The code's id: its row's once redeemed, the family id of the
    /// refresh tokens and the `grant_id` of the access tokens issued from
    /// it. Time-ordered (ADR 0034).
    id: Uuid,
    client_id: String,
    /// Milliseconds since the epoch.
    expires_at: i64,
    grant: CodeGrant,
}

const ENVELOPE: Envelope = Envelope {
    prefix: PREFIX,
    purpose: "oidc_authorization_code",
    max_len: MAX_LEN,
    // Unpadded: a code is issued only to a signed-in session, so its length
    // tells nobody whether an account exists.
    bucket: 1,
};

fn seal(ring: &KeyRing, code: &Sealed) -> Result<String> {
    ENVELOPE.seal(ring, code)
}

/// The code in `presented`, if this server sealed it (with a key it still
/// holds).
fn open(ring: &KeyRing, presented: &str) -> Option<Sealed> {
    ENVELOPE.open(ring, presented)
}

/// Issues a code for `request` and the signed-in `current` session. An
/// answer to a stored request (after a sign-in, a step-up or a consent)
/// deletes that request with its `oidc.authorized` record in one unit of
/// work, so it is answered once; a code issued at once to an SSO session
/// writes nothing (its redemption is recorded).
pub async fn issue(
    app: &App,
    origin: &Origin,
    client: &OidcClient,
    request: &AuthorizationRequest,
    current: &Current,
    stored: Option<Uuid>,
) -> Result<String> {
    let s = &current.session;
    let now = app.clock.now();
    let code = Sealed {
        id: signet_core::ids::time_ordered(),
        client_id: client.client_id.clone(),
        expires_at: now.plus(CODE_LIFETIME).as_millis(),
        grant: CodeGrant {
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            user_id: s.user_id.0,
            session_id: s.id.0,
            auth_time: s.auth_time.as_millis() / 1000,
            acr: acr_of(s).to_owned(),
            amr: s.amr.clone(),
        },
    };
    let sealed = seal(&app.sealing, &code)?;
    let Some(id) = stored else {
        return Ok(sealed);
    };
    let record = AuditEvent::new(EventType::OidcAuthorized, Actor::User(s.user_id), Outcome::Success)
        .from_origin(origin)
        .details(json!({
            "client_id": client.client_id,
            "scope": code.grant.scope.join(" "),
            "acr": code.grant.acr,
            "session_id": s.id.0,
            "code_id": code.id,
        }));
    let mut tx = app.store.begin().await?;
    // A stored request is answered once: of concurrent resumptions or
    // consent approvals, only the one that deletes it gets a code.
    if !tx.take_oidc_request(id).await? {
        return Err(signet_core::Error::invalid(
            signet_core::ErrorCode::InvalidRequest,
            "this sign-in request was answered already; go back to the app and start again",
        ));
    }
    app.audit().append(&mut *tx, &record).await?;
    tx.commit().await?;
    Ok(sealed)
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
/// is still active, that the session the code came from is still live and
/// that a third-party client's consent still stands. The redemption,
/// whatever follows from it (a refresh token) and its audit record then
/// commit as one unit. Every failure is `invalid_grant` (RFC 6749 §5.2),
/// except a verifier sent for a code without a challenge, which is a PKCE
/// downgrade attempt (RFC 9700 §2.1.1) and refused the same way.
///
/// A code that failed a check after it was redeemed stays redeemed (it is
/// burnt: RFC 6749 §4.1.2 allows one use, not one successful use) and is
/// revoked, so the refusal carries the unit for its audit record to commit
/// with.
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
    // Not one of ours (or sealed with a key this server no longer holds):
    // nothing to write, so the refusal's record takes a unit of its own.
    let Some(sealed) = open(&app.sealing, code) else {
        return Err(invalid("the code is not valid").into());
    };
    let now = app.clock.now();
    let grant_data = serde_json::to_string(&sealed.grant)
        .map_err(|e| signet_core::Error::Internal(format!("code grant: {e}").into()))?;
    let mut tx = app.store.begin().await?;
    let redemption = tx
        .redeem_oidc_code(
            &NewCode {
                hash: &TokenHash::of(code.as_bytes()),
                id: sealed.id,
                client_id: &sealed.client_id,
                user_id: sealed.grant.user_id,
                session_id: sealed.grant.session_id,
                grant: &grant_data,
                expires_at: Timestamp::from_millis(sealed.expires_at),
            },
            now,
        )
        .await?;
    let stands = match redemption {
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
            user,
            session_live,
            consented,
            client_live,
        } => check(client, &sealed, now, redirect_uri, verifier)
            .and_then(|()| still_stands(client, &sealed.grant, user, session_live, consented, client_live)),
    };
    match stands {
        Ok(user) => Ok((
            tx,
            Redeemed {
                id: sealed.id,
                grant: sealed.grant,
                user,
            },
        )),
        Err(refusal) => {
            // Burnt, and revoked with it: it stands for nothing issued, so
            // it counts as no grant of the client, and no relying party is
            // told when its session ends.
            tx.burn_oidc_code(sealed.id, now).await?;
            Err(Refused::with_unit(refusal, tx))
        }
    }
}

/// What may have changed while the code waited, as its redemption read it:
/// the code's user if its grant can still be made.
fn still_stands(
    client: &OidcClient,
    grant: &CodeGrant,
    user: Option<User>,
    session_live: bool,
    consented: Option<Vec<String>>,
    client_live: bool,
) -> std::result::Result<User, OAuthError> {
    let invalid = |why: &str| OAuthError::new(OAuthCode::InvalidGrant, why.to_owned());
    if !client_live {
        // Deleted through another node, which this node's memory of
        // clients has not seen yet (ADR 0039).
        return Err(OAuthError::new(
            OAuthCode::InvalidClient,
            "client authentication failed",
        ));
    }
    let Some(user) = user.filter(User::is_active) else {
        return Err(invalid("the account is no longer active"));
    };
    if !session_live {
        // Signed out (or timed out, or raised by a step-up) between the code
        // and its redemption: a grant of an ended session would never hear
        // of that end (back-channel logout), so it is not made.
        return Err(invalid("the sign-in this code came from has ended; sign in again"));
    }
    // The consent a third-party client had when the code was issued was
    // revoked (or narrowed) since.
    if !client.settings.first_party && !consented.is_some_and(|approved| scopes_cover(&approved, &grant.scope)) {
        return Err(invalid("the user's consent for this app was revoked"));
    }
    Ok(user)
}

/// The checks a redeemed code must pass (RFC 6749 §4.1.3, RFC 7636 §4.6):
/// its client, its lifetime, its redirect URI, its PKCE challenge.
fn check(
    client: &OidcClient,
    code: &Sealed,
    now: Timestamp,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> std::result::Result<(), OAuthError> {
    let invalid = |why: &str| OAuthError::new(OAuthCode::InvalidGrant, why.to_owned());
    if code.client_id != client.client_id {
        return Err(invalid("the code was issued to another client"));
    }
    if Timestamp::from_millis(code.expires_at) <= now {
        return Err(invalid("the code has expired"));
    }
    let grant = &code.grant;
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
    Ok(())
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
    use signet_core::sealing::{Binding, SealingKey};

    fn sample(ring: &KeyRing) -> String {
        seal(
            ring,
            &Sealed {
                id: Uuid::now_v7(),
                client_id: "app".into(),
                expires_at: 60_000,
                grant: CodeGrant {
                    redirect_uri: "https://app.example/cb".into(),
                    code_challenge: None,
                    scope: vec!["openid".into()],
                    nonce: Some("n".into()),
                    user_id: Uuid::new_v4(),
                    session_id: Uuid::new_v4(),
                    auth_time: 1,
                    acr: "phr".into(),
                    amr: vec!["hwk".into()],
                },
            },
        )
        .unwrap()
    }

    #[test]
    fn a_sealed_code_opens_only_untouched_under_its_ring_and_purpose() {
        let ring = KeyRing::new(SealingKey::generate(), []);
        let code = sample(&ring);
        assert!(code.starts_with(PREFIX));
        let opened = open(&ring, &code).expect("opens");
        assert_eq!(opened.client_id, "app");
        assert_eq!(opened.grant.acr, "phr");
        // Two codes of the same grant differ (a fresh nonce and id).
        assert_ne!(code, sample(&ring));
        // One character changed anywhere: refused.
        for at in [PREFIX.len(), code.len() / 2, code.len() - 1] {
            let mut bytes = code.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            assert!(
                open(&ring, &String::from_utf8(bytes).unwrap()).is_none(),
                "changed at {at}"
            );
        }
        // Another server's key, another purpose, no prefix, too long: refused.
        assert!(open(&KeyRing::new(SealingKey::generate(), []), &code).is_none());
        let other_purpose = ring.seal(b"{}", &Binding::new("flow_handle", "v1")).unwrap();
        assert!(open(&ring, &format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(other_purpose))).is_none());
        assert!(open(&ring, code.trim_start_matches(PREFIX)).is_none());
        assert!(open(&ring, &"A".repeat(MAX_LEN + 1)).is_none());
    }

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(s256(verifier).ct_eq_str("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!s256(verifier).ct_eq_str("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
        assert!(verifier_ok(verifier));
        assert!(!verifier_ok("short"));
    }
}
