//! The journey mapper against realistic Shopify GraphQL nodes (tests/fixtures, based on the reference's
//! §2.3 order, §3.1 customer and §3.2 abandoned checkout).

use std::str::FromStr;

use chrono::{TimeZone, Utc};
use growthflow_core::model::{Channel, CustomerRow, JourneyMapper, OrderRow, Stage};
use growthflow_core::Error;
use growthflow_shopify::mapper::number_of_orders;
use growthflow_shopify::ShopifyMapper;
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
    let rows = ShopifyMapper
        .map("orders", &fixture("order_1042.json"))
        .unwrap();
    assert!(rows.customers.is_empty());
    assert_eq!(
        rows.orders,
        vec![OrderRow {
            order_id: "6021883183294".into(),
            email: Some("Maya.Okafor@example.com".into()),
            created_at: Utc.with_ymd_and_hms(2025, 3, 5, 16, 47, 22).unwrap(),
            currency: Some("USD".into()),
            total_price: dec("167.33"),
            subtotal_price: Some(dec("148.5")),
            total_discounts: Some(dec("16.5")),
            total_refunded: dec("17.5"),
            financial_status: Some("partially_refunded".into()),
            cancelled: false,
            test: false,
            utm_source: Some("klaviyo".into()),
            utm_medium: Some("email".into()),
            utm_campaign: Some("spring_restock_2025".into()),
            channel: Channel::Email,
            landing_page: Some(
                "https://northpeak-outfitters.com/products/merino-crew-sock?utm_source=klaviyo&utm_medium=email\
                 &utm_campaign=spring_restock_2025&utm_content=hero_cta"
                    .into()
            ),
            referrer: None,
        }]
    );
}

#[test]
fn refunds_embedded_in_the_order_become_dated_feedback_events() {
    let rows = ShopifyMapper
        .map("orders", &fixture("order_1042.json"))
        .unwrap();
    assert_eq!(rows.events.len(), 1);
    let e = &rows.events[0];
    assert_eq!(e.key, "refund:954287620286");
    assert_eq!(e.event_type, "refund");
    assert_eq!(e.stage, Stage::Feedback);
    assert_eq!(
        e.occurred_at,
        Utc.with_ymd_and_hms(2025, 3, 12, 16, 40, 5).unwrap()
    );
    assert_eq!(e.date.to_string(), "2025-03-12");
    assert_eq!(e.value, Some(dec("17.5")));
    assert_eq!(e.currency.as_deref(), Some("USD"));
    assert_eq!(e.quantity, Decimal::ONE);
    assert_eq!(e.attributes, json!({"order_id": "6021883183294"}));
}

#[test]
fn utm_falls_back_to_the_landing_page_query_string() {
    let rows = ShopifyMapper
        .map("orders", &fixture("order_utm_in_landing_page.json"))
        .unwrap();
    let o = &rows.orders[0];
    assert_eq!(o.order_id, "6021907759294");
    assert_eq!(o.utm_source.as_deref(), Some("instagram"));
    assert_eq!(o.utm_medium.as_deref(), Some("paid_social"));
    assert_eq!(o.utm_campaign.as_deref(), Some("spring_trail_2025"));
    assert_eq!(o.referrer.as_deref(), Some("https://l.instagram.com/"));
    assert_eq!(o.channel, Channel::PaidSocial);
    assert_eq!(o.total_refunded, Decimal::ZERO);
    assert_eq!(o.financial_status.as_deref(), Some("paid"));
    assert!(rows.events.is_empty());
}

#[test]
fn cancelled_test_and_unattributed_orders() {
    let mut o = fixture("order_1042.json");
    o["cancelledAt"] = json!("2025-03-06T10:00:00Z");
    o["test"] = json!(true);
    o["customerJourneySummary"] = Value::Null;
    o["email"] = Value::Null;
    let row = &ShopifyMapper.map("orders", &o).unwrap().orders[0];
    assert!(row.cancelled && row.test);
    assert_eq!(row.utm_source, None);
    assert_eq!(row.landing_page, None);
    assert_eq!(row.channel, Channel::Direct);
    assert_eq!(
        row.email.as_deref(),
        Some("maya.okafor@example.com"),
        "the customer's email stands in for the order's"
    );

    // Organic first visit only: Google referrer with the SEO tactic.
    let mut o = fixture("order_1042.json");
    o["customerJourneySummary"]["lastVisit"] = Value::Null;
    let row = &ShopifyMapper.map("orders", &o).unwrap().orders[0];
    assert_eq!(row.channel, Channel::OrganicSearch);
    assert_eq!(row.referrer.as_deref(), Some("https://www.google.com/"));

    // Point of sale is not web traffic.
    let mut o = fixture("order_1042.json");
    o["sourceName"] = json!("pos");
    o["customerJourneySummary"] = Value::Null;
    assert_eq!(
        ShopifyMapper.map("orders", &o).unwrap().orders[0].channel,
        Channel::Other
    );
}

#[test]
fn malformed_money_is_a_decode_error_naming_the_field() {
    let mut o = fixture("order_1042.json");
    o["totalPriceSet"]["shopMoney"]["amount"] = json!("12,00");
    let err = ShopifyMapper.map("orders", &o).unwrap_err();
    assert!(
        matches!(&err, Error::Decode { message } if message.contains("totalPriceSet.shopMoney.amount") && message.contains("6021883183294")),
        "{err}"
    );
}

