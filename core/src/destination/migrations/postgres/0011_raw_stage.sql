-- Internal: the payloads of the larger pages, parsed into JSONB by the writer's second connection
-- while its first holds the write lock, then copied into raw_records by the commit that stores them
-- (`PostgresDestination::write`). Parsing is most of what the server does for a commit, and it needs
-- no lock; the copy reuses the values as parsed and compressed here.
--
-- Unlogged: nothing here is needed after a crash (a commit that did not finish left only rows that
-- nothing reads). A commit deletes its own rows; rows of commits that failed are deleted a day later
-- by the next writer to connect. A regular table, not a temporary one: the first connection must
-- read what the second wrote, and autovacuum cleans a regular table's deleted rows.
CREATE UNLOGGED TABLE growthflow_raw_stage (
    batch        BIGINT NOT NULL,
    record_id    TEXT NOT NULL,
    cursor_value TEXT,
    payload      JSONB NOT NULL,
    staged_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX growthflow_raw_stage_batch ON growthflow_raw_stage (batch);
CREATE SEQUENCE growthflow_raw_stage_batches;
