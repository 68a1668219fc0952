//! The Growth Flow report: the contract's five stages and the campaign table, computed from the dataset.
//!
//! The report reads only the journey model (`orders`, `journey_events`), never a platform, so it runs
//! offline and gives the same numbers whichever connectors filled the tables. Every definition follows
//! the contract's "The report" section, with the event vocabulary of [`crate::model::EVENT_TYPES`]
//! (documented in `docs/journey_model.md`); `docs/report.md` explains every metric.
//!
//! The module is split along its seams: this file holds the report's types and how the metrics are
//! combined; `queries` and `campaigns` read the dataset with one text per query for every store; `sql`
//! is the seam between them and the stores (SQLite, PostgreSQL): the only place with SQL text that
//! depends on the dialect, and the one place that runs a query; `render` turns a report into a table
//! or CSV.
//!
//! How numbers are made:
//!
//! - Aggregation happens in SQL (`GROUP BY`); only one row per metric, currency or campaign spelling
//!   reaches Rust.
//! - Money is summed exactly: each stored amount is scaled to an integer of 10⁻⁶ units (the precision
//!   the dataset stores) and summed as an integer, then handled as [`Decimal`], so a thousand `19.99`s
//!   add up to `19990`, not `19989.999999…`. Money is never rounded in the JSON.
//! - One currency: money metrics count only records in the report's currency; what other currencies
//!   hold is listed under `other_currencies`, never added in.
//! - Counts are integers. Ratios and averages are `f64` at full double precision, computed from the
//!   exact sums; a ratio whose denominator is zero is `None` (JSON `null`), and so is a ratio that uses
//!   a metric no configured source can produce (see [`Capabilities`]).
//! - Only `--format table` (and CSV, for spreadsheets) rounds, for display.

mod campaigns;
mod queries;
mod render;
pub(crate) mod rollup;
mod sql;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use crate::model::Channel;

pub use rollup::{refresh_rollups_postgres, refresh_rollups_sqlite};
pub use sql::Dataset;

/// The `other_currencies` key of money recorded without a currency.
pub const UNKNOWN_CURRENCY: &str = sql::UNKNOWN;

/// The report as the user asked for it; a window side left `None` is filled from the data (see
/// `docs/report.md`), so scripts can ask for "the last 30 days of data" without knowing the dates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportOptions {
    /// First day included.
    pub since: Option<NaiveDate>,
    /// Last day included.
    pub until: Option<NaiveDate>,
    /// The currency to report money in (ISO 4217, any case); `None` picks the most frequent currency
    /// of the window's valid store orders.
    pub currency: Option<String>,
}

/// Why a report could not be built. Kept separate from the crate's connector error because a report
/// failure is always local: the dataset or the user's options.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The dataset could not be read (missing tables, locked or corrupt file).
    #[error("reading the dataset failed: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The PostgreSQL dataset could not be read (connection lost, missing tables, no permission).
    #[error("reading the dataset failed: {}", pg_message(.0))]
    Postgres(#[from] postgres::Error),
    /// An aggregate query returned no row (a store that breaks SQL's rules).
    #[error("the dataset returned no row for {0}")]
    NoRow(String),
    /// The user's window is empty because it runs backwards.
    #[error("--since {since} is after --until {until}")]
    InvalidWindow {
        /// The requested first day.
        since: NaiveDate,
        /// The requested last day.
        until: NaiveDate,
    },
    /// A date in the dataset is not `YYYY-MM-DD…`, so the default window cannot be placed.
    #[error("the dataset holds an unreadable date {value:?} in {table}")]
    BadDate {
        /// Table the value came from.
        table: &'static str,
        /// The value as stored.
        value: String,
    },
    /// Rows were changed outside growthflow since the last rebuild, so the report's rollups are behind
    /// them, and this role may only read: a run with a role that may write brings them up to date.
    #[error(
        "the dataset was changed outside growthflow since its last rebuild and its report tables \
         are behind; the role {role:?} may only read, so it cannot bring them up to date: run \
         `growthflow sync` (or `report`) once with a role that may write to the dataset's schema"
    )]
    RollupsBehind {
        /// The PostgreSQL role the report ran as.
        role: String,
    },
    /// `--currency` is not a three-letter code.
    #[error("--currency {0:?} is not a three-letter ISO 4217 code")]
    InvalidCurrency(String),
}

