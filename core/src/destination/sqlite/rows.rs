//! SQLite's rebuild, the part that maps raw records and writes their rows: records are read here,
//! mapped on worker threads ([`crate::destination::mapping`]) and written back in order.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params, OptionalExtension, Transaction};

use crate::destination::mapping::{map_one, money, Mapped, OrderCols, RawRow};
use crate::destination::RebuildStats;
use crate::model::JourneyMapper;
use crate::{Error, Result};

/// Raw records handed to a mapping thread at once.
const MAP_CHUNK: usize = 64;

/// The order in which `select` returns the raw records, which decides how two records that give the
/// same order (`source`, `order_id`) are settled: the one with the greatest stream and record id wins,
/// as PostgreSQL's rebuild decides too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadOrder {
    /// By `source, stream, record_id`: each order is upserted, so the last record read wins. Reading
    /// in key order goes through the key index and fetches each record's row from wherever it is
    /// stored, so it suits the few records of an incremental rebuild.
    Key,
    /// As stored (rowid order), for a full rebuild: one pass over the table's pages instead of one
    /// page fetch per record through the key index (at 100,000 orders the key-order read fetched
    /// 1.8 GB of pages for 486 MB of payloads, the rowid-order one the table once). The first record
    /// of an order inserts it; an order met again is noted and settled after the pass.
    Stored,
}

