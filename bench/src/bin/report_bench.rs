//! The report over a large warehouse: generates a dataset of `--orders` orders and `--events` journey
//! events straight into a destination (no HTTP, no sync), then times `growthflow report` over the
//! default window (the last 30 days of data) and over the whole range, and with `--explain` prints
//! each report query's plan.
//!
//! ```text
//! cargo run --release -p growthflow-bench --bin report_bench -- --orders 1000000 --events 10000000
//! cargo run --release -p growthflow-bench --bin report_bench -- --destination postgres://root@127.0.0.1/test
//! ```
//!
//! The schema is made by the dataset's own migrations (the destination is opened through core), so the
//! tables and indexes are exactly the ones a real dataset has; rows go in through one SQLite transaction
//! with prepared statements, or PostgreSQL `COPY`. The data is deterministic (a fixed seed).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{Days, NaiveDate};
use growthflow_bench::{mib, peak_rss_bytes};
use growthflow_core::destination::postgres::PostgresDestination;
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::model::EVENT_TYPES;
use growthflow_core::report::{explain_report, ReportOptions};

const USAGE: &str =
    "report_bench [--orders N] [--events N] [--days N] [--destination URL] [--schema NAME]
             [--dataset PATH] [--reuse] [--runs N] [--explain] [--keep] [--json-out PREFIX]";

#[derive(Debug)]
struct Args {
    orders: u64,
    events: u64,
    days: u64,
    destination: Option<String>,
    schema: Option<String>,
    dataset: Option<PathBuf>,
    reuse: bool,
    runs: usize,
    explain: bool,
    keep: bool,
    /// Where to write each window's JSON report (`PREFIX-default.json`, `PREFIX-full.json`), to
    /// compare the reports of two builds field by field.
    json_out: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        orders: 1_000_000,
        events: 10_000_000,
        days: 730,
        destination: None,
        schema: None,
        dataset: None,
        reuse: false,
        runs: 5,
        explain: false,
        keep: false,
        json_out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--orders" => a.orders = value()?.parse()?,
            "--events" => a.events = value()?.parse()?,
            "--days" => a.days = value()?.parse()?,
            "--destination" => a.destination = Some(value()?),
            "--schema" => a.schema = Some(value()?),
            "--dataset" => a.dataset = Some(PathBuf::from(value()?)),
            "--runs" => a.runs = value()?.parse()?,
            "--reuse" => a.reuse = true,
            "--explain" => a.explain = true,
            "--keep" => a.keep = true,
            "--json-out" => a.json_out = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if a.days < 31 {
        bail!("--days must be at least 31");
    }
    Ok(a)
}

/// splitmix64: small, fast and the same everywhere, so the warehouse is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Where rows go: the same text columns for both stores (SQLite's column affinities turn numeric text
/// into REAL/INTEGER; PostgreSQL's `COPY` parses each into the column's type).
trait Sink {
    fn begin(&mut self, table: &'static str, columns: &'static [&'static str]) -> Result<()>;
    fn row(&mut self, values: &[Option<&str>]) -> Result<()>;
    fn end(&mut self) -> Result<()>;
}

struct SqliteSink<'c> {
    conn: &'c rusqlite::Connection,
    stmt: Option<rusqlite::Statement<'c>>,
}

impl Sink for SqliteSink<'_> {
    fn begin(&mut self, table: &'static str, columns: &'static [&'static str]) -> Result<()> {
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        self.stmt = Some(self.conn.prepare(&format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            columns.join(", "),
            marks.join(", ")
        ))?);
        Ok(())
    }
    fn row(&mut self, values: &[Option<&str>]) -> Result<()> {
        let stmt = self.stmt.as_mut().context("no table begun")?;
        stmt.execute(rusqlite::params_from_iter(values.iter()))?;
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        self.stmt = None;
        Ok(())
    }
}

struct PgSink<'c> {
    client: &'c mut postgres::Client,
    buf: Vec<u8>,
    table: &'static str,
    columns: &'static [&'static str],
}

