//! What a rebuild stages: raw records decoded and mapped on worker threads into the rows they give,
//! and those rows copied to the server with `COPY … (FORMAT binary)`, into the staging tables (an
//! incremental rebuild, which then upserts) or straight into the model's tables (a full one). Apart
//! from `rebuild.rs`, which orders the steps, because both kinds of rebuild share it.

use super::*;
use crate::project::parse_record;
use serde_json::value::RawValue;

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
            Some(m) => {
                // The JSONB's text, borrowed from the row, parsed into only what the mapper reads.
                let payload: postgres::types::Json<&RawValue> = row.try_get(4)?;
                Some(
                    parse_record(m.projection(&stream), payload.0.get())
                        .map_err(Error::from)
                        .and_then(|v| m.map(&stream, &v)),
                )
            }
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
