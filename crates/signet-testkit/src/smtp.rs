//! A real SMTP listener for tests (RFC 5321, plain TCP, no TLS).
//!
//! It speaks the subset a submission client such as lettre uses: the `220`
//! greeting, `EHLO`/`HELO`, `AUTH PLAIN`, `MAIL FROM`, one or more `RCPT TO`,
//! `DATA` with dot-unstuffing (RFC 5321 section 4.5.2), `RSET`, `NOOP` and
//! `QUIT`. Anything else gets `502`. STARTTLS is deliberately not advertised,
//! so a client configured for plain SMTP never tries to upgrade.
//!
//! [`SmtpSink::set_failing`] makes the server answer `451 4.3.0` (a transient
//! failure, RFC 3463) to `MAIL FROM` and `DATA`, which is how a real relay
//! behaves during an outage; a correct client keeps the message and retries.
//! [`SmtpSink::set_delay`] makes it a slow relay: it waits before answering
//! each `RCPT TO` and before accepting the end of `DATA`.
//! [`SmtpSink::hang_up_idle`] makes it drop every session that is waiting
//! for a command, with `421` (RFC 5321 section 3.8), as a relay does to an
//! idle client; [`SmtpSink::connections`] counts the sessions it accepted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::mail::CapturedMail;

/// The credentials a client presented with `AUTH PLAIN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpLogin {
    pub user: String,
    pub password: String,
}

#[derive(Default)]
struct Shared {
    mail: Mutex<Mailboxes>,
    failing: AtomicBool,
    /// Milliseconds to wait before answering `RCPT` and the end of `DATA`.
    delay_ms: AtomicU64,
    /// Wakes every [`SmtpSink::wait_for`] when a message arrives.
    arrived: Notify,
    /// Connections accepted so far.
    connections: AtomicU64,
    /// Wakes every session waiting for a command, to hang up.
    hang_up: Notify,
}

/// Every accepted message, and where each recipient's are among them, so
/// that a client reading one recipient's mail ([`SmtpSink::next_in`])
/// looks at that recipient's new messages only. (A bench waits on
/// thousands of messages from many clients at once: looking through all
/// of them on each arrival made the sink's cost grow with the square of
/// the run, on the cores the server shares.)
#[derive(Default)]
struct Mailboxes {
    messages: Vec<CapturedMail>,
    /// Lowercased envelope recipient → indices into `messages`, oldest
    /// first.
    by_recipient: std::collections::HashMap<String, Vec<usize>>,
}

impl Shared {
    fn mail(&self) -> std::sync::MutexGuard<'_, Mailboxes> {
        self.mail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn messages(&self) -> Vec<CapturedMail> {
        self.mail().messages.clone()
    }

    /// The first message matching `pred`, cloning only that one: among
    /// all messages for `None`, or among one recipient's (lowercased, as
    /// the index keys them) from a position in their mail on. Answers the match's position in the list it was
    /// found in.
    fn find(
        &self,
        inbox: Option<(&str, usize)>,
        pred: &impl Fn(&CapturedMail) -> bool,
    ) -> Option<(usize, CapturedMail)> {
        let mail = self.mail();
        let found = match inbox {
            None => mail.messages.iter().enumerate().find(|(_, m)| pred(m)),
            Some((to, from)) => mail
                .by_recipient
                .get(to)?
                .iter()
                .enumerate()
                .skip(from)
                .map(|(at, &i)| (at, &mail.messages[i]))
                .find(|(_, m)| pred(m)),
        };
        found.map(|(at, m)| (at, m.clone()))
    }

    fn push(&self, mail: CapturedMail) {
        {
            let mut boxes = self.mail();
            let index = boxes.messages.len();
            for to in &mail.to {
                let entry = boxes.by_recipient.entry(to.to_ascii_lowercase()).or_default();
                if entry.last() != Some(&index) {
                    entry.push(index);
                }
            }
            boxes.messages.push(mail);
        }
        self.arrived.notify_waiters();
    }
}

/// An SMTP server on `127.0.0.1` that keeps every message it accepts.
///
/// Dropping the sink stops accepting connections.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
}

