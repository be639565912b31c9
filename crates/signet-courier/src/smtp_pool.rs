//! SMTP connections kept open between messages, and one write per message
//! body.
//!
//! Why (measured with the email-code bench, docs/benchmarks.md):
//! - **Reuse.** A fresh connection per message costs a TCP (and, for
//!   `smtps://`, a TLS) handshake, the greeting, `EHLO` and `AUTH` before
//!   the first `MAIL`. RFC 5321 section 3.3 lets a client send any number of
//!   transactions over one session, so a connection that finished a
//!   transaction goes back to an idle list and the next message takes it.
//!   The list never holds more than [`SmtpPool::set_max_idle`] connections
//!   (the courier sets it to its concurrency, so one connection per send
//!   slot), and a connection idle longer than [`IDLE_LIMIT`] is closed with
//!   `QUIT` instead of being used: RFC 5321 section 4.5.3.2.7 lets a server
//!   drop a silent client after 5 minutes, and many relays do so sooner.
//! - **A relay that closed an idle connection.** Nothing is accepted before
//!   the reply to the end of the content (RFC 5321 section 4.1.1.4), so a
//!   reused connection that fails *before the content is sent*, with a
//!   broken connection or a `421` (the server is closing the channel), is
//!   dropped and the message goes over a fresh connection at once. A failure
//!   after the content was sent is returned as it is: the queue retries it
//!   later, as for a fresh connection (at-least-once, never a silent loss).
//! - **One write for the content and its terminator.** lettre writes the
//!   content, then `CRLF.CRLF` in a second small write; Nagle's algorithm
//!   holds that second write until the relay acknowledges the first, and the
//!   relay delays its acknowledgement (up to 40 ms on Linux) because it is
//!   waiting for the end of the data. Every message paid that stall. Here
//!   the dot-stuffed content (RFC 5321 section 4.5.2) and the terminator go
//!   out in one write.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};

use crate::transport::DeliveryError;

/// An idle connection older than this is closed rather than reused.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);
/// Idle connections kept until the courier says how many send slots it has.
const DEFAULT_MAX_IDLE: usize = 4;
/// How long a polite `QUIT` to a retired connection may take.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The relay this pool talks to, and how.
pub(crate) struct SmtpPool {
    host: String,
    port: u16,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    connect_timeout: Duration,
    max_idle: AtomicUsize,
    idle: Mutex<Vec<Idle>>,
    opened: AtomicUsize,
}

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

impl fmt::Debug for SmtpPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpPool")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("max_idle", &self.max_idle.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Why one transaction failed, and whether the content had left yet.
struct Failed {
    error: DeliveryError,
    content_sent: bool,
}

impl SmtpPool {
    pub(crate) fn new(
        host: String,
        port: u16,
        tls: Option<TlsParameters>,
        credentials: Option<Credentials>,
        connect_timeout: Duration,
    ) -> SmtpPool {
        SmtpPool {
            host,
            port,
            tls,
            credentials,
            hello: ClientId::default(),
            connect_timeout,
            max_idle: AtomicUsize::new(DEFAULT_MAX_IDLE),
            idle: Mutex::new(Vec::new()),
            opened: AtomicUsize::new(0),
        }
    }

    /// Keeps at most `n` idle connections (at least one).
    pub(crate) fn set_max_idle(&self, n: usize) {
        self.max_idle.store(n.max(1), Ordering::Relaxed);
    }

    /// How many connections this pool has opened so far.
    pub(crate) fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    /// Sends one message: over an idle connection if there is one (over a
    /// fresh one if that connection turns out to be gone before the content
    /// left), else over a fresh connection. A connection that completed the
    /// transaction goes back to the idle list.
    pub(crate) async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<(), DeliveryError> {
        if let Some(mut conn) = self.take_idle() {
            match transaction(&mut conn, envelope, email).await {
                Ok(()) => {
                    self.put_back(conn);
                    return Ok(());
                }
                Err(failed) if !failed.content_sent && connection_gone(&failed.error) => {
                    tracing::debug!(error = %failed.error, "a pooled SMTP connection was closed by the relay; using a fresh one");
                    retire(conn);
                }
                Err(failed) => {
                    retire(conn);
                    return Err(failed.error);
                }
            }
        }
        let mut conn = self.connect().await?;
        match transaction(&mut conn, envelope, email).await {
            Ok(()) => {
                self.put_back(conn);
                Ok(())
            }
            Err(failed) => {
                retire(conn);
                Err(failed.error)
            }
        }
    }