/// Map the raw records `select` returns (`source, type, stream, record_id, payload`) into orders and
/// events, remembering what each record produced and which people it concerned.
///
/// Parsing a payload and mapping it is most of a full rebuild's work and needs no connection, so it
/// runs on worker threads (up to 4, no more than the machine's cores) while this thread reads the
/// records and writes the rows; chunks are written in the order they were read, so the result is the
/// same as mapping one record after the other (the tests compare it with PostgreSQL's).
pub(super) fn map_records(
    tx: &Transaction<'_>,
    mappers: &HashMap<&str, &Arc<dyn JourneyMapper>>,
    select: &str,
    order: ReadOrder,
    stats: &mut RebuildStats,
) -> Result<()> {
    let mut read = tx.prepare(select)?;
    let mut write = RowWriter::prepare(tx, order)?;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    // Enough chunks in flight that a worker mostly finds its next chunk ready: chunks are written in
    // the order they were read, so one slow chunk holds back those mapped after it, and with
    // `workers + 1` chunks of 128 the workers and the writer often all waited (1.53-1.55 of 2 cores
    // busy while mapping 100,000 orders). Four smaller chunks per worker keep 1.63-1.70 busy with a
    // third more records in flight (512 on two cores, was 384); four of 128 kept 1.70-1.74, but peak
    // RSS rose by about 3 MiB, past the 50 MB the sync aims for in some runs (docs/performance.md).
    let in_flight = workers * 4;
    let (work_tx, work_rx) = std::sync::mpsc::sync_channel::<(u64, Vec<RawRow>)>(in_flight);
    let work_rx = std::sync::Mutex::new(work_rx);
    // Memory is freed by the thread that allocated it: glibc's allocator gives each thread an arena
    // with a lock, and a block freed by another thread takes that arena's lock. Payloads allocated
    // here and freed on a worker, and mapped rows allocated on a worker and freed here, made the
    // threads wait on each other's locks about 20,000 times a second at 100,000 orders. So a chunk
    // comes back with what its records map to and is read into again (the records' text is copied
    // into the strings the chunk already holds: reading a record allocates nothing), and the mapped
    // rows, once written, go back to the worker that made them, which drops them.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(u64, usize, Vec<RawRow>, Vec<Mapped>)>();
    let stopped = || Error::destination("the journey mapping threads stopped");
    std::thread::scope(|scope| -> Result<()> {
        // Dropped when this closure returns, however it returns: the workers then stop.
        let work_tx = work_tx;
        let mut written_back = Vec::with_capacity(workers);
        for worker in 0..workers {
            let (work_rx, done_tx) = (&work_rx, done_tx.clone());
            let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<Mapped>>();
            written_back.push(back_tx);
            let mappers = &mappers;
            scope.spawn(move || loop {
                // What was written: freed here, where it was allocated.
                while back_rx.try_recv().is_ok() {}
                let job = work_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok((seq, rows)) = job else { return };
                let mapped = rows.iter().map(|raw| map_guarded(mappers, raw)).collect();
                if done_tx.send((seq, worker, rows, mapped)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let mut rows = read.query([])?;
        let (mut sent, mut written) = (0u64, 0u64);
        let mut ready: std::collections::BTreeMap<u64, (usize, Vec<RawRow>, Vec<Mapped>)> =
            Default::default();
        let mut spare: Vec<Vec<RawRow>> = Vec::with_capacity(in_flight + 1);
        let mut exhausted = false;
        loop {
            while !exhausted && sent - written < in_flight as u64 {
                let chunk = read_chunk(&mut rows, spare.pop().unwrap_or_default())?;
                exhausted = chunk.len() < MAP_CHUNK;
                if chunk.is_empty() {
                    break;
                }
                work_tx.send((sent, chunk)).map_err(|_| stopped())?;
                sent += 1;
            }
            if written == sent {
                break;
            }
            let (seq, worker, chunk, mapped) = done_rx.recv().map_err(|_| stopped())?;
            ready.insert(seq, (worker, chunk, mapped));
            while let Some((worker, chunk, mapped)) = ready.remove(&written) {
                for (raw, m) in chunk.iter().zip(&mapped) {
                    write.record(raw, m, stats)?;
                }
                // A worker that stopped drops nothing more: then it is freed here.
                let _ = written_back[worker].send(mapped);
                spare.push(chunk);
                written += 1;
            }
        }
        drop(work_tx);
        Ok(())
    })?;
    let met_again = std::mem::take(&mut write.met_again);
    drop(write);
    settle_orders_met_again(tx, mappers, met_again)
}

/// Up to [`MAP_CHUNK`] records from `rows`, read into `chunk`'s strings (see `map_records`); fewer
/// only when they are exhausted.
fn read_chunk(rows: &mut rusqlite::Rows<'_>, mut chunk: Vec<RawRow>) -> Result<Vec<RawRow>> {
    let mut filled = 0;
    while filled < MAP_CHUNK {
        let Some(row) = rows.next()? else { break };
        if filled == chunk.len() {
            chunk.push(RawRow::default());
        }
        let raw = &mut chunk[filled];
        for (i, field) in [
            &mut raw.source,
            &mut raw.source_type,
            &mut raw.stream,
            &mut raw.record_id,
            &mut raw.payload,
        ]
        .into_iter()
        .enumerate()
        {
            field.clear();
            let text = row.get_ref(i)?.as_str().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
            })?;
            field.push_str(text);
        }
        filled += 1;
    }
    chunk.truncate(filled);
    Ok(chunk)
}

/// Map one record on a worker thread. A mapper that panics skips its record like one that fails,
/// instead of leaving this thread's chunk unwritten forever.
fn map_guarded(mappers: &HashMap<&str, &Arc<dyn JourneyMapper>>, raw: &RawRow) -> Mapped {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map_one(mappers, raw)))
        .unwrap_or_else(|_| Mapped::Failed("the mapper panicked".into()))
}

