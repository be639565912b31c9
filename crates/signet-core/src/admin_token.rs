//! Admin tokens: named bearer credentials for `/api/v1/admin/*`.
//!
//! The token is shown once at creation and stored only as a hash. Each token
//! is a distinct actor in the audit log and in approval rules (a help-desk
//! ticket cannot be approved by the token that created it).

use crate::ErrorCode;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::secret::TokenHash;

#[derive(Clone, Debug)]
pub struct AdminToken {
    pub id: Uuid,
    pub name: String,
    pub token_hash: TokenHash,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// The highest tier this token may act on in help-desk recovery
    /// (`signet admin-token create NAME --ceiling TIER`). `None`: no limit
    /// (tokens made before ceilings existed keep working as before).
    pub ceiling: Option<String>,
}

/// Admin token names: 1 to 64 characters of letters, digits, `.`, `_`, `-`.
pub fn validate_name(name: &str) -> crate::Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(crate::Error::invalid(
            ErrorCode::InvalidName,
            "admin token names are 1 to 64 characters of letters, digits, '.', '_' and '-'",
        ))
    }
}
