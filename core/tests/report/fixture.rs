//! The hand-made dataset most tests read and its metrics worked out by hand; apart for its size.

use super::*;

/// The full fixture. The report window used for the hand computations is 2025-03-01 ..= 2025-03-30.
pub(crate) fn fixture() -> Connection {
    let c = db();

    // ---- Orders (two stores: "shop" = Shopify, "woo" = WooCommerce) ----
    // alice: first order before the window, second inside → repeat customer.
    order(
        &c,
        Order {
            source: "shop",
            id: "1001",
            customer: Some("alice@x.com"),
            created_at: "2025-02-10T10:00:00Z",
            total: 100.00,
            index: Some(1),
            ..Default::default()
        },
    );
    order(
        &c,
        Order {
            source: "shop",
            id: "1002",
            customer: Some("alice@x.com"),
            created_at: "2025-03-05T14:22:31Z",
            total: 50.10,
            index: Some(2),
            utm_campaign: Some("Spring Sale"),
            channel: Some("paid_social"),
            ..Default::default()
        },
    );
    // bob: first order exactly at the start of the window; second one the day after the window.
    order(
        &c,
        Order {
            source: "woo",
            id: "2001",
            customer: Some("bob@x.com"),
            created_at: "2025-03-01T00:00:00Z",
            total: 19.99,
            index: Some(1),
            utm_campaign: Some("spring sale "),
            channel: Some("paid_social"),
            ..Default::default()
        },
    );
    order(
        &c,
        Order {
            source: "shop",
            id: "1005",
            customer: Some("bob@x.com"),
            created_at: "2025-03-31T00:00:00Z",
            total: 40.00,
            index: Some(2),
            ..Default::default()
        },
    );
    // carol: first order at the last second of the window, second (repeat) inside it.
    order(
        &c,
        Order {
            source: "woo",
            id: "2002",
            customer: Some("carol@x.com"),
            created_at: "2025-03-30T23:59:59Z",
            total: 30.01,
            index: Some(1),
            utm_campaign: Some("Newsletter March"),
            channel: Some("email"),
            ..Default::default()
        },
    );
    order(
        &c,
        Order {
            source: "shop",
            id: "1006",
            customer: Some("carol@x.com"),
            created_at: "2025-03-20T09:00:00Z",
            total: 20.00,
            index: Some(2),
            utm_campaign: Some("Google Brand"),
            channel: Some("paid_search"),
            ..Default::default()
        },
    );
    // An order without email, in EUR.
    order(
        &c,
        Order {
            source: "shop",
            id: "1004",
            customer: None,
            currency: "EUR",
            created_at: "2025-03-15T08:00:00Z",
            total: 10.00,
            ..Default::default()
        },
    );
    // Cancelled and test orders: excluded everywhere.
    order(
        &c,
        Order {
            source: "shop",
            id: "1003",
            customer: Some("dave@x.com"),
            created_at: "2025-03-10T10:00:00Z",
            total: 500.00,
            cancelled: true,
            utm_campaign: Some("Spring Sale"),
            channel: Some("paid_social"),
            ..Default::default()
        },
    );
    order(
        &c,
        Order {
            source: "woo",
            id: "2003",
            customer: Some("erin@x.com"),
            created_at: "2025-03-12T10:00:00Z",
            total: 75.00,
            test: true,
            ..Default::default()
        },
    );
    // frank: one second before the window.
    order(
        &c,
        Order {
            source: "woo",
            id: "2000",
            customer: Some("frank@x.com"),
            created_at: "2025-02-28T23:59:59Z",
            total: 60.00,
            index: Some(1),
            ..Default::default()
        },
    );

    // ---- GA4 daily rows ----
    let ga4 = |c: &Connection,
               t: &'static str,
               date: &'static str,
               campaign: Option<&'static str>,
               channel: Option<&'static str>,
               q: f64| {
        event(
            c,
            Ev {
                source: "web",
                event_type: t,
                date,
                campaign,
                channel,
                quantity: q,
                ..Default::default()
            },
        );
    };
    ga4(
        &c,
        "sessions",
        "2025-03-01",
        Some("(direct)"),
        Some("direct"),
        100.0,
    );
    ga4(
        &c,
        "sessions",
        "2025-03-05",
        Some("Spring Sale"),
        Some("paid_social"),
        40.0,
    );
    ga4(
        &c,
        "sessions",
        "2025-03-06",
        Some("Google Brand"),
        Some("paid_search"),
        30.0,
    );
    ga4(
        &c,
        "sessions",
        "2025-03-07",
        Some("Google Brand"),
        Some("organic_search"),
        5.0,
    );
    ga4(
        &c,
        "sessions",
        "2025-03-07",
        Some("(not set)"),
        Some("organic_search"),
        25.0,
    );
    ga4(
        &c,
        "sessions",
        "2025-03-30",
        Some("(organic)"),
        Some("organic_search"),
        5.0,
    );
    ga4(
        &c,
        "sessions",
        "2025-02-28",
        Some("Spring Sale"),
        Some("paid_social"),
        1000.0,
    );
    ga4(
        &c,
        "sessions",
        "2025-03-31",
        Some("(direct)"),
        Some("direct"),
        1000.0,
    );
    ga4(&c, "new_users", "2025-03-02", None, None, 80.0);
    ga4(&c, "new_users", "2025-02-20", None, None, 99.0);
    ga4(&c, "engaged_sessions", "2025-03-02", None, None, 120.0);
    ga4(&c, "add_to_carts", "2025-03-03", None, None, 30.0);
    ga4(&c, "checkouts_started", "2025-03-03", None, None, 12.0);
    event(
        &c,
        Ev {
            source: "web",
            event_type: "reported_purchases",
            date: "2025-03-05",
            quantity: 5.0,
            value: Some(260.0),
            attributes: json!({"platform": "ga4"}),
            ..Default::default()
        },
    );

    // ---- Meta Ads daily insights ----
    event(
        &c,
        Ev {
            source: "ads",
            event_type: "ad_insights",
            date: "2025-03-05",
            channel: Some("paid_social"),
            campaign: Some("Spring Sale"),
            quantity: 10000.0,
            value: Some(150.55),
            currency: Some("USD"),
            attributes: json!({"clicks": 200}),
        },
    );
    event(
        &c,
        Ev {
            source: "ads",
            event_type: "ad_insights",
            date: "2025-03-06",
            channel: Some("paid_social"),
            campaign: Some("SPRING SALE"),
            quantity: 5000.0,
            value: Some(49.45),
            currency: Some("USD"),
            attributes: json!({"clicks": "100"}),
        },
    );
    event(
        &c,
        Ev {
            source: "ads",
            event_type: "ad_insights",
            date: "2025-03-06",
            channel: Some("paid_social"),
            campaign: Some("Retargeting Q1"),
            quantity: 2000.0,
            value: Some(20.00),
            currency: Some("USD"),
            attributes: json!({"clicks": 10}),
        },
    );
    event(
        &c,
        Ev {
            source: "ads",
            event_type: "ad_insights",
            date: "2025-02-27",
            channel: Some("paid_social"),
            campaign: Some("Old Campaign"),
            quantity: 99999.0,
            value: Some(999.0),
            attributes: json!({"clicks": 999}),
            ..Default::default()
        },
    );
    for (date, q) in [
        ("2025-03-05", 4.0),
        ("2025-03-06", 2.0),
        ("2025-03-31", 10.0),
    ] {
        event(
            &c,
            Ev {
                source: "ads",
                event_type: "reported_purchases",
                date,
                quantity: q,
                value: Some(q * 50.0),
                attributes: json!({"platform": "meta_ads"}),
                ..Default::default()
            },
        );
    }

    // ---- Klaviyo ----
    for date in ["2025-03-02", "2025-03-03", "2025-03-30", "2025-03-31"] {
        event(
            &c,
            Ev {
                source: "email",
                event_type: "email_opened",
                date,
                channel: Some("email"),
                ..Default::default()
            },
        );
    }
    for date in ["2025-03-02", "2025-03-29", "2025-02-01"] {
        event(
            &c,
            Ev {
                source: "email",
                event_type: "email_clicked",
                date,
                channel: Some("email"),
                ..Default::default()
            },
        );
    }
    for (date, value, currency, attributed) in [
        ("2025-03-05", 50.10, "USD", true),
        ("2025-03-20", 20.00, "USD", true),
        ("2025-03-21", 99.00, "USD", false),
        ("2025-02-28", 1000.00, "USD", true),
        // In EUR: counted as a claim, its money listed apart.
        ("2025-03-06", 30.00, "EUR", true),
    ] {
        event(
            &c,
            Ev {
                source: "email",
                event_type: "placed_order",
                date,
                value: Some(value),
                currency: Some(currency),
                attributes: json!({"attributed": attributed}),
                ..Default::default()
            },
        );
    }

    // ---- Shopify abandoned checkouts ----
    for date in ["2025-03-04", "2025-03-08", "2025-04-01"] {
        event(
            &c,
            Ev {
                source: "shop",
                event_type: "checkout_abandoned",
                date,
                value: Some(80.0),
                ..Default::default()
            },
        );
    }

    // ---- Refunds ----
    let refund =
        |c: &Connection, source: &'static str, date: &'static str, value: f64, order_id: Value| {
            event(
                c,
                Ev {
                    source,
                    event_type: "refund",
                    date,
                    value: Some(value),
                    attributes: json!({"order_id": order_id}),
                    ..Default::default()
                },
            );
        };
    refund(&c, "shop", "2025-03-10", 10.05, json!("1002")); // valid order → counted
    refund(&c, "shop", "2025-03-11", 500.00, json!("1003")); // cancelled order → not counted
    refund(&c, "woo", "2025-03-12", 5.00, json!(2001)); // valid, id as a JSON number → counted
    refund(&c, "shop", "2025-03-02", 3.00, json!("1001")); // order before the window, refund inside → counted
    refund(&c, "woo", "2025-03-13", 7.00, json!("1002")); // no woo order 1002 → not counted
    refund(&c, "woo", "2025-03-14", 75.00, json!("2003")); // test order → not counted
    refund(&c, "shop", "2025-04-02", 20.00, json!("1002")); // after the window → not counted
                                                            // The EUR order's refund carries no currency (as WooCommerce's refunds): it is in its order's.
    refund(&c, "shop", "2025-03-16", 2.50, json!("1004")); // counted, its money under EUR

    c
}

