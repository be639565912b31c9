//! The messages Signet sends, composed into [`Draft`]s ready to queue.
//!
//! Every message is a `Letter`: a heading, a few paragraphs, at most one
//! action link and/or code, and three statements every message must make so
//! that a person who did not expect it can judge it safely:
//! - why it was sent (`reason`),
//! - how long its link or code stays valid (`validity`), when it has one,
//! - what to do if they did not ask for it (`not_you`).
//!
//! One private layout turns a letter into both the text part (built here, so
//! it cannot fail) and the HTML part (askama, `templates/letter.html`, which
//! HTML-escapes every value: names and addresses come from users). Adding a
//! message is therefore one function that fills a `Letter`.
//!
//! The HTML is small and inline-styled, and loads nothing from outside: no
//! images, fonts or CSS from a CDN, so opening the message tells no third
//! party anything.

use std::time::Duration;

use askama::Template;
use signet_core::clock::Timestamp;
use signet_core::outbox::{Channel, Draft};
use signet_core::user::{Email, Phone};

/// The `template` name recorded on an invitation's outbox message.
pub const INVITATION: &str = "invitation";

/// An invitation to set up an account: the link is `{public_url}/invite/{token}`.
pub fn invitation(
    to: &Email,
    link: &str,
    expires_at: Timestamp,
    valid_for: Duration,
    inviter: &str,
    product_name: &str,
) -> Draft {
    let letter = Letter {
        product_name,
        subject: format!("You're invited to sign in to {product_name}"),
        heading: format!("You're invited to {product_name}"),
        paragraphs: vec![
            format!(
                "{} invited you to sign in to {product_name} as {to}.",
                capitalized(inviter)
            ),
            format!(
                "Open the link below to set up your account. {product_name} does not use \
                 passwords: on the next page you choose how you will sign in, for example \
                 with a passkey."
            ),
        ],
        action: Some(Action {
            label: "Accept the invitation".to_owned(),
            url: link.to_owned(),
        }),
        code: None,
        validity: Some(link_validity(expires_at, valid_for)),
        reason: format!("You received this email because {inviter} invited {to} to {product_name}."),
        not_you: "If you did not expect this invitation, ignore this email: nothing happens unless \
                  the link is opened. Do not forward it, because anyone with the link can accept \
                  the invitation."
            .to_owned(),
    };
    // The link is useless after it expires: never send it later.
    letter.into_email(to, INVITATION).expiring_at(expires_at)
}

/// The `template` name of a "a passkey was added" notice.
pub const CREDENTIAL_ADDED: &str = "credential_added";
/// The `template` name of a "a passkey was removed" notice.
pub const CREDENTIAL_REMOVED: &str = "credential_removed";

/// The credential a change notice is about: what happened to it, how a
/// person calls its kind ("passkey"), and its name.
#[derive(Clone, Copy, Debug)]
pub struct ChangedCredential<'a> {
    pub change: CredentialChange,
    pub noun: &'a str,
    pub name: &'a str,
}

/// Whether a notice is about a credential that was added or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialChange {
    Added,
    Removed,
}

/// Tells the account's owner that a credential (`noun`: "passkey",
/// "authenticator app", ...) was added to or removed from their account, so that a change they did not make is noticed (NIST SP
/// 800-63B §6.1.2.1 and §6.1.4: notify the subscriber of binding changes).
/// Its one link is the "this wasn't me" link (`not_me`).
pub fn credential_changed(
    to: &Email,
    credential: ChangedCredential<'_>,
    at: Timestamp,
    requester: &Requester<'_>,
    product_name: &str,
    not_me: &str,
) -> Draft {
    let ChangedCredential {
        change,
        noun,
        name: credential_name,
    } = credential;
    let from = requester.describe();
    let (verb, subject, template) = match change {
        CredentialChange::Added => (
            "added to",
            format!("A {noun} was added to your {product_name} account"),
            CREDENTIAL_ADDED,
        ),
        CredentialChange::Removed => (
            "removed from",
            format!("A {noun} was removed from your {product_name} account"),
            CREDENTIAL_REMOVED,
        ),
    };
    let letter = Letter {
        product_name,
        subject,
        heading: format!(
            "{} {}",
            capitalized(noun),
            if change == CredentialChange::Added {
                "added"
            } else {
                "removed"
            }
        ),
        paragraphs: vec![
            format!(
                "The {noun} \"{credential_name}\" was {verb} your {product_name} account {to} on {} from {from}.",
                utc_minutes(at)
            ),
            "If this was you, there is nothing to do.".to_owned(),
        ],
        action: Some(not_me_action(not_me)),
        code: None,
        validity: Some(NOT_ME_VALIDITY.to_owned()),
        reason: format!("You received this email because the ways to sign in to {product_name} as {to} changed."),
        not_you: format!(
            "If you did not make this change, someone else may have access to your account: sign in, \
             remove any {noun} you do not recognise, and contact your {product_name} administrator."
        ),
    };
    letter.into_email(to, template)
}

