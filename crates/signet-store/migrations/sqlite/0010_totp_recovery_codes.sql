-- TOTP authenticators (RFC 6238) and recovery codes (look-up secrets,
-- NIST SP 800-63B rev. 4 §3.1.2).
--
-- seed is the 160-bit shared secret sealed with the key ring (XChaCha20-
-- Poly1305, bound to "totp_seed:<id>"): a stolen backup holds ciphertext.
-- last_step is the last accepted RFC 6238 time step; a login advances it
-- with one conditional UPDATE ... WHERE last_step < $step (RFC 6238 §5.2:
-- a code, once accepted, is never accepted again, even in a race).
CREATE TABLE totp_credentials (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    seed         BLOB NOT NULL,
    last_step    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX totp_credentials_user ON totp_credentials(user_id, created_at);

-- Recovery codes: one row per code, only its SHA-256 hash (the codes carry
-- at least 64 random bits, so a plain hash is enough). A use is one
-- conditional UPDATE ... WHERE used_at IS NULL: of racing uses one wins.
-- Regeneration deletes and inserts the whole set in one transaction.
CREATE TABLE recovery_codes (
    hash         BLOB PRIMARY KEY,
    set_id       TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);
