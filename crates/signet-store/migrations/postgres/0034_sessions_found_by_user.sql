-- Sessions proven with a credential are found through their user's
-- sessions when the credential is removed (sessions_user), so no index on
-- credential_id: every sign-in wrote a page of it (ADR 0034).
DROP INDEX sessions_credential;
