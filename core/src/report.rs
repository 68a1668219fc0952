//! The Growth Flow report: the contract's five stages and the campaign table, computed from the dataset.
//!
//! The report reads only the journey model (`orders`, `journey_events`), never a platform, so it runs
//! offline and gives the same numbers whichever connectors filled the tables. Every definition follows
//! the contract's "The report" section literally, with the event vocabulary of `docs/journey_model.md`.
//!
//! How numbers are made:
//!
//! - Aggregation happens in SQL (`GROUP BY`); only one row per metric or per campaign spelling reaches Rust.
//! - Money is summed exactly: each REAL is rounded in SQL to 1/10 000 of its unit and summed as an integer,
//!   then handled as [`Decimal`], so a thousand `19.99`s add up to `19990.00`, not `19989.999999…`. Money
//!   is reported rounded to the cent (half away from zero).
//! - Counts are integers. Ratios are `f64` rounded to 4 decimals, computed from the exact sums; a ratio
//!   whose denominator is zero is `None` (JSON `null`). Money per unit (`aov`, `cpm`, `ltv`) is money,
//!   rounded to the cent, and `None` on a zero denominator too.
//! - A platform that is not configured simply has no rows, so its metrics are 0 and ratios over them `None`.
//!
//! Choices the contract leaves open, made here once:
//!
//! - Default window: `until` is the latest date in the data (any order's creation date or any event's
//!   `date`, cancelled and test orders included — they are data the user synced), `since` is 29 days
//!   before (30 days inclusive). With only `--since`, `until` is that latest date (or `since` itself if the
//!   data ends earlier); with only `--until`, `since` is 29 days before it. An empty dataset reports the 30
//!   days ending today (UTC). `since` after `until` is an error.
//! - `currency`: the most frequent currency of the valid orders in the window; with no orders, the most
//!   frequent currency of the window's events that carry money (a Meta-only account in EUR should not be
//!   labelled USD); else `USD`. Ties go to the alphabetically first code.
//! - `ltv` averages over *all* the window's customers (the `customers` metric), not only repeat ones.
//! - `reported_purchases` are all counts (Meta's `purchase` action `value` in `actions` is the number of
//!   purchases; the money is in `action_values`), so the four numbers are comparable with `store`.
//! - Campaign placeholders `(direct)`, `(organic)`, `(referral)`, `(not set)` (and blanks) are ignored in
//!   every source, not only GA4: they mean "no campaign" wherever they appear.
//! - A campaign's display name is its most frequent original spelling (trimmed), ties to the earliest
//!   seen, then alphabetical. Its channel: `paid_social` if Meta reports it; else the channel of its GA4
//!   sessions (the one with most sessions); else the most common channel of its orders; else `other`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::{Days, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Serialize, Serializer};

use crate::channel::parse_stored;
use crate::model::Channel;

/// Money is summed in SQL as integers of this many decimal places, so that sums are exact.
const MONEY_SCALE: u32 = 4;
/// SQL for one money column as an exact integer of 1/10 000 units.
macro_rules! money_sql {
    ($col:expr) => {
        concat!("CAST(ROUND(COALESCE(", $col, ", 0) * 10000) AS INTEGER)")
    };
}

/// Campaign names that GA4 (and others) use for "no campaign".
const CAMPAIGN_PLACEHOLDERS: &[&str] = &["(direct)", "(organic)", "(referral)", "(not set)"];

/// The report window as the user asked for it; a side left `None` is filled from the data (see the
/// module docs), so scripts can ask for "the last 30 days of data" without knowing the dates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportOptions {
    /// First day included.
    pub since: Option<NaiveDate>,
    /// Last day included.
    pub until: Option<NaiveDate>,
}

/// Why a report could not be built. Kept separate from the crate's connector error because a report
/// failure is always local: the dataset or the user's dates.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The dataset could not be read (missing tables, locked or corrupt file).
    #[error("reading the dataset failed: {0}")]
    Sql(#[from] rusqlite::Error),
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
}

