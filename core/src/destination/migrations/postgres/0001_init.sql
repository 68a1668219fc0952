-- growthflow dataset, version 1 (PostgreSQL): the contract's tables plus one internal one. Kept in step
-- with ../0001_init.sql (SQLite): same tables, same columns in the same order, the store's own types.
CREATE TABLE raw_records (
    source       TEXT NOT NULL,
    stream       TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    cursor_value TEXT,
    payload      JSONB NOT NULL,
    synced_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, stream, record_id)
);

CREATE TABLE sync_state (
    source     TEXT NOT NULL,
    stream     TEXT NOT NULL,
    state      JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, stream)
);

CREATE TABLE customers (
    customer_id    TEXT PRIMARY KEY,
    email          TEXT NOT NULL,
    first_seen_at  TIMESTAMPTZ,
    first_order_at TIMESTAMPTZ,
    orders_count   INTEGER NOT NULL DEFAULT 0,
    total_spent    NUMERIC NOT NULL DEFAULT 0
);

CREATE TABLE orders (
    source               TEXT NOT NULL,
    order_id             TEXT NOT NULL,
    customer_id          TEXT,
    email                TEXT,
    created_at           TIMESTAMPTZ NOT NULL,
    currency             TEXT,
    total_price          NUMERIC NOT NULL DEFAULT 0,
    subtotal_price       NUMERIC,
    total_discounts      NUMERIC,
    total_refunded       NUMERIC NOT NULL DEFAULT 0,
    financial_status     TEXT,
    cancelled            BOOLEAN NOT NULL DEFAULT FALSE,
    test                 BOOLEAN NOT NULL DEFAULT FALSE,
    utm_source           TEXT,
    utm_medium           TEXT,
    utm_campaign         TEXT,
    channel              TEXT,
    landing_page         TEXT,
    referrer             TEXT,
    customer_order_index INTEGER,
    PRIMARY KEY (source, order_id)
);
CREATE INDEX orders_created_at ON orders (created_at);
CREATE INDEX orders_customer ON orders (customer_id, created_at);

CREATE TABLE journey_events (
    event_id    TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    stream      TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    date        DATE NOT NULL,
    stage       TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    channel     TEXT,
    campaign    TEXT,
    customer_id TEXT,
    quantity    NUMERIC NOT NULL DEFAULT 1,
    value       NUMERIC,
    currency    TEXT,
    attributes  JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX journey_events_type_date ON journey_events (event_type, date);

-- Internal: which connector type each source name is, so the journey model can be rebuilt from raw_records.
CREATE TABLE growthflow_sources (
    source TEXT PRIMARY KEY,
    type   TEXT NOT NULL
);
