//! Security notices: tell the account's owner, on every channel they have,
//! when something about their account's security changes (an authenticator
//! was bound or removed, a governed fallback was used). NIST SP 800-63B asks
//! for notification of authenticator binding changes (§4.1.2.1 "every
//! channel"; §6.1.2.1, §6.1.4). Email always; SMS too to every phone on
//! file: each verified phone (an `sms_otp` credential, proven by a code)
//! and the number an administrator recorded on the account, once each,
//! as the notice's unit of work sees them (read inside it). Notices go through the durable outbox, so they survive an
//! outage and never delay the response, and they are queued in the unit of
//! work of the change they tell about: no notice of a change that did not
//! commit, no committed change without its notice. The caller wakes the
//! courier after the commit.

use crate::messages;
use signet_core::outbox::Draft;
use signet_core::unit_of_work::Transaction;
use signet_core::user::{Phone, User};
use signet_core::Result;
use signet_courier::Courier;

use crate::App;

/// Queues `email` and an SMS saying `what` to every phone on file, in the
/// unit of work `tx`.
pub async fn security_notice(app: &App, tx: &mut dyn Transaction, user: &User, email: Draft, what: &str) -> Result<()> {
    Notifier {
        courier: &app.courier,
        product_name: &app.settings.product_name,
    }
    .notify(tx, user, email, what)
    .await
}

/// What sending a notice needs, for code that runs without the whole
/// [`App`] (a method's step effect).
pub struct Notifier<'a> {
    pub courier: &'a Courier,
    pub product_name: &'a str,
}

impl Notifier<'_> {
    /// [`security_notice`].
    pub async fn notify(&self, tx: &mut dyn Transaction, user: &User, email: Draft, what: &str) -> Result<()> {
        let phones = phones_on_file(tx, user).await?;
        self.courier.enqueue_in(tx, email).await?;
        for phone in phones {
            self.courier
                .enqueue_in(tx, messages::sms_notice(&phone, self.product_name, what))
                .await?;
        }
        Ok(())
    }
}

/// The account's verified phones (read in the unit, so a phone added or
/// removed in it counts as the unit sees it), then the administrator's
/// number if it is not one of them.
async fn phones_on_file(tx: &mut dyn Transaction, user: &User) -> Result<Vec<Phone>> {
    let mut phones: Vec<Phone> = tx.phones_in_unit(user.id).await?.into_iter().map(|p| p.phone).collect();
    if let Some(recorded) = &user.phone {
        if !phones.contains(recorded) {
            phones.push(recorded.clone());
        }
    }
    Ok(phones)
}
