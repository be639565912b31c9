//! Users: identity attributes only. Credentials live with their methods.
//!
//! Email addresses are the login identifier, so they are validated strictly:
//! trimmed, no control characters (a CR/LF in an address is a header-injection
//! attempt against the mail we send), a single `@`, RFC 5321 length limits,
//! and compared case-insensitively through a normalised form that carries the
//! unique index.

use crate::ErrorCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

impl UserId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A validated email address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid(ErrorCode::InvalidEmail, format!("invalid email address: {why}"));
        // Control characters (CR/LF above all) are refused even at the ends:
        // trimming them away would hide a header-injection attempt.
        if input.chars().any(char::is_control) {
            return Err(bad("contains control characters"));
        }
        let s = input.trim();
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > 254 {
            return Err(bad("longer than 254 characters"));
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("contains whitespace or control characters"));
        }
        let (local, domain) = s.split_once('@').ok_or_else(|| bad("missing @"))?;
        if domain.contains('@') {
            return Err(bad("more than one @"));
        }
        if local.is_empty() || local.len() > 64 {
            return Err(bad("the part before @ must be 1 to 64 characters"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(bad("misplaced dot before @"));
        }
        const LOCAL_SPECIALS: &str = ".!#$%&'*+/=?^_`{|}~-";
        if !local.chars().all(|c| c.is_alphanumeric() || LOCAL_SPECIALS.contains(c)) {
            return Err(bad("unsupported character before @"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(bad("the domain needs a dot"));
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err(bad("empty or over-long domain label"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(bad("a domain label starts or ends with '-'"));
            }
            if !label.chars().all(|c| c.is_alphanumeric() || c == '-') {
                return Err(bad("unsupported character in domain"));
            }
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for uniqueness and look-up: lower-cased.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }

    /// For values read back from our own storage, which were validated on the way in.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number in E.164: `+`, a non-zero country digit, at most 15 digits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    pub fn parse(input: &str) -> Result<Self> {
        if input.chars().any(char::is_control) {
            return Err(Error::invalid(
                ErrorCode::InvalidPhone,
                "phone numbers must not contain control characters",
            ));
        }
        let s = input.trim();
        let digits = s.strip_prefix('+').ok_or_else(|| {
            Error::invalid(
                ErrorCode::InvalidPhone,
                "phone numbers must be in E.164 form, e.g. +14155550100",
            )
        })?;
        let ok =
            (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        if !ok {
            return Err(Error::invalid(
                ErrorCode::InvalidPhone,
                "phone numbers must be in E.164 form: + then 8 to 15 digits, e.g. +14155550100",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }
}

/// A role name: lower-case letters, digits, `_` and `-`, at most 64 characters.
pub fn validate_role(role: &str) -> Result<String> {
    let ok = !role.is_empty()
        && role.len() <= 64
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(role.to_owned())
    } else {
        Err(Error::invalid(
            ErrorCode::InvalidRole,
            "roles are 1 to 64 characters of a-z, 0-9, '_' and '-'",
        ))
    }
}

/// A display name: trimmed, 1 to 200 characters, no control characters.
pub fn validate_display_name(name: &str) -> Result<String> {
    let s = name.trim();
    if s.is_empty() || s.chars().count() > 200 || s.chars().any(char::is_control) {
        return Err(Error::invalid(
            ErrorCode::InvalidName,
            "names are 1 to 200 characters without control characters",
        ));
    }
    Ok(s.to_owned())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(UserStatus::Active),
            "disabled" => Some(UserStatus::Disabled),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub status: UserStatus,
    #[serde(with = "crate::clock::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "crate::clock::rfc3339")]
    pub updated_at: Timestamp,
}

impl User {
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active
    }
}

/// Everything needed to create a user, already validated.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub email: Email,
    pub phone: Option<Phone>,
    pub name: Option<String>,
    pub roles: Vec<String>,
}

impl NewUser {
    /// Validates raw input from the CLI or the admin API.
    pub fn parse(email: &str, phone: Option<&str>, name: Option<&str>, roles: &[String]) -> Result<Self> {
        let mut checked_roles = Vec::with_capacity(roles.len());
        for r in roles {
            let r = validate_role(r)?;
            if !checked_roles.contains(&r) {
                checked_roles.push(r);
            }
        }
        Ok(Self {
            email: Email::parse(email)?,
            phone: phone.map(Phone::parse).transpose()?,
            name: name.map(validate_display_name).transpose()?,
            roles: checked_roles,
        })
    }

    pub fn into_user(self, id: UserId, now: Timestamp) -> User {
        User {
            id,
            email: self.email,
            phone: self.phone,
            name: self.name,
            roles: self.roles,
            status: UserStatus::Active,
            created_at: now,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_normalised() {
        let e = Email::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Alice@Example.COM");
        assert_eq!(e.normalized(), "alice@example.com");
    }

    #[test]
    fn email_rejects_header_injection_and_garbage() {
        for bad in [
            "a@b.com\r\nBcc: x@y.com",
            "a@b.com\n",
            "a\u{0}@b.com",
            "no-at-sign",
            "a@@b.com",
            "a@b@c.com",
            "@b.com",
            "a@",
            "a@localhost",
            "a b@c.com",
            ".a@b.com",
            "a..b@c.com",
            "a@-b.com",
            "a@b..com",
            "a<script>@b.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let too_long = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&too_long).is_err());
    }

    #[test]
    fn phone_is_e164() {
        assert!(Phone::parse("+14155550100").is_ok());
        for bad in [
            "14155550100",
            "+0123456789",
            "+1",
            "+1415555010012345",
            "+1 415 555",
            "+1415\n555",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_are_deduplicated_and_checked() {
        let u = NewUser::parse("a@b.co", None, None, &["admin".into(), "admin".into()]).unwrap();
        assert_eq!(u.roles, vec!["admin"]);
        assert!(NewUser::parse("a@b.co", None, None, &["Admin!".into()]).is_err());
    }
}