/// The Growth Flow report. Its JSON (via [`Report::to_json`]) is exactly the contract's
/// `report --format json` shape, in the contract's key order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// First day of the window (inclusive).
    pub since: NaiveDate,
    /// Last day of the window (inclusive).
    pub until: NaiveDate,
    /// The one currency every money metric is in.
    pub currency: String,
    /// Money in the window that is in another currency and so left out of the money metrics, by
    /// currency code (`unknown` for amounts recorded without one). Absent when there is none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub other_currencies: BTreeMap<String, OtherCurrency>,
    /// Ads seen and new visitors.
    pub awareness: Awareness,
    /// Engagement, email, add-to-cart, checkouts started.
    pub consideration: Consideration,
    /// Orders, revenue, abandonment.
    pub conversion: Conversion,
    /// Repeat purchases, lifetime value, email-driven revenue.
    pub retention: Retention,
    /// Refunds, and what each platform claims it sold.
    pub feedback: Feedback,
    /// One row per campaign seen in the window, by revenue.
    pub campaigns: Vec<CampaignRow>,
}

/// What the report left out of its money metrics for one other currency.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OtherCurrency {
    /// Valid store orders in the window in this currency (they are counted in `orders`; their money
    /// is not in `revenue`).
    pub orders: i64,
    /// Their total.
    #[serde(serialize_with = "ser_money")]
    pub revenue: Decimal,
    /// Meta Ads spend in this currency.
    #[serde(serialize_with = "ser_money")]
    pub spend: Decimal,
    /// Refunds of valid orders in this currency.
    pub refunds: i64,
    /// Their amount.
    #[serde(serialize_with = "ser_money")]
    pub refunded_amount: Decimal,
    /// Klaviyo-attributed "Placed Order" value in this currency.
    #[serde(serialize_with = "ser_money")]
    pub email_attributed_revenue: Decimal,
}

impl OtherCurrency {
    fn is_empty(&self) -> bool {
        self.orders == 0
            && self.refunds == 0
            && self.revenue.is_zero()
            && self.spend.is_zero()
            && self.refunded_amount.is_zero()
            && self.email_attributed_revenue.is_zero()
    }
}

/// Awareness: Meta Ads delivery and GA4 traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Awareness {
    /// Meta Ads impressions.
    pub impressions: i64,
    /// Meta Ads clicks.
    pub clicks: i64,
    /// clicks / impressions.
    pub ctr: Option<f64>,
    /// Meta Ads spend in the report currency.
    #[serde(serialize_with = "ser_money")]
    pub spend: Decimal,
    /// spend / impressions × 1000, over the ad rows in the report currency.
    pub cpm: Option<f64>,
    /// GA4 sessions.
    pub sessions: i64,
    /// GA4 new users.
    pub new_users: i64,
}

/// Consideration: GA4 engagement and funnel, Klaviyo email engagement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consideration {
    /// GA4 engaged sessions.
    pub engaged_sessions: i64,
    /// engaged_sessions / sessions.
    pub engagement_rate: Option<f64>,
    /// GA4 add-to-carts.
    pub add_to_carts: i64,
    /// GA4 checkouts started.
    pub checkouts_started: i64,
    /// Klaviyo "Opened Email" events.
    pub email_opens: i64,
    /// Klaviyo "Clicked Email" events.
    pub email_clicks: i64,
}

