//! The rebuild parses only what the mapper reads (`WooMapper::projection`): the mapper must give the
//! same rows, and the same errors, for a record parsed under its projection as for the whole record.
//! Checked on the fixtures, on records of other shapes, and on every variation of the fixtures with one
//! value removed or replaced (`growthflow_core::project::check`).

use growthflow_core::model::JourneyMapper;
use growthflow_core::project::{check, parse_record};
use growthflow_woocommerce::WooMapper;
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const STREAMS: [&str; 5] = ["orders", "refunds", "customers", "products", "coupons"];

#[test]
fn mapped_streams_are_projected_and_an_order_loses_most_of_its_text() {
    for stream in ["orders", "refunds", "customers"] {
        assert!(WooMapper.projection(stream).is_some(), "{stream}");
    }
    let order = fixture("order_48213.json");
    let text = order.to_string();
    let projected = parse_record(WooMapper.projection("orders"), &text).unwrap();
    assert!(
        projected.to_string().len() * 3 < text.len(),
        "{} of {} bytes kept",
        projected.to_string().len(),
        text.len()
    );
    assert_eq!(
        WooMapper.map("orders", &projected).unwrap(),
        WooMapper.map("orders", &order).unwrap()
    );
}

#[test]
fn the_fixtures_map_the_same_projected_on_every_stream() {
    for name in [
        "order_48213.json",
        "order_guest_48240.json",
        "refund_48230.json",
        "customer_1187.json",
    ] {
        let record = fixture(name);
        for stream in STREAMS {
            check::same_rows(&WooMapper, stream, &record);
        }
    }
}

#[test]
fn every_variation_of_an_order_maps_the_same_projected() {
    for name in ["order_48213.json", "order_guest_48240.json"] {
        let n = check::same_rows_on_variants(&WooMapper, "orders", &fixture(name));
        assert!(n > 1000, "{name}: only {n} variations");
    }
}

#[test]
fn every_variation_of_a_refund_and_a_customer_maps_the_same_projected() {
    check::same_rows_on_variants(&WooMapper, "refunds", &fixture("refund_48230.json"));
    check::same_rows_on_variants(&WooMapper, "customers", &fixture("customer_1187.json"));
    let mut billing_only = fixture("customer_1187.json");
    billing_only["email"] = json!("");
    check::same_rows_on_variants(&WooMapper, "customers", &billing_only);
}

#[test]
fn records_of_other_shapes_map_the_same_projected() {
    let mut order = fixture("order_48213.json");
    order["meta_data"] = json!([
        { "id": 1, "key": "_wc_order_attribution_utm_source", "value": "klaviyo" },
        { "id": 2, "key": "_wc_order_attribution_utm_medium", "value": { "nested": "x" } },
        { "id": 3, "key": "_wc_order_attribution_session_entry", "value": "https://x.co/?a=1" },
        { "id": 4, "key": "_wc_order_attribution_utm_source", "value": "  " },
        "not an entry",
        { "id": 5, "key": 7, "value": "x" },
    ]);
    order["refunds"] = json!([{ "id": 1, "total": "-1.00" }, { "total": 2 }, "x"]);
    order["line_items"] = json!({ "total": "1.00" });
    order["billing"] = json!("priya@example.com");
    order["status"] = json!("cancelled");
    let records = [
        order,
        json!({}),
        json!([]),
        json!("text"),
        json!(null),
        json!(48213),
        json!({ "id": "48213", "date_created_gmt": "2025-03-05T14:22:31", "total": 5 }),
        json!({ "id": 1, "date_created_gmt": null, "total": "1" }),
        json!({ "id": 1, "date_created_gmt": {"a": 1}, "total": "1" }),
        json!({ "id": 1, "date_created_gmt": "2025-03-05T14:22:31", "total": ["1"] }),
        json!({ "id": 7, "date_created_gmt": "2025-03-05T14:22:31", "amount": "-3", "parent_id": 9 }),
        json!({ "id": 7, "date_created_gmt": "2025-03-05T14:22:31", "amount": {"x": 1} }),
        json!({ "id": 7, "email": null, "billing": { "email": " Bo@Example.com " } }),
        json!({ "id": 7, "email": "bo@example.com", "date_created_gmt": [1] }),
    ];
    for record in &records {
        for stream in STREAMS {
            check::same_rows(&WooMapper, stream, record);
        }
    }
}

#[test]
fn unparseable_text_fails_as_it_does_unprojected() {
    for text in ["{\"id\":1,", "{\"id\":1} x", "{\"note\":[1,}", ""] {
        for stream in STREAMS {
            let projected = parse_record(WooMapper.projection(stream), text).unwrap_err();
            let full = serde_json::from_str::<Value>(text).unwrap_err();
            assert_eq!(projected.to_string(), full.to_string(), "{stream} {text:?}");
        }
    }
}
