//! A full rebuild in PostgreSQL (the first sync, a new growthflow version, a source added or changed):
//! every raw record mapped again into emptied tables. It is where a large dataset spends its time, so
//! it takes shortcuts that the incremental path cannot:
//!
//! - The raw records are read on a second connection that imports the rebuild transaction's snapshot
//!   (so it reads exactly what the transaction would), in a thread of its own: the server prints the
//!   next payloads while the previous ones are parsed, mapped and written, instead of each waiting for
//!   the other. Where the second connection cannot be opened in that snapshot, the records are read
//!   in the transaction itself.
//! - They are read in no particular order (no sort of every payload): where two records give the same
//!   order, the one SQLite maps last (the greatest stream and record id) is kept, which is what the
//!   order of reading decided before.
//! - The tables are empty, so events, people and what each record produced are copied straight into
//!   their tables; the orders wait for the end, where they are numbered per person and inserted with
//!   their events already in their stage (first or repeat order), so nothing is written twice.

use std::sync::mpsc;

use postgres::fallible_iterator::FallibleIterator;

use super::stage::{copy_derived, copy_events, copy_orders, copy_people, stage_page, Staged};
use super::*;

/// Rows per page read from `raw_records`: a few pages are in flight between the reader and the
/// mappers, each holding its payloads' bytes.
const READ_PAGE: usize = 250;
/// Pages the reader may be ahead of the mapper.
const PAGES_AHEAD: usize = 4;

/// Every raw record, with its source's type; in no order (see the module's comment).
const SELECT_ALL: &str = "SELECT r.source, s.type, r.stream, r.record_id, r.payload
     FROM raw_records r JOIN growthflow_sources s ON s.source = r.source";

/// Empty the model and map every raw record into it (the orders numbered, their events staged).
pub(super) fn rebuild_all(
    tx: &mut Transaction<'_>,
    target: &PostgresTarget,
    mappers: &HashMap<&str, &Arc<dyn JourneyMapper>>,
    stats: &mut RebuildStats,
) -> Result<()> {
    // Taken before this transaction writes anything: the reader sees the raw records as it does.
    let snapshot: String = tx.query_one("SELECT pg_export_snapshot()", &[])?.get(0);
    tx.batch_execute(
        "DELETE FROM journey_events; DELETE FROM orders; DELETE FROM customers;
         DELETE FROM growthflow_derived; DELETE FROM growthflow_people;
         TRUNCATE gf_full_orders;",
    )?;
    let mut staged = Staged::default();
    let mut take = |tx: &mut Transaction<'_>, rows: Vec<postgres::Row>| -> Result<()> {
        stage_page(mappers, &rows, &mut staged, true, stats)?;
        if staged.len() >= FLUSH_ROWS {
            write(tx, &mut staged)?;
        }
        Ok(())
    };
    match reader_in(target, &snapshot) {
        Ok(client) => {
            let (pages, received) = mpsc::sync_channel(PAGES_AHEAD);
            std::thread::scope(|scope| {
                scope.spawn(move || read_all(client, pages));
                for page in received {
                    take(tx, page?)?;
                }
                Ok::<_, Error>(())
            })?;
        }
        Err(e) => {
            tracing::debug!(error = %e, "no second connection in the rebuild's snapshot; reading in the rebuild's own");
            let portal = tx.bind(SELECT_ALL, &[])?;
            loop {
                let rows = tx.query_portal(&portal, READ_PAGE as i32)?;
                if rows.is_empty() {
                    break;
                }
                take(tx, rows)?;
            }
        }
    }
    write(tx, &mut staged)?;
    // Nothing analyses temporary tables: without statistics the planner takes the orders for a few
    // thousand rows and sorts where it would hash. What the plan needs is the row count and the keys'
    // distinct values: only the keys are analysed, from a small sample (every column from the default
    // sample took 0.9 s of a 30k-order rebuild, the keys from a small one a few milliseconds; the
    // plan is the same). The rest of the transaction samples as the server does by default.
    tx.batch_execute(
        "SET LOCAL default_statistics_target = 10;
         ANALYZE gf_full_orders (source, order_id, customer_id);
         SET LOCAL default_statistics_target TO DEFAULT;",
    )?;
    tx.batch_execute(FULL_ORDERS_SQL)?;
    Ok(())
}

