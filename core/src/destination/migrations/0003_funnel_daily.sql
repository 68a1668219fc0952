-- growthflow dataset, version 3: `funnel_daily`, the Growth Flow report's additive numbers by day,
-- channel and currency, so a BI tool can chart the funnel without SQL of its own (docs/dataset.md).
-- Same definitions as the report (docs/report.md): valid orders only, a refund counts when its order is
-- valid and is in its own currency else its order's, Klaviyo's placed orders only when attributed.
-- Money is summed as integers of 10^-6 (the precision the dataset keeps) and divided once, so each sum is
-- the double nearest the exact decimal total.
CREATE VIEW funnel_daily AS
WITH facts (date, channel, currency, kind, qty, money, clicks) AS (
    -- The platforms' events; a row that carries neither money nor a currency has no currency.
    SELECT date, channel,
           CASE WHEN value IS NOT NULL OR NULLIF(trim(currency), '') IS NOT NULL
                THEN COALESCE(NULLIF(upper(trim(currency)), ''), 'unknown') END,
           CASE WHEN event_type = 'reported_purchases'
                THEN 'reported:' || lower(trim(CAST(json_extract(attributes, '$.platform') AS TEXT)))
                ELSE event_type END,
           quantity, value,
           CASE WHEN event_type = 'ad_insights' THEN CAST(json_extract(attributes, '$.clicks') AS REAL) END
    FROM journey_events
    WHERE event_type IN ('ad_insights', 'sessions', 'new_users', 'engaged_sessions', 'add_to_carts',
                         'checkouts_started', 'email_opened', 'email_clicked', 'checkout_abandoned',
                         'reported_purchases')
       OR (event_type = 'placed_order' AND json_extract(attributes, '$.attributed') IN (1, 'true'))
    UNION ALL
    -- Valid store orders, on the UTC date they were created.
    SELECT substr(created_at, 1, 10), channel, COALESCE(NULLIF(upper(trim(currency)), ''), 'unknown'), 'order', 1, total_price, NULL
    FROM orders
    WHERE cancelled = 0 AND test = 0
    UNION ALL
    -- Refunds of valid orders, on the refund's date, in the order's channel.
    SELECT e.date, COALESCE(o.channel, e.channel),
           COALESCE(NULLIF(upper(trim(COALESCE(NULLIF(trim(e.currency), ''), o.currency))), ''), 'unknown'), 'refund', 1, e.value, NULL
    FROM journey_events e
    JOIN orders o ON o.source = e.source AND o.order_id = CAST(json_extract(e.attributes, '$.order_id') AS TEXT)
    WHERE e.event_type = 'refund' AND o.cancelled = 0 AND o.test = 0
)
SELECT date, channel, currency,
       CAST(ROUND(SUM(CASE WHEN kind = 'ad_insights' THEN qty ELSE 0 END)) AS INTEGER) AS impressions,
       CAST(ROUND(SUM(CASE WHEN kind = 'ad_insights' THEN COALESCE(clicks, 0) ELSE 0 END)) AS INTEGER) AS clicks,
       CAST(SUM(CASE WHEN kind = 'ad_insights' THEN CAST(ROUND(COALESCE(money, 0) * 1000000) AS INTEGER) ELSE 0 END) AS REAL) / 1000000 AS spend,
       CAST(ROUND(SUM(CASE WHEN kind = 'sessions' THEN qty ELSE 0 END)) AS INTEGER) AS sessions,
       CAST(ROUND(SUM(CASE WHEN kind = 'new_users' THEN qty ELSE 0 END)) AS INTEGER) AS new_users,
       CAST(ROUND(SUM(CASE WHEN kind = 'engaged_sessions' THEN qty ELSE 0 END)) AS INTEGER) AS engaged_sessions,
       CAST(ROUND(SUM(CASE WHEN kind = 'add_to_carts' THEN qty ELSE 0 END)) AS INTEGER) AS add_to_carts,
       CAST(ROUND(SUM(CASE WHEN kind = 'checkouts_started' THEN qty ELSE 0 END)) AS INTEGER) AS checkouts_started,
       CAST(ROUND(SUM(CASE WHEN kind = 'email_opened' THEN qty ELSE 0 END)) AS INTEGER) AS email_opens,
       CAST(ROUND(SUM(CASE WHEN kind = 'email_clicked' THEN qty ELSE 0 END)) AS INTEGER) AS email_clicks,
       CAST(ROUND(SUM(CASE WHEN kind = 'order' THEN 1 ELSE 0 END)) AS INTEGER) AS orders,
       CAST(SUM(CASE WHEN kind = 'order' THEN CAST(ROUND(COALESCE(money, 0) * 1000000) AS INTEGER) ELSE 0 END) AS REAL) / 1000000 AS revenue,
       CAST(ROUND(SUM(CASE WHEN kind = 'checkout_abandoned' THEN 1 ELSE 0 END)) AS INTEGER) AS abandoned_checkouts,
       CAST(ROUND(SUM(CASE WHEN kind = 'refund' THEN 1 ELSE 0 END)) AS INTEGER) AS refunds,
       CAST(SUM(CASE WHEN kind = 'refund' THEN CAST(ROUND(COALESCE(money, 0) * 1000000) AS INTEGER) ELSE 0 END) AS REAL) / 1000000 AS refunded_amount,
       CAST(ROUND(SUM(CASE WHEN kind = 'placed_order' THEN 1 ELSE 0 END)) AS INTEGER) AS email_attributed_orders,
       CAST(SUM(CASE WHEN kind = 'placed_order' THEN CAST(ROUND(COALESCE(money, 0) * 1000000) AS INTEGER) ELSE 0 END) AS REAL) / 1000000 AS email_attributed_revenue,
       CAST(ROUND(SUM(CASE WHEN kind = 'reported:meta_ads' THEN qty ELSE 0 END)) AS INTEGER) AS reported_purchases_meta_ads,
       CAST(ROUND(SUM(CASE WHEN kind = 'reported:ga4' THEN qty ELSE 0 END)) AS INTEGER) AS reported_purchases_ga4
FROM facts
GROUP BY date, channel, currency;

-- The default window's latest event date (max(date)) and the events-with-money currency fallback read events
-- by date alone: without this index both scanned the whole table.
CREATE INDEX journey_events_date ON journey_events (date);
