-- OpenID Connect clients (relying parties). The secret is stored only as a
-- SHA-256 hash; a public client has none. `settings` is the client's
-- ClientSettings as one JSON document (read and written whole).
CREATE TABLE oidc_clients (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    secret_hash  BYTEA,
    settings     TEXT NOT NULL,
    source       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
