//! How a message leaves the building: SMTP for email, a webhook for SMS, or
//! nowhere (the development outbox).
//!
//! - `[email] smtp_url = "smtp://host:port"` is plain SMTP with no TLS at all
//!   (for a local relay or a test sink); STARTTLS is never attempted, so the
//!   behaviour does not depend on what the server advertises.
//! - `smtps://host:port` is implicit TLS (RFC 8314 section 3.3) with rustls
//!   and the Mozilla root store; a failed handshake fails the delivery and
//!   never falls back to plaintext.
//! - `smtp://user:pass@host:port` adds `AUTH` credentials; percent-encode any
//!   reserved characters in them.
//! - `[sms] webhook_url` receives `POST` `application/json`
//!   `{"to": "+E164", "body": "text"}`; any 2xx means accepted. Redirects are
//!   not followed, so a 3xx is a failure rather than a silent re-POST.
//!
//! - `[sms] twilio_account_sid`, `twilio_auth_token` and `twilio_from` send
//!   SMS through the Twilio Messages API instead: `POST
//!   {base}/2010-04-01/Accounts/{sid}/Messages.json`, form-encoded `To`,
//!   `From`, `Body`, HTTP basic auth `sid:token`; any 2xx means accepted.
//!   `twilio_base_url` (default `https://api.twilio.com`) points it at a
//!   test listener or a regional edge.
//!
//! A channel without a transport is kept in the outbox: the message is marked
//! sent but its bodies are *not* scrubbed, because there the outbox is the
//! delivery (`/dev/outbox` shows it).
//!
//! The URL rules are [`check_smtp_url`] and [`check_webhook_url`]: the
//! binary's config checks `[email]` and `[sms]` with them at start-up, and
//! the transports build on them, so the two cannot disagree.
//!
//! URLs can carry credentials, so no error or log line here repeats a URL.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::TlsParameters;
use serde::Serialize;
use signet_core::outbox::{Channel, Message};
use url::{Host, Url};

use crate::smtp_pool::SmtpPool;

