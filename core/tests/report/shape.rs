//! The report's shape: key order, integer counts, empty and store-only datasets, a plain value.

use super::*;

const ORDER: &[(&str, &[&str])] = &[
    (
        "awareness",
        &[
            "impressions",
            "clicks",
            "ctr",
            "spend",
            "cpm",
            "sessions",
            "new_users",
        ],
    ),
    (
        "consideration",
        &[
            "engaged_sessions",
            "engagement_rate",
            "add_to_carts",
            "checkouts_started",
            "email_opens",
            "email_clicks",
        ],
    ),
    (
        "conversion",
        &[
            "orders",
            "revenue",
            "aov",
            "conversion_rate",
            "abandoned_checkouts",
            "cart_abandonment_rate",
        ],
    ),
    (
        "retention",
        &[
            "customers",
            "repeat_customers",
            "repeat_purchase_rate",
            "ltv",
            "email_attributed_revenue",
        ],
    ),
    (
        "feedback",
        &[
            "refunds",
            "refunded_amount",
            "refund_rate",
            "reported_purchases",
        ],
    ),
];

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[test]
fn json_key_order_matches_the_contract() {
    let conn = fixture();
    let json = build(&conn, &window("2025-03-01", "2025-03-30"))
        .unwrap()
        .to_json();
    assert_eq!(
        keys(&json),
        [
            "since",
            "until",
            "currency",
            "other_currencies",
            "awareness",
            "consideration",
            "conversion",
            "retention",
            "feedback",
            "campaigns"
        ]
    );
    for (section, fields) in ORDER {
        assert_eq!(keys(&json[section]), *fields, "{section}");
    }
    assert_eq!(
        keys(&json["feedback"]["reported_purchases"]),
        ["meta_ads", "ga4", "klaviyo", "store"]
    );
    for c in json["campaigns"].as_array().unwrap() {
        assert_eq!(
            keys(c),
            [
                "campaign",
                "channel",
                "spend",
                "impressions",
                "clicks",
                "sessions",
                "orders",
                "revenue",
                "roas"
            ]
        );
    }
    // And the serialised text keeps that order too (what `report --format json` prints).
    let text = serde_json::to_string(&json).unwrap();
    let pos = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(pos("since") < pos("until") && pos("until") < pos("currency"));
    assert!(pos("awareness") < pos("consideration") && pos("feedback") < pos("campaigns"));
}

#[test]
fn counts_are_integers_and_money_is_numeric() {
    let conn = fixture();
    let json = build(&conn, &window("2025-03-01", "2025-03-30"))
        .unwrap()
        .to_json();
    for (section, field) in [
        ("awareness", "impressions"),
        ("awareness", "clicks"),
        ("awareness", "sessions"),
        ("conversion", "orders"),
        ("retention", "customers"),
        ("feedback", "refunds"),
    ] {
        assert!(json[section][field].is_i64(), "{section}.{field}");
    }
    assert!(json["conversion"]["revenue"].is_number());
    assert!(json["awareness"]["spend"].is_number());
}

fn assert_empty_metrics(json: &Value) {
    for (section, fields) in ORDER {
        for field in *fields {
            let v = &json[section][field];
            match *field {
                "ctr"
                | "cpm"
                | "engagement_rate"
                | "aov"
                | "conversion_rate"
                | "cart_abandonment_rate"
                | "repeat_purchase_rate"
                | "ltv"
                | "refund_rate" => {
                    assert!(v.is_null(), "{section}.{field} = {v}")
                }
                "reported_purchases" => assert_eq!(
                    *v,
                    json!({"meta_ads": 0, "ga4": 0, "klaviyo": 0, "store": 0})
                ),
                _ => assert_eq!(*v, json!(0), "{section}.{field}"),
            }
        }
    }
}

#[test]
fn empty_dataset_gives_zeros_and_nulls_over_the_last_30_days_to_today() {
    let conn = db();
    let before = Utc::now().date_naive();
    let r = build(&conn, &ReportOptions::default()).unwrap();
    let after = Utc::now().date_naive();
    assert!(r.until == before || r.until == after);
    assert_eq!(r.since, r.until.checked_sub_days(Days::new(29)).unwrap());
    assert_eq!(r.currency, "USD");
    let json = r.to_json();
    assert_empty_metrics(&json);
    assert_eq!(json["campaigns"], json!([]));

    // Explicit windows over an empty dataset too.
    let r = build(&conn, &window("2024-01-01", "2024-12-31")).unwrap();
    assert_empty_metrics(&r.to_json());
    // Rendering an empty report never panics and shows the nulls.
    assert!(r.to_table().contains('-'));
    let csv = r.to_csv();
    assert!(csv.contains("awareness,ctr,\n"), "{csv}");
    let (_, campaigns) = csv_tables(&csv);
    assert_eq!(campaigns.len(), 1, "only the header: {csv}");
}

#[test]
fn store_only_dataset_has_zero_awareness_and_null_ratios_over_sessions() {
    let c = db();
    order(
        &c,
        Order {
            source: "woo",
            id: "1",
            customer: Some("a@x.com"),
            created_at: "2025-05-01T10:00:00Z",
            total: 40.00,
            index: Some(1),
            ..Default::default()
        },
    );
    order(
        &c,
        Order {
            source: "woo",
            id: "2",
            customer: Some("a@x.com"),
            created_at: "2025-05-02T10:00:00Z",
            total: 60.00,
            index: Some(2),
            ..Default::default()
        },
    );
    let r = build(&c, &ReportOptions::default()).unwrap();
    assert_eq!((r.since, r.until), (d("2025-04-03"), d("2025-05-02")));
    let j = r.to_json();
    assert_eq!(
        j["awareness"],
        json!({"impressions": 0, "clicks": 0, "ctr": null, "spend": 0, "cpm": null,
               "sessions": 0, "new_users": 0})
    );
    assert_eq!(
        j["consideration"],
        json!({"engaged_sessions": 0, "engagement_rate": null, "add_to_carts": 0,
               "checkouts_started": 0, "email_opens": 0, "email_clicks": 0})
    );
    assert_eq!(
        j["conversion"],
        json!({"orders": 2, "revenue": 100, "aov": 50.0, "conversion_rate": null,
               "abandoned_checkouts": 0, "cart_abandonment_rate": 0.0})
    );
    assert_eq!(
        j["retention"],
        json!({"customers": 1, "repeat_customers": 1, "repeat_purchase_rate": 1.0, "ltv": 100.0,
               "email_attributed_revenue": 0})
    );
    assert_eq!(
        j["feedback"],
        json!({"refunds": 0, "refunded_amount": 0, "refund_rate": 0.0,
               "reported_purchases": {"meta_ads": 0, "ga4": 0, "klaviyo": 0, "store": 2}})
    );
    assert_eq!(j["campaigns"], json!([]));
}

#[test]
fn report_is_a_plain_value() {
    // Report is cloneable and comparable, so callers can cache and diff reports.
    let conn = fixture();
    let a: Report = build(&conn, &window("2025-03-01", "2025-03-30")).unwrap();
    let b = a.clone();
    assert_eq!(a, b);
}
