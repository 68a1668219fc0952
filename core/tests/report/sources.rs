//! The source registry: ratios over metrics no configured source emits are null, not zero.

use super::*;

fn register(c: &Connection, types: &[&str]) {
    for t in types {
        c.execute(
            "INSERT INTO growthflow_sources (source, type) VALUES (?1, ?1)",
            [t],
        )
        .unwrap();
    }
}

#[test]
fn ratios_over_metrics_no_configured_source_emits_are_null() {
    // A WooCommerce-only dataset: no Meta, GA4 or Shopify.
    let c = db();
    register(&c, &["woocommerce"]);
    order(
        &c,
        Order {
            source: "woocommerce",
            id: "1",
            customer: Some("a@x.com"),
            total: 40.0,
            index: Some(1),
            utm_campaign: Some("Spring"),
            ..Default::default()
        },
    );
    let j = build(&c, &window("2025-03-15", "2025-03-15"))
        .unwrap()
        .to_json();
    // Metrics of unconfigured platforms are 0 …
    assert_eq!(j["awareness"]["impressions"], json!(0));
    assert_eq!(j["conversion"]["abandoned_checkouts"], json!(0));
    // … and every ratio that uses one is unknown.
    assert_eq!(j["awareness"]["ctr"], json!(null));
    assert_eq!(j["awareness"]["cpm"], json!(null));
    assert_eq!(j["consideration"]["engagement_rate"], json!(null));
    assert_eq!(j["conversion"]["conversion_rate"], json!(null));
    assert_eq!(j["conversion"]["cart_abandonment_rate"], json!(null));
    assert_eq!(j["campaigns"][0]["roas"], json!(null));
    // Ratios over the store's own metrics are known, 0 included.
    assert_eq!(j["conversion"]["aov"], json!(40.0));
    assert_eq!(j["feedback"]["refund_rate"], json!(0.0));
    assert_eq!(j["retention"]["repeat_purchase_rate"], json!(0.0));

    // With Shopify, GA4 and Meta configured, those ratios are known (0 where nothing happened).
    register(&c, &["shopify", "ga4", "meta_ads"]);
    event(
        &c,
        Ev {
            source: "ga4",
            event_type: "sessions",
            quantity: 8.0,
            ..Default::default()
        },
    );
    event(
        &c,
        Ev {
            source: "meta_ads",
            event_type: "ad_insights",
            campaign: Some("Spring"),
            quantity: 100.0,
            value: Some(20.0),
            currency: Some("USD"),
            attributes: json!({"clicks": 3}),
            ..Default::default()
        },
    );
    let j = build(&c, &window("2025-03-15", "2025-03-15"))
        .unwrap()
        .to_json();
    assert_eq!(j["awareness"]["ctr"], json!(0.03));
    assert_eq!(j["consideration"]["engagement_rate"], json!(0.0));
    assert_eq!(j["conversion"]["conversion_rate"], json!(0.125));
    assert_eq!(j["conversion"]["cart_abandonment_rate"], json!(0.0));
    assert_eq!(j["campaigns"][0]["roas"], json!(2.0));
}
