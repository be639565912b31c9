-- OpenID Connect logout. A code remembers the `sid` of the ID token issued
-- from it (the Signet session at the time) and the Signet session it now
-- rides on (`session_id`: the same, until a step-up or a new sign-in of the
-- same user replaces that session, which moves it along), so that when the
-- session ends the relying parties that redeemed a code of it can be sent a
-- back-channel logout token naming the `sid` they know. `logged_out_at` is
-- set by the one conditional write that claims a code for that notice, so
-- each session's end is announced once.
ALTER TABLE oidc_codes ADD COLUMN sid TEXT;
ALTER TABLE oidc_codes ADD COLUMN session_id TEXT;
ALTER TABLE oidc_codes ADD COLUMN logged_out_at BIGINT;
CREATE INDEX oidc_codes_session_id ON oidc_codes (session_id);