/// The `template` name of a "your account was recovered" notice.
pub const ACCOUNT_RECOVERED: &str = "account_recovered";

/// Tells the account's owner that their account was recovered (`how`: the
/// path that proved it, such as "recovery_code+email"), and that every
/// session was ended. NIST SP 800-63B rev. 4 (account recovery) requires
/// notifying every address on file; a takeover through recovery is then
/// seen by the owner's other channels at once. Its one link is "this wasn't
/// me" (`not_me`).
pub fn account_recovered(
    to: &Email,
    how: &str,
    at: Timestamp,
    requester: &Requester<'_>,
    product_name: &str,
    not_me: &str,
) -> Draft {
    let from = requester.describe();
    let letter = Letter {
        product_name,
        subject: format!("Your {product_name} account was recovered"),
        heading: "Account recovered".to_owned(),
        paragraphs: vec![
            format!(
                "Access to your {product_name} account {to} was recovered on {} from {from}, using {how}.",
                utc_minutes(at)
            ),
            "Every session of the account was signed out. The person who recovered it can now add a new \
             way to sign in."
                .to_owned(),
            "If this was you, there is nothing to do.".to_owned(),
        ],
        action: Some(not_me_action(not_me)),
        code: None,
        validity: Some(NOT_ME_VALIDITY.to_owned()),
        reason: format!("You received this email because access to {product_name} as {to} was recovered."),
        not_you: format!(
            "If you did not recover your account, someone else may have taken it over: contact your \
             {product_name} administrator at once."
        ),
    };
    letter.into_email(to, ACCOUNT_RECOVERED)
}

/// The `template` name of a help-desk recovery link's email.
pub const HELPDESK_RECOVERY: &str = "helpdesk_recovery";
/// The `template` name of a help-desk recovery link's SMS.
pub const HELPDESK_RECOVERY_SMS: &str = "helpdesk_recovery_sms";

/// The link an approved help-desk recovery ticket sends to the account's
/// registered email address (`{public_url}/recover/{token}`). Opening it
/// changes nothing; the page it shows starts the recovery, which signs every
/// session out and lets the person add one new way to sign in.
pub fn helpdesk_recovery(
    to: &Email,
    link: &str,
    expires_at: Timestamp,
    valid_for: Duration,
    product_name: &str,
) -> Draft {
    let letter = Letter {
        product_name,
        subject: format!("Recover your {product_name} account"),
        heading: "Recover your account".to_owned(),
        paragraphs: vec![
            format!("Your help desk approved the recovery of your {product_name} account {to}."),
            "Open the link below on the device you want to use. It signs every session of the account out \
             and lets you add a new passkey."
                .to_owned(),
            "The help desk never asks you for this link or for any code: do not share it.".to_owned(),
        ],
        action: Some(Action {
            label: "Recover my account".to_owned(),
            url: link.to_owned(),
        }),
        code: None,
        validity: Some(link_validity(expires_at, valid_for)),
        reason: format!("You received this email because your help desk approved a recovery of {to}."),
        not_you: format!(
            "If you did not ask your help desk to recover your account, do not open the link, and contact your \
             {product_name} administrator at once: someone may be impersonating you."
        ),
    };
    letter.into_email(to, HELPDESK_RECOVERY)
}

