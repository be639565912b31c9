//! Starting a server for a test, and talking to it.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ORIGIN};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use signet::config::Config;
use signet::server::{start, Running, StartOptions};
use signet_app::{Actor, Origin};
use signet_core::clock::{Clock, ManualClock, SystemClock};
use signet_courier::WorkerConfig;
use signet_store::scratch::ScratchDb;
use signet_testkit::{CapturedMail, SmtpSink};

pub struct TestServer {
    pub base: String,
    pub running: Option<Running>,
    pub smtp: Option<SmtpSink>,
    pub clock: Arc<ManualClock>,
    pub db_url: String,
    pub http: reqwest::Client,
    /// The `SIGNET_SEALING__*` settings this server runs with, for CLI runs
    /// against its database.
    pub sealing_env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
    scratch: Option<ScratchDb>,
}

/// Whether the run targets PostgreSQL.
pub fn postgres_url() -> Option<String> {
    std::env::var("SIGNET_TEST_DATABASE_URL").ok().filter(|s| !s.is_empty())
}

/// The sealing key of test servers on PostgreSQL: base64 of
/// "signet test sealing key 32 bytes".
pub const TEST_SEALING_KEY: &str = "c2lnbmV0IHRlc3Qgc2VhbGluZyBrZXkgMzIgYnl0ZXM=";

