//! GA4 report rows into journey events: one daily aggregate per non-zero metric.

use rust_decimal::Decimal;
use serde_json::{json, Value};

use growthflow_core::channel::from_ga4_channel_group;
use growthflow_core::extract::Fields;
use growthflow_core::model::{EventRow, JourneyMapper, JourneyRows, Stage};
use growthflow_core::project::Projection::{self, All};
use growthflow_core::Result;

/// GA4's field readers: every decode error starts with "GA4".
const FIELDS: Fields = Fields::new("GA4");

use crate::streams::TRAFFIC_DAILY;

/// The connector type.
pub const SOURCE_TYPE: &str = "ga4";

/// Campaign names GA4 uses for "no campaign"; they become no campaign.
pub const CAMPAIGN_PLACEHOLDERS: &[&str] =
    &["(direct)", "(organic)", "(referral)", "(not set)", ""];

/// `(metric, event_type, stage)` of the count events.
pub const COUNT_EVENTS: &[(&str, &str, Stage)] = &[
    ("sessions", "sessions", Stage::Awareness),
    ("newUsers", "new_users", Stage::Awareness),
    ("engagedSessions", "engaged_sessions", Stage::Consideration),
    ("addToCarts", "add_to_carts", Stage::Consideration),
    ("checkouts", "checkouts_started", Stage::Consideration),
];

/// Maps GA4 records; only `traffic_daily` feeds the journey model (user reports stay raw).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ga4Mapper;

/// A metric of a stored row; GA4 sends every metric value as a decimal string.
fn metric(record: &Value, name: &str) -> Result<Option<Decimal>> {
    FIELDS.money(record.pointer(&format!("/metrics/{name}")), name, "record")
}

/// What `map` reads of a `traffic_daily` row (see `JourneyMapper::projection`): every leaf whole,
/// since the readers print an unreadable value in their error. Keep it in step with `map`;
/// `tests/projection.rs` maps records both ways and fails on any difference.
const TRAFFIC_ROW: Projection = Projection::fields(&[
    ("date", All),
    (
        "dimensions",
        Projection::fields(&[
            ("sessionCampaignName", All),
            ("sessionDefaultChannelGroup", All),
        ]),
    ),
    ("metadata", Projection::fields(&[("currencyCode", All)])),
    (
        "metrics",
        Projection::fields(&[
            ("sessions", All),
            ("newUsers", All),
            ("engagedSessions", All),
            ("addToCarts", All),
            ("checkouts", All),
            ("ecommercePurchases", All),
            ("purchaseRevenue", All),
        ]),
    ),
]);

impl JourneyMapper for Ga4Mapper {
    fn source_type(&self) -> &'static str {
        SOURCE_TYPE
    }

    fn projection(&self, stream: &str) -> Option<&'static Projection> {
        Some(if stream == TRAFFIC_DAILY {
            &TRAFFIC_ROW
        } else {
            &Projection::NOTHING
        })
    }

    fn map(&self, stream: &str, record: &Value) -> Result<JourneyRows> {
        let mut rows = JourneyRows::default();
        if stream != TRAFFIC_DAILY {
            return Ok(rows);
        }
        let date = record
            .get("date")
            .and_then(|d| d.as_str())
            .and_then(growthflow_core::time::parse_date)
            .ok_or_else(|| FIELDS.decode("record", "`date` is missing or not a date"))?;
        let dim = |n: &str| {
            record
                .pointer(&format!("/dimensions/{n}"))
                .and_then(|v| v.as_str())
        };
        let campaign = dim("sessionCampaignName")
            .map(str::trim)
            .filter(|c| !CAMPAIGN_PLACEHOLDERS.contains(&c.to_ascii_lowercase().as_str()))
            .map(str::to_string);
        let channel = dim("sessionDefaultChannelGroup").map(from_ga4_channel_group);
        let currency = record
            .pointer("/metadata/currencyCode")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let finish = |mut e: EventRow| {
            e.campaign = campaign.clone();
            e.channel = channel;
            e
        };
        for (name, event_type, stage) in COUNT_EVENTS {
            if let Some(q) = metric(record, name)?.filter(|q| !q.is_zero()) {
                rows.events.push(finish(EventRow::daily(
                    *event_type,
                    date,
                    *stage,
                    event_type,
                    q,
                )));
            }
        }
        let purchases = metric(record, "ecommercePurchases")?.unwrap_or_default();
        let revenue = metric(record, "purchaseRevenue")?.unwrap_or_default();
        if !purchases.is_zero() || !revenue.is_zero() {
            let mut e = finish(EventRow::daily(
                "reported_purchases",
                date,
                Stage::Feedback,
                "reported_purchases",
                purchases,
            ));
            e.value = Some(revenue);
            e.currency = currency;
            e.attributes = json!({"platform": SOURCE_TYPE});
            rows.events.push(e);
        }
        Ok(rows)
    }
}
