-- growthflow dataset, version 6. SQLite's version 6 turns its `raw_records` from a WITHOUT ROWID table
-- into a rowid table with a UNIQUE key, so that large payloads stop spilling out of the key's B-tree.
-- PostgreSQL's `raw_records` already is a heap table with a separate primary-key index (large payloads
-- go to TOAST), so nothing changes here; the version exists so that both stores keep the same numbers.
SELECT 1;