/// The help-desk recovery link as a text message, to the account's
/// verified phone.
pub fn helpdesk_recovery_sms(to: &Phone, link: &str, valid_for: Duration, product_name: &str) -> Draft {
    Draft {
        channel: Channel::Sms,
        recipient: to.as_str().to_owned(),
        subject: String::new(),
        text_body: format!(
            "{product_name}: your help desk approved the recovery of your account. Open {link} within {} to \
             add a new passkey. Never share this link. Not you? Contact your administrator.",
            human_duration(valid_for)
        ),
        html_body: None,
        template: HELPDESK_RECOVERY_SMS,
        expires_at: None,
    }
}

/// The label of a security notice's "this wasn't me" button.
pub const NOT_ME_LABEL: &str = "This wasn't me: lock my account";
const NOT_ME_VALIDITY: &str = "The \"This wasn't me\" link works once, for 7 days. It locks the account and signs \
                               everyone out until your administrator reviews it; it never signs anyone in.";

/// Every security notice's action: the "this wasn't me" link
/// (`signet_app::not_me`).
fn not_me_action(url: &str) -> Action {
    Action {
        label: NOT_ME_LABEL.to_owned(),
        url: url.to_owned(),
    }
}

/// The `template` name of the notice that a recovery code was used.
pub const RECOVERY_CODE_USED: &str = "recovery_code_used";
/// The `template` name of the notice that new recovery codes were made.
pub const RECOVERY_CODES_GENERATED: &str = "recovery_codes_generated";

/// "A recovery code was used": how many are left, and a warning when two
/// or fewer are (then the owner should make a new set before running out).
pub fn recovery_code_used(
    to: &Email,
    left: u32,
    at: Timestamp,
    requester: &Requester<'_>,
    product_name: &str,
    not_me: &str,
) -> Draft {
    let from = requester.describe();
    let mut paragraphs = vec![
        format!(
            "One of your recovery codes was used to sign in to your {product_name} account {to} on {} from {from}.",
            utc_minutes(at)
        ),
        format!(
            "You have {left} recovery code{} left.",
            if left == 1 { "" } else { "s" }
        ),
    ];
    if left <= 2 {
        paragraphs.push(
            "You are running out of recovery codes: sign in and generate a new set, then keep it somewhere safe."
                .to_owned(),
        );
    }
    let letter = Letter {
        product_name,
        subject: if left <= 2 {
            format!("A recovery code was used: only {left} left for {product_name}")
        } else {
            format!("A recovery code was used for your {product_name} account")
        },
        heading: "Recovery code used".to_owned(),
        paragraphs,
        action: Some(not_me_action(not_me)),
        code: None,
        validity: Some(NOT_ME_VALIDITY.to_owned()),
        reason: format!("You received this email because a recovery code of {to} was used."),
        not_you: format!(
            "If this was not you, someone has one of your recovery codes: use the button above to lock your \
             account at once, and contact your {product_name} administrator."
        ),
    };
    letter.into_email(to, RECOVERY_CODE_USED)
}

/// "New recovery codes were generated" (the old ones no longer work).
pub fn recovery_codes_generated(
    to: &Email,
    at: Timestamp,
    requester: &Requester<'_>,
    product_name: &str,
    not_me: &str,
) -> Draft {
    let from = requester.describe();
    let letter = Letter {
        product_name,
        subject: format!("New recovery codes for your {product_name} account"),
        heading: "New recovery codes".to_owned(),
        paragraphs: vec![
            format!(
                "A new set of recovery codes was generated for your {product_name} account {to} on {} from {from}. \
                 Any earlier codes no longer work.",
                utc_minutes(at)
            ),
            "If this was you, there is nothing to do.".to_owned(),
        ],
        action: Some(not_me_action(not_me)),
        code: None,
        validity: Some(NOT_ME_VALIDITY.to_owned()),
        reason: format!("You received this email because the ways to sign in to {product_name} as {to} changed."),
        not_you: format!(
            "If you did not do this, someone else may have access to your account: use the button above to lock \
             it at once, and contact your {product_name} administrator."
        ),
    };
    letter.into_email(to, RECOVERY_CODES_GENERATED)
}

/// The `template` name of a security notice sent by SMS.
pub const SMS_NOTICE: &str = "sms_notice";