    /// The most recently used idle connection that is still fresh; older
    /// ones are retired on the way.
    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // Oldest first: everything up to the first fresh one is stale.
            let fresh_from = idle.iter().position(|i| i.since.elapsed() < IDLE_LIMIT);
            let cut = fresh_from.unwrap_or(idle.len());
            stale.extend(idle.drain(..cut));
            idle.pop()
        };
        for old in stale {
            retire(old.conn);
        }
        found.map(|i| i.conn)
    }

    fn put_back(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let max = self.max_idle.load(Ordering::Relaxed);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < max {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        } else {
            drop(idle);
            retire(conn);
        }
    }

    /// A new session: TCP (and TLS for `smtps://`), greeting, `EHLO`, and
    /// `AUTH` when the URL had credentials, all within the connect timeout.
    async fn connect(&self) -> Result<AsyncSmtpConnection, DeliveryError> {
        let session = async {
            let mut conn = AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.connect_timeout),
                &self.hello,
                self.tls.clone(),
                None,
            )
            .await?;
            if let Some(credentials) = &self.credentials {
                if let Err(e) = conn.auth(DEFAULT_MECHANISMS, credentials).await {
                    conn.abort().await;
                    return Err(e);
                }
            }
            Ok(conn)
        };
        let conn = match tokio::time::timeout(self.connect_timeout, session).await {
            Ok(result) => result.map_err(DeliveryError::Smtp)?,
            Err(_) => return Err(DeliveryError::Timeout(self.connect_timeout)),
        };
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }
}

/// `MAIL`, `RCPT` for each recipient, `DATA`, then the content and its
/// terminator in one write. Options as lettre sets them: `SMTPUTF8` for
/// non-ASCII addresses (RFC 6531), `BODY=8BITMIME` for non-ASCII content
/// (RFC 6152), refused if the relay lacks the extension.
async fn transaction(conn: &mut AsyncSmtpConnection, envelope: &Envelope, email: &[u8]) -> Result<(), Failed> {
    let before = |error| Failed {
        error: DeliveryError::Smtp(error),
        content_sent: false,
    };
    let unsupported = |what| Failed {
        error: DeliveryError::RelayLacks(what),
        content_sent: false,
    };
    let mut options = Vec::new();
    let non_ascii = |a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii();
    if envelope.from().is_some_and(non_ascii) || envelope.to().iter().any(non_ascii) {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(unsupported("SMTPUTF8"));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !email.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(unsupported("8BITMIME"));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    conn.command(Mail::new(envelope.from().cloned(), options))
        .await
        .map_err(before)?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), vec![])).await.map_err(before)?;
    }
    conn.command(Data).await.map_err(before)?;
    let sent = match Content::new(email) {
        Some(content) => conn.command(content).await,
        // Not text (lettre's own messages always are): lettre's two writes.
        None => conn.message(email).await,
    };
    sent.map_err(|error| Failed {
        error: DeliveryError::Smtp(error),
        content_sent: true,
    })?;
    Ok(())
}

/// Whether a failure means the connection itself is gone (closed, reset,
/// or the relay's `421` "closing transmission channel", RFC 5321 section
/// 3.8), as opposed to the relay answering about this message.
fn connection_gone(error: &DeliveryError) -> bool {
    let DeliveryError::Smtp(error) = error else {
        return false;
    };
    match error.status() {
        None => !error.is_client(),
        Some(code) => u16::from(code) == 421,
    }
}

/// Closes a connection politely (`QUIT`) without making the sender wait.
fn retire(mut conn: AsyncSmtpConnection) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(QUIT_TIMEOUT, conn.abort()).await;
    });
}

/// The message content, dot-stuffed, followed by the `CRLF.CRLF` that ends
/// it, written as one command so both leave in one write.
struct Content(String);

impl Content {
    fn new(email: &[u8]) -> Option<Content> {
        let text = std::str::from_utf8(email).ok()?;
        Some(Content(format!("{}\r\n.\r\n", dot_stuff(text))))
    }
}

impl fmt::Display for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 5321 section 4.5.2: a line that starts with `.` gets one more.
fn dot_stuff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut line_start = true;
    for c in text.chars() {
        if line_start && c == '.' {
            out.push('.');
        }
        out.push(c);
        line_start = c == '\n';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_only() {
        assert_eq!(dot_stuff(".a\r\nb.c\r\n..d\r\n."), "..a\r\nb.c\r\n...d\r\n..");
        assert_eq!(dot_stuff("no dots\r\n"), "no dots\r\n");
    }

    #[test]
    fn content_ends_with_the_terminator() {
        let c = Content::new(b"Subject: x\r\n\r\n.hi\r\n").unwrap();
        assert_eq!(c.to_string(), "Subject: x\r\n\r\n..hi\r\n\r\n.\r\n");
        assert!(Content::new(&[0xff, 0xfe]).is_none());
    }
}
