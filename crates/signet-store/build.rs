//! Tells the tests whether they may use PostgreSQL.
//!
//! The PostgreSQL half of the conformance suite needs `SIGNET_TEST_DATABASE_URL`.
//! Without it those tests must say they did not run, not pass: stable libtest
//! can only mark a test ignored at compile time (`#[ignore = "reason"]`; there
//! is no runtime skip), so this script turns the variable into the cfg
//! `signet_test_postgres`, and the tests carry
//! `#[cfg_attr(not(signet_test_postgres), ignore = "...")]`. `cargo test`
//! then lists them as ignored, with the reason, and counts them in the
//! summary. Cargo reruns this script (and rebuilds this package) whenever the
//! variable changes, so the cfg always matches the environment of a
//! `cargo test` run.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(signet_test_postgres)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=SIGNET_TEST_DATABASE_URL");
    if std::env::var_os("SIGNET_TEST_DATABASE_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=signet_test_postgres");
    }
}