/// Every metric of the fixture over 2025-03-01 ..= 2025-03-30, worked out by hand.
fn expected_full() -> Value {
    json!({
        "since": "2025-03-01",
        "until": "2025-03-30",
        // Valid orders in the window: 4 in USD (1002, 2001, 2002, 1006), 1 in EUR (1004).
        "currency": "USD",
        // What the USD report leaves out: the EUR order 1004, its refund, the EUR attributed order.
        "other_currencies": {
            "EUR": {"orders": 1, "revenue": 10, "spend": 0, "refunds": 1, "refunded_amount": 2.5,
                    "email_attributed_revenue": 30}
        },
        "awareness": {
            // Meta rows in the window: 10000 + 5000 + 2000.
            "impressions": 17000,
            // 200 + "100" (a string, as Meta sends it) + 10.
            "clicks": 310,
            // 310 / 17000, unrounded
            "ctr": 0.018235294117647058,
            // 150.55 + 49.45 + 20.00
            "spend": 220,
            // 220 / 17000 × 1000
            "cpm": 12.941176470588236,
            // 100 + 40 + 30 + 5 + 25 + 5 (02-28 and 03-31 rows are outside)
            "sessions": 205,
            "new_users": 80
        },
        "consideration": {
            "engaged_sessions": 120,
            // 120 / 205
            "engagement_rate": 0.5853658536585366,
            "add_to_carts": 30,
            "checkouts_started": 12,
            // 03-02, 03-03, 03-30 (03-31 is outside)
            "email_opens": 3,
            // 03-02, 03-29 (02-01 is outside)
            "email_clicks": 2
        },
        "conversion": {
            // 1002 (50.10), 2001 (19.99, first second), 2002 (30.01, last second), 1006 (20.00) in
            // USD, and 1004 (10.00) in EUR: counted, its money not in revenue.
            "orders": 5,
            // 50.10 + 19.99 + 30.01 + 20.00
            "revenue": 120.10,
            // 120.10 / the 4 USD orders
            "aov": 30.025,
            // 5 / 205
            "conversion_rate": 0.024390243902439025,
            // 03-04, 03-08 (04-01 is outside)
            "abandoned_checkouts": 2,
            // 2 / (2 + 5)
            "cart_abandonment_rate": 0.2857142857142857
        },
        "retention": {
            // alice, bob, carol (1004 has no customer)
            "customers": 3,
            // alice (1002 is her 2nd), carol (1006 is her 2nd); bob's 2nd is after the window
            "repeat_customers": 2,
            // 2 / 3
            "repeat_purchase_rate": 0.6666666666666666,
            // alice 100.00 + 50.10, bob 19.99 (1005 is after until), carol 30.01 + 20.00 = 220.10 / 3
            "ltv": 73.36666666666666,
            // attributed USD placed orders in the window: 50.10 + 20.00
            "email_attributed_revenue": 70.10
        },
        "feedback": {
            // shop/1002 10.05, woo/2001 5.00, shop/1001 3.00 (USD), shop/1004 2.50 (EUR)
            "refunds": 4,
            "refunded_amount": 18.05,
            // 18.05 / 120.10
            "refund_rate": 0.15029142381348876,
            "reported_purchases": {
                // 4 + 2 (03-31 is outside)
                "meta_ads": 6,
                "ga4": 5,
                // attributed placed orders in the window, any currency
                "klaviyo": 3,
                "store": 5
            }
        },
        "campaigns": [
            {
                // Spellings: "Spring Sale" ×3 (Meta, GA4, order 1002), "SPRING SALE" ×1, "spring sale " ×1.
                "campaign": "Spring Sale",
                // Meta reports it.
                "channel": "paid_social",
                // 150.55 + 49.45
                "spend": 200,
                "impressions": 15000,
                "clicks": 300,
                "sessions": 40,
                // 1002 (50.10) + 2001 (19.99); the cancelled 1003 does not count
                "orders": 2,
                "revenue": 70.09,
                // 70.09 / 200, unrounded
                "roas": 0.35045
            },
            {
                "campaign": "Newsletter March",
                // No Meta, no GA4: the channel of its order.
                "channel": "email",
                "spend": 0, "impressions": 0, "clicks": 0, "sessions": 0,
                "orders": 1, "revenue": 30.01,
                "roas": null
            },
            {
                "campaign": "Google Brand",
                // GA4: 30 paid_search sessions beat 5 organic_search ones.
                "channel": "paid_search",
                "spend": 0, "impressions": 0, "clicks": 0, "sessions": 35,
                "orders": 1, "revenue": 20,
                "roas": null
            },
            {
                "campaign": "Retargeting Q1",
                "channel": "paid_social",
                "spend": 20, "impressions": 2000, "clicks": 10, "sessions": 0,
                "orders": 0, "revenue": 0,
                // 0 / 20
                "roas": 0.0
            }
        ]
    })
}

