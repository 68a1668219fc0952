-- Who holds each source. The lock itself is a session advisory lock (released by the server when the
-- holder's connection ends, however it ends); this row only says who holds it and since when.
CREATE TABLE growthflow_locks (
    source    TEXT PRIMARY KEY,
    run_id    TEXT NOT NULL,
    host      TEXT NOT NULL,
    pid       BIGINT NOT NULL,
    since     TIMESTAMPTZ NOT NULL,
    heartbeat TIMESTAMPTZ NOT NULL,
    expires   TIMESTAMPTZ NOT NULL
);