/// The Growth Flow report. Its JSON (via [`Report::to_json`]) is exactly the contract's
/// `report --format json` shape, in the contract's key order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// First day of the window (inclusive).
    pub since: NaiveDate,
    /// Last day of the window (inclusive).
    pub until: NaiveDate,
    /// The currency money is reported in (see the module docs for how it is chosen).
    pub currency: String,
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

/// Awareness: Meta Ads delivery and GA4 traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Awareness {
    /// Meta Ads impressions.
    pub impressions: i64,
    /// Meta Ads clicks.
    pub clicks: i64,
    /// clicks / impressions.
    pub ctr: Option<f64>,
    /// Meta Ads spend.
    #[serde(serialize_with = "ser_money")]
    pub spend: Decimal,
    /// spend / impressions × 1000 (money).
    #[serde(serialize_with = "ser_opt_money")]
    pub cpm: Option<Decimal>,
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
    /// Valid orders created in the window.
    pub orders: i64,
    /// Sum of their `total_price` (as placed, before refunds).
    #[serde(serialize_with = "ser_money")]
    pub revenue: Decimal,
    /// revenue / orders (money).
    #[serde(serialize_with = "ser_opt_money")]
    pub aov: Option<Decimal>,
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
    /// Average over the window's customers of their valid orders' totals up to `until` (money).
    #[serde(serialize_with = "ser_opt_money")]
    pub ltv: Option<Decimal>,
    /// `$value` of Klaviyo-attributed "Placed Order" events in the window.
    #[serde(serialize_with = "ser_money")]
    pub email_attributed_revenue: Decimal,
}

/// Feedback: refunds, and the platforms' claims beside the store's truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feedback {
    /// Refunds (dated by the refund) of valid store orders.
    pub refunds: i64,
    /// Their amount.
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

/// One campaign, joined across Meta, GA4 and the stores on its trimmed, lower-cased name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignRow {
    /// Display name: the most frequent original spelling.
    pub campaign: String,
    /// The channel of its own traffic (`paid_social` when Meta reports it).
    pub channel: Channel,
    /// Meta spend.
    #[serde(serialize_with = "ser_money")]
    pub spend: Decimal,
    /// Meta impressions.
    pub impressions: i64,
    /// Meta clicks.
    pub clicks: i64,
    /// GA4 sessions.
    pub sessions: i64,
    /// Valid orders whose `utm_campaign` names it.
    pub orders: i64,
    /// Their revenue.
    #[serde(serialize_with = "ser_money")]
    pub revenue: Decimal,
    /// revenue / spend.
    pub roas: Option<f64>,
}

