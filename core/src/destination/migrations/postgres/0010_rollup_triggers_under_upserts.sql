-- growthflow dataset, version 10. SQLite's version 10 rewrites its rollup triggers, which failed under
-- upserts (see ../0010_rollup_triggers_under_upserts.sql). PostgreSQL's statement triggers insert with
-- `ON CONFLICT DO NOTHING`, which holds inside any statement, so nothing changes here; the version
-- exists so that both stores keep the same numbers.
SELECT 1;
