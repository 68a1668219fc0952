//! The journey rebuild inside PostgreSQL: the same steps as SQLite's, in the same order — raw records
//! mapped on worker threads, staged with COPY, settled with set-based SQL in one transaction.

use super::stage::{copy_derived, copy_events, copy_orders, copy_people, stage_page, Staged};
use super::*;

/// See SQLite's `fingerprint`.
fn fingerprint(
    tx: &mut Transaction<'_>,
    mappers: &HashMap<&str, &Arc<dyn JourneyMapper>>,
) -> Result<String> {
    let mut types: Vec<&str> = mappers.keys().copied().collect();
    types.sort_unstable();
    let sources: Vec<String> = tx
        .query(
            "SELECT source || '=' || type FROM growthflow_sources ORDER BY source COLLATE \"C\"",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(format!(
        "growthflow {}; mappers {}; sources {}",
        env!("CARGO_PKG_VERSION"),
        types.join(","),
        sources.join(",")
    ))
}

/// Rebuild the journey model: the same steps as SQLite's `rebuild`, in the same order.
pub(super) fn rebuild(
    tx: &mut Transaction<'_>,
    target: &PostgresTarget,
    mappers: &HashMap<&str, &Arc<dyn JourneyMapper>>,
    started: DateTime<Utc>,
) -> Result<RebuildStats> {
    let fingerprint = fingerprint(tx, mappers)?;
    let previous: Option<(String, DateTime<Utc>)> = tx
        .query_opt(
            "SELECT fingerprint, watermark FROM growthflow_journey WHERE id = 1",
            &[],
        )?
        .map(|r| (r.get(0), r.get(1)));
    // Sorts and hashes of a rebuild (staged rows, numbering, people) stay in memory, for this
    // transaction only. No JIT compilation either: the rollup triggers plan their joins with
    // `enable_nestloop = off`, whose penalty puts every plan's cost far above `jit_above_cost`, so each
    // statement that updated journey events or orders compiled its trigger's query with LLVM (inlined
    // and optimised: about 0.2 to 0.6 s a statement, whatever the rows) to run it over a few thousand
    // rows in a millisecond or two.
    tx.batch_execute(
        "SET LOCAL work_mem = '64MB';
         SET LOCAL jit = off;
         TRUNCATE gf_dirty, gf_affected;",
    )?;
    let mut stats = RebuildStats::default();
    let full = !matches!(&previous, Some((fp, _)) if *fp == fingerprint);
    match previous {
        Some((fp, watermark)) if fp == fingerprint => {
            tx.batch_execute(
                "INSERT INTO gf_dirty SELECT source, stream, record_id FROM growthflow_removed
                 ON CONFLICT DO NOTHING;",
            )?;
            tx.execute(
                "INSERT INTO gf_dirty
                 SELECT source, stream, record_id FROM raw_records WHERE synced_at >= $1
                 ON CONFLICT DO NOTHING",
                &[&watermark],
            )?;
            // Statistics for the few dirty records: autovacuum never analyzes a temporary table, and
            // without them the planner took `gf_dirty` for a big table and hashed every derived row,
            // order and event against it (1.7 s for 28 records at 100,000 orders).
            tx.batch_execute("ANALYZE gf_dirty")?;
            unmap_dirty(tx)?;
            map_records(
                tx,
                mappers,
                "SELECT r.source, s.type, r.stream, r.record_id, r.payload
                 FROM gf_dirty d
                 JOIN raw_records r ON r.source = d.source AND r.stream = d.stream
                                   AND r.record_id = d.record_id
                 JOIN growthflow_sources s ON s.source = r.source
                 ORDER BY r.source COLLATE \"C\", r.stream COLLATE \"C\", r.record_id COLLATE \"C\"",
                &mut stats,
            )?;
        }
        _ => super::full::rebuild_all(tx, target, mappers, &mut stats)?,
    }
    name_klaviyo_campaigns(tx, full)?;
    settle_people(tx, full)?;
    crate::report::rollup::refresh_postgres(tx)?; // The report's rollups of what changed.
    tx.execute("DELETE FROM growthflow_removed", &[])?;
    tx.execute(
        "INSERT INTO growthflow_journey (id, fingerprint, watermark) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint, watermark = excluded.watermark",
        &[&fingerprint, &started],
    )?;
    let mut total = |table: &str| -> Result<u64> {
        let n: i64 = tx
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])?
            .get(0);
        Ok(n as u64)
    };
    stats.orders = total("orders")?;
    stats.events = total("journey_events")?;
    stats.customers = total("customers")?;
    Ok(stats)
}

