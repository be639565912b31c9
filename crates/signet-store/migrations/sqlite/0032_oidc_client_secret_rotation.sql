-- Client secret rotation with a grace period: the secret a rotation
-- replaced stays valid (as its SHA-256 hash) until previous_secret_expires_at.
ALTER TABLE oidc_clients ADD COLUMN previous_secret_hash BLOB;
ALTER TABLE oidc_clients ADD COLUMN previous_secret_expires_at INTEGER;
