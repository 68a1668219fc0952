//! How Klaviyo records become journey rows.
//!
//! Events are mapped by their metric's *name* (from the `included.metric` the stream joins in), because
//! metric ids differ per account and integration while the names of Klaviyo's own email metrics and the
//! e-commerce integrations' metrics are fixed. Events of other metrics map to nothing. Profiles become
//! people. Everything else is kept raw only.
//!
//! "Placed Order" is the event the report's `email_attributed_revenue` and Klaviyo's reported purchases
//! come from, so its attribution is read from every place Klaviyo puts it: the `$attributed_message` /
//! `$attributed_flow` properties and the `attributions` relationship (with its included attribution
//! resources naming the campaign or flow). Money is parsed from the JSON number's written form into
//! [`Decimal`](rust_decimal::Decimal), never through `f64` arithmetic.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use growthflow_core::extract::{text_or_number, Fields};
use growthflow_core::model::{Channel, CustomerRow, EventRow, JourneyMapper, JourneyRows, Stage};
use growthflow_core::project::Projection::{self, All};
use growthflow_core::Result;

use crate::streams::time_attr;

/// The connector type this mapper belongs to.
pub const SOURCE_TYPE: &str = "klaviyo";

/// Klaviyo's field readers: every decode error starts with "Klaviyo".
pub(crate) const FIELDS: Fields = Fields::new("Klaviyo");

/// Metric name → (event_type, stage, is an email engagement event). "Checkout Started" is the older
/// Shopify integration's name for "Started Checkout".
pub const METRIC_EVENTS: [(&str, &str, Stage, bool); 7] = [
    (
        "Received Email",
        "email_received",
        Stage::Consideration,
        true,
    ),
    ("Opened Email", "email_opened", Stage::Consideration, true),
    ("Clicked Email", "email_clicked", Stage::Consideration, true),
    (
        "Viewed Product",
        "product_viewed",
        Stage::Consideration,
        false,
    ),
    (
        "Started Checkout",
        "checkout_started",
        Stage::Consideration,
        false,
    ),
    (
        "Checkout Started",
        "checkout_started",
        Stage::Consideration,
        false,
    ),
    ("Placed Order", "placed_order", Stage::Conversion, false),
];

/// Maps Klaviyo records into the journey model.
#[derive(Debug, Clone, Copy, Default)]
pub struct KlaviyoMapper;

impl JourneyMapper for KlaviyoMapper {
    fn source_type(&self) -> &'static str {
        SOURCE_TYPE
    }

    fn map(&self, stream: &str, record: &Value) -> Result<JourneyRows> {
        let mut rows = JourneyRows::default();
        match stream {
            "events" => rows.events.extend(event_row(record)?),
            "profiles" => rows.customers.extend(customer_row(record)?),
            _ => {}
        }
        Ok(rows)
    }

    fn projection(&self, stream: &str) -> Option<&'static Projection> {
        Some(match stream {
            "events" => &EVENT,
            "profiles" => &PROFILE,
            _ => &Projection::NOTHING,
        })
    }
}

// What `map` reads of each stream's records (see `JourneyMapper::projection`): every leaf it reads
// is kept whole, since the readers print an unreadable value in their error. Keep these in step with
// the functions below; `tests/projection.rs` maps records both ways and fails on any difference.

/// `relationships.{rel}.data.id` of an included attribution, as [`related_id`] reads it.
const RELATED_ID: Projection = Projection::fields(&[("data", Projection::fields(&[("id", All)]))]);

/// What [`event_row`] (with [`occurred_at`] and [`attribution`]) reads.
const EVENT: Projection = Projection::fields(&[
    ("id", All),
    (
        "attributes",
        Projection::fields(&[
            ("datetime", All),
            ("timestamp", All),
            (
                "event_properties",
                Projection::fields(&[
                    ("$message", All),
                    ("$flow", All),
                    ("Campaign Name", All),
                    ("$value", All),
                    ("$currency_code", All),
                    ("$value_currency", All),
                    ("Currency", All),
                    ("$attributed_flow", All),
                    ("$attributed_message", All),
                ]),
            ),
        ]),
    ),
    (
        "included",
        Projection::fields(&[
            (
                "metric",
                Projection::fields(&[("attributes", Projection::fields(&[("name", All)]))]),
            ),
            (
                "profile",
                Projection::fields(&[("attributes", Projection::fields(&[("email", All)]))]),
            ),
            (
                "attributions",
                Projection::fields(&[(
                    "relationships",
                    Projection::fields(&[
                        ("campaign", RELATED_ID),
                        ("flow", RELATED_ID),
                        ("campaign-message", RELATED_ID),
                        ("flow-message", RELATED_ID),
                    ]),
                )]),
            ),
        ]),
    ),
    // Only whether the list of attribution links is empty is read: its elements are kept (so its
    // length is), their contents are not.
    (
        "relationships",
        Projection::fields(&[(
            "attributions",
            Projection::fields(&[("data", Projection::NOTHING)]),
        )]),
    ),
]);

/// What [`customer_row`] reads.
const PROFILE: Projection = Projection::fields(&[
    ("id", All),
    (
        "attributes",
        Projection::fields(&[("email", All), ("created", All)]),
    ),
]);

/// The id a relationship of an (included) resource points at.
fn related_id(resource: &Value, rel: &str) -> Option<String> {
    text_or_number(resource.pointer(&format!("/relationships/{rel}/data/id")))
}

