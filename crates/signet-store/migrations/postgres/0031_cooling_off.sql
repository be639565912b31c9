-- Cooling-off (docs/recovery.md): a credential bound through a recovery
-- session proves at most aal1 until `restricted_until` (the tier's helpdesk.cooling_off
-- after its binding). One row per credential; a credential never bound
-- through recovery has none.
CREATE TABLE credential_cooling_off (
    credential_id TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    restricted_until BIGINT NOT NULL
);
CREATE INDEX credential_cooling_off_user ON credential_cooling_off (user_id);
-- Listing a user's tickets, newest first.
CREATE INDEX recovery_tickets_created ON recovery_tickets (created_at);

-- The browsers an account signed in from, by the hash of their device
-- cookie: a sign-in from one not listed is "a new device" (docs/recovery.md).
CREATE TABLE known_devices (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_hash BYTEA NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_hash)
);