/// In a [`ReadOrder::Stored`] pass, orders that more than one record gave were inserted by whichever
/// came first: each gets the row of the record with the greatest stream and record id among those
/// that gave it (what the key-order pass leaves). Platforms give an order one record, so this is
/// nearly always empty; each order costs a scan of `growthflow_derived`.
fn settle_orders_met_again(
    tx: &Transaction<'_>,
    mappers: &HashMap<&str, &Arc<dyn JourneyMapper>>,
    mut met_again: Vec<(String, String)>,
) -> Result<()> {
    if met_again.is_empty() {
        return Ok(());
    }
    met_again.sort_unstable();
    met_again.dedup();
    let mut last = tx.prepare(
        "SELECT r.source, s.type, r.stream, r.record_id, r.payload
         FROM growthflow_derived d JOIN json_each(d.orders) j
         JOIN raw_records r ON r.source = d.source AND r.stream = d.stream
                           AND r.record_id = d.record_id
         JOIN growthflow_sources s ON s.source = r.source
         WHERE d.source = ?1 AND j.value = ?2
         ORDER BY r.stream DESC, r.record_id DESC LIMIT 1",
    )?;
    let mut write = RowWriter::prepare(tx, ReadOrder::Key)?;
    for (source, order_id) in met_again {
        let raw = last
            .query_row(params![source, order_id], |row| {
                Ok(RawRow {
                    source: row.get(0)?,
                    source_type: row.get(1)?,
                    stream: row.get(2)?,
                    record_id: row.get(3)?,
                    payload: row.get(4)?,
                })
            })
            .optional()?;
        let Some(raw) = raw else { continue };
        if let Mapped::Rows { orders, .. } = map_one(mappers, &raw) {
            for o in orders.iter().filter(|o| o.row.order_id == order_id) {
                write.order(&raw.source, o)?;
            }
        }
    }
    Ok(())
}

/// The statements that write one mapped record, prepared once per rebuild.
struct RowWriter<'c> {
    order: rusqlite::CachedStatement<'c>,
    /// Orders a [`ReadOrder::Stored`] pass met a second time (`source`, `order_id`).
    met_again: Vec<(String, String)>,
    event: rusqlite::CachedStatement<'c>,
    affect: rusqlite::CachedStatement<'c>,
    /// Whether each person a row names is noted in `temp.affected` as it is written: a
    /// [`ReadOrder::Stored`] pass is a full rebuild's, which settles every person without the list.
    note_people: bool,
    person: rusqlite::CachedStatement<'c>,
    derived: rusqlite::CachedStatement<'c>,
}