/// When the event happened: `datetime`, else the epoch `timestamp`.
fn occurred_at(record: &Value, what: &str) -> Result<DateTime<Utc>> {
    match time_attr(record, "datetime", what)? {
        Some(t) => Ok(t),
        None => time_attr(record, "timestamp", what)?
            .ok_or_else(|| FIELDS.decode(what, "has neither `datetime` nor `timestamp`")),
    }
}

/// Who Klaviyo credits an order to: campaign id, flow id, the message, and whether it is attributed at
/// all.
#[derive(Debug, Default, PartialEq)]
struct Attribution {
    campaign: Option<String>,
    flow: Option<String>,
    /// The campaign's or flow's message (`campaign-message` / `flow-message`, else
    /// `$attributed_message`).
    message: Option<String>,
    attributed: bool,
}

fn attribution(record: &Value, props: &Map<String, Value>) -> Attribution {
    let mut a = Attribution::default();
    for resource in record
        .pointer("/included/attributions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if a.campaign.is_none() {
            a.campaign = related_id(resource, "campaign");
        }
        if a.flow.is_none() {
            a.flow = related_id(resource, "flow");
        }
        if a.message.is_none() {
            a.message = related_id(resource, "campaign-message")
                .or_else(|| related_id(resource, "flow-message"));
        }
    }
    let attributed_flow = text_or_number(props.get("$attributed_flow"));
    let attributed_message = text_or_number(props.get("$attributed_message"));
    if a.flow.is_none() {
        a.flow = attributed_flow.clone();
    }
    // `$attributed_message` is a campaign's message when no flow is named, a flow message otherwise.
    if a.campaign.is_none() && a.flow.is_none() {
        a.campaign = attributed_message.clone();
    }
    if a.message.is_none() {
        a.message = attributed_message.clone();
    }
    let related = record
        .pointer("/relationships/attributions/data")
        .and_then(Value::as_array)
        .is_some_and(|links| !links.is_empty());
    a.attributed = a.campaign.is_some()
        || a.flow.is_some()
        || attributed_message.is_some()
        || attributed_flow.is_some()
        || related;
    a
}

/// One event of a mapped metric as a journey event; `None` for other metrics.
pub fn event_row(record: &Value) -> Result<Option<EventRow>> {
    let id = text_or_number(record.get("id"))
        .ok_or_else(|| FIELDS.decode("event", "`id` is missing"))?;
    let what = format!("event {id}");
    let Some(metric) = text_or_number(record.pointer("/included/metric/attributes/name")) else {
        return Ok(None);
    };
    let Some(&(_, event_type, stage, is_email)) =
        METRIC_EVENTS.iter().find(|(name, ..)| *name == metric)
    else {
        return Ok(None);
    };
    let at = occurred_at(record, &what)?;
    let empty = Map::new();
    let props = record
        .pointer("/attributes/event_properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut event = EventRow::at(format!("event:{id}"), at, stage, event_type);
    event.email = text_or_number(record.pointer("/included/profile/attributes/email"));
    if is_email {
        let message = text_or_number(props.get("$message"));
        let flow = text_or_number(props.get("$flow"));
        let campaign_name = text_or_number(props.get("Campaign Name"));
        event.channel = Some(Channel::Email);
        event.campaign = fallback_campaign(&campaign_name, &message, &None, &flow);
        event.attributes = json!({
            "message": message,
            "flow": flow,
            "campaign_name": campaign_name,
        });
    } else if event_type == "placed_order" {
        let a = attribution(record, props);
        event.value = FIELDS.money(props.get("$value"), "$value", &what)?;
        event.currency = text_or_number(props.get("$currency_code"))
            .or_else(|| text_or_number(props.get("$value_currency")))
            .or_else(|| text_or_number(props.get("Currency")));
        if a.attributed {
            event.channel = Some(Channel::Email);
        }
        event.campaign = fallback_campaign(&None, &a.message, &a.campaign, &a.flow);
        event.attributes = json!({
            "attributed": a.attributed,
            "campaign": a.campaign,
            "flow": a.flow,
            "message": a.message,
        });
    }
    Ok(Some(event))
}

/// The campaign an email event or attributed order names before the rebuild resolves ids into names
/// (from the synced `campaigns` and `flows`, see `docs/journey_model.md`): the event's own "Campaign
/// Name", else the message id, else the campaign or flow id. The rebuild falls back to exactly this
/// order, so a dataset without campaigns/flows synced keeps these values.
fn fallback_campaign(
    campaign_name: &Option<String>,
    message: &Option<String>,
    campaign: &Option<String>,
    flow: &Option<String>,
) -> Option<String> {
    campaign_name
        .clone()
        .or_else(|| message.clone())
        .or_else(|| campaign.clone())
        .or_else(|| flow.clone())
}

/// A profile with an email as a person, first seen when Klaviyo created the profile.
pub fn customer_row(record: &Value) -> Result<Option<CustomerRow>> {
    let id = text_or_number(record.get("id")).unwrap_or_else(|| "?".into());
    let what = format!("profile {id}");
    let Some(email) = text_or_number(record.pointer("/attributes/email")) else {
        return Ok(None);
    };
    Ok(Some(CustomerRow {
        email,
        first_seen_at: time_attr(record, "created", &what)?,
    }))
}
