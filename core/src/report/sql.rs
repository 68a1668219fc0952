//! The seam between the report's one set of queries and the stores it runs on: every piece of SQL
//! text that depends on the dialect, and the one function that runs a query, are here.
//!
//! The report's queries (in `queries` and `campaigns`) are otherwise plain SQL (`SELECT … GROUP BY`,
//! `CASE`, `COALESCE`) shared by both stores, so each metric has one definition. What differs:
//!
//! | | SQLite | PostgreSQL |
//! |---|---|---|
//! | placeholders | `?1` | `$1::text` (every parameter is bound as text) |
//! | JSON key | `json_extract(c, '$.k')` | `c ->> 'k'` |
//! | money | REAL, summed as integers of 10⁻⁶ | NUMERIC, summed exactly as is |
//! | event dates | `YYYY-MM-DD` text | `DATE` |
//! | order times | RFC 3339 text (UTC) | `TIMESTAMPTZ` |
//! | order flags | 0/1 integers | `BOOLEAN` |

use rusqlite::types::ValueRef;
use rust_decimal::Decimal;

use super::ReportError;

/// A dataset the report can read: a SQLite connection or a PostgreSQL client (blocking: call
/// [`build_report`](super::build_report) from a thread that runs no async runtime).
pub enum Dataset<'a> {
    /// A SQLite dataset.
    Sqlite(&'a rusqlite::Connection),
    /// A PostgreSQL dataset: the client's `search_path` must lead to the dataset's schema (as
    /// [`PostgresDestination::client`](crate::destination::postgres::PostgresDestination::client)'s
    /// does).
    Postgres(&'a mut postgres::Client),
}

impl std::fmt::Debug for Dataset<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dataset::Sqlite(_) => "Dataset::Sqlite",
            Dataset::Postgres(_) => "Dataset::Postgres",
        })
    }
}

impl<'a> From<&'a rusqlite::Connection> for Dataset<'a> {
    fn from(c: &'a rusqlite::Connection) -> Self {
        Dataset::Sqlite(c)
    }
}

impl<'a> From<&'a mut postgres::Client> for Dataset<'a> {
    fn from(c: &'a mut postgres::Client) -> Self {
        Dataset::Postgres(c)
    }
}

/// How a result column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Col {
    /// Text, possibly NULL.
    Text,
    /// A 64-bit integer (counts; NULL as 0).
    Int,
    /// A money sum made by [`Dialect::sum_money`] (NULL as 0).
    Money,
}

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val {
    Text(Option<String>),
    Int(i64),
    Money(Decimal),
}

/// One result row, read by the column kinds the query asked for.
#[derive(Debug)]
pub(super) struct Row(Vec<Val>);

impl Row {
    /// Column `i`, text (NULL as `None`).
    pub(super) fn opt_text(&self, i: usize) -> Option<String> {
        match &self.0[i] {
            Val::Text(t) => t.clone(),
            v => panic!("column {i} read as text but asked as {v:?}"),
        }
    }

    /// Column `i`, text (NULL as empty).
    pub(super) fn text(&self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }

    /// Column `i`, an integer.
    pub(super) fn int(&self, i: usize) -> i64 {
        match &self.0[i] {
            Val::Int(n) => *n,
            v => panic!("column {i} read as an integer but asked as {v:?}"),
        }
    }

    /// Column `i`, money.
    pub(super) fn money(&self, i: usize) -> Decimal {
        match &self.0[i] {
            Val::Money(m) => *m,
            v => panic!("column {i} read as money but asked as {v:?}"),
        }
    }
}

/// Money is summed in SQLite as integers of this many decimal places: the SQLite destination stores
/// money as REAL rounded to 6 decimals, so scaling by 10⁶ and rounding recovers each stored amount
/// exactly and the integer sum is exact (up to 9.2 × 10¹² currency units).
const MONEY_SCALE: u32 = 6;

