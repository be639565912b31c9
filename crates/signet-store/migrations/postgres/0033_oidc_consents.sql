-- What users approved for third-party OIDC clients (the consent screen):
-- the scopes, space-separated, one row per user and client. A client's
-- deletion removes its rows.
CREATE TABLE oidc_consents (
    user_id     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    granted_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
