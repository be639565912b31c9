//! OpenID Connect scenarios (issue 10, `--only oidc`), each run against
//! Signet and, in the same run on the same machine, against
//! [`oidc-provider`](https://github.com/panva/node-oidc-provider) (the
//! OpenID-certified Node.js provider, set up minimally by
//! `bench/oidc-provider/server.mjs`):
//!
//! - `oidc-code`: an authorization request with an existing SSO session
//!   (code flow, PKCE S256, `scope=openid email`), answered with a code at
//!   once, then the code redeemed at the token endpoint
//!   (`client_secret_basic`, the verifier) for an ES256-signed ID token and
//!   an access token. One operation is both requests.
//! - `oidc-client-credentials`: `grant_type=client_credentials`.
//! - `oidc-refresh`: `grant_type=refresh_token`, each client following its
//!   own rotating chain (both providers rotate on every use).
//!
//! **Not like for like, in oidc-provider's favour:** Signet's codes, grants
//! and refresh tokens are durable (committed, on SQLite with `fsync`) and
//! shared by every node; oidc-provider keeps them in process memory (its
//! development adapter), so a restart loses them and a second process cannot
//! see them. Signet's session is a bearer token here; oidc-provider's is
//! its session cookie, set once per client by an interaction that signs the
//! bench user in and grants the scopes (`bench/oidc-provider/server.mjs`).
//!
//! Each bench client is a browser and a relying party. The browser signs
//! in with reqwest and a cookie store before the clock starts; in the timed
//! loop it is a lean [`Browser`] carrying that session, and the relying
//! party posts its grants over a [`BackChannel`]: one kept-alive connection
//! each, for both providers alike (`back_channel`'s docs say why).
//!
//! Needs Node.js and `npm ci` in `bench/oidc-provider` (done by this
//! scenario when `node_modules` is missing).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderValue, AUTHORIZATION, COOKIE};
use serde_json::Value;
use sha2::{Digest, Sha256};
use signet_app::{Actor, Origin};
use signet_core::oidc_client::{ClientSettings, ClientSource, GrantType};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::back_channel::{BackChannel, Browser};
use crate::logins::{SoftAuthenticator, User, ONE_PASSWORD};
use crate::Args;

const REDIRECT_URI: &str = "https://rp.example.com/cb";
const PEER_CLIENT_ID: &str = "bench";
const PEER_SECRET: &str = "bench-secret-0123456789abcdef0123456789";

/// One provider under test: where it is, its client, and how a bench
/// client gets a session there.
#[derive(Clone)]
struct Provider {
    name: &'static str,
    issuer: String,
    authorize: String,
    token: String,
    client_id: String,
    secret: String,
    /// Signet: the session's bearer token. oidc-provider: none (a cookie).
    bearer: Option<String>,
    /// Scopes that yield a refresh token.
    offline: &'static str,
}

/// What one scenario measured on one provider.
struct Measured {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<()> {
    let server =
        crate::server::BenchServer::start(args.database_url.as_deref(), Vec::new(), crate::server::nothing).await?;
    let app = server.app.clone();
    let base = server.public.clone();
    let backend = app.store.backend();
    let (http, _) = no_redirects()?;

    // Signet: a user signed in with a passkey (phishing-resistant, aal2),
    // and a confidential client allowed every grant the scenarios use.
    let email = "oidc-bench@example.com";
    let enrollment = crate::seed_session_for(&app, email).await?;
    let mut user = User {
        email: email.to_owned(),
        ip: "10.0.0.1".to_owned(),
        auth: SoftAuthenticator::new(ONE_PASSWORD, true, false).at(&base),
        fast: None,
        inbox: signet_testkit::Inbox::new(email),
    };
    crate::logins::enroll(&http, &base, &enrollment, &mut user.auth).await?;
    let session = crate::logins::login(&http, &base, &mut user).await?;
    let (client, secret) = signet_app::oidc::clients::register(
        &app,
        &Actor::Cli,
        &Origin::default(),
        signet_app::oidc::clients::NewClient {
            name: "bench".into(),
            public: false,
            settings: ClientSettings {
                redirect_uris: vec![REDIRECT_URI.into()],
                scopes: ["openid", "email", "offline_access"].map(String::from).to_vec(),
                grant_types: vec![
                    GrantType::AuthorizationCode,
                    GrantType::RefreshToken,
                    GrantType::ClientCredentials,
                ],
                first_party: true,
                ..ClientSettings::default()
            },
        },
        ClientSource::Admin,
    )
    .await?;
    let signet = Provider {
        name: "signet",
        issuer: base.clone(),
        authorize: format!("{base}/oauth2/authorize"),
        token: format!("{base}/oauth2/token"),
        client_id: client.client_id.clone(),
        secret: secret
            .context("a confidential client has a secret")?
            .expose_secret()
            .to_owned(),
        bearer: Some(session),
        offline: "openid email offline_access",
    };