/// Build the report over the window `opts` describes, reading `conn` (a migrated growthflow dataset).
pub fn build_report(conn: &Connection, opts: &ReportOptions) -> Result<Report, ReportError> {
    let (since, until) = resolve_window(conn, opts)?;
    tracing::debug!(%since, %until, "building report");
    let w = Window::new(since, until);

    let ev = event_totals(conn, &w)?;
    let get = |t: &str| ev.get(t).cloned().unwrap_or_default();
    let ads = get("ad_insights");
    let sessions = get("sessions").quantity;
    let new_users = get("new_users").quantity;
    let engaged = get("engaged_sessions").quantity;
    let add_to_carts = get("add_to_carts").quantity;
    let checkouts_started = get("checkouts_started").quantity;
    let email_opens = get("email_opened").quantity;
    let email_clicks = get("email_clicked").quantity;
    let abandoned = get("checkout_abandoned").rows;

    let (orders, revenue) = order_totals(conn, &w)?;
    let (customers, repeat_customers) = customer_counts(conn, &w)?;
    let (ltv_customers, ltv_total) = ltv_totals(conn, &w)?;
    let (klaviyo_attributed, email_attributed_revenue) = klaviyo_attributed(conn, &w)?;
    let (refunds, refunded_amount) = refund_totals(conn, &w)?;
    let reported = reported_purchases(conn, &w)?;
    let currency = currency(conn, &w)?;
    let campaigns = campaigns(conn, &w)?;

    let spend = ads.value;
    Ok(Report {
        since,
        until,
        currency,
        awareness: Awareness {
            impressions: ads.quantity,
            clicks: ads.clicks,
            ctr: ratio(ads.clicks.into(), ads.quantity.into()),
            spend: money(spend),
            cpm: money_ratio(spend * Decimal::ONE_THOUSAND, ads.quantity.into()),
            sessions,
            new_users,
        },
        consideration: Consideration {
            engaged_sessions: engaged,
            engagement_rate: ratio(engaged.into(), sessions.into()),
            add_to_carts,
            checkouts_started,
            email_opens,
            email_clicks,
        },
        conversion: Conversion {
            orders,
            revenue: money(revenue),
            aov: money_ratio(revenue, orders.into()),
            conversion_rate: ratio(orders.into(), sessions.into()),
            abandoned_checkouts: abandoned,
            // Only Shopify reports abandoned checkouts: without a Shopify source the rate is not
            // 0 %, it is unknown ("ratios over an unconfigured platform are null").
            cart_abandonment_rate: if has_type(conn, "shopify")? {
                ratio(abandoned.into(), (abandoned + orders).into())
            } else {
                None
            },
        },
        retention: Retention {
            customers,
            repeat_customers,
            repeat_purchase_rate: ratio(repeat_customers.into(), customers.into()),
            ltv: money_ratio(ltv_total, ltv_customers.into()),
            email_attributed_revenue: money(email_attributed_revenue),
        },
        feedback: Feedback {
            refunds,
            refunded_amount: money(refunded_amount),
            refund_rate: ratio(refunded_amount, revenue),
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

    /// A fixed-width text rendering for a terminal: one block per stage, then the campaign table.
    /// Metric names are the JSON keys so a reader can move between the formats; ratios are shown as
    /// percentages (ROAS as a multiple), money with two decimals, `-` where a ratio has no denominator.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Growth Flow report {} .. {} ({})",
            self.since, self.until, self.currency
        );
        for (section, rows) in self.metric_rows() {
            let _ = writeln!(out);
            let _ = writeln!(out, "{}", section.to_uppercase());
            for (metric, value) in rows {
                let _ = writeln!(out, "  {:<28}{:>16}", metric, value.display());
            }
        }

        let _ = writeln!(out);
        let _ = writeln!(out, "CAMPAIGNS");
        if self.campaigns.is_empty() {
            let _ = writeln!(out, "  (none in this window)");
            return out;
        }
        let names: Vec<String> = self
            .campaigns
            .iter()
            .map(|c| truncate(&c.campaign, 40))
            .collect();
        let w = names
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(0)
            .max("campaign".len());
        let _ = writeln!(
            out,
            "  {:<w$}  {:<14} {:>12} {:>12} {:>9} {:>9} {:>7} {:>12} {:>8}",
            "campaign",
            "channel",
            "spend",
            "impressions",
            "clicks",
            "sessions",
            "orders",
            "revenue",
            "roas",
        );
        for (c, name) in self.campaigns.iter().zip(&names) {
            let _ = writeln!(
                out,
                "  {:<w$}  {:<14} {:>12} {:>12} {:>9} {:>9} {:>7} {:>12} {:>8}",
                name,
                c.channel.as_str(),
                fmt_money(c.spend),
                c.impressions,
                c.clicks,
                c.sessions,
                c.orders,
                fmt_money(c.revenue),
                c.roas
                    .map_or_else(|| "-".to_string(), |r| format!("{r:.2}x")),
            );
        }
        out
    }

    /// CSV for spreadsheets: one `section,metric,value` table (header included). The window and
    /// currency come first as section `report`; nested reported purchases are
    /// `feedback,reported_purchases.<platform>,N`; each campaign field is a row
    /// `campaigns,<campaign>/<field>,value` (the field is after the *last* `/`, so campaign names may
    /// contain slashes). Money has two decimals, ratios four, a null ratio is an empty value; fields are
    /// quoted per RFC 4180 when needed. One uniform shape keeps it loadable by any CSV reader.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("section,metric,value\n");
        let mut row = |section: &str, metric: &str, value: &str| {
            let _ = writeln!(
                out,
                "{},{},{}",
                csv_field(section),
                csv_field(metric),
                csv_field(value)
            );
        };
        row("report", "since", &self.since.to_string());
        row("report", "until", &self.until.to_string());
        row("report", "currency", &self.currency);
        for (section, rows) in self.metric_rows() {
            for (metric, value) in rows {
                row(section, &metric, &value.csv());
            }
        }
        for c in &self.campaigns {
            let fields: [(&str, Val); 8] = [
                ("channel", Val::Text(c.channel.as_str().to_string())),
                ("spend", Val::Money(Some(c.spend))),
                ("impressions", Val::Count(c.impressions)),
                ("clicks", Val::Count(c.clicks)),
                ("sessions", Val::Count(c.sessions)),
                ("orders", Val::Count(c.orders)),
                ("revenue", Val::Money(Some(c.revenue))),
                ("roas", Val::Ratio(c.roas)),
            ];
            for (field, value) in fields {
                let metric = format!("{}/{}", c.campaign, field);
                let v = match &value {
                    Val::Ratio(r) => r.map(|r| format!("{r:.4}")).unwrap_or_default(),
                    other => other.csv(),
                };
                row("campaigns", &metric, &v);
            }
        }
        out
    }

    /// The stage metrics in contract order, shared by the table and CSV renderings so they never drift
    /// from each other.
    fn metric_rows(&self) -> Vec<(&'static str, Vec<(String, Val)>)> {
        let a = &self.awareness;
        let c = &self.consideration;
        let v = &self.conversion;
        let r = &self.retention;
        let f = &self.feedback;
        let p = &f.reported_purchases;
        let m = |s: &str| s.to_string();
        vec![
            (
                "awareness",
                vec![
                    (m("impressions"), Val::Count(a.impressions)),
                    (m("clicks"), Val::Count(a.clicks)),
                    (m("ctr"), Val::Ratio(a.ctr)),
                    (m("spend"), Val::Money(Some(a.spend))),
                    (m("cpm"), Val::Money(a.cpm)),
                    (m("sessions"), Val::Count(a.sessions)),
                    (m("new_users"), Val::Count(a.new_users)),
                ],
            ),
            (
                "consideration",
                vec![
                    (m("engaged_sessions"), Val::Count(c.engaged_sessions)),
                    (m("engagement_rate"), Val::Ratio(c.engagement_rate)),
                    (m("add_to_carts"), Val::Count(c.add_to_carts)),
                    (m("checkouts_started"), Val::Count(c.checkouts_started)),
                    (m("email_opens"), Val::Count(c.email_opens)),
                    (m("email_clicks"), Val::Count(c.email_clicks)),
                ],
            ),
            (
                "conversion",
                vec![
                    (m("orders"), Val::Count(v.orders)),
                    (m("revenue"), Val::Money(Some(v.revenue))),
                    (m("aov"), Val::Money(v.aov)),
                    (m("conversion_rate"), Val::Ratio(v.conversion_rate)),
                    (m("abandoned_checkouts"), Val::Count(v.abandoned_checkouts)),
                    (
                        m("cart_abandonment_rate"),
                        Val::Ratio(v.cart_abandonment_rate),
                    ),
                ],
            ),
            (
                "retention",
                vec![
                    (m("customers"), Val::Count(r.customers)),
                    (m("repeat_customers"), Val::Count(r.repeat_customers)),
                    (
                        m("repeat_purchase_rate"),
                        Val::Ratio(r.repeat_purchase_rate),
                    ),
                    (m("ltv"), Val::Money(r.ltv)),
                    (
                        m("email_attributed_revenue"),
                        Val::Money(Some(r.email_attributed_revenue)),
                    ),
                ],
            ),
            (
                "feedback",
                vec![
                    (m("refunds"), Val::Count(f.refunds)),
                    (m("refunded_amount"), Val::Money(Some(f.refunded_amount))),
                    (m("refund_rate"), Val::Ratio(f.refund_rate)),
                    (m("reported_purchases.meta_ads"), Val::Count(p.meta_ads)),
                    (m("reported_purchases.ga4"), Val::Count(p.ga4)),
                    (m("reported_purchases.klaviyo"), Val::Count(p.klaviyo)),
                    (m("reported_purchases.store"), Val::Count(p.store)),
                ],
            ),
        ]
    }
}

