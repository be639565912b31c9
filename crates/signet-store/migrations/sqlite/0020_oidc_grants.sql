-- OpenID Connect authorization requests waiting for a login (referenced by
-- a flow's Continuation::Authorization), and authorization codes. A code
-- is stored only as its SHA-256 hash; `redeemed_at` is set by the one
-- conditional write that redeems it, `revoked_at` when it is presented
-- again (every token issued from it then stops working).
CREATE TABLE oidc_requests (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    request     TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX oidc_requests_expires_at ON oidc_requests (expires_at);

CREATE TABLE oidc_codes (
    code_hash   BLOB PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    client_id   TEXT NOT NULL,
    grant_data  TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    redeemed_at BIGINT,
    revoked_at  BIGINT
);
