//! Lean HTTP/1.1 clients for the OIDC scenarios' timed loops: a relying
//! party's back channel to a token endpoint ([`BackChannel`]: the
//! `client_credentials` and `refresh_token` grants and the code's
//! redemption) and a signed-in browser's authorization requests
//! ([`Browser`]), to Signet and to oidc-provider alike.
//!
//! **Why not reqwest.** The load generator shares the two cores with the
//! server it measures. A reqwest client with a cookie store cost about
//! 55 µs of CPU per request on the reference machine (URL parsing, the
//! cookie jar, the connection pool, its layers), about as much as Signet's
//! whole write path for a grant, so it measured itself as much as the
//! server. Neither role needs any of that: one kept-alive HTTP/1.1
//! connection (hyper's connection-level client) and the request's fixed
//! headers built once. Both providers are driven by the same code, so what
//! it saves it saves for both. Signing in and granting (oidc-provider's
//! interaction, which sets cookies over several redirects) stays on
//! reqwest; a [`Browser`] then carries the session it ended with.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, LOCATION};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// One kept-alive connection to the origin of a provider.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// `host:port`, the `Host` of every request.
    host: HeaderValue,
    /// Who answers, for errors.
    name: &'static str,
}

impl Connection {
    /// Connects to the origin of `url` (plain `http://`: the bench's
    /// providers listen on loopback).
    async fn open(name: &'static str, url: &url::Url) -> anyhow::Result<Self> {
        anyhow::ensure!(url.scheme() == "http", "{name}: the lean client speaks plain HTTP only");
        let host = url.host_str().context("a URL without a host")?;
        let port = url.port_or_known_default().context("a URL without a port")?;
        let stream = tokio::net::TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: HeaderValue::from_str(&format!("{host}:{port}"))?,
            name,
        })
    }

    /// Sends `request` (its `Host` added) and answers the status, the
    /// `Location` if any, and the whole body.
    async fn send(&mut self, mut request: Request<Full<Bytes>>) -> anyhow::Result<(StatusCode, Option<String>, Bytes)> {
        request.headers_mut().insert(HOST, self.host.clone());
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, location, body))
    }
}

/// A relying party's connection to a token endpoint, authenticated as one
/// client (`client_secret_basic`).
pub(crate) struct BackChannel {
    connection: Connection,
    /// The token endpoint's path, parsed once.
    path: hyper::Uri,
    basic: HeaderValue,
}

impl BackChannel {
    pub(crate) async fn open(
        name: &'static str,
        token_url: &str,
        client_id: &str,
        secret: &str,
    ) -> anyhow::Result<Self> {
        let url = url::Url::parse(token_url)?;
        let credentials = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{client_id}:{secret}"),
        );
        Ok(Self {
            connection: Connection::open(name, &url).await?,
            path: url.path().parse()?,
            basic: HeaderValue::from_str(&format!("Basic {credentials}"))?,
        })
    }

    /// Posts `form` and answers the JSON body of a 2xx answer; anything
    /// else is an error naming the status and the body.
    pub(crate) async fn post(&mut self, form: &[(&str, &str)]) -> anyhow::Result<Value> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = Request::post(self.path.clone())
            .header(AUTHORIZATION, self.basic.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))?;
        let (status, _, bytes) = self.connection.send(request).await?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        anyhow::ensure!(
            status.is_success(),
            "{}: token: HTTP {status}: {body}",
            self.connection.name
        );
        Ok(body)
    }
}

/// A browser signed in at a provider: its session sent with every request
/// (Signet's bearer token, or oidc-provider's cookies as they stood once
/// the sign-in was done).
pub(crate) struct Browser {
    connection: Connection,
    session: (HeaderName, HeaderValue),
}

impl Browser {
    /// A browser at the origin of `url`, sending `session` (a header).
    pub(crate) async fn open(
        name: &'static str,
        url: &str,
        session: (HeaderName, HeaderValue),
    ) -> anyhow::Result<Self> {
        Ok(Self {
            connection: Connection::open(name, &url::Url::parse(url)?).await?,
            session,
        })
    }

    /// GETs `url` (on this browser's origin) and answers its status and
    /// `Location`.
    pub(crate) async fn get(&mut self, url: &url::Url) -> anyhow::Result<(StatusCode, Option<String>)> {
        let target = &url[url::Position::BeforePath..];
        let request = Request::get(target)
            .header(self.session.0.clone(), self.session.1.clone())
            .body(Full::new(Bytes::new()))?;
        let (status, location, _) = self.connection.send(request).await?;
        Ok((status, location))
    }
}