impl PgSink<'_> {
    /// COPY in batches of a few MiB: one `COPY` per batch keeps memory flat.
    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut w = self.client.copy_in(&format!(
            "COPY {} ({}) FROM STDIN",
            self.table,
            self.columns.join(", ")
        ))?;
        w.write_all(&self.buf)?;
        w.finish()?;
        self.buf.clear();
        Ok(())
    }
}

impl Sink for PgSink<'_> {
    fn begin(&mut self, table: &'static str, columns: &'static [&'static str]) -> Result<()> {
        self.table = table;
        self.columns = columns;
        Ok(())
    }
    fn row(&mut self, values: &[Option<&str>]) -> Result<()> {
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.buf.push(b'\t');
            }
            match v {
                None => self.buf.extend_from_slice(b"\\N"),
                // The generated text holds no tab, newline or backslash.
                Some(s) => self.buf.extend_from_slice(s.as_bytes()),
            }
        }
        self.buf.push(b'\n');
        if self.buf.len() > 32 << 20 {
            self.flush()?;
        }
        Ok(())
    }
    fn end(&mut self) -> Result<()> {
        self.flush()
    }
}

const ORDER_COLUMNS: &[&str] = &[
    "source",
    "order_id",
    "customer_id",
    "email",
    "created_at",
    "currency",
    "total_price",
    "subtotal_price",
    "total_discounts",
    "total_refunded",
    "financial_status",
    "cancelled",
    "test",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "channel",
    "landing_page",
    "referrer",
    "customer_order_index",
];

const EVENT_COLUMNS: &[&str] = &[
    "event_id",
    "source",
    "stream",
    "occurred_at",
    "date",
    "stage",
    "event_type",
    "channel",
    "campaign",
    "customer_id",
    "quantity",
    "value",
    "currency",
    "attributes",
];

const CUSTOMER_COLUMNS: &[&str] = &[
    "customer_id",
    "email",
    "first_seen_at",
    "first_order_at",
    "orders_count",
    "total_spent",
];

const META_CAMPAIGNS: &[&str] = &[
    "Summer Sale",
    "Retargeting - Cart",
    "Prospecting Lookalike 1%",
    "Brand Awareness",
    "New Arrivals",
    "Black Friday",
    "Holiday Gifts",
    "Spring Collection",
    "Video Views Q1",
    "Catalog Sales",
    "Lead Magnet",
    "UGC Creators",
];
const SEARCH_CAMPAIGNS: &[&str] = &["Brand Search", "Generic Shoes", "Shopping - All Products"];
const EMAIL_CAMPAIGNS: &[&str] = &[
    "Welcome Series",
    "Abandoned Cart Flow",
    "Weekly Newsletter",
    "Win-back Flow",
    "Post-purchase Flow",
    "VIP Early Access",
];
const CURRENCIES: &[(&str, f64)] = &[("EUR", 0.05), ("GBP", 0.02)];

