//! The store-independent half of a journey rebuild: one raw record mapped into the rows it puts
//! into the model, every column formatted and ready to bind. A pure function of the record, so a
//! store can map records on several threads and write them in order.

use std::collections::HashMap;
use std::sync::Arc;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::model::{normalize_email, EventRow, JourneyMapper, OrderRow, Stage};
use crate::project::parse_record;
use crate::time::format_utc;
use crate::Error;

/// A money amount as the stores' REAL columns hold it.
pub(crate) fn money(d: Decimal) -> f64 {
    d.round_dp(6).to_f64().unwrap_or(0.0)
}

/// A raw record read for mapping.
#[derive(Default)]
pub(crate) struct RawRow {
    pub(crate) source: String,
    pub(crate) source_type: String,
    pub(crate) stream: String,
    pub(crate) record_id: String,
    pub(crate) payload: String,
}

/// An `orders` row with its derived columns, ready to bind.
pub(crate) struct OrderCols {
    pub(crate) row: OrderRow,
    pub(crate) customer_id: Option<String>,
    pub(crate) created: String,
}

/// A `journey_events` row, every column ready to bind.
pub(crate) struct EventCols {
    pub(crate) event_id: String,
    pub(crate) occurred: String,
    pub(crate) date: String,
    pub(crate) stage: &'static str,
    pub(crate) event_type: String,
    pub(crate) channel: Option<&'static str>,
    pub(crate) campaign: Option<String>,
    pub(crate) customer_id: Option<String>,
    pub(crate) quantity: f64,
    pub(crate) value: Option<f64>,
    pub(crate) currency: Option<String>,
    pub(crate) attributes: String,
}

/// What one raw record puts into the model, computed away from the connection.
pub(crate) enum Mapped {
    /// No mapper for its source's type (a connector this build does not have).
    Unmapped,
    /// The mapper refused it: logged and skipped.
    Failed(String),
    /// Its rows.
    Rows {
        orders: Vec<OrderCols>,
        events: Vec<EventCols>,
        /// People named without an order or event: (customer id, first seen).
        people: Vec<(String, Option<String>)>,
        /// `growthflow_derived`'s events and orders lists, when it derived any.
        derived: Option<(String, String)>,
    },
}

/// Map one raw record: parse its payload, run its mapper and format every column. A pure function
/// of the record, so records are mapped on several threads and written in order.
pub(crate) fn map_one(mappers: &HashMap<&str, &Arc<dyn JourneyMapper>>, raw: &RawRow) -> Mapped {
    let Some(mapper) = mappers.get(raw.source_type.as_str()) else {
        return Mapped::Unmapped;
    };
    // Only what the mapper reads is built: the whole tree of every payload was most of the rebuild.
    let mapped = parse_record(mapper.projection(&raw.stream), &raw.payload)
        .map_err(Error::from)
        .and_then(|v| mapper.map(&raw.stream, &v));
    let journey = match mapped {
        Ok(j) => j,
        Err(e) => return Mapped::Failed(e.to_string()),
    };
    let (source, stream, record_id) = (&raw.source, &raw.stream, &raw.record_id);
    let mut events: Vec<EventRow> = journey.events;
    let mut orders = Vec::with_capacity(journey.orders.len());
    for o in journey.orders {
        // Every order is also an event; its stage (first order or repeat) is settled later.
        let mut ev = EventRow::at(
            format!("order:{}", o.order_id),
            o.created_at,
            Stage::Conversion,
            "order",
        );
        ev.channel = Some(o.channel);
        ev.campaign = o.utm_campaign.clone();
        ev.email = o.email.clone();
        ev.value = Some(o.total_price);
        ev.currency = o.currency.clone();
        ev.attributes = serde_json::json!({
            "order_id": o.order_id,
            "valid": !o.cancelled && !o.test,
        });
        events.push(ev);
        orders.push(OrderCols {
            customer_id: o.email.as_deref().and_then(normalize_email),
            created: format_utc(o.created_at),
            row: o,
        });
    }
    let events: Vec<EventCols> = events
        .into_iter()
        .map(|e| EventCols {
            event_id: format!("{source}:{stream}:{record_id}:{}", e.key),
            occurred: format_utc(e.occurred_at),
            // `Display` is `%Y-%m-%d` (signed years past 9999 included) without reading a format.
            date: e.date.to_string(),
            stage: e.stage.as_str(),
            channel: e.channel.map(|c| c.as_str()),
            customer_id: e.email.as_deref().and_then(normalize_email),
            quantity: money(e.quantity),
            value: e.value.map(money),
            attributes: e.attributes.to_string(),
            event_type: e.event_type,
            campaign: e.campaign,
            currency: e.currency,
        })
        .collect();
    let people = journey
        .customers
        .iter()
        .filter_map(|c| normalize_email(&c.email).map(|id| (id, c.first_seen_at.map(format_utc))))
        .collect();
    let derived = (!events.is_empty() || !orders.is_empty()).then(|| {
        let event_ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        let order_ids: Vec<&str> = orders.iter().map(|o| o.row.order_id.as_str()).collect();
        (
            Value::from(event_ids).to_string(),
            Value::from(order_ids).to_string(),
        )
    });
    Mapped::Rows {
        orders,
        events,
        people,
        derived,
    }
}