/// A second connection whose transaction sees exactly the exported `snapshot` (what the rebuild's
/// transaction saw before it wrote anything). Set up here, before any thread starts, so that a server
/// or pooler that refuses any of it leaves the rebuild to read in its own transaction.
fn reader_in(target: &PostgresTarget, snapshot: &str) -> Result<Client> {
    let mut client = target.connect()?;
    // The id is the server's own (hex digits and dashes); quoted as a literal all the same.
    client.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
         SET TRANSACTION SNAPSHOT '{}'",
        snapshot.replace('\'', "''")
    ))?;
    Ok(client)
}

/// Stream every raw record on `client` (see [`reader_in`]) and send them a page at a time: the server
/// sends rows as fast as they are taken, so it prints the next ones while the rebuild maps these.
/// Stops at the first error (sent on) or when the receiver is gone.
fn read_all(mut client: Client, pages: mpsc::SyncSender<Result<Vec<postgres::Row>>>) {
    let mut read = || -> Result<()> {
        let mut rows = client.query_raw(SELECT_ALL, std::iter::empty::<&str>())?;
        let mut page = Vec::with_capacity(READ_PAGE);
        while let Some(row) = rows.next()? {
            page.push(row);
            if page.len() == READ_PAGE {
                let full = std::mem::replace(&mut page, Vec::with_capacity(READ_PAGE));
                if pages.send(Ok(full)).is_err() {
                    return Ok(()); // The rebuild stopped (its own error); nothing more to read.
                }
            }
        }
        if !page.is_empty() {
            let _ = pages.send(Ok(page));
        }
        Ok(())
    };
    if let Err(e) = read() {
        let _ = pages.send(Err(e));
    }
}

/// Copy what is staged into the model's tables (the orders into `gf_full_orders`, for the end).
fn write(tx: &mut Transaction<'_>, staged: &mut Staged) -> Result<()> {
    copy_orders(tx, "gf_full_orders", &staged.orders)?;
    copy_events(tx, "journey_events", false, &staged.events)?;
    copy_people(tx, "growthflow_people", &staged.people)?;
    copy_derived(tx, "growthflow_derived", false, &staged.derived)?;
    staged.clear();
    Ok(())
}

/// The orders, once all are mapped: of an order that several records give, the version of the record
/// SQLite maps last; numbered as `settle_people` numbers them (a person's valid orders by creation
/// time), and each record's order event inserted with the stage that number gives (repeat orders are
/// retention). Then every person the model names, for the rest of `settle_people`.
const FULL_ORDERS_SQL: &str = "
    WITH o AS (
        SELECT DISTINCT ON (source, order_id) * FROM gf_full_orders
        ORDER BY source, order_id, stream COLLATE \"C\" DESC, record_id COLLATE \"C\" DESC),
    n AS (
        SELECT o.*,
          CASE WHEN customer_id IS NOT NULL AND NOT cancelled AND NOT test THEN
            ROW_NUMBER() OVER (PARTITION BY customer_id, (NOT cancelled AND NOT test)
                               ORDER BY created_at, source COLLATE \"C\", order_id COLLATE \"C\")
          END AS idx
        FROM o),
    inserted AS (
        INSERT INTO orders (source, order_id, customer_id, email, created_at, currency, total_price,
           subtotal_price, total_discounts, total_refunded, financial_status, cancelled, test,
           utm_source, utm_medium, utm_campaign, channel, landing_page, referrer, customer_order_index)
        SELECT source, order_id, customer_id, email, created_at, currency, total_price, subtotal_price,
           total_discounts, total_refunded, financial_status, cancelled, test, utm_source, utm_medium,
           utm_campaign, channel, landing_page, referrer, idx
        FROM n)
    INSERT INTO journey_events (event_id, source, stream, occurred_at, date, stage, event_type,
       channel, campaign, customer_id, quantity, value, currency, attributes)
    SELECT f.source || ':' || f.stream || ':' || f.record_id || ':order:' || f.order_id,
       f.source, f.stream, f.created_at, (f.created_at AT TIME ZONE 'UTC')::date,
       CASE WHEN n.idx >= 2 THEN 'retention' ELSE 'conversion' END, 'order', f.channel,
       f.utm_campaign, f.customer_id, 1, f.total_price, f.currency,
       jsonb_build_object('order_id', f.order_id, 'valid', NOT f.cancelled AND NOT f.test)
    FROM gf_full_orders f JOIN n ON n.source = f.source AND n.order_id = f.order_id;
    TRUNCATE gf_full_orders;
    INSERT INTO gf_affected
      SELECT customer_id FROM orders WHERE customer_id IS NOT NULL
      UNION SELECT customer_id FROM journey_events WHERE customer_id IS NOT NULL
      UNION SELECT customer_id FROM growthflow_people
    ON CONFLICT DO NOTHING;
    ANALYZE gf_affected;";