/// A security notice as a text message: one or two short sentences that say
/// what happened and what to do if it was not the owner. Never a link or a
/// code (an SMS can be read by whoever holds the number).
pub fn sms_notice(to: &Phone, product_name: &str, what: &str) -> Draft {
    Draft {
        channel: Channel::Sms,
        recipient: to.as_str().to_owned(),
        subject: String::new(),
        text_body: format!(
            "{product_name}: {what} If this was not you, sign in and review your account, or contact your administrator."
        ),
        html_body: None,
        template: SMS_NOTICE,
        expires_at: None,
    }
}

/// The `template` name of an SMS sign-in code.
pub const SMS_CODE: &str = "sms_code";
/// The `template` name of the SMS that confirms a new phone number.
pub const SMS_PHONE_CODE: &str = "sms_phone_code";

/// A one-time code as a text message. Short (one SMS segment), the code
/// first so a phone's notification shows it, what it is for, how long it
/// works, and the warning to never share it. The trailing `@host #code`
/// line is the origin-bound one-time code format (WICG "Origin-bound
/// one-time codes delivered via SMS"), which lets browsers offer the code
/// only on the right site.
#[allow(clippy::too_many_arguments)]
pub fn sms_code(
    to: &Phone,
    code: &str,
    purpose: &str,
    valid_for: Duration,
    product_name: &str,
    host: Option<&str>,
    template: &'static str,
    expires_at: Timestamp,
) -> Draft {
    let minutes = valid_for.as_secs().div_ceil(60).max(1);
    let mut text = format!(
        "{code} is your {product_name} {purpose} code. It works for {minutes} minutes. Never share it: {product_name} will never ask you for it."
    );
    if let Some(host) = host {
        text.push_str(&format!("\n\n@{host} #{code}"));
    }
    Draft {
        channel: Channel::Sms,
        recipient: to.as_str().to_owned(),
        subject: String::new(),
        text_body: text,
        html_body: None,
        template,
        expires_at: None,
    }
    .expiring_at(expires_at)
}

/// The `template` name of a "you signed in with a backup method" notice.
pub const FALLBACK_USED: &str = "fallback_used";

/// Tells the user a governed fallback method was used to sign in, how many
/// uses are left in the period, and what to do if it was not them. Fallbacks
/// are where downgrade attacks happen, so every use is visible to the owner.
/// How much of a fallback budget is spent: `uses` of `max_uses` per `period`.
#[derive(Clone, Copy, Debug)]
pub struct Budget<'a> {
    pub uses: u64,
    pub max_uses: u64,
    pub period: &'a str,
}

pub fn fallback_used(
    to: &Email,
    method: &str,
    budget: Budget<'_>,
    at: Timestamp,
    requester: &Requester<'_>,
    product_name: &str,
    not_me: &str,
) -> Draft {
    let from = requester.describe();
    let Budget { uses, max_uses, period } = budget;
    let left = max_uses.saturating_sub(uses);
    let letter = Letter {
        product_name,
        subject: format!("You signed in to {product_name} with a backup method"),
        heading: "Backup sign-in used".to_owned(),
        paragraphs: vec![
            format!(
                "You signed in to {product_name} as {to} with a backup method ({method}) on {} from {from}.",
                utc_minutes(at)
            ),
            format!(
                "Backup methods are limited to {max_uses} sign-ins every {period}; {left} remain. \
                 Sign in with your passkey to keep them for when you need them."
            ),
        ],
        action: Some(not_me_action(not_me)),
        code: None,
        validity: Some(NOT_ME_VALIDITY.to_owned()),
        reason: format!("You received this email because your {product_name} account signed in with a backup method."),
        not_you: format!(
            "If this was not you, someone else can read your email or your messages: sign in with your passkey, \
             end the sessions you do not recognise, and contact your {product_name} administrator."
        ),
    };
    letter.into_email(to, FALLBACK_USED)
}

/// The `template` name of a "new sign-in from a new device" notice.
pub const NEW_DEVICE: &str = "new_device_sign_in";

