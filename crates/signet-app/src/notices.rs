//! Security notices: tell the account's owner, on every channel they have,
//! when something about their account's security changes (an authenticator
//! was bound or removed, a governed fallback was used). NIST SP 800-63B asks
//! for notification of authenticator binding changes (§4.1.2.1 "every
//! channel"; §6.1.2.1, §6.1.4). Email always; SMS too when the user has a
//! phone number. Notices go through the durable outbox, so they survive an
//! outage and never delay the response, and they are queued in the unit of
//! work of the change they tell about: no notice of a change that did not
//! commit, no committed change without its notice. The caller wakes the
//! courier after the commit.

use crate::messages;
use signet_core::outbox::Draft;
use signet_core::unit_of_work::OutboxWrites;
use signet_core::user::User;
use signet_core::Result;

use crate::App;

/// Queues `email` and, when the user has a phone, an SMS saying `what`, in
/// the unit of work `tx`.
pub async fn security_notice(
    app: &App,
    tx: &mut dyn OutboxWrites,
    user: &User,
    email: Draft,
    what: &str,
) -> Result<()> {
    app.courier.enqueue_in(tx, email).await?;
    if let Some(phone) = &user.phone {
        app.courier
            .enqueue_in(tx, messages::sms_notice(phone, &app.settings.product_name, what))
            .await?;
    }
    Ok(())
}