#[test]
fn customers_keep_email_and_creation_time_and_count_orders_from_a_string() {
    let c = fixture("customer_7391920570558.json");
    let rows = ShopifyMapper.map("customers", &c).unwrap();
    assert_eq!(
        rows.customers,
        vec![CustomerRow {
            email: "maya.okafor@example.com".into(),
            first_seen_at: Some(Utc.with_ymd_and_hms(2025, 3, 5, 16, 47, 19).unwrap()),
        }]
    );
    assert_eq!(c["numberOfOrders"], json!("1"));
    assert_eq!(number_of_orders(&c).unwrap(), Some(1));
    assert_eq!(
        number_of_orders(&json!({"numberOfOrders": 3})).unwrap(),
        Some(3)
    );
    assert!(number_of_orders(&json!({"numberOfOrders": "many"})).is_err());
    let mut phone_only = c.clone();
    phone_only["email"] = Value::Null;
    assert!(ShopifyMapper
        .map("customers", &phone_only)
        .unwrap()
        .is_empty());
}

#[test]
fn abandoned_checkouts_are_conversion_events_unless_completed() {
    let ac = fixture("abandoned_checkout_38720911245502.json");
    let rows = ShopifyMapper.map("abandoned_checkouts", &ac).unwrap();
    assert_eq!(rows.events.len(), 1);
    let e = &rows.events[0];
    assert_eq!(e.key, "checkout_abandoned:38720911245502");
    assert_eq!(e.event_type, "checkout_abandoned");
    assert_eq!(e.stage, Stage::Conversion);
    assert_eq!(
        e.occurred_at,
        Utc.with_ymd_and_hms(2025, 3, 4, 21, 12, 40).unwrap()
    );
    assert_eq!(e.value, Some(dec("139.32")));
    assert_eq!(e.currency.as_deref(), Some("USD"));
    assert_eq!(e.email.as_deref(), Some("maya.okafor@example.com"));

    let mut done = ac;
    done["completedAt"] = json!("2025-03-05T16:47:20Z");
    assert!(ShopifyMapper
        .map("abandoned_checkouts", &done)
        .unwrap()
        .is_empty());
}

#[test]
fn products_are_raw_only_and_the_mapper_is_shopifys() {
    assert!(ShopifyMapper
        .map("products", &fixture("product_8812364710078.json"))
        .unwrap()
        .is_empty());
    assert_eq!(ShopifyMapper.source_type(), "shopify");
}

#[test]
fn money_and_its_currency_come_from_shop_money() {
    // A shop in CAD selling to a customer in EUR: the amounts read are `shopMoney`'s, so the currency
    // recorded with them must be `shopMoney`'s too, whatever the order's other currency fields say.
    let mut o = fixture("order_1042.json");
    o["currencyCode"] = json!("EUR");
    o["presentmentCurrencyCode"] = json!("EUR");
    for set in [
        "totalPriceSet",
        "subtotalPriceSet",
        "totalDiscountsSet",
        "totalRefundedSet",
    ] {
        if o[set].is_object() {
            o[set]["shopMoney"]["currencyCode"] = json!("CAD");
            o[set]["presentmentMoney"] = json!({"amount": "1.00", "currencyCode": "EUR"});
        }
    }
    for refund in o["refunds"].as_array_mut().unwrap() {
        refund["totalRefundedSet"] = json!({"shopMoney": {"amount": "17.5"}});
    }
    let rows = ShopifyMapper.map("orders", &o).unwrap();
    assert_eq!(rows.orders[0].currency.as_deref(), Some("CAD"));
    assert_eq!(rows.orders[0].total_price, dec("167.33"));
    // A refund whose MoneyBag names no currency is in its order's shop currency.
    assert_eq!(rows.events[0].currency.as_deref(), Some("CAD"));
    assert_eq!(rows.events[0].value, Some(dec("17.5")));
}

/// The customer's email as the queries select it, `defaultEmailAddress.emailAddress` (`email` is
/// deprecated in its favour), and as records stored before carry it, `email`: the same person either
/// way, for an order without its own email, an abandoned checkout and a customer.
#[test]
fn a_customers_email_is_read_from_its_default_email_address_or_the_old_field() {
    for customer in [
        json!({"id": "gid://shopify/Customer/1", "defaultEmailAddress": {"emailAddress": "New@Example.com"}}),
        json!({"id": "gid://shopify/Customer/1", "email": "New@Example.com"}),
    ] {
        let mut order = fixture("order_1042.json");
        order["email"] = Value::Null;
        order["customer"] = customer.clone();
        let rows = ShopifyMapper.map("orders", &order).unwrap();
        assert_eq!(
            rows.orders[0].email.as_deref(),
            Some("New@Example.com"),
            "{customer}"
        );

        let mut checkout = fixture("abandoned_checkout_38720911245502.json");
        checkout["customer"] = customer.clone();
        let rows = ShopifyMapper.map("abandoned_checkouts", &checkout).unwrap();
        assert_eq!(
            rows.events[0].email.as_deref(),
            Some("New@Example.com"),
            "{customer}"
        );

        let mut person = fixture("customer_7391920570558.json");
        person.as_object_mut().unwrap().remove("email");
        person
            .as_object_mut()
            .unwrap()
            .remove("defaultEmailAddress");
        for (k, v) in customer.as_object().unwrap() {
            if k != "id" {
                person[k] = v.clone();
            }
        }
        let rows = ShopifyMapper.map("customers", &person).unwrap();
        assert_eq!(rows.customers[0].email, "New@Example.com", "{customer}");
    }
}