    let mut peer_process = start_peer().await?;
    let peer = Provider {
        name: "oidc-provider",
        issuer: peer_process.issuer.clone(),
        authorize: format!("{}/auth", peer_process.issuer),
        token: format!("{}/token", peer_process.issuer),
        client_id: PEER_CLIENT_ID.into(),
        secret: PEER_SECRET.into(),
        bearer: None,
        // oidc-provider issues a refresh token for offline_access only
        // with prompt=consent (OIDC Core §11).
        offline: "openid email offline_access&prompt=consent",
    };

    println!(
        "signet-bench oidc: {} operations per scenario, {} concurrent clients, Signet on {backend}, \
         oidc-provider in memory (node)",
        args.requests, args.concurrency
    );
    println!(
        "{:<26} {:<14} {:>10} {:>9} {:>9}",
        "scenario", "provider", "ops/s", "p50 ms", "p99 ms"
    );
    for scenario in ["oidc-code", "oidc-client-credentials", "oidc-refresh"] {
        if args
            .only
            .as_deref()
            .is_some_and(|o| o != "oidc" && !scenario.contains(o))
        {
            continue;
        }
        let ours = measure(&signet, scenario, args).await?;
        let theirs = measure(&peer, scenario, args).await?;
        for (p, m) in [(&signet, &ours), (&peer, &theirs)] {
            println!(
                "{:<26} {:<14} {:>10.0} {:>9.2} {:>9.2}",
                scenario, p.name, m.per_second, m.p50_ms, m.p99_ms
            );
        }
        println!(
            "{:<26} {:<14} {:>10.2}x",
            scenario,
            "ratio",
            ours.per_second / theirs.per_second.max(f64::MIN_POSITIVE)
        );
    }
    peer_process.child.kill().await.ok();
    server.stop().await
}

/// A client that never follows redirects: the bench reads each `Location`.
/// Its cookie jar is handed back too: a [`Browser`] carries on with the
/// cookies it holds once signed in.
fn no_redirects() -> anyhow::Result<(reqwest::Client, Arc<Jar>)> {
    let jar = Arc::new(Jar::default());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .build()?;
    Ok((client, jar))
}

/// Runs `scenario` on `provider` with `args.concurrency` closed-loop
/// clients for `args.requests` operations in all.
async fn measure(provider: &Provider, scenario: &'static str, args: &Args) -> anyhow::Result<Measured> {
    let counter = Arc::new(AtomicUsize::new(0));
    let total = args.requests;
    // Each client, set up before the clock runs: its own browser (reqwest
    // with its own cookies to sign in, then a lean `Browser` with the
    // session it got), its own back channel (a relying party's connection
    // to the token endpoint: `BackChannel`), and for refresh its own chain.
    let mut clients = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let (http, jar) = no_redirects()?;
        let mut back = BackChannel::open(provider.name, &provider.token, &provider.client_id, &provider.secret).await?;
        // A first authorization signs in and grants (oidc-provider) and
        // yields the client's first refresh token.
        let (code, verifier) = authorize(Agent::SigningIn(&http), provider, provider.offline).await?;
        let tokens = redeem(&mut back, &code, &verifier).await?;
        let refresh = tokens["refresh_token"]
            .as_str()
            .with_context(|| format!("{}: no refresh token: {tokens}", provider.name))?
            .to_owned();
        // From here the browser is signed in: its bearer token (Signet) or
        // the cookies the sign-in left (oidc-provider).
        let session = match &provider.bearer {
            Some(b) => (AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {b}"))?),
            None => (
                COOKIE,
                jar.cookies(&url::Url::parse(&provider.authorize)?)
                    .with_context(|| format!("{}: no session cookie after signing in", provider.name))?,
            ),
        };
        let browser = Browser::open(provider.name, &provider.authorize, session).await?;
        clients.push((browser, back, refresh));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mut browser, mut back, mut refresh) in clients {
        let (provider, counter) = (provider.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while counter.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                match scenario {
                    "oidc-code" => {
                        let (code, verifier) =
                            authorize(Agent::SignedIn(&mut browser), &provider, "openid email").await?;
                        let tokens = redeem(&mut back, &code, &verifier).await?;
                        anyhow::ensure!(tokens["id_token"].is_string(), "no ID token: {tokens}");
                    }
                    "oidc-client-credentials" => {
                        let tokens = back.post(&[("grant_type", "client_credentials")]).await?;
                        anyhow::ensure!(tokens["access_token"].is_string(), "no access token: {tokens}");
                    }
                    _ => {
                        let tokens = back
                            .post(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
                            .await?;
                        refresh = tokens["refresh_token"]
                            .as_str()
                            .context("the refresh was not rotated")?
                            .to_owned();
                    }
                }
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let t = crate::timings::gather(tasks, started).await?;
    Ok(Measured {
        per_second: t.per_second,
        p50_ms: t.p50_ms,
        p99_ms: t.p99_ms,
    })
}

/// Who sends an authorization request: the bench's reqwest browser, which
/// signs in and keeps every cookie (setting up), or a lean [`Browser`]
/// carrying the session that sign-in left (the timed loop).
enum Agent<'a> {
    SigningIn(&'a reqwest::Client),
    SignedIn(&'a mut Browser),
}

impl Agent<'_> {
    /// GETs `url` and answers its status and `Location`.
    async fn get(&mut self, p: &Provider, url: &url::Url) -> anyhow::Result<(reqwest::StatusCode, Option<String>)> {
        match self {
            Agent::SigningIn(http) => {
                let mut req = http.get(url.as_str());
                if let Some(b) = &p.bearer {
                    req = req.bearer_auth(b);
                }
                let resp = req.send().await?;
                let location = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .map(str::to_owned);
                Ok((resp.status(), location))
            }
            Agent::SignedIn(browser) => browser.get(url).await,
        }
    }
}

/// An authorization request (PKCE S256) sent by `agent` and followed
/// through the provider's redirects until it reaches the client's redirect
/// URI; returns the code and the verifier.
async fn authorize(mut agent: Agent<'_>, p: &Provider, scope: &str) -> anyhow::Result<(String, String)> {
    // One call to the system's random source, not one per byte: the
    // bench's client shares the cores with the server it measures.
    let mut raw = [0u8; 32];
    signet_core::secret::fill_random(&mut raw);
    let verifier = URL_SAFE_NO_PAD.encode(raw);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let (scope, extra) = scope.split_once('&').unwrap_or((scope, ""));
    let mut url = url::Url::parse(&p.authorize)?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &p.client_id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", scope)
        .append_pair("state", "bench")
        .append_pair("nonce", "bench")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    if let Some((k, v)) = extra.split_once('=') {
        url.query_pairs_mut().append_pair(k, v);
    }
    let issuer = url::Url::parse(&p.issuer)?;
    for _ in 0..5 {
        let (status, location) = agent.get(p, &url).await?;
        let Some(location) = location else {
            bail!("{}: authorize answered {status} without a redirect", p.name);
        };
        let absolute = issuer.join(&location)?;
        if absolute.as_str().starts_with(REDIRECT_URI) {
            let code = absolute
                .query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
                .with_context(|| format!("{}: no code in {absolute}", p.name))?;
            return Ok((code, verifier));
        }
        url = absolute;
    }
    bail!("{}: authorize did not reach the redirect URI", p.name)
}

async fn redeem(back: &mut BackChannel, code: &str, verifier: &str) -> anyhow::Result<Value> {
    back.post(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ])
    .await
}

/// The running peer.
struct Peer {
    child: tokio::process::Child,
    issuer: String,
}

/// Starts `node bench/oidc-provider/server.mjs` on a free port (installing
/// its one dependency first if needed) and waits for its "ready" line.
async fn start_peer() -> anyhow::Result<Peer> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-provider");
    if !dir.join("node_modules").exists() {
        let status = tokio::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .await
            .context("running npm ci in bench/oidc-provider (is Node.js installed?)")?;
        anyhow::ensure!(status.success(), "npm ci in bench/oidc-provider failed");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = tokio::process::Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        // As a Node.js service is deployed: Koa and its middleware take
        // their production paths (measured here, it moved the peer's
        // rate by less than the run-to-run drift).
        .env("NODE_ENV", "production")
        .env("PORT", port.to_string())
        .env("CLIENT_ID", PEER_CLIENT_ID)
        .env("CLIENT_SECRET", PEER_SECRET)
        .env("REDIRECT_URI", REDIRECT_URI)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting node (is Node.js installed?)")?;
    let stdout = child.stdout.take().context("the peer's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(issuer) = line.strip_prefix("ready ") {
                return Ok::<_, anyhow::Error>(issuer.to_owned());
            }
        }
        bail!("oidc-provider exited before it was ready")
    })
    .await
    .context("oidc-provider did not start within 30 s")??;
    // It logs notices to stdout as it goes: keep reading, or its next write
    // fails on a closed pipe and takes the process down.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Peer { child, issuer: ready })
}
