-- Every record names its lane (ADR 0036). SQLite's single writer orders
-- every append, so its log stays one chain: lane 1, the only head.
ALTER TABLE audit_log ADD COLUMN lane INTEGER NOT NULL DEFAULT 1;