/// Tells the owner that their account was signed in to from a browser it
/// had not used before (see `crate::devices`), with the "this wasn't me"
/// link.
pub fn new_device_sign_in(
    to: &Email,
    at: Timestamp,
    requester: &Requester<'_>,
    product_name: &str,
    not_me: &str,
) -> Draft {
    let from = requester.describe();
    let letter = Letter {
        product_name,
        subject: format!("New sign-in to {product_name} from a new device"),
        heading: "New sign-in from a new device".to_owned(),
        paragraphs: vec![
            format!(
                "Your {product_name} account {to} was signed in to on {} from {from}, a browser it had not \
                 been used from before.",
                utc_minutes(at)
            ),
            "If this was you, there is nothing to do.".to_owned(),
        ],
        action: Some(not_me_action(not_me)),
        code: None,
        validity: Some(NOT_ME_VALIDITY.to_owned()),
        reason: format!("You received this email because {to} signed in to {product_name} from a new device."),
        not_you: format!(
            "If this was not you, someone else can sign in as you: lock the account with the button above, and \
             contact your {product_name} administrator."
        ),
    };
    letter.into_email(to, NEW_DEVICE)
}

/// The `template` name of a sign-in email that carries a link and a code.
pub const SIGN_IN_LINK: &str = "sign_in_link";
/// The `template` name of a sign-in email that carries only a code.
pub const SIGN_IN_CODE: &str = "sign_in_code";

/// Who asked for a sign-in message, as shown in it.
pub struct Requester<'a> {
    /// A device label such as "Firefox on Linux" (`signet_core::session::device_label`).
    pub device: &'a str,
    /// The client IP address, if known.
    pub ip: Option<&'a str>,
}

impl Requester<'_> {
    /// "Firefox on Linux at IP address 203.0.113.7", or just the device.
    pub fn describe(&self) -> String {
        match self.ip {
            Some(ip) => format!("{} at IP address {ip}", self.device),
            None => self.device.to_owned(),
        }
    }
}

/// A sign-in email: a one-time code, and in browser sign-ins a link
/// (`{public_url}/login/magic/{token}`) as well. The code is always there so
/// that a person who opens the mail on another device can type it instead.
pub fn sign_in(
    to: &Email,
    code: &str,
    link: Option<&str>,
    expires_at: Timestamp,
    valid_for: Duration,
    requester: &Requester<'_>,
    product_name: &str,
) -> Draft {
    let asked_by = requester.describe();
    let (subject, what, action, template) = match link {
        Some(url) => (
            format!("Sign in to {product_name}"),
            "The link and the code are",
            Some(Action {
                label: "Continue signing in".to_owned(),
                url: url.to_owned(),
            }),
            SIGN_IN_LINK,
        ),
        None => (
            format!("Your {product_name} sign-in code"),
            "The code is",
            None,
            SIGN_IN_CODE,
        ),
    };
    let mut paragraphs = vec![format!(
        "Someone, hopefully you, asked to sign in to {product_name} as {to} from {asked_by}."
    )];
    paragraphs.push(if link.is_some() {
        "Open the link below in the same browser where you started signing in. If you read this on \
         another device, type the code on the sign-in page instead."
            .to_owned()
    } else {
        "Type the code below on the sign-in page.".to_owned()
    });
    let letter = Letter {
        product_name,
        subject,
        heading: format!("Sign in to {product_name}"),
        paragraphs,
        action,
        code: Some(code.to_owned()),
        validity: Some(format!(
            "{what} valid for {}, until {}, and can be used only once.",
            human_duration(valid_for),
            utc_minutes(expires_at)
        )),
        reason: format!("You received this email because a sign-in to {product_name} was requested for {to}."),
        not_you: format!(
            "If you did not ask to sign in, ignore this email: nothing happens unless the code or the link \
             is used. Do not share or forward them; {product_name} staff will never ask you for this code."
        ),
    };
    // The code and link are useless after they expire: never send them later.
    letter.into_email(to, template).expiring_at(expires_at)
}

/// A message before layout. See the module docs for what each part is for.
struct Letter<'a> {
    product_name: &'a str,
    subject: String,
    heading: String,
    paragraphs: Vec<String>,
    action: Option<Action>,
    code: Option<String>,
    validity: Option<String>,
    reason: String,
    not_you: String,
}

struct Action {
    label: String,
    url: String,
}

