//! The login methods Signet implements, one module each, plus what several
//! of them share. Each method holds the handles it needs (store, courier,
//! clock, settings) and is registered in the method registry by the binary's
//! wiring; the flow engine ([`crate::login`]) never names a method.

pub mod email;
pub mod email_code;
pub mod magic_link;
pub mod oob;
pub mod passkey;
pub mod recovery_code;
pub mod sms_code;
pub mod totp;

pub use email::Mailbox;
pub use email_code::EmailCode;
pub use magic_link::MagicLink;
pub use passkey::PasskeyMethod;
pub use recovery_code::RecoveryCodes;
pub use sms_code::{SmsChannel, SmsCode};
pub use totp::TotpMethod;
