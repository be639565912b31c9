-- Signet foundation schema (SQLite). Times are Unix milliseconds (INTEGER),
-- ids are UUID text, token hashes are 32-byte SHA-256 blobs.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    email_norm  TEXT NOT NULL UNIQUE,
    phone       TEXT,
    name        TEXT,
    roles       TEXT NOT NULL DEFAULT '[]',
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash          BLOB NOT NULL UNIQUE,
    aal                 TEXT NOT NULL,
    amr                 TEXT NOT NULL,
    phishing_resistant  INTEGER NOT NULL,
    auth_time           INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    idle_timeout_ms     INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    tier                TEXT NOT NULL,
    scope               TEXT NOT NULL,
    mode                TEXT NOT NULL,
    ip                  TEXT,
    device              TEXT NOT NULL,
    credential_id       TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_credential ON sessions(credential_id);
CREATE INDEX sessions_absolute ON sessions(absolute_expires_at);

CREATE TABLE flows (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    binding     BLOB,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX flows_expires ON flows(expires_at);

CREATE TABLE one_time_secrets (
    purpose     TEXT NOT NULL,
    hash        BLOB NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    flow_id     TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER,
    issued_by   TEXT NOT NULL,
    PRIMARY KEY (purpose, hash)
);
CREATE INDEX one_time_secrets_user ON one_time_secrets(user_id, purpose);

CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- The audit chain head: one row, updated in the same transaction as each
-- append. Updating it first serialises appenders.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    at          INTEGER NOT NULL,
    type        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    user_id     TEXT,
    ip          TEXT,
    user_agent  TEXT,
    outcome     TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
);
CREATE INDEX audit_log_user ON audit_log(user_id, seq);
CREATE INDEX audit_log_type ON audit_log(type, seq);

-- Append-only: the application never edits or deletes audit records. This
-- refuses it at the database too; the hash chain catches anyone who bypasses it.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    channel         TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT,
    html_body       TEXT,
    template        TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    sent_at         INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_created ON outbox(created_at);
