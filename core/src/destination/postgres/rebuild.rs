//! The journey rebuild inside PostgreSQL: the same steps as SQLite's, in the same order — raw records
//! mapped on worker threads, staged with COPY, settled with set-based SQL in one transaction.

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
    // transaction only.
    tx.batch_execute(
        "SET LOCAL work_mem = '64MB';
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
fn unmap_dirty(tx: &mut Transaction<'_>) -> Result<()> {
    tx.batch_execute(
        "INSERT INTO gf_affected
           SELECT o.customer_id FROM gf_dirty t
           JOIN growthflow_derived d ON d.source = t.source AND d.stream = t.stream
                                    AND d.record_id = t.record_id
           CROSS JOIN LATERAL jsonb_array_elements_text(d.orders) j(value)
           JOIN orders o ON o.source = d.source AND o.order_id = j.value
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

/// A person a record names: source, stream, record id, customer id, first seen.
pub(super) type StagedPerson = (String, String, String, String, Option<DateTime<Utc>>);
/// What a record produced: seq, source, stream, record id, event ids, order ids.
pub(super) type StagedDerived = (i64, String, String, String, Value, Value);

/// Mapped rows waiting to be copied to the server.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) seq: i64,
    pub(super) orders: Vec<StagedOrder>,
    pub(super) events: Vec<StagedEvent>,
    pub(super) people: Vec<StagedPerson>,
    pub(super) derived: Vec<StagedDerived>,
}

/// An order as a record gave it, with where it came from: a full rebuild keeps, of an order that two
/// records name, the version of the record SQLite maps last (the greatest stream and record id).
pub(super) struct StagedOrder {
    pub(super) seq: i64,
    pub(super) source: String,
    pub(super) stream: String,
    pub(super) record_id: String,
    pub(super) order: crate::model::OrderRow,
    pub(super) customer_id: Option<String>,
}

/// Drop every item whose key appears again later, keeping the order of the rest.
fn keep_last<T>(items: &mut Vec<T>, key: impl Fn(&T) -> String) {
    if items.len() < 2 {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    for item in items.drain(..).rev() {
        if seen.insert(key(&item)) {
            kept.push(item);
        }
    }
    kept.reverse();
    *items = kept;
}

pub(super) struct StagedEvent {
    seq: i64,
    event_id: String,
    source: String,
    stream: String,
    customer_id: Option<String>,
    row: EventRow,
}

impl Staged {
    pub(super) fn len(&self) -> usize {
        self.orders.len() + self.events.len() + self.people.len() + self.derived.len()
    }
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

/// Rows of `source, type, stream, record_id, payload` (the rebuild's selects): decode and map them on
/// up to 4 threads, then stage what they give in order; see [`stage_record`] for `full`. Each payload
/// is parsed on the thread that maps it and dropped right after, so memory holds the page's raw
/// bytes, not its parsed values, and the connection's thread never waits on JSON parsing.
pub(super) fn stage_page(
    mappers: &HashMap<&str, &Arc<dyn JourneyMapper>>,
    rows: &[postgres::Row],
    staged: &mut Staged,
    full: bool,
    stats: &mut RebuildStats,
) -> Result<()> {
    let map = |row: &postgres::Row| -> Result<Mapped> {
        let source: String = row.try_get(0)?;
        let source_type: &str = row.try_get(1)?;
        let stream: String = row.try_get(2)?;
        let record_id: String = row.try_get(3)?;
        let journey = match mappers.get(source_type) {
            None => None,
            Some(m) => Some(m.map(&stream, &row.try_get::<_, Value>(4)?)),
        };
        Ok((source, stream, record_id, journey))
    };
    for mapped in in_parallel(rows, map) {
        let (source, stream, record_id, journey) = mapped?;
        stats.records += 1;
        let journey = match journey {
            None => continue,
            Some(Ok(j)) => j,
            Some(Err(e)) => {
                stats.failed += 1;
                tracing::warn!(%source, %stream, %record_id, error = %e, "record skipped by the journey model");
                continue;
            }
        };
        stage_record(staged, &source, &stream, &record_id, journey, full);
    }
    Ok(())
}

/// A record read back and mapped: source, stream, record id and what its mapper gave (`None` where
/// no mapper knows the source's type).
type Mapped = (
    String,
    String,
    String,
    Option<Result<crate::model::JourneyRows>>,
);

/// `f` over `items`, in order, split over up to 4 threads (no more than the machine's cores): mapping
/// is most of a full rebuild's own work and needs no connection.
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    if workers == 1 || items.len() < 64 {
        return items.iter().map(f).collect();
    }
    let per = items.len().div_ceil(workers);
    let f = &f;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// One record's rows, as SQLite's `map_records` loop body builds them: SQLite upserts them one by one,
/// so where a record names an order or an event key twice its last version counts, and so here.
///
/// A full rebuild (`full`) stages no order events: [`super::full`] writes them with the orders, already
/// in their stage, and only their ids are noted here.
fn stage_record(
    staged: &mut Staged,
    source: &str,
    stream: &str,
    record_id: &str,
    journey: crate::model::JourneyRows,
    full: bool,
) {
    staged.seq += 1;
    let seq = staged.seq;
    let mut orders = journey.orders;
    keep_last(&mut orders, |o| o.order_id.clone());
    let mut events: Vec<EventRow> = journey.events;
    let mut order_ids: Vec<String> = Vec::with_capacity(orders.len());
    for o in orders {
        let customer_id = o.email.as_deref().and_then(normalize_email);
        order_ids.push(o.order_id.clone());
        // Every order is also an event; its stage (first order or repeat) is settled below.
        let mut ev = EventRow::at(
            format!("order:{}", o.order_id),
            o.created_at,
            Stage::Conversion,
            "order",
        );
        if !full {
            ev.channel = Some(o.channel);
            ev.campaign = o.utm_campaign.clone();
            ev.email = o.email.clone();
            ev.value = Some(o.total_price);
            ev.currency = o.currency.clone();
            ev.attributes = serde_json::json!({
                "order_id": o.order_id,
                "valid": !o.cancelled && !o.test,
            });
        }
        events.push(ev);
        staged.orders.push(StagedOrder {
            seq,
            source: source.to_string(),
            stream: stream.to_string(),
            record_id: record_id.to_string(),
            order: o,
            customer_id,
        });
    }
    keep_last(&mut events, |e| e.key.clone());
    let mut event_ids: Vec<String> = Vec::with_capacity(events.len());
    for e in events {
        let event_id = format!("{source}:{stream}:{record_id}:{}", e.key);
        event_ids.push(event_id.clone());
        // An order's event comes after the mapper's events, so the key is its own.
        if full
            && order_ids
                .iter()
                .any(|id| e.key.strip_prefix("order:") == Some(id))
        {
            continue; // Written with its order (see above).
        }
        let customer_id = e.email.as_deref().and_then(normalize_email);
        staged.events.push(StagedEvent {
            seq,
            event_id,
            source: source.to_string(),
            stream: stream.to_string(),
            customer_id,
            row: e,
        });
    }
    for c in journey.customers {
        if let Some(id) = normalize_email(&c.email) {
            staged.people.push((
                source.to_string(),
                stream.to_string(),
                record_id.to_string(),
                id,
                c.first_seen_at.map(secs),
            ));
        }
    }
    if !event_ids.is_empty() || !order_ids.is_empty() {
        staged.derived.push((
            seq,
            source.to_string(),
            stream.to_string(),
            record_id.to_string(),
            Value::from(event_ids),
            Value::from(order_ids),
        ));
    }
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

impl Staged {
    /// Empty, keeping the sequence.
    pub(super) fn clear(&mut self) {
        *self = Staged {
            seq: self.seq,
            ..Staged::default()
        };
    }
}

/// `COPY` staged orders into `table` (`gf_stage_orders` or a table like it).
pub(super) fn copy_orders(
    tx: &mut Transaction<'_>,
    table: &str,
    orders: &[StagedOrder],
) -> Result<()> {
    let sink = tx.copy_in(&format!(
        "COPY {table} (seq, source, stream, record_id, order_id, customer_id, email, created_at,
           currency, total_price, subtotal_price, total_discounts, total_refunded, financial_status,
           cancelled, test, utm_source, utm_medium, utm_campaign, channel, landing_page, referrer)
         FROM STDIN (FORMAT binary)"
    ))?;
    let (t, n) = (Type::TEXT, Type::NUMERIC);
    #[rustfmt::skip]
    let types = [
        Type::INT8, t.clone(), t.clone(), t.clone(), t.clone(), t.clone(), t.clone(), // seq … email
        Type::TIMESTAMPTZ, t.clone(), n.clone(), n.clone(), n.clone(), n, t.clone(), // created … status
        Type::BOOL, Type::BOOL, t.clone(), t.clone(), t.clone(), t.clone(), t.clone(), t, // cancelled …
    ];
    let mut w = BinaryCopyInWriter::new(sink, &types);
    for s in orders {
        let o = &s.order;
        let created = secs(o.created_at);
        let channel = o.channel.as_str();
        let row: [&(dyn ToSql + Sync); 22] = [
            &s.seq,
            &s.source,
            &s.stream,
            &s.record_id,
            &o.order_id,
            &s.customer_id,
            &o.email,
            &created,
            &o.currency,
            &o.total_price,
            &o.subtotal_price,
            &o.total_discounts,
            &o.total_refunded,
            &o.financial_status,
            &o.cancelled,
            &o.test,
            &o.utm_source,
            &o.utm_medium,
            &o.utm_campaign,
            &channel,
            &o.landing_page,
            &o.referrer,
        ];
        w.write(&row)?;
    }
    w.finish()?;
    Ok(())
}

/// `COPY` staged events into `table`: the staging table (`with_seq`) or `journey_events` itself.
pub(super) fn copy_events(
    tx: &mut Transaction<'_>,
    table: &str,
    with_seq: bool,
    events: &[StagedEvent],
) -> Result<()> {
    let sink = tx.copy_in(&format!(
        "COPY {table} ({}event_id, source, stream, occurred_at, date, stage, event_type, channel,
           campaign, customer_id, quantity, value, currency, attributes)
         FROM STDIN (FORMAT binary)",
        if with_seq { "seq, " } else { "" }
    ))?;
    let t = Type::TEXT;
    let mut types = Vec::with_capacity(15);
    if with_seq {
        types.push(Type::INT8);
    }
    types.extend([
        t.clone(),
        t.clone(),
        t.clone(),
        Type::TIMESTAMPTZ,
        Type::DATE,
    ]);
    types.extend(std::iter::repeat_n(t.clone(), 5));
    types.extend([Type::NUMERIC, Type::NUMERIC, t, Type::JSONB]);
    let mut w = BinaryCopyInWriter::new(sink, &types);
    for s in events {
        let e = &s.row;
        let occurred = secs(e.occurred_at);
        let stage = e.stage.as_str();
        let channel = e.channel.map(|c| c.as_str());
        let attributes = jsonb_safe(&e.attributes);
        let row: [&(dyn ToSql + Sync); 15] = [
            &s.seq,
            &s.event_id,
            &s.source,
            &s.stream,
            &occurred,
            &e.date,
            &stage,
            &e.event_type,
            &channel,
            &e.campaign,
            &s.customer_id,
            &e.quantity,
            &e.value,
            &e.currency,
            &attributes.as_ref(),
        ];
        w.write(&row[usize::from(!with_seq)..])?;
    }
    w.finish()?;
    Ok(())
}

/// `COPY` the people records name into `table` (`gf_stage_people` or `growthflow_people`).
pub(super) fn copy_people(
    tx: &mut Transaction<'_>,
    table: &str,
    people: &[StagedPerson],
) -> Result<()> {
    let sink = tx.copy_in(&format!(
        "COPY {table} (source, stream, record_id, customer_id, seen_at) FROM STDIN (FORMAT binary)"
    ))?;
    let t = Type::TEXT;
    let types = [t.clone(), t.clone(), t.clone(), t, Type::TIMESTAMPTZ];
    let mut w = BinaryCopyInWriter::new(sink, &types);
    for (source, stream, record_id, customer_id, seen) in people {
        w.write(&[source, stream, record_id, customer_id, seen])?;
    }
    w.finish()?;
    Ok(())
}

/// `COPY` what each record produced into `table`: the staging table (`with_seq`) or
/// `growthflow_derived` itself.
pub(super) fn copy_derived(
    tx: &mut Transaction<'_>,
    table: &str,
    with_seq: bool,
    derived: &[StagedDerived],
) -> Result<()> {
    let sink = tx.copy_in(&format!(
        "COPY {table} ({}source, stream, record_id, events, orders) FROM STDIN (FORMAT binary)",
        if with_seq { "seq, " } else { "" }
    ))?;
    let t = Type::TEXT;
    let mut types = Vec::with_capacity(6);
    if with_seq {
        types.push(Type::INT8);
    }
    types.extend([t.clone(), t.clone(), t, Type::JSONB, Type::JSONB]);
    let mut w = BinaryCopyInWriter::new(sink, &types);
    for (seq, source, stream, record_id, events, orders) in derived {
        let row: [&(dyn ToSql + Sync); 6] = [seq, source, stream, record_id, events, orders];
        w.write(&row[usize::from(!with_seq)..])?;
    }
    w.finish()?;
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
    // (SQLite's `restage_klaviyo_orders`).
    "UPDATE journey_events SET stage = CASE WHEN EXISTS (
         SELECT 1 FROM journey_events p
         WHERE p.event_type = 'placed_order' AND p.source = journey_events.source
           AND p.customer_id = journey_events.customer_id
           AND (p.occurred_at < journey_events.occurred_at
                OR (p.occurred_at = journey_events.occurred_at
                    AND p.event_id COLLATE \"C\" < journey_events.event_id COLLATE \"C\")))
       THEN 'retention' ELSE 'conversion' END
     WHERE event_type = 'placed_order'
       AND customer_id IN (SELECT customer_id FROM gf_affected)",
    // A refund without a currency takes its order's (SQLite's `refund_currencies`).
    "UPDATE journey_events SET currency = (
         SELECT o.currency FROM orders o
         WHERE o.source = journey_events.source
           AND o.order_id = journey_events.attributes->>'order_id')
     WHERE event_type = 'refund' AND currency IS NULL",
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
    // new row version with new index entries).
    "UPDATE orders SET customer_order_index = (
       SELECT idx FROM gf_order_index i
       WHERE i.source = orders.source AND i.order_id = orders.order_id)
     WHERE customer_id IN (SELECT customer_id FROM gf_affected)
       AND customer_order_index IS DISTINCT FROM (
         SELECT idx FROM gf_order_index i
         WHERE i.source = orders.source AND i.order_id = orders.order_id)",
    // Repeat orders are retention, first ones conversion (only the events whose stage changes are
    // written).
    "UPDATE journey_events SET stage = CASE WHEN EXISTS (
         SELECT 1 FROM gf_order_index i
         WHERE i.source = journey_events.source
           AND i.order_id = journey_events.attributes->>'order_id'
           AND i.idx >= 2) THEN 'retention' ELSE 'conversion' END
     WHERE event_type = 'order' AND customer_id IN (SELECT customer_id FROM gf_affected)
       AND stage <> CASE WHEN EXISTS (
         SELECT 1 FROM gf_order_index i
         WHERE i.source = journey_events.source
           AND i.order_id = journey_events.attributes->>'order_id'
           AND i.idx >= 2) THEN 'retention' ELSE 'conversion' END",
];

/// The end of [`SETTLE_PEOPLE`]: the customers rows.
const SETTLE_CUSTOMERS: &[&str] = &[
    "DELETE FROM customers WHERE customer_id IN (SELECT customer_id FROM gf_affected)",
    "INSERT INTO customers (customer_id, email, first_seen_at, first_order_at, orders_count, total_spent)
       SELECT p.customer_id, p.customer_id, MIN(p.seen_at), o.first_order_at,
              COALESCE(o.cnt, 0), COALESCE(o.spent, 0)
       FROM (SELECT customer_id, created_at AS seen_at FROM orders
             WHERE customer_id IN (SELECT customer_id FROM gf_affected)
             UNION ALL
             SELECT customer_id, occurred_at FROM journey_events
             WHERE customer_id IN (SELECT customer_id FROM gf_affected)
             UNION ALL
             SELECT customer_id, seen_at FROM growthflow_people
             WHERE customer_id IN (SELECT customer_id FROM gf_affected)) p
       LEFT JOIN (SELECT customer_id, MIN(created_at) AS first_order_at, COUNT(*) AS cnt,
                         SUM(total_price) AS spent
                  FROM orders
                  WHERE NOT cancelled AND NOT test
                    AND customer_id IN (SELECT customer_id FROM gf_affected)
                  GROUP BY customer_id) o ON o.customer_id = p.customer_id
       GROUP BY p.customer_id, o.first_order_at, o.cnt, o.spent",
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
    tx.execute(
        "UPDATE journey_events SET campaign = COALESCE(
             (SELECT n.name FROM gf_klaviyo_names n WHERE n.source = journey_events.source
                AND n.kind = 'campaign' AND n.id = journey_events.attributes->>'campaign'),
             (SELECT n.name FROM gf_klaviyo_names n WHERE n.source = journey_events.source
                AND n.kind = 'message' AND n.id = journey_events.attributes->>'message'),
             (SELECT n.name FROM gf_klaviyo_names n WHERE n.source = journey_events.source
                AND n.kind = 'message' AND n.id = journey_events.attributes->>'campaign'),
             (SELECT n.name FROM gf_klaviyo_names n WHERE n.source = journey_events.source
                AND n.kind = 'flow' AND n.id = journey_events.attributes->>'flow'),
             attributes->>'campaign_name',
             attributes->>'message',
             attributes->>'campaign',
             attributes->>'flow')
         WHERE event_type IN ('email_received', 'email_opened', 'email_clicked', 'placed_order')
           AND source IN (SELECT source FROM growthflow_sources WHERE type = 'klaviyo')
           AND ($1
                OR source IN (SELECT source FROM gf_dirty WHERE stream IN ('campaigns', 'flows'))
                OR event_id IN (
                    SELECT j.value FROM gf_dirty t
                    JOIN growthflow_derived d ON d.source = t.source AND d.stream = t.stream
                                             AND d.record_id = t.record_id
                    CROSS JOIN LATERAL jsonb_array_elements_text(d.events) j(value)))",
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
