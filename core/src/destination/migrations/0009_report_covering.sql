-- growthflow dataset, version 9: covering indexes on the report's rollups (docs/performance.md,
-- "Covering indexes and counts (migration 0009)"). SQLite reads a rollup through an index that holds
-- every column the report's query reads, so it never looks the rows up in the table, and in the order
-- the query groups by, so it never sorts. Each replaces the index of 0008 that was its prefix.

-- Event totals, Meta clicks, email-attributed revenue, reported purchases and the campaign queries: a
-- seek on the type and the window's days, grouped per type, day and currency in index order.
DROP INDEX growthflow_rollup_events_type_date;
CREATE INDEX growthflow_rollup_events_report ON growthflow_rollup_events
    (event_type, date, currency, attributed, campaign, channel, platform, records, quantity, value,
     clicks);

-- Orders per currency and the campaigns' orders: the window's days, index-only.
DROP INDEX growthflow_rollup_orders_date;
CREATE INDEX growthflow_rollup_orders_report ON growthflow_rollup_orders
    (date, currency, utm_campaign, channel, orders, revenue);

-- Refunds per currency: the window's days, index-only.
DROP INDEX growthflow_rollup_refunds_date;
CREATE INDEX growthflow_rollup_refunds_report ON growthflow_rollup_refunds
    (date, currency, refunds, amount);

-- Repeat customers: those whose last repeat order is in the window are counted from this index alone
-- (as customers are from growthflow_rollup_customers_last).
CREATE INDEX growthflow_rollup_customers_repeat
    ON growthflow_rollup_customers (last_repeat_at, first_repeat_at);
