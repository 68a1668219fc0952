-- growthflow dataset, version 8: daily rollups of the journey model and a per-customer summary, so the
-- report over a long window reads days and customers instead of every order and event
-- (docs/performance.md). Internal tables: the report's definitions stay in core/src/report, which
-- also writes these rows (`refresh_rollups_sqlite`), so each metric keeps one definition.
--
-- Triggers note which days and customers a change touched (old and new values); the journey rebuild
-- recomputes those in its own transaction, and the report does it first if rows were written by hand.

-- Every journey event, summed per day and per what the report groups or filters by.
CREATE TABLE growthflow_rollup_events (
    date       TEXT NOT NULL,
    event_type TEXT NOT NULL,
    currency   TEXT,
    campaign   TEXT,
    channel    TEXT,
    -- `reported_purchases` only: attributes.platform as text.
    platform   TEXT,
    -- 1 for Klaviyo's attributed `placed_order` events, else 0.
    attributed INTEGER NOT NULL,
    records    INTEGER NOT NULL,
    quantity   REAL NOT NULL,
    -- Money as an integer of 10^-6 units (the report's exact sum).
    value      INTEGER NOT NULL,
    -- `ad_insights` only: attributes.clicks summed.
    clicks     REAL
);
CREATE INDEX growthflow_rollup_events_type_date ON growthflow_rollup_events (event_type, date, currency);

-- Valid store orders per UTC day of creation.
CREATE TABLE growthflow_rollup_orders (
    date         TEXT NOT NULL,
    currency     TEXT,
    utm_campaign TEXT,
    channel      TEXT,
    orders       INTEGER NOT NULL,
    revenue      INTEGER NOT NULL
);
CREATE INDEX growthflow_rollup_orders_date ON growthflow_rollup_orders (date);

-- Refunds of valid store orders per refund day, in the refund's currency else its order's.
CREATE TABLE growthflow_rollup_refunds (
    date     TEXT NOT NULL,
    currency TEXT,
    refunds  INTEGER NOT NULL,
    amount   INTEGER NOT NULL
);
CREATE INDEX growthflow_rollup_refunds_date ON growthflow_rollup_refunds (date);

-- Each customer's valid orders: first and last, and first and last of their repeat orders.
CREATE TABLE growthflow_rollup_customers (
    customer_id     TEXT PRIMARY KEY,
    first_at        TEXT NOT NULL,
    last_at         TEXT NOT NULL,
    first_repeat_at TEXT,
    last_repeat_at  TEXT
) WITHOUT ROWID;
CREATE INDEX growthflow_rollup_customers_last
    ON growthflow_rollup_customers (last_at, first_at, first_repeat_at, last_repeat_at);

-- Each customer's valid orders per currency key: first, last and the exact total (lifetime value).
CREATE TABLE growthflow_rollup_customer_currencies (
    customer_id TEXT NOT NULL,
    currency    TEXT NOT NULL,
    first_at    TEXT NOT NULL,
    last_at     TEXT NOT NULL,
    total       INTEGER NOT NULL,
    PRIMARY KEY (customer_id, currency)
) WITHOUT ROWID;
CREATE INDEX growthflow_rollup_customer_currencies_last
    ON growthflow_rollup_customer_currencies (currency, last_at, first_at, total);

-- What is to be recomputed.
CREATE TABLE growthflow_rollup_dirty_days (date TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE growthflow_rollup_dirty_customers (customer_id TEXT PRIMARY KEY) WITHOUT ROWID;

-- A changed order changes its refunds' rollup: find them by order without reading every refund.
CREATE INDEX journey_events_refund_order
    ON journey_events (source, CAST(json_extract(attributes, '$.order_id') AS TEXT))
    WHERE event_type = 'refund';

CREATE TRIGGER journey_events_rollup_insert AFTER INSERT ON journey_events
BEGIN
    INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date) VALUES (NEW.date);
END;
CREATE TRIGGER journey_events_rollup_delete AFTER DELETE ON journey_events
BEGIN
    INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date) VALUES (OLD.date);
