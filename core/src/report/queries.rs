//! The report's reads of the dataset: one aggregate query per metric family. Dialect-specific SQL text
//! comes from [`super::sql`]; everything here is plain SQL.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;

use super::sql::{self, p};
use super::{ReportError, ReportOptions};

/// A sum of money read from SQL as an exact integer of 10⁻⁶ units.
pub(super) fn money_from_sql(units: i64) -> Decimal {
    Decimal::new(units, sql::MONEY_SCALE).normalize()
}

/// The window as SQL parameters: `YYYY-MM-DD` bounds for `journey_events.date`, and a half-open
/// `[since, until + 1 day)` range for `orders.created_at`, which compares RFC 3339 text correctly and
/// can use the `orders_created_at` index (a test on the date part could not).
pub(super) struct Window {
    pub(super) since: String,
    pub(super) until: String,
    pub(super) until_next: String,
}

impl Window {
    pub(super) fn new(since: NaiveDate, until: NaiveDate) -> Window {
        Window {
            since: since.to_string(),
            until: until.to_string(),
            until_next: until
                .succ_opt()
                .map_or_else(|| "9999-12-32".to_string(), |d| d.to_string()),
        }
    }
}

/// The window the user asked for, its open sides filled from the data (see `docs/report.md`).
pub(super) fn resolve_window(
    conn: &Connection,
    opts: &ReportOptions,
) -> Result<(NaiveDate, NaiveDate), ReportError> {
    let back = |d: NaiveDate| d.checked_sub_days(Days::new(29)).unwrap_or(NaiveDate::MIN);
    match (opts.since, opts.until) {
        (Some(since), Some(until)) => {
            if since > until {
                return Err(ReportError::InvalidWindow { since, until });
            }
            Ok((since, until))
        }
        (None, Some(until)) => Ok((back(until), until)),
        (since, None) => {
            let latest = latest_data_date(conn)?.unwrap_or_else(|| Utc::now().date_naive());
            match since {
                Some(since) => Ok((since, latest.max(since))),
                None => Ok((back(latest), latest)),
            }
        }
    }
}

/// The latest date anything in the dataset belongs to, or `None` for an empty dataset.
fn latest_data_date(conn: &Connection) -> Result<Option<NaiveDate>, ReportError> {
    let order: Option<String> = conn.query_row(
        &format!("SELECT {} FROM orders", sql::date_of("max(created_at)")),
        [],
        |r| r.get(0),
    )?;
    let event: Option<String> =
        conn.query_row("SELECT max(date) FROM journey_events", [], |r| r.get(0))?;
    let parse =
        |table: &'static str, v: Option<String>| -> Result<Option<NaiveDate>, ReportError> {
            match v {
                None => Ok(None),
                Some(v) => NaiveDate::parse_from_str(v.get(..10).unwrap_or(&v), "%Y-%m-%d")
                    .map(Some)
                    .map_err(|_| ReportError::BadDate { table, value: v }),
            }
        };
    Ok(parse("orders", order)?.max(parse("journey_events", event)?))
}

/// The registered connector types, or `None` when the dataset has no registry rows (built by hand).
pub(super) fn source_types(conn: &Connection) -> Result<Option<Vec<String>>, ReportError> {
    let mut stmt = conn.prepare("SELECT DISTINCT type FROM growthflow_sources ORDER BY type")?;
    let types: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(if types.is_empty() { None } else { Some(types) })
}

/// Per-event-type totals over the window.
#[derive(Debug, Clone, Default)]
pub(super) struct EventTotal {
    /// Sum of `quantity`, as an integer count.
    pub(super) quantity: i64,
    /// Number of rows.
    pub(super) rows: i64,
    /// Sum of `attributes.clicks` (Meta).
    pub(super) clicks: i64,
    /// Per currency key: (sum of `quantity`, exact sum of `value`).
    pub(super) by_currency: BTreeMap<String, (i64, Decimal)>,
}

