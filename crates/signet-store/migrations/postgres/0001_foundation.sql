-- Signet foundation schema (PostgreSQL). Same shape as the SQLite schema so
-- one set of queries serves both: times are Unix milliseconds (BIGINT), ids
-- are UUID text, token hashes are 32-byte SHA-256 values (BYTEA).

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    email_norm  TEXT NOT NULL UNIQUE,
    phone       TEXT,
    name        TEXT,
    roles       TEXT NOT NULL DEFAULT '[]',
    status      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash          BYTEA NOT NULL UNIQUE,
    aal                 TEXT NOT NULL,
    amr                 TEXT NOT NULL,
    phishing_resistant  BOOLEAN NOT NULL,
    auth_time           BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    last_seen_at        BIGINT NOT NULL,
    idle_timeout_ms     BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
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
    version     BIGINT NOT NULL,
    binding     BYTEA,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX flows_expires ON flows(expires_at);

CREATE TABLE one_time_secrets (
    purpose     TEXT NOT NULL,
    hash        BYTEA NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    flow_id     TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    consumed_at BIGINT,
    issued_by   TEXT NOT NULL,
    PRIMARY KEY (purpose, hash)
);
CREATE INDEX one_time_secrets_user ON one_time_secrets(user_id, purpose);

CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- The audit chain head: one row, updated in the same transaction as each
-- append. Its row lock serialises appenders across every node.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    at          BIGINT NOT NULL,
    type        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    user_id     TEXT,
    ip          TEXT,
    user_agent  TEXT,
    outcome     TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL
);
CREATE INDEX audit_log_user ON audit_log(user_id, seq);
CREATE INDEX audit_log_type ON audit_log(type, seq);

-- Append-only at the database too; the hash chain catches anyone who bypasses it.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

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
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    sent_at         BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_created ON outbox(created_at);
