-- Which run holds each source, so two runs on one dataset never sync the same source at once. A
-- row whose `expires` has passed (its run died without unlocking) may be taken over; a live run moves
-- `heartbeat` and `expires` forward while it works.
CREATE TABLE growthflow_locks (
    source    TEXT PRIMARY KEY,
    run_id    TEXT NOT NULL,
    host      TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    since     TEXT NOT NULL,
    heartbeat TEXT NOT NULL,
    expires   TEXT NOT NULL
) WITHOUT ROWID;
