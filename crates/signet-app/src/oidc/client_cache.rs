//! A node's short memory of registered clients (ADR 0039).
//!
//! Every token request authenticates its client, and every authorization
//! request reads it, so a client row was read once or twice per sign-in to
//! an app: on SQLite each read is two hand-offs to a reader thread, about
//! a tenth of an SSO sign-in's cost. Clients change rarely (an operator
//! edits one), so each node keeps what it read for [`TTL`].
//!
//! - **A change made through this node is seen at once:** registering,
//!   updating, rotating the secret of and deleting a client, and writing
//!   `[[oidc.clients]]` at start, forget the client here after their commit.
//! - **A change made elsewhere** (another node on PostgreSQL, a `signet
//!   client` command beside a running server) is seen within [`TTL`].
//! - **A secret that fails is read again** before `invalid_client` is
//!   answered, so a client switching to a secret just rotated elsewhere is
//!   never refused for it.
//! - **A deleted client gets no user grant from a stale entry:** the
//!   statement that redeems a code checks that its client still exists, and
//!   the deletion revoked the client's refresh tokens. What a stale entry can
//!   still do for up to [`TTL`] is a `client_credentials` grant, whose
//!   token lives its configured lifetime.
//! - Unknown client ids are not remembered: the memory holds registered
//!   clients only, so nobody can grow it.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use signet_core::clock::Timestamp;
use signet_core::oidc_client::OidcClient;
use signet_core::Result;

use crate::App;

/// How long a client read is used before it is read again.
pub const TTL: Duration = Duration::from_secs(1);

/// Clients as this node last read them.
#[derive(Debug, Default)]
pub struct ClientCache {
    entries: RwLock<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    clients: HashMap<String, (OidcClient, Timestamp)>,
    /// Counts [`ClientCache::forget`]s: a read that began before one does
    /// not put back what it read (it may predate the change).
    forgotten: u64,
}

impl ClientCache {
    /// The client `client_id` as read at most [`TTL`] ago, or as stored now.
    pub async fn get(&self, app: &App, client_id: &str) -> Result<Option<OidcClient>> {
        Ok(self.lookup(app, client_id).await?.0)
    }

    /// As [`ClientCache::get`], and whether the answer was read from the
    /// store just now (`true`) or remembered (`false`).
    pub async fn lookup(&self, app: &App, client_id: &str) -> Result<(Option<OidcClient>, bool)> {
        let now = app.clock.now();
        if let Some(client) = self.fresh(client_id, now) {
            return Ok((Some(client), false));
        }
        Ok((self.read(app, client_id).await?, true))
    }

    /// The client `client_id` as stored now (remembered for the next
    /// [`TTL`]).
    pub async fn read(&self, app: &App, client_id: &str) -> Result<Option<OidcClient>> {
        let now = app.clock.now();
        let before = self.entries.read().unwrap_or_else(|e| e.into_inner()).forgotten;
        let client = app.store.oidc_client(client_id).await?;
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        match &client {
            Some(c) if entries.forgotten == before => {
                entries.clients.insert(client_id.to_owned(), (c.clone(), now));
            }
            _ => {
                entries.clients.remove(client_id);
            }
        }
        Ok(client)
    }

    /// Forgets `client_id`: it changed, through this node.
    pub fn forget(&self, client_id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.forgotten = entries.forgotten.wrapping_add(1);
        entries.clients.remove(client_id);
    }

    fn fresh(&self, client_id: &str, now: Timestamp) -> Option<OidcClient> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let (client, read_at) = entries.clients.get(client_id)?;
        (now >= *read_at && now < read_at.plus(TTL)).then(|| client.clone())
    }
}