/// The HTML layout; field names are what `templates/letter.html` reads.
#[derive(Template)]
#[template(path = "letter.html")]
struct LetterHtml<'a> {
    product_name: &'a str,
    subject: &'a str,
    heading: &'a str,
    paragraphs: &'a [String],
    action: &'a Option<Action>,
    code: &'a Option<String>,
    validity: &'a Option<String>,
    reason: &'a str,
    not_you: &'a str,
}

impl Letter<'_> {
    fn into_email(self, to: &Email, template: &'static str) -> Draft {
        let text_body = self.text();
        let html_body = match self.html() {
            Ok(html) => Some(html),
            Err(e) => {
                // Only a failing Display impl could get here; the text part
                // still carries everything, so send that rather than nothing.
                tracing::error!(template, error = %e, "rendering the HTML part failed; sending text only");
                None
            }
        };
        Draft {
            channel: Channel::Email,
            recipient: to.as_str().to_owned(),
            subject: self.subject,
            text_body,
            html_body,
            template,
            expires_at: None,
        }
    }

    fn html(&self) -> askama::Result<String> {
        LetterHtml {
            product_name: self.product_name,
            subject: &self.subject,
            heading: &self.heading,
            paragraphs: &self.paragraphs,
            action: &self.action,
            code: &self.code,
            validity: &self.validity,
            reason: &self.reason,
            not_you: &self.not_you,
        }
        .render()
    }

    /// The text part: the same sections as the HTML, blank-line separated,
    /// with the link alone on its line so mail clients make it clickable.
    fn text(&self) -> String {
        let mut sections: Vec<String> = vec![self.heading.clone()];
        sections.extend(self.paragraphs.iter().cloned());
        if let Some(action) = &self.action {
            sections.push(format!("{}:\n{}", action.label, action.url));
        }
        if let Some(code) = &self.code {
            sections.push(format!("Your code: {code}"));
        }
        if let Some(validity) = &self.validity {
            sections.push(validity.clone());
        }
        sections.push(format!("{}\n{}", self.reason, self.not_you));
        sections.push(format!("-- \n{}", self.product_name));
        let mut text = sections.join("\n\n");
        text.push('\n');
        text
    }
}

/// "This link is valid for 3 days, until 2026-11-24 20:00 UTC, and works only once."
fn link_validity(expires_at: Timestamp, valid_for: Duration) -> String {
    format!(
        "This link is valid for {}, until {}, and works only once.",
        human_duration(valid_for),
        utc_minutes(expires_at)
    )
}

/// A duration in words, at most its two largest units: "3 days", "1 hour 30 minutes".
fn human_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "less than a second".to_owned();
    }
    let mut parts = Vec::new();
    for (unit, size) in [("day", 86_400), ("hour", 3600), ("minute", 60), ("second", 1)] {
        if secs >= size && parts.len() < 2 {
            let n = secs / size;
            secs %= size;
            parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
        } else if !parts.is_empty() {
            // Only adjacent units: "1 day 5 seconds" would read oddly.
            break;
        }
    }
    parts.join(" ")
}

/// `2026-11-24 20:00 UTC`; expiry to the minute is what a reader needs.
fn utc_minutes(t: Timestamp) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(t.unix_seconds())
        .ok()
        .and_then(|dt| dt.format(&format).ok())
        .unwrap_or_else(|| t.to_rfc3339())
}

