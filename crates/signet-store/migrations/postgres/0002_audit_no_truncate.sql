-- Row-level triggers do not fire on TRUNCATE; refuse it at statement level
-- so the audit log stays append-only whichever way someone tries to empty it.
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
