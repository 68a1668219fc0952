-- growthflow dataset, version 10. The rollup triggers of version 8 noted a changed day or customer
-- with `INSERT OR IGNORE`; but a trigger fired by an upsert (`INSERT … ON CONFLICT DO UPDATE`, which
-- the journey rebuild uses) takes the outer statement's conflict handling instead of its own, so an
-- upsert that changed an existing row failed on a day already noted ("UNIQUE constraint failed:
-- growthflow_rollup_dirty_days.date"): two records naming one order, or one record giving an event
-- key twice, failed the rebuild. The same triggers, noting only what is not noted yet, so that no
-- conflict arises whatever the outer statement says.

DROP TRIGGER journey_events_rollup_insert;
DROP TRIGGER journey_events_rollup_delete;
DROP TRIGGER journey_events_rollup_update;
DROP TRIGGER orders_rollup_insert;
DROP TRIGGER orders_rollup_delete;
DROP TRIGGER orders_rollup_update;

CREATE TRIGGER journey_events_rollup_insert AFTER INSERT ON journey_events
BEGIN
    INSERT INTO growthflow_rollup_dirty_days (date)
        SELECT NEW.date WHERE NOT EXISTS (
            SELECT 1 FROM growthflow_rollup_dirty_days WHERE date = NEW.date);
END;
CREATE TRIGGER journey_events_rollup_delete AFTER DELETE ON journey_events
BEGIN
    INSERT INTO growthflow_rollup_dirty_days (date)
        SELECT OLD.date WHERE NOT EXISTS (
            SELECT 1 FROM growthflow_rollup_dirty_days WHERE date = OLD.date);
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
    INSERT INTO growthflow_rollup_dirty_days (date)
        SELECT OLD.date WHERE NOT EXISTS (
            SELECT 1 FROM growthflow_rollup_dirty_days WHERE date = OLD.date);
    INSERT INTO growthflow_rollup_dirty_days (date)
        SELECT NEW.date WHERE NOT EXISTS (
            SELECT 1 FROM growthflow_rollup_dirty_days WHERE date = NEW.date);
END;

CREATE TRIGGER orders_rollup_insert AFTER INSERT ON orders
BEGIN
    INSERT INTO growthflow_rollup_dirty_days (date)
        SELECT substr(NEW.created_at, 1, 10) WHERE NOT EXISTS (
            SELECT 1 FROM growthflow_rollup_dirty_days WHERE date = substr(NEW.created_at, 1, 10));
    INSERT INTO growthflow_rollup_dirty_customers (customer_id)
        SELECT NEW.customer_id WHERE NEW.customer_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM growthflow_rollup_dirty_customers WHERE customer_id = NEW.customer_id);
    INSERT INTO growthflow_rollup_dirty_days (date)
        SELECT DISTINCT date FROM journey_events e INDEXED BY journey_events_refund_order
        WHERE event_type = 'refund' AND source = NEW.source
          AND CAST(json_extract(attributes, '$.order_id') AS TEXT) = NEW.order_id
          AND NOT EXISTS (
              SELECT 1 FROM growthflow_rollup_dirty_days d WHERE d.date = e.date);
END;
CREATE TRIGGER orders_rollup_delete AFTER DELETE ON orders
BEGIN
    INSERT INTO growthflow_rollup_dirty_days (date)
        SELECT substr(OLD.created_at, 1, 10) WHERE NOT EXISTS (
            SELECT 1 FROM growthflow_rollup_dirty_days WHERE date = substr(OLD.created_at, 1, 10));
    INSERT INTO growthflow_rollup_dirty_customers (customer_id)
        SELECT OLD.customer_id WHERE OLD.customer_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM growthflow_rollup_dirty_customers WHERE customer_id = OLD.customer_id);
    INSERT INTO growthflow_rollup_dirty_days (date)
        SELECT DISTINCT date FROM journey_events e INDEXED BY journey_events_refund_order
        WHERE event_type = 'refund' AND source = OLD.source
          AND CAST(json_extract(attributes, '$.order_id') AS TEXT) = OLD.order_id
          AND NOT EXISTS (
              SELECT 1 FROM growthflow_rollup_dirty_days d WHERE d.date = e.date);
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
    INSERT INTO growthflow_rollup_dirty_days (date)
        SELECT substr(OLD.created_at, 1, 10) WHERE NOT EXISTS (
            SELECT 1 FROM growthflow_rollup_dirty_days WHERE date = substr(OLD.created_at, 1, 10));
    INSERT INTO growthflow_rollup_dirty_days (date)
        SELECT substr(NEW.created_at, 1, 10) WHERE NOT EXISTS (
            SELECT 1 FROM growthflow_rollup_dirty_days WHERE date = substr(NEW.created_at, 1, 10));
    INSERT INTO growthflow_rollup_dirty_customers (customer_id)
        SELECT OLD.customer_id WHERE OLD.customer_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM growthflow_rollup_dirty_customers WHERE customer_id = OLD.customer_id);
    INSERT INTO growthflow_rollup_dirty_customers (customer_id)
        SELECT NEW.customer_id WHERE NEW.customer_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM growthflow_rollup_dirty_customers WHERE customer_id = NEW.customer_id);
    INSERT INTO growthflow_rollup_dirty_days (date)
        SELECT DISTINCT date FROM journey_events e INDEXED BY journey_events_refund_order
        WHERE event_type = 'refund' AND source = OLD.source
          AND CAST(json_extract(attributes, '$.order_id') AS TEXT) = OLD.order_id
          AND NOT EXISTS (
              SELECT 1 FROM growthflow_rollup_dirty_days d WHERE d.date = e.date);
    INSERT INTO growthflow_rollup_dirty_days (date)
        SELECT DISTINCT date FROM journey_events e INDEXED BY journey_events_refund_order
        WHERE event_type = 'refund' AND source = NEW.source
          AND CAST(json_extract(attributes, '$.order_id') AS TEXT) = NEW.order_id
          AND NOT EXISTS (
              SELECT 1 FROM growthflow_rollup_dirty_days d WHERE d.date = e.date);
END;
