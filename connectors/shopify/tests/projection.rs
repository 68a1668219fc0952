//! The rebuild parses only what the mapper reads (`ShopifyMapper::projection`): the mapper must give
//! the same rows, and the same errors, for a record parsed under its projection as for the whole
//! record. Checked on the fixtures, on records of other shapes, and on every variation of the fixtures
//! with one value removed or replaced (`growthflow_core::project::check`).

use growthflow_core::model::JourneyMapper;
use growthflow_core::project::{check, parse_record};
use growthflow_shopify::ShopifyMapper;
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const STREAMS: [&str; 4] = ["orders", "customers", "abandoned_checkouts", "products"];

const FIXTURES: [&str; 5] = [
    "order_1042.json",
    "order_utm_in_landing_page.json",
    "customer_7391920570558.json",
    "abandoned_checkout_38720911245502.json",
    "product_8812364710078.json",
];

#[test]
fn mapped_streams_are_projected_and_an_order_loses_most_of_its_text() {
    for stream in ["orders", "customers", "abandoned_checkouts"] {
        assert!(ShopifyMapper.projection(stream).is_some(), "{stream}");
    }
    let text = fixture("order_1042.json").to_string();
    let projected = parse_record(ShopifyMapper.projection("orders"), &text).unwrap();
    assert!(
        projected.to_string().len() * 2 < text.len(),
        "{} of {} bytes kept",
        projected.to_string().len(),
        text.len()
    );
}

#[test]
fn the_fixtures_map_the_same_projected_on_every_stream() {
    for name in FIXTURES {
        let record = fixture(name);
        for stream in STREAMS {
            check::same_rows(&ShopifyMapper, stream, &record);
        }
    }
}

#[test]
fn every_variation_of_an_order_maps_the_same_projected() {
    for name in ["order_1042.json", "order_utm_in_landing_page.json"] {
        let n = check::same_rows_on_variants(&ShopifyMapper, "orders", &fixture(name));
        assert!(n > 1000, "{name}: only {n} variations");
    }
}

#[test]
fn every_variation_of_a_customer_and_a_checkout_maps_the_same_projected() {
    let customer = fixture("customer_7391920570558.json");
    check::same_rows_on_variants(&ShopifyMapper, "customers", &customer);
    let mut by_default_address = customer.clone();
    by_default_address["email"] = Value::Null;
    by_default_address["defaultEmailAddress"] =
        json!({ "emailAddress": "Ana@Example.com", "marketingState": "SUBSCRIBED" });
    check::same_rows_on_variants(&ShopifyMapper, "customers", &by_default_address);
    check::same_rows_on_variants(
        &ShopifyMapper,
        "abandoned_checkouts",
        &fixture("abandoned_checkout_38720911245502.json"),
    );
}

#[test]
fn records_of_other_shapes_map_the_same_projected() {
    let mut first_visit_only = fixture("order_1042.json");
    first_visit_only["customerJourneySummary"]["lastVisit"] = Value::Null;
    let mut refunds_summed = fixture("order_1042.json");
    refunds_summed["totalRefundedSet"] = Value::Null;
    refunds_summed["refunds"] = json!([
        { "id": "gid://shopify/Refund/1", "createdAt": "2025-03-12T16:40:05Z",
          "totalRefundedSet": { "shopMoney": { "amount": "-2.5", "currencyCode": null } } },
        { "id": "gid://shopify/Refund/2", "createdAt": "2025-03-13T16:40:05Z" },
        "not a refund",
    ]);
    let mut pos = fixture("order_1042.json");
    pos["sourceName"] = json!("POS");
    pos["cancelledAt"] = json!("2025-03-06T00:00:00Z");
    pos["test"] = json!(true);
    pos["email"] = Value::Null;
    let mut completed = fixture("abandoned_checkout_38720911245502.json");
    completed["completedAt"] = json!("2025-03-06T00:00:00Z");
    let records = [
        first_visit_only,
        refunds_summed,
        pos,
        completed,
        json!({}),
        json!([]),
        json!("text"),
        json!(7),
        json!({ "id": "gid://shopify/Order/1", "createdAt": "2025-03-05T14:22:31Z",
                "totalPriceSet": { "shopMoney": "12.00" } }),
        json!({ "id": "gid://shopify/Order/1", "createdAt": "2025-03-05T14:22:31Z",
                "totalPriceSet": [{ "shopMoney": { "amount": "1" } }] }),
        json!({ "id": "gid://shopify/Order/1", "createdAt": "2025-03-05T14:22:31Z",
                "totalPriceSet": { "shopMoney": { "amount": { "v": 1 } } } }),
        json!({ "id": "gid://shopify/Customer/1", "defaultEmailAddress": "a@b.co" }),
    ];
    for record in &records {
        for stream in STREAMS {
            check::same_rows(&ShopifyMapper, stream, record);
        }
    }
}
