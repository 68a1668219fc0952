//! The report's rollups (migration 0008): journey events, valid orders and refunds summed per day, and
//! each customer's valid orders summarised, so that a report over two years reads days and customers
//! instead of millions of rows. Written here, beside the queries that read them, with the same
//! [`Dialect`] pieces (`sum_money`, `valid_order`, `currency_key`, the JSON keys), so every metric keeps
//! one definition whichever store and whichever table it is read from.
//!
//! Triggers on `journey_events` and `orders` note the days and customers a change touches (old and new
//! values, and the days of a changed order's refunds) in `growthflow_rollup_dirty_days` and
//! `growthflow_rollup_dirty_customers`; [`refresh`] recomputes exactly those, set-based, and empties the
//! lists. The journey rebuild calls it in its own transaction, so a committed dataset is always
//! consistent; the report calls it first only if rows were written by something else (by hand, a
//! test), see [`ensure_fresh`].

use super::sql::{Dataset, Dialect};
use super::ReportError;

/// Days recomputed per statement, at most: a statement covers the dirty days of a span of this many
/// calendar days, which bounds the rows SQLite sorts at once (≈ 14,000 events a day in the benchmark's
/// warehouse) and the range of orders it reads, while keeping the statements few.
const DAYS_PER_CHUNK: i64 = 16;

/// A refresh of more days than this (a full rebuild, the migration) gathers the rollups' statistics.
const FULL_REFRESH_DAYS: usize = 90;

/// Where the refresh's statements run: a SQLite connection (or transaction) or a PostgreSQL client
/// (or transaction).
trait Exec {
    fn dialect(&self) -> Dialect;
    /// Run `sql` with text parameters.
    fn exec(&mut self, sql: &str, params: &[&str]) -> Result<(), ReportError>;
    /// The first column of every row, as text.
    fn texts(&mut self, sql: &str) -> Result<Vec<String>, ReportError>;
}

impl Exec for &rusqlite::Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn exec(&mut self, sql: &str, params: &[&str]) -> Result<(), ReportError> {
        self.execute(sql, rusqlite::params_from_iter(params.iter()))?;
        Ok(())
    }
    fn texts(&mut self, sql: &str) -> Result<Vec<String>, ReportError> {
        let mut stmt = self.prepare(sql)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

struct Pg<'a, C: postgres::GenericClient>(&'a mut C);

impl<C: postgres::GenericClient> Exec for Pg<'_, C> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
    fn exec(&mut self, sql: &str, params: &[&str]) -> Result<(), ReportError> {
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn postgres::types::ToSql + Sync))
            .collect();
        self.0.execute(sql, &params)?;
        Ok(())
    }
    fn texts(&mut self, sql: &str) -> Result<Vec<String>, ReportError> {
        Ok(self
            .0
            .query(sql, &[])?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect())
    }
}

/// Recompute the rollups of the days and customers changed since the last refresh, in the caller's
/// transaction (the journey rebuild's, or the migration's that adds the rollups).
pub fn refresh_rollups_sqlite(conn: &rusqlite::Connection) -> Result<(), ReportError> {
    refresh(&mut { conn })
}

/// [`refresh_rollups_sqlite`] for PostgreSQL: run it in a transaction (the rebuild's), which it locks
/// the lists of changes in, so two refreshes never write the same days twice.
pub fn refresh_rollups_postgres(
    client: &mut impl postgres::GenericClient,
) -> Result<(), ReportError> {
    refresh(&mut Pg(client))
}

