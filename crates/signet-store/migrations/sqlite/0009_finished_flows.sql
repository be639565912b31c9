-- A flow that lives only in its sealed handle (ADR 0014) has no row to
-- delete when it completes: its id is recorded here instead, in the unit of
-- work that completes it. The primary key picks the one winner among
-- concurrent completions; the janitor forgets an id once its flow would
-- have expired anyway.
CREATE TABLE finished_flows (
    id TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX finished_flows_expires_at ON finished_flows (expires_at);
