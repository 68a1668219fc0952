-- growthflow dataset, version 6: `raw_records` becomes an ordinary (rowid) table with a UNIQUE key.
-- As a WITHOUT ROWID table each record's 2-3 KB JSON payload lived inside the primary-key B-tree, whose
-- cells SQLite keeps small (it advises against WITHOUT ROWID for rows over ~1/20 of a page): records
-- spilled into overflow pages and every upsert read and rewrote a dozen pages. In a rowid table the
-- payload sits in the table's leaves and only the short key is in the index. Same columns, same key,
-- same rows: the copy below keeps every record of an existing dataset.
CREATE TABLE raw_records_v6 (
    source       TEXT NOT NULL,
    stream       TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    cursor_value TEXT,
    payload      TEXT NOT NULL,
    synced_at    TEXT NOT NULL,
    UNIQUE (source, stream, record_id)
);
INSERT INTO raw_records_v6 (source, stream, record_id, cursor_value, payload, synced_at)
    SELECT source, stream, record_id, cursor_value, payload, synced_at
    FROM raw_records ORDER BY source, stream, record_id;
DROP TABLE raw_records;
ALTER TABLE raw_records_v6 RENAME TO raw_records;
CREATE INDEX raw_records_synced_at ON raw_records (synced_at);
