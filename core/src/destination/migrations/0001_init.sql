-- growthflow dataset, version 1: the contract's tables plus two internal ones.
CREATE TABLE raw_records (
    source       TEXT NOT NULL,
    stream       TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    cursor_value TEXT,
    payload      TEXT NOT NULL,
    synced_at    TEXT NOT NULL,
    PRIMARY KEY (source, stream, record_id)
) WITHOUT ROWID;

CREATE TABLE sync_state (
    source     TEXT NOT NULL,
    stream     TEXT NOT NULL,
    state      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (source, stream)
) WITHOUT ROWID;

CREATE TABLE customers (
    customer_id    TEXT PRIMARY KEY,
    email          TEXT NOT NULL,
    first_seen_at  TEXT,
    first_order_at TEXT,
    orders_count   INTEGER NOT NULL DEFAULT 0,
    total_spent    REAL NOT NULL DEFAULT 0
);

CREATE TABLE orders (
    source               TEXT NOT NULL,
    order_id             TEXT NOT NULL,
    customer_id          TEXT,
    email                TEXT,
    created_at           TEXT NOT NULL,
    currency             TEXT,
    total_price          REAL NOT NULL DEFAULT 0,
    subtotal_price       REAL,
    total_discounts      REAL,
    total_refunded       REAL NOT NULL DEFAULT 0,
    financial_status     TEXT,
    cancelled            INTEGER NOT NULL DEFAULT 0,
    test                 INTEGER NOT NULL DEFAULT 0,
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
    occurred_at TEXT NOT NULL,
    date        TEXT NOT NULL,
    stage       TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    channel     TEXT,
    campaign    TEXT,
    customer_id TEXT,
    quantity    REAL NOT NULL DEFAULT 1,
    value       REAL,
    currency    TEXT,
    attributes  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX journey_events_type_date ON journey_events (event_type, date);

-- Internal: which connector type each source name is, so the journey model can be rebuilt from raw_records.
CREATE TABLE growthflow_sources (
    source TEXT PRIMARY KEY,
    type   TEXT NOT NULL
);
