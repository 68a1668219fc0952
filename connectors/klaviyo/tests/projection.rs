//! The rebuild parses only what the mapper reads (`KlaviyoMapper::projection`): the mapper must give
//! the same rows, and the same errors, for a record parsed under its projection as for the whole
//! record. Checked on the fixtures' records (joined as the stream joins them), on records of other
//! shapes, and on every variation of them with one value removed or replaced
//! (`growthflow_core::project::check`).

use growthflow_core::model::JourneyMapper;
use growthflow_core::project::{check, parse_record};
use growthflow_klaviyo::streams::join_included;
use growthflow_klaviyo::KlaviyoMapper;
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text.replace("{{BASE}}", "https://a.klaviyo.com"))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The records of a page, as the stream stores them.
fn records(name: &str) -> Vec<Value> {
    join_included(&mut fixture(name))
}

const STREAMS: [&str; 5] = ["events", "profiles", "campaigns", "flows", "metrics"];

/// Every stored record the fixtures give.
fn all_records() -> Vec<Value> {
    let mut all = records("events_page1.json");
    all.extend(records("events_page2.json"));
    all.extend(records("profiles.json"));
    all.extend(records("metrics.json"));
    all
}

#[test]
fn mapped_streams_are_projected_and_an_event_loses_most_of_its_text() {
    for stream in ["events", "profiles"] {
        assert!(KlaviyoMapper.projection(stream).is_some(), "{stream}");
    }
    let text = records("events_page1.json")[1].to_string();
    let projected = parse_record(KlaviyoMapper.projection("events"), &text).unwrap();
    assert!(
        projected.to_string().len() * 2 < text.len(),
        "{} of {} bytes kept",
        projected.to_string().len(),
        text.len()
    );
}

#[test]
fn the_fixtures_map_the_same_projected_on_every_stream() {
    let all = all_records();
    assert!(all.len() >= 5, "{}", all.len());
    for record in &all {
        for stream in STREAMS {
            check::same_rows(&KlaviyoMapper, stream, record);
        }
    }
}

#[test]
fn every_variation_of_an_event_maps_the_same_projected() {
    let mut events = records("events_page1.json");
    events.extend(records("events_page2.json"));
    for (i, event) in events.iter().enumerate() {
        let n = check::same_rows_on_variants(&KlaviyoMapper, "events", event);
        assert!(n > 100, "event {i}: only {n} variations");
    }
}

#[test]
fn every_variation_of_a_profile_maps_the_same_projected() {
    for profile in records("profiles.json") {
        check::same_rows_on_variants(&KlaviyoMapper, "profiles", &profile);
    }
}

#[test]
fn placed_orders_attributed_every_way_map_the_same_projected() {
    let base = records("events_page1.json")[1].clone();
    let mut flow = base.clone();
    flow["included"]["attributions"] = json!([]);
    flow["relationships"]["attributions"]["data"] = json!([]);
    flow["attributes"]["event_properties"]["$attributed_flow"] = json!("XVTP5Q");
    flow["attributes"]["event_properties"]["$attributed_message"] = json!(12);
    let mut included = base.clone();
    included["included"]["attributions"] = json!([
        { "type": "attribution", "id": "a1",
          "relationships": { "flow": { "data": { "type": "flow", "id": "F1" } },
                             "flow-message": { "data": { "type": "flow-message", "id": "M1" } } } },
        { "type": "attribution", "id": "a2",
          "relationships": { "campaign": { "data": { "id": 7 } },
                             "campaign-message": { "data": [{ "id": "M2" }] } } },
        "not a resource",
    ]);
    let mut related_only = base.clone();
    related_only["included"]["attributions"] = json!({ "not": "a list" });
    related_only["relationships"]["attributions"]["data"] = json!([null]);
    let mut renamed_metric = base.clone();
    renamed_metric["included"]["metric"]["attributes"]["name"] = json!("Checkout Started");
    let mut epoch_only = base.clone();
    epoch_only["attributes"]["datetime"] = Value::Null;
    for record in [flow, included, related_only, renamed_metric, epoch_only] {
        check::same_rows(&KlaviyoMapper, "events", &record);
        check::same_rows_on_variants(&KlaviyoMapper, "events", &record);
    }
    for record in [json!({}), json!([]), json!("x"), json!({ "id": 5 })] {
        for stream in STREAMS {
            check::same_rows(&KlaviyoMapper, stream, &record);
        }
    }
}
