//! The campaign table: every campaign name seen in the window in Meta, GA4, Klaviyo or the orders'
//! `utm_campaign`, joined on the name trimmed and lower-cased.
//!
//! Choices the contract leaves open, made here once:
//!
//! - Placeholders `(direct)`, `(organic)`, `(referral)`, `(not set)` (and blanks) are ignored in every
//!   source, not only GA4: they mean "no campaign" wherever they appear.
//! - A campaign's display name is its most frequent original spelling (trimmed), ties to the earliest
//!   seen, then alphabetical.
//! - Its channel: `paid_social` if Meta reports it; else `email` if Klaviyo sent it (email events or
//!   attributed orders named after it); else the channel of its GA4 sessions (the one with most
//!   sessions); else the most common channel of its orders; else `other`.
//! - Klaviyo contributes the name and the channel only: its attributed orders are Klaviyo's claim, not
//!   store orders, so `orders`/`revenue` stay the store's orders whose `utm_campaign` names it.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;

use super::queries::Window;
use super::sql::{Col, Dataset};
use super::{ratio, CampaignRow, Capabilities, ReportError};
use crate::channel::parse_stored;
use crate::model::Channel;

/// Campaign names that GA4 (and others) use for "no campaign".
const CAMPAIGN_PLACEHOLDERS: &[&str] = &["(direct)", "(organic)", "(referral)", "(not set)"];

