-- Passkeys (WebAuthn credentials), enrollment ceremonies and server secrets.
--
-- credential_id is the base64url (no padding) of the authenticator's
-- credential id, unique across ALL users (WebAuthn L3 §7.1 step 26).
-- record is the verifier's serialised credential (public key, algorithm);
-- counter and backup_state are the mutable parts and live in their own
-- columns so a login updates them in one conditional write.
CREATE TABLE passkeys (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id   TEXT NOT NULL UNIQUE,
    record          TEXT NOT NULL,
    counter         BIGINT NOT NULL,
    backup_eligible BOOLEAN NOT NULL,
    backup_state    BOOLEAN NOT NULL,
    user_verified   BOOLEAN NOT NULL,
    aaguid          TEXT NOT NULL,
    transports      TEXT NOT NULL,
    name            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT
);
CREATE INDEX passkeys_user ON passkeys(user_id, created_at);

-- Enrollment ceremonies: the server-side state of a registration, bound to
-- the session that began it, taken out (deleted) once.
CREATE TABLE ceremonies (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    state       TEXT NOT NULL,
    name        TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX ceremonies_expiry ON ceremonies(expires_at);

-- Secrets every node must share (e.g. the HMAC key for passkey decoys).
-- Created once by whichever node gets there first; never rotated silently.
CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    value       BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);
