//! Signet's use cases, tested without HTTP: an [`signet_app::App`] on SQLite
//! in memory with a manual clock ([`harness`]). One binary, one module per
//! journey or aggregate; each test's name says what it protects.
//!
//! The HTTP contract (status codes, cookies, bodies) is tested through the
//! server in crates/signet/tests/it/; these tests hold the rules the use
//! cases keep whatever calls them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod credentials;
mod demand;
mod email_code;
mod faults;
mod harness;
mod invitations;
mod login;
mod oidc_clients;
mod recovery;
mod step_up;
mod unit_of_work;
