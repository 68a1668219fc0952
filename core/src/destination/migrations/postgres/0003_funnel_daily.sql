-- growthflow dataset, version 3 (PostgreSQL; in step with ../0003_funnel_daily.sql): `funnel_daily`,
-- the Growth Flow report's additive numbers by day, channel and currency, so a BI tool can chart the
-- funnel without SQL of its own. Money is NUMERIC, summed exactly; dates are DATE.
CREATE VIEW funnel_daily AS
WITH facts (date, channel, currency, kind, qty, money, clicks) AS (
    -- The platforms' events; a row that carries neither money nor a currency has no currency.
    SELECT date, channel,
           CASE WHEN value IS NOT NULL OR NULLIF(trim(currency), '') IS NOT NULL
                THEN COALESCE(NULLIF(upper(trim(currency)), ''), 'unknown') END,
           CASE WHEN event_type = 'reported_purchases'
                THEN 'reported:' || lower(trim(CAST((attributes ->> 'platform') AS TEXT)))
                ELSE event_type END,
           quantity, value,
           CASE WHEN event_type = 'ad_insights'
                 AND (attributes ->> 'clicks') ~ '^\s*[-+]?[0-9]+(\.[0-9]*)?\s*$'
                THEN CAST(trim(attributes ->> 'clicks') AS NUMERIC) END
    FROM journey_events
    WHERE event_type IN ('ad_insights', 'sessions', 'new_users', 'engaged_sessions', 'add_to_carts',
                         'checkouts_started', 'email_opened', 'email_clicked', 'checkout_abandoned',
                         'reported_purchases')
       OR (event_type = 'placed_order' AND (attributes ->> 'attributed') IN ('true', '1'))
    UNION ALL
    -- Valid store orders, on the UTC date they were created.
    SELECT (created_at AT TIME ZONE 'UTC')::date, channel, COALESCE(NULLIF(upper(trim(currency)), ''), 'unknown'), 'order', 1, total_price, NULL
    FROM orders
    WHERE NOT cancelled AND NOT test
    UNION ALL
    -- Refunds of valid orders, on the refund's date, in the order's channel.
    SELECT e.date, COALESCE(o.channel, e.channel),
           COALESCE(NULLIF(upper(trim(COALESCE(NULLIF(trim(e.currency), ''), o.currency))), ''), 'unknown'), 'refund', 1, e.value, NULL
    FROM journey_events e
    JOIN orders o ON o.source = e.source AND o.order_id = CAST((e.attributes ->> 'order_id') AS TEXT)
    WHERE e.event_type = 'refund' AND NOT o.cancelled AND NOT o.test
)
SELECT date, channel, currency,
       CAST(ROUND(SUM(CASE WHEN kind = 'ad_insights' THEN qty ELSE 0 END)) AS BIGINT) AS impressions,
       CAST(ROUND(SUM(CASE WHEN kind = 'ad_insights' THEN COALESCE(clicks, 0) ELSE 0 END)) AS BIGINT) AS clicks,
       SUM(CASE WHEN kind = 'ad_insights' THEN COALESCE(money, 0) ELSE 0 END) AS spend,
       CAST(ROUND(SUM(CASE WHEN kind = 'sessions' THEN qty ELSE 0 END)) AS BIGINT) AS sessions,
       CAST(ROUND(SUM(CASE WHEN kind = 'new_users' THEN qty ELSE 0 END)) AS BIGINT) AS new_users,
       CAST(ROUND(SUM(CASE WHEN kind = 'engaged_sessions' THEN qty ELSE 0 END)) AS BIGINT) AS engaged_sessions,
       CAST(ROUND(SUM(CASE WHEN kind = 'add_to_carts' THEN qty ELSE 0 END)) AS BIGINT) AS add_to_carts,
       CAST(ROUND(SUM(CASE WHEN kind = 'checkouts_started' THEN qty ELSE 0 END)) AS BIGINT) AS checkouts_started,
       CAST(ROUND(SUM(CASE WHEN kind = 'email_opened' THEN qty ELSE 0 END)) AS BIGINT) AS email_opens,
       CAST(ROUND(SUM(CASE WHEN kind = 'email_clicked' THEN qty ELSE 0 END)) AS BIGINT) AS email_clicks,
       CAST(ROUND(SUM(CASE WHEN kind = 'order' THEN 1 ELSE 0 END)) AS BIGINT) AS orders,
       SUM(CASE WHEN kind = 'order' THEN COALESCE(money, 0) ELSE 0 END) AS revenue,
       CAST(ROUND(SUM(CASE WHEN kind = 'checkout_abandoned' THEN 1 ELSE 0 END)) AS BIGINT) AS abandoned_checkouts,
       CAST(ROUND(SUM(CASE WHEN kind = 'refund' THEN 1 ELSE 0 END)) AS BIGINT) AS refunds,
       SUM(CASE WHEN kind = 'refund' THEN COALESCE(money, 0) ELSE 0 END) AS refunded_amount,
       CAST(ROUND(SUM(CASE WHEN kind = 'placed_order' THEN 1 ELSE 0 END)) AS BIGINT) AS email_attributed_orders,
       SUM(CASE WHEN kind = 'placed_order' THEN COALESCE(money, 0) ELSE 0 END) AS email_attributed_revenue,
       CAST(ROUND(SUM(CASE WHEN kind = 'reported:meta_ads' THEN qty ELSE 0 END)) AS BIGINT) AS reported_purchases_meta_ads,
       CAST(ROUND(SUM(CASE WHEN kind = 'reported:ga4' THEN qty ELSE 0 END)) AS BIGINT) AS reported_purchases_ga4
FROM facts
GROUP BY date, channel, currency;

-- Indexes for the report and for this view over a window (EXPLAIN showed whole-table scans without them):
-- the default window's latest event date and the events-with-money currency fallback read events by date
-- alone; the view's orders are filtered on their UTC creation date.
CREATE INDEX journey_events_date ON journey_events (date);
CREATE INDEX orders_created_date ON orders (((created_at AT TIME ZONE 'UTC')::date));
