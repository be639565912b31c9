-- Rate-limit windows and consecutive-failure runs (ThrottleStore). Keys are
-- opaque text chosen by the application (hashes, never raw addresses).
CREATE TABLE throttle_windows (
    bucket       TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    hits         BIGINT NOT NULL
);
CREATE INDEX throttle_windows_start ON throttle_windows(window_start);

CREATE TABLE throttle_failures (
    bucket   TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_at  BIGINT NOT NULL
);
CREATE INDEX throttle_failures_last ON throttle_failures(last_at);

-- Revoking a flow's earlier codes and links looks secrets up by flow.
CREATE INDEX one_time_secrets_flow ON one_time_secrets(flow_id);
