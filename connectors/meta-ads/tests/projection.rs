//! The rebuild parses only what the mapper reads (`MetaAdsMapper::projection`): the mapper must give
//! the same rows, and the same errors, for a record parsed under its projection as for the whole
//! record. Checked on the fixtures' insights rows, on rows of other shapes, and on every variation of
//! them with one value removed or replaced (`growthflow_core::project::check`).

use growthflow_core::model::JourneyMapper;
use growthflow_core::project::{check, parse_record};
use growthflow_meta_ads::MetaAdsMapper;
use serde_json::{json, Value};

fn rows(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    v["data"].as_array().unwrap().clone()
}

const STREAMS: [&str; 4] = ["ad_insights", "campaigns", "adsets", "ads"];

#[test]
fn insights_are_projected_and_drop_what_the_mapper_does_not_read() {
    assert!(MetaAdsMapper.projection("ad_insights").is_some());
    let row = &rows("insights_page1.json")[0];
    let projected =
        parse_record(MetaAdsMapper.projection("ad_insights"), &row.to_string()).unwrap();
    assert_eq!(projected.get("ad_name"), None);
    assert_eq!(projected["ad_id"], row["ad_id"]);
}

#[test]
fn the_fixtures_map_the_same_projected_on_every_stream() {
    let mut all = rows("insights_page1.json");
    all.extend(rows("insights_page2.json"));
    all.extend(rows("campaigns.json"));
    all.extend(rows("campaigns_page2.json"));
    for record in &all {
        for stream in STREAMS {
            check::same_rows(&MetaAdsMapper, stream, record);
        }
    }
}

#[test]
fn every_variation_of_an_insights_row_maps_the_same_projected() {
    let mut all = rows("insights_page1.json");
    all.extend(rows("insights_page2.json"));
    for (i, row) in all.iter().enumerate() {
        let n = check::same_rows_on_variants(&MetaAdsMapper, "ad_insights", row);
        assert!(n > 200, "row {i}: only {n} variations");
    }
}

#[test]
fn rows_of_other_shapes_map_the_same_projected() {
    let mut first = rows("insights_page1.json")[0].clone();
    first["actions"] = json!([
        { "action_type": "omni_purchase", "value": "9" },
        "not a stat",
        { "action_type": "purchase", "value": { "v": 1 } },
    ]);
    first["action_values"] = json!({ "action_type": "purchase", "value": "1" });
    let records = [
        first,
        json!({}),
        json!([]),
        json!(5),
        json!({ "ad_id": 12, "date_start": "2024-06-01", "clicks": "3.5", "reach": [] }),
        json!({ "ad_id": "1", "date_start": "June 1st" }),
    ];
    for record in &records {
        for stream in STREAMS {
            check::same_rows(&MetaAdsMapper, stream, record);
        }
    }
}
