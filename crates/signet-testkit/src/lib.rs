//! Test doubles that speak the real wire protocols.
//!
//! Signet's delivery code is tested against real sockets rather than mocks of
//! its own traits: a mock would only prove that the code agrees with the mock.
//! [`SmtpSink`] is a small RFC 5321 server that lettre's SMTP client talks to
//! over TCP, and [`HttpSink`] is an HTTP server that records the SMS webhook's
//! POSTs. Both bind `127.0.0.1:0`, so tests run in parallel without port
//! clashes, and both can be switched into a failing mode to simulate an outage.
//!
//! [`CapturedMail`] decodes what lettre puts on the wire (MIME multipart,
//! quoted-printable, base64, RFC 2047 encoded headers) so tests can assert on
//! the text a person would read and pull out the one-time link in it.

//!
//! [`FakeMethod`] is a sign-in method double for the journey engine's tests.

mod http;
mod mail;
mod method;
mod smtp;

pub use http::{CapturedRequest, HttpSink};
pub use mail::CapturedMail;
pub use method::{FakeMethod, RIGHT};
pub use smtp::{Inbox, SmtpLogin, SmtpSink};
