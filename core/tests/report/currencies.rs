//! Money and currencies: exact sums, the currency's fallbacks and option, other currencies apart.

use super::*;

#[test]
fn money_is_summed_exactly_and_never_rounded() {
    let c = db();
    // 1.005 is 1.00499999999999989… as a float: float rounding would give 1.00.
    order(
        &c,
        Order {
            id: "1",
            customer: Some("a@x.com"),
            created_at: "2025-06-01T00:00:00Z",
            total: 1.005,
            index: Some(1),
            ..Default::default()
        },
    );
    // A thousand 0.1s: 100.00 exactly.
    for i in 0..1000 {
        let id = format!("m{i}");
        order(
            &c,
            Order {
                id: &id,
                created_at: "2025-06-02T00:00:00Z",
                total: 0.1,
                ..Default::default()
            },
        );
    }
    let r = build(&c, &window("2025-06-01", "2025-06-01")).unwrap();
    // Never rounded: exact to the record's decimals.
    assert_eq!(r.conversion.revenue.to_string(), "1.005");
    assert_eq!(r.to_json()["conversion"]["revenue"], json!(1.005));
    let r = build(&c, &window("2025-06-02", "2025-06-02")).unwrap();
    assert_eq!(r.conversion.revenue.to_string(), "100");
    assert_eq!(r.to_json()["conversion"]["revenue"], json!(100));
    assert_eq!(r.to_json()["conversion"]["aov"], json!(0.1));
}

#[test]
fn currency_falls_back_to_events_then_usd() {
    let c = db();
    event(
        &c,
        Ev {
            source: "ads",
            event_type: "ad_insights",
            date: "2025-03-05",
            quantity: 100.0,
            value: Some(5.0),
            currency: Some("eur"),
            ..Default::default()
        },
    );
    let r = build(&c, &ReportOptions::default()).unwrap();
    assert_eq!(r.currency, "EUR");
    // Orders win over events.
    order(
        &c,
        Order {
            id: "1",
            created_at: "2025-03-05T10:00:00Z",
            currency: "GBP",
            total: 1.0,
            ..Default::default()
        },
    );
    let r = build(&c, &ReportOptions::default()).unwrap();
    assert_eq!(r.currency, "GBP");
}

#[test]
fn currency_option_reports_that_currency_and_lists_the_others() {
    let conn = fixture();
    let r = build(
        &conn,
        &ReportOptions {
            currency: Some("eur".into()),
            ..window("2025-03-01", "2025-03-30")
        },
    )
    .unwrap();
    let j = r.to_json();
    assert_eq!(j["currency"], json!("EUR"));
    // Money in EUR only: order 1004 (10.00), its refund (2.50), the EUR attributed order (30.00).
    assert_eq!(j["conversion"]["orders"], json!(5));
    assert_eq!(j["conversion"]["revenue"], json!(10));
    assert_eq!(j["conversion"]["aov"], json!(10.0));
    assert_eq!(j["feedback"]["refunded_amount"], json!(2.5));
    assert_eq!(j["feedback"]["refund_rate"], json!(0.25));
    assert_eq!(j["retention"]["email_attributed_revenue"], json!(30));
    // 1004 has no customer: no EUR customer, so no EUR lifetime value.
    assert_eq!(j["retention"]["ltv"], json!(null));
    // No Meta spend in EUR: 0, and no impressions in EUR to price.
    assert_eq!(j["awareness"]["spend"], json!(0));
    assert_eq!(j["awareness"]["cpm"], json!(null));
    assert_eq!(j["awareness"]["impressions"], json!(17000));
    assert_eq!(
        j["other_currencies"],
        json!({"USD": {"orders": 4, "revenue": 120.1, "spend": 220, "refunds": 3,
                       "refunded_amount": 18.05, "email_attributed_revenue": 70.1}})
    );
    let spring = j["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["campaign"] == json!("Spring Sale"))
        .unwrap();
    assert_eq!(
        (
            &spring["campaign"],
            &spring["spend"],
            &spring["revenue"],
            &spring["roas"]
        ),
        (&json!("Spring Sale"), &json!(0), &json!(0), &json!(null))
    );

    let err = build(
        &conn,
        &ReportOptions {
            currency: Some("euro".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ReportError::InvalidCurrency(_)), "{err}");
}

#[test]
fn spend_in_another_currency_is_never_added() {
    let c = db();
    for (value, currency, impressions) in [
        (10.0, Some("USD"), 1000.0),
        (7.0, Some("EUR"), 500.0),
        (3.0, None, 100.0),
    ] {
        event(
            &c,
            Ev {
                source: "ads",
                event_type: "ad_insights",
                campaign: Some("Brand"),
                quantity: impressions,
                value: Some(value),
                currency,
                attributes: json!({"clicks": 1}),
                ..Default::default()
            },
        );
    }
    let j = build(&c, &window("2025-03-15", "2025-03-15"))
        .unwrap()
        .to_json();
    // The most frequent currency of the events with money; ties alphabetical.
    assert_eq!(j["currency"], json!("EUR"));
    assert_eq!(j["awareness"]["spend"], json!(7));
    assert_eq!(j["awareness"]["impressions"], json!(1600));
    // cpm over the EUR rows only: 7 / 500 × 1000.
    assert_eq!(j["awareness"]["cpm"], json!(14.0));
    assert_eq!(j["other_currencies"]["USD"]["spend"], json!(10));
    assert_eq!(j["other_currencies"]["unknown"]["spend"], json!(3));
    assert_eq!(j["campaigns"][0]["spend"], json!(7));
}
