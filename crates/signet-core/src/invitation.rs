//! Invitations: how an account gets its first credential.
//!
//! An invitation is a one-time bearer link, `{public_url}/invite/{token}`,
//! sent to the user's email. It is stored as a [`OneTimeSecret`] with purpose
//! [`SecretPurpose::Invitation`]; redeeming it atomically consumes the secret
//! and creates an enrollment-only session in the same transaction, so exactly
//! one of any number of concurrent redemptions wins and a failed redemption
//! never burns the link.

use std::time::Duration;

pub use crate::store::{OneTimeSecret, SecretPurpose};

/// Default lifetime of an invitation link.
pub const DEFAULT_TTL: Duration = Duration::from_secs(72 * 3600);
