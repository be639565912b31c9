//! `[email]`: the sender and the SMTP relay.
//!
//! What a usable `smtp_url` is belongs to the courier, which sends through
//! it ([`signet_courier::check_smtp_url`]); the sender's grammar is the one
//! email grammar in `signet_core::user` (`Mailbox`). This section reads the
//! values and says where a refused one came from.

use std::fmt;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::loader::{env_string, redact, ConfigError, Sources};

pub const DEFAULT_EMAIL_FROM: &str = "Signet <signet@localhost>";

#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    /// Sender mailbox: `Name <addr@example.com>` or `addr@example.com`.
    pub from: String,
    /// `smtp://` (plain) or `smtps://` (TLS); `None` sends email to the
    /// outbox.
    pub smtp_url: Option<Url>,
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("from", &self.from)
            .field("smtp_url", &self.smtp_url.as_ref().map(redact))
            .finish()
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmail {
    from: Option<Spanned<String>>,
    smtp_url: Option<Spanned<String>>,
}

pub(super) fn build(raw: RawEmail, src: &Sources) -> Result<Email, ConfigError> {
    let from = src.pick_or("email.from", raw.from, env_string, DEFAULT_EMAIL_FROM.into())?;
    check_mailbox(&from.value).map_err(|m| from.error(m))?;
    let smtp_url = match src.pick("email.smtp_url", raw.smtp_url, env_string)? {
        Some(u) => Some(signet_courier::check_smtp_url(&u.value).map_err(|e| u.error(e.to_string()))?),
        None => None,
    };
    Ok(Email {
        from: from.value,
        smtp_url,
    })
}

/// `[email] from` must be a mailbox under the one email grammar in
/// `signet_core::user` (a sender may use a dotless domain such as the default
/// `signet@localhost`; see `Domains`).
fn check_mailbox(s: &str) -> Result<(), String> {
    const EXAMPLE: &str = "e.g. \"Signet <signet@example.com>\" or signet@example.com";
    signet_core::user::Mailbox::parse(s)
        .map(drop)
        .map_err(|e| format!("{s:?} is not a mailbox: {e}; {EXAMPLE}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures::*;

    #[test]
    fn smtp_url_rules() {
        let msg = err_env(&[("SIGNET_EMAIL__SMTP_URL", "http://mail.example.com")]);
        assert!(msg.contains("email.smtp_url (from SIGNET_EMAIL__SMTP_URL)"), "{msg}");
        assert!(msg.contains("smtp://") && msg.contains("smtps://"), "{msg}");

        for bad in [
            "smtp://mail.example.com/path",
            "smtp://mail.example.com?tls=required",
            "smtp://user@mail.example.com",
            "smtp://:pw@mail.example.com",
            "smtp://",
        ] {
            let msg = err_env(&[("SIGNET_EMAIL__SMTP_URL", bad)]);
            assert!(msg.contains("email.smtp_url"), "{bad}: {msg}");
            assert!(!msg.contains("pw@"), "{msg}");
        }

        let c = load_env(&[("SIGNET_EMAIL__SMTP_URL", "smtp://mail.example.com")]).unwrap();
        assert_eq!(c.email.smtp_url.as_ref().map(Url::port), Some(None));
    }

    #[test]
    fn the_default_sender_passes_the_core_email_grammar() {
        assert!(signet_core::user::Mailbox::parse(DEFAULT_EMAIL_FROM).is_ok());
        assert!(load_env(&[]).is_ok());
    }

    #[test]
    fn mailbox_validation() {
        for good in [
            "Signet <signet@localhost>",
            "signet@example.com",
            "<signet@example.com>",
            "\"Example, Inc.\" <id@example.com>",
            "O'Brien Identity <id@mail.example.co.uk>",
            "Zoë <zoe@example.com>",
        ] {
            let c = load_env(&[("SIGNET_EMAIL__FROM", good)]);
            assert!(c.is_ok(), "{good}: {:?}", c.err());
        }
        // The grammar itself is tested in signet-core (`Mailbox::parse`);
        // here, that a refusal names the key and where it came from.
        for bad in ["Signet <signet@localhost", "Signet <signet@localhost>\r\nBcc: x@y"] {
            let msg = err_env(&[("SIGNET_EMAIL__FROM", bad)]);
            assert!(msg.contains("email.from (from SIGNET_EMAIL__FROM)"), "{bad}: {msg}");
        }
    }
}
