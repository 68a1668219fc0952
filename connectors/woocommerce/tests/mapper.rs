//! The journey mapper against realistic WooCommerce payloads (tests/fixtures, based on the reference's
//! §8.3 order and §8.4 refund).

use std::str::FromStr;

use chrono::{TimeZone, Utc};
use growthflow_core::model::{Channel, CustomerRow, JourneyMapper, OrderRow, Stage};
use growthflow_core::Error;
use growthflow_woocommerce::WooMapper;
use rust_decimal::Decimal;
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[test]
fn the_reference_order_maps_to_exact_values() {
    let rows = WooMapper
        .map("orders", &fixture("order_48213.json"))
        .unwrap();
    assert!(
        rows.events.is_empty(),
        "the rebuild derives the order event"
    );
    assert!(rows.customers.is_empty());
    assert_eq!(
        rows.orders,
        vec![OrderRow {
            order_id: "48213".into(),
            email: Some("priya.nair@example.com".into()),
            created_at: Utc.with_ymd_and_hms(2025, 3, 5, 14, 22, 31).unwrap(),
            currency: Some("GBP".into()),
            total_price: dec("73.32"),
            subtotal_price: Some(dec("56.10")),
            total_discounts: Some(dec("9.90")),
            total_refunded: dec("18.36"),
            financial_status: Some("processing".into()),
            cancelled: false,
            test: false,
            utm_source: Some("instagram".into()),
            utm_medium: Some("paid_social".into()),
            utm_campaign: Some("spring_tees_2025".into()),
            channel: Channel::PaidSocial,
            landing_page: Some(
                "https://shop.example.co/product/organic-cotton-tee/?utm_source=instagram&utm_medium=paid_social\
                 &utm_campaign=spring_tees_2025&utm_content=carousel_v2&utm_id=120213"
                    .into()
            ),
            referrer: Some("https://l.instagram.com/".into()),
        }]
    );
}

#[test]
fn a_guest_order_takes_its_email_from_billing_and_typein_is_direct() {
    let order = fixture("order_guest_48240.json");
    assert_eq!(order["customer_id"], json!(0));
    let rows = WooMapper.map("orders", &order).unwrap();
    let o = &rows.orders[0];
    // As given (the rebuild normalises it into the customer id).
    assert_eq!(o.email.as_deref(), Some("Sam.Okafor@Example.com"));
    assert_eq!(o.total_price, dec("27.60"));
    assert_eq!(o.total_refunded, Decimal::ZERO);
    assert_eq!(o.channel, Channel::Direct);
    assert_eq!(o.utm_medium, None);
    assert_eq!(o.referrer, None);
    assert_eq!(
        o.created_at,
        Utc.with_ymd_and_hms(2025, 3, 9, 1, 15, 2).unwrap()
    );
}

#[test]
fn cancelled_statuses_follow_the_documented_rule() {
    let mut order = fixture("order_48213.json");
    for (status, cancelled) in [
        ("cancelled", true),
        ("failed", true),
        ("trash", true),
        ("checkout-draft", true),
        ("refunded", false),
        ("completed", false),
        ("pending", false),
        ("on-hold", false),
    ] {
        order["status"] = json!(status);
        let o = &WooMapper.map("orders", &order).unwrap().orders[0];
        assert_eq!(o.cancelled, cancelled, "{status}");
        assert_eq!(o.financial_status.as_deref(), Some(status));
    }
}

#[test]
fn orders_without_attribution_or_admin_created() {
    let mut order = fixture("order_48213.json");
    order["meta_data"] = json!([{ "id": 1, "key": "is_vat_exempt", "value": "no" }]);
    let o = &WooMapper.map("orders", &order).unwrap().orders[0];
    assert_eq!(
        (o.utm_source.as_deref(), o.landing_page.as_deref()),
        (None, None)
    );
    assert_eq!(o.channel, Channel::Direct);
    order["meta_data"] =
        json!([{ "id": 1, "key": "_wc_order_attribution_source_type", "value": "admin" }]);
    assert_eq!(
        WooMapper.map("orders", &order).unwrap().orders[0].channel,
        Channel::Other
    );
    order["meta_data"] = json!([
        { "id": 1, "key": "_wc_order_attribution_source_type", "value": "organic" },
        { "id": 2, "key": "_wc_order_attribution_referrer", "value": "https://www.google.com/" },
        { "id": 3, "key": "_wc_order_attribution_utm_source", "value": "google" },
        { "id": 4, "key": "_wc_order_attribution_utm_medium", "value": "organic" }
    ]);
    assert_eq!(
        WooMapper.map("orders", &order).unwrap().orders[0].channel,
        Channel::OrganicSearch
    );
}

#[test]
fn a_refund_is_a_feedback_event_with_value_and_order_id() {
    let rows = WooMapper
        .map("refunds", &fixture("refund_48230.json"))
        .unwrap();
    assert!(rows.orders.is_empty() && rows.customers.is_empty());
    assert_eq!(rows.events.len(), 1);
    let e = &rows.events[0];
    assert_eq!(e.key, "refund:48230");
    assert_eq!(e.event_type, "refund");
    assert_eq!(e.stage, Stage::Feedback);
    assert_eq!(
        e.occurred_at,
        Utc.with_ymd_and_hms(2025, 3, 7, 16, 2, 41).unwrap()
    );
    assert_eq!(e.date.to_string(), "2025-03-07");
    assert_eq!(e.quantity, Decimal::ONE);
    assert_eq!(e.value, Some(dec("18.36")));
    assert_eq!(
        e.attributes,
        json!({ "order_id": "48213", "reason": "Damaged in transit" })
    );
}

#[test]
fn a_customer_is_a_person_first_seen_at_registration() {
    let rows = WooMapper
        .map("customers", &fixture("customer_1187.json"))
        .unwrap();
    assert_eq!(
        rows.customers,
        vec![CustomerRow {
            email: "priya.nair@example.com".into(),
            first_seen_at: Some(Utc.with_ymd_and_hms(2024, 11, 28, 21, 14, 5).unwrap()),
        }]
    );
    assert!(rows.orders.is_empty() && rows.events.is_empty());
}

#[test]
fn products_and_coupons_feed_nothing() {
    let product = json!({ "id": 3310, "name": "Organic Cotton Tee", "price": "24.00" });
    assert!(WooMapper.map("products", &product).unwrap().is_empty());
    assert!(WooMapper
        .map("coupons", &json!({ "id": 1, "code": "spring15" }))
        .unwrap()
        .is_empty());
}

#[test]
fn unreadable_fields_are_decode_errors_naming_the_field() {
    let decode_message = |stream: &str, record: &Value| match WooMapper.map(stream, record) {
        Err(Error::Decode { message }) => message,
        other => panic!("expected a decode error, got {other:?}"),
    };
    let mut order = fixture("order_48213.json");
    order["total"] = json!("73,32");
    assert!(decode_message("orders", &order).contains("`total`"));

    let mut order = fixture("order_48213.json");
    order["line_items"][1]["total"] = json!("n/a");
    assert!(decode_message("orders", &order).contains("line_items[1].total"));

    let mut order = fixture("order_48213.json");
    order["date_created_gmt"] = json!("05/03/2025");
    assert!(decode_message("orders", &order).contains("date_created_gmt"));

    let mut refund = fixture("refund_48230.json");
    refund["amount"] = json!({ "value": 1 });
    assert!(decode_message("refunds", &refund).contains("`amount`"));

    assert!(decode_message("orders", &json!([1, 2])).contains("not a JSON object"));
}