/// How long opening an SMTP session (connect, TLS, greeting, `EHLO`, `AUTH`)
/// may take before the attempt is abandoned.
const SMTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the SMS webhook may take to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// A delivery configuration that cannot work. Each variant names the key and
/// the problem; none repeats the URL, which may hold a password.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("[email] smtp_url is not a valid URL: {0}")]
    SmtpUrlSyntax(#[source] url::ParseError),
    #[error("[email] smtp_url must start with smtp:// (plain) or smtps:// (TLS), not {0}://")]
    SmtpScheme(String),
    #[error("[email] smtp_url has no host")]
    SmtpHost,
    #[error("[email] smtp_url must be only scheme, credentials, host and port, but it has a {0}")]
    SmtpExtra(&'static str),
    #[error("[email] smtp_url has a user name but no password")]
    SmtpPasswordMissing,
    #[error("[email] smtp_url has a password but no user name")]
    SmtpUserMissing,
    #[error("[email] smtp_url: the {0} is not valid percent-encoded UTF-8")]
    SmtpUserinfoEncoding(&'static str),
    #[error("[email] smtp_url: TLS setup failed: {0}")]
    SmtpTls(#[source] lettre::transport::smtp::Error),
    #[error("[email] from {value:?} is not a valid mailbox (e.g. \"Signet <signet@example.com>\"): {source}")]
    From {
        value: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("[sms] webhook_url is not a valid URL: {0}")]
    WebhookUrlSyntax(#[source] url::ParseError),
    #[error("[sms] webhook_url must start with http:// or https://, not {0}://")]
    WebhookScheme(String),
    #[error("[sms] webhook_url has no host")]
    WebhookHost,
    #[error("[sms] webhook_url must not have a fragment")]
    WebhookFragment,
    #[error("[sms] could not set up the HTTP client: {0}")]
    WebhookClient(#[source] reqwest::Error),
    #[error("[sms] twilio_base_url: {0}")]
    TwilioBaseUrl(WebhookUrlError),
    #[error("[sms] twilio_account_sid must be AC followed by 32 hexadecimal digits")]
    TwilioAccountSid,
}

/// Why an `smtp_url` cannot be used. The text names neither the setting nor
/// where it came from (the caller adds those: [`ConfigError`] here, the key
/// and file line in the binary's config) and never repeats the URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SmtpUrlError {
    #[error("not a valid URL: {0}")]
    Syntax(#[source] url::ParseError),
    #[error("must start with smtp:// (plain) or smtps:// (TLS), not {0}://")]
    Scheme(String),
    #[error("has no host")]
    Host,
    /// `path`, `query` or `fragment`.
    #[error("must be only scheme, credentials, host and port, but it has a {0}")]
    Extra(&'static str),
    #[error("has a user name but no password")]
    PasswordMissing,
    #[error("has a password but no user name")]
    UserMissing,
}

/// Why a `webhook_url` cannot be used; like [`SmtpUrlError`], without the
/// setting's name or the URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookUrlError {
    #[error("not a valid URL: {0}")]
    Syntax(#[source] url::ParseError),
    #[error("must start with http:// or https://, not {0}://")]
    Scheme(String),
    #[error("has no host")]
    Host,
    #[error("must not have a fragment")]
    Fragment,
}

impl From<SmtpUrlError> for ConfigError {
    fn from(e: SmtpUrlError) -> Self {
        match e {
            SmtpUrlError::Syntax(e) => ConfigError::SmtpUrlSyntax(e),
            SmtpUrlError::Scheme(s) => ConfigError::SmtpScheme(s),
            SmtpUrlError::Host => ConfigError::SmtpHost,
            SmtpUrlError::Extra(what) => ConfigError::SmtpExtra(what),
            SmtpUrlError::PasswordMissing => ConfigError::SmtpPasswordMissing,
            SmtpUrlError::UserMissing => ConfigError::SmtpUserMissing,
        }
    }
}

impl From<WebhookUrlError> for ConfigError {
    fn from(e: WebhookUrlError) -> Self {
        match e {
            WebhookUrlError::Syntax(e) => ConfigError::WebhookUrlSyntax(e),
            WebhookUrlError::Scheme(s) => ConfigError::WebhookScheme(s),
            WebhookUrlError::Host => ConfigError::WebhookHost,
            WebhookUrlError::Fragment => ConfigError::WebhookFragment,
        }
    }
}

/// The rules for `[email] smtp_url`: `smtp://` or `smtps://`, a host, an
/// optional port and credentials (both a user name and a password, or
/// neither), and nothing else.
pub fn check_smtp_url(smtp_url: &str) -> Result<Url, SmtpUrlError> {
    let url = Url::parse(smtp_url.trim()).map_err(SmtpUrlError::Syntax)?;
    if !matches!(url.scheme(), "smtp" | "smtps") {
        return Err(SmtpUrlError::Scheme(url.scheme().to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(SmtpUrlError::Host);
    }
    if !(url.path().is_empty() || url.path() == "/") {
        return Err(SmtpUrlError::Extra("path"));
    }
    if url.query().is_some() {
        return Err(SmtpUrlError::Extra("query"));
    }
    if url.fragment().is_some() {
        return Err(SmtpUrlError::Extra("fragment"));
    }
    match (url.username().is_empty(), url.password().is_some()) {
        (false, false) => Err(SmtpUrlError::PasswordMissing),
        (true, true) => Err(SmtpUrlError::UserMissing),
        _ => Ok(url),
    }
}

/// The rules for `[sms] webhook_url`: `http://` or `https://` with a host,
/// and no fragment (a fragment is never sent, so it is a mistake). A path
/// and query are kept: they often carry the provider's account or token.
pub fn check_webhook_url(webhook_url: &str) -> Result<Url, WebhookUrlError> {
    let url = Url::parse(webhook_url.trim()).map_err(WebhookUrlError::Syntax)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(WebhookUrlError::Scheme(url.scheme().to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(WebhookUrlError::Host);
    }
    if url.fragment().is_some() {
        return Err(WebhookUrlError::Fragment);
    }
    Ok(url)
}

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the message has no body to send (already scrubbed)")]
    Scrubbed,
    #[error("the recipient is not a valid email address: {0}")]
    Recipient(#[source] lettre::address::AddressError),
    #[error("could not build the email: {0}")]
    Build(#[source] lettre::error::Error),
    #[error("SMTP delivery failed: {0}")]
    Smtp(#[source] lettre::transport::smtp::Error),
    #[error("the SMTP relay does not support {0}, which this message needs")]
    RelayLacks(&'static str),
    #[error("SMS webhook request failed: {0}")]
    Webhook(#[source] reqwest::Error),
    #[error("SMS webhook answered HTTP {0}")]
    WebhookStatus(u16),
    #[error("Twilio request failed: {0}")]
    Twilio(#[source] reqwest::Error),
    #[error("Twilio answered HTTP {0}")]
    TwilioStatus(u16),
    #[error("delivery did not finish within {0:?}")]
    Timeout(Duration),
    #[error("back-channel logout request failed: {0}")]
    Logout(#[source] reqwest::Error),
    #[error("back-channel logout URI answered HTTP {0}")]
    LogoutStatus(u16),
    #[error("the back-channel logout URI is not a valid http(s) URL")]
    LogoutUri,
}

impl DeliveryError {
    /// A failure that retrying cannot fix: the message itself is unusable.
    /// Remote refusals are never treated as permanent, because a misconfigured
    /// relay (wrong credentials, say) is fixed by the operator, and the queued
    /// messages should still go out afterwards.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            DeliveryError::Scrubbed | DeliveryError::Recipient(_) | DeliveryError::Build(_) | DeliveryError::LogoutUri
        )
    }
}

/// The connection security an `smtp_url` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: no TLS.
    Plain,
    /// `smtps://`: TLS from the first byte.
    ImplicitTls,
}

/// A parsed `[email] smtp_url`. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpEndpoint {
    pub security: SmtpSecurity,
    pub host: String,
    pub port: u16,
    /// User name and password, percent-decoded.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for SmtpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpEndpoint")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish_non_exhaustive()
    }
}

impl SmtpEndpoint {
    /// Parses `smtp://[user:pass@]host[:port]` or `smtps://...`. Without a
    /// port, `smtp` uses 25 and `smtps` 465.
    pub fn parse(smtp_url: &str) -> Result<SmtpEndpoint, ConfigError> {
        let url = check_smtp_url(smtp_url)?;
        let (security, default_port) = match url.scheme() {
            "smtps" => (SmtpSecurity::ImplicitTls, 465),
            _ => (SmtpSecurity::Plain, 25),
        };
        let host = match url.host() {
            Some(Host::Domain(d)) => d.to_owned(),
            Some(Host::Ipv4(a)) => a.to_string(),
            Some(Host::Ipv6(a)) => a.to_string(),
            None => return Err(ConfigError::SmtpHost),
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            ("", Some(_)) => return Err(ConfigError::SmtpUserMissing),
            (_, None) => return Err(ConfigError::SmtpPasswordMissing),
            (user, Some(pass)) => Some((
                percent_decode(user).ok_or(ConfigError::SmtpUserinfoEncoding("user name"))?,
                percent_decode(pass).ok_or(ConfigError::SmtpUserinfoEncoding("password"))?,
            )),
        };
        Ok(SmtpEndpoint {
            security,
            host,
            port: url.port().unwrap_or(default_port),
            credentials,
        })
    }
}

/// `%XX` sequences to bytes, then UTF-8; `None` if either step fails.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Sends email over SMTP with lettre's connection, reusing connections
/// between messages (see [`crate::smtp_pool`]). Clones share the pool.
#[derive(Clone)]
pub struct EmailTransport {
    pool: Arc<SmtpPool>,
    from: Mailbox,
    endpoint: SmtpEndpoint,
}

impl fmt::Debug for EmailTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailTransport")
            .field("from", &self.from.to_string())
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl EmailTransport {
    /// From `[email] smtp_url` and `[email] from` (a mailbox such as
    /// `Signet <signet@example.com>` or a bare address).
    pub fn new(smtp_url: &str, from: &str) -> Result<EmailTransport, ConfigError> {
        let endpoint = SmtpEndpoint::parse(smtp_url)?;
        let from = from.trim().parse::<Mailbox>().map_err(|source| ConfigError::From {
            value: from.to_owned(),
            source,
        })?;
        let tls = match endpoint.security {
            SmtpSecurity::Plain => None,
            SmtpSecurity::ImplicitTls => Some(TlsParameters::new(endpoint.host.clone()).map_err(ConfigError::SmtpTls)?),
        };
        let credentials = endpoint
            .credentials
            .as_ref()
            .map(|(user, pass)| Credentials::new(user.clone(), pass.clone()));
        let pool = SmtpPool::new(
            endpoint.host.clone(),
            endpoint.port,
            tls,
            credentials,
            SMTP_CONNECT_TIMEOUT,
        );
        Ok(EmailTransport {
            pool: Arc::new(pool),
            from,
            endpoint,
        })
    }

    /// Keeps at most `n` idle connections to the relay: one per send slot
    /// of the courier that uses this transport.
    pub fn set_pool_size(&self, n: usize) {
        self.pool.set_max_idle(n);
    }

    /// How many SMTP connections this transport has opened so far.
    pub fn connections_opened(&self) -> usize {
        self.pool.opened()
    }

    pub fn endpoint(&self) -> &SmtpEndpoint {
        &self.endpoint
    }

    /// The sender every message carries.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Builds the MIME message: `multipart/alternative` (text, then HTML)
    /// when there is an HTML part, otherwise a single `text/plain` part.
    pub fn compose(
        &self,
        recipient: &str,
        subject: &str,
        text: &str,
        html: Option<&str>,
    ) -> Result<lettre::Message, DeliveryError> {
        let to = recipient.parse::<Mailbox>().map_err(DeliveryError::Recipient)?;
        let builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(None);
        let built = match html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(text.to_owned(), html.to_owned())),
            None => builder.singlepart(SinglePart::plain(text.to_owned())),
        };
        built.map_err(DeliveryError::Build)
    }

    pub async fn send(
        &self,
        recipient: &str,
        subject: &str,
        text: &str,
        html: Option<&str>,
    ) -> Result<(), DeliveryError> {
        let email = self.compose(recipient, subject, text, html)?;
        self.pool.send(email.envelope(), &email.formatted()).await
    }
}

/// The JSON the SMS webhook receives.
#[derive(Debug, Serialize)]
struct SmsPayload<'a> {
    to: &'a str,
    body: &'a str,
}

/// Sends SMS by POSTing to the configured webhook.
#[derive(Clone)]
pub struct SmsTransport {
    client: reqwest::Client,
    url: Url,
}

impl fmt::Debug for SmsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a token in its path or query; show only where it goes.
        f.debug_struct("SmsTransport")
            .field("host", &self.url.host_str())
            .finish_non_exhaustive()
    }
}

impl SmsTransport {
    /// From `[sms] webhook_url` (see [`check_webhook_url`]).
    pub fn new(webhook_url: &str) -> Result<SmsTransport, ConfigError> {
        let url = check_webhook_url(webhook_url)?;
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ConfigError::WebhookClient)?;
        Ok(SmsTransport { client, url })
    }

    /// POSTs `{"to", "body"}`; any 2xx is success.
    pub async fn send(&self, to: &str, body: &str) -> Result<(), DeliveryError> {
        let response = self
            .client
            .post(self.url.clone())
            .json(&SmsPayload { to, body })
            .send()
            .await
            .map_err(|e| DeliveryError::Webhook(e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::WebhookStatus(status.as_u16()))
        }
    }
}

/// The Twilio account a [`TwilioTransport`] sends from. `Debug` hides the
/// token.
#[derive(Clone, PartialEq, Eq)]
pub struct TwilioAccount {
    /// `AC` and 32 hex digits.
    pub account_sid: String,
    pub auth_token: String,
    /// The sender: an E.164 number or a messaging service SID.
    pub from: String,
    /// `https://api.twilio.com` unless overridden.
    pub base_url: Url,
}

impl fmt::Debug for TwilioAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioAccount")
            .field("account_sid", &self.account_sid)
            .field("from", &self.from)
            .field("base_url", &self.base_url.host_str())
            .finish_non_exhaustive()
    }
}

/// Twilio's own API host.
pub const TWILIO_BASE_URL: &str = "https://api.twilio.com";

/// Whether `sid` looks like a Twilio account SID (`AC` + 32 hex digits).
pub fn check_twilio_sid(sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with("AC") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Sends SMS through the Twilio Messages API (one `POST` per message).
#[derive(Clone)]
pub struct TwilioTransport {
    client: reqwest::Client,
    account: TwilioAccount,
    url: Url,
}

impl fmt::Debug for TwilioTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioTransport")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl TwilioTransport {
    pub fn new(account: TwilioAccount) -> Result<TwilioTransport, ConfigError> {
        if !check_twilio_sid(&account.account_sid) {
            return Err(ConfigError::TwilioAccountSid);
        }
        let base = check_webhook_url(account.base_url.as_str()).map_err(ConfigError::TwilioBaseUrl)?;
        let path = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            base.path().trim_end_matches('/'),
            account.account_sid
        );
        let mut url = base;
        url.set_path(&path);
        url.set_query(None);
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ConfigError::WebhookClient)?;
        Ok(TwilioTransport { client, account, url })
    }

    /// Where messages are POSTed.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// POSTs `To`, `From`, `Body` form-encoded with basic auth; any 2xx is
    /// success (Twilio answers 201 with the message resource).
    pub async fn send(&self, to: &str, body: &str) -> Result<(), DeliveryError> {
        let form = [("To", to), ("From", self.account.from.as_str()), ("Body", body)];
        let response = self
            .client
            .post(self.url.clone())
            .basic_auth(&self.account.account_sid, Some(&self.account.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| DeliveryError::Twilio(e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::TwilioStatus(status.as_u16()))
        }
    }
}

/// How long a relying party's back-channel logout URI may take to answer.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(10);

/// Delivers OpenID Connect back-channel logout tokens (Back-Channel Logout
/// 1.0 §2.5): `POST` to the client's `backchannel_logout_uri`, form field
/// `logout_token`; a 2xx means the relying party took it (§2.8), anything
/// else is retried with the outbox's backoff. Redirects are not followed
/// (the token goes where the client registered, nowhere else). It needs no
/// configuration, so it exists in every deployment, dev outbox included.
#[derive(Clone, Debug, Default)]
pub struct LogoutTransport {
    client: std::sync::Arc<std::sync::OnceLock<reqwest::Client>>,
}

impl LogoutTransport {
    fn client(&self) -> Result<&reqwest::Client, DeliveryError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let built = reqwest::Client::builder()
            .timeout(LOGOUT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(DeliveryError::Logout)?;
        Ok(self.client.get_or_init(|| built))
    }

    /// POSTs `logout_token=token` to `uri`.
    pub async fn send(&self, uri: &str, token: &str) -> Result<(), DeliveryError> {
        let url = check_webhook_url(uri).map_err(|_| DeliveryError::LogoutUri)?;
        let response = self
            .client()?
            .post(url)
            .header(reqwest::header::CACHE_CONTROL, "no-store")
            .form(&[("logout_token", token)])
            .send()
            .await
            .map_err(|e| DeliveryError::Logout(e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::LogoutStatus(status.as_u16()))
        }
    }
}

/// How SMS leave: a webhook or Twilio.
#[derive(Clone, Debug)]
pub enum SmsSender {
    Webhook(SmsTransport),
    Twilio(TwilioTransport),
}

impl SmsSender {
    pub async fn send(&self, to: &str, body: &str) -> Result<(), DeliveryError> {
        match self {
            SmsSender::Webhook(w) => w.send(to, body).await,
            SmsSender::Twilio(t) => t.send(to, body).await,
        }
    }
}

/// What happened to a message that did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Handed to the SMTP relay or the SMS webhook.
    Delivered,
    /// No transport for its channel: the outbox is where it is read.
    KeptInOutbox,
}

