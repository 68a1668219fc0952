//! The report's reads of the dataset: one aggregate query per metric family, the same text for every
//! store. Dialect-specific SQL text comes from [`super::sql::Dialect`]; everything here is plain SQL.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::sql::{self, Col, Dataset};
use super::{ReportError, ReportOptions};

/// The window as SQL parameters: `YYYY-MM-DD` bounds for `journey_events.date`, and a half-open
/// `[since, until + 1 day)` range for `orders.created_at`, which can use the `orders_report`
/// index (a test on the date part could not).
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
    db: &mut Dataset<'_>,
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
            let latest = latest_data_date(db)?.unwrap_or_else(|| Utc::now().date_naive());
            match since {
                Some(since) => Ok((since, latest.max(since))),
                None => Ok((back(latest), latest)),
            }
        }
    }
}

/// The latest date anything in the dataset belongs to, or `None` for an empty dataset.
fn latest_data_date(db: &mut Dataset<'_>) -> Result<Option<NaiveDate>, ReportError> {
    let d = db.dialect();
    let row = db.row(
        &format!(
            "SELECT (SELECT {} FROM orders), (SELECT {} FROM journey_events)",
            d.date_of("max(created_at)"),
            d.date_text("max(date)")
        ),
        &[],
        &[Col::Text, Col::Text],
    )?;
    let parse =
        |table: &'static str, v: Option<String>| -> Result<Option<NaiveDate>, ReportError> {
            match v {
                None => Ok(None),
                Some(v) => NaiveDate::parse_from_str(v.get(..10).unwrap_or(&v), "%Y-%m-%d")
                    .map(Some)
                    .map_err(|_| ReportError::BadDate { table, value: v }),
            }
        };
    Ok(parse("orders", row.opt_text(0))?.max(parse("journey_events", row.opt_text(1))?))
}

