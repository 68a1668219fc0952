-- growthflow dataset, version 5: the run history. One `sync_runs` row per `sync` or `backfill` run,
-- written when the run starts (status 'running') and updated when it ends; one `sync_run_streams` row per
-- stream the run read, with what it committed, why it failed, where it stopped and what it cost. A BI
-- tool or a scheduled check alerts on it with plain SQL (docs/dataset.md). Never holds a secret.
-- (Version 4 is the source locks' migration: each version is applied when missing, in order.)
CREATE TABLE IF NOT EXISTS sync_runs (
    run_id TEXT PRIMARY KEY,
    command TEXT NOT NULL,             -- sync | backfill
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,          -- RFC 3339 UTC
    finished_at TEXT,                  -- NULL while running (or when the process was killed)
    status TEXT NOT NULL,              -- running | ok | failed | interrupted | locked
    records INTEGER NOT NULL DEFAULT 0,
    error TEXT                         -- a run-level failure (the journey rebuild), else NULL
);
CREATE INDEX IF NOT EXISTS sync_runs_started ON sync_runs (started_at);

CREATE TABLE IF NOT EXISTS sync_run_streams (
    run_id TEXT NOT NULL REFERENCES sync_runs (run_id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    stream TEXT NOT NULL,
    records INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,              -- running | ok | failed | interrupted | locked
    error_kind TEXT,                   -- auth, config, throttled, … (the --json `kind`)
    error TEXT,
    cursor TEXT,                       -- the saved cursor after the run
    requests INTEGER NOT NULL DEFAULT 0,
    waited_seconds REAL NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, source, stream)
);
CREATE INDEX IF NOT EXISTS sync_run_streams_source ON sync_run_streams (source, stream);
