//! Signet's integration tests: one binary (so the crate graph links once),
//! each test starting the real server on a random port with a real SMTP
//! listener. The database is SQLite in a temp dir, or a fresh PostgreSQL
//! database when `SIGNET_TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod audit;
mod bad_input;
mod cli;
mod courier;
mod email_login;
mod fallback;
mod invitations;
mod login;
mod notices;
mod passkeys;
mod sealing;
mod sessions;
mod step_up;
mod support;
mod tls;
