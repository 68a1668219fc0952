-- growthflow dataset, version 8 (PostgreSQL; in step with ../0008_report_rollups.sql): daily rollups of
-- the journey model and a per-customer summary, so the report over a long window reads days and
-- customers instead of every order and event (docs/performance.md). Internal tables: the report's
-- definitions stay in core/src/report, which also writes these rows (`refresh_rollups_postgres`).
--
-- Statement triggers (with transition tables, one set-based insert per statement, COPY included) note
-- which days and customers a change touched, old and new; the journey rebuild recomputes those in its
-- own transaction, and the report does it first if rows were written by hand. The functions keep the
-- dataset's schema as their search_path, whoever writes.

CREATE TABLE growthflow_rollup_events (
    date       DATE NOT NULL,
    event_type TEXT NOT NULL,
    currency   TEXT,
    campaign   TEXT,
    channel    TEXT,
    platform   TEXT,
    attributed INTEGER NOT NULL,
    records    INTEGER NOT NULL,
    quantity   NUMERIC NOT NULL,
    value      NUMERIC NOT NULL,
    clicks     NUMERIC
);
CREATE INDEX growthflow_rollup_events_type_date ON growthflow_rollup_events (event_type, date, currency);

CREATE TABLE growthflow_rollup_orders (
    date         DATE NOT NULL,
    currency     TEXT,
    utm_campaign TEXT,
    channel      TEXT,
    orders       INTEGER NOT NULL,
    revenue      NUMERIC NOT NULL
);
CREATE INDEX growthflow_rollup_orders_date ON growthflow_rollup_orders (date);

CREATE TABLE growthflow_rollup_refunds (
    date     DATE NOT NULL,
    currency TEXT,
    refunds  INTEGER NOT NULL,
    amount   NUMERIC NOT NULL
);
CREATE INDEX growthflow_rollup_refunds_date ON growthflow_rollup_refunds (date);

CREATE TABLE growthflow_rollup_customers (
    customer_id     TEXT PRIMARY KEY,
    first_at        TIMESTAMPTZ NOT NULL,
    last_at         TIMESTAMPTZ NOT NULL,
    first_repeat_at TIMESTAMPTZ,
    last_repeat_at  TIMESTAMPTZ
);
CREATE INDEX growthflow_rollup_customers_last
    ON growthflow_rollup_customers (last_at, first_at, first_repeat_at, last_repeat_at);

CREATE TABLE growthflow_rollup_customer_currencies (
    customer_id TEXT NOT NULL,
    currency    TEXT NOT NULL,
    first_at    TIMESTAMPTZ NOT NULL,
    last_at     TIMESTAMPTZ NOT NULL,
    total       NUMERIC NOT NULL,
    PRIMARY KEY (customer_id, currency)
);
CREATE INDEX growthflow_rollup_customer_currencies_last
    ON growthflow_rollup_customer_currencies (currency, last_at, first_at, total);

CREATE TABLE growthflow_rollup_dirty_days (date DATE PRIMARY KEY);
CREATE TABLE growthflow_rollup_dirty_customers (customer_id TEXT PRIMARY KEY);

CREATE INDEX journey_events_refund_order
    ON journey_events (source, (attributes ->> 'order_id'))
    WHERE event_type = 'refund';

CREATE FUNCTION growthflow_rollup_events_inserted() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO growthflow_rollup_dirty_days (date) SELECT DISTINCT date FROM gf_new
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE FUNCTION growthflow_rollup_events_deleted() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO growthflow_rollup_dirty_days (date) SELECT DISTINCT date FROM gf_old
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
-- Transition tables have no index: a nested loop between the old and new rows would be
-- quadratic in the rows one statement updates (a full rebuild updates them all).
CREATE FUNCTION growthflow_rollup_events_updated() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT SET enable_nestloop = off AS $$
BEGIN
    INSERT INTO growthflow_rollup_dirty_days (date)
    SELECT DISTINCT v.date
    FROM gf_old o JOIN gf_new n ON n.event_id = o.event_id
    CROSS JOIN LATERAL (VALUES (o.date), (n.date)) v(date)
    WHERE (o.date, o.event_type, o.currency, o.campaign, o.channel, o.quantity, o.value, o.attributes,
           o.source)
          IS DISTINCT FROM
          (n.date, n.event_type, n.currency, n.campaign, n.channel, n.quantity, n.value, n.attributes,
           n.source)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER journey_events_rollup_insert AFTER INSERT ON journey_events
    REFERENCING NEW TABLE AS gf_new FOR EACH STATEMENT
    EXECUTE FUNCTION growthflow_rollup_events_inserted();