#[test]
fn full_report_matches_hand_computation() {
    let conn = fixture();
    let opts = window("2025-03-01", "2025-03-30");
    let want = expected_full();
    for (store, report) in each(&conn, &opts) {
        let got = report.unwrap().to_json();
        // Section by section first, for readable failures.
        for key in [
            "since",
            "until",
            "currency",
            "other_currencies",
            "awareness",
            "consideration",
            "conversion",
            "retention",
            "feedback",
        ] {
            assert_eq!(got[key], want[key], "{store}: section {key}");
        }
        let got_campaigns = got["campaigns"].as_array().unwrap();
        let want_campaigns = want["campaigns"].as_array().unwrap();
        for (i, (g, w)) in got_campaigns.iter().zip(want_campaigns).enumerate() {
            assert_eq!(g, w, "{store}: campaign #{i}");
        }
        assert_eq!(
            got_campaigns.len(),
            want_campaigns.len(),
            "{store}: {got_campaigns:#?}"
        );
        assert_eq!(got, want, "{store}");
    }
}

#[test]
fn struct_fields_hold_exact_values() {
    let conn = fixture();
    let r = build(&conn, &window("2025-03-01", "2025-03-30")).unwrap();
    assert_eq!(r.conversion.revenue.to_string(), "120.1");
    assert_eq!(r.awareness.spend.to_string(), "220");
    assert_eq!(r.retention.ltv, Some(220.1 / 3.0));
    assert_eq!(r.feedback.refunded_amount.to_string(), "18.05");
    assert_eq!(r.other_currencies["EUR"].revenue.to_string(), "10");
    assert_eq!(r.campaigns[0].revenue.to_string(), "70.09");
}
