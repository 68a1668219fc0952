//! The journey model: what every connector maps its records into.
//!
//! Connectors never write `orders`, `customers` or `journey_events` directly. They implement
//! [`JourneyMapper`], a pure function of one raw record, and the destination rebuilds the model from
//! `raw_records` after each sync. That keeps the model reproducible (same raw data, same rows, same ids)
//! and lets cross-platform facts — a customer's first order across two stores — be computed once, in SQL.
//! The vocabulary of `event_type`s is documented in `docs/journey_model.md`.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The five stages of the Ecommerce Growth Flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Ads seen, new visitors.
    Awareness,
    /// Engagement, email, add-to-cart, checkouts started.
    Consideration,
    /// First orders, abandoned checkouts.
    Conversion,
    /// Repeat orders.
    Retention,
    /// Refunds and what platforms claim they sold.
    Feedback,
}

impl Stage {
    /// The name stored in the dataset.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Awareness => "awareness",
            Stage::Consideration => "consideration",
            Stage::Conversion => "conversion",
            Stage::Retention => "retention",
            Stage::Feedback => "feedback",
        }
    }
}

/// The contract's marketing channels. Platforms' own groupings are mapped onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Paid traffic from social networks (Meta Ads, paid TikTok, …).
    PaidSocial,
    /// Paid search (Google Ads, Bing Ads, shopping).
    PaidSearch,
    /// Email and SMS marketing.
    Email,
    /// Unpaid search engine traffic.
    OrganicSearch,
    /// Unpaid social traffic.
    OrganicSocial,
    /// Links from other sites.
    Referral,
    /// Typed-in or bookmarked, no source.
    Direct,
    /// Anything the rules cannot place.
    Other,
}

impl Channel {
    /// The name stored in the dataset.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::PaidSocial => "paid_social",
            Channel::PaidSearch => "paid_search",
            Channel::Email => "email",
            Channel::OrganicSearch => "organic_search",
            Channel::OrganicSocial => "organic_social",
            Channel::Referral => "referral",
            Channel::Direct => "direct",
            Channel::Other => "other",
        }
    }

    /// Every channel, in the contract's order.
    pub const ALL: [Channel; 8] = [
        Channel::PaidSocial,
        Channel::PaidSearch,
        Channel::Email,
        Channel::OrganicSearch,
        Channel::OrganicSocial,
        Channel::Referral,
        Channel::Direct,
        Channel::Other,
    ];
}

/// Identity across platforms: the trimmed, lower-cased email. `None` for blank input.
pub fn normalize_email(email: &str) -> Option<String> {
    let e = email.trim().to_lowercase();
    if e.is_empty() || !e.contains('@') {
        None
    } else {
        Some(e)
    }
}

/// A store order, as the `orders` table holds it. `customer_order_index` is computed by the rebuild.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRow {
    /// Order id as the platform knows it (Shopify: the numeric tail of the gid).
    pub order_id: String,
    /// Email as given on the order; the customer id is derived from it.
    pub email: Option<String>,
    /// Creation time (UTC).
    pub created_at: DateTime<Utc>,
    /// ISO 4217 code.
    pub currency: Option<String>,
    /// The order's original total as placed, before refunds.
    pub total_price: Decimal,
    /// Subtotal (line items after discounts), if the platform gives it.
    pub subtotal_price: Option<Decimal>,
    /// Total discounts.
    pub total_discounts: Option<Decimal>,
    /// Sum of refunds, positive.
    pub total_refunded: Decimal,
    /// The platform's payment status (`paid`, `processing`, `refunded`, …).
    pub financial_status: Option<String>,
    /// Cancelled orders are excluded from every metric.
    pub cancelled: bool,
    /// Test orders are excluded from every metric.
    pub test: bool,
    /// Last-touch UTM source.
    pub utm_source: Option<String>,
    /// Last-touch UTM medium.
    pub utm_medium: Option<String>,
    /// Last-touch UTM campaign.
    pub utm_campaign: Option<String>,
    /// Channel from the classifier.
    pub channel: Channel,
    /// Landing page URL of the converting session.
    pub landing_page: Option<String>,
    /// Referrer URL of the converting session.
    pub referrer: Option<String>,
}

