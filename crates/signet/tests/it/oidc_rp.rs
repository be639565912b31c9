//! Signet as seen by an independent relying party: the `openidconnect`
//! crate (not ours) discovers the provider, builds the authorization request
//! (PKCE S256, state, nonce, `acr_values`), redeems the code, validates the
//! ID token (signature against the JWK Set, `iss`, `aud`, `exp`, `nonce`,
//! the `at_hash`), calls UserInfo and rotates a refresh token. If Signet
//! disagreed with the spec where this library is strict, these fail.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::StatusCode;

use crate::oidc::{authorize, offline_client, passkey_user, query_of, RP_REDIRECT};
use crate::support::TestServer;

/// An HTTP client for the library: it must not follow redirects (RFC 9700
/// §4.11: a redirect could leak what it sends).
fn http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_openidconnect_crate_signs_a_passkey_user_in_and_refreshes() {
    let srv = TestServer::start().await;
    let (_, session, _) = passkey_user(&srv, "ada@example.com").await;
    let admin = srv.admin_token().await;
    let (client_id, secret) = offline_client(&srv, &admin).await;
    let http = http();

    // Discovery: the library checks that the document's issuer is ours.
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(srv.base.clone()).unwrap(), &http)
        .await
        .expect("discovery");
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(client_id), Some(ClientSecret::new(secret)))
            .set_redirect_uri(RedirectUrl::new(RP_REDIRECT.to_owned()).unwrap());

    // The request as the library builds it; the browser (here: the
    // session's bearer token) takes it to Signet.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .add_extra_param("acr_values", "phr")
        .set_pkce_challenge(challenge)
        .url();
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (s, location) = authorize(&srv, Some(&session), &params).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let location = location.unwrap();
    assert!(location.as_str().starts_with(RP_REDIRECT), "{location}");
    assert_eq!(query_of(&location, "state").as_deref(), Some(state.secret().as_str()));
    assert_eq!(
        query_of(&location, "iss").as_deref(),
        Some(srv.base.as_str()),
        "RFC 9207"
    );
    let code = query_of(&location, "code").expect("a code");

    // The code, redeemed by the library (client_secret_basic, the PKCE
    // verifier), and the ID token validated by it.
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the token response parses and validates");
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims: &CoreIdTokenClaims = id_token.claims(&verifier, &nonce).expect("the ID token validates");
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("phr"));
    let amr: Vec<String> = claims
        .auth_method_refs()
        .expect("amr")
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    // A passkey with user verification (RFC 8176): a key (`swk` for this
    // backup-eligible test authenticator, `hwk` for a device-bound one) and
    // the user's verification.
    assert!(amr.iter().any(|a| a == "swk" || a == "hwk"), "{amr:?}");
    assert!(amr.iter().any(|a| a == "user"), "{amr:?}");
    assert!(claims.auth_time().is_some());
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ada@example.com"));
    // at_hash binds the access token to the ID token (OIDC Core §3.1.3.6).
    if let Some(expected) = claims.access_token_hash() {
        let actual = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&verifier).unwrap(),
        )
        .unwrap();
        assert_eq!(&actual, expected);
    }

    // UserInfo, through the library: the same subject.
    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(info.email().map(|e| e.as_str()), Some("ada@example.com"));

    // Refresh: rotated, and the new tokens still state what was proven.
    let refresh = tokens
        .refresh_token()
        .expect("a refresh token for offline_access")
        .clone();
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    let rotated = refreshed.refresh_token().expect("a new refresh token");
    assert_ne!(rotated.secret(), refresh.secret(), "rotated on use");
    // The rotated-out token is refused with the RFC 6749 §5.2 shape the
    // library parses.
    let replay = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await;
    let err = replay.expect_err("a rotated-out token is refused");
    match err {
        openidconnect::RequestTokenError::ServerResponse(r) => {
            assert_eq!(r.error().as_ref(), "invalid_grant");
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
    srv.stop().await;
}
