//! Ending what Signet issued to relying parties: token revocation (RFC
//! 7009), RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and
//! back-channel logout (OpenID Connect Back-Channel Logout 1.0), seen from
//! the relying party's side: a real HTTP listener receives the logout
//! tokens and verifies them against the published JWK Set.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::{LOCATION, ORIGIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::oidc::{
    client_add, code_for, get_json, offline_client, passkey_user, redeem, refresh, token_request, userinfo_status,
    verify_es256, RP_REDIRECT,
};
use crate::support::TestServer;

const BYE: &str = "https://rp.example.com/bye";

/// POSTs `token` to an endpoint of the client (revocation, introspection).
async fn token_form(srv: &TestServer, path: &str, client: (&str, &str), token: &str) -> reqwest::Response {
    srv.http
        .post(srv.url(path))
        .basic_auth(client.0, Some(client.1))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

async fn revoke(srv: &TestServer, client: (&str, &str), token: &str) -> (StatusCode, String) {
    let r = token_form(srv, "/oauth2/revoke", client, token).await;
    assert_eq!(r.headers()[reqwest::header::CACHE_CONTROL], "no-store");
    (r.status(), r.text().await.unwrap())
}

async fn introspect(srv: &TestServer, client: (&str, &str), token: &str) -> Value {
    let r = token_form(srv, "/oauth2/introspect", client, token).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Signs in with the code flow and returns the token response.
async fn tokens(srv: &TestServer, session: &str, client: (&str, &str), scope: &str) -> Value {
    let code = code_for(srv, session, client.0, &[("scope", scope)]).await;
    let (s, body) = redeem(srv, client, &code, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family_and_unknown_tokens_answer_200() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (id, secret) = offline_client(&srv, &admin).await;
    let client = (id.as_str(), secret.as_str());
    let (other_id, other_secret) = offline_client(&srv, &admin).await;
    let other = (other_id.as_str(), other_secret.as_str());
    let (_, doc) = get_json(&srv, "/.well-known/openid-configuration").await;
    assert_eq!(doc["revocation_endpoint"], srv.url("/oauth2/revoke"));

    let t = tokens(&srv, &session, client, "openid email offline_access").await;
    let rt = t["refresh_token"].as_str().unwrap();
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(introspect(&srv, client, at).await["active"], true);

    // Another client's revocation is answered 200 and changes nothing.
    assert_eq!(revoke(&srv, other, rt).await.0, StatusCode::OK);
    assert_eq!(revoke(&srv, other, at).await.0, StatusCode::OK);
    assert_eq!(introspect(&srv, client, at).await["active"], true);

    // The owner's revocation of the refresh token ends the whole grant.
    let (s, body) = revoke(&srv, client, rt).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, ""));
    let (s, body) = refresh(&srv, client, rt, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        introspect(&srv, client, at).await,
        json!({ "active": false }),
        "introspection checks the grant, not only the expiry"
    );
    assert_eq!(userinfo_status(&srv, at).await, StatusCode::UNAUTHORIZED);
    // Again, and tokens that are not ours: still 200 (RFC 7009 §2.2).
    for token in [
        rt,
        "sgrt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "not a token",
        "a.b.c",
    ] {
        assert_eq!(revoke(&srv, client, token).await.0, StatusCode::OK, "{token}");
    }

    // Revoking an access token revokes its grant, refresh tokens included.
    let t = tokens(&srv, &session, client, "openid offline_access").await;
    let (rt, at) = (
        t["refresh_token"].as_str().unwrap(),
        t["access_token"].as_str().unwrap(),
    );
    assert_eq!(revoke(&srv, client, at).await.0, StatusCode::OK);
    assert_eq!(introspect(&srv, client, at).await["active"], false);
    let (s, _) = refresh(&srv, client, rt, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // A client_credentials token has no grant to revoke.
    let (cc_id, cc_secret) = client_add(&srv, &["Reports", "--client-credentials"]).await;
    let cc = (cc_id.as_str(), cc_secret.as_deref().unwrap());
    let (_, _, body) = token_request(&srv, Some(cc), &[("grant_type", "client_credentials")]).await;
    let (s, body) = revoke(&srv, cc, body["access_token"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "unsupported_token_type"
    );

    // Client authentication is that of the token endpoint.
    let (s, body) = revoke(&srv, (id.as_str(), "sgcs_wrong"), "x").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "invalid_client");
    let r = srv
        .http
        .post(srv.url("/oauth2/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Refusals leave a trace, as at the token endpoint.
    let audit = srv.audit_of_type("oidc.token_revoked").await;
    let refused: Vec<&Value> = audit
        .iter()
        .filter(|e| e["outcome"] == "denied" && e["details"]["error"].is_string())
        .collect();
    assert!(
        refused.iter().any(|e| e["details"]["error"] == "invalid_client"),
        "{audit:?}"
    );
    srv.stop().await;
}

/// A confidential client with a post-logout redirect URI (and, if given, a
/// back-channel logout URI): `(client_id, secret)`.
async fn logout_client(srv: &TestServer, admin: &str, backchannel: Option<&str>) -> (String, String) {
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/admin/oidc/clients",
            Some(admin),
            Some(json!({
                "name": "Wiki",
                "redirect_uris": [RP_REDIRECT],
                "first_party": true,
                "post_logout_redirect_uris": [BYE],
                "backchannel_logout_uri": backchannel,
                "backchannel_logout_session_required": backchannel.is_some(),
                "id_token_ttl_secs": 60,
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["client"]["post_logout_redirect_uris"], json!([BYE]));
    (
        body["client_id"].as_str().unwrap().to_owned(),
        body["client_secret"].as_str().unwrap().to_owned(),
    )
}

/// `GET /oauth2/logout?params` with the session as a bearer token:
/// `(status, Location, body)`.
async fn end_session(
    srv: &TestServer,
    session: Option<&str>,
    params: &[(&str, &str)],
) -> (StatusCode, Option<String>, String) {
    let mut req = srv.http.get(srv.url("/oauth2/logout")).query(params);
    if let Some(s) = session {
        req = req.bearer_auth(s);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.headers()[reqwest::header::CACHE_CONTROL], "no-store");
    let location = r.headers().get(LOCATION).map(|l| l.to_str().unwrap().to_owned());
    (r.status(), location, r.text().await.unwrap())
}

async fn session_status(srv: &TestServer, session: &str) -> StatusCode {
    srv.call(Method::GET, "/api/v1/session", Some(session), None).await.0
}

#[tokio::test]
async fn rp_initiated_logout_checks_the_hint_and_the_registered_uri_and_asks_without_a_hint() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (id, secret) = logout_client(&srv, &admin, None).await;
    let client = (id.as_str(), secret.as_str());
    let (_, doc) = get_json(&srv, "/.well-known/openid-configuration").await;
    assert_eq!(doc["end_session_endpoint"], srv.url("/oauth2/logout"));
    let id_token = tokens(&srv, &session, client, "openid").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Near misses of the registered URI, a forged hint, a client that is
    // not the hint's audience: an error page at Signet, never a redirect.
    let (other_id, _) = client_add(
        &srv,
        &[
            "Other",
            "--redirect-uri",
            RP_REDIRECT,
            "--post-logout-redirect-uri",
            BYE,
        ],
    )
    .await;
    let mut forged = id_token.clone();
    forged.pop();
    forged.push(if id_token.ends_with('A') { 'B' } else { 'A' });
    for (hint, client_id, uri) in [
        (Some(id_token.as_str()), None, "https://rp.example.com/bye/"),
        (Some(id_token.as_str()), None, "https://rp.example.com/BYE"),
        (Some(id_token.as_str()), None, "https://rp.example.com/bye?x=1"),
        (Some(id_token.as_str()), None, "https://evil.example.com/bye"),
        (None, Some(id.as_str()), "https://rp.example.com/bye#f"),
        (None, None, BYE),
        (Some(forged.as_str()), None, BYE),
        (Some(id_token.as_str()), Some(other_id.as_str()), BYE),
        (None, Some("no-such-client"), BYE),
    ] {
        let mut params = vec![("post_logout_redirect_uri", uri), ("state", "s1")];
        if let Some(h) = hint {
            params.push(("id_token_hint", h));
        }
        if let Some(c) = client_id {
            params.push(("client_id", c));
        }
        let (s, location, _) = end_session(&srv, Some(&session), &params).await;
        assert_eq!((s, location), (StatusCode::BAD_REQUEST, None), "{params:?}");
    }
    assert_eq!(
        session_status(&srv, &session).await,
        StatusCode::OK,
        "nothing was signed out"
    );

    // Without a hint the person is asked; a GET alone signs no one out,
    // nor does a confirmation from another site.
    let (s, _, page) = end_session(
        &srv,
        Some(&session),
        &[("client_id", &id), ("post_logout_redirect_uri", BYE)],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("Sign out?") && page.contains("/oauth2/logout/confirm"),
        "{page}"
    );
    assert_eq!(session_status(&srv, &session).await, StatusCode::OK);
    let form = [
        ("client_id", id.as_str()),
        ("post_logout_redirect_uri", BYE),
        ("state", "s2"),
    ];
    let r = srv
        .http
        .post(srv.url("/oauth2/logout/confirm"))
        .bearer_auth(&session)
        .header(ORIGIN, "https://evil.example.com")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(session_status(&srv, &session).await, StatusCode::OK);
    let r = srv
        .http
        .post(srv.url("/oauth2/logout/confirm"))
        .bearer_auth(&session)
        .header(ORIGIN, &srv.base)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], format!("{BYE}?state=s2"));
    assert_eq!(session_status(&srv, &session).await, StatusCode::UNAUTHORIZED);

    // With a valid hint for the signed-in user: signed out at once, even
    // once the ID token has expired (RP-Initiated Logout §4).
    let (_, session, _auth) = passkey_user(&srv, "bob@example.com").await;
    let id_token = tokens(&srv, &session, client, "openid").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    srv.clock.advance(Duration::from_secs(120));
    let params = [
        ("id_token_hint", id_token.as_str()),
        ("post_logout_redirect_uri", BYE),
        ("state", "a b"),
    ];
    let (s, location, _) = end_session(&srv, Some(&session), &params).await;
    assert_eq!(
        (s, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("https://rp.example.com/bye?state=a+b"))
    );
    assert_eq!(session_status(&srv, &session).await, StatusCode::UNAUTHORIZED);
    // Not signed in any more: straight back to the client.
    let (s, location, _) = end_session(&srv, None, &params).await;
    assert_eq!(
        (s, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("https://rp.example.com/bye?state=a+b"))
    );
    // No redirect URI: a page says so.
    let (s, _, page) = end_session(&srv, None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("Signed out"), "{page}");
    srv.stop().await;
}

/// A relying party's back-channel logout endpoint: records every POSTed
/// `logout_token`, and answers 500 to the first `failures` requests.
struct RelyingParty {
    url: String,
    received: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RelyingParty {
    async fn start(failures: usize) -> Self {
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = received.clone();
        let app = axum::Router::new().route(
            "/backchannel",
            axum::routing::post(move |body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    let token = url::form_urlencoded::parse(&body)
                        .find(|(k, _)| k == "logout_token")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    let mut seen = seen.lock().unwrap();
                    seen.push(token);
                    if seen.len() <= failures {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/backchannel", listener.local_addr().unwrap().port());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, received, task }
    }

    /// Waits until `n` requests arrived (the worker polls every 100 ms).
    async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..100 {
            let got = self.received.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {n} logout requests, got {:?}", self.received.lock().unwrap());
    }

    /// Waits half a second more and checks that no request came after the
    /// `n` already seen (a session's end is announced once).
    async fn heard_no_more_than(&self, n: usize) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(self.received.lock().unwrap().len(), n);
    }
}

impl Drop for RelyingParty {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Verifies a logout token as a relying party must (Back-Channel Logout
/// 1.0 §2.6) and returns its claims.
async fn verified_logout_token(srv: &TestServer, token: &str, client_id: &str) -> Value {
    let (_, jwks) = get_json(srv, "/oauth2/jwks").await;
    let (_, doc) = get_json(srv, "/.well-known/openid-configuration").await;
    let (header, claims) = verify_es256(token, &jwks);
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(claims["iss"], doc["issuer"]);
    assert_eq!(claims["aud"], client_id);
    assert!(claims["iat"].as_i64().unwrap() < claims["exp"].as_i64().unwrap());
    assert!(!claims["jti"].as_str().unwrap().is_empty());
    assert_eq!(
        claims["events"],
        json!({ "http://schemas.openid.net/event/backchannel-logout": {} })
    );
    assert!(
        claims.get("nonce").is_none(),
        "a logout token never has a nonce: {claims}"
    );
    claims
}

/// The `sid` of the ID token `session` gets from `client` (scope
/// `openid`).
async fn granted_sid(srv: &TestServer, session: &str, client: (&str, &str)) -> Value {
    sid_of(
        tokens(srv, session, client, "openid").await["id_token"]
            .as_str()
            .unwrap(),
    )
}

fn sid_of(id_token: &str) -> Value {
    let payload = id_token.split('.').nth(1).unwrap();
    serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()["sid"].clone()
}

#[tokio::test]
async fn signing_out_sends_a_verified_logout_token_and_retries_after_a_500() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let rp = RelyingParty::start(1).await;
    let (user_id, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (id, secret) = logout_client(&srv, &admin, Some(&rp.url)).await;
    // A client without a back-channel URI is not called.
    let (quiet_id, quiet_secret) = logout_client(&srv, &admin, None).await;
    tokens(&srv, &session, (&quiet_id, &quiet_secret), "openid").await;
    let id_token = tokens(&srv, &session, (&id, &secret), "openid").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (s, _) = srv.call(Method::DELETE, "/api/v1/session", Some(&session), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let first = rp.wait_for(1).await;
    // The relying party answered 500: the outbox retries after its backoff.
    srv.clock.advance(Duration::from_secs(6));
    let both = rp.wait_for(2).await;
    assert_eq!(both[0], both[1], "the retry carries the same token");
    assert_eq!(first[0], both[0]);
    let claims = verified_logout_token(&srv, &both[0], &id).await;
    assert_eq!(claims["sub"], user_id);
    assert_eq!(claims["sid"], sid_of(&id_token));
    // Delivered (2xx): nothing more is sent, even much later.
    srv.clock.advance(Duration::from_secs(600));
    rp.heard_no_more_than(2).await;

    let (_, audit) = srv
        .call(
            Method::GET,
            "/api/v1/admin/audit?type=oidc.backchannel_logout_queued",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(audit["events"].as_array().unwrap().len(), 1, "{audit}");
    srv.stop().await;
}

#[tokio::test]
async fn ending_a_session_from_the_account_page_and_disabling_the_user_tell_the_relying_party() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let rp = RelyingParty::start(0).await;
    let (user_id, first, mut auth) = passkey_user(&srv, "ada@example.com").await;
    let second = crate::passkeys::sign_in(&srv, &mut auth, Some("ada@example.com")).await["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (id, secret) = logout_client(&srv, &admin, Some(&rp.url)).await;
    let client = (id.as_str(), secret.as_str());
    let first_sid = granted_sid(&srv, &first, client).await;
    let second_sid = granted_sid(&srv, &second, client).await;

    // From the second session, end the first one (the account page).
    let path = format!("/api/v1/sessions/{}", first_sid.as_str().unwrap());
    let (s, _) = srv.call(Method::DELETE, &path, Some(&second), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let got = rp.wait_for(1).await;
    let claims = verified_logout_token(&srv, &got[0], &id).await;
    assert_eq!((&claims["sub"], &claims["sid"]), (&json!(user_id), &first_sid));

    // An admin disables the user: the remaining session is announced, and
    // the one already announced is not announced again.
    let (s, _) = srv
        .call(
            Method::POST,
            &format!("/api/v1/admin/users/{user_id}/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let got = rp.wait_for(2).await;
    let claims = verified_logout_token(&srv, &got[1], &id).await;
    assert_eq!(claims["sid"], second_sid);
    rp.heard_no_more_than(2).await;
    srv.stop().await;
}

/// A code whose session ended before it was redeemed gives nothing: the
/// grant could never hear of that end. The code is spent all the same.
#[tokio::test]
async fn a_code_redeemed_after_its_session_ended_is_refused() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (id, secret) = logout_client(&srv, &admin, None).await;
    let code = code_for(&srv, &session, &id, &[("scope", "openid")]).await;
    let (s, _) = srv.call(Method::DELETE, "/api/v1/session", Some(&session), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let (s, body) = redeem(&srv, (&id, &secret), &code, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert!(
        body["error_description"].as_str().unwrap().contains("has ended"),
        "{body}"
    );
    let (s, body) = redeem(&srv, (&id, &secret), &code, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert!(
        body["error_description"].as_str().unwrap().contains("already used"),
        "a refused code is spent: {body}"
    );
    srv.stop().await;
}

/// A code refused at the token endpoint (here a PKCE downgrade: a verifier
/// for a code issued without a challenge) is spent for nothing: the app got
/// no tokens, so it is not told when the session ends.
#[tokio::test]
async fn a_refused_code_is_not_told_of_its_sessions_end() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let rp = RelyingParty::start(0).await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (id, secret) = logout_client(&srv, &admin, Some(&rp.url)).await;
    let code = code_for(&srv, &session, &id, &[("scope", "openid")]).await;
    let verifier = "v".repeat(43);
    let (s, body) = redeem(&srv, (&id, &secret), &code, Some(&verifier)).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    let (s, _) = srv.call(Method::DELETE, "/api/v1/session", Some(&session), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    rp.heard_no_more_than(0).await;
    srv.stop().await;
}

/// Removing a passkey ends the sessions it proved, and the apps holding
/// them are told, as for any other end.
#[tokio::test]
async fn removing_the_passkey_of_a_session_tells_its_apps() {
    use crate::passkeys::{authenticator, credential_named, enroll, invited, remove_credential, sign_in};
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let rp = RelyingParty::start(0).await;
    let (_, enrollment) = invited(&srv, "two@example.com").await;
    let (mut laptop, mut phone) = (authenticator(&srv), authenticator(&srv));
    enroll(&srv, &enrollment, &mut laptop, Some("Laptop")).await;
    let token_of = |v: Value| v["session_token"].as_str().unwrap().to_owned();
    let laptop_token = token_of(sign_in(&srv, &mut laptop, Some("two@example.com")).await);
    enroll(&srv, &laptop_token, &mut phone, Some("Phone")).await;
    let phone_token = token_of(sign_in(&srv, &mut phone, None).await);
    let (id, secret) = logout_client(&srv, &admin, Some(&rp.url)).await;
    let laptop_sid = granted_sid(&srv, &laptop_token, (&id, &secret)).await;
    tokens(&srv, &phone_token, (&id, &secret), "openid").await;

    let laptop_id = credential_named(&srv, &phone_token, "Laptop").await;
    let (s, _) = remove_credential(&srv, &phone_token, &laptop_id).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // Only the laptop's session ended, and only it is announced.
    let got = rp.wait_for(1).await;
    let claims = verified_logout_token(&srv, &got[0], &id).await;
    assert_eq!(claims["sid"], laptop_sid);
    rp.heard_no_more_than(1).await;
    srv.stop().await;
}

/// A session that times out is an ended session too: the janitor's pass
/// removes it with its logout token, once, and leaves live sessions alone.
#[tokio::test]
async fn a_session_that_times_out_is_announced_by_the_janitor_once() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let rp = RelyingParty::start(0).await;
    let (user_id, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (id, secret) = logout_client(&srv, &admin, Some(&rp.url)).await;
    let sid = granted_sid(&srv, &session, (&id, &secret)).await;
    let app = &srv.running.as_ref().unwrap().wired.app;

    // Live: the janitor leaves it alone and tells nobody.
    signet::server::janitor_pass(app).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rp.received.lock().unwrap().is_empty());
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&session), None).await;
    assert_eq!(s, StatusCode::OK);

    // Past every tier's absolute lifetime (30 days at most).
    srv.clock.advance(Duration::from_secs(31 * 86_400));
    let (s, _) = srv.call(Method::GET, "/api/v1/session", Some(&session), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    signet::server::janitor_pass(app).await;
    let got = rp.wait_for(1).await;
    let claims = verified_logout_token(&srv, &got[0], &id).await;
    assert_eq!((&claims["sub"], &claims["sid"]), (&json!(user_id), &sid));

    // The session is gone and its end was announced: nothing more to tell.
    signet::server::janitor_pass(app).await;
    rp.heard_no_more_than(1).await;
    // Its end is on the record, once, as the system's.
    let audit = srv.audit_of_type("session.ended").await;
    let ended: Vec<&Value> = audit.iter().filter(|e| e["details"]["reason"] == "timed_out").collect();
    assert_eq!(ended.len(), 1, "{audit:?}");
    assert_eq!(ended[0]["details"]["session_id"], sid);
    assert_eq!(ended[0]["actor"], "system");
    srv.stop().await;
}

#[tokio::test]
async fn after_a_step_up_the_relying_party_is_told_with_the_sid_it_knows() {
    let srv = crate::login::engine_server().await;
    let admin = srv.admin_token().await;
    let rp = RelyingParty::start(0).await;
    let token = crate::step_up::signed_in(&srv, "ada@example.com").await;
    let (id, secret) = logout_client(&srv, &admin, Some(&rp.url)).await;
    let sid = granted_sid(&srv, &token, (&id, &secret)).await;

    // The step-up replaces the session (a new id); the grant follows it.
    srv.clock.advance(Duration::from_secs(10 * 60));
    let (_, flow) = crate::step_up::step_up(&srv, &token, None).await;
    let (s, done) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/passkey"),
            Some(&token),
            Some(json!({ "code": "right" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    let raised = done["session_token"].as_str().unwrap();
    assert_ne!(json!(done["session"]["id"]), sid, "a new session id");
    assert!(rp.received.lock().unwrap().is_empty(), "a step-up is no logout");

    let (s, _) = srv.call(Method::DELETE, "/api/v1/session", Some(raised), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let got = rp.wait_for(1).await;
    assert_eq!(verified_logout_token(&srv, &got[0], &id).await["sid"], sid);
    srv.stop().await;
}
