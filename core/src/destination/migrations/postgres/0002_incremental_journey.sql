-- Internal bookkeeping that lets the journey model be rebuilt from the raw records that changed since the
-- last rebuild instead of from all of them (PostgreSQL; in step with ../0002_incremental_journey.sql).
-- None of it is part of the contract.

-- What each raw record put into the model: its events' ids and its orders' ids (JSON arrays), so that a
-- changed or removed record's rows can be taken out exactly.
CREATE TABLE growthflow_derived (
    source    TEXT NOT NULL,
    stream    TEXT NOT NULL,
    record_id TEXT NOT NULL,
    events    JSONB NOT NULL DEFAULT '[]',
    orders    JSONB NOT NULL DEFAULT '[]',
    PRIMARY KEY (source, stream, record_id)
);

-- People a record names without an order or an event (customer and profile records), with when the
-- platform first saw them: they count towards `customers.first_seen_at`.
CREATE TABLE growthflow_people (
    source      TEXT NOT NULL,
    stream      TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    seen_at     TIMESTAMPTZ
);
CREATE INDEX growthflow_people_record ON growthflow_people (source, stream, record_id);
CREATE INDEX growthflow_people_customer ON growthflow_people (customer_id);

-- Raw records deleted since the last rebuild (a re-read partition replaced them).
CREATE TABLE growthflow_removed (
    source    TEXT NOT NULL,
    stream    TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (source, stream, record_id)
);

-- When the model was last rebuilt (records synced at or after it are mapped again) and for which sources
-- and mappers (any change there rebuilds everything).
CREATE TABLE growthflow_journey (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL,
    watermark   TIMESTAMPTZ NOT NULL
);

CREATE INDEX raw_records_synced_at ON raw_records (synced_at);
CREATE INDEX journey_events_customer ON journey_events (customer_id);
