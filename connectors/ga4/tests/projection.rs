//! The rebuild parses only what the mapper reads (`Ga4Mapper::projection`): the mapper must give the
//! same rows, and the same errors, for a record parsed under its projection as for the whole record.
//! Checked on stored rows, on rows of other shapes, and on every variation of them with one value
//! removed or replaced (`growthflow_core::project::check`).

use growthflow_core::model::JourneyMapper;
use growthflow_core::project::{check, parse_record};
use growthflow_ga4::Ga4Mapper;
use serde_json::{json, Value};

/// A `traffic_daily` row as the stream stores it (the shape `tests/mapper.rs` maps).
fn row() -> Value {
    json!({
        "property": "123456789",
        "date": "2024-06-01",
        "dimensions": {"date":"20240601","sessionSource":"facebook","sessionMedium":"paid_social",
                       "sessionCampaignName":"summer_launch_2024","sessionDefaultChannelGroup":"Paid Social"},
        "metrics": {"sessions":"1204","newUsers":"941","engagedSessions":"618","addToCarts":"0",
                    "checkouts":"30","ecommercePurchases":"12","purchaseRevenue":"1390.15",
                    "totalUsers":"1100"},
        "metadata": {"currencyCode":"USD","timeZone":"America/New_York"}
    })
}

#[test]
fn the_traffic_stream_is_projected_and_drops_what_it_does_not_read() {
    assert!(Ga4Mapper.projection("traffic_daily").is_some());
    let projected =
        parse_record(Ga4Mapper.projection("traffic_daily"), &row().to_string()).unwrap();
    assert_eq!(projected.get("property"), None);
    assert_eq!(projected["dimensions"].get("sessionSource"), None);
    assert_eq!(projected["metrics"].get("totalUsers"), None);
    assert_eq!(projected["metrics"]["purchaseRevenue"], json!("1390.15"));
}

#[test]
fn every_variation_of_a_row_maps_the_same_projected() {
    let n = check::same_rows_on_variants(&Ga4Mapper, "traffic_daily", &row());
    assert!(n > 300, "only {n} variations");
    let mut placeholders = row();
    placeholders["dimensions"]["sessionCampaignName"] = json!("(direct)");
    placeholders["metrics"]["purchaseRevenue"] = json!("0");
    placeholders["metrics"]["ecommercePurchases"] = json!(0);
    check::same_rows_on_variants(&Ga4Mapper, "traffic_daily", &placeholders);
}

#[test]
fn rows_of_other_shapes_and_other_streams_map_the_same_projected() {
    let records = [
        row(),
        json!({}),
        json!([]),
        json!("2024-06-01"),
        json!({"date":"2024-06-01","metrics":"1204"}),
        json!({"date":"2024-06-01","metrics":{"sessions":{"v":"1"}}}),
        json!({"date":"2024-06-01","metrics":{"sessions":["1"]},"dimensions":[]}),
    ];
    for record in &records {
        for stream in ["traffic_daily", "user_report", "report_x"] {
            check::same_rows(&Ga4Mapper, stream, record);
        }
    }
}
