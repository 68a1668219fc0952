//! The report's text renderings: a table for terminals (the only rendering that rounds, for display)
//! and CSV for spreadsheets (exact, like the JSON).

use std::fmt::Write as _;

use rust_decimal::prelude::FromPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use super::Report;

impl Report {
    /// A fixed-width text rendering for a terminal: one block per stage, what other currencies hold,
    /// then the campaign table. Metric names are the JSON keys so a reader can move between the
    /// formats; for display, ratios are shown as percentages with two decimals (ROAS as a multiple),
    /// money with two decimals, and `-` where a ratio is unknown or has no denominator.
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
        if !self.other_currencies.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "OTHER CURRENCIES (left out of the {} money above)",
                self.currency
            );
            for (code, rows) in self.other_rows() {
                for (metric, value) in rows {
                    let _ = writeln!(
                        out,
                        "  {:<28}{:>16}",
                        format!("{code} {metric}"),
                        value.display()
                    );
                }
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

    /// CSV for spreadsheets and scripts: two tables, each with its own header, separated by one empty
    /// line.
    ///
    /// 1. `section,metric,value`: the window and currency (section `report`), every stage metric in
    ///    contract order (nested reported purchases as `feedback,reported_purchases.<platform>,N`), then
    ///    what other currencies hold (`other_currencies,<CODE>.<field>,value`).
    /// 2. `campaign,channel,spend,impressions,clicks,sessions,orders,revenue,roas`: one row per campaign,
    ///    in the report's order; the header is there even when no campaign is.
    ///
    /// A metric is a row, not a column, in the first table so adding one never shifts the others; a
    /// campaign is a row in the second so a spreadsheet can sort and filter them. Values are exact, as in
    /// the JSON; an unknown ratio is an empty value. Quoting (RFC 4180) is the `csv` crate's.
    pub fn to_csv(&self) -> String {
        let mut metrics = csv::Writer::from_writer(Vec::new());
        let mut row = |section: &str, metric: &str, value: &str| {
            metrics
                .write_record([section, metric, value])
                .expect("writing CSV to memory cannot fail");
        };
        row("section", "metric", "value");
        row("report", "since", &self.since.to_string());
        row("report", "until", &self.until.to_string());
        row("report", "currency", &self.currency);
        for (section, rows) in self.metric_rows() {
            for (metric, value) in rows {
                row(section, &metric, &value.csv());
            }
        }
        for (code, rows) in self.other_rows() {
            for (metric, value) in rows {
                row(
                    "other_currencies",
                    &format!("{code}.{metric}"),
                    &value.csv(),
                );
            }
        }

        let mut campaigns = csv::Writer::from_writer(Vec::new());
        let mut write = |record: [String; 9]| {
            campaigns
                .write_record(&record)
                .expect("writing CSV to memory cannot fail");
        };
        write(CAMPAIGN_COLUMNS.map(str::to_string));
        for c in &self.campaigns {
            write([
                c.campaign.clone(),
                c.channel.as_str().to_string(),
                Val::Money(c.spend).csv(),
                Val::Count(c.impressions).csv(),
                Val::Count(c.clicks).csv(),
                Val::Count(c.sessions).csv(),
                Val::Count(c.orders).csv(),
                Val::Money(c.revenue).csv(),
                Val::Ratio(c.roas).csv(),
            ]);
        }

        let mut out = into_string(metrics);
        out.push('\n');
        out.push_str(&into_string(campaigns));
        out
    }

    /// The other currencies' rows, by code.
    fn other_rows(&self) -> Vec<(&str, Vec<(&'static str, Val)>)> {
        self.other_currencies
            .iter()
            .map(|(code, o)| {
                (
                    code.as_str(),
                    vec![
                        ("orders", Val::Count(o.orders)),
                        ("revenue", Val::Money(o.revenue)),
                        ("spend", Val::Money(o.spend)),
                        ("refunds", Val::Count(o.refunds)),
                        ("refunded_amount", Val::Money(o.refunded_amount)),
                        (
                            "email_attributed_revenue",
                            Val::Money(o.email_attributed_revenue),
                        ),
                    ],
                )
            })
            .collect()
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
                    (m("spend"), Val::Money(a.spend)),
                    (m("cpm"), Val::Average(a.cpm)),
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
                    (m("revenue"), Val::Money(v.revenue)),
                    (m("aov"), Val::Average(v.aov)),
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
                    (m("ltv"), Val::Average(r.ltv)),
                    (
                        m("email_attributed_revenue"),
                        Val::Money(r.email_attributed_revenue),
                    ),
                ],
            ),
            (
                "feedback",
                vec![
                    (m("refunds"), Val::Count(f.refunds)),
                    (m("refunded_amount"), Val::Money(f.refunded_amount)),
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
    /// A money total, exact.
    Money(Decimal),
    /// Money per unit (aov, cpm, ltv), a double; `None` when unknown.
    Average(Option<f64>),
    /// A rate; `None` when unknown.
    Ratio(Option<f64>),
}

impl Val {
    /// For the table: rounded for reading.
    fn display(&self) -> String {
        match self {
            Val::Count(n) => n.to_string(),
            Val::Money(m) => fmt_money(*m),
            Val::Average(a) => a.map_or_else(
                || "-".to_string(),
                // Via the decimal the double prints as, so 30.025 shows as 30.03 like money does.
                |a| Decimal::from_f64(a).map_or_else(|| format!("{a:.2}"), fmt_money),
            ),
            Val::Ratio(r) => r.map_or_else(|| "-".to_string(), |r| format!("{:.2}%", r * 100.0)),
        }
    }

    /// For CSV: exact, as in the JSON.
    fn csv(&self) -> String {
        match self {
            Val::Count(n) => n.to_string(),
            Val::Money(m) => m.normalize().to_string(),
            Val::Average(r) | Val::Ratio(r) => r.map(|r| r.to_string()).unwrap_or_default(),
        }
    }
}

/// Money for display: two decimals, half away from zero.
fn fmt_money(d: Decimal) -> String {
    format!(
        "{:.2}",
        d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    )
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

/// The campaigns table's header: the JSON's campaign keys, in its order.
const CAMPAIGN_COLUMNS: [&str; 9] = [
    "campaign",
    "channel",
    "spend",
    "impressions",
    "clicks",
    "sessions",
    "orders",
    "revenue",
    "roas",
];

fn into_string(w: csv::Writer<Vec<u8>>) -> String {
    let bytes = w.into_inner().expect("flushing CSV to memory cannot fail");
    String::from_utf8(bytes).expect("CSV of UTF-8 strings is UTF-8")
}
