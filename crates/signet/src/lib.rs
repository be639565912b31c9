//! The `signet` binary's library half: configuration, wiring, the server
//! and the CLI. Kept as a library so the integration tests can start a real
//! server on a random port.

mod allocator;
pub mod cli;
pub mod config;
pub mod connections;
pub mod logging;
pub mod policy_cli;
pub mod sealing;
pub mod server;
pub mod wiring;