/// The registered connector types, or `None` when the dataset has no registry rows (built by hand).
pub(super) fn source_types(db: &mut Dataset<'_>) -> Result<Option<Vec<String>>, ReportError> {
    let types: Vec<String> = db
        .rows(
            "SELECT DISTINCT type FROM growthflow_sources ORDER BY type",
            &[],
            &[Col::Text],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect();
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
    db: &mut Dataset<'_>,
    w: &Window,
) -> Result<HashMap<String, EventTotal>, ReportError> {
    let d = db.dialect();
    // From the daily rollup (see `rollup`), grouped per (type, day, raw currency) as the events
    // themselves were, so each day's quantities are rounded as before; the days and the spellings of
    // a currency are added up here. The report's currency key is still made by the store.
    let sql = format!(
        "SELECT event_type, {cur}, {qty}, {n}, {value}
         FROM growthflow_rollup_events
         WHERE event_type IN ('ad_insights', 'sessions', 'new_users', 'engaged_sessions', 'add_to_carts',
                              'checkouts_started', 'email_opened', 'email_clicked', 'checkout_abandoned')
           AND date BETWEEN {p1} AND {p2}
         GROUP BY event_type, date, currency",
        cur = d.currency_key("currency"),
        qty = d.sum_count("quantity"),
        n = d.sum_int("records"),
        value = d.sum_of_sums("value"),
        p1 = d.p_date(1),
        p2 = d.p_date(2),
    );
    let rows = db.rows(
        &sql,
        &[&w.since, &w.until],
        &[Col::Text, Col::Text, Col::Int, Col::Int, Col::Money],
    )?;
    let mut out: HashMap<String, EventTotal> = HashMap::new();
    for r in rows {
        let quantity = r.int(2);
        let t = out.entry(r.text(0)).or_default();
        t.quantity += quantity;
        t.rows += r.int(3);
        let c = t.by_currency.entry(r.text(1)).or_default();
        c.0 += quantity;
        c.1 += r.money(4);
    }
    // A sum of sums keeps the widest scale of its parts (`100.5 + 119.5 = 220.0`): show it as the
    // store's own sum would be.
    for t in out.values_mut() {
        for c in t.by_currency.values_mut() {
            c.1 = c.1.normalize();
        }
    }
    // Meta's clicks (from the rows' attributes, summed per day by the rollup).
    let clicks = db.row(
        &format!(
            "SELECT {clicks} FROM growthflow_rollup_events
             WHERE event_type = 'ad_insights' AND date BETWEEN {p1} AND {p2}",
            clicks = d.sum_count("clicks"),
            p1 = d.p_date(1),
            p2 = d.p_date(2),
        ),
        &[&w.since, &w.until],
        &[Col::Int],
    )?;
    if let Some(t) = out.get_mut("ad_insights") {
        t.clicks = clicks.int(0);
    }
    Ok(out)
}

/// Valid orders created in the window, per currency key: (count, exact total).
pub(super) fn order_totals(
    db: &mut Dataset<'_>,
    w: &Window,
) -> Result<BTreeMap<String, (i64, Decimal)>, ReportError> {
    let d = db.dialect();
    // The valid orders' daily rollup: the window's days are the UTC days of `created_at`.
    let sql = format!(
        "SELECT {cur}, {n}, {total} FROM growthflow_rollup_orders
         WHERE date BETWEEN {p1} AND {p2}
         GROUP BY 1",
        cur = d.currency_key("currency"),
        n = d.sum_int("orders"),
        total = d.sum_of_sums("revenue"),
        p1 = d.p_date(1),
        p2 = d.p_date(2),
    );
    Ok(db
        .rows(
            &sql,
            &[&w.since, &w.until],
            &[Col::Text, Col::Int, Col::Money],
        )?
        .into_iter()
        .map(|r| (r.text(0), (r.int(1), r.money(2))))
        .collect())
}

/// The report currency when the user names none: the most frequent currency of the window's valid
/// orders; with no orders, the most frequent currency of the window's events that carry money (a
/// Meta-only account in EUR should not be labelled USD); else `USD`. Ties go to the alphabetically
/// first code; amounts without a currency never choose it.
pub(super) fn default_currency(
    db: &mut Dataset<'_>,
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
    let d = db.dialect();
    let from_events = db
        .rows(
            &format!(
                "SELECT upper(trim(currency)) AS c FROM journey_events
                 WHERE date BETWEEN {p1} AND {p2} AND value IS NOT NULL
                   AND currency IS NOT NULL AND trim(currency) <> ''
                 GROUP BY c ORDER BY COUNT(*) DESC, c LIMIT 1",
                p1 = d.p_date(1),
                p2 = d.p_date(2),
            ),
            &[&w.since, &w.until],
            &[Col::Text],
        )?
        .first()
        .and_then(|r| r.opt_text(0));
    Ok(from_events.unwrap_or_else(|| "USD".to_string()))
}

/// (distinct customers with a valid order in the window, those with a repeat order in it).
pub(super) fn customer_counts(db: &mut Dataset<'_>, w: &Window) -> Result<(i64, i64), ReportError> {
    let d = db.dialect();
    let (lo, hi) = bounds(d);
    // From each customer's first and last valid order (and repeat order), in two parts that need no
    // expression per customer where it can be helped: a customer whose last order is in the window
    // ordered in it (a count over an index range); one whose last order is after the window did if
    // their first order is in it, else (first before, last after) their orders are looked up (one
    // index seek each). The windows that end at the latest data (the default one, the whole range)
    // have no customer of the second kind.
    let ordered = |first: &str, last: &str, extra: &str| {
        format!(
            "(SELECT COUNT(*) FROM growthflow_rollup_customers c
              WHERE c.{last} >= {lo} AND c.{last} < {hi})
             + (SELECT COUNT(*) FROM growthflow_rollup_customers c
                WHERE c.{last} >= {hi} AND c.{first} < {hi}
                  AND (c.{first} >= {lo} OR EXISTS (
                      SELECT 1 FROM orders o
                      WHERE o.customer_id = c.customer_id AND {valid}
                        AND o.created_at >= {lo} AND o.created_at < {hi}{extra})))",
            valid = d.valid_order("o"),
        )
    };
    let sql = format!(
        "SELECT {customers}, {repeat}",
        customers = ordered("first_at", "last_at", ""),
        repeat = ordered(
            "first_repeat_at",
            "last_repeat_at",
            " AND o.customer_order_index >= 2"
        ),
    );
    let r = db.row(&sql, &[&w.since, &w.until_next], &[Col::Int, Col::Int])?;
    Ok((r.int(0), r.int(1)))
}

/// The window's bounds as order times (parameters 1 and 2), each computed once per query: a scalar
/// subquery, where PostgreSQL would otherwise parse the parameter again for every customer compared.
fn bounds(d: sql::Dialect) -> (String, String) {
    (
        format!("(SELECT {})", d.p_time(1)),
        format!("(SELECT {})", d.p_time(2)),
    )
}

