-- growthflow dataset, version 7: indexes for the report over a large dataset (docs/performance.md shows the
-- plans). Each one lets a report query read an index alone, in the order its GROUP BY needs, instead of
-- looking every row of the window up in the table and sorting it.

-- Every journey_events query of the report: the window (event_type, date) first, then what the queries
-- group by and sum. It starts with the columns of journey_events_type_date, which it replaces.
CREATE INDEX journey_events_report
    ON journey_events (event_type, date, currency, campaign, channel, quantity, value);
DROP INDEX journey_events_type_date;

-- Klaviyo's attributed "Placed Order" events (email_attributed_revenue, reported_purchases.klaviyo and the
-- campaigns they name): the attribution sits in the JSON attributes, so without this every placed order of
-- the window was read from the table.
CREATE INDEX journey_events_attributed
    ON journey_events (event_type, date, currency, campaign, value)
    WHERE event_type = 'placed_order' AND json_extract(attributes, '$.attributed') IN (1, 'true');

-- The window's orders (orders, revenue, customers, repeat customers, the campaigns' orders): everything
-- those queries read, so no order is looked up in the table. It replaces orders_created_at.
CREATE INDEX orders_report
    ON orders (created_at, cancelled, test, currency, total_price, customer_id, customer_order_index,
               utm_campaign, channel);
DROP INDEX orders_created_at;

-- Lifetime value sums each of the window's customers' orders up to `until`: by customer, with what is summed.
-- It replaces orders_customer, whose columns it starts with.
CREATE INDEX orders_customer_report
    ON orders (customer_id, created_at, cancelled, test, currency, total_price);
DROP INDEX orders_customer;