/// One row of `journey_events` before its ids and stage are finalised.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Unique within the record: combined with source/stream/record id into `event_id`.
    pub key: String,
    /// When it happened (daily rows: the date at 00:00 UTC).
    pub occurred_at: DateTime<Utc>,
    /// The date it belongs to; for daily platform rows the platform's own date.
    pub date: NaiveDate,
    /// Growth Flow stage (order events are re-staged by the rebuild).
    pub stage: Stage,
    /// See `docs/journey_model.md`.
    pub event_type: String,
    /// Marketing channel, when known.
    pub channel: Option<Channel>,
    /// Campaign (or flow) name, when known.
    pub campaign: Option<String>,
    /// Email of the person, when known; normalised by the rebuild.
    pub email: Option<String>,
    /// Count (1 for single events, the metric for aggregates).
    pub quantity: Decimal,
    /// Money value, if any.
    pub value: Option<Decimal>,
    /// ISO 4217 code of `value`.
    pub currency: Option<String>,
    /// Anything else worth keeping, as a JSON object.
    pub attributes: Value,
}

impl EventRow {
    /// A single event at `occurred_at`, dated by its UTC date.
    pub fn at(
        key: impl Into<String>,
        occurred_at: DateTime<Utc>,
        stage: Stage,
        event_type: &str,
    ) -> Self {
        EventRow {
            key: key.into(),
            occurred_at,
            date: occurred_at.date_naive(),
            stage,
            event_type: event_type.to_string(),
            channel: None,
            campaign: None,
            email: None,
            quantity: Decimal::ONE,
            value: None,
            currency: None,
            attributes: Value::Object(Default::default()),
        }
    }

    /// A daily aggregate reported by a platform under `date`.
    pub fn daily(
        key: impl Into<String>,
        date: NaiveDate,
        stage: Stage,
        event_type: &str,
        quantity: Decimal,
    ) -> Self {
        let occurred_at = date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc();
        EventRow {
            quantity,
            date,
            ..EventRow::at(key, occurred_at, stage, event_type)
        }
    }
}

/// A person seen by a platform (a store customer, a Klaviyo profile).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRow {
    /// Email as the platform gives it; normalised by the rebuild.
    pub email: String,
    /// When the platform first saw them.
    pub first_seen_at: Option<DateTime<Utc>>,
}

/// What one raw record contributes to the journey model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JourneyRows {
    /// Store orders.
    pub orders: Vec<OrderRow>,
    /// Events and daily aggregates.
    pub events: Vec<EventRow>,
    /// People.
    pub customers: Vec<CustomerRow>,
}

impl JourneyRows {
    /// True when the record contributes nothing.
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty() && self.events.is_empty() && self.customers.is_empty()
    }
}

/// Maps one raw record of one stream into journey rows. Implemented once per connector type; must be a
/// pure function of the record so that a rebuild gives the same rows.
pub trait JourneyMapper: Send + Sync {
    /// The connector type this maps (`woocommerce`, `shopify`, …).
    fn source_type(&self) -> &'static str;

    /// Map one record of `stream`. Records of streams that feed nothing return empty rows.
    fn map(&self, stream: &str, record: &Value) -> crate::Result<JourneyRows>;

    /// The parts of a `stream` record that [`map`](Self::map) reads, so that the rebuild parses only
    /// those out of the stored JSON text (see [`crate::project`]): building the whole `Value` of every
    /// record was most of the rebuild's time. `None`, the default, parses the whole record, so a
    /// connector needs nothing here to be correct.
    ///
    /// A projection must keep every value `map` reads, whole where `map` reads (or prints) it, and
    /// every object it navigates through: `map` must give the same rows, and the same errors, for the
    /// projected record as for the whole one.
    fn projection(&self, stream: &str) -> Option<&'static crate::project::Projection> {
        let _ = stream;
        None
    }
}

/// One `journey_events.event_type` of the journey vocabulary: the stages it may carry and the
/// connector types that emit it.
///
/// The report asks this table "does some configured source emit X?" instead of naming platforms, so a
/// new connector that emits `sessions` makes the ratios over sessions known without touching the report.
/// `docs/journey_model.md` documents the same table; a test holds the two together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTypeDef {
    /// The `event_type` stored in `journey_events`.
    pub event_type: &'static str,
    /// The stages rows of this type may carry (the first is the one a mapper writes; later ones are
    /// set by the rebuild's cross-record step, e.g. repeat orders become retention).
    pub stages: &'static [Stage],
    /// Connector types (`growthflow_sources.type`) whose records produce rows of this type.
    pub sources: &'static [&'static str],
}

