//! The journey mapper against the records the events and profiles streams produce (tests/fixtures,
//! based on the reference's §1.9 pages, with `included` joined the way the stream joins it).

use std::str::FromStr;

use chrono::{TimeZone, Utc};
use growthflow_core::model::{Channel, CustomerRow, EventRow, JourneyMapper, Stage};
use growthflow_core::Error;
use growthflow_klaviyo::streams::join_included;
use growthflow_klaviyo::KlaviyoMapper;
use rust_decimal::Decimal;
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text.replace("{{BASE}}", "https://a.klaviyo.com"))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The records of an events page, as the stream stores them.
fn events(name: &str) -> Vec<Value> {
    join_included(&mut fixture(name))
}

fn one(record: &Value) -> EventRow {
    let rows = KlaviyoMapper.map("events", record).unwrap();
    assert!(rows.orders.is_empty() && rows.customers.is_empty());
    assert_eq!(rows.events.len(), 1, "{rows:?}");
    rows.events.into_iter().next().unwrap()
}

#[test]
fn source_type_is_klaviyo() {
    assert_eq!(KlaviyoMapper.source_type(), "klaviyo");
}

#[test]
fn an_opened_email_is_consideration_on_the_email_channel() {
    let e = one(&events("events_page1.json")[0]);
    let mut expected = EventRow::at(
        "event:5Q8rVYhTZpE",
        Utc.with_ymd_and_hms(2024, 6, 1, 8, 0, 0).unwrap(),
        Stage::Consideration,
        "email_opened",
    );
    expected.channel = Some(Channel::Email);
    expected.campaign = Some("2024-06-01 Summer Launch".into());
    expected.email = Some("sarah.mason@example.com".into());
    expected.attributes = json!({
        "message": "01HZ4K7Q3M2V8N5R6T9W0XYZAB",
        "flow": null,
        "campaign_name": "2024-06-01 Summer Launch",
    });
    assert_eq!(e, expected);
}

#[test]
fn a_placed_order_is_a_conversion_with_value_and_attribution() {
    let e = one(&events("events_page1.json")[1]);
    let mut expected = EventRow::at(
        "event:5QbW2kLmN7s",
        Utc.with_ymd_and_hms(2024, 6, 1, 16, 30, 0).unwrap(),
        Stage::Conversion,
        "placed_order",
    );
    expected.channel = Some(Channel::Email);
    expected.email = Some("sarah.mason@example.com".into());
    expected.value = Some(Decimal::from_str("129.9").unwrap());
    expected.currency = Some("USD".into());
    // Until the rebuild names it from the synced campaigns, the attributed message id stands in.
    expected.campaign = Some("01HZ4K7Q3M2V8N5R6T9W0XYZAB".into());
    expected.attributes = json!({
        "attributed": true,
        "campaign": "01HZ4K7Q3M2V8N5R6T9W0XYZAA",
        "flow": null,
        "message": "01HZ4K7Q3M2V8N5R6T9W0XYZAB",
    });
    assert_eq!(e, expected);
    assert_eq!(e.date.to_string(), "2024-06-01");
    assert_eq!(e.quantity, Decimal::ONE);
}

#[test]
fn placed_order_attribution_from_each_source() {
    let base = events("events_page1.json")[1].clone();
    let attrs = |record: &Value| one(record).attributes;

    // Only the properties: a flow.
    let mut flow = base.clone();
    flow["included"]["attributions"] = json!([]);
    flow["relationships"]["attributions"]["data"] = json!([]);
    flow["attributes"]["event_properties"]["$attributed_flow"] = json!("XVTP5Q");
    flow["attributes"]["event_properties"]["$attributed_message"] = json!("Rb4KpL");
    assert_eq!(
        attrs(&flow),
        json!({ "attributed": true, "campaign": null, "flow": "XVTP5Q", "message": "Rb4KpL" })
    );

    // Only the properties: a campaign's message.
    let mut message = flow.clone();
    message["attributes"]["event_properties"]
        .as_object_mut()
        .unwrap()
        .remove("$attributed_flow");
    assert_eq!(
        attrs(&message),
        json!({ "attributed": true, "campaign": "Rb4KpL", "flow": null, "message": "Rb4KpL" })
    );

    // Only the relationship, its resource not included.
    let mut related = base.clone();
    related["included"]["attributions"] = json!([]);
    for k in ["$attributed_message", "$attributed_channel"] {
        related["attributes"]["event_properties"]
            .as_object_mut()
            .unwrap()
            .remove(k);
    }
    assert_eq!(
        attrs(&related),
        json!({ "attributed": true, "campaign": null, "flow": null, "message": null })
    );

    // Nothing: not attributed, no channel.
    let mut organic = related.clone();
    organic["relationships"]["attributions"]["data"] = json!([]);
    let e = one(&organic);
    assert_eq!(
        e.attributes,
        json!({ "attributed": false, "campaign": null, "flow": null, "message": null })
    );
    assert_eq!(e.channel, None);
    assert_eq!(e.campaign, None);
    assert_eq!(e.value, Some(Decimal::from_str("129.9").unwrap()));
}