/// Conversion: the stores' valid orders and Shopify's abandoned checkouts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversion {
    /// Valid orders created in the window (every currency).
    pub orders: i64,
    /// Sum of `total_price` (as placed, before refunds) of those in the report currency.
    #[serde(serialize_with = "ser_money")]
    pub revenue: Decimal,
    /// revenue / the orders in the report currency.
    pub aov: Option<f64>,
    /// orders / sessions.
    pub conversion_rate: Option<f64>,
    /// Abandoned checkouts created in the window.
    pub abandoned_checkouts: i64,
    /// abandoned_checkouts / (abandoned_checkouts + orders).
    pub cart_abandonment_rate: Option<f64>,
}

/// Retention: repeat purchases, lifetime value, email-driven revenue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retention {
    /// Distinct customers with a valid order in the window.
    pub customers: i64,
    /// Those of them with an order in the window that is their second or later.
    pub repeat_customers: i64,
    /// repeat_customers / customers.
    pub repeat_purchase_rate: Option<f64>,
    /// Average, over the window's customers with an order in the report currency, of their valid
    /// orders' totals in that currency up to `until`.
    pub ltv: Option<f64>,
    /// `$value` of Klaviyo-attributed "Placed Order" events in the window, in the report currency.
    #[serde(serialize_with = "ser_money")]
    pub email_attributed_revenue: Decimal,
}

/// Feedback: refunds, and the platforms' claims beside the store's truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feedback {
    /// Refunds (dated by the refund) of valid store orders (every currency).
    pub refunds: i64,
    /// The amount of those in the report currency.
    #[serde(serialize_with = "ser_money")]
    pub refunded_amount: Decimal,
    /// refunded_amount / revenue.
    pub refund_rate: Option<f64>,
    /// Purchases each platform claims, as counts.
    pub reported_purchases: ReportedPurchases,
}

/// Purchases each platform says happened in the window, as counts so they compare with `store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReportedPurchases {
    /// Meta's `purchase` action count under the default attribution.
    pub meta_ads: i64,
    /// GA4 `ecommercePurchases`.
    pub ga4: i64,
    /// Klaviyo "Placed Order" events attributed to a campaign or flow.
    pub klaviyo: i64,
    /// Valid store orders actually placed.
    pub store: i64,
}

/// One campaign, joined across Meta, GA4, Klaviyo and the stores on its trimmed, lower-cased name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignRow {
    /// Display name: the most frequent original spelling.
    pub campaign: String,
    /// The channel of its own traffic (`paid_social` when Meta reports it, `email` for Klaviyo's).
    pub channel: Channel,
    /// Meta spend in the report currency.
    #[serde(serialize_with = "ser_money")]
    pub spend: Decimal,
    /// Meta impressions.
    pub impressions: i64,
    /// Meta clicks.
    pub clicks: i64,
    /// GA4 sessions.
    pub sessions: i64,
    /// Valid orders whose `utm_campaign` names it (every currency).
    pub orders: i64,
    /// Their revenue in the report currency.
    #[serde(serialize_with = "ser_money")]
    pub revenue: Decimal,
    /// revenue / spend.
    pub roas: Option<f64>,
}

/// Which event types some configured source can produce, from the vocabulary's emitters
/// ([`crate::model::EVENT_TYPES`]) and the sources registered in the dataset. A metric whose event type
/// no configured source emits is 0, and every ratio over it is unknown (`None`), not 0.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Registered connector types; `None` for a dataset built without the registry (by hand, by
    /// another tool), which is taken to have every platform.
    types: Option<Vec<String>>,
}

impl Capabilities {
    /// Read the registered source types of a dataset.
    pub fn of<'a>(db: impl Into<Dataset<'a>>) -> Result<Capabilities, ReportError> {
        Self::read(&mut db.into())
    }

    fn read(db: &mut Dataset<'_>) -> Result<Capabilities, ReportError> {
        Ok(Capabilities {
            types: queries::source_types(db)?,
        })
    }

    /// True when some configured source emits `event_type`.
    pub fn emits(&self, event_type: &str) -> bool {
        match &self.types {
            None => true,
            Some(types) => crate::model::emitters(event_type)
                .iter()
                .any(|t| types.iter().any(|c| c == t)),
        }
    }

    /// True when every one of `event_types` is emitted by some configured source.
    pub fn all(&self, event_types: &[&str]) -> bool {
        event_types.iter().all(|t| self.emits(t))
    }
}