pub(super) fn event_totals(
    conn: &Connection,
    w: &Window,
) -> Result<HashMap<String, EventTotal>, ReportError> {
    let sql = format!(
        "SELECT event_type, {cur}, {qty}, COUNT(*), {value},
                {clicks}
         FROM journey_events
         WHERE event_type IN ('ad_insights', 'sessions', 'new_users', 'engaged_sessions', 'add_to_carts',
                              'checkouts_started', 'email_opened', 'email_clicked', 'checkout_abandoned')
           AND date BETWEEN {p1} AND {p2}
         GROUP BY 1, 2",
        cur = sql::currency_key("currency"),
        qty = sql::sum_count("quantity"),
        value = sql::sum_money("value"),
        clicks = sql::sum_count(&format!(
            "CASE WHEN event_type = 'ad_insights' THEN {} END",
            sql::json_number("attributes", "clicks")
        )),
        p1 = p(1),
        p2 = p(2),
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![w.since, w.until], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    let mut out: HashMap<String, EventTotal> = HashMap::new();
    for row in rows {
        let (event_type, currency, quantity, n, value, clicks) = row?;
        let t = out.entry(event_type).or_default();
        t.quantity += quantity;
        t.rows += n;
        t.clicks += clicks;
        let c = t.by_currency.entry(currency).or_default();
        c.0 += quantity;
        c.1 += money_from_sql(value);
    }
    Ok(out)
}

/// Valid orders created in the window, per currency key: (count, exact total).
pub(super) fn order_totals(
    conn: &Connection,
    w: &Window,
) -> Result<BTreeMap<String, (i64, Decimal)>, ReportError> {
    let sql = format!(
        "SELECT {cur}, COUNT(*), {total} FROM orders
         WHERE {valid} AND created_at >= {p1} AND created_at < {p2}
         GROUP BY 1",
        cur = sql::currency_key("currency"),
        total = sql::sum_money("total_price"),
        valid = sql::valid_order(""),
        p1 = p(1),
        p2 = p(2),
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![w.since, w.until_next], |r| {
        Ok((
            r.get::<_, String>(0)?,
            (r.get::<_, i64>(1)?, money_from_sql(r.get(2)?)),
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The report currency when the user names none: the most frequent currency of the window's valid
/// orders; with no orders, the most frequent currency of the window's events that carry money (a
/// Meta-only account in EUR should not be labelled USD); else `USD`. Ties go to the alphabetically
/// first code; amounts without a currency never choose it.
pub(super) fn default_currency(
    conn: &Connection,
    w: &Window,
    orders: &BTreeMap<String, (i64, Decimal)>,
) -> Result<String, ReportError> {
    // BTreeMap iterates alphabetically and max_by_key keeps the last maximum: iterate in reverse.
    let from_orders = orders
        .iter()
        .rev()
        .filter(|(c, _)| c.as_str() != sql::UNKNOWN)
        .max_by_key(|(_, (n, _))| *n)
        .map(|(c, _)| c.clone());
    if let Some(c) = from_orders {
        return Ok(c);
    }
    let from_events: Option<String> = conn
        .query_row(
            &format!(
                "SELECT upper(trim(currency)) AS c FROM journey_events
                 WHERE date BETWEEN {p1} AND {p2} AND value IS NOT NULL
                   AND currency IS NOT NULL AND trim(currency) <> ''
                 GROUP BY c ORDER BY COUNT(*) DESC, c LIMIT 1",
                p1 = p(1),
                p2 = p(2),
            ),
            params![w.since, w.until],
            |r| r.get(0),
        )
        .optional()?;
    Ok(from_events.unwrap_or_else(|| "USD".to_string()))
}

/// (distinct customers with a valid order in the window, those with a repeat order in it).
pub(super) fn customer_counts(conn: &Connection, w: &Window) -> Result<(i64, i64), ReportError> {
    let sql = format!(
        "SELECT COUNT(DISTINCT customer_id),
                COUNT(DISTINCT CASE WHEN customer_order_index >= 2 THEN customer_id END)
         FROM orders
         WHERE {valid} AND created_at >= {p1} AND created_at < {p2}
           AND customer_id IS NOT NULL AND customer_id <> ''",
        valid = sql::valid_order(""),
        p1 = p(1),
        p2 = p(2),
    );
    Ok(conn.query_row(&sql, params![w.since, w.until_next], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?)
}

/// (the window's customers with a valid order in `currency`, the sum over them of all their valid
/// orders in `currency` up to `until`).
pub(super) fn ltv_totals(
    conn: &Connection,
    w: &Window,
    currency: &str,
) -> Result<(i64, Decimal), ReportError> {
    let cur = sql::currency_key("currency");
    let sql = format!(
        "SELECT COUNT(*), COALESCE(SUM(total), 0) FROM (
             SELECT customer_id, {total} AS total FROM orders
             WHERE {valid} AND created_at < {p2} AND {cur} = {p3}
               AND customer_id IN (
                   SELECT customer_id FROM orders
                   WHERE {valid} AND created_at >= {p1} AND created_at < {p2}
                     AND {cur} = {p3} AND customer_id IS NOT NULL AND customer_id <> '')
             GROUP BY customer_id) t",
        total = sql::sum_money("total_price"),
        valid = sql::valid_order(""),
        p1 = p(1),
        p2 = p(2),
        p3 = p(3),
    );
    let (n, units) = conn.query_row(&sql, params![w.since, w.until_next, currency], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })?;
    Ok((n, money_from_sql(units)))
}

/// (count of Klaviyo-attributed "Placed Order" events in the window, their `$value` per currency).
pub(super) fn klaviyo_attributed(
    conn: &Connection,
    w: &Window,
) -> Result<(i64, BTreeMap<String, Decimal>), ReportError> {
    let sql = format!(
        "SELECT {cur}, COUNT(*), {value} FROM journey_events
         WHERE event_type = 'placed_order' AND date BETWEEN {p1} AND {p2}
           AND {attributed}
         GROUP BY 1",
        cur = sql::currency_key("currency"),
        value = sql::sum_money("value"),
        attributed = sql::json_is_true("attributes", "attributed"),
        p1 = p(1),
        p2 = p(2),
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![w.since, w.until], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut count = 0;
    let mut by = BTreeMap::new();
    for row in rows {
        let (c, n, units) = row?;
        count += n;
        by.insert(c, money_from_sql(units));
    }
    Ok((count, by))
}

/// Refunds of valid store orders dated in the window, per currency: (count, exact amount). A refund's
/// currency is its own, else its order's (WooCommerce's refunds records carry none; the money is always
/// in the order's currency).
pub(super) fn refund_totals(
    conn: &Connection,
    w: &Window,
) -> Result<BTreeMap<String, (i64, Decimal)>, ReportError> {
    let sql = format!(
        "SELECT {cur}, COUNT(*), {value} FROM journey_events e
         JOIN orders o ON o.source = e.source AND o.order_id = {order_id}
         WHERE e.event_type = 'refund' AND e.date BETWEEN {p1} AND {p2}
           AND {valid}
         GROUP BY 1",
        valid = sql::valid_order("o"),
        cur = sql::currency_key("COALESCE(NULLIF(trim(e.currency), ''), o.currency)"),
        value = sql::sum_money("e.value"),
        order_id = sql::json_text("e.attributes", "order_id"),
        p1 = p(1),
        p2 = p(2),
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![w.since, w.until], |r| {
        Ok((
            r.get::<_, String>(0)?,
            (r.get::<_, i64>(1)?, money_from_sql(r.get(2)?)),
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Purchases each platform claims in the window, by `attributes.platform`.
pub(super) fn reported_purchases(
    conn: &Connection,
    w: &Window,
) -> Result<HashMap<String, i64>, ReportError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {platform}, {qty}
         FROM journey_events
         WHERE event_type = 'reported_purchases' AND date BETWEEN {p1} AND {p2}
         GROUP BY 1",
        platform = sql::json_get("attributes", "platform"),
        qty = sql::sum_count("quantity"),
        p1 = p(1),
        p2 = p(2),
    ))?;
    let rows = stmt.query_map(params![w.since, w.until], |r| {
        Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let (platform, n) = row?;
        if let Some(p) = platform {
            *out.entry(p.trim().to_lowercase()).or_insert(0) += n;
        }
    }
    Ok(out)
}