impl<'c> RowWriter<'c> {
    fn prepare(tx: &'c Transaction<'_>, read: ReadOrder) -> Result<Self> {
        let on_conflict = match read {
            ReadOrder::Key => {
                "DO UPDATE SET
                   customer_id=excluded.customer_id, email=excluded.email, created_at=excluded.created_at,
                   currency=excluded.currency, total_price=excluded.total_price,
                   subtotal_price=excluded.subtotal_price, total_discounts=excluded.total_discounts,
                   total_refunded=excluded.total_refunded, financial_status=excluded.financial_status,
                   cancelled=excluded.cancelled, test=excluded.test, utm_source=excluded.utm_source,
                   utm_medium=excluded.utm_medium, utm_campaign=excluded.utm_campaign, channel=excluded.channel,
                   landing_page=excluded.landing_page, referrer=excluded.referrer"
            }
            ReadOrder::Stored => "DO NOTHING",
        };
        Ok(RowWriter {
            met_again: Vec::new(),
            note_people: read == ReadOrder::Key,
            order: tx.prepare_cached(&format!(
                "INSERT INTO orders (source, order_id, customer_id, email, created_at, currency, total_price,
                   subtotal_price, total_discounts, total_refunded, financial_status, cancelled, test,
                   utm_source, utm_medium, utm_campaign, channel, landing_page, referrer)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)
                 ON CONFLICT(source, order_id) {on_conflict}"
            ))?,
            event: tx.prepare_cached(
                "INSERT INTO journey_events (event_id, source, stream, occurred_at, date, stage, event_type,
                   channel, campaign, customer_id, quantity, value, currency, attributes)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)
                 ON CONFLICT(event_id) DO UPDATE SET
                   occurred_at=excluded.occurred_at, date=excluded.date, stage=excluded.stage,
                   event_type=excluded.event_type, channel=excluded.channel, campaign=excluded.campaign,
                   customer_id=excluded.customer_id, quantity=excluded.quantity, value=excluded.value,
                   currency=excluded.currency, attributes=excluded.attributes",
            )?,
            affect: tx
                .prepare_cached("INSERT OR IGNORE INTO temp.affected (customer_id) VALUES (?1)")?,
            person: tx.prepare_cached(
                "INSERT INTO growthflow_people (source, stream, record_id, customer_id, seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            derived: tx.prepare_cached(
                "INSERT INTO growthflow_derived (source, stream, record_id, events, orders)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(source, stream, record_id) DO UPDATE SET
                   events = excluded.events, orders = excluded.orders",
            )?,
        })
    }

    /// Write one order row; the rows written (0 when a [`ReadOrder::Stored`] writer met it before).
    fn order(&mut self, source: &str, o: &OrderCols) -> Result<usize> {
        let r = &o.row;
        Ok(self.order.execute(params![
            source,
            r.order_id,
            o.customer_id,
            r.email,
            o.created,
            r.currency,
            money(r.total_price),
            r.subtotal_price.map(money),
            r.total_discounts.map(money),
            money(r.total_refunded),
            r.financial_status,
            r.cancelled,
            r.test,
            r.utm_source,
            r.utm_medium,
            r.utm_campaign,
            r.channel.as_str(),
            r.landing_page,
            r.referrer,
        ])?)
    }

    fn record(&mut self, raw: &RawRow, mapped: &Mapped, stats: &mut RebuildStats) -> Result<()> {
        let (source, stream, record_id) = (&raw.source, &raw.stream, &raw.record_id);
        stats.records += 1;
        let (orders, events, people, derived) = match mapped {
            Mapped::Unmapped => return Ok(()),
            Mapped::Failed(error) => {
                stats.failed += 1;
                tracing::warn!(%source, %stream, %record_id, %error, "record skipped by the journey model");
                return Ok(());
            }
            Mapped::Rows {
                orders,
                events,
                people,
                derived,
            } => (orders, events, people, derived),
        };
        for o in orders {
            if self.order(source, o)? == 0 {
                self.met_again
                    .push((source.clone(), o.row.order_id.clone()));
            }
            if let Some(c) = o.customer_id.as_ref().filter(|_| self.note_people) {
                self.affect.execute([c])?;
            }
        }
        for e in events {
            self.event.execute(params![
                e.event_id,
                source,
                stream,
                e.occurred,
                e.date,
                e.stage,
                e.event_type,
                e.channel,
                e.campaign,
                e.customer_id,
                e.quantity,
                e.value,
                e.currency,
                e.attributes,
            ])?;
            if let Some(c) = e.customer_id.as_ref().filter(|_| self.note_people) {
                self.affect.execute([c])?;
            }
        }
        for (id, seen) in people {
            self.person
                .execute(params![source, stream, record_id, id, seen])?;
            if self.note_people {
                self.affect.execute([id])?;
            }
        }
        if let Some((events, orders)) = derived {
            self.derived
                .execute(params![source, stream, record_id, events, orders])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::Record;
    use crate::destination::sqlite::SqliteDestination;
    use crate::destination::{Destination, WriteBatch};
    use crate::model::{Channel, CustomerRow, JourneyRows, OrderRow};
    use rusqlite::types::Value as Sql;
    use serde_json::{json, Value};

    /// Orders `{id, email, total, at}` (an unparsable `at` fails the record) and people `{email}`.
    struct Shop;

    impl JourneyMapper for Shop {
        fn source_type(&self) -> &'static str {
            "shop"
        }

        fn map(&self, stream: &str, v: &Value) -> Result<crate::model::JourneyRows> {
            let mut rows = JourneyRows::default();
            match stream {
                "orders" | "orders_again" => rows.orders.push(OrderRow {
                    order_id: v["id"].as_str().unwrap().into(),
                    email: v["email"].as_str().map(str::to_string),
                    created_at: v["at"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| Error::Decode {
                            message: format!("bad at: {}", v["at"]),
                        })?,
                    currency: Some("EUR".into()),
                    total_price: v["total"].as_str().unwrap().parse().unwrap(),
                    subtotal_price: None,
                    total_discounts: None,
                    total_refunded: Default::default(),
                    financial_status: None,
                    cancelled: false,
                    test: false,
                    utm_source: None,
                    utm_medium: None,
                    utm_campaign: None,
                    channel: Channel::Direct,
                    landing_page: None,
                    referrer: None,
                }),
                "people" => rows.customers.push(CustomerRow {
                    email: v["email"].as_str().unwrap().into(),
                    first_seen_at: None,
                }),
                _ => {}
            }
            Ok(rows)
        }
    }

    /// Enough records for many more chunks than are in flight, in two streams and two commits: the
    /// order `o7` is given by `orders` and again (another total) by `orders_again`; record 13 fails.
    fn fill(dest: &mut SqliteDestination) {
        dest.register_source("s", "shop").unwrap();
        let batch = |stream: &str, records: Vec<Record>| WriteBatch {
            source: "s".into(),
            stream: stream.into(),
            records,
            state: None,
            replaces: None,
        };
        let rec = |id: String, payload: Value| Record {
            id,
            cursor: None,
            payload: payload.into(),
        };
        let orders = (0..2000)
            .map(|i| {
                let at = if i == 13 { "never" } else { "2026-03-01T10:00:00Z" };
                let payload = json!({"id": format!("o{i}"), "email": format!("P{}@x.io", i % 97),
                                     "total": format!("{i}.50"), "at": at, "pad": "x".repeat(i % 3000)});
                rec(format!("{i:05}"), payload)
            })
            .collect();
        let people = (0..300)
            .map(|i| rec(format!("{i}"), json!({"email": format!("q{i}@x.io")})))
            .collect();
        dest.commit(&[batch("orders", orders), batch("people", people)])
            .unwrap();
        let again = vec![rec(
            "z".into(),
            json!({"id": "o7", "email": null, "total": "99.00",
                                                 "at": "2026-03-02T10:00:00Z"}),
        )];
        dest.commit(&[batch("orders_again", again)]).unwrap();
    }

    fn rows(dest: &SqliteDestination, sql: &str) -> Vec<Vec<Sql>> {
        let mut stmt = dest.connection().prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Sql>(i)).collect())
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// A full rebuild over many more chunks than are in flight at once (each record's key travels
    /// with its rows, its payload freed by the worker) writes every record's rows once, the same on
    /// a dataset file as in memory, and the order given twice keeps the later record's.
    #[test]
    fn a_full_rebuild_over_many_chunks_writes_each_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = SqliteDestination::open(&dir.path().join("d.db")).unwrap();
        let mut memory = SqliteDestination::in_memory().unwrap();
        let shop: Arc<dyn JourneyMapper> = Arc::new(Shop);
        for dest in [&mut file, &mut memory] {
            fill(dest);
        }

        let mut stats = Vec::new();
        for dest in [&mut file, &mut memory] {
            stats.push(dest.rebuild_journey(std::slice::from_ref(&shop)).unwrap());
        }
        for s in &stats {
            assert_eq!((s.records, s.failed, s.orders), (2301, 1, 1999));
        }
        for sql in [
            "SELECT * FROM orders ORDER BY source, order_id",
            "SELECT * FROM journey_events ORDER BY event_id",
            "SELECT * FROM growthflow_people ORDER BY source, stream, record_id, customer_id",
            "SELECT * FROM growthflow_derived ORDER BY source, stream, record_id",
        ] {
            let (a, b) = (rows(&file, sql), rows(&memory, sql));
            assert!(!a.is_empty(), "{sql}");
            assert_eq!(a, b, "{sql}");
        }
        for dest in [&file, &memory] {
            assert_eq!(
                rows(
                    dest,
                    "SELECT (SELECT COUNT(*) FROM growthflow_derived),
                            (SELECT COUNT(*) FROM growthflow_people),
                            (SELECT COUNT(*) FROM journey_events)"
                ),
                vec![vec![
                    Sql::Integer(2000),
                    Sql::Integer(300),
                    Sql::Integer(2000)
                ]]
            );
            assert_eq!(
                rows(
                    dest,
                    "SELECT total_price, email FROM orders WHERE order_id = 'o7'"
                ),
                vec![vec![Sql::Real(99.0), Sql::Null]]
            );
            assert_eq!(
                rows(
                    dest,
                    "SELECT total_price FROM orders WHERE order_id = 'o1999'"
                ),
                vec![vec![Sql::Real(1999.5)]]
            );
        }
    }
}