/// (the window's customers with a valid order in `currency`, the sum over them of all their valid
/// orders in `currency` up to `until`).
pub(super) fn ltv_totals(
    db: &mut Dataset<'_>,
    w: &Window,
    currency: &str,
) -> Result<(i64, Decimal), ReportError> {
    let d = db.dialect();
    let cur = d.currency_key("o.currency");
    let (lo, hi) = bounds(d);
    // From each customer's summary in the currency, in the two parts of `customer_counts`: one whose
    // last order in it is in the window ordered in it, and their total up to `until` is the
    // summary's own (a sum over an index range); one whose last order is after the window ordered in
    // it if their first order is in it or their orders say so, and their orders up to `until` are
    // summed (one index range each).
    let sql = format!(
        "SELECT a.n + b.n, a.total + b.total FROM
             (SELECT COUNT(*) AS n, {sum_total} AS total
              FROM growthflow_rollup_customer_currencies c
              WHERE c.currency = {p3} AND c.last_at >= {lo} AND c.last_at < {hi}) a,
             (SELECT COUNT(*) AS n, {sum_upto} AS total FROM (
                  SELECT (SELECT {total} FROM orders o
                          WHERE o.customer_id = c.customer_id AND {valid}
                            AND o.created_at < {hi} AND {cur} = {p3}) AS upto
                  FROM growthflow_rollup_customer_currencies c
                  WHERE c.currency = {p3} AND c.last_at >= {hi} AND c.first_at < {hi}
                    AND (c.first_at >= {lo} OR EXISTS (
                        SELECT 1 FROM orders o
                        WHERE o.customer_id = c.customer_id AND {valid}
                          AND o.created_at >= {lo} AND o.created_at < {hi}
                          AND {cur} = {p3}))) t) b",
        sum_total = d.sum_of_sums("c.total"),
        sum_upto = d.sum_of_sums("upto"),
        total = d.sum_money("o.total_price"),
        valid = d.valid_order("o"),
        p3 = d.p(3),
    );
    let r = db.row(
        &sql,
        &[&w.since, &w.until_next, currency],
        &[Col::Int, Col::Money],
    )?;
    Ok((r.int(0), r.money(1)))
}

/// (count of Klaviyo-attributed "Placed Order" events in the window, their `$value` per currency).
/// From the daily rollup, per (day, raw currency); the days and spellings of a currency are added up
/// here.
pub(super) fn klaviyo_attributed(
    db: &mut Dataset<'_>,
    w: &Window,
) -> Result<(i64, BTreeMap<String, Decimal>), ReportError> {
    let d = db.dialect();
    let sql = format!(
        "SELECT {cur}, {n}, {value} FROM growthflow_rollup_events
         WHERE event_type = 'placed_order' AND date BETWEEN {p1} AND {p2}
           AND attributed = 1
         GROUP BY date, currency",
        cur = d.currency_key("currency"),
        n = d.sum_int("records"),
        value = d.sum_of_sums("value"),
        p1 = d.p_date(1),
        p2 = d.p_date(2),
    );
    let rows = db.rows(
        &sql,
        &[&w.since, &w.until],
        &[Col::Text, Col::Int, Col::Money],
    )?;
    let mut count = 0;
    let mut by = BTreeMap::new();
    for r in rows {
        count += r.int(1);
        *by.entry(r.text(0)).or_insert(Decimal::ZERO) += r.money(2);
    }
    for v in by.values_mut() {
        *v = v.normalize();
    }
    Ok((count, by))
}

/// Refunds of valid store orders dated in the window, per currency: (count, exact amount). A refund's
/// currency is its own, else its order's (WooCommerce's refunds records carry none; the money is always
/// in the order's currency).
pub(super) fn refund_totals(
    db: &mut Dataset<'_>,
    w: &Window,
) -> Result<BTreeMap<String, (i64, Decimal)>, ReportError> {
    let d = db.dialect();
    // The daily rollup of refunds joined with their orders (see `rollup`).
    let sql = format!(
        "SELECT {cur}, {n}, {value} FROM growthflow_rollup_refunds
         WHERE date BETWEEN {p1} AND {p2}
         GROUP BY 1",
        cur = d.currency_key("currency"),
        n = d.sum_int("refunds"),
        value = d.sum_of_sums("amount"),
        p1 = d.p_date(1),
        p2 = d.p_date(2),
    );
    Ok(db
        .rows(
            &sql,
            &[&w.since, &w.until],
            &[Col::Text, Col::Int, Col::Money],
        )?
        .into_iter()
        .map(|r| (r.text(0), (r.int(1), r.money(2))))
        .collect())
}

/// Purchases each platform claims in the window, by `attributes.platform`.
pub(super) fn reported_purchases(
    db: &mut Dataset<'_>,
    w: &Window,
) -> Result<HashMap<String, i64>, ReportError> {
    let d = db.dialect();
    let sql = format!(
        "SELECT platform, {qty}
         FROM growthflow_rollup_events
         WHERE event_type = 'reported_purchases' AND date BETWEEN {p1} AND {p2}
         GROUP BY 1",
        qty = d.sum_count("quantity"),
        p1 = d.p_date(1),
        p2 = d.p_date(2),
    );
    let mut out = HashMap::new();
    for r in db.rows(&sql, &[&w.since, &w.until], &[Col::Text, Col::Int])? {
        if let Some(p) = r.opt_text(0) {
            *out.entry(p.trim().to_lowercase()).or_insert(0) += r.int(1);
        }
    }
    Ok(out)
}