END;
CREATE TRIGGER journey_events_rollup_update
AFTER UPDATE OF date, event_type, currency, campaign, channel, quantity, value, attributes, source
ON journey_events
WHEN OLD.date IS NOT NEW.date OR OLD.event_type IS NOT NEW.event_type
  OR OLD.currency IS NOT NEW.currency OR OLD.campaign IS NOT NEW.campaign
  OR OLD.channel IS NOT NEW.channel OR OLD.quantity IS NOT NEW.quantity
  OR OLD.value IS NOT NEW.value OR OLD.attributes IS NOT NEW.attributes
  OR OLD.source IS NOT NEW.source
BEGIN
    INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date) VALUES (OLD.date);
    INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date) VALUES (NEW.date);
END;

CREATE TRIGGER orders_rollup_insert AFTER INSERT ON orders
BEGIN
    INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date) VALUES (substr(NEW.created_at, 1, 10));
    INSERT OR IGNORE INTO growthflow_rollup_dirty_customers (customer_id)
        SELECT NEW.customer_id WHERE NEW.customer_id IS NOT NULL;
    INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date)
        SELECT date FROM journey_events
        WHERE event_type = 'refund' AND source = NEW.source
          AND CAST(json_extract(attributes, '$.order_id') AS TEXT) = NEW.order_id;
END;
CREATE TRIGGER orders_rollup_delete AFTER DELETE ON orders
BEGIN
    INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date) VALUES (substr(OLD.created_at, 1, 10));
    INSERT OR IGNORE INTO growthflow_rollup_dirty_customers (customer_id)
        SELECT OLD.customer_id WHERE OLD.customer_id IS NOT NULL;
    INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date)
        SELECT date FROM journey_events
        WHERE event_type = 'refund' AND source = OLD.source
          AND CAST(json_extract(attributes, '$.order_id') AS TEXT) = OLD.order_id;
END;
CREATE TRIGGER orders_rollup_update
AFTER UPDATE OF created_at, currency, total_price, cancelled, test, utm_campaign, channel, customer_id,
                customer_order_index, source, order_id
ON orders
WHEN OLD.created_at IS NOT NEW.created_at OR OLD.currency IS NOT NEW.currency
  OR OLD.total_price IS NOT NEW.total_price OR OLD.cancelled IS NOT NEW.cancelled
  OR OLD.test IS NOT NEW.test OR OLD.utm_campaign IS NOT NEW.utm_campaign
  OR OLD.channel IS NOT NEW.channel OR OLD.customer_id IS NOT NEW.customer_id
  OR OLD.customer_order_index IS NOT NEW.customer_order_index
  OR OLD.source IS NOT NEW.source OR OLD.order_id IS NOT NEW.order_id
BEGIN
    INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date) VALUES (substr(OLD.created_at, 1, 10));
    INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date) VALUES (substr(NEW.created_at, 1, 10));
    INSERT OR IGNORE INTO growthflow_rollup_dirty_customers (customer_id)
        SELECT OLD.customer_id WHERE OLD.customer_id IS NOT NULL;
    INSERT OR IGNORE INTO growthflow_rollup_dirty_customers (customer_id)
        SELECT NEW.customer_id WHERE NEW.customer_id IS NOT NULL;
    INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date)
        SELECT date FROM journey_events
        WHERE event_type = 'refund' AND source = OLD.source
          AND CAST(json_extract(attributes, '$.order_id') AS TEXT) = OLD.order_id;
    INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date)
        SELECT date FROM journey_events
        WHERE event_type = 'refund' AND source = NEW.source
          AND CAST(json_extract(attributes, '$.order_id') AS TEXT) = NEW.order_id;
END;

-- An existing dataset: everything is to be computed (the migration runner then refreshes, in the
-- migration's transaction).
INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date) SELECT DISTINCT date FROM journey_events;
INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date)
    SELECT DISTINCT substr(created_at, 1, 10) FROM orders;
INSERT OR IGNORE INTO growthflow_rollup_dirty_customers (customer_id)
    SELECT DISTINCT customer_id FROM orders WHERE customer_id IS NOT NULL;
