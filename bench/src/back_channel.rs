//! A relying party's back channel to a token endpoint: what the OIDC
//! scenarios post their grants with (`client_credentials`, `refresh_token`,
//! and the code's redemption), to Signet and to oidc-provider alike.
//!
//! **Why not reqwest.** The load generator shares the two cores with the
//! server it measures. A reqwest client with a cookie store cost about
//! 55 µs of CPU per request on the reference machine (URL parsing, the
//! cookie jar, the connection pool, its layers), about as much as Signet's
//! whole write path for a grant, so it measured itself as much as the
//! server. A relying party's back channel needs none of that: one
//! kept-alive HTTP/1.1 connection (hyper's connection-level client), the
//! request's fixed headers built once, the form encoded per request, the
//! JSON answer parsed. Both providers are driven by the same code, so what
//! it saves it saves for both; the browser side of the code flow (the
//! authorization request, which needs cookies and redirects) stays on
//! reqwest.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// One connection to a token endpoint, authenticated as one client
/// (`client_secret_basic`).
pub(crate) struct BackChannel {
    sender: SendRequest<Full<Bytes>>,
    /// Who answers, for errors.
    name: &'static str,
    path: String,
    host: HeaderValue,
    basic: HeaderValue,
}

impl BackChannel {
    /// Connects to `token_url` (plain `http://`, as the bench's providers
    /// listen on loopback).
    pub(crate) async fn open(
        name: &'static str,
        token_url: &str,
        client_id: &str,
        secret: &str,
    ) -> anyhow::Result<Self> {
        let url = url::Url::parse(token_url)?;
        anyhow::ensure!(
            url.scheme() == "http",
            "{name}: the back channel speaks plain HTTP only"
        );
        let host = url.host_str().context("a token URL without a host")?;
        let port = url.port_or_known_default().context("a token URL without a port")?;
        let stream = tokio::net::TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let credentials = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{client_id}:{secret}"),
        );
        Ok(Self {
            sender,
            name,
            path: url.path().to_owned(),
            host: HeaderValue::from_str(&format!("{host}:{port}"))?,
            basic: HeaderValue::from_str(&format!("Basic {credentials}"))?,
        })
    }

    /// Posts `form` and answers the JSON body of a 2xx answer; anything
    /// else is an error naming the status and the body.
    pub(crate) async fn post(&mut self, form: &[(&str, &str)]) -> anyhow::Result<Value> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = Request::post(self.path.as_str())
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.basic.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{}: token: HTTP {status}: {body}", self.name);
        Ok(body)
    }
}
