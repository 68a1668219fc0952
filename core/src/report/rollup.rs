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
    let statements = day_statements(d, Scope::Dirty);
    for (lo, hi) in spans(&days) {
        for sql in &statements {
            x.exec(sql, &[lo, hi])?;
        }
    }
    for sql in customer_statements(d, Scope::Dirty) {
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

/// Recompute every rollup from every row, whatever the lists of changes say, and empty them: what a
/// full rebuild needs, every day and customer having changed. One grouped pass per rollup instead of
/// one per span of days, each of which looked the span's days up in the lists and probed them for
/// every row it read; the rows are the same as [`refresh`] gives once every day and customer is noted.
fn refresh_all(x: &mut impl Exec) -> Result<(), ReportError> {
    let d = x.dialect();
    for sql in day_statements(d, Scope::All)
        .into_iter()
        .chain(customer_statements(d, Scope::All))
    {
        x.exec(&sql, &[])?;
    }
    x.exec("DELETE FROM growthflow_rollup_dirty_days", &[])?;
    x.exec("DELETE FROM growthflow_rollup_dirty_customers", &[])?;
    Ok(())
}

/// What a refresh recomputes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The days and customers in the lists of changes (days between parameters 1 and 2).
    Dirty,
    /// Everything.
    All,
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

/// The statements that recompute the dirty days between parameters 1 and 2 (inclusive), or every day.
fn day_statements(d: Dialect, scope: Scope) -> Vec<String> {
    let days = format!(
        "SELECT date FROM growthflow_rollup_dirty_days WHERE date BETWEEN {} AND {}",
        d.p_date(1),
        d.p_date(2)
    );
    // `… AND <expr> IN (<the dirty days>)`, or nothing when every day is recomputed.
    let and_dirty = |expr: &str| match scope {
        Scope::Dirty => format!(" AND {expr} IN ({days})"),
        Scope::All => String::new(),
    };
    let delete = |table: &str| match scope {
        Scope::Dirty => format!("DELETE FROM {table} WHERE date IN ({days})"),
        Scope::All => format!("DELETE FROM {table}"),
    };
    // Valid orders on the UTC day they were created: each dirty day's range of `created_at`, as the
    // report's window compares it.
    let valid = d.valid_order("");
    let orders = match scope {
        Scope::Dirty => format!(
            "created_at >= {start} AND created_at < {end} AND {valid}{days}",
            start = d.day_start(&d.p_date(1)),
            end = d.day_start(&d.next_day(&d.p_date(2))),
            days = and_dirty(&d.day_of("created_at")),
        ),
        Scope::All => valid,
    };
    let events = match scope {
        Scope::Dirty => format!("WHERE date IN ({days})"),
        Scope::All => String::new(),
    };
    vec![
        delete("growthflow_rollup_events"),
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
             {events}
             GROUP BY 1, 2, 3, 4, 5, 6, 7",
            platform = d.json_text("attributes", "platform"),
            attributed = d.json_is_true("attributes", "attributed"),
            value = d.sum_money("value"),
            clicks = d.json_number("attributes", "clicks"),
        ),
        delete("growthflow_rollup_orders"),
        // Valid orders on the UTC day they were created.
        format!(
            "INSERT INTO growthflow_rollup_orders (date, currency, utm_campaign, channel, orders,
                 revenue)
             SELECT {day}, currency, utm_campaign, channel, COUNT(*), {revenue}
             FROM orders
             WHERE {orders}
             GROUP BY 1, 2, 3, 4",
            day = d.day_of("created_at"),
            revenue = d.sum_money("total_price"),
        ),
        delete("growthflow_rollup_refunds"),
        // Refunds of valid orders, in their own currency else their order's.
        format!(
            "INSERT INTO growthflow_rollup_refunds (date, currency, refunds, amount)
             SELECT e.date, COALESCE(NULLIF(trim(e.currency), ''), o.currency), COUNT(*), {amount}
             FROM journey_events e
             JOIN orders o ON o.source = e.source AND o.order_id = {order_id}
             WHERE e.event_type = 'refund'{days} AND {valid}
             GROUP BY 1, 2",
            days = and_dirty("e.date"),
            amount = d.sum_money("e.value"),
            order_id = d.json_text("e.attributes", "order_id"),
            valid = d.valid_order("o"),
        ),
    ]
}

/// The statements that recompute the dirty customers' summaries, or every customer's.
fn customer_statements(d: Dialect, scope: Scope) -> Vec<String> {
    let (dirty, only_dirty) = match scope {
        Scope::Dirty => (
            " WHERE customer_id IN (SELECT customer_id FROM growthflow_rollup_dirty_customers)",
            "customer_id IN (SELECT customer_id FROM growthflow_rollup_dirty_customers) AND ",
        ),
        Scope::All => ("", ""),
    };
    let valid = d.valid_order("");
    vec![
        format!("DELETE FROM growthflow_rollup_customers{dirty}"),
        format!(
            "INSERT INTO growthflow_rollup_customers (customer_id, first_at, last_at, first_repeat_at,
                 last_repeat_at)
             SELECT customer_id, MIN(created_at), MAX(created_at),
                    MIN(CASE WHEN customer_order_index >= 2 THEN created_at END),
                    MAX(CASE WHEN customer_order_index >= 2 THEN created_at END)
             FROM orders
             WHERE {only_dirty}{valid} AND customer_id <> ''
             GROUP BY customer_id"
        ),
        format!("DELETE FROM growthflow_rollup_customer_currencies{dirty}"),
        format!(
            "INSERT INTO growthflow_rollup_customer_currencies (customer_id, currency, first_at,
                 last_at, total)
             SELECT customer_id, {cur}, MIN(created_at), MAX(created_at), {total}
             FROM orders
             WHERE {only_dirty}{valid} AND customer_id <> ''
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

/// Every rollup recomputed from every row, in the caller's transaction: for a full rebuild, which
/// changed every day and customer (see [`refresh_all`]).
pub(crate) fn refresh_all_sqlite(conn: &rusqlite::Connection) -> crate::Result<()> {
    refresh_all(&mut { conn }).map_err(into_crate)
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