/// Refresh the rollups first if something other than the rebuild (rows inserted by hand, a test)
/// left changes unrolled; a dataset kept by growthflow never has any, and is only read.
pub(super) fn ensure_fresh(db: &mut Dataset<'_>) -> Result<(), ReportError> {
    const PENDING: &str = "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM growthflow_rollup_dirty_days LIMIT 1) a)
                + (SELECT COUNT(*) FROM (SELECT 1 FROM growthflow_rollup_dirty_customers LIMIT 1) b)";
    match db {
        Dataset::Sqlite(conn) => {
            let pending: i64 = conn.query_row(PENDING, [], |r| r.get(0))?;
            if pending == 0 {
                return Ok(());
            }
            conn.execute_batch("SAVEPOINT growthflow_rollup")?;
            match refresh(&mut { *conn }) {
                Ok(()) => conn.execute_batch("RELEASE growthflow_rollup")?,
                Err(e) => {
                    conn.execute_batch("ROLLBACK TO growthflow_rollup; RELEASE growthflow_rollup")?;
                    return Err(e);
                }
            }
        }
        Dataset::Postgres(client) => {
            let pending: i64 = client.query_one(PENDING, &[])?.get(0);
            if pending == 0 {
                return Ok(());
            }
            // A reader's role (a BI tool's, granted SELECT only) cannot bring them up to date: say
            // so, instead of the server's bare "permission denied" halfway through the refresh.
            let row = client.query_one(
                "SELECT current_user::TEXT,
                        has_table_privilege('growthflow_rollup_dirty_days', 'DELETE')
                        AND has_table_privilege('growthflow_rollup_dirty_customers', 'DELETE')
                        AND has_table_privilege('growthflow_rollup_events', 'INSERT')",
                &[],
            )?;
            if !row.get::<_, bool>(1) {
                return Err(ReportError::RollupsBehind { role: row.get(0) });
            }
            let mut tx = client.transaction()?;
            refresh(&mut Pg(&mut tx))?;
            tx.commit()?;
        }
    }
    Ok(())
}

fn refresh(x: &mut impl Exec) -> Result<(), ReportError> {
    let d = x.dialect();
    if d == Dialect::Postgres {
        x.exec(
            "LOCK TABLE growthflow_rollup_dirty_days, growthflow_rollup_dirty_customers
             IN EXCLUSIVE MODE",
            &[],
        )?;
    }
    let days = x.texts(&format!(
        "SELECT {} FROM growthflow_rollup_dirty_days ORDER BY date",
        d.date_text("date")
    ))?;
    let statements = day_statements(d);
    for (lo, hi) in spans(&days) {
        for sql in &statements {
            x.exec(sql, &[lo, hi])?;
        }
    }
    for sql in customer_statements(d) {
        x.exec(&sql, &[])?;
    }
    // After a full rebuild or the migration, the planner's statistics of the rollups are stale (or
    // absent): gather them now rather than wait for autovacuum. SQLite plans without them.
    if d == Dialect::Postgres && days.len() > FULL_REFRESH_DAYS {
        x.exec(
            "ANALYZE growthflow_rollup_events, growthflow_rollup_orders, growthflow_rollup_refunds,
                     growthflow_rollup_customers, growthflow_rollup_customer_currencies",
            &[],
        )?;
    }
    x.exec("DELETE FROM growthflow_rollup_dirty_days", &[])?;
    x.exec("DELETE FROM growthflow_rollup_dirty_customers", &[])?;
    Ok(())
}

/// The sorted `days` cut into spans of at most [`DAYS_PER_CHUNK`] calendar days: (first, last).
fn spans(days: &[String]) -> Vec<(&str, &str)> {
    let parse = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
    let mut out: Vec<(&str, &str)> = Vec::new();
    for day in days {
        match out.last_mut() {
            Some((lo, hi))
                if matches!((parse(lo), parse(day)), (Some(a), Some(b))
                    if (b - a).num_days() < DAYS_PER_CHUNK) =>
            {
                *hi = day
            }
            _ => out.push((day, day)),
        }
    }
    out
}

