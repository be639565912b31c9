//! The OpenID Provider as a relying party and a resource server see it:
//! discovery, the JWK Set, client registration from the CLI, and the token
//! endpoint's `client_credentials` grant, with every token verified against
//! the published keys.

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::cli::signet;
use crate::support::{Options, TestServer};

pub(crate) async fn get_json(srv: &TestServer, path: &str) -> (reqwest::header::HeaderMap, Value) {
    let r = srv.http.get(srv.url(path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    let headers = r.headers().clone();
    (headers, r.json().await.unwrap())
}

/// Registers a client with the CLI and returns `(client_id, client_secret?)`.
pub(crate) async fn client_add(srv: &TestServer, args: &[&str]) -> (String, Option<String>) {
    let mut all = vec!["client", "add"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = signet(srv, &all).await;
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["client_id"].as_str().unwrap().to_owned(),
        v["client_secret"].as_str().map(str::to_owned),
    )
}

pub(crate) async fn token_request(
    srv: &TestServer,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = srv.http.post(srv.url("/oauth2/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap())
}

/// Verifies an ES256 JWS against the JWK Set and returns its header and claims.
pub(crate) fn verify_es256(jws: &str, jwks: &Value) -> (Value, Value) {
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact serialisation");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is published in the JWK Set");
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(key["y"].as_str().unwrap()).unwrap());
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("the signature verifies against the published key");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    (header, claims)
}

#[tokio::test]
async fn discovery_names_the_issuer_and_only_implemented_endpoints() {
    let srv = TestServer::start().await;
    let (headers, doc) = get_json(&srv, "/.well-known/openid-configuration").await;
    assert_eq!(doc["issuer"], srv.base, "issuer is public_url without a trailing slash");
    assert_eq!(doc["jwks_uri"], srv.url("/oauth2/jwks"));
    assert_eq!(doc["token_endpoint"], srv.url("/oauth2/token"));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256", "RS256"])
    );
    assert!(headers[reqwest::header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("max-age"));
    // Every advertised endpoint answers (none is a 404).
    assert_eq!(doc["introspection_endpoint"], srv.url("/oauth2/introspect"));
    for key in ["jwks_uri"] {
        let r = srv.http.get(doc[key].as_str().unwrap()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{key}");
    }
    let r = srv.http.get(srv.url("/oauth2/token")).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "the token endpoint exists (POST only)"
    );
    srv.stop().await;
}

#[tokio::test]
async fn signing_keys_are_generated_once_and_shared_by_every_node() {
    let a = TestServer::start().await;
    let (_, jwks_a) = get_json(&a, "/oauth2/jwks").await;
    let keys = jwks_a["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[1]["kty"], "RSA");
    assert_eq!(keys[1]["alg"], "RS256");
    for k in keys {
        assert_eq!(k["use"], "sig");
        assert!(k.get("d").is_none(), "no private member is published");
    }
    // A second node on the same database serves the same keys.
    let b = TestServer::start_with(Options {
        shared_db: Some(a.db_url.clone()),
        env: a.sealing_env.clone(),
        ..Default::default()
    })
    .await;
    let (_, jwks_b) = get_json(&b, "/oauth2/jwks").await;
    assert_eq!(jwks_a, jwks_b);
    // At rest they are sealed: the stored row is not a PKCS#8 document.
    let stored: Vec<u8> = {
        use signet_core::store::SealedSecretStore;
        let store = signet_store::SqlStore::connect(&a.db_url).await.unwrap();
        let rows = store.stored_server_secrets().await.unwrap();
        store.close().await;
        rows.into_iter()
            .find(|r| r.name == "oidc_signing_key_es256_v1")
            .unwrap()
            .value
    };
    assert_eq!(stored[0], signet_core::sealing::FORMAT_VERSION);
    assert_ne!(stored[0], 0x30, "not a DER SEQUENCE (plaintext PKCS#8)");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn client_add_prints_a_secret_once_and_client_credentials_tokens_verify_against_the_jwks() {
    let srv = TestServer::start().await;
    let (client_id, secret) = client_add(
        &srv,
        &[
            "reports",
            "--redirect-uri",
            "https://reports.example.com/cb",
            "--client-credentials",
        ],
    )
    .await;
    let secret = secret.expect("a confidential client gets a secret");
    assert!(secret.starts_with("sgcs_"));
    assert!(
        URL_SAFE_NO_PAD.decode(&client_id).unwrap().len() >= 16,
        "client ids carry 128 bits"
    );

    // The secret is stored only as its hash.
    let stored_client = {
        use signet_core::store::OidcClientStore;
        let store = signet_store::SqlStore::connect(&srv.db_url).await.unwrap();
        let c = store.oidc_client(&client_id).await.unwrap().unwrap();
        store.close().await;
        c
    };
    let stored = stored_client.secret_hash.unwrap().as_bytes().to_vec();
    assert_eq!(stored.len(), 32);
    assert_ne!(stored, secret.as_bytes());

    // client_secret_basic.
    let (status, headers, body) = token_request(
        &srv,
        Some((&client_id, &secret)),
        &[("grant_type", "client_credentials"), ("scope", "email")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[reqwest::header::CACHE_CONTROL], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "email");
    assert_eq!(body["expires_in"], 600);
    let (_, jwks) = get_json(&srv, "/oauth2/jwks").await;
    let (header, claims) = verify_es256(body["access_token"].as_str().unwrap(), &jwks);
    assert_eq!(header["typ"], "at+jwt", "RFC 9068 access token");
    assert_eq!(claims["iss"], srv.base);
    assert_eq!(claims["sub"], client_id);
    assert_eq!(claims["client_id"], client_id);
    assert_eq!(claims["scope"], "email");
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 600);

    // client_secret_post.
    let (status, _, body) = token_request(
        &srv,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("scope").is_none(), "no scope asked, none granted");

    // Both grants are in the audit log.
    let admin = srv.admin_token().await;
    let (s, audit) = srv
        .call(
            Method::GET,
            "/api/v1/admin/audit?type=oidc.token_issued&limit=10",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["details"]["client_id"], client_id);
    assert_eq!(events[0]["details"]["grant_type"], "client_credentials");
    let (_, registered) = srv
        .call(
            Method::GET,
            "/api/v1/admin/audit?type=oidc.client_registered&limit=10",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(registered["events"][0]["actor"], "cli");
    assert!(registered["events"][0]["details"].get("client_secret").is_none());
    srv.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_an_unknown_client_and_a_secret_for_a_public_client_are_all_invalid_client() {
    let srv = TestServer::start().await;
    let (client_id, secret) = client_add(
        &srv,
        &[
            "reports",
            "--redirect-uri",
            "https://reports.example.com/cb",
            "--client-credentials",
        ],
    )
    .await;
    let secret = secret.unwrap();
    let (public_id, none) = client_add(
        &srv,
        &["spa", "--redirect-uri", "https://spa.example.com/cb", "--public"],
    )
    .await;
    assert!(none.is_none(), "a public client gets no secret");

    let wrong = format!("{secret}x");
    for (id, s) in [
        (client_id.as_str(), wrong.as_str()),
        ("no-such-client", secret.as_str()),
        (public_id.as_str(), "anything-at-all"),
    ] {
        let (status, headers, body) = token_request(&srv, Some((id, s)), &[("grant_type", "client_credentials")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{id}: {body}");
        assert_eq!(body["error"], "invalid_client");
        assert!(body["error_description"].is_string());
        assert_eq!(headers[reqwest::header::CACHE_CONTROL], "no-store");
        assert!(
            headers[reqwest::header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic"),
            "RFC 6749 §5.2: a 401 to HTTP Basic names the scheme"
        );
    }
    // The refusals are audited, naming the client that was claimed.
    let admin = srv.admin_token().await;
    let (_, audit) = srv
        .call(
            Method::GET,
            "/api/v1/admin/audit?type=oidc.token_refused&limit=10",
            Some(&admin),
            None,
        )
        .await;
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["details"]["error"] == "invalid_client"));
    srv.stop().await;
}

#[tokio::test]
async fn token_endpoint_refusals_use_the_rfc6749_shape() {
    let srv = TestServer::start().await;
    let (client_id, secret) = client_add(
        &srv,
        &[
            "reports",
            "--redirect-uri",
            "https://reports.example.com/cb",
            "--client-credentials",
        ],
    )
    .await;
    let secret = secret.unwrap();
    let (code_only, code_secret) = client_add(&srv, &["web", "--redirect-uri", "https://web.example.com/cb"]).await;
    let code_secret = code_secret.unwrap();
    let basic = Some((client_id.as_str(), secret.as_str()));

    type Case<'a> = (Option<(&'a str, &'a str)>, Vec<(&'a str, &'a str)>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            basic,
            vec![("grant_type", "password")],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            basic,
            vec![("grant_type", "urn:ietf:params:oauth:grant-type:device_code")],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (basic, vec![], StatusCode::BAD_REQUEST, "invalid_request"),
        (
            basic,
            vec![("grant_type", "client_credentials"), ("scope", "openid")],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            basic,
            vec![("grant_type", "client_credentials"), ("scope", "admin")],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        // Two authentication methods in one request (RFC 6749 §2.3).
        (
            basic,
            vec![("grant_type", "client_credentials"), ("client_secret", secret.as_str())],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        // A client registered for the code grant only.
        (
            Some((code_only.as_str(), code_secret.as_str())),
            vec![("grant_type", "client_credentials")],
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
        ),
        // No client authentication at all.
        (
            None,
            vec![("grant_type", "client_credentials")],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
    ];
    for (auth, form, status, code) in cases {
        let (s, headers, body) = token_request(&srv, auth, &form).await;
        assert_eq!(s, status, "{form:?}: {body}");
        assert_eq!(body["error"], code, "{form:?}");
        assert_eq!(headers[reqwest::header::CACHE_CONTROL], "no-store");
        assert!(body.get("message").is_none(), "the RFC's shape, not Signet's");
    }

    // A parameter sent twice (RFC 6749 §3.2).
    let r = srv
        .http
        .post(srv.url("/oauth2/token"))
        .basic_auth(&client_id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");

    // JSON instead of a form.
    let r = srv
        .http
        .post(srv.url("/oauth2/token"))
        .basic_auth(&client_id, Some(&secret))
        .json(&serde_json::json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    srv.stop().await;
}

#[tokio::test]
async fn client_add_refuses_redirect_uris_that_could_leak_a_code() {
    let srv = TestServer::start().await;
    for bad in [
        "http://app.example.com/cb",
        "https://app.example.com/cb#fragment",
        "https://user@app.example.com/cb",
        "/relative",
    ] {
        let out = signet(&srv, &["client", "add", "app", "--redirect-uri", bad, "--json"]).await;
        assert!(!out.status.success(), "{bad} was accepted");
        let err: Value = serde_json::from_slice(&out.stdout)
            .or_else(|_| serde_json::from_slice(&out.stderr))
            .unwrap_or(Value::Null);
        assert_eq!(err["error"], "invalid_request", "{bad}: {err}");
    }
    let out = signet(
        &srv,
        &[
            "client",
            "add",
            "spa",
            "--public",
            "--client-credentials",
            "--redirect-uri",
            "https://spa.example.com/cb",
            "--json",
        ],
    )
    .await;
    assert!(!out.status.success(), "a public client cannot use client_credentials");
    srv.stop().await;
}

#[tokio::test]
async fn introspection_reports_active_tokens_and_nothing_about_others() {
    let srv = TestServer::start().await;
    let (client_id, secret) = client_add(
        &srv,
        &[
            "reports",
            "--redirect-uri",
            "https://reports.example.com/cb",
            "--client-credentials",
        ],
    )
    .await;
    let secret = secret.unwrap();
    let (public_id, _) = client_add(
        &srv,
        &["spa", "--redirect-uri", "https://spa.example.com/cb", "--public"],
    )
    .await;
    let (_, _, body) = token_request(
        &srv,
        Some((&client_id, &secret)),
        &[("grant_type", "client_credentials"), ("scope", "email")],
    )
    .await;
    let token = body["access_token"].as_str().unwrap().to_owned();

    let introspect = |auth: Option<(String, String)>, form: Vec<(&'static str, String)>| {
        let mut req = srv.http.post(srv.url("/oauth2/introspect")).form(&form);
        if let Some((id, s)) = auth {
            req = req.basic_auth(id, Some(s));
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status();
            let cache = r.headers()[reqwest::header::CACHE_CONTROL].to_str().unwrap().to_owned();
            (status, cache, r.json::<Value>().await.unwrap())
        }
    };
    let me = Some((client_id.clone(), secret.clone()));

    let (status, cache, v) = introspect(me.clone(), vec![("token", token.clone())]).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(cache, "no-store");
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], client_id);
    assert_eq!(v["scope"], "email");
    assert_eq!(v["iss"], srv.base);
    assert_eq!(v["token_type"], "Bearer");

    // Garbage, a token with a changed payload, and a token of another type
    // all answer the same.
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"{}","sub":"x","exp":9999999999}}"#, srv.base)),
        parts[2]
    );
    for bad in ["not-a-token".to_owned(), forged, format!("{}.{}.", parts[0], parts[1])] {
        let (status, _, v) = introspect(me.clone(), vec![("token", bad.clone())]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v, serde_json::json!({ "active": false }), "{bad}");
    }

    // Only confidential clients may ask.
    let (status, _, v) = introspect(None, vec![("token", token.clone()), ("client_id", public_id)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"], "invalid_client");
    let (status, _, v) = introspect(None, vec![("token", token.clone())]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"], "invalid_client");
    let (status, _, v) = introspect(me.clone(), vec![]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "invalid_request");

    // Once expired, the token is inactive.
    srv.clock.advance(std::time::Duration::from_secs(601));
    let (_, _, v) = introspect(me, vec![("token", token)]).await;
    assert_eq!(v, serde_json::json!({ "active": false }));
    srv.stop().await;
}

#[tokio::test]
async fn admins_create_list_show_and_delete_clients_and_secrets_never_show_again() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let (s, created) = srv
        .call(
            Method::POST,
            "/api/v1/admin/oidc/clients",
            Some(&admin),
            Some(serde_json::json!({
                "name": "Wiki",
                "redirect_uris": ["https://wiki.example.com/cb"],
                "grant_types": ["authorization_code", "client_credentials"],
                "first_party": true,
                "assurance": { "min_aal": "aal2", "phishing_resistant": true }
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(created["client"]["source"], "admin");
    assert_eq!(created["client"]["assurance"]["min_aal"], "aal2");

    // The secret works at the token endpoint, and is never shown again.
    let (status, _, body) = token_request(
        &srv,
        Some((&client_id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (s, shown) = srv
        .call(
            Method::GET,
            &format!("/api/v1/admin/oidc/clients/{client_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(shown["name"], "Wiki");
    let (_, listed) = srv
        .call(Method::GET, "/api/v1/admin/oidc/clients", Some(&admin), None)
        .await;
    assert_eq!(listed["clients"].as_array().unwrap().len(), 1);
    for v in [&shown, &listed] {
        let text = v.to_string();
        assert!(!text.contains(&secret) && !text.contains("secret_hash"), "{text}");
    }

    // Bad input is refused with Signet's codes.
    let (s, bad) = srv
        .call(
            Method::POST,
            "/api/v1/admin/oidc/clients",
            Some(&admin),
            Some(serde_json::json!({ "name": "Evil", "redirect_uris": ["http://evil.example.com/cb"] })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(bad["error"], "invalid_request");
    let (s, _) = srv.call(Method::GET, "/api/v1/admin/oidc/clients", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Deleting ends the client: its secret no longer authenticates.
    let (s, _) = srv
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/oidc/clients/{client_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, gone) = srv
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/oidc/clients/{client_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(gone["error"], "oidc_client_not_found");
    let (status, _, body) = token_request(
        &srv,
        Some((&client_id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    let (_, audit) = srv
        .call(
            Method::GET,
            "/api/v1/admin/audit?type=oidc.client_deleted&limit=5",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(audit["events"][0]["details"]["client_id"], client_id);
    srv.stop().await;
}

// ---------------------------------------------------------------------------
// The authorization code flow, named after the OIDF Basic OP modules.
// ---------------------------------------------------------------------------

pub(crate) const RP_REDIRECT: &str = "https://rp.example.com/cb";

/// A user with a passkey, signed in with it (api mode): `(user_id, session_token)`.
pub(crate) async fn passkey_user(
    srv: &TestServer,
    email: &str,
) -> (String, String, crate::passkeys::soft::SoftAuthenticator) {
    let (id, enrollment) = crate::passkeys::invited(srv, email).await;
    let mut auth = crate::passkeys::authenticator(srv);
    crate::passkeys::enroll(srv, &enrollment, &mut auth, None).await;
    let done = crate::passkeys::sign_in(srv, &mut auth, Some(email)).await;
    (id, done["session_token"].as_str().unwrap().to_owned(), auth)
}

/// A PKCE pair `(verifier, S256 challenge)`.
pub(crate) fn pkce_pair() -> (String, String) {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

/// `GET /oauth2/authorize?params`, with the session as a bearer token if
/// given. Returns the status and the `Location` header.
pub(crate) async fn authorize(
    srv: &TestServer,
    session: Option<&str>,
    params: &[(&str, &str)],
) -> (StatusCode, Option<url::Url>) {
    let mut req = srv.http.get(srv.url("/oauth2/authorize")).query(params);
    if let Some(s) = session {
        req = req.bearer_auth(s);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.headers()[reqwest::header::CACHE_CONTROL], "no-store");
    let location = r
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|l| absolute(srv, l.to_str().unwrap()));
    (r.status(), location)
}

/// A `Location` header as an absolute URL.
pub(crate) fn absolute(srv: &TestServer, location: &str) -> url::Url {
    url::Url::parse(&srv.base).unwrap().join(location).unwrap()
}

pub(crate) fn query_of(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

/// Authorizes with a session and returns the code.
pub(crate) async fn code_for(srv: &TestServer, session: &str, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", RP_REDIRECT),
        ("scope", "openid email profile"),
    ];
    params.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    params.extend_from_slice(extra);
    let (s, loc) = authorize(srv, Some(session), &params).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let loc = loc.unwrap();
    assert!(loc.as_str().starts_with(RP_REDIRECT), "{loc}");
    query_of(&loc, "code").unwrap_or_else(|| panic!("a code in {loc}"))
}

pub(crate) async fn redeem(
    srv: &TestServer,
    client: (&str, &str),
    code: &str,
    verifier: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", RP_REDIRECT),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let (s, _, body) = token_request(srv, Some(client), &form).await;
    (s, body)
}

#[tokio::test]
async fn oidcc_server() {
    let srv = TestServer::start().await;
    let (user_id, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (client_id, secret) = client_add(&srv, &["Wiki", "--redirect-uri", RP_REDIRECT, "--first-party"]).await;
    let secret = secret.unwrap();
    let (verifier, challenge) = pkce_pair();

    let (s, loc) = authorize(
        &srv,
        Some(&session),
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", RP_REDIRECT),
            ("scope", "openid email profile"),
            ("state", "st-123"),
            ("nonce", "n-456"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let loc = loc.unwrap();
    assert_eq!(query_of(&loc, "state").as_deref(), Some("st-123"));
    assert_eq!(
        query_of(&loc, "iss").as_deref(),
        Some(srv.base.as_str()),
        "RFC 9207 iss"
    );
    let code = query_of(&loc, "code").unwrap();
    assert!(code.starts_with("sgac_") && code.len() >= 5 + 43, "≥ 256 bits");

    let (s, tokens) = redeem(&srv, (&client_id, &secret), &code, Some(&verifier)).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let (_, jwks) = get_json(&srv, "/oauth2/jwks").await;
    let (header, id) = verify_es256(tokens["id_token"].as_str().unwrap(), &jwks);
    assert_eq!(header["typ"], "JWT");
    assert_eq!(id["iss"], srv.base);
    assert_eq!(id["sub"], user_id);
    assert_eq!(id["aud"], client_id);
    assert_eq!(id["nonce"], "n-456");
    assert_eq!(id["acr"], "phr", "a passkey sign-in is phishing-resistant");
    assert_eq!(id["amr"].as_array().map(|a| !a.is_empty()), Some(true), "{id}");
    assert!(id["sid"].is_string() && id["auth_time"].is_i64() && id["iat"].is_i64());
    assert!(id["exp"].as_i64().unwrap() > id["iat"].as_i64().unwrap());
    assert_eq!(id["email"], "ada@example.com");
    assert_eq!(id["email_verified"], true);

    // UserInfo, by header (GET) and by form (POST).
    let at = tokens["access_token"].as_str().unwrap();
    let r = srv
        .http
        .get(srv.url("/oauth2/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["sub"], user_id);
    assert_eq!(info["email"], "ada@example.com");
    let r = srv
        .http
        .post(srv.url("/oauth2/userinfo"))
        .form(&[("access_token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Discovery now lists the endpoints, and they answer.
    let (_, doc) = get_json(&srv, "/.well-known/openid-configuration").await;
    assert_eq!(doc["authorization_endpoint"], srv.url("/oauth2/authorize"));
    assert_eq!(doc["userinfo_endpoint"], srv.url("/oauth2/userinfo"));
    assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    srv.stop().await;
}

#[tokio::test]
async fn oidcc_userinfo_refuses_a_bad_or_user_less_token() {
    let srv = TestServer::start().await;
    let r = srv
        .http
        .get(srv.url("/oauth2/userinfo"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()[reqwest::header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    // A client_credentials token names no user.
    let (id, secret) = client_add(&srv, &["Svc", "--client-credentials"]).await;
    let (_, _, t) = token_request(
        &srv,
        Some((&id, &secret.unwrap())),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let r = srv
        .http
        .get(srv.url("/oauth2/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    srv.stop().await;
}

#[tokio::test]
async fn oidcc_prompt_none_not_logged_in() {
    let srv = TestServer::start().await;
    let (client_id, _) = client_add(&srv, &["Wiki", "--redirect-uri", RP_REDIRECT, "--first-party"]).await;
    let (s, loc) = authorize(
        &srv,
        None,
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", RP_REDIRECT),
            ("scope", "openid"),
            ("prompt", "none"),
            ("state", "xyz"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let loc = loc.unwrap();
    assert!(loc.as_str().starts_with(RP_REDIRECT));
    assert_eq!(query_of(&loc, "error").as_deref(), Some("login_required"));
    assert_eq!(query_of(&loc, "state").as_deref(), Some("xyz"));
    assert_eq!(query_of(&loc, "iss").as_deref(), Some(srv.base.as_str()));
    srv.stop().await;
}

#[tokio::test]
async fn oidcc_ensure_registered_redirect_uri_and_near_misses_get_an_error_page() {
    let srv = TestServer::start().await;
    let (client_id, _) = client_add(&srv, &["Wiki", "--redirect-uri", RP_REDIRECT, "--first-party"]).await;
    let near_misses = [
        "https://rp.example.com/cb/",
        "https://rp.example.com/cb?x=1",
        "https://RP.example.com/cb",
        "https://rp.example.com/CB",
        "https://rp.example.com/cbx",
        "https://rp.example.com.evil.com/cb",
        "https://evil.com@rp.example.com/cb",
        "https://rp.example.com/x/../cb",
        "https://rp.example.com/cb#frag",
        "http://rp.example.com/cb",
        "https://rp.example.com:443/cb",
        "https://attacker.example/cb",
    ];
    for uri in near_misses {
        let (s, loc) = authorize(
            &srv,
            None,
            &[
                ("response_type", "code"),
                ("client_id", &client_id),
                ("redirect_uri", uri),
                ("scope", "openid"),
            ],
        )
        .await;
        assert_eq!((s, loc), (StatusCode::BAD_REQUEST, None), "{uri}");
    }
    // An unknown client and a missing redirect URI: an error page too.
    for params in [
        vec![
            ("response_type", "code"),
            ("client_id", "nope"),
            ("redirect_uri", RP_REDIRECT),
        ],
        vec![("response_type", "code"), ("client_id", client_id.as_str())],
    ] {
        let (s, loc) = authorize(&srv, None, &params).await;
        assert_eq!((s, loc), (StatusCode::BAD_REQUEST, None));
    }
    srv.stop().await;
}

#[tokio::test]
async fn unsupported_response_type_and_missing_openid_are_sent_back_to_the_client() {
    let srv = TestServer::start().await;
    let (client_id, _) = client_add(&srv, &["Wiki", "--redirect-uri", RP_REDIRECT, "--first-party"]).await;
    for (rt, scope, expected) in [
        ("token", "openid", "unsupported_response_type"),
        ("code id_token", "openid", "unsupported_response_type"),
        ("code", "email", "invalid_scope"),
    ] {
        let (s, loc) = authorize(
            &srv,
            None,
            &[
                ("response_type", rt),
                ("client_id", &client_id),
                ("redirect_uri", RP_REDIRECT),
                ("scope", scope),
                ("state", "s"),
            ],
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let loc = loc.unwrap();
        assert_eq!(query_of(&loc, "error").as_deref(), Some(expected), "{rt}");
        assert_eq!(query_of(&loc, "state").as_deref(), Some("s"));
    }
    srv.stop().await;
}

#[tokio::test]
async fn pkce_is_s256_only_required_for_public_clients_and_cannot_be_downgraded() {
    let srv = TestServer::start().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (conf_id, secret) = client_add(&srv, &["Wiki", "--redirect-uri", RP_REDIRECT, "--first-party"]).await;
    let secret = secret.unwrap();
    let (pub_id, _) = client_add(
        &srv,
        &["Spa", "--redirect-uri", RP_REDIRECT, "--public", "--first-party"],
    )
    .await;
    let (verifier, challenge) = pkce_pair();
    let refused = |loc: Option<url::Url>| query_of(&loc.unwrap(), "error");

    // plain, a challenge without a method, and a public client without PKCE.
    for params in [
        vec![
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "plain"),
        ],
        vec![("code_challenge", challenge.as_str())],
    ] {
        let mut all = vec![
            ("response_type", "code"),
            ("client_id", conf_id.as_str()),
            ("redirect_uri", RP_REDIRECT),
            ("scope", "openid"),
        ];
        all.extend(params);
        let (_, loc) = authorize(&srv, Some(&session), &all).await;
        assert_eq!(refused(loc).as_deref(), Some("invalid_request"));
    }
    let (_, loc) = authorize(
        &srv,
        Some(&session),
        &[
            ("response_type", "code"),
            ("client_id", &pub_id),
            ("redirect_uri", RP_REDIRECT),
            ("scope", "openid"),
        ],
    )
    .await;
    assert_eq!(refused(loc).as_deref(), Some("invalid_request"));

    // A code with a challenge needs the verifier; the wrong one fails.
    let code = code_for(
        &srv,
        &session,
        &conf_id,
        &[("code_challenge", &challenge), ("code_challenge_method", "S256")],
    )
    .await;
    let (s, body) = redeem(&srv, (&conf_id, &secret), &code, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let code = code_for(
        &srv,
        &session,
        &conf_id,
        &[("code_challenge", &challenge), ("code_challenge_method", "S256")],
    )
    .await;
    let (other, _) = pkce_pair();
    let (s, body) = redeem(&srv, (&conf_id, &secret), &code, Some(&other)).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // A verifier for a code issued without a challenge: a downgrade, refused.
    let code = code_for(&srv, &session, &conf_id, &[]).await;
    let (s, body) = redeem(&srv, (&conf_id, &secret), &code, Some(&verifier)).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // A public client with S256 redeems without a secret.
    let code = code_for(
        &srv,
        &session,
        &pub_id,
        &[("code_challenge", &challenge), ("code_challenge_method", "S256")],
    )
    .await;
    let (s, _, body) = token_request(
        &srv,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &pub_id),
            ("code", &code),
            ("redirect_uri", RP_REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body["id_token"].is_string());
    srv.stop().await;
}

#[tokio::test]
async fn oidcc_codereuse_revokes_the_tokens_issued_from_the_code() {
    let srv = TestServer::start().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (client_id, secret) = client_add(&srv, &["Wiki", "--redirect-uri", RP_REDIRECT, "--first-party"]).await;
    let secret = secret.unwrap();
    let code = code_for(&srv, &session, &client_id, &[]).await;
    let (s, tokens) = redeem(&srv, (&client_id, &secret), &code, None).await;
    assert_eq!(s, StatusCode::OK);
    let at = tokens["access_token"].as_str().unwrap();
    let r = srv
        .http
        .get(srv.url("/oauth2/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let (s, body) = redeem(&srv, (&client_id, &secret), &code, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let r = srv
        .http
        .get(srv.url("/oauth2/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the first access token is revoked"
    );

    // A code for another client, a wrong redirect URI, an expired code.
    let (other_id, other_secret) = client_add(&srv, &["Other", "--redirect-uri", RP_REDIRECT, "--first-party"]).await;
    let code = code_for(&srv, &session, &client_id, &[]).await;
    let (s, body) = redeem(&srv, (&other_id, &other_secret.unwrap()), &code, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let code = code_for(&srv, &session, &client_id, &[]).await;
    let (s, _, body) = token_request(
        &srv,
        Some((&client_id, &secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://rp.example.com/cb/"),
        ],
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let code = code_for(&srv, &session, &client_id, &[]).await;
    srv.clock.advance(std::time::Duration::from_secs(61));
    let (s, body) = redeem(&srv, (&client_id, &secret), &code, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    srv.stop().await;
}

/// The one answer of concurrent uses of a one-time grant that was `200`;
/// every other is the RFC 6749 §5.2 `invalid_grant`.
fn the_one_winner(answers: &[(StatusCode, Value)]) -> &Value {
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (s, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(
            (*s, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{body}"
        );
    }
    won[0]
}

/// Twenty concurrent redemptions of one code: exactly one inserts its row,
/// and every loser finds it taken and is answered as the reuse it is:
/// `invalid_grant`, with the winner's tokens revoked (RFC 6749 §4.1.2) and
/// one `oidc.code_reused` record each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_redemptions_of_one_code_exactly_one_wins() {
    let srv = TestServer::start().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (client_id, secret) = client_add(&srv, &["Wiki", "--redirect-uri", RP_REDIRECT, "--first-party"]).await;
    let secret = secret.unwrap();
    let code = code_for(&srv, &session, &client_id, &[]).await;
    let attempts = (0..20).map(|_| redeem(&srv, (&client_id, &secret), &code, None));
    let results = futures::future::join_all(attempts).await;
    let won = the_one_winner(&results);
    // The losers presented a used code: what it issued is revoked.
    assert_eq!(
        userinfo_status(&srv, won["access_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(srv.audit_of_type("oidc.code_reused").await.len(), 19);
    assert_eq!(srv.audit_of_type("oidc.token_issued").await.len(), 1);
    srv.stop().await;
}

/// `max_age=1` with a session older than that (and `prompt=login`) sends
/// the browser to Signet's login with the request stored; a new sign-in
/// with that `return_to` continues to it, and the code it gets states the
/// new `auth_time`.
#[tokio::test]
async fn oidcc_max_age_1_and_prompt_login_force_a_new_sign_in_that_resumes_the_request() {
    let srv = TestServer::start().await;
    let (_, session, mut auth) = passkey_user(&srv, "ada@example.com").await;
    let (client_id, secret) = client_add(&srv, &["Wiki", "--redirect-uri", RP_REDIRECT, "--first-party"]).await;
    let secret = secret.unwrap();
    srv.clock.advance(std::time::Duration::from_secs(2));
    for extra in [("max_age", "1"), ("prompt", "login")] {
        let (s, loc) = authorize(
            &srv,
            Some(&session),
            &[
                ("response_type", "code"),
                ("client_id", &client_id),
                ("redirect_uri", RP_REDIRECT),
                ("scope", "openid"),
                ("state", "again"),
                ("login_hint", "ada@example.com"),
                extra,
            ],
        )
        .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let loc = loc.unwrap();
        assert_eq!(loc.path(), "/login", "{loc}");
        let return_to = query_of(&loc, "return_to").unwrap();
        assert!(return_to.starts_with("/oauth2/authorize/resume/"));
        let stepping_up = extra.0 == "max_age";
        let (s, started, step_base, bearer) = if stepping_up {
            // The session is the right person's, only too old: it is raised
            // with a step-up bound to it, not replaced by a new sign-in.
            assert_eq!(query_of(&loc, "step_up").as_deref(), Some("1"), "{loc}");
            let (s, started) = srv
                .call(
                    Method::POST,
                    "/api/v1/step-up",
                    Some(&session),
                    Some(serde_json::json!({ "return_to": return_to })),
                )
                .await;
            (s, started, "/api/v1/step-up", Some(session.clone()))
        } else {
            // prompt=login: a new sign-in (perhaps as someone else).
            assert_eq!(query_of(&loc, "step_up"), None, "{loc}");
            assert_eq!(query_of(&loc, "login_hint").as_deref(), Some("ada@example.com"));
            let (s, started) = srv
                .call(
                    Method::POST,
                    "/api/v1/login",
                    None,
                    Some(serde_json::json!({ "identifier": "ada@example.com", "mode": "api", "return_to": return_to })),
                )
                .await;
            (s, started, "/api/v1/login", None)
        };
        assert_eq!(s, StatusCode::OK, "{started}");
        let entry = started["methods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["method"] == "passkey")
            .unwrap()
            .clone();
        let credential = auth.get(&entry["publicKey"]).await;
        let (s, done) = srv
            .call(
                Method::POST,
                &format!("{step_base}/{}/passkey", started["flow_id"].as_str().unwrap()),
                bearer.as_deref(),
                Some(serde_json::json!({ "credential": credential })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{done}");
        assert_eq!(done["state"], "complete", "{done}");
        let resume = done["return_to"].as_str().unwrap().to_owned();
        assert_eq!(resume, return_to);
        let fresh = done["session_token"].as_str().unwrap();

        let r = srv.http.get(srv.url(&resume)).bearer_auth(fresh).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let loc = absolute(&srv, r.headers()[reqwest::header::LOCATION].to_str().unwrap());
        assert_eq!(query_of(&loc, "state").as_deref(), Some("again"));
        let code = query_of(&loc, "code").unwrap();
        let (s, tokens) = redeem(&srv, (&client_id, &secret), &code, None).await;
        assert_eq!(s, StatusCode::OK);
        let (_, jwks) = get_json(&srv, "/oauth2/jwks").await;
        let (_, id) = verify_es256(tokens["id_token"].as_str().unwrap(), &jwks);
        let now = signet_core::clock::Clock::now(&*srv.clock).as_millis() / 1000;
        assert!(now - id["auth_time"].as_i64().unwrap() <= 1, "{id}");
        // What the (raised or new) session actually proved: a passkey.
        assert_eq!(id["acr"], "phr", "{id}");
        assert!(
            id["amr"].as_array().unwrap().iter().any(|m| m == "swk" || m == "hwk"),
            "{id}"
        );

        // The stored request was answered: resuming it again fails.
        let r = srv.http.get(srv.url(&resume)).bearer_auth(fresh).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        srv.clock.advance(std::time::Duration::from_secs(2));
    }
    srv.stop().await;
}

/// `acr_values=phr` on top of a client that asks nothing: a passkey
/// session meets it at once; with `prompt=none` and a client demanding
/// AAL3 the same session is not enough (`login_required`).
#[tokio::test]
async fn acr_values_and_the_client_floor_combine() {
    let srv = TestServer::start().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (client_id, _) = client_add(&srv, &["Wiki", "--redirect-uri", RP_REDIRECT, "--first-party"]).await;
    let code = code_for(&srv, &session, &client_id, &[("acr_values", "phr")]).await;
    assert!(code.starts_with("sgac_"));
    let (s, loc) = authorize(
        &srv,
        Some(&session),
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", RP_REDIRECT),
            ("scope", "openid"),
            ("acr_values", "phrh"),
            ("prompt", "none"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(query_of(&loc.unwrap(), "error").as_deref(), Some("login_required"));
    srv.stop().await;
}

/// A confidential client allowed `offline_access` and the refresh grant,
/// created through the admin API: `(client_id, secret)`.
pub(crate) async fn offline_client(srv: &TestServer, admin: &str) -> (String, String) {
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/admin/oidc/clients",
            Some(admin),
            Some(serde_json::json!({
                "name": "Mail",
                "redirect_uris": [RP_REDIRECT],
                "first_party": true,
                "scopes": ["openid", "email", "offline_access"],
                "grant_types": ["authorization_code", "refresh_token"],
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    (
        body["client_id"].as_str().unwrap().to_owned(),
        body["client_secret"].as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn refresh(
    srv: &TestServer,
    client: (&str, &str),
    token: &str,
    scope: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let (s, _, body) = token_request(srv, Some(client), &form).await;
    (s, body)
}

pub(crate) async fn userinfo_status(srv: &TestServer, at: &str) -> StatusCode {
    srv.http
        .get(srv.url("/oauth2/userinfo"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .status()
}

pub(crate) fn claims_of(jws: &str) -> Value {
    let payload = jws.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Twenty uses of one refresh token at once: the first way (read, then a
/// checked rotation, ADR 0040) lets exactly one through, and every loser
/// is answered as the replay it is, on the locked way: `invalid_grant`,
/// and the family revoked, the winner's new tokens included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uses_of_one_refresh_token_issue_once_and_revoke_the_family() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let (_, session, _auth) = passkey_user(&srv, "grace@example.com").await;
    let (client_id, secret) = offline_client(&srv, &admin).await;
    let client = (client_id.as_str(), secret.as_str());
    let code = code_for(&srv, &session, &client_id, &[("scope", "openid offline_access")]).await;
    let (s, tokens) = redeem(&srv, client, &code, None).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    let answers = futures::future::join_all((0..20).map(|_| refresh(&srv, client, &rt, None))).await;
    let won = the_one_winner(&answers);
    // The family is revoked: the winner's refresh and access tokens too.
    let next = won["refresh_token"].as_str().unwrap();
    let (s, body) = refresh(&srv, client, next, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        userinfo_status(&srv, won["access_token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(!srv.audit_of_type("oidc.refresh_reused").await.is_empty());
    srv.stop().await;
}

#[tokio::test]
async fn oidcc_refresh_token_rotates_and_a_replay_revokes_the_family() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (client_id, secret) = offline_client(&srv, &admin).await;
    let client = (client_id.as_str(), secret.as_str());

    // Without offline_access: no refresh token.
    let code = code_for(&srv, &session, &client_id, &[("scope", "openid")]).await;
    let (_, tokens) = redeem(&srv, client, &code, None).await;
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");

    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", RP_REDIRECT),
        ("scope", "openid email offline_access"),
    ];
    let (_, loc) = authorize(&srv, Some(&session), &params).await;
    let code = query_of(&loc.unwrap(), "code").unwrap();
    let (s, tokens) = redeem(&srv, client, &code, None).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(first.starts_with("sgrt_"));
    let acr = claims_of(tokens["access_token"].as_str().unwrap())["acr"].clone();

    // Rotation: a new refresh token every time, the same acr, scope may narrow only.
    let (s, second) = refresh(&srv, client, &first, None).await;
    assert_eq!(s, StatusCode::OK, "{second}");
    let second_rt = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_rt, first);
    assert_eq!(claims_of(second["access_token"].as_str().unwrap())["acr"], acr);
    let (s, body) = refresh(&srv, client, &second_rt, Some("openid profile")).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    let (s, third) = refresh(&srv, client, &second_rt, Some("openid")).await;
    assert_eq!(s, StatusCode::OK, "{third}");
    assert_eq!(third["scope"], "openid");
    let third_rt = third["refresh_token"].as_str().unwrap().to_owned();
    let third_at = third["access_token"].as_str().unwrap().to_owned();
    assert_eq!(userinfo_status(&srv, &third_at).await, StatusCode::OK);

    // Another client cannot use it.
    let (other_id, other_secret) = offline_client(&srv, &admin).await;
    let (s, body) = refresh(&srv, (&other_id, &other_secret), &third_rt, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (s, fourth) = refresh(&srv, client, &third_rt, None).await;
    assert_eq!(s, StatusCode::OK, "another client's attempt changed nothing: {fourth}");

    // Replaying the first token revokes the family, access tokens included.
    let (_, loc) = authorize(&srv, Some(&session), &params).await;
    let code = query_of(&loc.unwrap(), "code").unwrap();
    let (_, tokens) = redeem(&srv, client, &code, None).await;
    let a = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (_, next) = refresh(&srv, client, &a, None).await;
    let b = next["refresh_token"].as_str().unwrap().to_owned();
    let b_at = next["access_token"].as_str().unwrap().to_owned();
    let (s, body) = refresh(&srv, client, &a, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (s, body) = refresh(&srv, client, &b, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(userinfo_status(&srv, &b_at).await, StatusCode::UNAUTHORIZED);

    // A client without the refresh grant may not ask for offline_access.
    let (plain_id, _) = client_add(&srv, &["Wiki", "--redirect-uri", RP_REDIRECT, "--first-party"]).await;
    params[1] = ("client_id", plain_id.as_str());
    let (_, loc) = authorize(&srv, Some(&session), &params).await;
    assert_eq!(query_of(&loc.unwrap(), "error").as_deref(), Some("invalid_scope"));
    srv.stop().await;
}

#[tokio::test]
async fn disabling_a_user_ends_their_refresh_tokens_and_access_tokens() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let (user_id, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (client_id, secret) = offline_client(&srv, &admin).await;
    let client = (client_id.as_str(), secret.as_str());
    let code = code_for(&srv, &session, &client_id, &[("scope", "openid offline_access")]).await;
    let (_, tokens) = redeem(&srv, client, &code, None).await;
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    let at = tokens["access_token"].as_str().unwrap().to_owned();
    let (s, _) = srv
        .call(
            Method::POST,
            &format!("/api/v1/admin/users/{user_id}/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, body) = refresh(&srv, client, &rt, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(userinfo_status(&srv, &at).await, StatusCode::UNAUTHORIZED);
    srv.stop().await;
}

/// `signet keys rotate` while the server runs: the new key is published
/// before it signs, tokens of the old key keep verifying through the grace
/// period, and the old key leaves the JWK Set after it.
#[tokio::test]
async fn keys_rotate_publishes_first_signs_later_and_retires_the_old_key_after_the_grace() {
    let srv = TestServer::start().await;
    let (client_id, secret) = client_add(&srv, &["reports", "--client-credentials"]).await;
    let secret = secret.unwrap();
    let issue = || async {
        let (status, _, body) = token_request(
            &srv,
            Some((&client_id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    };
    let kid_of = |jws: &str| -> String {
        let h = jws.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
        header["kid"].as_str().unwrap().to_owned()
    };
    let introspect = |token: String| {
        let req = srv
            .http
            .post(srv.url("/oauth2/introspect"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[("token", token)]);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap()["active"].clone() }
    };
    let es256_kids = |jwks: &Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["alg"] == "ES256")
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, before) = get_json(&srv, "/oauth2/jwks").await;
    let old_kid = es256_kids(&before)[0].clone();
    let signed_before = issue().await;
    assert_eq!(kid_of(&signed_before), old_kid);

    // A delay shorter than the nodes' reload plus the JWK Set cache is refused.
    let out = signet(&srv, &["keys", "rotate", "--publish-delay-secs", "60", "--json"]).await;
    assert!(!out.status.success());
    let out = signet(&srv, &["keys", "rotate", "--json"]).await;
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let rotated: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = rotated["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "ES256 and RS256 both rotate: {rotated}");
    let new_kid = keys.iter().find(|k| k["alg"] == "ES256").unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(keys[0]["generation"], 2);

    // The running node picks the keys up (its reloader does this every minute).
    srv.reload_signing_keys().await;
    let (_, published) = get_json(&srv, "/oauth2/jwks").await;
    assert_eq!(published["keys"].as_array().unwrap().len(), 4, "{published}");
    assert_eq!(es256_kids(&published), [new_kid.clone(), old_kid.clone()]);
    // Published, but not signing yet.
    let still_old = issue().await;
    assert_eq!(kid_of(&still_old), old_kid);
    assert_eq!(introspect(signed_before.clone()).await, true);

    // After the publish delay, new tokens carry the new kid; the old
    // key's tokens still verify against the JWK Set.
    srv.clock.advance(std::time::Duration::from_secs(11 * 60));
    let signed_after = issue().await;
    assert_eq!(kid_of(&signed_after), new_kid);
    let (_, during) = get_json(&srv, "/oauth2/jwks").await;
    verify_es256(&signed_after, &during);
    verify_es256(&signed_before, &during);
    verify_es256(&still_old, &during);
    assert_eq!(introspect(signed_after.clone()).await, true);

    // After the grace period the old key is gone from the JWK Set, and
    // nothing it signed is accepted any more.
    srv.clock.advance(std::time::Duration::from_secs(3600));
    let (_, after) = get_json(&srv, "/oauth2/jwks").await;
    assert_eq!(es256_kids(&after), std::slice::from_ref(&new_kid));
    assert_eq!(after["keys"].as_array().unwrap().len(), 2);
    assert_eq!(kid_of(&issue().await), new_kid);

    // The CLI lists what is published, and the rotation is audited.
    let listed: Value = serde_json::from_slice(&signet(&srv, &["keys", "list", "--json"]).await.stdout).unwrap();
    assert!(listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == new_kid.as_str()));
    let admin = srv.admin_token().await;
    let (status, audit) = srv
        .call(
            Method::GET,
            "/api/v1/admin/audit?type=oidc.signing_key_rotated",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(audit["events"].as_array().unwrap().len(), 1, "{audit}");
    srv.stop().await;
}

/// The admin API changes a client in place, rotates its secret with a
/// grace period during which both secrets work, and deleting it revokes
/// what it was granted.
#[tokio::test]
async fn admins_update_clients_rotate_secrets_with_a_grace_and_deleting_revokes_grants() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (client_id, old_secret) = offline_client(&srv, &admin).await;
    let path = format!("/api/v1/admin/oidc/clients/{client_id}");

    // Update: only the members sent change; the secret is never shown.
    let (s, updated) = srv
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(serde_json::json!({
                "name": "Mail 2",
                "redirect_uris": [RP_REDIRECT, "https://rp.example.com/cb2"],
                "first_party": true,
                "access_token_ttl_secs": 120,
                "assurance": { "min_aal": "aal1", "max_auth_age_secs": 3600 }
            })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Mail 2");
    assert_eq!(updated["redirect_uris"].as_array().unwrap().len(), 2);
    assert_eq!(updated["first_party"], true);
    assert_eq!(updated["access_token_ttl_secs"], 120);
    assert_eq!(updated["assurance"]["max_auth_age_secs"], 3600);
    assert_eq!(
        updated["scopes"],
        serde_json::json!(["openid", "email", "offline_access"])
    );
    assert!(!updated.to_string().contains(&old_secret));
    for (bad, code) in [
        (
            serde_json::json!({ "redirect_uris": ["http://evil.example.com/cb"] }),
            "invalid_request",
        ),
        (serde_json::json!({ "grant_types": [] }), "invalid_request"),
        (serde_json::json!({ "id_token_ttl_secs": 0 }), "invalid_request"),
        (serde_json::json!({ "public": true }), "invalid_request"),
    ] {
        let (s, body) = srv.call(Method::PATCH, &path, Some(&admin), Some(bad.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad} -> {body}");
        assert!(body["error"].as_str().is_some(), "{body}");
        let _ = code;
    }
    let (s, body) = srv
        .call(
            Method::PATCH,
            "/api/v1/admin/oidc/clients/nope",
            Some(&admin),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("oidc_client_not_found"))
    );
    // A grant issued under the new settings carries the new lifetime.
    let code = code_for(&srv, &session, &client_id, &[("scope", "openid offline_access")]).await;
    let (s, tokens) = redeem(&srv, (&client_id, &old_secret), &code, None).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["expires_in"], 120);
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();

    // Secret rotation: the new secret is shown once; both work during the grace.
    let (s, rotated) = srv
        .call(
            Method::POST,
            &format!("{path}/secret"),
            Some(&admin),
            Some(serde_json::json!({ "grace_secs": 600 })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{rotated}");
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("sgcs_"));
    assert_ne!(new_secret, old_secret);
    assert!(rotated["previous_secret_expires_at"].is_string());
    let (_, shown) = srv.call(Method::GET, &path, Some(&admin), None).await;
    assert!(!shown.to_string().contains(&new_secret) && !shown.to_string().contains(&old_secret));
    let (s, next) = refresh(&srv, (&client_id, &old_secret), &refresh_token, None).await;
    assert_eq!(s, StatusCode::OK, "the old secret works in the grace period: {next}");
    let refresh_token = next["refresh_token"].as_str().unwrap().to_owned();
    let (s, next) = refresh(&srv, (&client_id, &new_secret), &refresh_token, None).await;
    assert_eq!(s, StatusCode::OK, "the new secret works: {next}");
    let refresh_token = next["refresh_token"].as_str().unwrap().to_owned();
    // After the grace the old one is refused, the new one still works.
    srv.clock.advance(std::time::Duration::from_secs(601));
    let (s, body) = refresh(&srv, (&client_id, &old_secret), &refresh_token, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (s, next) = refresh(&srv, (&client_id, &new_secret), &refresh_token, None).await;
    assert_eq!(s, StatusCode::OK, "{next}");
    let refresh_token = next["refresh_token"].as_str().unwrap().to_owned();
    let fresh_access = next["access_token"].as_str().unwrap().to_owned();
    // A second rotation without a body uses the default grace and forgets
    // the first secret entirely.
    let r = srv
        .http
        .post(srv.url(&format!("{path}/secret")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let third: Value = r.json().await.unwrap();
    let third_secret = third["client_secret"].as_str().unwrap().to_owned();
    let (s, _, _) = token_request(
        &srv,
        Some((&client_id, &old_secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "only the last two secrets ever work");

    // A public client has no secret to rotate.
    let (_, public) = srv
        .call(
            Method::POST,
            "/api/v1/admin/oidc/clients",
            Some(&admin),
            Some(serde_json::json!({ "name": "SPA", "public": true, "redirect_uris": [RP_REDIRECT] })),
        )
        .await;
    let public_id = public["client_id"].as_str().unwrap();
    let (s, body) = srv
        .call(
            Method::POST,
            &format!("/api/v1/admin/oidc/clients/{public_id}/secret"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // Deleting the client revokes its grants: the refresh token and the
    // access tokens issued under it stop working at once.
    assert_eq!(userinfo_status(&srv, &fresh_access).await, StatusCode::OK);
    let (s, _) = srv.call(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(userinfo_status(&srv, &fresh_access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(userinfo_status(&srv, &access_token).await, StatusCode::UNAUTHORIZED);
    let (s, _) = refresh(&srv, (&client_id, &third_secret), &refresh_token, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Every change is audited, never with a secret.
    let (_, audit) = srv
        .call(Method::GET, "/api/v1/admin/audit?limit=100", Some(&admin), None)
        .await;
    let text = audit.to_string();
    for secret in [&old_secret, &new_secret, &third_secret] {
        assert!(!text.contains(secret.as_str()));
    }
    for ty in [
        "oidc.client_updated",
        "oidc.client_secret_rotated",
        "oidc.client_deleted",
    ] {
        assert!(text.contains(ty), "{ty} audited");
    }
    srv.stop().await;
}

/// The CLI mirrors the admin API, and a client of `[[oidc.clients]]` is
/// changed in the file only.
#[tokio::test]
async fn client_cli_shows_updates_rotates_and_deletes() {
    let srv = TestServer::start().await;
    let (client_id, secret) = client_add(&srv, &["reports", "--client-credentials"]).await;
    let secret = secret.unwrap();
    let srv_ref = &srv;
    let run = |args: Vec<String>| async move {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.push("--json");
        let out = signet(srv_ref, &all).await;
        let answer = serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null);
        // A failure says why (the CLI's error is on stderr).
        let said = if out.status.success() {
            answer
        } else {
            serde_json::json!({ "stderr": String::from_utf8_lossy(&out.stderr), "stdout": answer })
        };
        (out.status.success(), said)
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let (ok, shown) = run(s(&["client", "show", &client_id])).await;
    assert!(ok, "{shown}");
    assert_eq!(shown["name"], "reports");
    assert!(!shown.to_string().contains(&secret));
    let (ok, updated) = run(s(&[
        "client",
        "update",
        &client_id,
        "--name",
        "Reports",
        "--access-token-ttl-secs",
        "60",
        "--min-aal",
        "aal2",
    ]))
    .await;
    assert!(ok, "{updated}");
    assert_eq!(updated["name"], "Reports");
    assert_eq!(updated["access_token_ttl_secs"], 60);
    assert_eq!(updated["assurance"]["min_aal"], "aal2");
    let (ok, rotated) = run(s(&["client", "rotate-secret", &client_id, "--grace-secs", "0"])).await;
    assert!(ok, "{rotated}");
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    let cc = [("grant_type", "client_credentials")];
    // The CLI ran on the system clock; the server's manual clock started
    // at the server's start, a little behind it.
    srv.clock.advance(std::time::Duration::from_secs(30));
    let (status, _, _) = token_request(&srv, Some((&client_id, &secret)), &cc).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "grace 0 ends the old secret at once");
    let (status, _, body) = token_request(&srv, Some((&client_id, &new_secret)), &cc).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 60);
    let (ok, _) = run(s(&["client", "delete", &client_id])).await;
    assert!(ok);
    let (ok, _) = run(s(&["client", "show", &client_id])).await;
    assert!(!ok);
    srv.stop().await;
}

/// A nonce travels sealed in the code, so its length is bounded: a longer
/// one is refused at the authorization endpoint, not by a code that could
/// never be redeemed.
#[tokio::test]
async fn a_nonce_longer_than_512_characters_is_refused() {
    let srv = TestServer::start().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (client_id, secret) = client_add(&srv, &["Wiki", "--redirect-uri", RP_REDIRECT, "--first-party"]).await;
    let long = "n".repeat(513);
    let refused = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", RP_REDIRECT),
        ("scope", "openid"),
        ("nonce", long.as_str()),
    ];
    let (_, loc) = authorize(&srv, Some(&session), &refused).await;
    assert_eq!(query_of(&loc.unwrap(), "error").as_deref(), Some("invalid_request"));
    let longest = "n".repeat(512);
    let code = code_for(&srv, &session, &client_id, &[("scope", "openid"), ("nonce", &longest)]).await;
    let (s, tokens) = redeem(&srv, (&client_id, &secret.unwrap()), &code, None).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    srv.stop().await;
}

/// Each node remembers a client for a second (ADR 0039). A change made
/// elsewhere (here: the CLI, another process on the same database) is seen
/// at once where it matters: a secret rotated elsewhere is accepted on its
/// first use, the old one refused as soon as the new one was seen, and a
/// client deleted elsewhere redeems no code. Other settings are seen within
/// the second.
#[tokio::test]
async fn a_node_remembers_clients_briefly_and_sees_changes_made_elsewhere() {
    let srv = TestServer::start().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (client_id, secret) = client_add(
        &srv,
        &[
            "Wiki",
            "--redirect-uri",
            RP_REDIRECT,
            "--first-party",
            "--client-credentials",
        ],
    )
    .await;
    let secret = secret.unwrap();
    let cc = [("grant_type", "client_credentials")];
    let (status, _, body) = token_request(&srv, Some((&client_id, &secret)), &cc).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ttl_before = body["expires_in"].clone();

    // Rotated by another process, with no grace: the new secret works at
    // once, and from then on the old one does not.
    let out = signet(
        &srv,
        &["client", "rotate-secret", &client_id, "--grace-secs", "0", "--json"],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rotated: Value = serde_json::from_slice(&out.stdout).unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    // The CLI ran on the system clock; the server's manual clock started a
    // little behind it. Within the remembered second still.
    let (status, _, body) = token_request(&srv, Some((&client_id, &new_secret)), &cc).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    srv.clock.advance(std::time::Duration::from_secs(30));
    let (status, _, _) = token_request(&srv, Some((&client_id, &secret)), &cc).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Another setting changed elsewhere: seen once the second has passed.
    let out = signet(
        &srv,
        &[
            "client",
            "update",
            &client_id,
            "--access-token-ttl-secs",
            "60",
            "--json",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(ttl_before, 60);
    srv.clock.advance(std::time::Duration::from_secs(1));
    let (status, _, body) = token_request(&srv, Some((&client_id, &new_secret)), &cc).await;
    assert_eq!(
        (status, body["expires_in"].as_u64()),
        (StatusCode::OK, Some(60)),
        "{body}"
    );

    // Deleted elsewhere while this node still remembers it: a code issued
    // before gives nothing.
    let code = code_for(&srv, &session, &client_id, &[("scope", "openid")]).await;
    let out = signet(&srv, &["client", "delete", &client_id, "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (s, body) = redeem(&srv, (&client_id, &new_secret), &code, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{body}"
    );
    srv.stop().await;
}

/// Posts the consent form of `location` (the consent page's path) as the
/// signed-in browser; returns the status and `Location`.
async fn consent_post(
    srv: &TestServer,
    session: &str,
    consent_page: &url::Url,
    decision: &str,
    same_origin: bool,
) -> (StatusCode, Option<url::Url>) {
    let mut req = srv
        .http
        .post(consent_page.as_str())
        .bearer_auth(session)
        .form(&[("decision", decision)]);
    if same_origin {
        req = req.headers(srv.same_origin());
    } else {
        req = req.header(reqwest::header::ORIGIN, "https://evil.example.com");
    }
    let r = req.send().await.unwrap();
    let location = r
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|l| absolute(srv, l.to_str().unwrap()));
    (r.status(), location)
}

/// A third-party client: consent is asked after sign-in, remembered for the
/// same or fewer scopes, asked again for more or with `prompt=consent`,
/// refused with `prompt=none`, and revocable from the account.
#[tokio::test]
async fn third_party_clients_need_consent_which_is_remembered_and_revocable() {
    let srv = TestServer::start().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (client_id, secret) = client_add(&srv, &["Partner app", "--redirect-uri", RP_REDIRECT]).await;
    let secret = secret.unwrap();
    let base = |scope: &'static str| {
        vec![
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", RP_REDIRECT),
            ("scope", scope),
            ("state", "s1"),
        ]
    };

    // prompt=none before any consent: consent_required.
    let mut none = base("openid email");
    none.push(("prompt", "none"));
    let (_, loc) = authorize(&srv, Some(&session), &none).await;
    let loc = loc.unwrap();
    assert!(loc.as_str().starts_with(RP_REDIRECT));
    assert_eq!(query_of(&loc, "error").as_deref(), Some("consent_required"));
    assert_eq!(query_of(&loc, "state").as_deref(), Some("s1"));

    // After sign-in: the consent page, listing the scopes in plain words.
    let (s, page) = authorize(&srv, Some(&session), &base("openid email")).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let page = page.unwrap();
    assert!(page.path().starts_with("/oauth2/consent/"), "{page}");
    let html = srv
        .http
        .get(page.as_str())
        .bearer_auth(&session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Partner app") && html.contains("See your email address"),
        "{html}"
    );
    // Without a session the page sends the browser to sign in first.
    let r = srv.http.get(page.as_str()).send().await.unwrap();
    assert!(r.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/login?return_to="));

    // The decision must come from Signet's own page.
    let (s, _) = consent_post(&srv, &session, &page, "allow", false).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, loc) = consent_post(&srv, &session, &page, "allow", true).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let loc = loc.unwrap();
    assert!(loc.as_str().starts_with(RP_REDIRECT), "{loc}");
    let code = query_of(&loc, "code").expect("a code after approval");
    assert_eq!(query_of(&loc, "state").as_deref(), Some("s1"));
    let (s, tokens) = redeem(&srv, (&client_id, &secret), &code, None).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    // The consent request is used up.
    let (s, _) = consent_post(&srv, &session, &page, "allow", true).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // The same or fewer scopes: no page, a code at once; prompt=none works now.
    code_for(&srv, &session, &client_id, &[("scope", "openid email")]).await;
    code_for(&srv, &session, &client_id, &[("scope", "openid")]).await;
    let mut none = base("openid");
    none.push(("prompt", "none"));
    let (_, loc) = authorize(&srv, Some(&session), &none).await;
    assert!(query_of(&loc.unwrap(), "code").is_some());
    // More scopes, or prompt=consent: asked again.
    let (_, loc) = authorize(&srv, Some(&session), &base("openid email profile")).await;
    let again = loc.unwrap();
    assert!(again.path().starts_with("/oauth2/consent/"));
    let mut forced = base("openid");
    forced.push(("prompt", "consent"));
    let (_, loc) = authorize(&srv, Some(&session), &forced).await;
    let forced_page = loc.unwrap();
    assert!(forced_page.path().starts_with("/oauth2/consent/"));

    // Denial: access_denied at the client, nothing issued.
    let (s, loc) = consent_post(&srv, &session, &again, "deny", true).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let loc = loc.unwrap();
    assert_eq!(query_of(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_of(&loc, "state").as_deref(), Some("s1"));
    assert!(query_of(&loc, "code").is_none());
    let (s, _) = consent_post(&srv, &session, &forced_page, "maybe", true).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // The account lists the app; revoking it ends its tokens and the consent.
    let (s, apps) = srv.call(Method::GET, "/api/v1/oidc/apps", Some(&session), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(apps["apps"][0]["client_id"], client_id.as_str());
    assert_eq!(apps["apps"][0]["name"], "Partner app");
    assert_eq!(apps["apps"][0]["scopes"], serde_json::json!(["openid", "email"]));
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&srv, access).await, StatusCode::OK);
    // A code issued before the revoke is not redeemed after it.
    let waiting = code_for(&srv, &session, &client_id, &[("scope", "openid")]).await;
    let (s, _) = srv
        .call(
            Method::DELETE,
            &format!("/api/v1/oidc/apps/{client_id}"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(userinfo_status(&srv, access).await, StatusCode::UNAUTHORIZED);
    let (s, body) = redeem(&srv, (&client_id, &secret), &waiting, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    assert!(
        body["error_description"].as_str().unwrap().contains("consent"),
        "{body}"
    );
    let (_, apps) = srv.call(Method::GET, "/api/v1/oidc/apps", Some(&session), None).await;
    assert!(apps["apps"].as_array().unwrap().is_empty(), "{apps}");
    let (s, body) = srv
        .call(
            Method::DELETE,
            &format!("/api/v1/oidc/apps/{client_id}"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("oidc_client_not_found"))
    );
    let (_, loc) = authorize(&srv, Some(&session), &base("openid")).await;
    assert!(
        loc.unwrap().path().starts_with("/oauth2/consent/"),
        "asked again after revoking"
    );

    // Every decision is audited.
    let admin = srv.admin_token().await;
    let (_, audit) = srv
        .call(Method::GET, "/api/v1/admin/audit?limit=200", Some(&admin), None)
        .await;
    let text = audit.to_string();
    for ty in ["oidc.consent_granted", "oidc.consent_denied", "oidc.consent_revoked"] {
        assert!(text.contains(ty), "{ty} audited");
    }
    srv.stop().await;
}

/// The account page lists the apps and revokes one with a same-origin form.
#[tokio::test]
async fn the_account_page_lists_apps_and_revokes_one() {
    let srv = TestServer::start().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (client_id, _) = client_add(&srv, &["Partner app", "--redirect-uri", RP_REDIRECT]).await;
    let (_, page) = authorize(
        &srv,
        Some(&session),
        &[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", RP_REDIRECT),
            ("scope", "openid email"),
        ],
    )
    .await;
    let (_, loc) = consent_post(&srv, &session, &page.unwrap(), "allow", true).await;
    assert!(query_of(&loc.unwrap(), "code").is_some());
    let srv_ref = &srv;
    let account = |s: String| async move {
        srv_ref
            .http
            .get(srv_ref.url("/account"))
            .bearer_auth(s)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let html = account(session.clone()).await;
    assert!(
        html.contains("Partner app") && html.contains(&format!("/account/apps/{client_id}/revoke")),
        "{html}"
    );
    let cross = srv
        .http
        .post(srv.url(&format!("/account/apps/{client_id}/revoke")))
        .bearer_auth(&session)
        .header(reqwest::header::ORIGIN, "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let r = srv
        .http
        .post(srv.url(&format!("/account/apps/{client_id}/revoke")))
        .bearer_auth(&session)
        .headers(srv.same_origin())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(account(session.clone()).await.contains("No app has access"));
    srv.stop().await;
}

/// A session signed in with an email code (aal1, not phishing-resistant)
/// meets an app asking `acr_values=phr` by stepping up on the same session
/// (a passkey, here the flow engine's test double), not by a new sign-in;
/// the ID token's `acr`/`amr` state what was then proven.
#[tokio::test]
async fn a_weaker_session_steps_up_to_the_acr_an_app_asks_for() {
    const POLICY: &str = r#"
[tiers.low]
login = ["email_otp", "passkey"]
second_factor = ["passkey"]
required_aal = "aal1"
session = { idle = "8h", absolute = "24h" }

[assignment]
default = "low"
"#;
    let srv = TestServer::start_with(Options {
        methods: crate::login::fake_methods(),
        policy: Some(POLICY.into()),
        ..Default::default()
    })
    .await;
    let admin = srv.admin_token().await;
    srv.create_user(&admin, "ada@example.com").await;
    let (_, started) = srv
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(serde_json::json!({ "identifier": "ada@example.com", "mode": "api" })),
        )
        .await;
    let flow = started["flow_id"].as_str().unwrap();
    let (s, done) = srv
        .call(
            Method::POST,
            &format!("/api/v1/login/{flow}/email_otp"),
            None,
            Some(serde_json::json!({ "code": "right" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["session"]["aal"], "aal1");
    let session = done["session_token"].as_str().unwrap().to_owned();
    let (client_id, secret) = client_add(&srv, &["Wiki", "--redirect-uri", RP_REDIRECT, "--first-party"]).await;
    let params = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", RP_REDIRECT),
        ("scope", "openid"),
        ("state", "st"),
        ("acr_values", "phr"),
    ];
    // The aal1 session gets no code for phr: it is sent to step up.
    let (s, loc) = authorize(&srv, Some(&session), &params).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let loc = loc.unwrap();
    assert_eq!(
        (loc.path(), query_of(&loc, "step_up").as_deref()),
        ("/login", Some("1")),
        "{loc}"
    );
    let return_to = query_of(&loc, "return_to").unwrap();

    // The step-up offers only what can meet phr, and is bound to the session.
    let (s, started) = srv
        .call(
            Method::POST,
            "/api/v1/step-up",
            Some(&session),
            Some(serde_json::json!({ "return_to": return_to })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{started}");
    let offered: Vec<&str> = started["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["passkey"], "{started}");
    let flow = started["flow_id"].as_str().unwrap();
    let (s, raised) = srv
        .call(
            Method::POST,
            &format!("/api/v1/step-up/{flow}/passkey"),
            Some(&session),
            Some(serde_json::json!({ "code": "right" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{raised}");
    assert_eq!(raised["state"], "complete");
    assert_eq!(raised["return_to"], return_to.as_str());
    assert_eq!(raised["session"]["user"]["email"], "ada@example.com", "the same person");
    let raised_token = raised["session_token"].as_str().unwrap();
    assert_ne!(raised_token, session, "a raised session gets a new token");

    // The request resumes with the raised session and gets its code.
    let r = srv
        .http
        .get(srv.url(&return_to))
        .bearer_auth(raised_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let loc = absolute(&srv, r.headers()[reqwest::header::LOCATION].to_str().unwrap());
    assert_eq!(query_of(&loc, "state").as_deref(), Some("st"));
    let code = query_of(&loc, "code").expect("a code after the step-up");
    let (s, tokens) = redeem(&srv, (&client_id, secret.as_deref().unwrap()), &code, None).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "phr", "{id}");
    let amr: Vec<&str> = id["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(amr.contains(&"hwk") && amr.contains(&"otp"), "both proofs: {id}");

    // A step-up for an app names no action, and needs a stored request.
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/step-up",
            Some(raised_token),
            Some(serde_json::json!({ "return_to": "/account" })),
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    srv.stop().await;
}

/// A relying party that registers `id_token_signed_response_alg = RS256`
/// gets ID tokens it can verify with the published RSA key (OpenID Connect
/// Core §3.1.3.7: RS256 must be available); others get ES256.
#[tokio::test]
async fn a_client_may_ask_for_rs256_id_tokens() {
    let srv = TestServer::start().await;
    let admin = srv.admin_token().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (s, bad) = srv
        .call(
            Method::POST,
            "/api/v1/admin/oidc/clients",
            Some(&admin),
            Some(serde_json::json!({ "name": "Old", "redirect_uris": [RP_REDIRECT], "id_token_signed_response_alg": "HS256" })),
        )
        .await;
    assert_eq!(
        (s, bad["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (s, created) = srv
        .call(
            Method::POST,
            "/api/v1/admin/oidc/clients",
            Some(&admin),
            Some(serde_json::json!({
                "name": "Legacy RP", "redirect_uris": [RP_REDIRECT], "first_party": true,
                "id_token_signed_response_alg": "RS256"
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["client"]["id_token_signed_response_alg"], "RS256");
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let code = code_for(&srv, &session, &client_id, &[("scope", "openid"), ("nonce", "n-rs")]).await;
    let (s, tokens) = redeem(&srv, (&client_id, &secret), &code, None).await;
    assert_eq!(s, StatusCode::OK, "{tokens}");
    let jws = tokens["id_token"].as_str().unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let (_, jwks) = get_json(&srv, "/oauth2/jwks").await;
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap();
    assert_eq!(key["kty"], "RSA");
    let b = |m: &str| URL_SAFE_NO_PAD.decode(key[m].as_str().unwrap()).unwrap();
    aws_lc_rs::signature::RsaPublicKeyComponents { n: b("n"), e: b("e") }
        .verify(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
        .expect("the RS256 ID token verifies against the published RSA key");
    assert_eq!(claims_of(jws)["nonce"], "n-rs");
    // Switching the client back: ES256 again.
    let (s, _) = srv
        .call(
            Method::PATCH,
            &format!("/api/v1/admin/oidc/clients/{client_id}"),
            Some(&admin),
            Some(serde_json::json!({ "id_token_signed_response_alg": "ES256" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let code = code_for(&srv, &session, &client_id, &[("scope", "openid")]).await;
    let (_, tokens) = redeem(&srv, (&client_id, &secret), &code, None).await;
    verify_es256(tokens["id_token"].as_str().unwrap(), &jwks);
    srv.stop().await;
}

/// A stored authorization request is answered once: of 20 concurrent
/// approvals of one consent page, exactly one gets a code.
#[tokio::test]
async fn twenty_concurrent_consent_approvals_issue_exactly_one_code() {
    let srv = TestServer::start().await;
    let (_, session, _auth) = passkey_user(&srv, "ada@example.com").await;
    let (client_id, _) = client_add(&srv, &["Partner app", "--redirect-uri", RP_REDIRECT]).await;
    let (_, page) = authorize(
        &srv,
        Some(&session),
        &[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", RP_REDIRECT),
            ("scope", "openid"),
        ],
    )
    .await;
    let page = page.unwrap();
    assert!(page.path().starts_with("/oauth2/consent/"));
    let attempts = (0..20).map(|_| consent_post(&srv, &session, &page, "allow", true));
    let results = futures::future::join_all(attempts).await;
    let codes = results
        .iter()
        .filter(|(_, loc)| loc.as_ref().is_some_and(|l| query_of(l, "code").is_some()))
        .count();
    assert_eq!(codes, 1, "{results:?}");
    for (s, loc) in &results {
        if loc.as_ref().is_none_or(|l| query_of(l, "code").is_none()) {
            assert_eq!(*s, StatusCode::BAD_REQUEST, "the others are refused, never a 5xx");
        }
    }
    srv.stop().await;
}
