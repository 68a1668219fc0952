//! How Meta Ads records map into the journey model (`docs/journey_model.md`).
//!
//! Each daily ad-level insights row becomes an `ad_insights` awareness event (impressions, spend,
//! clicks) on the paid-social channel, and — when Meta attributed purchases to the ad that day — a
//! `reported_purchases` feedback event, so that what Meta claims can be compared with the store's own
//! orders. Only the `purchase` action is used: Meta reports the same purchase again as `omni_purchase`,
//! `offsite_conversion.fb_pixel_purchase`, `onsite_web_purchase`…, and summing them would double count.
//! Its `value` is under the requested attribution setting (default 7-day click + 1-day view). Meta
//! sends every number as a string; they are parsed as `Decimal`, never through `f64`.

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use growthflow_core::extract::{text_or_number, Fields};
use growthflow_core::model::{Channel, EventRow, JourneyMapper, JourneyRows, Stage};
use growthflow_core::project::Projection::{self, All};
use growthflow_core::time::parse_date;
use growthflow_core::Result;

/// Meta's field readers: every decode error starts with "Meta Ads".
const FIELDS: Fields = Fields::new("Meta Ads");

/// The connector type, as in `[sources.NAME] type = "meta_ads"`.
pub const SOURCE_TYPE: &str = "meta_ads";

/// The action whose count and value are the reported purchases.
pub const PURCHASE_ACTION: &str = "purchase";

/// Maps Meta Ads records; only `ad_insights` rows produce journey rows (campaigns, ad sets and ads are
/// kept as raw records).
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaAdsMapper;

/// An `AdsActionStats` list as [`action_value`] reads it.
const ACTION_STATS: Projection = Projection::fields(&[("action_type", All), ("value", All)]);

/// What `map` reads of an `ad_insights` row (see `JourneyMapper::projection`): every leaf whole,
/// since the readers print an unreadable value in their error. Keep it in step with `map`;
/// `tests/projection.rs` maps records both ways and fails on any difference.
const INSIGHTS_ROW: Projection = Projection::fields(&[
    ("ad_id", All),
    ("date_start", All),
    ("account_currency", All),
    ("impressions", All),
    ("spend", All),
    ("clicks", All),
    ("inline_link_clicks", All),
    ("reach", All),
    ("campaign_id", All),
    ("adset_id", All),
    ("campaign_name", All),
    ("actions", ACTION_STATS),
    ("action_values", ACTION_STATS),
]);

impl JourneyMapper for MetaAdsMapper {
    fn source_type(&self) -> &'static str {
        SOURCE_TYPE
    }

    fn projection(&self, stream: &str) -> Option<&'static Projection> {
        Some(if stream == "ad_insights" {
            &INSIGHTS_ROW
        } else {
            &Projection::NOTHING
        })
    }

    fn map(&self, stream: &str, record: &Value) -> Result<JourneyRows> {
        let mut rows = JourneyRows::default();
        if stream != "ad_insights" {
            return Ok(rows);
        }
        let ad_id = text_or_number(record.get("ad_id"))
            .ok_or_else(|| FIELDS.decode("insights row", "`ad_id` is missing"))?;
        let date_text = text_or_number(record.get("date_start"))
            .ok_or_else(|| FIELDS.decode("insights row", "`date_start` is missing"))?;
        let date = parse_date(&date_text).ok_or_else(|| {
            FIELDS.decode(
                "insights row",
                format!("`date_start` is not YYYY-MM-DD: {date_text:?}"),
            )
        })?;
        let currency = text_or_number(record.get("account_currency"));
        let impressions = FIELDS
            .money(record.get("impressions"), "impressions", "insights row")?
            .unwrap_or_default();
        let spend = FIELDS
            .money(record.get("spend"), "spend", "insights row")?
            .unwrap_or_default();

        let mut attributes = Map::new();
        for k in ["clicks", "inline_link_clicks", "reach"] {
            if let Some(n) = FIELDS.money(record.get(k), k, "insights row")? {
                attributes.insert(k.to_string(), count_json(n));
            }
        }
        for k in ["campaign_id", "adset_id", "ad_id"] {
            if let Some(v) = text_or_number(record.get(k)) {
                attributes.insert(k.to_string(), Value::String(v));
            }
        }
        let mut insight = EventRow::daily(
            format!("ad:{ad_id}:{date}"),
            date,
            Stage::Awareness,
            "ad_insights",
            impressions,
        );
        insight.value = Some(spend);
        insight.channel = Some(Channel::PaidSocial);
        insight.campaign = text_or_number(record.get("campaign_name"));
        insight.currency = currency.clone();
        insight.attributes = Value::Object(attributes);
        let campaign = insight.campaign.clone();
        rows.events.push(insight);

        if let Some(count) = action_value(record.get("actions"), PURCHASE_ACTION)? {
            let mut purchases = EventRow::daily(
                format!("purchase:{ad_id}:{date}"),
                date,
                Stage::Feedback,
                "reported_purchases",
                count,
            );
            purchases.value = action_value(record.get("action_values"), PURCHASE_ACTION)?;
            purchases.channel = Some(Channel::PaidSocial);
            purchases.campaign = campaign;
            purchases.currency = currency;
            purchases.attributes = json!({ "platform": SOURCE_TYPE });
            rows.events.push(purchases);
        }
        Ok(rows)
    }
}

/// The `value` of the entry with `action_type == action` in a list of `AdsActionStats`, if any.
pub fn action_value(list: Option<&Value>, action: &str) -> Result<Option<Decimal>> {
    let Some(Value::Array(items)) = list else {
        return Ok(None);
    };
    match items
        .iter()
        .find(|a| a.get("action_type").and_then(Value::as_str) == Some(action))
    {
        Some(entry) => FIELDS.money(entry.get("value"), action, "insights row"),
        None => Ok(None),
    }
}

/// A count as a JSON integer (so SQL sums need no cast); anything fractional keeps its exact text.
fn count_json(n: Decimal) -> Value {
    use rust_decimal::prelude::ToPrimitive;
    match n.fract().is_zero().then(|| n.to_i64()).flatten() {
        Some(i) => json!(i),
        None => Value::String(n.normalize().to_string()),
    }
}
