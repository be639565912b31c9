-- Help-desk recovery tickets (docs/recovery.md). A ticket records the user,
-- the reason and the evidence by reference. The people involved (its
-- creator and each approver, every one an admin token) are rows of
-- recovery_ticket_actors: the primary key (ticket_id, actor_id) makes "an
-- actor is counted once" a fact of the database, whatever the races.
CREATE TABLE recovery_tickets (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reason             TEXT NOT NULL,
    evidence_kind      TEXT NOT NULL,
    evidence_reference TEXT NOT NULL,
    created_by         TEXT NOT NULL,
    approvals_required BIGINT NOT NULL,
    status             TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL
);
CREATE INDEX recovery_tickets_user ON recovery_tickets (user_id);

CREATE TABLE recovery_ticket_actors (
    ticket_id  TEXT NOT NULL REFERENCES recovery_tickets(id) ON DELETE CASCADE,
    actor_id   TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (ticket_id, actor_id)
);

-- Staff ceilings: the highest tier (by name) a token may act on in help-desk
-- recovery. NULL: no limit (tokens made before ceilings keep working).
ALTER TABLE admin_tokens ADD COLUMN ceiling TEXT;