/// One generated order, kept compact: its events and the customers table are derived from these.
#[derive(Debug, Clone)]
struct Order {
    shopify: bool,
    id: u64,
    secs: i64,
    customer: Option<u32>,
    currency: &'static str,
    cents: i64,
    valid: bool,
    cancelled: bool,
    test: bool,
    campaign: Option<(&'static str, &'static str, &'static str)>,
    index: Option<u32>,
    refund: Option<(i64, i64)>,
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The day weights: traffic doubles over the range, as a growing store's does.
fn per_day(total: u64, days: u64) -> Vec<u64> {
    let w: Vec<f64> = (0..days).map(|d| 1.0 + d as f64 / days as f64).collect();
    let sum: f64 = w.iter().sum();
    let mut out = Vec::with_capacity(days as usize);
    let mut acc = 0.0;
    let mut given = 0u64;
    for x in w {
        acc += x / sum * total as f64;
        let upto = acc.round() as u64;
        out.push(upto - given);
        given = upto;
    }
    out
}

struct Warehouse {
    counts: std::collections::BTreeMap<&'static str, u64>,
}

fn generate(sink: &mut dyn Sink, a: &Args, pg: bool) -> Result<Warehouse> {
    let mut rng = Rng(0x5EED_2025);
    let last_day = NaiveDate::from_ymd_opt(2025, 6, 30).context("date")?;
    let first_day = last_day - Days::new(a.days - 1);
    let day_secs = |d: u64| {
        (first_day + Days::new(d))
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp())
    };
    let (t, f) = if pg { ("true", "false") } else { ("1", "0") };
    let n_customers = (a.orders * 2 / 5).max(1) as u32;
    let loyal = (n_customers / 5).max(1);

    // Orders, in time order, numbered per customer over their valid orders.
    let mut orders = Vec::with_capacity(a.orders as usize);
    let mut seq = [0u32; 2];
    let mut index_of = vec![0u32; n_customers as usize];
    for (d, n) in per_day(a.orders, a.days).into_iter().enumerate() {
        let start = day_secs(d as u64);
        for i in 0..n {
            let secs = start + ((i * 86_400 + rng.below(86_400)) / n.max(1)) as i64;
            let shopify = rng.chance(0.7);
            seq[shopify as usize] += 1;
            let customer = if rng.chance(0.02) {
                None
            } else if rng.chance(0.45) {
                Some(rng.below(loyal as u64) as u32)
            } else {
                Some(rng.below(n_customers as u64) as u32)
            };
            let cancelled = rng.chance(0.02);
            let test = rng.chance(0.005);
            let valid = !cancelled && !test;
            let index = match customer {
                Some(c) if valid => {
                    index_of[c as usize] += 1;
                    Some(index_of[c as usize])
                }
                _ => None,
            };
            let mut currency = "USD";
            for (c, p) in CURRENCIES {
                if rng.chance(*p) {
                    currency = c;
                }
            }
            let cents = 500 + rng.below(30_000) as i64;
            let campaign = match rng.below(10) {
                0..=2 => Some(("facebook", "paid_social", rng.pick(META_CAMPAIGNS))),
                3 => Some(("google", "paid_search", rng.pick(SEARCH_CAMPAIGNS))),
                4 => Some(("klaviyo", "email", rng.pick(EMAIL_CAMPAIGNS))),
                _ => None,
            };
            let refund = (valid && rng.chance(0.04)).then(|| {
                let at = (secs + rng.below(20 * 86_400) as i64).min(day_secs(a.days) - 1);
                (at, cents / (1 + rng.below(3) as i64))
            });
            orders.push(Order {
                shopify,
                id: seq[shopify as usize] as u64,
                secs,
                customer,
                currency,
                cents,
                valid,
                cancelled,
                test,
                campaign,
                index,
                refund,
            });
        }
    }

    let mut counts = std::collections::BTreeMap::new();
    let email = |c: u32| format!("customer{c}@example.com");
    sink.begin("orders", ORDER_COLUMNS)?;
    for o in &orders {
        let (utm_source, channel, campaign) = match o.campaign {
            Some((s, ch, c)) => (Some(s), ch, Some(c)),
            None => (
                None,
                ["direct", "organic_search", "referral"][o.id as usize % 3],
                None,
            ),
        };
        let medium = o.campaign.map(|(_, ch, _)| match ch {
            "paid_social" => "paid",
            "paid_search" => "cpc",
            _ => "email",
        });
        let em = o.customer.map(email);
        let total = money(o.cents);
        let discount = money(o.cents / 10);
        let subtotal = money(o.cents - o.cents / 10);
        let refunded = money(o.refund.map_or(0, |r| r.1));
        let index = o.index.map(|i| i.to_string());
        sink.row(&[
            Some(if o.shopify { "shop" } else { "woo" }),
            Some(&o.id.to_string()),
            em.as_deref(),
            em.as_deref(),
            Some(&rfc3339(o.secs)),
            Some(o.currency),
            Some(&total),
            Some(&subtotal),
            Some(&discount),
            Some(&refunded),
            Some(if o.refund.is_some() {
                "partially_refunded"
            } else {
                "paid"
            }),
            Some(if o.cancelled { t } else { f }),
            Some(if o.test { t } else { f }),
            utm_source,
            medium,
            campaign,
            Some(channel),
            Some("/products/sneaker"),
            None,
            index.as_deref(),
        ])?;
    }
    sink.end()?;
    counts.insert("orders", orders.len() as u64);

    // Events, day by day, every event type of the vocabulary.
    let fixed = orders.len() as u64
        + orders.iter().filter(|o| o.refund.is_some()).count() as u64
        + a.orders / 4
        + a.days * (30 * 5 + 1)
        + a.days * (META_CAMPAIGNS.len() as u64 * 2);
    let klaviyo = a.events.saturating_sub(fixed);
    let abandoned_per_day = per_day(a.orders / 4, a.days);
    let klaviyo_per_day = per_day(klaviyo, a.days);
    let mut refunds_by_day: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for (i, o) in orders.iter().enumerate() {
        if let Some((at, _)) = o.refund {
            refunds_by_day
                .entry(at.div_euclid(86_400))
                .or_default()
                .push(i);
        }
    }
    let ga4_combos: Vec<(&str, &str)> = {
        let mut v = vec![
            ("organic_search", "(organic)"),
            ("direct", "(direct)"),
            ("referral", "(referral)"),
            ("organic_social", "(not set)"),
            ("other", "(not set)"),
            ("paid_search", "(not set)"),
            ("email", "(not set)"),
        ];
        v.extend(META_CAMPAIGNS.iter().map(|c| ("paid_social", *c)));
        v.extend(SEARCH_CAMPAIGNS.iter().map(|c| ("paid_search", *c)));
        v.extend(EMAIL_CAMPAIGNS.iter().map(|c| ("email", *c)));
        v.truncate(30);
        while v.len() < 30 {
            v.push(("referral", "(referral)"));
        }
        v
    };
    let klaviyo_mix: &[(&str, &str, u64)] = &[
        ("email_received", "consideration", 45),
        ("email_opened", "consideration", 25),
        ("email_clicked", "consideration", 7),
        ("product_viewed", "consideration", 13),
        ("checkout_started", "consideration", 5),
        ("placed_order", "conversion", 5),
    ];
    let mix_total: u64 = klaviyo_mix.iter().map(|m| m.2).sum();

    let mut next_id = 0u64;
    let mut oi = 0usize;
    let mut emit = |sink: &mut dyn Sink,
                    counts: &mut std::collections::BTreeMap<&'static str, u64>,
                    e: Ev<'_>|
     -> Result<()> {
        next_id += 1;
        let id = format!("ev{next_id:011}");
        let occurred = rfc3339(e.secs);
        sink.row(&[
            Some(&id),
            Some(e.source),
            Some(e.stream),
            Some(&occurred),
            Some(&occurred[..10]),
            Some(e.stage),
            Some(e.event_type),
            e.channel,
            e.campaign,
            e.customer.as_deref(),
            Some(&e.quantity.to_string()),
            e.value.as_deref(),
            e.currency,
            Some(&e.attributes),
        ])?;
        *counts.entry(e.event_type).or_insert(0) += 1;
        Ok(())
    };
    sink.begin("journey_events", EVENT_COLUMNS)?;
    for d in 0..a.days {
        let start = day_secs(d);
        let day = start.div_euclid(86_400);
        // Store orders, and refunds dated today.
        while oi < orders.len() && orders[oi].secs < start + 86_400 {
            let o = &orders[oi];
            oi += 1;
            emit(
                sink,
                &mut counts,
                Ev {
                    source: if o.shopify { "shop" } else { "woo" },
                    stream: "orders",
                    secs: o.secs,
                    stage: if o.index.unwrap_or(1) >= 2 {
                        "retention"
                    } else {
                        "conversion"
                    },
                    event_type: "order",
                    channel: Some(o.campaign.map_or("direct", |c| c.1)),
                    campaign: o.campaign.map(|c| c.2),
                    customer: o.customer.map(email),
                    quantity: 1,
                    value: Some(money(o.cents)),
                    currency: Some(o.currency),
                    attributes: format!(r#"{{"order_id":"{}","valid":{}}}"#, o.id, o.valid),
                },
            )?;
        }
        for &i in refunds_by_day
            .get(&day)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let o = &orders[i];
            let (at, cents) = o.refund.unwrap_or_default();
            emit(
                sink,
                &mut counts,
                Ev {
                    source: if o.shopify { "shop" } else { "woo" },
                    stream: "orders",
                    secs: at,
                    stage: "feedback",
                    event_type: "refund",
                    channel: Some(o.campaign.map_or("direct", |c| c.1)),
                    campaign: None,
                    customer: o.customer.map(email),
                    quantity: 1,
                    value: Some(money(cents)),
                    // WooCommerce refunds carry no currency: the report takes the order's.
                    currency: o.shopify.then_some(o.currency),
                    attributes: format!(r#"{{"order_id":"{}"}}"#, o.id),
                },
            )?;
        }
        for _ in 0..abandoned_per_day[d as usize] {
            emit(
                sink,
                &mut counts,
                Ev {
                    source: "shop",
                    stream: "abandoned_checkouts",
                    secs: start + rng.below(86_400) as i64,
                    stage: "conversion",
                    event_type: "checkout_abandoned",
                    channel: None,
                    campaign: None,
                    customer: Some(email(rng.below(n_customers as u64) as u32)),
                    quantity: 1,
                    value: Some(money(500 + rng.below(30_000) as i64)),
                    currency: Some("USD"),
                    attributes: "{}".into(),
                },
            )?;
        }
        // GA4: a daily row per channel and campaign for each metric, and its purchase claim.
        let growth = 1.0 + d as f64 / a.days as f64;
        for (ch, camp) in &ga4_combos {
            let sessions = ((50 + rng.below(400)) as f64 * growth) as u64;
            for (t, share) in [
                ("sessions", 100),
                ("new_users", 60),
                ("engaged_sessions", 55),
                ("add_to_carts", 12),
                ("checkouts_started", 5),
            ] {
                emit(
                    sink,
                    &mut counts,
                    Ev {
                        source: "web",
                        stream: "traffic",
                        secs: start,
                        stage: if matches!(t, "sessions" | "new_users") {
                            "awareness"
                        } else {
                            "consideration"
                        },
                        event_type: t,
                        channel: Some(ch),
                        campaign: Some(camp),
                        customer: None,
                        quantity: sessions * share / 100,
                        value: None,
                        currency: None,
                        attributes: "{}".into(),
                    },
                )?;
            }
        }
        emit(
            sink,
            &mut counts,
            Ev {
                source: "web",
                stream: "ecommerce",
                secs: start,
                stage: "feedback",
                event_type: "reported_purchases",
                channel: None,
                campaign: None,
                customer: None,
                quantity: 1000 + rng.below(500),
                value: Some(money(5_000_000 + rng.below(1_000_000) as i64)),
                currency: Some("USD"),
                attributes: r#"{"platform":"ga4"}"#.into(),
            },
        )?;
        // Meta: each campaign's day, and what it claims it sold.
        for camp in META_CAMPAIGNS {
            let impressions = 5_000 + rng.below(50_000);
            let clicks = impressions / 100 + rng.below(100);
            let currency = if camp.starts_with('U') { "EUR" } else { "USD" };
            emit(
                sink,
                &mut counts,
                Ev {
                    source: "ads",
                    stream: "ads_insights",
                    secs: start,
                    stage: "awareness",
                    event_type: "ad_insights",
                    channel: Some("paid_social"),
                    campaign: Some(camp),
                    customer: None,
                    quantity: impressions,
                    value: Some(money(impressions as i64 / 100 * 75 + rng.below(100) as i64)),
                    currency: Some(currency),
                    attributes: format!(r#"{{"clicks":{clicks},"ad_id":"{}"}}"#, camp.len()),
                },
            )?;
            emit(
                sink,
                &mut counts,
                Ev {
                    source: "ads",
                    stream: "ads_insights",
                    secs: start,
                    stage: "feedback",
                    event_type: "reported_purchases",
                    channel: Some("paid_social"),
                    campaign: Some(camp),
                    customer: None,
                    quantity: 5 + rng.below(40),
                    value: Some(money(100_000 + rng.below(200_000) as i64)),
                    currency: Some(currency),
                    attributes: r#"{"platform":"meta_ads"}"#.into(),
                },
            )?;
        }
        // Klaviyo: individual events of its profiles (the stores' customers).
        let n = klaviyo_per_day[d as usize];
        for i in 0..n {
            let mut k = rng.below(mix_total);
            let (t, stage, _) = *klaviyo_mix
                .iter()
                .find(|m| {
                    let hit = k < m.2;
                    k = k.saturating_sub(m.2);
                    hit
                })
                .unwrap_or(&klaviyo_mix[0]);
            let campaign = rng.pick(EMAIL_CAMPAIGNS);
            let emailish = matches!(t, "email_received" | "email_opened" | "email_clicked");
            let attributed = t == "placed_order" && rng.chance(0.6);
            emit(
                sink,
                &mut counts,
                Ev {
                    source: "email",
                    stream: "events",
                    secs: start + ((i * 86_400) / n.max(1)) as i64,
                    stage,
                    event_type: t,
                    channel: (emailish || attributed).then_some("email"),
                    campaign: (emailish || attributed).then_some(campaign),
                    customer: Some(email(rng.below(n_customers as u64) as u32)),
                    quantity: 1,
                    value: (t == "placed_order").then(|| money(500 + rng.below(30_000) as i64)),
                    currency: (t == "placed_order").then_some("USD"),
                    attributes: if t == "placed_order" {
                        format!(
                            r#"{{"attributed":{attributed},"message":"m{}"}}"#,
                            campaign.len()
                        )
                    } else {
                        format!(r#"{{"message":"m{}"}}"#, campaign.len())
                    },
                },
            )?;
        }
    }
    sink.end()?;

    // Customers, from their orders (first seen = first order).
    let mut agg: Vec<(i64, u32, i64)> = vec![(i64::MAX, 0, 0); n_customers as usize];
    for o in &orders {
        if let (Some(c), true) = (o.customer, o.valid) {
            let e = &mut agg[c as usize];
            e.0 = e.0.min(o.secs);
            e.1 += 1;
            e.2 += o.cents;
        }
    }
    sink.begin("customers", CUSTOMER_COLUMNS)?;
    let mut n = 0;
    for (c, (first, count, spent)) in agg.iter().enumerate() {
        if *count == 0 {
            continue;
        }
        let id = email(c as u32);
        let first = rfc3339(*first);
        sink.row(&[
            Some(&id),
            Some(&id),
            Some(&first),
            Some(&first),
            Some(&count.to_string()),
            Some(&money(*spent)),
        ])?;
        n += 1;
    }
    sink.end()?;
    counts.insert("customers", n);

    sink.begin("growthflow_sources", &["source", "type"])?;
    for (s, ty) in [
        ("shop", "shopify"),
        ("woo", "woocommerce"),
        ("email", "klaviyo"),
        ("web", "ga4"),
        ("ads", "meta_ads"),
    ] {
        sink.row(&[Some(s), Some(ty)])?;
    }
    sink.end()?;
    for def in EVENT_TYPES {
        if !counts.contains_key(def.event_type) {
            bail!(
                "the generator made no `{}` event: raise --events",
                def.event_type
            );
        }
    }
    Ok(Warehouse { counts })
}

struct Ev<'a> {
    source: &'a str,
    stream: &'a str,
    secs: i64,
    stage: &'a str,
    event_type: &'static str,
    channel: Option<&'a str>,
    campaign: Option<&'a str>,
    customer: Option<String>,
    quantity: u64,
    value: Option<String>,
    currency: Option<&'a str>,
    attributes: String,
}

/// Runs `growthflow --config CONFIG report --format json [extra…]` in-process, as a user would.
fn time_report(
    rt: &tokio::runtime::Runtime,
    config: &std::path::Path,
    extra: &[&str],
) -> Result<(Duration, String)> {
    use clap::Parser as _;
    let mut argv = vec![
        "growthflow".to_string(),
        "--config".into(),
        config.display().to_string(),
        "-q".into(),
        "report".into(),
        "--format".into(),
        "json".into(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    let cli = growthflow_cli::cli::Cli::try_parse_from(&argv)?;
    let mut out = Vec::new();
    let started = Instant::now();
    let code = rt.block_on(growthflow_cli::app::run(cli, &mut out));
    let took = started.elapsed();
    if code != 0 {
        bail!("report exited {code}: {}", String::from_utf8_lossy(&out));
    }
    Ok((took, String::from_utf8_lossy(&out).into_owned()))
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let tmp = tempfile::tempdir()?;
    let pg = a
        .destination
        .as_deref()
        .is_some_and(|u| u.starts_with("postgres"));
    let schema = a
        .schema
        .clone()
        .unwrap_or_else(|| format!("report_bench_{}", std::process::id()));
    let config = tmp.path().join("growthflow.toml");
    let generated = Instant::now();
    let mut counts = None;
    let (first_day, last_day);
    if pg {
        let url = a.destination.clone().unwrap_or_default();
        let mut dest = PostgresDestination::connect(&url, Some(&schema))?;
        let client = dest.client();
        let existing: i64 = client.query_one("SELECT count(*) FROM orders", &[])?.get(0);
        if !(a.reuse && existing > 0) {
            let mut sink = PgSink {
                client,
                buf: Vec::new(),
                table: "",
                columns: &[],
            };
            let w = generate(&mut sink, &a, true)?;
            // The report's rollups, as the rebuild fills them: the load's triggers noted every day
            // and customer; the same refresh computes them.
            eprintln!("rollups…");
            let mut tx = dest.client().transaction()?;
            growthflow_core::report::refresh_rollups_postgres(&mut tx)?;
            tx.commit()?;
            // As autovacuum would after a load this size: statistics, and the visibility map that lets
            // index-only scans skip the heap.
            eprintln!("vacuum analyze…");
            dest.client().batch_execute("VACUUM ANALYZE")?;
            counts = Some(w.counts);
        }
        let (lo, hi) = data_range(&mut Dataset::Pg(dest.client()))?;
        (first_day, last_day) = (lo, hi);
        std::fs::write(
            &config,
            format!(
                "[destination]\nurl = {}\nschema = {}\n",
                toml_str(&url),
                toml_str(&schema)
            ),
        )?;
    } else {
        let path = a
            .dataset
            .clone()
            .unwrap_or_else(|| tmp.path().join("growthflow.db"));
        let dest = SqliteDestination::open(&path)?;
        let conn = dest.connection();
        let existing: i64 = conn.query_row("SELECT count(*) FROM orders", [], |r| r.get(0))?;
        if !(a.reuse && existing > 0) {
            if existing > 0 {
                bail!(
                    "{} already holds orders (pass --reuse to time it as is)",
                    path.display()
                );
            }
            // Loading only: a big page cache for the index inserts, one transaction.
            conn.execute_batch("PRAGMA cache_size = -1000000; BEGIN")?;
            let mut sink = SqliteSink { conn, stmt: None };
            let w = generate(&mut sink, &a, false)?;
            drop(sink);
            // The report's rollups, as the rebuild fills them (see the PostgreSQL side).
            growthflow_core::report::refresh_rollups_sqlite(conn)?;
            conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE)")?;
            counts = Some(w.counts);
        }
        let (lo, hi) = data_range(&mut Dataset::Sqlite(conn))?;
        (first_day, last_day) = (lo, hi);
        std::fs::write(
            &config,
            format!(
                "[destination]\nurl = {}\n",
                toml_str(&format!("sqlite://{}", path.display()))
            ),
        )?;
        if a.keep || a.dataset.is_some() {
            eprintln!("dataset kept at {}", path.display());
        }
    }
    if let Some(counts) = &counts {
        println!(
            "generated in {:.1} s: {}",
            generated.elapsed().as_secs_f64(),
            counts
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    println!(
        "destination: {}; data from {first_day} to {last_day}",
        if pg {
            format!("postgres (schema {schema})")
        } else {
            "sqlite".to_string()
        }
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let since = first_day.to_string();
    let windows: [(&str, &str, Vec<&str>); 2] = [
        ("default window (last 30 days)", "default", vec![]),
        (
            "full range (--since first day)",
            "full",
            vec!["--since", since.as_str()],
        ),
    ];
    for (name, file, extra) in &windows {
        let mut times = Vec::new();
        let mut last = String::new();
        for _ in 0..a.runs.max(1) {
            let (t, out) = time_report(&rt, &config, extra)?;
            times.push(t.as_secs_f64());
            last = out;
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let v: serde_json::Value = serde_json::from_str(&last)?;
        if let Some(prefix) = &a.json_out {
            let path = format!("{}-{file}.json", prefix.display());
            std::fs::write(&path, &last)?;
            eprintln!("report written to {path}");
        }
        println!(
            "report, {name}: median {:.3} s, min {:.3} s, max {:.3} s over {} runs ({}: orders {}, revenue {}, sessions {}, email_opens {})",
            sorted[sorted.len() / 2],
            sorted[0],
            sorted[sorted.len() - 1],
            sorted.len(),
            format_args!("{}..{}", v["since"].as_str().unwrap_or("?"), v["until"].as_str().unwrap_or("?")),
            v["conversion"]["orders"],
            v["conversion"]["revenue"],
            v["awareness"]["sessions"],
            v["consideration"]["email_opens"],
        );
    }

    if a.explain {
        for (name, since) in [("default window", None), ("full range", Some(first_day))] {
            let opts = ReportOptions {
                since,
                ..Default::default()
            };
            println!("\n=== query plans, {name} ===");
            let plans = if pg {
                let mut dest = PostgresDestination::connect(
                    a.destination.as_deref().unwrap_or_default(),
                    Some(&schema),
                )?;
                explain_report(dest.client(), &opts)?
            } else {
                let path = a
                    .dataset
                    .clone()
                    .unwrap_or_else(|| tmp.path().join("growthflow.db"));
                let dest = SqliteDestination::open(&path)?;
                explain_report(dest.connection(), &opts)?
            };
            for (i, p) in plans.iter().enumerate() {
                println!(
                    "\n-- query {} ({:.3} s), parameters {:?}\n{}\n{}",
                    i + 1,
                    p.seconds,
                    p.params,
                    squeeze(&p.sql),
                    p.plan.trim_end()
                );
            }
        }
    }
    if let Some(rss) = peak_rss_bytes() {
        println!("peak RSS of the benchmark process: {}", mib(rss));
    }

    if pg && !a.keep && a.schema.is_none() {
        let mut dest = PostgresDestination::connect(
            a.destination.as_deref().unwrap_or_default(),
            Some(&schema),
        )?;
        dest.client()
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))?;
    } else if pg {
        eprintln!("schema {schema} kept");
    }
    if a.keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(())
}

enum Dataset<'a> {
    Sqlite(&'a rusqlite::Connection),
    Pg(&'a mut postgres::Client),
}

/// The first and last day anything in the dataset belongs to.
fn data_range(db: &mut Dataset<'_>) -> Result<(NaiveDate, NaiveDate)> {
    let (lo, hi): (String, String) = match db {
        Dataset::Sqlite(c) => {
            c.query_row("SELECT min(date), max(date) FROM journey_events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
        }
        Dataset::Pg(c) => {
            let r = c.query_one(
                "SELECT min(date)::text, max(date)::text FROM journey_events",
                &[],
            )?;
            (r.get(0), r.get(1))
        }
    };
    Ok((lo.parse()?, hi.parse()?))
}

/// A query's text on as few lines as it has statements, for the printed plans.
fn squeeze(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn toml_str(s: &str) -> String {
    format!("{:?}", s)
}
