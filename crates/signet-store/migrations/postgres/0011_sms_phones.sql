-- Verified phones: `sms_otp` credentials. A row exists only once its owner
-- typed back a code sent to the number (a number being enrolled lives in an
-- enrollment ceremony). One phone per account (UNIQUE user_id): a second is
-- added by removing the first, so "the phone a code goes to" is never a
-- choice an attacker could steer. phone is E.164.
CREATE TABLE phones (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    phone        TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