impl SmtpSink {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start() -> std::io::Result<SmtpSink> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let acceptor = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(SmtpSink { addr, shared, acceptor })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT`, the form Signet's `[email] smtp_url` takes.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<CapturedMail> {
        self.shared.messages()
    }

    /// While `true`, `MAIL FROM` and `DATA` are answered `451 4.3.0 try again later`.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Waits `delay` before answering each `RCPT TO` and before answering
    /// the end of `DATA` (so a one-recipient message takes twice `delay`),
    /// like a relay that checks recipients and scans content slowly.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// How many connections the sink has accepted.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every session waiting for its next command is answered `421 4.4.2`
    /// and closed, like a relay ending idle sessions; sessions in the
    /// middle of a reply are not affected.
    pub fn hang_up_idle(&self) {
        self.shared.hang_up.notify_waiters();
    }

    /// The first accepted message matching `pred`, waiting up to `timeout`
    /// for one to arrive.
    pub async fn wait_for(&self, pred: impl Fn(&CapturedMail) -> bool, timeout: Duration) -> Option<CapturedMail> {
        self.wait(None, pred, timeout).await.map(|(_, mail)| mail)
    }

    /// The next message in `inbox` matching `pred`, waiting up to `timeout`
    /// for one to arrive; the inbox then points past it. Only that
    /// recipient's messages not passed over yet are looked at, so a client
    /// that reads each of its mails once does a constant amount of work per
    /// mail, however many the sink holds.
    pub async fn next_in(
        &self,
        inbox: &mut Inbox,
        pred: impl Fn(&CapturedMail) -> bool,
        timeout: Duration,
    ) -> Option<CapturedMail> {
        let (at, mail) = self.wait(Some((&inbox.recipient, inbox.next)), pred, timeout).await?;
        inbox.next = at + 1;
        Some(mail)
    }

    async fn wait(
        &self,
        inbox: Option<(&str, usize)>,
        pred: impl Fn(&CapturedMail) -> bool,
        timeout: Duration,
    ) -> Option<(usize, CapturedMail)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before looking, so a message that arrives
            // between the look and the wait still wakes us.
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(found) = self.shared.find(inbox, &pred) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.shared.find(inbox, &pred);
            }
        }
    }
}

/// One recipient's mail at a sink, read in order of arrival
/// ([`SmtpSink::next_in`]).
#[derive(Clone, Debug)]
pub struct Inbox {
    /// Lowercased once, as the sink keys its index of recipients.
    recipient: String,
    /// The position in the recipient's mail to look from.
    next: usize,
}

impl Inbox {
    /// `recipient`'s mail from the first message on (the address is
    /// compared without case).
    pub fn new(recipient: &str) -> Inbox {
        Inbox {
            recipient: recipient.to_ascii_lowercase(),
            next: 0,
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                // Replies go out at once, like a real relay's.
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    // A client that hangs up mid-session is not the sink's problem.
                    let _ = Session::new(shared).serve(stream).await;
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// One SMTP session: the envelope being built and the login, if any.
struct Session {
    shared: Arc<Shared>,
    from: Option<String>,
    to: Vec<String>,
    login: Option<SmtpLogin>,
}

/// Longest command or data line we buffer (RFC 5321 allows 1000 octets; this
/// is generous and only protects the test process from a runaway peer).
const MAX_LINE: u64 = 64 * 1024;

impl Session {
    fn new(shared: Arc<Shared>) -> Self {
        Session {
            shared,
            from: None,
            to: Vec::new(),
            login: None,
        }
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
    }

    async fn slow_down(&self) {
        let ms = self.shared.delay_ms.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    fn failing(&self) -> bool {
        self.shared.failing.load(Ordering::SeqCst)
    }

    async fn serve(mut self, stream: TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        reply(&mut write, "220 localhost Signet test SMTP sink ready").await?;
        loop {
            let line = {
                let hang_up = self.shared.hang_up.notified();
                tokio::select! {
                    line = read_line(&mut reader) => line?,
                    () = hang_up => {
                        reply(&mut write, "421 4.4.2 localhost idle too long, closing").await?;
                        return Ok(());
                    }
                }
            };
            let Some(line) = line else { break };
            let (verb, arg) = match line.split_once(' ') {
                Some((verb, arg)) => (verb.to_ascii_uppercase(), arg.trim()),
                None => (line.trim().to_ascii_uppercase(), ""),
            };
            match verb.as_str() {
                "EHLO" => {
                    self.reset();
                    let greeting =
                        format!("250-localhost greets {arg}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN");
                    reply(&mut write, &greeting).await?;
                }
                "HELO" => {
                    self.reset();
                    reply(&mut write, "250 localhost").await?;
                }
                "AUTH" => {
                    let answer = self.auth(arg, &mut reader, &mut write).await?;
                    reply(&mut write, answer).await?;
                }
                "MAIL" => {
                    let answer = self.mail(arg);
                    reply(&mut write, answer).await?;
                }
                "RCPT" => {
                    self.slow_down().await;
                    let answer = self.rcpt(arg);
                    reply(&mut write, answer).await?;
                }
                "DATA" => {
                    if self.from.is_none() || self.to.is_empty() {
                        reply(&mut write, "503 5.5.1 need MAIL and RCPT first").await?;
                    } else if self.failing() {
                        self.reset();
                        reply(&mut write, "451 4.3.0 try again later").await?;
                    } else {
                        reply(&mut write, "354 end data with <CR><LF>.<CR><LF>").await?;
                        let Some(raw) = read_data(&mut reader).await? else {
                            return Ok(());
                        };
                        self.slow_down().await;
                        let mail = CapturedMail {
                            from: self.from.take().unwrap_or_default(),
                            to: std::mem::take(&mut self.to),
                            raw,
                            login: self.login.clone(),
                        };
                        self.shared.push(mail);
                        reply(&mut write, "250 2.0.0 OK queued").await?;
                    }
                }
                "RSET" => {
                    self.reset();
                    reply(&mut write, "250 2.0.0 OK").await?;
                }
                "NOOP" => reply(&mut write, "250 2.0.0 OK").await?,
                "QUIT" => {
                    reply(&mut write, "221 2.0.0 bye").await?;
                    return Ok(());
                }
                "" => reply(&mut write, "500 5.5.2 syntax error").await?,
                _ => reply(&mut write, "502 5.5.1 command not implemented").await?,
            }
        }
        Ok(())
    }

    fn mail(&mut self, arg: &str) -> &'static str {
        if self.from.is_some() {
            return "503 5.5.1 sender already given";
        }
        if self.failing() {
            return "451 4.3.0 try again later";
        }
        match path_argument(arg, "FROM:") {
            Some(from) => {
                self.from = Some(from);
                self.to.clear();
                "250 2.1.0 OK"
            }
            None => "501 5.5.4 syntax: MAIL FROM:<address>",
        }
    }

    fn rcpt(&mut self, arg: &str) -> &'static str {
        if self.from.is_none() {
            return "503 5.5.1 need MAIL first";
        }
        match path_argument(arg, "TO:") {
            Some(to) if !to.is_empty() => {
                self.to.push(to);
                "250 2.1.5 OK"
            }
            _ => "501 5.5.4 syntax: RCPT TO:<address>",
        }
    }

    /// `AUTH PLAIN [initial-response]` (RFC 4954, RFC 4616). Any credentials
    /// are accepted and recorded so tests can check what the client sent.
    async fn auth(
        &mut self,
        arg: &str,
        reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
        write: &mut OwnedWriteHalf,
    ) -> std::io::Result<&'static str> {
        let (mechanism, initial) = match arg.split_once(' ') {
            Some((m, rest)) => (m, Some(rest.trim().to_owned())),
            None => (arg, None),
        };
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            return Ok("504 5.5.4 unrecognized authentication type");
        }
        let response = match initial {
            Some(r) => r,
            None => {
                reply(write, "334 ").await?;
                match read_line(reader).await? {
                    Some(line) => line,
                    None => return Ok("501 5.5.2 no response"),
                }
            }
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(response.trim()) else {
            return Ok("501 5.5.2 cannot decode response");
        };
        let decoded = String::from_utf8_lossy(&decoded).into_owned();
        let mut fields = decoded.split('\0');
        let (_authzid, user, password) = (fields.next(), fields.next(), fields.next());
        match (user, password) {
            (Some(user), Some(password)) => {
                self.login = Some(SmtpLogin {
                    user: user.to_owned(),
                    password: password.to_owned(),
                });
                Ok("235 2.7.0 authentication successful")
            }
            _ => Ok("501 5.5.2 malformed PLAIN response"),
        }
    }
}

/// Extracts the address from `FROM:<a@b> PARAMS` or `TO:<a@b>`.
fn path_argument(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg.get(keyword.len()..)?.trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest.get(..end)?.to_owned())
}

/// One reply in one write: a reply split over two small writes waits, by
/// Nagle's algorithm, for the client's delayed ACK of the first (about
/// 40 ms on Linux), which made every SMTP exchange with the sink slow.
async fn reply(write: &mut OwnedWriteHalf, text: &str) -> std::io::Result<()> {
    write.write_all(format!("{text}\r\n").as_bytes()).await?;
    write.flush().await
}

/// One line without its CRLF, or `None` at end of stream.
async fn read_line(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<Option<String>> {
    use tokio::io::AsyncReadExt as _;
    let mut buf = Vec::new();
    let n = (&mut *reader).take(MAX_LINE).read_until(b'\n', &mut buf).await?;
    if n == 0 {
        return Ok(None);
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// The message content up to the lone `.` line, dot-unstuffed, with CRLF
/// line endings; `None` if the client hung up first.
async fn read_data(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<Option<String>> {
    let mut raw = String::new();
    loop {
        let Some(line) = read_line(reader).await? else {
            return Ok(None);
        };
        if line == "." {
            return Ok(Some(raw));
        }
        // RFC 5321 4.5.2: the client doubled any leading dot.
        let line = line.strip_prefix('.').unwrap_or(&line);
        raw.push_str(line);
        raw.push_str("\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::message::{header::ContentType, Mailbox, MultiPart};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    use tokio::io::AsyncReadExt;

    fn mailer(sink: &SmtpSink) -> AsyncSmtpTransport<Tokio1Executor> {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(sink.addr().port())
            .timeout(Some(Duration::from_secs(5)))
            .build()
    }

    fn mbox(s: &str) -> Mailbox {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn captures_multipart_mail_sent_by_lettre() {
        let sink = SmtpSink::start().await.unwrap();
        assert_eq!(sink.url(), format!("smtp://127.0.0.1:{}", sink.addr().port()));
        let text = "Hello Ada,\n.a line that starts with a dot\nOpen http://localhost:8080/invite/abc123 to join.\n";
        let html = "<p>Hello Ada, <a href=\"http://localhost:8080/invite/abc123\">join</a> — café</p>";
        let email = Message::builder()
            .from(mbox("Signet <signet@example.com>"))
            .to(mbox("ada@example.com"))
            .to(mbox("bob@example.com"))
            .subject("You’re invited to Signet")
            .multipart(MultiPart::alternative_plain_html(text.to_owned(), html.to_owned()))
            .unwrap();
        mailer(&sink).send(email).await.unwrap();

        let mail = sink
            .wait_for(|m| m.to.contains(&"ada@example.com".to_owned()), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(mail.from, "signet@example.com");
        assert_eq!(
            mail.to,
            vec!["ada@example.com".to_owned(), "bob@example.com".to_owned()]
        );
        assert_eq!(mail.subject().as_deref(), Some("You’re invited to Signet"));
        assert_eq!(mail.text_body().as_deref(), Some(text.trim_end()));
        assert_eq!(mail.html_body().as_deref(), Some(html));
        assert_eq!(
            mail.find_link("http://localhost:8080/invite/").as_deref(),
            Some("http://localhost:8080/invite/abc123")
        );
        assert_eq!(mail.login, None);
        assert_eq!(sink.messages().len(), 1);
    }

    #[tokio::test]
    async fn decodes_base64_and_long_quoted_printable_bodies() {
        let sink = SmtpSink::start().await.unwrap();
        // Long, mostly ASCII lines push lettre to quoted-printable with soft
        // breaks; mostly non-ASCII text pushes it to base64.
        let long = format!(
            "{} https://example.com/x/{}\n",
            "Bonjour, café au lait. ".repeat(8),
            "y".repeat(90)
        );
        let cyrillic = "Привет, это письмо для проверки кодировки base64.\n".repeat(3);
        for body in [long.clone(), cyrillic.clone()] {
            let email = Message::builder()
                .from(mbox("signet@example.com"))
                .to(mbox("ada@example.com"))
                .subject("Plain")
                .header(ContentType::TEXT_PLAIN)
                .body(body)
                .unwrap();
            mailer(&sink).send(email).await.unwrap();
        }
        let messages = sink.messages();
        assert_eq!(messages.len(), 2);
        assert!(messages[0].raw.contains("Content-Transfer-Encoding: quoted-printable"));
        assert!(messages[1].raw.contains("Content-Transfer-Encoding: base64"));
        assert_eq!(messages[0].text_body().as_deref(), Some(long.trim_end()));
        assert_eq!(
            messages[0].find_link("https://example.com/x/"),
            Some(format!("https://example.com/x/{}", "y".repeat(90)))
        );
        assert_eq!(messages[0].html_body(), None);
        assert_eq!(messages[1].text_body().as_deref(), Some(cyrillic.trim_end()));
    }

    #[tokio::test]
    async fn a_delay_slows_rcpt_and_data() {
        let sink = SmtpSink::start().await.unwrap();
        sink.set_delay(Duration::from_millis(300));
        let email = Message::builder()
            .from(mbox("signet@example.com"))
            .to(mbox("ada@example.com"))
            .subject("Slow")
            .body("x".to_owned())
            .unwrap();
        let started = tokio::time::Instant::now();
        mailer(&sink).send(email).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(sink.messages().len(), 1);
    }

    #[tokio::test]
    async fn failing_answers_451_then_recovers() {
        let sink = SmtpSink::start().await.unwrap();
        let email = || {
            Message::builder()
                .from(mbox("signet@example.com"))
                .to(mbox("ada@example.com"))
                .subject("Retry me")
                .body("x".to_owned())
                .unwrap()
        };
        sink.set_failing(true);
        let err = mailer(&sink).send(email()).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(sink.messages().is_empty());

        sink.set_failing(false);
        mailer(&sink).send(email()).await.unwrap();
        assert_eq!(sink.messages().len(), 1);
    }

    #[tokio::test]
    async fn records_auth_plain_credentials() {
        let sink = SmtpSink::start().await.unwrap();
        let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(sink.addr().port())
            .credentials(Credentials::new("mailer".into(), "s3cret:pw".into()))
            .build();
        let email = Message::builder()
            .from(mbox("signet@example.com"))
            .to(mbox("ada@example.com"))
            .subject("Auth")
            .body("x".to_owned())
            .unwrap();
        mailer.send(email).await.unwrap();
        let login = sink.messages()[0].login.clone().unwrap();
        assert_eq!(
            login,
            SmtpLogin {
                user: "mailer".into(),
                password: "s3cret:pw".into()
            }
        );
    }

    #[tokio::test]
    async fn speaks_rfc5321_to_a_raw_client() {
        let sink = SmtpSink::start().await.unwrap();
        let mut stream = TcpStream::connect(sink.addr()).await.unwrap();
        let script = "HELO me\r\nVRFY ada\r\nRCPT TO:<a@b.c>\r\nMAIL FROM:<x@y.z> BODY=8BITMIME\r\nRCPT TO:<a@b.c>\r\n\
                      RSET\r\nDATA\r\nNOOP\r\nMAIL FROM:<x@y.z>\r\nRCPT TO:<a@b.c>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n";
        stream.write_all(script.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        let codes: Vec<&str> = out.lines().map(|l| &l[..3]).collect();
        assert_eq!(
            codes,
            ["220", "250", "502", "503", "250", "250", "250", "503", "250", "250", "250", "354", "250", "221"]
        );
        let mail = &sink.messages()[0];
        assert_eq!(mail.raw, "Subject: hi\r\n\r\n.dot\r\nbody\r\n");
        assert_eq!(mail.subject().as_deref(), Some("hi"));
        assert_eq!(mail.text_body().as_deref(), Some(".dot\nbody"));
    }

    #[tokio::test]
    async fn wait_for_times_out_without_a_match() {
        let sink = SmtpSink::start().await.unwrap();
        assert!(sink.wait_for(|_| true, Duration::from_millis(50)).await.is_none());
    }

    #[tokio::test]
    async fn an_inbox_reads_one_recipients_mail_in_order() {
        let sink = SmtpSink::start().await.unwrap();
        let send = |to: &str, subject: &str| {
            Message::builder()
                .from(mbox("signet@example.com"))
                .to(mbox(to))
                .subject(subject)
                .body("hello".to_owned())
                .unwrap()
        };
        mailer(&sink).send(send("bob@example.com", "one")).await.unwrap();
        mailer(&sink).send(send("Ada@Example.com", "two")).await.unwrap();
        mailer(&sink).send(send("ada@example.com", "three")).await.unwrap();
        mailer(&sink).send(send("ada@example.com", "four")).await.unwrap();

        // The address is compared without case; a predicate that would
        // match Bob's mail is never asked about it.
        let mut ada = Inbox::new("ADA@example.com");
        let wait = Duration::from_secs(5);
        let first = sink
            .next_in(&mut ada, |m| m.to != ["bob@example.com"], wait)
            .await
            .unwrap();
        assert_eq!(first.subject().as_deref(), Some("two"));
        // A message passed over is not offered again.
        let fourth = sink
            .next_in(&mut ada, |m| m.subject().as_deref() == Some("four"), wait)
            .await
            .unwrap();
        assert_eq!(fourth.to, ["ada@example.com"]);
        let short = Duration::from_millis(50);
        assert!(sink.next_in(&mut ada, |_| true, short).await.is_none());
        // Another inbox starts from the first message again.
        let again = sink
            .next_in(&mut Inbox::new("ada@example.com"), |_| true, wait)
            .await
            .unwrap();
        assert_eq!(again.subject().as_deref(), Some("two"));
        assert!(sink
            .next_in(&mut Inbox::new("carol@example.com"), |_| true, short)
            .await
            .is_none());

        // A message that arrives while the inbox waits is found.
        let (late, ()) = tokio::join!(sink.next_in(&mut ada, |_| true, wait), async {
            mailer(&sink).send(send("ada@example.com", "five")).await.unwrap();
        });
        assert_eq!(late.unwrap().subject().as_deref(), Some("five"));
    }
}
