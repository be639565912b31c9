//! Security notices: tell the account's owner, on every channel they have,
//! when something about their account's security changes (an authenticator
//! was bound or removed, a governed fallback was used). NIST SP 800-63B asks
//! for notification of authenticator binding changes (§4.1.2.1 "every
//! channel"; §6.1.2.1, §6.1.4). Email always; SMS too to every phone on
//! file: each verified phone (an `sms_otp` credential, proven by a code)
//! and the number an administrator recorded on the account, once each.
//! A phone being removed still gets the notice of its own removal: its
//! owner is the one to tell. Notices go through the durable outbox, so they survive an
//! outage and never delay the response, and they are queued in the unit of
//! work of the change they tell about: no notice of a change that did not
//! commit, no committed change without its notice. The caller wakes the
//! courier after the commit.

use crate::messages;
use signet_core::outbox::Draft;
use signet_core::store::Store;
use signet_core::unit_of_work::OutboxWrites;
use signet_core::user::{Phone, User};
use signet_core::Result;
use signet_courier::Courier;

use crate::App;

/// Queues `email` and an SMS saying `what` to every phone on file, in the
/// unit of work `tx`.
pub async fn security_notice(
    app: &App,
    tx: &mut dyn OutboxWrites,
    user: &User,
    email: Draft,
    what: &str,
) -> Result<()> {
    Notifier {
        store: &*app.store,
        courier: &app.courier,
        product_name: &app.settings.product_name,
    }
    .notify(tx, user, email, what)
    .await
}

/// What sending a notice needs, for code that runs without the whole
/// [`App`] (a method's step effect).
pub struct Notifier<'a> {
    pub store: &'a dyn Store,
    pub courier: &'a Courier,
    pub product_name: &'a str,
}

impl Notifier<'_> {
    /// [`security_notice`].
    pub async fn notify(&self, tx: &mut dyn OutboxWrites, user: &User, email: Draft, what: &str) -> Result<()> {
        self.courier.enqueue_in(tx, email).await?;
        for phone in self.phones_on_file(user).await? {
            self.courier
                .enqueue_in(tx, messages::sms_notice(&phone, self.product_name, what))
                .await?;
        }
        Ok(())
    }

    /// The account's verified phones, then the administrator's number if
    /// it is not one of them.
    async fn phones_on_file(&self, user: &User) -> Result<Vec<Phone>> {
        let mut phones: Vec<Phone> = self
            .store
            .phones_of(user.id)
            .await?
            .into_iter()
            .map(|p| p.phone)
            .collect();
        if let Some(recorded) = &user.phone {
            if !phones.contains(recorded) {
                phones.push(recorded.clone());
            }
        }
        Ok(phones)
    }
}
