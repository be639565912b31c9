//! Signet's integration tests: one binary (so the crate graph links once),
//! each test starting the real server on a random port with a real SMTP
//! listener. The database is SQLite in a temp dir, or a fresh PostgreSQL
//! database when `SIGNET_TEST_DATABASE_URL` is set. A SQLite run reports
//! `the_suite_ran_on_postgresql` as ignored, with the reason (see build.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod admission;
mod audit;
mod bad_input;
mod cli;
mod courier;
mod diagnosis;
mod disk_full;
mod email_login;
mod fallback;
mod faults;
mod helpdesk;
mod invitations;
mod login;
mod notices;
mod oidc;
mod oidc_logout;
mod oidc_rp;
mod otp;
mod passkeys;
mod recovery;
mod sealing;
mod sessions;
mod sms;
mod step_up;
mod support;
mod tls;

/// The visible trace of which database this run used. Ignored, with the
/// reason, when `SIGNET_TEST_DATABASE_URL` is unset (the suite then ran on
/// SQLite only); otherwise it checks that a test server really stores in
/// PostgreSQL.
#[cfg_attr(
    not(signet_test_postgres),
    ignore = "SKIPPED: SIGNET_TEST_DATABASE_URL unset, so this run used SQLite; set it to run the suite on PostgreSQL"
)]
#[tokio::test]
async fn the_suite_ran_on_postgresql() {
    assert!(
        support::postgres_url().is_some(),
        "SIGNET_TEST_DATABASE_URL is unset: this test was built for it or asked for with --include-ignored"
    );
    let srv = support::TestServer::start().await;
    assert!(srv.db_url.starts_with("postgres"), "{}", srv.db_url);
    srv.stop().await;
}
