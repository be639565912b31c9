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
    user_id     TEXT NOT NULL,
    grant_data  TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    redeemed_at BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX oidc_codes_user_id ON oidc_codes (user_id);

-- Refresh tokens (hash only), rotated on every use. A family is every token
-- descended from one authorization code (its id is the code's id); a
-- rotated-out token presented again revokes the whole family.
CREATE TABLE oidc_refresh_tokens (
    token_hash  BLOB PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    family_id   TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    grant_data  TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    rotated_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX oidc_refresh_tokens_family_id ON oidc_refresh_tokens (family_id);
CREATE INDEX oidc_refresh_tokens_user_id ON oidc_refresh_tokens (user_id);
