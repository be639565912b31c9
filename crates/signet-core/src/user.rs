//! Users: identity attributes only. Credentials live with their methods.
//!
//! Email addresses are the login identifier, so they are validated strictly:
//! trimmed, no control characters (a CR/LF in an address is a header-injection
//! attempt against the mail we send), a single `@`, RFC 5321 length limits,
//! and compared case-insensitively through a normalised form that carries the
//! unique index.
//!
//! There is one address grammar ([`Email::parse_with`]), used for users'
//! addresses and for the configured sender (`[email] from`, through
//! [`Mailbox::parse`]). It differs between the two in one explicit rule,
//! [`Domains`]: a user's address must have a domain with a dot, because
//! ICANN bans dotless names in public DNS (SAC053) and `alice@gmail` is a
//! typo that would otherwise become the account's login identifier; a sender
//! address may also use a host name without a dot such as `localhost` (the
//! development default `signet@localhost`, or an intranet relay's domain) or
//! an IPv4 address literal (RFC 5321 §4.1.3), because the operator chose it
//! for their own mail system.

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

/// Which domains [`Email::parse_with`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domains {
    /// Only DNS names with at least one dot (`example.com`): users' addresses.
    Public,
    /// Also a host name without a dot (`localhost`) or an IPv4 address
    /// literal (`[192.0.2.1]`): addresses the operator configures.
    AnyHost,
}

/// Characters RFC 5322 §3.2.3 allows in an atom, besides letters and digits.
const ATEXT: &str = "!#$%&'*+-/=?^_`{|}~";

fn invalid_email(why: impl std::fmt::Display) -> Error {
    Error::invalid(ErrorCode::InvalidEmail, format!("invalid email address: {why}"))
}

impl Email {
    /// A user's address: [`Email::parse_with`] under [`Domains::Public`].
    pub fn parse(input: &str) -> Result<Self> {
        Self::parse_with(input, Domains::Public)
    }

    /// The one address grammar: RFC 5321/5322 `dot-atom@domain` without
    /// quoted local parts or comments, at most 64 characters before the `@`
    /// and 254 in all (RFC 5321 §4.5.3.1), no control characters anywhere.
    /// Surrounding whitespace is trimmed.
    pub fn parse_with(input: &str, domains: Domains) -> Result<Self> {
        let bad = invalid_email;
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
        if !local
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || ATEXT.contains(c))
        {
            return Err(bad("unsupported character before @"));
        }
        if let Some(literal) = domain.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            return match domains {
                Domains::AnyHost if literal.parse::<std::net::Ipv4Addr>().is_ok() => Ok(Self(s.to_owned())),
                Domains::AnyHost => Err(bad("the address literal after @ is not an IPv4 address")),
                Domains::Public => Err(bad("an address literal is not accepted here; use a domain name")),
            };
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 && domains == Domains::Public {
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

/// A mailbox as the `From` of mail we send (RFC 5322 §3.4):
/// `Display Name <addr>`, `"Quoted, Name" <addr>`, `<addr>` or a bare `addr`.
/// The address follows [`Email::parse_with`] under [`Domains::AnyHost`]: the
/// operator configures it, and the development default is
/// `Signet <signet@localhost>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    pub display_name: Option<String>,
    pub address: Email,
}

impl Mailbox {
    pub fn parse(input: &str) -> Result<Self> {
        if input.trim().is_empty() {
            return Err(invalid_email("empty"));
        }
        if input.chars().any(char::is_control) {
            return Err(invalid_email("contains a control character such as a line break"));
        }
        let (name, addr) = match input.split_once('<') {
            None if input.contains('>') => return Err(invalid_email("has '>' without '<'")),
            None => (None, input.trim()),
            Some((name, rest)) => match rest.trim_end().strip_suffix('>') {
                None => return Err(invalid_email("the address after '<' must end with '>'")),
                Some(addr) if addr.contains(['<', '>']) => return Err(invalid_email("has more than one '<' or '>'")),
                Some(addr) => (Some(Self::display_name(name.trim())?), addr),
            },
        };
        if addr.chars().any(char::is_whitespace) {
            return Err(invalid_email("the address contains a space"));
        }
        Ok(Self {
            display_name: name.filter(|n| !n.is_empty()),
            address: Email::parse_with(addr, Domains::AnyHost)?,
        })
    }

    /// A quoted string without `"` or `\` inside, or a phrase of atoms,
    /// dots and spaces.
    fn display_name(name: &str) -> Result<String> {
        if let Some(inner) = name.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')) {
            if inner.contains(['"', '\\']) {
                return Err(invalid_email("the quoted display name contains '\"' or '\\'"));
            }
            return Ok(inner.to_owned());
        }
        match name
            .chars()
            .find(|c| !(c.is_alphanumeric() || *c == ' ' || *c == '.' || ATEXT.contains(*c)))
        {
            Some(c) => Err(invalid_email(format_args!(
                "the display name contains {c:?}; put the name in double quotes"
            ))),
            None => Ok(name.to_owned()),
        }
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
    fn dotless_domains_and_literals_are_for_configured_senders_only() {
        for addr in ["signet@localhost", "id@[192.0.2.1]", "ops@mailhub"] {
            assert!(Email::parse(addr).is_err(), "{addr} is not a user's address");
            assert!(
                Email::parse_with(addr, Domains::AnyHost).is_ok(),
                "{addr} is a sender address"
            );
        }
        // Everything else is the same grammar under both rules.
        for bad in [
            "a@b.com\r\nBcc: x@y.com",
            "a..b@c.com",
            "a@-b.com",
            "a@b..com",
            "id@[300.1.1.1]",
            "id@[::1]",
        ] {
            assert!(Email::parse_with(bad, Domains::AnyHost).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_default_sender_is_a_valid_mailbox() {
        let m = Mailbox::parse("Signet <signet@localhost>").unwrap();
        assert_eq!(m.display_name.as_deref(), Some("Signet"));
        assert_eq!(m.address.as_str(), "signet@localhost");
    }

    #[test]
    fn mailbox_forms() {
        for (good, name, addr) in [
            ("signet@example.com", None, "signet@example.com"),
            ("<signet@example.com>", None, "signet@example.com"),
            (
                "\"Example, Inc.\" <id@example.com>",
                Some("Example, Inc."),
                "id@example.com",
            ),
            (
                "O'Brien Identity <id@mail.example.co.uk>",
                Some("O'Brien Identity"),
                "id@mail.example.co.uk",
            ),
            ("Zoë <zoe@example.com>", Some("Zoë"), "zoe@example.com"),
        ] {
            let m = Mailbox::parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!((m.display_name.as_deref(), m.address.as_str()), (name, addr), "{good}");
        }
        for bad in [
            "",
            "Signet",
            "a@b@c",
            "Signet <signet@localhost",
            "Example, Inc <id@example.com>",
            "Signet <signet@localhost>\r\nBcc: x@y",
            "sig net@example.com",
            "@example.com",
            "id@",
            "id@-bad.example",
            "id@example..com",
            "Signet <<id@example.com>>",
            "\"a\"b\" <id@example.com>",
        ] {
            let e = Mailbox::parse(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidEmail, "{bad:?}");
        }
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