/// Take out what the records in `gf_dirty` put into the model, noting the people it concerned (SQLite's
/// `unmap_dirty`, with `jsonb_array_elements_text` for `json_each`).
///
/// Each dirty order is looked up by its whole key (the `OFFSET 0` keeps the subquery from being
/// flattened into a join): right after a full rebuild the statistics of `orders` are stale, and the
/// planner read every order of the source once for each dirty record (1.3-1.8 s for 28 records at
/// 100,000 orders).
fn unmap_dirty(tx: &mut Transaction<'_>) -> Result<()> {
    tx.batch_execute(
        "INSERT INTO gf_affected
           SELECT o.customer_id FROM gf_dirty t
           JOIN growthflow_derived d ON d.source = t.source AND d.stream = t.stream
                                    AND d.record_id = t.record_id
           CROSS JOIN LATERAL jsonb_array_elements_text(d.orders) j(value)
           CROSS JOIN LATERAL (SELECT customer_id FROM orders o
                               WHERE o.source = d.source AND o.order_id = j.value OFFSET 0) o
           WHERE o.customer_id IS NOT NULL
         ON CONFLICT DO NOTHING;
         INSERT INTO gf_affected
           SELECT e.customer_id FROM gf_dirty t
           JOIN growthflow_derived d ON d.source = t.source AND d.stream = t.stream
                                    AND d.record_id = t.record_id
           CROSS JOIN LATERAL jsonb_array_elements_text(d.events) j(value)
           JOIN journey_events e ON e.event_id = j.value
           WHERE e.customer_id IS NOT NULL
         ON CONFLICT DO NOTHING;
         INSERT INTO gf_affected
           SELECT p.customer_id FROM gf_dirty t
           JOIN growthflow_people p ON p.source = t.source AND p.stream = t.stream
                                   AND p.record_id = t.record_id
         ON CONFLICT DO NOTHING;
         DELETE FROM journey_events WHERE event_id IN (
           SELECT j.value FROM gf_dirty t
           JOIN growthflow_derived d ON d.source = t.source AND d.stream = t.stream
                                    AND d.record_id = t.record_id
           CROSS JOIN LATERAL jsonb_array_elements_text(d.events) j(value));
         DELETE FROM orders WHERE (source, order_id) IN (
           SELECT d.source, j.value FROM gf_dirty t
           JOIN growthflow_derived d ON d.source = t.source AND d.stream = t.stream
                                    AND d.record_id = t.record_id
           CROSS JOIN LATERAL jsonb_array_elements_text(d.orders) j(value));
         DELETE FROM growthflow_people WHERE (source, stream, record_id) IN (
           SELECT source, stream, record_id FROM gf_dirty);
         DELETE FROM growthflow_derived WHERE (source, stream, record_id) IN (
           SELECT source, stream, record_id FROM gf_dirty);",
    )?;
    Ok(())
}

/// Map the raw records `select` returns (`source, type, stream, record_id, payload`) into orders and
/// events, remembering what each record produced and which people it concerned. The records come
/// through a cursor a page at a time; the rows go to the server by `COPY` every few thousand.
fn map_records(
    tx: &mut Transaction<'_>,
    mappers: &HashMap<&str, &Arc<dyn JourneyMapper>>,
    select: &str,
    stats: &mut RebuildStats,
) -> Result<()> {
    let portal = tx.bind(select, &[])?;
    let mut staged = Staged::default();
    loop {
        let page = tx.query_portal(&portal, PAGE)?;
        if page.is_empty() {
            break;
        }
        stage_page(mappers, &page, &mut staged, false, stats)?;
        if staged.len() >= FLUSH_ROWS {
            flush(tx, &mut staged)?;
        }
    }
    flush(tx, &mut staged)?;
    Ok(())
}

/// Copy the staged rows to the server and upsert them (last record wins, as with SQLite's upserts),
/// noting the people they concern.
fn flush(tx: &mut Transaction<'_>, staged: &mut Staged) -> Result<()> {
    if staged.len() == 0 {
        return Ok(());
    }
    copy_orders(tx, "gf_stage_orders", &staged.orders)?;
    copy_events(tx, "gf_stage_events", true, &staged.events)?;
    copy_people(tx, "gf_stage_people", &staged.people)?;
    copy_derived(tx, "gf_stage_derived", true, &staged.derived)?;
    tx.batch_execute(FLUSH_ORDERS_SQL)?;
    tx.batch_execute(FLUSH_SQL)?;
    staged.clear();
    Ok(())
}