impl Outcome {
    /// Whether the stored bodies should now be erased.
    pub fn scrub(self) -> bool {
        matches!(self, Outcome::Delivered)
    }
}

/// The transports in use; a channel without one stays in the dev outbox.
#[derive(Clone, Debug, Default)]
pub struct Delivery {
    email: Option<EmailTransport>,
    sms: Option<SmsSender>,
    logout: LogoutTransport,
}

impl Delivery {
    pub fn new(email: Option<EmailTransport>, sms: Option<SmsTransport>) -> Delivery {
        Delivery {
            email,
            sms: sms.map(SmsSender::Webhook),
            logout: LogoutTransport::default(),
        }
    }

    /// The same, with SMS sent by `sms` (the webhook or Twilio).
    pub fn with_sms(mut self, sms: SmsSender) -> Delivery {
        self.sms = Some(sms);
        self
    }

    /// Everything stays in the outbox (no real delivery configured).
    pub fn outbox_only() -> Delivery {
        Delivery::default()
    }

    /// From the config keys as written: `[email] from`, `[email] smtp_url`
    /// and `[sms] webhook_url`. An absent URL means that channel uses the outbox.
    pub fn from_config(
        email_from: &str,
        smtp_url: Option<&str>,
        sms_webhook_url: Option<&str>,
    ) -> Result<Delivery, ConfigError> {
        let email = smtp_url.map(|url| EmailTransport::new(url, email_from)).transpose()?;
        let sms = sms_webhook_url
            .map(SmsTransport::new)
            .transpose()?
            .map(SmsSender::Webhook);
        Ok(Delivery {
            email,
            sms,
            logout: LogoutTransport::default(),
        })
    }