#[test]
fn a_flow_click_takes_the_message_name_and_keeps_the_flow() {
    let e = one(&events("events_page2.json")[0]);
    assert_eq!(e.event_type, "email_clicked");
    assert_eq!(e.stage, Stage::Consideration);
    assert_eq!(e.channel, Some(Channel::Email));
    assert_eq!(e.campaign.as_deref(), Some("Abandoned Checkout: Email 1"));
    assert_eq!(
        e.attributes,
        json!({
            "message": "Rb4KpL",
            "flow": "XVTP5Q",
            "campaign_name": "Abandoned Checkout: Email 1"
        })
    );
    assert_eq!(
        e.occurred_at,
        Utc.with_ymd_and_hms(2024, 6, 1, 18, 0, 0).unwrap()
    );
}

#[test]
fn metric_names_map_to_the_vocabulary() {
    let mut record = events("events_page2.json")[0].clone();
    for (name, event_type, stage, channel) in [
        (
            "Received Email",
            Some("email_received"),
            Stage::Consideration,
            Some(Channel::Email),
        ),
        (
            "Viewed Product",
            Some("product_viewed"),
            Stage::Consideration,
            None,
        ),
        (
            "Started Checkout",
            Some("checkout_started"),
            Stage::Consideration,
            None,
        ),
        (
            "Checkout Started",
            Some("checkout_started"),
            Stage::Consideration,
            None,
        ),
        ("Bounced Email", None, Stage::Consideration, None),
        ("Active on Site", None, Stage::Consideration, None),
    ] {
        record["included"]["metric"]["attributes"]["name"] = json!(name);
        let rows = KlaviyoMapper.map("events", &record).unwrap();
        match event_type {
            Some(t) => {
                let e = &rows.events[0];
                assert_eq!(
                    (e.event_type.as_str(), e.stage, e.channel, e.value),
                    (t, stage, channel, None),
                    "{name}"
                );
            }
            None => assert!(rows.is_empty(), "{name}"),
        }
    }
    // Without its metric (no include), an event cannot be placed.
    let mut bare = record.clone();
    bare.as_object_mut().unwrap().remove("included");
    assert!(KlaviyoMapper.map("events", &bare).unwrap().is_empty());
}

#[test]
fn a_profile_is_a_person_first_seen_at_creation() {
    let profile = fixture("profiles.json")["data"][0].clone();
    let rows = KlaviyoMapper.map("profiles", &profile).unwrap();
    assert_eq!(
        rows.customers,
        vec![CustomerRow {
            email: "sarah.mason@example.com".into(),
            first_seen_at: Some(Utc.with_ymd_and_hms(2023, 2, 21, 20, 7, 38).unwrap()),
        }]
    );
    assert!(rows.events.is_empty() && rows.orders.is_empty());
    let mut phone_only = profile.clone();
    phone_only["attributes"]["email"] = Value::Null;
    assert!(KlaviyoMapper
        .map("profiles", &phone_only)
        .unwrap()
        .is_empty());
}

#[test]
fn other_streams_feed_nothing() {
    for stream in ["metrics", "campaigns", "flows", "lists"] {
        assert!(KlaviyoMapper
            .map(stream, &json!({"type": "x", "id": "1"}))
            .unwrap()
            .is_empty());
    }
}

#[test]
fn unreadable_fields_are_decode_errors_naming_the_field() {
    let decode_message = |record: &Value| match KlaviyoMapper.map("events", record) {
        Err(Error::Decode { message }) => message,
        other => panic!("expected a decode error, got {other:?}"),
    };
    let mut order = events("events_page1.json")[1].clone();
    order["attributes"]["event_properties"]["$value"] = json!("12,50");
    assert!(decode_message(&order).contains("`$value`"));
    let mut order = events("events_page1.json")[1].clone();
    order["attributes"]["datetime"] = json!("yesterday");
    assert!(decode_message(&order).contains("datetime"));
}

#[test]
fn every_mapped_metric_is_in_the_journey_vocabulary_as_klaviyos() {
    // The report asks the vocabulary which sources emit an event type; it must know Klaviyo's.
    for (metric, event_type, stage, _) in growthflow_klaviyo::mapper::METRIC_EVENTS {
        let def = growthflow_core::model::event_type_def(event_type)
            .unwrap_or_else(|| panic!("{metric}: `{event_type}` is not in EVENT_TYPES"));
        assert!(def.sources.contains(&"klaviyo"), "{event_type}");
        assert_eq!(def.stages[0], stage, "{event_type}");
    }
}
