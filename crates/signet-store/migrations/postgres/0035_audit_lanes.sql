-- The audit log as LANES (16) interleaved hash chains (ADR 0036). A
-- transaction holds its lane's head row from its append until its commit
-- has flushed; with one head, every commit of every node waited for the one
-- before it. Each record links to the last record of its own lane; its seq
-- comes from one sequence, drawn while the lane is held, so seq is still one
-- global order and, within a lane, chain order. Lane 1 continues the chain
-- written so far.
ALTER TABLE audit_log ADD COLUMN lane SMALLINT NOT NULL DEFAULT 1;
ALTER TABLE audit_head DROP CONSTRAINT audit_head_id_check;
ALTER TABLE audit_head ADD CONSTRAINT audit_head_lane CHECK (id BETWEEN 1 AND 16);
INSERT INTO audit_head (id, seq, hash)
    SELECT lane, 0, decode(repeat('00', 32), 'hex') FROM generate_series(2, 16) AS lane;
CREATE SEQUENCE audit_seq;
SELECT setval('audit_seq', seq) FROM audit_head WHERE id = 1 AND seq > 0;
