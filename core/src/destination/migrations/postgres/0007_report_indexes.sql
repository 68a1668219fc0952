-- growthflow dataset, version 7 (PostgreSQL; in step with ../0007_report_indexes.sql): indexes for the
-- report over a large dataset (docs/performance.md shows the plans). Each one lets a report query run as an
-- index-only scan of the window instead of reading every row of it from the table.

-- Every journey_events query of the report: the window (event_type, date) first, then what the queries
-- group by and sum. It starts with the columns of journey_events_type_date, which it replaces.
CREATE INDEX journey_events_report
    ON journey_events (event_type, date, currency, campaign, channel, quantity, value);
DROP INDEX journey_events_type_date;

-- Klaviyo's attributed "Placed Order" events: the attribution sits in the JSONB attributes, so without
-- this every placed order of the window was read from the table.
CREATE INDEX journey_events_attributed
    ON journey_events (event_type, date, currency, campaign, value)
    WHERE event_type = 'placed_order' AND (attributes ->> 'attributed') IN ('true', '1');

-- The window's orders: everything the report's order queries read. It replaces orders_created_at.
CREATE INDEX orders_report
    ON orders (created_at, cancelled, test, currency, total_price, customer_id, customer_order_index,
               utm_campaign, channel);
DROP INDEX orders_created_at;

-- Lifetime value sums each of the window's customers' orders up to `until`: by customer, with what is summed.
-- It replaces orders_customer, whose columns it starts with.
CREATE INDEX orders_customer_report
    ON orders (customer_id, created_at, cancelled, test, currency, total_price);
DROP INDEX orders_customer;