    /// Sizes the connection pools for a courier with `concurrency` send
    /// slots.
    pub fn size_pools(&self, concurrency: usize) {
        if let Some(email) = &self.email {
            email.set_pool_size(concurrency);
        }
    }

    /// Whether messages on `channel` really leave Signet (otherwise they stay
    /// in the outbox).
    pub fn delivers(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.email.is_some(),
            Channel::Sms => self.sms.is_some(),
            Channel::BackchannelLogout => true,
        }
    }

    /// Makes one attempt at `message`.
    pub async fn deliver(&self, message: &Message) -> Result<Outcome, DeliveryError> {
        match message.channel {
            Channel::Email => {
                let Some(email) = &self.email else {
                    return Ok(Outcome::KeptInOutbox);
                };
                let text = message.text_body.as_deref().ok_or(DeliveryError::Scrubbed)?;
                email
                    .send(&message.recipient, &message.subject, text, message.html_body.as_deref())
                    .await?;
            }
            Channel::Sms => {
                let Some(sms) = &self.sms else {
                    return Ok(Outcome::KeptInOutbox);
                };
                let text = message.text_body.as_deref().ok_or(DeliveryError::Scrubbed)?;
                sms.send(&message.recipient, text).await?;
            }
            Channel::BackchannelLogout => {
                let token = message.text_body.as_deref().ok_or(DeliveryError::Scrubbed)?;
                self.logout.send(&message.recipient, token).await?;
            }
        }
        Ok(Outcome::Delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_url_forms() {
        let e = SmtpEndpoint::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            e,
            SmtpEndpoint {
                security: SmtpSecurity::Plain,
                host: "127.0.0.1".into(),
                port: 2525,
                credentials: None
            }
        );
        let e = SmtpEndpoint::parse("smtps://mail.example.com").unwrap();
        assert_eq!((e.security, e.port), (SmtpSecurity::ImplicitTls, 465));
        assert_eq!(SmtpEndpoint::parse("smtp://relay.internal/").unwrap().port, 25);
        let e = SmtpEndpoint::parse("smtp://[::1]:25").unwrap();
        assert_eq!(e.host, "::1");
        let e = SmtpEndpoint::parse("smtps://apikey:p%40ss%3Aw%2Fd@smtp.example.com:465").unwrap();
        assert_eq!(e.credentials, Some(("apikey".into(), "p@ss:w/d".into())));
        assert!(!format!("{e:?}").contains("p@ss"), "Debug must not show the password");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn only_local_failures_are_permanent() {
        assert!(DeliveryError::Scrubbed.is_permanent());
        assert!(!DeliveryError::WebhookStatus(500).is_permanent());
        assert!(!DeliveryError::Timeout(Duration::from_secs(1)).is_permanent());
    }
}
