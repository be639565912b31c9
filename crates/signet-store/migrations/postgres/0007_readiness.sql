-- One row that /readyz rewrites (at most every few seconds) to prove a
-- write can commit: a full disk or a stuck writer makes it fail.
CREATE TABLE readiness (
    id INTEGER PRIMARY KEY,
    checked_at BIGINT NOT NULL
);
INSERT INTO readiness (id, checked_at) VALUES (1, 0);
