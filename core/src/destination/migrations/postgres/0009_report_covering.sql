-- growthflow dataset, version 9 (PostgreSQL; in step with ../0009_report_covering.sql). SQLite's
-- version 9 makes its rollups' indexes covering; PostgreSQL hashes its groups and reads these small
-- tables fast as they are, so only the index the repeat-customer count seeks on is added here (the
-- report's queries are the same text for both stores).
CREATE INDEX growthflow_rollup_customers_repeat
    ON growthflow_rollup_customers (last_repeat_at, first_repeat_at);