/// The statements that recompute the dirty days between parameters 1 and 2 (inclusive).
fn day_statements(d: Dialect) -> Vec<String> {
    let days = format!(
        "SELECT date FROM growthflow_rollup_dirty_days WHERE date BETWEEN {} AND {}",
        d.p_date(1),
        d.p_date(2)
    );
    vec![
        format!("DELETE FROM growthflow_rollup_events WHERE date IN ({days})"),
        // Grouped by everything a report query filters or groups events by; the sums are the
        // report's own (`sum_money` exact, quantities and clicks summed as the report sums them).
        format!(
            "INSERT INTO growthflow_rollup_events (date, event_type, currency, campaign, channel,
                 platform, attributed, records, quantity, value, clicks)
             SELECT date, event_type, currency, campaign, channel,
                    CASE WHEN event_type = 'reported_purchases' THEN {platform} END,
                    CASE WHEN event_type = 'placed_order' AND {attributed} THEN 1 ELSE 0 END,
                    COUNT(*), SUM(quantity), {value},
                    SUM(CASE WHEN event_type = 'ad_insights' THEN {clicks} END)
             FROM journey_events
             WHERE date IN ({days})
             GROUP BY 1, 2, 3, 4, 5, 6, 7",
            platform = d.json_text("attributes", "platform"),
            attributed = d.json_is_true("attributes", "attributed"),
            value = d.sum_money("value"),
            clicks = d.json_number("attributes", "clicks"),
        ),
        format!("DELETE FROM growthflow_rollup_orders WHERE date IN ({days})"),
        // Valid orders on the UTC day they were created: each dirty day's range of `created_at`, as
        // the report's window compares it.
        format!(
            "INSERT INTO growthflow_rollup_orders (date, currency, utm_campaign, channel, orders,
                 revenue)
             SELECT {day}, currency, utm_campaign, channel, COUNT(*), {revenue}
             FROM orders
             WHERE created_at >= {start} AND created_at < {end} AND {valid}
               AND {day} IN ({days})
             GROUP BY 1, 2, 3, 4",
            day = d.day_of("created_at"),
            revenue = d.sum_money("total_price"),
            start = d.day_start(&d.p_date(1)),
            end = d.day_start(&d.next_day(&d.p_date(2))),
            valid = d.valid_order(""),
        ),
        format!("DELETE FROM growthflow_rollup_refunds WHERE date IN ({days})"),
        // Refunds of valid orders, in their own currency else their order's.
        format!(
            "INSERT INTO growthflow_rollup_refunds (date, currency, refunds, amount)
             SELECT e.date, COALESCE(NULLIF(trim(e.currency), ''), o.currency), COUNT(*), {amount}
             FROM journey_events e
             JOIN orders o ON o.source = e.source AND o.order_id = {order_id}
             WHERE e.event_type = 'refund' AND e.date IN ({days}) AND {valid}
             GROUP BY 1, 2",
            amount = d.sum_money("e.value"),
            order_id = d.json_text("e.attributes", "order_id"),
            valid = d.valid_order("o"),
        ),
    ]
}

/// The statements that recompute the dirty customers' summaries.
fn customer_statements(d: Dialect) -> Vec<String> {
    let dirty = "SELECT customer_id FROM growthflow_rollup_dirty_customers";
    let valid = d.valid_order("");
    vec![
        format!("DELETE FROM growthflow_rollup_customers WHERE customer_id IN ({dirty})"),
        format!(
            "INSERT INTO growthflow_rollup_customers (customer_id, first_at, last_at, first_repeat_at,
                 last_repeat_at)
             SELECT customer_id, MIN(created_at), MAX(created_at),
                    MIN(CASE WHEN customer_order_index >= 2 THEN created_at END),
                    MAX(CASE WHEN customer_order_index >= 2 THEN created_at END)
             FROM orders
             WHERE customer_id IN ({dirty}) AND {valid} AND customer_id <> ''
             GROUP BY customer_id"
        ),
        format!("DELETE FROM growthflow_rollup_customer_currencies WHERE customer_id IN ({dirty})"),
        format!(
            "INSERT INTO growthflow_rollup_customer_currencies (customer_id, currency, first_at,
                 last_at, total)
             SELECT customer_id, {cur}, MIN(created_at), MAX(created_at), {total}
             FROM orders
             WHERE customer_id IN ({dirty}) AND {valid} AND customer_id <> ''
             GROUP BY 1, 2",
            cur = d.currency_key("currency"),
            total = d.sum_money("total_price"),
        ),
    ]
}

/// [`refresh_rollups_sqlite`] with the crate's error, for the rebuild and the migration runner.
pub(crate) fn refresh_sqlite(conn: &rusqlite::Connection) -> crate::Result<()> {
    refresh_rollups_sqlite(conn).map_err(into_crate)
}

/// [`refresh_rollups_postgres`] with the crate's error, for the rebuild and the migration runner.
pub(crate) fn refresh_postgres(client: &mut impl postgres::GenericClient) -> crate::Result<()> {
    refresh_rollups_postgres(client).map_err(into_crate)
}

fn into_crate(e: ReportError) -> crate::Error {
    match e {
        ReportError::Sql(e) => e.into(),
        ReportError::Postgres(e) => e.into(),
        other => crate::Error::destination(other.to_string()),
    }
}