/// A metric value with its kind, so each rendering formats it appropriately.
enum Val {
    Count(i64),
    Money(Option<Decimal>),
    Ratio(Option<f64>),
    Text(String),
}

impl Val {
    fn display(&self) -> String {
        match self {
            Val::Count(n) => n.to_string(),
            Val::Money(m) => m.map_or_else(|| "-".to_string(), fmt_money),
            Val::Ratio(r) => r.map_or_else(|| "-".to_string(), |r| format!("{:.2}%", r * 100.0)),
            Val::Text(t) => t.clone(),
        }
    }

    fn csv(&self) -> String {
        match self {
            Val::Count(n) => n.to_string(),
            Val::Money(m) => m.map(fmt_money).unwrap_or_default(),
            Val::Ratio(r) => r.map(|r| format!("{r:.4}")).unwrap_or_default(),
            Val::Text(t) => t.clone(),
        }
    }
}

fn fmt_money(d: Decimal) -> String {
    format!("{:.2}", money(d))
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

fn csv_field(s: &str) -> String {
    let needs_quotes = s.contains([',', '"', '\n', '\r'])
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace);
    if needs_quotes {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Money as a JSON number: an integer when whole (`"spend":0`, as the contract shows), else a float of
/// the cent-rounded value.
fn ser_money<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    let d = money(*d);
    if d.is_integer() {
        if let Some(i) = d.to_i64() {
            return s.serialize_i64(i);
        }
    }
    s.serialize_f64(d.to_f64().unwrap_or(0.0))
}

fn ser_opt_money<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_money(d, s),
        None => s.serialize_none(),
    }
}