CREATE TRIGGER journey_events_rollup_delete AFTER DELETE ON journey_events
    REFERENCING OLD TABLE AS gf_old FOR EACH STATEMENT
    EXECUTE FUNCTION growthflow_rollup_events_deleted();
CREATE TRIGGER journey_events_rollup_update AFTER UPDATE ON journey_events
    REFERENCING OLD TABLE AS gf_old NEW TABLE AS gf_new FOR EACH STATEMENT
    EXECUTE FUNCTION growthflow_rollup_events_updated();

-- The days, customers and refund days of the orders a statement wrote.
CREATE FUNCTION growthflow_rollup_orders_inserted() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO growthflow_rollup_dirty_days (date)
    SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM gf_new
    UNION
    SELECT e.date FROM gf_new n JOIN journey_events e
        ON e.event_type = 'refund' AND e.source = n.source AND (e.attributes ->> 'order_id') = n.order_id
    ON CONFLICT DO NOTHING;
    INSERT INTO growthflow_rollup_dirty_customers (customer_id)
    SELECT DISTINCT customer_id FROM gf_new WHERE customer_id IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE FUNCTION growthflow_rollup_orders_deleted() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO growthflow_rollup_dirty_days (date)
    SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM gf_old
    UNION
    SELECT e.date FROM gf_old o JOIN journey_events e
        ON e.event_type = 'refund' AND e.source = o.source AND (e.attributes ->> 'order_id') = o.order_id
    ON CONFLICT DO NOTHING;
    INSERT INTO growthflow_rollup_dirty_customers (customer_id)
    SELECT DISTINCT customer_id FROM gf_old WHERE customer_id IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
-- Transition tables have no index: a nested loop between the old and new rows would be
-- quadratic in the rows one statement updates (a full rebuild updates them all).
CREATE FUNCTION growthflow_rollup_orders_updated() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT SET enable_nestloop = off AS $$
BEGIN
    -- The old and new versions of the orders whose reported columns changed.
    WITH changed AS (
        SELECT v.source, v.order_id, v.created_at
        FROM gf_old o JOIN gf_new n ON n.source = o.source AND n.order_id = o.order_id
        CROSS JOIN LATERAL (VALUES (o.source, o.order_id, o.created_at),
                                   (n.source, n.order_id, n.created_at)) v(source, order_id, created_at)
        WHERE (o.created_at, o.currency, o.total_price, o.cancelled, o.test, o.utm_campaign, o.channel,
               o.customer_id, o.customer_order_index)
              IS DISTINCT FROM
              (n.created_at, n.currency, n.total_price, n.cancelled, n.test, n.utm_campaign, n.channel,
               n.customer_id, n.customer_order_index))
    INSERT INTO growthflow_rollup_dirty_days (date)
    SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM changed
    UNION
    SELECT e.date FROM changed c JOIN journey_events e
        ON e.event_type = 'refund' AND e.source = c.source AND (e.attributes ->> 'order_id') = c.order_id
    ON CONFLICT DO NOTHING;
    INSERT INTO growthflow_rollup_dirty_customers (customer_id)
    SELECT DISTINCT v.customer_id
    FROM gf_old o JOIN gf_new n ON n.source = o.source AND n.order_id = o.order_id
    CROSS JOIN LATERAL (VALUES (o.customer_id), (n.customer_id)) v(customer_id)
    WHERE v.customer_id IS NOT NULL
      AND (o.created_at, o.currency, o.total_price, o.cancelled, o.test, o.customer_id,
           o.customer_order_index)
          IS DISTINCT FROM
          (n.created_at, n.currency, n.total_price, n.cancelled, n.test, n.customer_id,
           n.customer_order_index)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_rollup_insert AFTER INSERT ON orders
    REFERENCING NEW TABLE AS gf_new FOR EACH STATEMENT
    EXECUTE FUNCTION growthflow_rollup_orders_inserted();
CREATE TRIGGER orders_rollup_delete AFTER DELETE ON orders
    REFERENCING OLD TABLE AS gf_old FOR EACH STATEMENT
    EXECUTE FUNCTION growthflow_rollup_orders_deleted();
CREATE TRIGGER orders_rollup_update AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS gf_old NEW TABLE AS gf_new FOR EACH STATEMENT
    EXECUTE FUNCTION growthflow_rollup_orders_updated();

-- An existing dataset: everything is to be computed (the migration runner then refreshes, in the
-- migration's transaction).
INSERT INTO growthflow_rollup_dirty_days (date)
SELECT DISTINCT date FROM journey_events
UNION
SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM orders
ON CONFLICT DO NOTHING;
INSERT INTO growthflow_rollup_dirty_customers (customer_id)
SELECT DISTINCT customer_id FROM orders WHERE customer_id IS NOT NULL
ON CONFLICT DO NOTHING;