impl Dataset<'_> {
    /// The dialect of this store.
    pub(super) fn dialect(&self) -> Dialect {
        match self {
            Dataset::Sqlite(_) => Dialect::Sqlite,
            Dataset::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Run `sql` with text parameters `params` (`?N`/`$N` from [`Dialect::p`] and friends), reading
    /// each row's columns as `cols`.
    pub(super) fn rows(
        &mut self,
        sql: &str,
        params: &[&str],
        cols: &[Col],
    ) -> Result<Vec<Row>, ReportError> {
        RECORDER.with(|r| {
            if let Some(log) = r.borrow_mut().as_mut() {
                log.push((
                    sql.to_string(),
                    params.iter().map(|p| p.to_string()).collect(),
                ));
            }
        });
        match self {
            Dataset::Sqlite(conn) => {
                let mut stmt = conn.prepare(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut row = Vec::with_capacity(cols.len());
                    for (i, col) in cols.iter().enumerate() {
                        row.push(match (col, r.get_ref(i)?) {
                            (Col::Text, ValueRef::Null) => Val::Text(None),
                            (Col::Text, ValueRef::Integer(n)) => Val::Text(Some(n.to_string())),
                            (Col::Text, ValueRef::Real(f)) => Val::Text(Some(f.to_string())),
                            (Col::Text, v) => Val::Text(Some(
                                String::from_utf8_lossy(v.as_bytes().unwrap_or_default())
                                    .into_owned(),
                            )),
                            (Col::Int | Col::Money, ValueRef::Null) => zero(*col),
                            (Col::Int, _) => Val::Int(r.get(i)?),
                            (Col::Money, _) => {
                                Val::Money(Decimal::new(r.get(i)?, MONEY_SCALE).normalize())
                            }
                        });
                    }
                    out.push(Row(row));
                }
                Ok(out)
            }
            Dataset::Postgres(client) => {
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                let rows = client.query(sql, &params)?;
                rows.iter()
                    .map(|r| {
                        cols.iter()
                            .enumerate()
                            .map(|(i, col)| {
                                Ok(match col {
                                    Col::Text => Val::Text(r.try_get(i)?),
                                    Col::Int => {
                                        Val::Int(r.try_get::<_, Option<i64>>(i)?.unwrap_or(0))
                                    }
                                    Col::Money => Val::Money(
                                        r.try_get::<_, Option<Decimal>>(i)?
                                            .unwrap_or_default()
                                            .normalize(),
                                    ),
                                })
                            })
                            .collect::<Result<Vec<_>, ReportError>>()
                            .map(Row)
                    })
                    .collect()
            }
        }
    }

    /// Start reading a report. PostgreSQL: one read-only snapshot for all its queries (the same data
    /// throughout, even while a sync commits), without JIT compilation, which costs more than the
    /// report's queries over rollups take to run. SQLite: nothing (the caller's connection may already
    /// be in a transaction).
    pub(super) fn begin_report(&mut self) -> Result<(), ReportError> {
        if let Dataset::Postgres(client) = self {
            client.batch_execute(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL jit = off",
            )?;
        }
        Ok(())
    }

    /// End what [`Self::begin_report`] began.
    pub(super) fn end_report(&mut self) -> Result<(), ReportError> {
        if let Dataset::Postgres(client) = self {
            client.batch_execute("COMMIT")?;
        }
        Ok(())
    }

    /// The one row an aggregate without `GROUP BY` returns.
    pub(super) fn row(
        &mut self,
        sql: &str,
        params: &[&str],
        cols: &[Col],
    ) -> Result<Row, ReportError> {
        self.rows(sql, params, cols)?
            .into_iter()
            .next()
            .ok_or_else(|| ReportError::NoRow(sql.to_string()))
    }

    /// The store's plan for `sql`: SQLite's `EXPLAIN QUERY PLAN` drawn as a tree, or PostgreSQL's
    /// `EXPLAIN (ANALYZE, BUFFERS)` (which runs the query).
    pub(super) fn explain(&mut self, sql: &str, params: &[&str]) -> Result<String, ReportError> {
        match self {
            Dataset::Sqlite(conn) => {
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let mut depth: Vec<(i64, usize)> = Vec::new();
                let mut out = String::new();
                while let Some(r) = rows.next()? {
                    let (id, parent, detail): (i64, i64, String) =
                        (r.get(0)?, r.get(1)?, r.get(3)?);
                    while depth.last().is_some_and(|(p, _)| *p != parent) {
                        depth.pop();
                    }
                    let level = depth.last().map_or(0, |(_, l)| l + 1);
                    depth.push((id, level));
                    out.push_str(&format!("{}{detail}\n", "  ".repeat(level)));
                }
                Ok(out)
            }
            Dataset::Postgres(client) => {
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                let rows = client.query(&format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"), &params)?;
                Ok(rows
                    .iter()
                    .map(|r| r.try_get::<_, String>(0).map(|l| l + "\n"))
                    .collect::<Result<String, _>>()?)
            }
        }
    }

    /// Run `sql` and read every row without converting it (timing only).
    pub(super) fn run(&mut self, sql: &str, params: &[&str]) -> Result<(), ReportError> {
        match self {
            Dataset::Sqlite(conn) => {
                let mut stmt = conn.prepare(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                while rows.next()?.is_some() {}
            }
            Dataset::Postgres(client) => {
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                client.query(sql, &params)?;
            }
        }
        Ok(())
    }
}

/// The queries run on this thread while recording (see [`recording`]), with their parameters.
type Recorded = Vec<(String, Vec<String>)>;

thread_local! {
    static RECORDER: std::cell::RefCell<Option<Recorded>> = const { std::cell::RefCell::new(None) };
}

/// Run `f`, returning what it returned and every query [`Dataset::rows`] ran meanwhile on this
/// thread, so that `explain_report` explains exactly the report's own queries.
pub(super) fn recording<T>(f: impl FnOnce() -> T) -> (T, Recorded) {
    RECORDER.with(|r| *r.borrow_mut() = Some(Vec::new()));
    let out = f();
    let log = RECORDER.with(|r| r.borrow_mut().take()).unwrap_or_default();
    (out, log)
}

fn zero(col: Col) -> Val {
    match col {
        Col::Text => Val::Text(None),
        Col::Int => Val::Int(0),
        Col::Money => Val::Money(Decimal::ZERO),
    }
}

/// The SQL dialect of a store: everything the shared queries cannot write the same way in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `SUM` of a money expression, exact, 0 for no rows; read it as [`Col::Money`]. In SQLite each
    /// amount is scaled to an integer of 10⁻⁶ units first; PostgreSQL's NUMERIC sums exactly as is.
    pub(super) fn sum_money(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => {
                format!("COALESCE(SUM(CAST(ROUND(COALESCE({expr}, 0) * 1000000) AS INTEGER)), 0)")
            }
            Dialect::Postgres => format!("COALESCE(SUM({expr}), 0)"),
        }
    }

    /// `SUM` of the money sums made by [`Self::sum_money`] in a subquery (already exact in both).
    pub(super) fn sum_of_sums(self, col: &str) -> String {
        format!("COALESCE(SUM({col}), 0)")
    }

    /// `SUM` of integer counts (a rollup's, or a `CASE … THEN 1 ELSE 0`), as a 64-bit integer, 0 for
    /// no rows.
    pub(super) fn sum_int(self, expr: &str) -> String {
        let int = match self {
            Dialect::Sqlite => "INTEGER",
            Dialect::Postgres => "BIGINT",
        };
        format!("CAST(COALESCE(SUM({expr}), 0) AS {int})")
    }

    /// `SUM` of a count held as REAL/NUMERIC (quantities), as an integer, 0 for no rows.
    pub(super) fn sum_count(self, expr: &str) -> String {
        let int = match self {
            Dialect::Sqlite => "INTEGER",
            Dialect::Postgres => "BIGINT",
        };
        format!("CAST(ROUND(COALESCE(SUM({expr}), 0)) AS {int})")
    }

    /// A top-level key of a JSON object column, as text (numbers as their text, `true` as `1` in
    /// SQLite and `true` in PostgreSQL).
    pub(super) fn json_get(self, col: &str, key: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract({col}, '$.{key}')"),
            Dialect::Postgres => format!("({col} ->> '{key}')"),
        }
    }

    /// A JSON key holding a number (or a numeric string), as a number.
    pub(super) fn json_number(self, col: &str, key: &str) -> String {
        match self {
            Dialect::Sqlite => format!("CAST({} AS REAL)", self.json_get(col, key)),
            // A text that is not a number is NULL (SQLite's CAST makes it 0): never an error that
            // would stop the whole report.
            Dialect::Postgres => format!(
                "CASE WHEN {v} ~ '^\\s*[-+]?[0-9]+(\\.[0-9]*)?\\s*$' THEN CAST(trim({v}) AS NUMERIC) END",
                v = self.json_get(col, key)
            ),
        }
    }

    /// A JSON key holding an id (number or string), as text.
    pub(super) fn json_text(self, col: &str, key: &str) -> String {
        format!("CAST({} AS TEXT)", self.json_get(col, key))
    }

    /// True when a JSON key is `true` (or 1, or the string `"true"`).
    pub(super) fn json_is_true(self, col: &str, key: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{} IN (1, 'true')", self.json_get(col, key)),
            Dialect::Postgres => format!("{} IN ('true', '1')", self.json_get(col, key)),
        }
    }

    /// The `YYYY-MM-DD` UTC date of an order time, as text.
    pub(super) fn date_of(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => format!("substr({col}, 1, 10)"),
            Dialect::Postgres => format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
        }
    }

    /// The first instant of a day (an event date, or a rollup's day), as `orders.created_at` is
    /// compared with it: the same bound as [`Self::p_time`]'s.
    pub(super) fn day_start(self, day: &str) -> String {
        match self {
            Dialect::Sqlite => day.to_string(),
            Dialect::Postgres => format!("(CAST({day} AS timestamp) AT TIME ZONE 'UTC')"),
        }
    }

    /// The UTC day of an order time, as the rollups' `date` (text in SQLite, `DATE` in PostgreSQL).
    pub(super) fn day_of(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => format!("substr({col}, 1, 10)"),
            Dialect::Postgres => format!("(({col}) AT TIME ZONE 'UTC')::date"),
        }
    }

    /// The day after a day (a `YYYY-MM-DD` text in SQLite, a `DATE` in PostgreSQL).
    pub(super) fn next_day(self, day: &str) -> String {
        match self {
            Dialect::Sqlite => format!("date({day}, '+1 day')"),
            Dialect::Postgres => format!("({day} + 1)"),
        }
    }

    /// An event date (`journey_events.date`) as `YYYY-MM-DD` text.
    pub(super) fn date_text(self, col: &str) -> String {
        match self {
            Dialect::Sqlite => col.to_string(),
            Dialect::Postgres => format!("to_char({col}, 'YYYY-MM-DD')"),
        }
    }

    /// The key a currency column is grouped under: trimmed, upper-cased ISO 4217, or [`UNKNOWN`].
    pub(super) fn currency_key(self, col: &str) -> String {
        format!("COALESCE(NULLIF(upper(trim({col})), ''), '{UNKNOWN}')")
    }

    /// An order that counts (neither cancelled nor a test order).
    pub(super) fn valid_order(self, alias: &str) -> String {
        let a = if alias.is_empty() {
            String::new()
        } else {
            format!("{alias}.")
        };
        match self {
            Dialect::Sqlite => format!("{a}cancelled = 0 AND {a}test = 0"),
            Dialect::Postgres => format!("NOT {a}cancelled AND NOT {a}test"),
        }
    }

    /// The `n`th (1-based) parameter, as text.
    pub(super) fn p(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}::text"),
        }
    }

    /// The `n`th parameter, a `YYYY-MM-DD` day, compared with `journey_events.date`.
    pub(super) fn p_date(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("CAST(${n}::text AS DATE)"),
        }
    }

    /// The `n`th parameter, a `YYYY-MM-DD` day, as the instant its UTC midnight (compared with
    /// `orders.created_at`; RFC 3339 text compares correctly with a bare date in SQLite).
    pub(super) fn p_time(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => {
                format!("(CAST(${n}::text AS DATE)::timestamp AT TIME ZONE 'UTC')")
            }
        }
    }
}

/// The currency key of money recorded without a currency.
pub(crate) const UNKNOWN: &str = "unknown";
