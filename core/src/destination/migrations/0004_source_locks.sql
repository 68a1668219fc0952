-- Which run holds each source (and `:journey`, the journey rebuild), so two runs on one dataset never
-- sync the same source at once. A live run moves `heartbeat` and `expires` forward while it works; a
-- row whose `expires` has passed, or whose holder ran on this host and its process is gone, may be
-- taken over.
CREATE TABLE growthflow_locks (
    source    TEXT PRIMARY KEY,
    run_id    TEXT NOT NULL,
    host      TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    since     TEXT NOT NULL,
    heartbeat TEXT NOT NULL,
    expires   TEXT NOT NULL
) WITHOUT ROWID;