/// Shorthand for the vocabulary table below.
const fn ev(
    event_type: &'static str,
    stages: &'static [Stage],
    sources: &'static [&'static str],
) -> EventTypeDef {
    EventTypeDef {
        event_type,
        stages,
        sources,
    }
}

const STORES: &[&str] = &["shopify", "woocommerce"];
const FIRST_OR_REPEAT: &[Stage] = &[Stage::Conversion, Stage::Retention];

/// The journey vocabulary: every `event_type` connectors write, with its stages and emitters.
pub const EVENT_TYPES: &[EventTypeDef] = &[
    ev("order", FIRST_OR_REPEAT, STORES),
    ev("refund", &[Stage::Feedback], STORES),
    ev("checkout_abandoned", &[Stage::Conversion], &["shopify"]),
    ev("sessions", &[Stage::Awareness], &["ga4"]),
    ev("new_users", &[Stage::Awareness], &["ga4"]),
    ev("engaged_sessions", &[Stage::Consideration], &["ga4"]),
    ev("add_to_carts", &[Stage::Consideration], &["ga4"]),
    ev("checkouts_started", &[Stage::Consideration], &["ga4"]),
    ev(
        "reported_purchases",
        &[Stage::Feedback],
        &["ga4", "meta_ads"],
    ),
    ev("ad_insights", &[Stage::Awareness], &["meta_ads"]),
    ev("email_received", &[Stage::Consideration], &["klaviyo"]),
    ev("email_opened", &[Stage::Consideration], &["klaviyo"]),
    ev("email_clicked", &[Stage::Consideration], &["klaviyo"]),
    ev("product_viewed", &[Stage::Consideration], &["klaviyo"]),
    ev("checkout_started", &[Stage::Consideration], &["klaviyo"]),
    ev("placed_order", FIRST_OR_REPEAT, &["klaviyo"]),
];

/// The vocabulary entry of `event_type`, if it is one.
pub fn event_type_def(event_type: &str) -> Option<&'static EventTypeDef> {
    EVENT_TYPES.iter().find(|d| d.event_type == event_type)
}

/// The connector types that emit `event_type` (empty for an unknown type).
pub fn emitters(event_type: &str) -> &'static [&'static str] {
    event_type_def(event_type).map_or(&[], |d| d.sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = include_str!("../../docs/journey_model.md");

    fn stage_named(s: &str) -> Option<Stage> {
        [
            Stage::Awareness,
            Stage::Consideration,
            Stage::Conversion,
            Stage::Retention,
            Stage::Feedback,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// The rows of the doc's vocabulary table: (event types, stages, emitters).
    fn doc_rows() -> Vec<(Vec<String>, Vec<Stage>, Vec<String>)> {
        let words = |cell: &str| -> Vec<String> {
            cell.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect()
        };
        let table = DOC
            .split("## `journey_events.event_type` vocabulary")
            .nth(1)
            .expect("the doc has the vocabulary section");
        table
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let types = cells[1]
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect();
                let stages = words(cells[2])
                    .iter()
                    .filter_map(|w| stage_named(w))
                    .collect();
                (types, stages, words(cells[3]))
            })
            .collect()
    }

    #[test]
    fn docs_vocabulary_table_matches_event_types() {
        let mut documented = Vec::new();
        for (types, stages, sources) in doc_rows() {
            for t in types {
                let def = event_type_def(&t)
                    .unwrap_or_else(|| panic!("`{t}` is documented but not in EVENT_TYPES"));
                assert_eq!(def.stages, stages.as_slice(), "stages of `{t}`");
                let mut want: Vec<&str> = def.sources.to_vec();
                let mut got: Vec<&str> = sources.iter().map(String::as_str).collect();
                want.sort_unstable();
                got.sort_unstable();
                assert_eq!(got, want, "sources of `{t}`");
                documented.push(t);
            }
        }
        for def in EVENT_TYPES {
            assert!(
                documented.iter().any(|t| t == def.event_type),
                "`{}` is in EVENT_TYPES but not documented",
                def.event_type
            );
        }
    }

    #[test]
    fn emitters_of_unknown_types_are_empty() {
        assert_eq!(emitters("checkout_abandoned"), ["shopify"]);
        assert!(emitters("nope").is_empty());
    }
}
