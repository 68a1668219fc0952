-- growthflow dataset, version 5: the run history (see the SQLite twin for the columns' meaning).
-- (Version 4 is the source locks' migration: each version is applied when missing, in order.)
CREATE TABLE IF NOT EXISTS sync_runs (
    run_id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    status TEXT NOT NULL,
    records BIGINT NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS sync_runs_started ON sync_runs (started_at);

CREATE TABLE IF NOT EXISTS sync_run_streams (
    run_id TEXT NOT NULL REFERENCES sync_runs (run_id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    stream TEXT NOT NULL,
    records BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    error_kind TEXT,
    error TEXT,
    cursor TEXT,
    requests BIGINT NOT NULL DEFAULT 0,
    waited_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, source, stream)
);
CREATE INDEX IF NOT EXISTS sync_run_streams_source ON sync_run_streams (source, stream);