/// Build the report `opts` describes, reading a migrated growthflow dataset: a `&rusqlite::Connection`
/// or a `&mut postgres::Client` (see [`Dataset`]). Every metric is aggregated by the store itself.
pub fn build_report<'a>(
    db: impl Into<Dataset<'a>>,
    opts: &ReportOptions,
) -> Result<Report, ReportError> {
    build(&mut db.into(), opts)
}

/// One query the report runs, with the store's plan for it: what a benchmark shows to say which
/// index serves which query.
#[derive(Debug, Clone)]
pub struct QueryPlan {
    /// The query's text as the store ran it.
    pub sql: String,
    /// Its parameters (the window's bounds, the currency), in order.
    pub params: Vec<String>,
    /// SQLite's `EXPLAIN QUERY PLAN` as an indented tree, or PostgreSQL's
    /// `EXPLAIN (ANALYZE, BUFFERS)`.
    pub plan: String,
    /// Wall time of one more run of the query alone, in seconds.
    pub seconds: f64,
}

/// Build the report as [`build_report`] does, then explain and time each query it ran, in order.
/// Nothing here is used by the report itself: it exists so that the plans shown in
/// `docs/performance.md` are the plans of the very queries the report runs.
pub fn explain_report<'a>(
    db: impl Into<Dataset<'a>>,
    opts: &ReportOptions,
) -> Result<Vec<QueryPlan>, ReportError> {
    let db = &mut db.into();
    let (built, queries) = sql::recording(|| build(db, opts));
    built?;
    db.begin_report()?;
    let plans = queries
        .into_iter()
        .map(|(sql, params)| {
            let refs: Vec<&str> = params.iter().map(String::as_str).collect();
            let plan = db.explain(&sql, &refs)?;
            let started = std::time::Instant::now();
            db.run(&sql, &refs)?;
            Ok(QueryPlan {
                seconds: started.elapsed().as_secs_f64(),
                sql,
                params,
                plan,
            })
        })
        .collect::<Result<Vec<_>, ReportError>>();
    finish(db, plans)
}

/// End the report's reading ([`Dataset::begin_report`]) whatever `out` is, returning `out`.
fn finish<T>(db: &mut Dataset<'_>, out: Result<T, ReportError>) -> Result<T, ReportError> {
    let ended = db.end_report();
    let out = out?;
    ended?;
    Ok(out)
}

fn build(db: &mut Dataset<'_>, opts: &ReportOptions) -> Result<Report, ReportError> {
    rollup::ensure_fresh(db)?;
    db.begin_report()?;
    let report = read(db, opts);
    finish(db, report)
}