/// Everything known about one campaign key while merging the sources.
#[derive(Debug, Default)]
struct CampaignAcc {
    /// Original spelling (trimmed) → (rows seen, earliest date seen).
    spellings: HashMap<String, (i64, String)>,
    meta_rows: i64,
    klaviyo_rows: i64,
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
        if self.klaviyo_rows > 0 {
            return Channel::Email;
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

/// The campaign rows of the window, money in `currency`, by revenue then name.
pub(super) fn campaigns(
    db: &mut Dataset<'_>,
    w: &Window,
    currency: &str,
    caps: &Capabilities,
) -> Result<Vec<CampaignRow>, ReportError> {
    let mut acc: BTreeMap<String, CampaignAcc> = BTreeMap::new();
    let d = db.dialect();
    let cur = d.currency_key("currency");

    // Meta: grouped by exact name; joined in Rust so that Unicode names lower-case correctly. Spend
    // counts only in the report currency; delivery counts in every currency.
    let rows = db.rows(
        &format!(
            "SELECT campaign, {n}, {first}, {qty}, {spend}, {clicks}
             FROM growthflow_rollup_events
             WHERE event_type = 'ad_insights' AND date BETWEEN {p1} AND {p2} AND campaign IS NOT NULL
             GROUP BY campaign",
            n = d.sum_int("records"),
            first = d.date_text("MIN(date)"),
            qty = d.sum_count("quantity"),
            spend = d.sum_of_sums(&format!("CASE WHEN {cur} = {} THEN value END", d.p(3))),
            clicks = d.sum_count("clicks"),
            p1 = d.p_date(1),
            p2 = d.p_date(2),
        ),
        &[&w.since, &w.until, currency],
        &[Col::Text, Col::Int, Col::Text, Col::Int, Col::Money, Col::Int],
    )?;
    for r in rows {
        if let Some((key, spelling)) = campaign_key(&r.text(0)) {
            let a = acc.entry(key).or_default();
            a.seen(&spelling, r.int(1), r.text(2));
            a.meta_rows += r.int(1);
            a.impressions += r.int(3);
            a.spend += r.money(4);
            a.clicks += r.int(5);
        }
    }

    // GA4 sessions, per campaign and channel.
    let rows = db.rows(
        &format!(
            "SELECT campaign, channel, {n}, {first}, {qty}
             FROM growthflow_rollup_events
             WHERE event_type = 'sessions' AND date BETWEEN {p1} AND {p2} AND campaign IS NOT NULL
             GROUP BY campaign, channel",
            n = d.sum_int("records"),
            first = d.date_text("MIN(date)"),
            qty = d.sum_count("quantity"),
            p1 = d.p_date(1),
            p2 = d.p_date(2),
        ),
        &[&w.since, &w.until],
        &[Col::Text, Col::Text, Col::Int, Col::Text, Col::Int],
    )?;
    for r in rows {
        if let Some((key, spelling)) = campaign_key(&r.text(0)) {
            let a = acc.entry(key).or_default();
            let sessions = r.int(4);
            a.seen(&spelling, r.int(2), r.text(3));
            a.sessions += sessions;
            if let Some(c) = r.opt_text(1).as_deref().and_then(parse_stored) {
                *a.ga4_channels.entry(c).or_insert(0) += sessions;
            }
        }
    }

    // Klaviyo: the campaigns and flows its emails and attributed orders name (the rebuild resolves
    // their ids into names from the synced campaigns and flows), from the daily rollup: the email
    // events, and the attributed orders.
    let emails = format!(
        "SELECT campaign, {n}, {first}
         FROM growthflow_rollup_events
         WHERE event_type IN ('email_received', 'email_opened', 'email_clicked')
           AND date BETWEEN {p1} AND {p2} AND campaign IS NOT NULL
         GROUP BY campaign",
        n = d.sum_int("records"),
        first = d.date_text("MIN(date)"),
        p1 = d.p_date(1),
        p2 = d.p_date(2),
    );
    let attributed = format!(
        "SELECT campaign, {n}, {first}
         FROM growthflow_rollup_events
         WHERE event_type = 'placed_order' AND date BETWEEN {p1} AND {p2}
           AND attributed = 1 AND campaign IS NOT NULL
         GROUP BY campaign",
        n = d.sum_int("records"),
        first = d.date_text("MIN(date)"),
        p1 = d.p_date(1),
        p2 = d.p_date(2),
    );
    for sql in [emails, attributed] {
        let rows = db.rows(
            &sql,
            &[&w.since, &w.until],
            &[Col::Text, Col::Int, Col::Text],
        )?;
        for r in rows {
            if let Some((key, spelling)) = campaign_key(&r.text(0)) {
                let a = acc.entry(key).or_default();
                a.seen(&spelling, r.int(1), r.text(2));
                a.klaviyo_rows += r.int(1);
            }
        }
    }

    // Valid orders, per utm_campaign and channel; revenue only in the report currency. From the
    // orders' daily rollup (the UTC day of `created_at`).
    let rows = db.rows(
        &format!(
            "SELECT utm_campaign, channel, {n}, {first}, {revenue}
             FROM growthflow_rollup_orders
             WHERE date BETWEEN {p1} AND {p2} AND utm_campaign IS NOT NULL
             GROUP BY utm_campaign, channel",
            n = d.sum_int("orders"),
            first = d.date_text("MIN(date)"),
            revenue = d.sum_of_sums(&format!("CASE WHEN {cur} = {} THEN revenue END", d.p(3))),
            p1 = d.p_date(1),
            p2 = d.p_date(2),
        ),
        &[&w.since, &w.until, currency],
        &[Col::Text, Col::Text, Col::Int, Col::Text, Col::Money],
    )?;
    for r in rows {
        if let Some((key, spelling)) = campaign_key(&r.text(0)) {
            let a = acc.entry(key).or_default();
            let n = r.int(2);
            a.seen(&spelling, n, r.text(3));
            a.orders += n;
            a.revenue += r.money(4);
            if let Some(c) = r.opt_text(1).as_deref().and_then(parse_stored) {
                *a.order_channels.entry(c).or_insert(0) += n;
            }
        }
    }

    // ROAS needs both the stores' revenue and Meta's spend.
    let roas_known = caps.all(&["order", "ad_insights"]);
    let mut out: Vec<(String, CampaignRow)> = acc
        .into_iter()
        .map(|(key, a)| {
            let row = CampaignRow {
                campaign: a.display_name(),
                channel: a.channel(),
                spend: a.spend,
                impressions: a.impressions,
                clicks: a.clicks,
                sessions: a.sessions,
                orders: a.orders,
                revenue: a.revenue,
                roas: ratio(a.revenue, a.spend).filter(|_| roas_known),
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