/// `text` with its first letter upper-cased, for a phrase that opens a sentence.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> Email {
        Email::parse("ada@example.com").unwrap()
    }

    // 2026-11-24T20:00:00Z
    const EXPIRES: Timestamp = Timestamp::from_millis(1_795_550_400_000);

    #[test]
    fn invitation_says_why_how_long_and_what_if_unexpected() {
        let link = "http://localhost:8080/invite/tok_abc";
        let d = invitation(&ada(), link, EXPIRES, Duration::from_secs(72 * 3600), "Grace", "Signet");
        assert_eq!(d.channel, Channel::Email);
        assert_eq!(d.recipient, "ada@example.com");
        assert_eq!(d.template, "invitation");
        assert_eq!(d.subject, "You're invited to sign in to Signet");
        let html = d.html_body.as_deref().unwrap();
        for body in [d.text_body.as_str(), html] {
            assert!(
                body.contains("because Grace invited ada@example.com to Signet"),
                "{body}"
            );
            assert!(body.contains("valid for 3 days, until 2026-11-24 20:00 UTC"), "{body}");
            assert!(
                body.contains("If you did not expect this invitation, ignore this email"),
                "{body}"
            );
            assert!(body.contains(link), "{body}");
        }
        assert!(d.text_body.contains(&format!("Accept the invitation:\n{link}\n")));
    }

    #[test]
    fn html_escapes_user_supplied_values() {
        let d = invitation(
            &ada(),
            "http://localhost:8080/invite/a?b=1&c=\"2\"",
            EXPIRES,
            Duration::from_secs(3600),
            "<script>alert(1)</script>",
            "Signet",
        );
        let html = d.html_body.unwrap();
        assert!(!html.contains("<script>"));
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62; invited you"),
            "{html}"
        );
        // Quotes and ampersands in the link cannot break out of the attribute.
        assert!(
            html.contains("href=\"http://localhost:8080/invite/a?b=1&#38;c=&#34;2&#34;\""),
            "{html}"
        );
        // The text part is not HTML and is left as written.
        assert!(d.text_body.contains("<script>alert(1)</script> invited you"));
    }

    #[test]
    fn html_loads_nothing_from_outside() {
        let d = invitation(
            &ada(),
            "https://id.example.com/invite/x",
            EXPIRES,
            Duration::from_secs(60),
            "Grace",
            "Signet",
        );
        let html = d.html_body.unwrap();
        assert!(!html.contains("<img"));
        assert!(!html.contains("<link"));
        assert!(!html.contains("src="));
        assert!(!html.contains("url("));
    }

    #[test]
    fn sign_in_mail_says_why_how_long_who_asked_and_what_if_unexpected() {
        let link = "https://id.example.com/login/magic/sgm_abc";
        let who = Requester {
            device: "Firefox on Linux",
            ip: Some("203.0.113.7"),
        };
        let d = sign_in(
            &ada(),
            "042917",
            Some(link),
            EXPIRES,
            Duration::from_secs(600),
            &who,
            "Signet",
        );
        assert_eq!(d.template, SIGN_IN_LINK);
        assert_eq!(d.subject, "Sign in to Signet");
        assert!(!d.subject.contains("042917"), "codes never go in the subject line");
        let html = d.html_body.as_deref().unwrap();
        for body in [d.text_body.as_str(), html] {
            assert!(body.contains("042917"), "{body}");
            assert!(body.contains(link), "{body}");
            assert!(
                body.contains("from Firefox on Linux at IP address 203.0.113.7"),
                "{body}"
            );
            assert!(
                body.contains("The link and the code are valid for 10 minutes, until 2026-11-24 20:00 UTC"),
                "{body}"
            );
            assert!(body.contains("because a sign-in to Signet was requested for ada@example.com"));
            assert!(body.contains("If you did not ask to sign in, ignore this email"));
            assert!(body.contains("type the code on the sign-in page instead"));
        }
        let code_only = sign_in(
            &ada(),
            "042917",
            None,
            EXPIRES,
            Duration::from_secs(600),
            &who,
            "Signet",
        );
        assert_eq!(code_only.template, SIGN_IN_CODE);
        assert!(code_only.text_body.contains("The code is valid for 10 minutes"));
        assert!(!code_only.text_body.contains("http"));
        assert!(!code_only.html_body.unwrap().contains("href"));
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(human_duration(Duration::from_secs(72 * 3600)), "3 days");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human_duration(Duration::from_secs(5400)), "1 hour 30 minutes");
        assert_eq!(human_duration(Duration::from_secs(86_400 + 5)), "1 day");
        assert_eq!(human_duration(Duration::from_secs(15 * 60)), "15 minutes");
        assert_eq!(human_duration(Duration::from_secs(90)), "1 minute 30 seconds");
        assert_eq!(human_duration(Duration::ZERO), "less than a second");
    }

    #[test]
    fn expiry_to_the_minute_in_utc() {
        assert_eq!(utc_minutes(EXPIRES), "2026-11-24 20:00 UTC");
    }
}