/// The report, read from a fresh dataset inside [`Dataset::begin_report`].
fn read(db: &mut Dataset<'_>, opts: &ReportOptions) -> Result<Report, ReportError> {
    let (since, until) = queries::resolve_window(db, opts)?;
    tracing::debug!(%since, %until, "building report");
    let w = queries::Window::new(since, until);
    let caps = Capabilities::read(db)?;

    let orders_by = queries::order_totals(db, &w)?;
    let currency = match &opts.currency {
        Some(c) => normalize_currency(c)?,
        None => queries::default_currency(db, &w, &orders_by)?,
    };
    let cur = currency.as_str();
    let mut other: BTreeMap<String, OtherCurrency> = BTreeMap::new();

    let ev = queries::event_totals(db, &w)?;
    let count = |t: &str| ev.get(t).map_or(0, |e| e.quantity);
    let ads = ev.get("ad_insights").cloned().unwrap_or_default();
    let sessions = count("sessions");
    let engaged = count("engaged_sessions");
    let abandoned = ev.get("checkout_abandoned").map_or(0, |e| e.rows);
    let (ad_impressions_in_cur, spend) = ads.by_currency.get(cur).copied().unwrap_or_default();
    for (c, (_, amount)) in &ads.by_currency {
        if c != cur {
            other.entry(c.clone()).or_default().spend += amount;
        }
    }

    let orders: i64 = orders_by.values().map(|(n, _)| n).sum();
    let (orders_in_cur, revenue) = orders_by.get(cur).copied().unwrap_or_default();
    for (c, (n, amount)) in &orders_by {
        if c != cur {
            let o = other.entry(c.clone()).or_default();
            o.orders += n;
            o.revenue += amount;
        }
    }

    let refunds_by = queries::refund_totals(db, &w)?;
    let refunds: i64 = refunds_by.values().map(|(n, _)| n).sum();
    let refunded_amount = refunds_by.get(cur).map_or(Decimal::ZERO, |(_, a)| *a);
    for (c, (n, amount)) in &refunds_by {
        if c != cur {
            let o = other.entry(c.clone()).or_default();
            o.refunds += n;
            o.refunded_amount += amount;
        }
    }

    let (klaviyo_attributed, attributed_by) = queries::klaviyo_attributed(db, &w)?;
    let email_attributed_revenue = attributed_by.get(cur).copied().unwrap_or_default();
    for (c, amount) in &attributed_by {
        if c != cur {
            other.entry(c.clone()).or_default().email_attributed_revenue += amount;
        }
    }
    other.retain(|_, o| !o.is_empty());

    let (customers, repeat_customers) = queries::customer_counts(db, &w)?;
    let (ltv_customers, ltv_total) = queries::ltv_totals(db, &w, cur)?;
    let reported = queries::reported_purchases(db, &w)?;
    let campaigns = campaigns::campaigns(db, &w, cur, &caps)?;

    // A ratio is known only when every metric in it can be produced by a configured source.
    let known = |types: &[&str], r: Option<f64>| r.filter(|_| caps.all(types));
    Ok(Report {
        since,
        until,
        currency,
        other_currencies: other,
        awareness: Awareness {
            impressions: ads.quantity,
            clicks: ads.clicks,
            ctr: known(
                &["ad_insights"],
                ratio(ads.clicks.into(), ads.quantity.into()),
            ),
            spend,
            cpm: known(
                &["ad_insights"],
                ratio(spend * Decimal::ONE_THOUSAND, ad_impressions_in_cur.into()),
            ),
            sessions,
            new_users: count("new_users"),
        },
        consideration: Consideration {
            engaged_sessions: engaged,
            engagement_rate: known(
                &["engaged_sessions", "sessions"],
                ratio(engaged.into(), sessions.into()),
            ),
            add_to_carts: count("add_to_carts"),
            checkouts_started: count("checkouts_started"),
            email_opens: count("email_opened"),
            email_clicks: count("email_clicked"),
        },
        conversion: Conversion {
            orders,
            revenue,
            aov: known(&["order"], ratio(revenue, orders_in_cur.into())),
            conversion_rate: known(
                &["order", "sessions"],
                ratio(orders.into(), sessions.into()),
            ),
            abandoned_checkouts: abandoned,
            cart_abandonment_rate: known(
                &["checkout_abandoned", "order"],
                ratio(abandoned.into(), (abandoned + orders).into()),
            ),
        },
        retention: Retention {
            customers,
            repeat_customers,
            repeat_purchase_rate: known(
                &["order"],
                ratio(repeat_customers.into(), customers.into()),
            ),
            ltv: known(&["order"], ratio(ltv_total, ltv_customers.into())),
            email_attributed_revenue,
        },
        feedback: Feedback {
            refunds,
            refunded_amount,
            refund_rate: known(&["refund", "order"], ratio(refunded_amount, revenue)),
            reported_purchases: ReportedPurchases {
                meta_ads: reported.get("meta_ads").copied().unwrap_or(0),
                ga4: reported.get("ga4").copied().unwrap_or(0),
                klaviyo: klaviyo_attributed,
                store: orders,
            },
        },
        campaigns,
    })
}