/// From the staging table into `orders`: SQLite's per-row upserts of `map_records`, set-wise.
const FLUSH_ORDERS_SQL: &str = "
    INSERT INTO orders (source, order_id, customer_id, email, created_at, currency, total_price,
       subtotal_price, total_discounts, total_refunded, financial_status, cancelled, test,
       utm_source, utm_medium, utm_campaign, channel, landing_page, referrer)
     SELECT DISTINCT ON (source, order_id) source, order_id, customer_id, email, created_at, currency,
       total_price, subtotal_price, total_discounts, total_refunded, financial_status, cancelled, test,
       utm_source, utm_medium, utm_campaign, channel, landing_page, referrer
     FROM gf_stage_orders ORDER BY source, order_id, seq DESC
     ON CONFLICT (source, order_id) DO UPDATE SET
       customer_id=excluded.customer_id, email=excluded.email, created_at=excluded.created_at,
       currency=excluded.currency, total_price=excluded.total_price,
       subtotal_price=excluded.subtotal_price, total_discounts=excluded.total_discounts,
       total_refunded=excluded.total_refunded, financial_status=excluded.financial_status,
       cancelled=excluded.cancelled, test=excluded.test, utm_source=excluded.utm_source,
       utm_medium=excluded.utm_medium, utm_campaign=excluded.utm_campaign, channel=excluded.channel,
       landing_page=excluded.landing_page, referrer=excluded.referrer;";

/// From the other staging tables into the model: SQLite's per-row upserts of `map_records`, set-wise.
const FLUSH_SQL: &str = "
    INSERT INTO journey_events (event_id, source, stream, occurred_at, date, stage, event_type,
       channel, campaign, customer_id, quantity, value, currency, attributes)
     SELECT DISTINCT ON (event_id) event_id, source, stream, occurred_at, date, stage, event_type,
       channel, campaign, customer_id, quantity, value, currency, attributes
     FROM gf_stage_events ORDER BY event_id, seq DESC
     ON CONFLICT (event_id) DO UPDATE SET
       occurred_at=excluded.occurred_at, date=excluded.date, stage=excluded.stage,
       event_type=excluded.event_type, channel=excluded.channel, campaign=excluded.campaign,
       customer_id=excluded.customer_id, quantity=excluded.quantity, value=excluded.value,
       currency=excluded.currency, attributes=excluded.attributes;
    INSERT INTO growthflow_people (source, stream, record_id, customer_id, seen_at)
     SELECT source, stream, record_id, customer_id, seen_at FROM gf_stage_people;
    INSERT INTO growthflow_derived (source, stream, record_id, events, orders)
     SELECT DISTINCT ON (source, stream, record_id) source, stream, record_id, events, orders
     FROM gf_stage_derived ORDER BY source, stream, record_id, seq DESC
     ON CONFLICT (source, stream, record_id) DO UPDATE SET
       events = excluded.events, orders = excluded.orders;
    INSERT INTO gf_affected (customer_id)
     SELECT customer_id FROM gf_stage_orders WHERE customer_id IS NOT NULL
     UNION SELECT customer_id FROM gf_stage_events WHERE customer_id IS NOT NULL
     UNION SELECT customer_id FROM gf_stage_people
     ON CONFLICT DO NOTHING;
    TRUNCATE gf_stage_orders, gf_stage_events, gf_stage_people, gf_stage_derived;";