fn money(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn ratio(num: Decimal, den: Decimal) -> Option<f64> {
    if den.is_zero() {
        return None;
    }
    num.checked_div(den)?
        .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
        .to_f64()
}

fn money_ratio(num: Decimal, den: Decimal) -> Option<Decimal> {
    if den.is_zero() {
        return None;
    }
    num.checked_div(den).map(money)
}

fn money_from_sql(units: i64) -> Decimal {
    Decimal::new(units, MONEY_SCALE)
}

/// The window as SQL parameters: `YYYY-MM-DD` bounds for `journey_events.date`, and a half-open
/// `[since, until + 1 day)` range for `orders.created_at`, which compares RFC 3339 text correctly and
/// can use the `orders_created_at` index (a `substr(created_at, 1, 10)` test could not).
struct Window {
    since: String,
    until: String,
    until_next: String,
}

impl Window {
    fn new(since: NaiveDate, until: NaiveDate) -> Window {
        Window {
            since: since.to_string(),
            until: until.to_string(),
            until_next: until
                .succ_opt()
                .map_or_else(|| "9999-12-32".to_string(), |d| d.to_string()),
        }
    }
}

fn resolve_window(
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
        "SELECT substr(max(created_at), 1, 10) FROM orders",
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

/// Per-event-type totals over the window.
#[derive(Debug, Clone, Default)]
struct EventTotal {
    /// Sum of `quantity`, as an integer count.
    quantity: i64,
    /// Number of rows.
    rows: i64,
    /// Sum of `value`, exact.
    value: Decimal,
    /// Sum of `attributes.clicks` (Meta).
    clicks: i64,
}

fn event_totals(conn: &Connection, w: &Window) -> Result<HashMap<String, EventTotal>, ReportError> {
    let sql = concat!(
        "SELECT event_type,
                CAST(ROUND(COALESCE(SUM(quantity), 0)) AS INTEGER),
                COUNT(*),
                COALESCE(SUM(",
        money_sql!("value"),
        "), 0),
                CAST(ROUND(COALESCE(SUM(CASE WHEN event_type = 'ad_insights'
                     THEN CAST(json_extract(attributes, '$.clicks') AS REAL) END), 0)) AS INTEGER)
         FROM journey_events
         WHERE event_type IN ('ad_insights', 'sessions', 'new_users', 'engaged_sessions', 'add_to_carts',
                              'checkouts_started', 'email_opened', 'email_clicked', 'checkout_abandoned')
           AND date BETWEEN ?1 AND ?2
         GROUP BY event_type"
    );
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params![w.since, w.until], |r| {
        Ok((
            r.get::<_, String>(0)?,
            EventTotal {
                quantity: r.get(1)?,
                rows: r.get(2)?,
                value: money_from_sql(r.get(3)?),
                clicks: r.get(4)?,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

const VALID_ORDER: &str = "cancelled = 0 AND test = 0";

fn order_totals(conn: &Connection, w: &Window) -> Result<(i64, Decimal), ReportError> {
    let sql = format!(
        "SELECT COUNT(*), COALESCE(SUM({}), 0) FROM orders
         WHERE {VALID_ORDER} AND created_at >= ?1 AND created_at < ?2",
        money_sql!("total_price")
    );
    let (n, units) = conn.query_row(&sql, params![w.since, w.until_next], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })?;
    Ok((n, money_from_sql(units)))
}

fn customer_counts(conn: &Connection, w: &Window) -> Result<(i64, i64), ReportError> {
    let sql = format!(
        "SELECT COUNT(DISTINCT customer_id),
                COUNT(DISTINCT CASE WHEN customer_order_index >= 2 THEN customer_id END)
         FROM orders
         WHERE {VALID_ORDER} AND created_at >= ?1 AND created_at < ?2
           AND customer_id IS NOT NULL AND customer_id <> ''"
    );
    Ok(conn.query_row(&sql, params![w.since, w.until_next], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?)
}

/// (number of the window's customers, sum over them of all their valid orders up to `until`).
fn ltv_totals(conn: &Connection, w: &Window) -> Result<(i64, Decimal), ReportError> {
    let sql = format!(
        "SELECT COUNT(*), COALESCE(SUM(total), 0) FROM (
             SELECT customer_id, SUM({}) AS total FROM orders
             WHERE {VALID_ORDER} AND created_at < ?2
               AND customer_id IN (
                   SELECT customer_id FROM orders
                   WHERE {VALID_ORDER} AND created_at >= ?1 AND created_at < ?2
                     AND customer_id IS NOT NULL AND customer_id <> '')
             GROUP BY customer_id)",
        money_sql!("total_price")
    );
    let (n, units) = conn.query_row(&sql, params![w.since, w.until_next], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })?;
    Ok((n, money_from_sql(units)))
}

fn klaviyo_attributed(conn: &Connection, w: &Window) -> Result<(i64, Decimal), ReportError> {
    let sql = format!(
        "SELECT COUNT(*), COALESCE(SUM({}), 0) FROM journey_events
         WHERE event_type = 'placed_order' AND date BETWEEN ?1 AND ?2
           AND json_extract(attributes, '$.attributed') IN (1, 'true')",
        money_sql!("value")
    );
    let (n, units) = conn.query_row(&sql, params![w.since, w.until], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })?;
    Ok((n, money_from_sql(units)))
}

fn refund_totals(conn: &Connection, w: &Window) -> Result<(i64, Decimal), ReportError> {
    let sql = format!(
        "SELECT COUNT(*), COALESCE(SUM({}), 0) FROM journey_events e
         WHERE e.event_type = 'refund' AND e.date BETWEEN ?1 AND ?2
           AND EXISTS (
               SELECT 1 FROM orders o
               WHERE o.source = e.source
                 AND o.order_id = CAST(json_extract(e.attributes, '$.order_id') AS TEXT)
                 AND o.cancelled = 0 AND o.test = 0)",
        money_sql!("e.value")
    );
    let (n, units) = conn.query_row(&sql, params![w.since, w.until], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })?;
    Ok((n, money_from_sql(units)))
}

fn reported_purchases(conn: &Connection, w: &Window) -> Result<HashMap<String, i64>, ReportError> {
    let mut stmt = conn.prepare(
        "SELECT json_extract(attributes, '$.platform'),
                CAST(ROUND(COALESCE(SUM(quantity), 0)) AS INTEGER)
         FROM journey_events
         WHERE event_type = 'reported_purchases' AND date BETWEEN ?1 AND ?2
         GROUP BY 1",
    )?;
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

fn currency(conn: &Connection, w: &Window) -> Result<String, ReportError> {
    let from_orders: Option<String> = conn
        .query_row(
            &format!(
                "SELECT upper(trim(currency)) AS c FROM orders
                 WHERE {VALID_ORDER} AND created_at >= ?1 AND created_at < ?2
                   AND currency IS NOT NULL AND trim(currency) <> ''
                 GROUP BY c ORDER BY COUNT(*) DESC, c LIMIT 1"
            ),
            params![w.since, w.until_next],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(c) = from_orders {
        return Ok(c);
    }
    let from_events: Option<String> = conn
        .query_row(
            "SELECT upper(trim(currency)) AS c FROM journey_events
             WHERE date BETWEEN ?1 AND ?2 AND value IS NOT NULL
               AND currency IS NOT NULL AND trim(currency) <> ''
             GROUP BY c ORDER BY COUNT(*) DESC, c LIMIT 1",
            params![w.since, w.until],
            |r| r.get(0),
        )
        .optional()?;
    Ok(from_events.unwrap_or_else(|| "USD".to_string()))
}

/// Everything known about one campaign key while merging the three sources.
#[derive(Debug, Default)]
struct CampaignAcc {
    /// Original spelling (trimmed) → (rows seen, earliest date seen).
    spellings: HashMap<String, (i64, String)>,
    meta_rows: i64,
    spend: Decimal,
    impressions: i64,
    clicks: i64,
    sessions: i64,
    /// GA4 sessions per channel.
    ga4_channels: HashMap<Channel, i64>,
    orders: i64,
    revenue: Decimal,
    /// Valid orders per channel.
    order_channels: HashMap<Channel, i64>,
}

impl CampaignAcc {
    fn seen(&mut self, spelling: &str, rows: i64, first: String) {
        let e = self
            .spellings
            .entry(spelling.to_string())
            .or_insert((0, first.clone()));
        e.0 += rows;
        if first < e.1 {
            e.1 = first;
        }
    }

    fn display_name(&self) -> String {
        self.spellings
            .iter()
            .min_by(|(a, (na, fa)), (b, (nb, fb))| nb.cmp(na).then(fa.cmp(fb)).then(a.cmp(b)))
            .map(|(s, _)| s.clone())
            .unwrap_or_default()
    }

    fn channel(&self) -> Channel {
        if self.meta_rows > 0 {
            return Channel::PaidSocial;
        }
        let most = |m: &HashMap<Channel, i64>| {
            Channel::ALL
                .into_iter()
                .filter_map(|c| m.get(&c).map(|n| (c, *n)))
                // Ties go to the earlier channel in the contract's order: max_by keeps the last maximum,
                // so iterate in reverse.
                .rev()
                .max_by_key(|(_, n)| *n)
                .map(|(c, _)| c)
        };
        most(&self.ga4_channels)
            .or_else(|| most(&self.order_channels))
            .unwrap_or(Channel::Other)
    }
}

/// The join key of a campaign name, or `None` for blanks and "no campaign" placeholders.
fn campaign_key(name: &str) -> Option<(String, String)> {
    let trimmed = name.trim();
    let key = trimmed.to_lowercase();
    if key.is_empty() || CAMPAIGN_PLACEHOLDERS.contains(&key.as_str()) {
        None
    } else {
        Some((key, trimmed.to_string()))
    }
}

fn campaigns(conn: &Connection, w: &Window) -> Result<Vec<CampaignRow>, ReportError> {
    let mut acc: BTreeMap<String, CampaignAcc> = BTreeMap::new();

    // Meta: grouped by exact name; joined in Rust so that Unicode names lower-case correctly.
    let mut stmt = conn.prepare(concat!(
        "SELECT campaign, COUNT(*), MIN(date),
                CAST(ROUND(COALESCE(SUM(quantity), 0)) AS INTEGER),
                COALESCE(SUM(",
        money_sql!("value"),
        "), 0),
                CAST(ROUND(COALESCE(SUM(CAST(json_extract(attributes, '$.clicks') AS REAL)), 0)) AS INTEGER)
         FROM journey_events
         WHERE event_type = 'ad_insights' AND date BETWEEN ?1 AND ?2 AND campaign IS NOT NULL
         GROUP BY campaign"
    ))?;
    let rows = stmt.query_map(params![w.since, w.until], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    for row in rows {
        let (name, n, first, impressions, spend, clicks) = row?;
        if let Some((key, spelling)) = campaign_key(&name) {
            let a = acc.entry(key).or_default();
            a.seen(&spelling, n, first);
            a.meta_rows += n;
            a.impressions += impressions;
            a.spend += money_from_sql(spend);
            a.clicks += clicks;
        }
    }

    // GA4 sessions, per campaign and channel.
    let mut stmt = conn.prepare(
        "SELECT campaign, channel, COUNT(*), MIN(date),
                CAST(ROUND(COALESCE(SUM(quantity), 0)) AS INTEGER)
         FROM journey_events
         WHERE event_type = 'sessions' AND date BETWEEN ?1 AND ?2 AND campaign IS NOT NULL
         GROUP BY campaign, channel",
    )?;
    let rows = stmt.query_map(params![w.since, w.until], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    for row in rows {
        let (name, channel, n, first, sessions) = row?;
        if let Some((key, spelling)) = campaign_key(&name) {
            let a = acc.entry(key).or_default();
            a.seen(&spelling, n, first);
            a.sessions += sessions;
            if let Some(c) = channel.as_deref().and_then(parse_stored) {
                *a.ga4_channels.entry(c).or_insert(0) += sessions;
            }
        }
    }

    // Valid orders, per utm_campaign and channel.
    let mut stmt = conn.prepare(&format!(
        "SELECT utm_campaign, channel, COUNT(*), substr(MIN(created_at), 1, 10), COALESCE(SUM({}), 0)
         FROM orders
         WHERE {VALID_ORDER} AND created_at >= ?1 AND created_at < ?2 AND utm_campaign IS NOT NULL
         GROUP BY utm_campaign, channel",
        money_sql!("total_price")
    ))?;
    let rows = stmt.query_map(params![w.since, w.until_next], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    for row in rows {
        let (name, channel, n, first, revenue) = row?;
        if let Some((key, spelling)) = campaign_key(&name) {
            let a = acc.entry(key).or_default();
            a.seen(&spelling, n, first);
            a.orders += n;
            a.revenue += money_from_sql(revenue);
            if let Some(c) = channel.as_deref().and_then(parse_stored) {
                *a.order_channels.entry(c).or_insert(0) += n;
            }
        }
    }

    let mut out: Vec<(String, CampaignRow)> = acc
        .into_iter()
        .map(|(key, a)| {
            let row = CampaignRow {
                campaign: a.display_name(),
                channel: a.channel(),
                spend: money(a.spend),
                impressions: a.impressions,
                clicks: a.clicks,
                sessions: a.sessions,
                orders: a.orders,
                revenue: money(a.revenue),
                roas: ratio(a.revenue, a.spend),
            };
            (key, row)
        })
        .collect();
    out.sort_by(|(ka, a), (kb, b)| {
        b.revenue
            .cmp(&a.revenue)
            .then_with(|| ka.cmp(kb))
            .then_with(|| a.campaign.cmp(&b.campaign))
    });
    Ok(out.into_iter().map(|(_, r)| r).collect())
}

/// True when a source of `source_type` has been synced into this dataset. A dataset built by hand
/// (tests, other tools) without the internal registry counts as having every platform.
fn has_type(conn: &Connection, source_type: &str) -> Result<bool, ReportError> {
    let registered: i64 =
        conn.query_row("SELECT COUNT(*) FROM growthflow_sources", [], |r| r.get(0))?;
    if registered == 0 {
        return Ok(true);
    }
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM growthflow_sources WHERE type = ?1",
        [source_type],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}