impl Report {
    /// The contract's `report --format json` document, keys in the contract's order.
    pub fn to_json(&self) -> serde_json::Value {
        // Only strings, integers, finite floats and nested structs: serialisation cannot fail.
        serde_json::to_value(self).expect("a report always serialises")
    }
}

/// The server's own words: `postgres::Error` alone displays only "db error".
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.hint() {
            Some(hint) => format!("{} ({hint})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

/// `--currency` as stored: trimmed, upper-cased, three ASCII letters.
fn normalize_currency(c: &str) -> Result<String, ReportError> {
    let code = c.trim().to_ascii_uppercase();
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code)
    } else {
        Err(ReportError::InvalidCurrency(c.to_string()))
    }
}

/// Money as a JSON number, exact: an integer when whole (`"spend":0`, as the contract shows), else the
/// double nearest the exact decimal, which prints as that decimal (sums have at most 6 decimals).
fn ser_money<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    let d = d.normalize();
    if d.is_integer() {
        if let Some(i) = d.to_i64() {
            return s.serialize_i64(i);
        }
    }
    s.serialize_f64(d.to_string().parse().unwrap_or(0.0))
}

/// `num / den` at full double precision (the quotient is taken in [`Decimal`], 28 digits, then
/// rounded once to the nearest double); `None` when `den` is zero.
fn ratio(num: Decimal, den: Decimal) -> Option<f64> {
    if den.is_zero() {
        return None;
    }
    match num.checked_div(den) {
        // Through the decimal text: Rust's float parsing rounds correctly, `Decimal::to_f64` need not.
        Some(q) => q.to_string().parse().ok(),
        None => Some(num.to_f64()? / den.to_f64()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::sqlite::SqliteDestination;

    /// The plan of the first recorded query whose text contains `needle`.
    fn plan_of<'p>(plans: &'p [QueryPlan], needle: &str) -> &'p str {
        plans
            .iter()
            .find(|p| p.sql.contains(needle))
            .map(|p| p.plan.as_str())
            .unwrap_or_else(|| panic!("no query contains {needle:?}"))
    }

    #[test]
    fn the_report_reads_the_rollups_index_only() {
        let dest = SqliteDestination::in_memory().unwrap();
        let opts = ReportOptions {
            since: NaiveDate::from_ymd_opt(2025, 3, 1),
            until: NaiveDate::from_ymd_opt(2025, 3, 30),
            currency: None,
        };
        let plans = explain_report(dest.connection(), &opts).unwrap();
        // Every query the report ran was explained, in order, with its parameters.
        assert!(plans.len() >= 12, "{plans:#?}");
        assert!(plans
            .iter()
            .any(|p| p.params == ["2025-03-01", "2025-03-30"]));
        // No query reads the events themselves but the latest date's and the currency fallback's
        // (which runs only without orders), and the orders only by customer, for the few customers
        // whose summary cannot decide.
        for p in &plans {
            if p.sql.contains("FROM journey_events") {
                assert!(
                    p.sql.contains("max(date)") || p.sql.contains("LIMIT 1"),
                    "{}",
                    p.sql
                );
            }
            if p.sql.contains("FROM orders") && !p.sql.contains("max(created_at)") {
                assert!(p.sql.contains("o.customer_id = c.customer_id"), "{}", p.sql);
            }
        }
        // The rollups are read index-only (migration 9).
        let totals = plan_of(&plans, "'checkouts_started', 'email_opened'");
        assert!(
            totals.contains("COVERING INDEX growthflow_rollup_events_report"),
            "{totals}"
        );
        let orders = plan_of(&plans, "FROM growthflow_rollup_orders");
        assert!(
            orders.contains("COVERING INDEX growthflow_rollup_orders_report"),
            "{orders}"
        );
        let ltv = plan_of(&plans, "FROM growthflow_rollup_customer_currencies");
        assert!(
            ltv.contains("growthflow_rollup_customer_currencies_last"),
            "{ltv}"
        );
        // The undecided customers' orders: by customer, from the index that holds what is summed.
        assert!(ltv.contains("orders_customer_report"), "{ltv}");
    }
}
