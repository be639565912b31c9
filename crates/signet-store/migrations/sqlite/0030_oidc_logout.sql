-- OpenID Connect logout. A code remembers the Signet session it was issued
-- for (the ID token's `sid`), so that when that session ends the relying
-- parties that redeemed a code of it can be sent a back-channel logout
-- token; `logged_out_at` is set by the one conditional write that claims a
-- code for that notice, so each session's end is announced once.
ALTER TABLE oidc_codes ADD COLUMN session_id TEXT;
ALTER TABLE oidc_codes ADD COLUMN logged_out_at BIGINT;
CREATE INDEX oidc_codes_session_id ON oidc_codes (session_id);