pub struct Options {
    /// Configure real SMTP delivery to a sink (otherwise: dev outbox).
    pub smtp: bool,
    /// Login methods to register (test doubles).
    pub methods: Vec<Arc<dyn signet_core::method::Method>>,
    /// Use this database instead of a fresh one (a second node).
    pub shared_db: Option<String>,
    /// Serve HTTPS with this PEM certificate and key; `public_url` becomes
    /// `https://localhost:PORT`.
    pub tls: Option<(String, String)>,
    /// A policy file's text (otherwise: the built-in policy).
    pub policy: Option<String>,
    /// Extra `SIGNET_*` settings.
    pub env: Vec<(String, String)>,
    /// The courier worker's tuning (otherwise: the defaults, polling every 100 ms).
    pub worker: Option<WorkerConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            smtp: true,
            methods: Vec::new(),
            shared_db: None,
            tls: None,
            policy: None,
            env: Vec::new(),
            worker: None,
        }
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (db_url, scratch) = match (opts.shared_db, postgres_url()) {
            (Some(url), _) => (url, None),
            (None, Some(base)) => {
                let db = ScratchDb::create(&base)
                    .await
                    .expect("PostgreSQL from SIGNET_TEST_DATABASE_URL is unreachable");
                (db.url.clone(), Some(db))
            }
            (None, None) => (format!("sqlite://{}/signet.db", dir.path().display()), None),
        };
        let smtp = if opts.smtp {
            Some(SmtpSink::start().await.unwrap())
        } else {
            None
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = match opts.tls {
            Some(_) => format!("https://localhost:{port}"),
            // WebAuthn needs a host name (an IP address cannot be an RP ID).
            None => format!("http://localhost:{port}"),
        };
        let mut env = vec![
            ("SIGNET_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
            ("SIGNET_PUBLIC_URL".to_owned(), base.clone()),
            ("SIGNET_DATABASE__URL".to_owned(), db_url.clone()),
            // Every test client is 127.0.0.1: the per-address start limit
            // gets its own test (`login::starts_are_limited_per_client_address`).
            ("SIGNET_LOGIN__STARTS_PER_IP".to_owned(), "10000".to_owned()),
        ];
        if let Some(s) = &smtp {
            env.push(("SIGNET_EMAIL__SMTP_URL".to_owned(), s.url()));
        }
        if let Some(text) = &opts.policy {
            let path = dir.path().join("policy.toml");
            std::fs::write(&path, text).unwrap();
            env.push(("SIGNET_POLICY".to_owned(), path.display().to_string()));
        }
        // PostgreSQL needs a configured sealing key (no key file: several
        // nodes share the database); SQLite uses the key file beside it.
        let mut sealing_env: Vec<(String, String)> = opts
            .env
            .iter()
            .filter(|(k, _)| k.starts_with("SIGNET_SEALING__"))
            .cloned()
            .collect();
        if sealing_env.is_empty() && db_url.starts_with("postgres") {
            sealing_env.push(("SIGNET_SEALING__KEY".to_owned(), TEST_SEALING_KEY.to_owned()));
        }
        env.extend(sealing_env.iter().cloned());
        env.extend(opts.env);
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve("localhost", ([127, 0, 0, 1], port).into());
        if let Some((cert, key)) = &opts.tls {
            let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            std::fs::write(&cert_path, cert).unwrap();
            std::fs::write(&key_path, key).unwrap();
            env.push(("SIGNET_TLS_CERT".to_owned(), cert_path.display().to_string()));
            env.push(("SIGNET_TLS_KEY".to_owned(), key_path.display().to_string()));
            http = http.add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap());
        }
        let config = Config::load(None, env).unwrap();
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let worker = opts.worker.unwrap_or(WorkerConfig {
            poll_interval: Duration::from_millis(100),
            ..Default::default()
        });
        let running = start(
            &config,
            StartOptions {
                clock: Some(clock.clone()),
                listener: Some(listener),
                worker: Some(worker),
                methods: opts.methods,
            },
        )
        .await
        .unwrap();
        let http = http.build().unwrap();
        TestServer {
            base,
            running: Some(running),
            smtp,
            clock,
            db_url,
            http,
            sealing_env,
            _dir: dir,
            scratch,
        }
    }

    pub fn app(&self) -> &signet_app::App {
        &self.running.as_ref().unwrap().wired.app
    }

    /// What the server's key reloader does every minute, now.
    pub async fn reload_signing_keys(&self) {
        signet::server::reload_signing_keys(&self.running.as_ref().unwrap().wired)
            .await
            .unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        if let Some(db) = self.scratch.take() {
            db.drop_now().await.unwrap();
        }
    }

    /// Sends a request; `auth` is a bearer token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub async fn admin_token(&self) -> String {
        let name = format!("admin-{}", uuid::Uuid::new_v4().simple());
        let (_, plain) = signet_app::admin::create_token(self.app(), &Actor::Cli, &Origin::default(), &name)
            .await
            .unwrap();
        plain.expose_secret().to_owned()
    }

    /// The audit log's records of `event_type`, newest first (the admin
    /// API's default page).
    pub async fn audit_of_type(&self, event_type: &str) -> Vec<Value> {
        let admin = self.admin_token().await;
        let (s, body) = self
            .call(
                Method::GET,
                &format!("/api/v1/admin/audit?type={event_type}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body["events"].as_array().unwrap().clone()
    }

    /// Creates a user through the admin API and returns its id.
    pub async fn create_user(&self, admin: &str, email: &str) -> String {
        let (s, body) = self
            .call(
                Method::POST,
                "/api/v1/admin/users",
                Some(admin),
                Some(serde_json::json!({ "email": email })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Invites through the admin API (201, the link never in the response)
    /// and returns the queued message's id.
    pub async fn queue_invitation(&self, admin: &str, user_id: &str) -> uuid::Uuid {
        let (s, body) = self
            .call(
                Method::POST,
                &format!("/api/v1/admin/users/{user_id}/invitations"),
                Some(admin),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        assert!(
            !body.to_string().contains("/invite/"),
            "the link must never be in the response: {body}"
        );
        body["message_id"].as_str().unwrap().parse().unwrap()
    }

    /// Invites through the admin API and returns the link from the captured mail.
    pub async fn invite(&self, admin: &str, user_id: &str, email: &str) -> String {
        let before = self.smtp.as_ref().unwrap().messages().len();
        self.queue_invitation(admin, user_id).await;
        let mail = self.wait_mail(email, before).await;
        mail.find_link(&self.url("/invite/"))
            .expect("invitation link in the mail")
    }

    /// The `/metrics` exposition text (no token configured).
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn wait_mail(&self, to: &str, skip: usize) -> CapturedMail {
        self.mail_to(to, skip, "any mail", |m| Some(m.clone())).await
    }

    /// The first value `find` takes from a mail to `to` after the first
    /// `skip` messages, waiting up to 10 s (mails of one account may arrive
    /// in any order). `what` names it in the failure.
    pub async fn mail_to<T>(&self, to: &str, skip: usize, what: &str, find: impl Fn(&CapturedMail) -> Option<T>) -> T {
        let smtp = self.smtp.as_ref().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = smtp
                .messages()
                .into_iter()
                .skip(skip)
                .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
                .find_map(|m| find(&m))
            {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no mail to {to} arrived: {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Headers of a same-origin browser request.
    pub fn same_origin(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, HeaderValue::from_str(&self.base).unwrap());
        h
    }
}

/// The token part of an invitation link.
pub fn token_of(link: &str) -> String {
    link.rsplit('/').next().unwrap().to_owned()
}

/// Redeems an invitation in api mode and returns the session token.
pub async fn redeem_api(srv: &TestServer, link: &str) -> String {
    let (s, body) = srv
        .call(
            Method::POST,
            "/api/v1/invitations/redeem",
            None,
            Some(serde_json::json!({ "token": token_of(link), "mode": "api" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["session_token"].as_str().unwrap().to_owned()
}

/// A JSON value with every string blanked: what is left is the shape a
/// client could tell apart (keys, types, numbers, booleans).
pub fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::String(_) => serde_json::json!("s"),
        other => other.clone(),
    }
}

/// A response's header names, sorted, without the ones that differ on
/// every response anyway (`date`, `x-request-id`).
pub fn header_names(r: &reqwest::Response) -> Vec<String> {
    let mut names: Vec<String> = r
        .headers()
        .keys()
        .map(|k| k.to_string())
        .filter(|k| k != "date" && k != "x-request-id")
        .collect();
    names.sort();
    names
}