/// Recompute what depends on more than one record for the people in `gf_affected`. Statement for
/// statement SQLite's `settle_people` (keep the two in step: a statement added there goes in the same
/// place here): order numbering, repeat-order stages, then the `customers` rows. Order ids and sources
/// sort byte-wise (`COLLATE "C"`), as SQLite sorts them.
const SETTLE_PEOPLE: &[&str] = &[
    // Klaviyo placed orders: a person's first in a Klaviyo source is conversion, later ones retention
    // (SQLite's `restage_klaviyo_orders`: retention where an earlier placed order of the same person
    // and source exists, by time then event id). Numbered in one pass rather than probed per event,
    // and only the events whose stage changes are written (an unchanged row rewritten is still a new
    // row version, new index entries, and a row for the rollup trigger to compare).
    "UPDATE journey_events e SET stage = s.stage
     FROM (SELECT event_id,
                  CASE WHEN ROW_NUMBER() OVER (PARTITION BY source, customer_id
                                               ORDER BY occurred_at, event_id COLLATE \"C\") = 1
                       THEN 'conversion' ELSE 'retention' END AS stage
           FROM journey_events
           WHERE event_type = 'placed_order'
             AND customer_id IN (SELECT customer_id FROM gf_affected)) s
     WHERE e.event_id = s.event_id AND e.stage IS DISTINCT FROM s.stage",
    // A refund without a currency takes its order's (SQLite's `refund_currencies`); one without an
    // order, or whose order has none, keeps none (and is not rewritten).
    "UPDATE journey_events e SET currency = o.currency
     FROM orders o
     WHERE e.event_type = 'refund' AND e.currency IS NULL
       AND o.source = e.source AND o.order_id = e.attributes->>'order_id'
       AND o.currency IS NOT NULL",
];

/// The middle of [`SETTLE_PEOPLE`]: each person's valid orders across every store, numbered by creation
/// time, and the stages that follow from the numbers. A full rebuild numbered the orders and staged
/// their events as it inserted them (`full::FULL_ORDERS_SQL`), and skips this.
const ORDER_NUMBERING: &[&str] = &[
    "TRUNCATE gf_order_index",
    "INSERT INTO gf_order_index
       SELECT source, order_id,
              ROW_NUMBER() OVER (PARTITION BY customer_id
                                 ORDER BY created_at, source COLLATE \"C\", order_id COLLATE \"C\")
       FROM orders
       WHERE NOT cancelled AND NOT test
         AND customer_id IN (SELECT customer_id FROM gf_affected)",
    // Temporary tables are never analysed by autovacuum: without statistics the planner takes the
    // freshly filled numbering for a few rows and probes it by a scan per order event (quadratic:
    // 100k orders took minutes).
    "ANALYZE gf_order_index, gf_affected",
    // Only the rows whose number changes are written (a row updated to the same value is still a
    // new row version with new index entries). The affected people's orders that are not numbered
    // (cancelled, test) get none.
    "UPDATE orders o SET customer_order_index = s.idx
     FROM (SELECT a.source, a.order_id, i.idx
           FROM orders a
           LEFT JOIN gf_order_index i ON i.source = a.source AND i.order_id = a.order_id
           WHERE a.customer_id IN (SELECT customer_id FROM gf_affected)) s
     WHERE o.source = s.source AND o.order_id = s.order_id
       AND o.customer_order_index IS DISTINCT FROM s.idx",
    // Repeat orders are retention, first ones conversion (only the events whose stage changes are
    // written).
    "UPDATE journey_events e SET stage = s.stage
     FROM (SELECT a.event_id,
                  CASE WHEN i.idx >= 2 THEN 'retention' ELSE 'conversion' END AS stage
           FROM journey_events a
           LEFT JOIN gf_order_index i ON i.source = a.source
                                     AND i.order_id = a.attributes->>'order_id'
           WHERE a.event_type = 'order'
             AND a.customer_id IN (SELECT customer_id FROM gf_affected)) s
     WHERE e.event_id = s.event_id AND e.stage IS DISTINCT FROM s.stage",
];

/// The end of [`SETTLE_PEOPLE`]: the customers rows.
const SETTLE_CUSTOMERS: &[&str] = &[
    "DELETE FROM customers WHERE customer_id IN (SELECT customer_id FROM gf_affected)",
    // One sort of every row that names a person, the valid orders counted and summed on the way
    // (SQLite's statement; its twin there measured 0.85 s → 0.31 s against a union and a join).
    "INSERT INTO customers (customer_id, email, first_seen_at, first_order_at, orders_count, total_spent)
       SELECT customer_id, customer_id, MIN(seen_at), MIN(first_order_at), SUM(valid),
              COALESCE(SUM(spent), 0)
       FROM (SELECT customer_id, created_at AS seen_at,
                    CASE WHEN NOT cancelled AND NOT test THEN created_at END AS first_order_at,
                    CASE WHEN NOT cancelled AND NOT test THEN 1 ELSE 0 END AS valid,
                    CASE WHEN NOT cancelled AND NOT test THEN total_price END AS spent
             FROM orders WHERE customer_id IN (SELECT customer_id FROM gf_affected)
             UNION ALL
             SELECT customer_id, occurred_at, NULL::timestamptz, 0, NULL::numeric FROM journey_events
             WHERE customer_id IN (SELECT customer_id FROM gf_affected)
             UNION ALL
             SELECT customer_id, seen_at, NULL::timestamptz, 0, NULL::numeric FROM growthflow_people
             WHERE customer_id IN (SELECT customer_id FROM gf_affected)) p
       GROUP BY customer_id",
    "TRUNCATE gf_order_index, gf_affected, gf_dirty",
];

/// Klaviyo events named from the synced `campaigns` and `flows` records (SQLite's
/// `name_klaviyo_campaigns`, statement for statement: see there for the order of the fallbacks).
fn name_klaviyo_campaigns(tx: &mut Transaction<'_>, full: bool) -> Result<()> {
    tx.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS gf_klaviyo_names (source TEXT, kind TEXT, id TEXT, name TEXT,
            PRIMARY KEY (source, kind, id));
         TRUNCATE gf_klaviyo_names;
         INSERT INTO gf_klaviyo_names
           SELECT r.source, 'campaign', r.record_id, btrim(r.payload #>> '{attributes,name}')
           FROM raw_records r JOIN growthflow_sources s ON s.source = r.source AND s.type = 'klaviyo'
           WHERE r.stream = 'campaigns'
         ON CONFLICT DO NOTHING;
         INSERT INTO gf_klaviyo_names
           SELECT r.source, 'message', m.value->>'id', btrim(r.payload #>> '{attributes,name}')
           FROM raw_records r JOIN growthflow_sources s ON s.source = r.source AND s.type = 'klaviyo'
           CROSS JOIN LATERAL jsonb_array_elements(
             CASE WHEN jsonb_typeof(r.payload #> '{relationships,campaign-messages,data}') = 'array'
                  THEN r.payload #> '{relationships,campaign-messages,data}' ELSE '[]'::jsonb END) m(value)
           WHERE r.stream = 'campaigns' AND m.value->>'id' IS NOT NULL
         ON CONFLICT DO NOTHING;
         INSERT INTO gf_klaviyo_names
           SELECT r.source, 'flow', r.record_id, btrim(r.payload #>> '{attributes,name}')
           FROM raw_records r JOIN growthflow_sources s ON s.source = r.source AND s.type = 'klaviyo'
           WHERE r.stream = 'flows'
         ON CONFLICT DO NOTHING;
         DELETE FROM gf_klaviyo_names WHERE name IS NULL OR name = '';",
    )?;
    // Set-based, and only the events whose name changes are written (see `SETTLE_PEOPLE`).
    tx.execute(
        "UPDATE journey_events e SET campaign = s.campaign
         FROM (SELECT j.event_id, COALESCE(c.name, m.name, mc.name, f.name,
                        j.attributes->>'campaign_name', j.attributes->>'message',
                        j.attributes->>'campaign', j.attributes->>'flow') AS campaign
               FROM journey_events j
               LEFT JOIN gf_klaviyo_names c ON c.source = j.source AND c.kind = 'campaign'
                                           AND c.id = j.attributes->>'campaign'
               LEFT JOIN gf_klaviyo_names m ON m.source = j.source AND m.kind = 'message'
                                           AND m.id = j.attributes->>'message'
               LEFT JOIN gf_klaviyo_names mc ON mc.source = j.source AND mc.kind = 'message'
                                            AND mc.id = j.attributes->>'campaign'
               LEFT JOIN gf_klaviyo_names f ON f.source = j.source AND f.kind = 'flow'
                                           AND f.id = j.attributes->>'flow'
               WHERE j.event_type IN ('email_received', 'email_opened', 'email_clicked', 'placed_order')
                 AND j.source IN (SELECT source FROM growthflow_sources WHERE type = 'klaviyo')
                 AND ($1
                      OR j.source IN (SELECT source FROM gf_dirty WHERE stream IN ('campaigns', 'flows'))
                      OR j.event_id IN (
                          SELECT v.value FROM gf_dirty t
                          JOIN growthflow_derived d ON d.source = t.source AND d.stream = t.stream
                                                   AND d.record_id = t.record_id
                          CROSS JOIN LATERAL jsonb_array_elements_text(d.events) v(value)))) s
         WHERE e.event_id = s.event_id AND e.campaign IS DISTINCT FROM s.campaign",
        &[&full],
    )?;
    Ok(())
}

/// Run [`SETTLE_PEOPLE`], [`ORDER_NUMBERING`] (unless `full`) and [`SETTLE_CUSTOMERS`].
fn settle_people(tx: &mut Transaction<'_>, full: bool) -> Result<()> {
    let numbering: &[&str] = if full { &[] } else { ORDER_NUMBERING };
    for sql in SETTLE_PEOPLE
        .iter()
        .chain(numbering)
        .chain(SETTLE_CUSTOMERS)
    {
        tx.batch_execute(sql)?;
    }
    Ok(())
}
