//! Signet's domain model.
//!
//! Everything here is pure: no sockets, no SQL, no HTTP. Time comes in through
//! [`clock::Clock`] and randomness through [`secret`], so tests can pin both.
//! Storage is described by narrow traits in [`store`], one per aggregate, which
//! `signet-store` implements for SQLite and PostgreSQL.

pub mod admin_token;
pub mod assurance;
pub mod audit;
pub mod clock;
pub mod credential;
pub mod duration;
pub mod error;
pub mod error_code;
pub mod flow;
pub mod ids;
pub mod invitation;
pub mod method;
pub mod oidc_client;
pub mod outbox;
pub mod policy;
pub mod recovery_ticket;
pub mod sealing;
pub mod secret;
pub mod session;
pub mod store;
pub mod unit_of_work;
pub mod user;

pub use error::{Error, Result};
pub use error_code::{ErrorCode, Status};
