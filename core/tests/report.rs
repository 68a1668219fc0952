//! The Growth Flow report against a hand-made dataset whose every number is worked out below by hand.
//!
//! Every dataset is written to SQLite; [`build`] also copies it, row for row, into a fresh schema of
//! the PostgreSQL test server (see `growthflow_core::destination::postgres::testing`) and checks that
//! the report PostgreSQL computes is the same value, so every assertion below holds for both stores.
//! Where no server answers, the PostgreSQL half is skipped with a visible note.

use chrono::{Days, NaiveDate, Utc};
use growthflow_core::destination::postgres::testing::TestSchema;
use growthflow_core::destination::postgres::{PostgresDestination, PostgresTarget};
use growthflow_core::report::{build_report, Report, ReportError, ReportOptions};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::str::FromStr;

const SCHEMA: &str = include_str!("../src/destination/migrations/0001_init.sql");
const FUNNEL_DAILY: &str = include_str!("../src/destination/migrations/0003_funnel_daily.sql");
/// The report reads the rollups (and their triggers note the rows written below).
const ROLLUPS: &str = include_str!("../src/destination/migrations/0008_report_rollups.sql");

fn db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(FUNNEL_DAILY).unwrap();
    conn.execute_batch(ROLLUPS).unwrap();
    conn
}

/// Copy the journey model of `conn` (orders, events, the source registry) into `schema`, row for row
/// (`json_populate_record` turns SQLite's text, 0/1 and REAL into the schema's types), and return a
/// client reading it.
fn copy_to_postgres(conn: &Connection, schema: &TestSchema) -> postgres::Client {
    drop(schema.open()); // Creates and migrates the schema.
    let mut client = schema.client();
    for table in ["orders", "journey_events", "growthflow_sources"] {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let names: Vec<String> = stmt.column_names().iter().map(|n| n.to_string()).collect();
        let rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut m = serde_json::Map::new();
                for (i, n) in names.iter().enumerate() {
                    let v = match r.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(x) => json!(x),
                        ValueRef::Real(x) => json!(x),
                        ValueRef::Text(t) if n == "attributes" => {
                            serde_json::from_slice(t).unwrap()
                        }
                        ValueRef::Text(t) => json!(std::str::from_utf8(t).unwrap()),
                        ValueRef::Blob(_) => unreachable!("no blobs in the journey model"),
                    };
                    m.insert(n.clone(), v);
                }
                Ok(Value::Object(m).to_string())
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for row in rows {
            client
                .execute(
                    &format!(
                        "INSERT INTO {table} SELECT * FROM json_populate_record(NULL::{table}, $1::text::json)"
                    ),
                    &[&row],
                )
                .unwrap();
        }
    }
    // As the rebuild would have, in the owner's session (a read-only reader could not).
    let mut tx = client.transaction().unwrap();
    growthflow_core::report::refresh_rollups_postgres(&mut tx).unwrap();
    tx.commit().unwrap();
    client
}

/// The report of `conn` computed by each store: SQLite's, then (where a test server answers)
/// PostgreSQL's over a copy of the same rows.
fn each(
    conn: &Connection,
    opts: &ReportOptions,
) -> Vec<(&'static str, Result<Report, ReportError>)> {
    let mut out = vec![("sqlite", build_report(conn, opts))];
    if let Some(schema) = TestSchema::new("report") {
        // A plain #[test] thread runs no async runtime: the blocking client may run here.
        let mut client = copy_to_postgres(conn, &schema);
        let pg = build_report(&mut client, opts);
        out.push(("postgres", pg));
    }
    out
}

/// The report of `conn` (SQLite's), after checking that PostgreSQL computes exactly the same report
/// (or the same error) from the same rows.
fn build(conn: &Connection, opts: &ReportOptions) -> Result<Report, ReportError> {
    let mut all = each(conn, opts).into_iter();
    let (_, sqlite) = all.next().unwrap();
    for (store, r) in all {
        match (&sqlite, &r) {
            (Ok(a), Ok(b)) => {
                assert_eq!(b, a, "{store}'s report differs from SQLite's for {opts:?}")
            }
            (Err(a), Err(b)) => assert_eq!(
                b.to_string(),
                a.to_string(),
                "{store}'s error differs from SQLite's for {opts:?}"
            ),
            _ => panic!("{store} gave {r:?} where SQLite gave {sqlite:?} for {opts:?}"),
        }
    }
    sqlite
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

struct Order<'a> {
    source: &'a str,
    id: &'a str,
    customer: Option<&'a str>,
    created_at: &'a str,
    currency: &'a str,
    total: f64,
    cancelled: bool,
    test: bool,
    utm_campaign: Option<&'a str>,
    channel: Option<&'a str>,
    index: Option<i64>,
}

impl Default for Order<'_> {
    fn default() -> Self {
        Order {
            source: "shop",
            id: "0",
            customer: None,
            created_at: "2025-03-15T12:00:00Z",
            currency: "USD",
            total: 0.0,
            cancelled: false,
            test: false,
            utm_campaign: None,
            channel: Some("direct"),
            index: None,
        }
    }
}

fn order(conn: &Connection, o: Order<'_>) {
    conn.execute(
        "INSERT INTO orders (source, order_id, customer_id, email, created_at, currency, total_price,
                             cancelled, test, utm_campaign, channel, customer_order_index)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            o.source,
            o.id,
            o.customer,
            o.created_at,
            o.currency,
            o.total,
            o.cancelled as i64,
            o.test as i64,
            o.utm_campaign,
            o.channel,
            o.index
        ],
    )
    .unwrap();
}

struct Ev<'a> {
    source: &'a str,
    event_type: &'a str,
    date: &'a str,
    channel: Option<&'a str>,
    campaign: Option<&'a str>,
    quantity: f64,
    value: Option<f64>,
    currency: Option<&'a str>,
    attributes: Value,
}

impl Default for Ev<'_> {
    fn default() -> Self {
        Ev {
            source: "x",
            event_type: "",
            date: "2025-03-15",
            channel: None,
            campaign: None,
            quantity: 1.0,
            value: None,
            currency: None,
            attributes: json!({}),
        }
    }
}

fn event(conn: &Connection, e: Ev<'_>) {
    let id: i64 = conn
        .query_row("SELECT COUNT(*) FROM journey_events", [], |r| r.get(0))
        .unwrap();
    let stage = match e.event_type {
        "ad_insights" | "sessions" | "new_users" => "awareness",
        "refund" | "reported_purchases" => "feedback",
        "checkout_abandoned" | "placed_order" => "conversion",
        _ => "consideration",
    };
    conn.execute(
        "INSERT INTO journey_events (event_id, source, stream, occurred_at, date, stage, event_type,
                                     channel, campaign, quantity, value, currency, attributes)
         VALUES (?1, ?2, 's', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            format!("ev{id}"),
            e.source,
            format!("{}T00:00:00Z", e.date),
            e.date,
            stage,
            e.event_type,
            e.channel,
            e.campaign,
            e.quantity,
            e.value,
            e.currency,
            e.attributes.to_string()
        ],
    )
    .unwrap();
}

fn window(since: &str, until: &str) -> ReportOptions {
    ReportOptions {
        since: Some(d(since)),
        until: Some(d(until)),
        currency: None,
    }
}

/// The full fixture. The report window used for the hand computations is 2025-03-01 ..= 2025-03-30.
fn fixture() -> Connection {
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
fn window_boundaries_are_inclusive() {
    let conn = fixture();
    // Only bob's order at 2025-03-01T00:00:00Z, the GA4 "(direct)" row and nothing else that day.
    let r = build(&conn, &window("2025-03-01", "2025-03-01")).unwrap();
    assert_eq!(r.conversion.orders, 1);
    assert_eq!(r.conversion.revenue.to_string(), "19.99");
    assert_eq!(r.awareness.sessions, 100);
    // Only carol's order at 2025-03-30T23:59:59Z, the GA4 "(organic)" row and one email open.
    let r = build(&conn, &window("2025-03-30", "2025-03-30")).unwrap();
    assert_eq!(r.conversion.orders, 1);
    assert_eq!(r.conversion.revenue.to_string(), "30.01");
    assert_eq!(r.awareness.sessions, 5);
    assert_eq!(r.consideration.email_opens, 1);
    // The day before and the day after the main window hold frank's and bob's orders.
    let r = build(&conn, &window("2025-02-28", "2025-02-28")).unwrap();
    assert_eq!(r.conversion.orders, 1);
    assert_eq!(r.conversion.revenue.to_string(), "60");
    let r = build(&conn, &window("2025-03-31", "2025-03-31")).unwrap();
    assert_eq!(r.conversion.orders, 1);
    assert_eq!(r.conversion.revenue.to_string(), "40");
    assert_eq!(r.feedback.reported_purchases.meta_ads, 10);
}

#[test]
fn default_window_is_the_last_30_days_of_data() {
    let conn = fixture();
    // Latest data: the refund dated 2025-04-02 (later than any order) → 2025-03-04 ..= 2025-04-02.
    let r = build(&conn, &ReportOptions::default()).unwrap();
    assert_eq!((r.since, r.until), (d("2025-03-04"), d("2025-04-02")));
    // Valid orders in it: 1002 50.10, 1004 10.00, 1006 20.00, 2002 30.01, 1005 40.00.
    assert_eq!(r.conversion.orders, 5);
    // (1004's 10.00 is in EUR, left out of the USD revenue.)
    assert_eq!(r.conversion.revenue.to_string(), "140.11");

    // Orders only: the latest order's date ends the window; a day 30 days back is outside.
    let c = db();
    for (id, at) in [
        ("1", "2025-01-01T12:00:00Z"),
        ("2", "2025-01-02T00:00:00Z"),
        ("3", "2025-01-31T23:00:00Z"),
    ] {
        order(
            &c,
            Order {
                id,
                created_at: at,
                total: 1.0,
                ..Default::default()
            },
        );
    }
    let r = build(&c, &ReportOptions::default()).unwrap();
    assert_eq!((r.since, r.until), (d("2025-01-02"), d("2025-01-31")));
    assert_eq!(r.conversion.orders, 2);
}

#[test]
fn half_open_windows_and_backwards_windows() {
    let conn = fixture();
    let r = build(
        &conn,
        &ReportOptions {
            since: None,
            until: Some(d("2025-03-30")),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((r.since, r.until), (d("2025-03-01"), d("2025-03-30")));
    let r = build(
        &conn,
        &ReportOptions {
            since: Some(d("2025-03-20")),
            until: None,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((r.since, r.until), (d("2025-03-20"), d("2025-04-02")));
    // A since after the data ends still gives a (one-day) window, not an error.
    let r = build(
        &conn,
        &ReportOptions {
            since: Some(d("2026-01-01")),
            until: None,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((r.since, r.until), (d("2026-01-01"), d("2026-01-01")));
    assert_eq!(r.conversion.orders, 0);
    let err = build(&conn, &window("2025-03-30", "2025-03-01")).unwrap_err();
    assert!(matches!(err, ReportError::InvalidWindow { .. }), "{err}");
}

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
fn campaign_channel_falls_back_and_placeholders_are_ignored() {
    let c = db();
    // Orders only: most common channel of its orders.
    for (id, ch) in [
        ("1", "referral"),
        ("2", "referral"),
        ("3", "organic_social"),
    ] {
        order(
            &c,
            Order {
                id,
                utm_campaign: Some("Influencer"),
                channel: Some(ch),
                total: 10.0,
                ..Default::default()
            },
        );
    }
    // Placeholders and blanks never become campaigns, in any source.
    order(
        &c,
        Order {
            id: "4",
            utm_campaign: Some("(not set)"),
            total: 10.0,
            ..Default::default()
        },
    );
    order(
        &c,
        Order {
            id: "5",
            utm_campaign: Some("  "),
            total: 10.0,
            ..Default::default()
        },
    );
    for p in [
        "(direct)",
        "(organic)",
        "(referral)",
        "(not set)",
        "(Not Set)",
    ] {
        event(
            &c,
            Ev {
                event_type: "sessions",
                campaign: Some(p),
                channel: Some("direct"),
                quantity: 3.0,
                ..Default::default()
            },
        );
    }
    // GA4 campaign without a usable channel, with orders of another → orders decide.
    event(
        &c,
        Ev {
            event_type: "sessions",
            campaign: Some("Mystery"),
            channel: None,
            quantity: 7.0,
            ..Default::default()
        },
    );
    order(
        &c,
        Order {
            id: "6",
            utm_campaign: Some("mystery"),
            channel: Some("email"),
            total: 5.0,
            ..Default::default()
        },
    );
    // A campaign nobody can place.
    event(
        &c,
        Ev {
            event_type: "sessions",
            campaign: Some("Lonely"),
            channel: None,
            quantity: 1.0,
            ..Default::default()
        },
    );
    let r = build(&c, &window("2025-03-01", "2025-03-30")).unwrap();
    let got: Vec<(&str, &str, i64, i64)> = r
        .campaigns
        .iter()
        .map(|c| {
            (
                c.campaign.as_str(),
                c.channel.as_str(),
                c.orders,
                c.sessions,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("Influencer", "referral", 3, 0),
            ("Mystery", "email", 1, 7),
            ("Lonely", "other", 0, 1),
        ]
    );
    assert_eq!(r.awareness.sessions, 15 + 7 + 1);
}

/// The CSV's two tables: the metrics' `section,metric,value` rows, then, after one empty line, the
/// campaigns' rows.
fn csv_tables(csv: &str) -> (Vec<&str>, Vec<Vec<String>>) {
    let (metrics, campaigns) = csv
        .split_once("\n\n")
        .unwrap_or_else(|| panic!("two tables split by an empty line in\n{csv}"));
    let campaigns = csv::Reader::from_reader(campaigns.as_bytes());
    let mut reader = campaigns;
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = vec![header];
    for record in reader.records() {
        rows.push(record.unwrap().iter().map(str::to_string).collect());
    }
    (metrics.lines().collect(), rows)
}

#[test]
fn csv_has_a_metrics_table_and_one_row_per_campaign() {
    let conn = fixture();
    let r = build(&conn, &window("2025-03-01", "2025-03-30")).unwrap();
    let csv = r.to_csv();
    let (lines, campaigns) = csv_tables(&csv);
    assert_eq!(lines[0], "section,metric,value");
    for line in [
        "report,since,2025-03-01",
        "report,until,2025-03-30",
        "report,currency,USD",
        "awareness,impressions,17000",
        "awareness,clicks,310",
        "awareness,ctr,0.018235294117647058",
        "awareness,spend,220",
        "awareness,cpm,12.941176470588236",
        "awareness,sessions,205",
        "consideration,engagement_rate,0.5853658536585366",
        "conversion,orders,5",
        "conversion,revenue,120.1",
        "conversion,aov,30.025",
        "conversion,cart_abandonment_rate,0.2857142857142857",
        "retention,repeat_purchase_rate,0.6666666666666666",
        "retention,ltv,73.36666666666666",
        "retention,email_attributed_revenue,70.1",
        "feedback,refunds,4",
        "feedback,refunded_amount,18.05",
        "feedback,refund_rate,0.15029142381348876",
        "feedback,reported_purchases.meta_ads,6",
        "feedback,reported_purchases.ga4,5",
        "feedback,reported_purchases.klaviyo,3",
        "feedback,reported_purchases.store,5",
        "other_currencies,EUR.orders,1",
        "other_currencies,EUR.revenue,10",
        "other_currencies,EUR.refunded_amount,2.5",
        "other_currencies,EUR.email_attributed_revenue,30",
    ] {
        assert!(lines.contains(&line), "missing {line:?} in\n{csv}");
    }
    // 3 report rows + 31 metrics + 1 other currency × 6 fields, plus the header.
    assert_eq!(lines.len(), 1 + 3 + 31 + 6);
    assert!(lines.iter().all(|l| l.split(',').count() == 3), "{csv}");

    assert_eq!(
        campaigns[0],
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
    // One row per campaign, in the JSON's order, each with every column.
    assert_eq!(campaigns.len(), 1 + 4, "{csv}");
    let json = r.to_json();
    let names: Vec<&str> = json["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["campaign"].as_str().unwrap())
        .collect();
    assert_eq!(
        campaigns[1..]
            .iter()
            .map(|c| c[0].as_str())
            .collect::<Vec<_>>(),
        names
    );
    let row = |name: &str| campaigns.iter().find(|c| c[0] == name).unwrap().clone();
    let spring = row("Spring Sale");
    assert_eq!(spring[1], "paid_social");
    assert_eq!(spring[2], "200");
    assert_eq!(spring[7], "70.09");
    assert_eq!(spring[8], "0.35045");
    let brand = row("Google Brand");
    assert_eq!(brand[5], "35");
    assert_eq!(brand[8], "", "unknown roas is empty");
}

#[test]
fn csv_quotes_awkward_campaign_names() {
    let c = db();
    order(
        &c,
        Order {
            id: "1",
            utm_campaign: Some("Sale, \"50%\" off\nnow"),
            total: 10.0,
            ..Default::default()
        },
    );
    let csv = build(&c, &window("2025-03-01", "2025-03-30"))
        .unwrap()
        .to_csv();
    assert!(csv.contains("\n\"Sale, \"\"50%\"\" off\nnow\","), "{csv}");
    let (_, campaigns) = csv_tables(&csv);
    assert_eq!(campaigns.len(), 2, "{csv}");
    assert_eq!(campaigns[1][0], "Sale, \"50%\" off\nnow");
    assert_eq!(campaigns[1][6], "1");
    assert_eq!(campaigns[1][7], "10");
}

#[test]
fn table_shows_every_stage_and_the_campaigns() {
    let conn = fixture();
    let table = build(&conn, &window("2025-03-01", "2025-03-30"))
        .unwrap()
        .to_table();
    assert!(table.contains("2025-03-01 .. 2025-03-30 (USD)"), "{table}");
    for heading in [
        "AWARENESS",
        "CONSIDERATION",
        "CONVERSION",
        "RETENTION",
        "FEEDBACK",
        "CAMPAIGNS",
    ] {
        assert!(table.contains(heading), "{heading} missing in\n{table}");
    }
    let line = |metric: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(metric))
            .unwrap_or_else(|| panic!("no {metric} line in\n{table}"))
            .split_whitespace()
            .last()
            .unwrap()
            .to_string()
    };
    assert_eq!(line("impressions"), "17000");
    assert_eq!(line("ctr"), "1.82%");
    assert_eq!(line("spend"), "220.00");
    // The table alone rounds, for display.
    assert_eq!(line("revenue"), "120.10");
    assert_eq!(line("aov"), "30.03");
    assert_eq!(line("ltv"), "73.37");
    assert_eq!(line("refund_rate"), "15.03%");
    assert!(table.contains("OTHER CURRENCIES"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["EUR", "revenue", "10.00"]),
        "{table}"
    );
    assert_eq!(line("reported_purchases.meta_ads"), "6");
    let spring = table.lines().find(|l| l.contains("Spring Sale")).unwrap();
    let cols: Vec<&str> = spring.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "Spring",
            "Sale",
            "paid_social",
            "200.00",
            "15000",
            "300",
            "40",
            "2",
            "70.09",
            "0.35x"
        ]
    );
    let brand = table.lines().find(|l| l.contains("Google Brand")).unwrap();
    assert!(brand.trim_end().ends_with('-'), "{brand}");
    // Columns line up: every campaign row is as wide as the header.
    let rows: Vec<&str> = table
        .lines()
        .skip_while(|l| *l != "CAMPAIGNS")
        .skip(1)
        .collect();
    let width = rows[0].chars().count();
    assert!(rows.iter().all(|r| r.chars().count() == width), "{table}");
}

#[test]
fn report_is_a_plain_value() {
    // Report is cloneable and comparable, so callers can cache and diff reports.
    let conn = fixture();
    let a: Report = build(&conn, &window("2025-03-01", "2025-03-30")).unwrap();
    let b = a.clone();
    assert_eq!(a, b);
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

#[test]
fn klaviyo_campaigns_join_by_name_with_channel_email() {
    let c = db();
    // A Klaviyo campaign (name resolved by the rebuild), and a store order tagged with it.
    event(
        &c,
        Ev {
            source: "email",
            event_type: "email_clicked",
            channel: Some("email"),
            campaign: Some("Spring Launch"),
            ..Default::default()
        },
    );
    event(
        &c,
        Ev {
            source: "email",
            event_type: "placed_order",
            channel: Some("email"),
            campaign: Some("Spring Launch"),
            value: Some(25.0),
            currency: Some("USD"),
            attributes: json!({"attributed": true}),
            ..Default::default()
        },
    );
    order(
        &c,
        Order {
            id: "1",
            total: 25.0,
            utm_campaign: Some(" spring launch"),
            channel: Some("email"),
            ..Default::default()
        },
    );
    let j = build(&c, &window("2025-03-15", "2025-03-15"))
        .unwrap()
        .to_json();
    assert_eq!(
        j["campaigns"],
        json!([{"campaign": "Spring Launch", "channel": "email", "spend": 0, "impressions": 0,
                "clicks": 0, "sessions": 0, "orders": 1, "revenue": 25, "roas": null}])
    );
}

/// The count columns of `funnel_daily` and the money columns (summed per currency).
const VIEW_COUNTS: &[&str] = &[
    "impressions",
    "clicks",
    "sessions",
    "new_users",
    "engaged_sessions",
    "add_to_carts",
    "checkouts_started",
    "email_opens",
    "email_clicks",
    "orders",
    "abandoned_checkouts",
    "refunds",
    "email_attributed_orders",
    "reported_purchases_meta_ads",
    "reported_purchases_ga4",
];
const VIEW_MONEY: &[&str] = &[
    "spend",
    "revenue",
    "refunded_amount",
    "email_attributed_revenue",
];

/// `funnel_daily` summed over `since..=until`: every count over all rows, every money column per
/// currency (`column/CUR`), as exact decimals.
fn view_totals(
    store: &str,
    conn: &Connection,
    pg: Option<&mut postgres::Client>,
    since: &str,
    until: &str,
) -> BTreeMap<String, Decimal> {
    let mut out = BTreeMap::new();
    let counts: Vec<String> = VIEW_COUNTS
        .iter()
        .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS TEXT)"))
        .collect();
    let counts = counts.join(", ");
    match (store, pg) {
        ("sqlite", _) => {
            let got: Vec<String> = conn
                .query_row(
                    &format!("SELECT {counts} FROM funnel_daily WHERE date BETWEEN ?1 AND ?2"),
                    [since, until],
                    |r| (0..VIEW_COUNTS.len()).map(|i| r.get(i)).collect(),
                )
                .unwrap();
            for (c, v) in VIEW_COUNTS.iter().zip(got) {
                out.insert(c.to_string(), Decimal::from_str(&v).unwrap());
            }
            // The view's SQLite money is the double nearest the exact sum: back to 10^-6 units.
            let money: Vec<String> = VIEW_MONEY
                .iter()
                .map(|c| format!("SUM(CAST(ROUND({c} * 1000000) AS INTEGER))"))
                .collect();
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT currency, {} FROM funnel_daily WHERE date BETWEEN ?1 AND ?2
                     AND currency IS NOT NULL GROUP BY currency",
                    money.join(", ")
                ))
                .unwrap();
            let rows = stmt
                .query_map([since, until], |r| {
                    let cur: String = r.get(0)?;
                    let units: Vec<i64> = (1..=VIEW_MONEY.len())
                        .map(|i| r.get(i))
                        .collect::<Result<_, _>>()?;
                    Ok((cur, units))
                })
                .unwrap();
            for row in rows {
                let (cur, units) = row.unwrap();
                for (c, u) in VIEW_MONEY.iter().zip(units) {
                    out.insert(format!("{c}/{cur}"), Decimal::new(u, 6).normalize());
                }
            }
        }
        (_, Some(client)) => {
            let row = client
                .query_one(
                    &format!(
                        "SELECT {counts} FROM funnel_daily
                         WHERE date BETWEEN $1::text::date AND $2::text::date"
                    ),
                    &[&since, &until],
                )
                .unwrap();
            for (i, c) in VIEW_COUNTS.iter().enumerate() {
                out.insert(c.to_string(), Decimal::from_str(row.get(i)).unwrap());
            }
            let money: Vec<String> = VIEW_MONEY
                .iter()
                .map(|c| format!("CAST(SUM({c}) AS TEXT)"))
                .collect();
            for row in client
                .query(
                    &format!(
                        "SELECT currency, {} FROM funnel_daily
                         WHERE date BETWEEN $1::text::date AND $2::text::date
                           AND currency IS NOT NULL GROUP BY currency",
                        money.join(", ")
                    ),
                    &[&since, &until],
                )
                .unwrap()
            {
                let cur: String = row.get(0);
                for (i, c) in VIEW_MONEY.iter().enumerate() {
                    let v = Decimal::from_str(row.get(i + 1)).unwrap().normalize();
                    out.insert(format!("{c}/{cur}"), v);
                }
            }
        }
        _ => unreachable!(),
    }
    // A currency with nothing in one money column is the same as no row for it.
    out.retain(|_, v| !v.is_zero());
    out
}

/// What the report says `funnel_daily` must sum to: counts over every currency, money per currency
/// (the report currency's, and each of `other_currencies`).
fn report_totals(r: &Report) -> BTreeMap<String, Decimal> {
    let mut out: BTreeMap<String, Decimal> = [
        ("impressions", r.awareness.impressions),
        ("clicks", r.awareness.clicks),
        ("sessions", r.awareness.sessions),
        ("new_users", r.awareness.new_users),
        ("engaged_sessions", r.consideration.engaged_sessions),
        ("add_to_carts", r.consideration.add_to_carts),
        ("checkouts_started", r.consideration.checkouts_started),
        ("email_opens", r.consideration.email_opens),
        ("email_clicks", r.consideration.email_clicks),
        ("orders", r.conversion.orders),
        ("abandoned_checkouts", r.conversion.abandoned_checkouts),
        ("refunds", r.feedback.refunds),
        (
            "email_attributed_orders",
            r.feedback.reported_purchases.klaviyo,
        ),
        (
            "reported_purchases_meta_ads",
            r.feedback.reported_purchases.meta_ads,
        ),
        ("reported_purchases_ga4", r.feedback.reported_purchases.ga4),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Decimal::from(v)))
    .collect();
    let mut money = |cur: &str, spend, revenue, refunded, email| {
        for (c, v) in VIEW_MONEY.iter().zip([spend, revenue, refunded, email]) {
            out.insert(format!("{c}/{cur}"), v);
        }
    };
    money(
        &r.currency,
        r.awareness.spend,
        r.conversion.revenue,
        r.feedback.refunded_amount,
        r.retention.email_attributed_revenue,
    );
    for (cur, o) in &r.other_currencies {
        money(
            cur,
            o.spend,
            o.revenue,
            o.refunded_amount,
            o.email_attributed_revenue,
        );
    }
    out.retain(|_, v| !v.is_zero());
    out
}

#[test]
fn funnel_daily_sums_to_the_report_in_each_store() {
    let conn = fixture();
    let schema = TestSchema::new("funnel_daily");
    let mut pg = schema.as_ref().map(|s| copy_to_postgres(&conn, s));
    let mut stores = vec!["sqlite"];
    if pg.is_some() {
        stores.push("postgres");
    }
    for store in stores {
        for (since, until, currency) in [
            ("2025-03-01", "2025-03-30", None),
            ("2025-03-01", "2025-03-30", Some("EUR")),
            ("2025-02-01", "2025-04-30", None),
            ("2025-03-15", "2025-03-15", None),
        ] {
            let opts = ReportOptions {
                currency: currency.map(str::to_string),
                ..window(since, until)
            };
            let report = match (store, pg.as_mut()) {
                ("sqlite", _) => build_report(&conn, &opts).unwrap(),
                (_, Some(client)) => build_report(&mut *client, &opts).unwrap(),
                _ => unreachable!(),
            };
            let want = report_totals(&report);
            let got = view_totals(store, &conn, pg.as_mut(), since, until);
            assert!(
                want["orders"] > Decimal::ZERO || since == "2025-03-15",
                "{store}: the window has orders"
            );
            assert_eq!(got, want, "{store}: {since}..={until} {currency:?}");
        }
    }
}

/// A login role on the test server, dropped (with its privileges) on drop.
struct Role {
    url: String,
    name: String,
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Ok(mut c) = PostgresTarget::parse(&self.url, None).and_then(|t| t.connect()) {
            let _ = c.batch_execute(&format!(
                "DROP OWNED BY {0}; DROP ROLE IF EXISTS {0}",
                self.name
            ));
        }
    }
}

/// `url` with its user and password replaced.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.split_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{host}")
}

#[test]
fn a_read_only_role_can_report_on_postgres_and_a_newer_dataset_is_refused() {
    let Some(schema) = TestSchema::new("read_only") else {
        return;
    };
    let conn = fixture();
    let mut owner = copy_to_postgres(&conn, &schema);
    let role = Role {
        url: schema.url().to_string(),
        name: format!("{}_r", schema.name()),
    };
    if let Err(e) = owner.batch_execute(&format!(
        "CREATE ROLE {r} LOGIN PASSWORD 'reader';
         GRANT USAGE ON SCHEMA {s} TO {r};
         GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r};",
        r = role.name,
        s = schema.name()
    )) {
        eprintln!("skipped: the test server's role may not create roles ({e})");
        return;
    }
    let target = PostgresTarget::parse(
        &as_user(schema.url(), &role.name, "reader"),
        Some(schema.name()),
    )
    .unwrap();
    // The role may not write: opening the dataset for syncing refuses it …
    let err = PostgresDestination::open(&target).unwrap_err();
    assert!(err.to_string().contains("may read but not write"), "{err}");
    // … but it may report, and gets the report SQLite computes from the same rows.
    let opts = window("2025-03-01", "2025-03-30");
    let mut reader = PostgresDestination::open_for_reading(&target).unwrap();
    assert_eq!(
        build_report(&mut reader, &opts).unwrap(),
        build_report(&conn, &opts).unwrap()
    );
    drop(reader);

    // A dataset from a newer growthflow is refused for reading too.
    owner
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (999, clock_timestamp())",
            &[],
        )
        .unwrap();
    let Err(err) = PostgresDestination::open_for_reading(&target) else {
        panic!("a dataset at version 999 opened for reading");
    };
    let found = growthflow_core::destination::schema_too_new(&err).expect("SchemaTooNew");
    assert_eq!(found.found, 999);
}

#[test]
fn clicks_sent_as_text_count_and_a_non_number_is_zero_in_each_store() {
    let c = db();
    for clicks in [json!("5"), json!(2), json!("n/a"), json!(null)] {
        event(
            &c,
            Ev {
                source: "ads",
                event_type: "ad_insights",
                campaign: Some("Brand"),
                quantity: 100.0,
                value: Some(1.0),
                currency: Some("USD"),
                attributes: json!({ "clicks": clicks }),
                ..Default::default()
            },
        );
    }
    let opts = window("2025-03-15", "2025-03-15");
    for (store, r) in each(&c, &opts) {
        let r = r.unwrap_or_else(|e| panic!("{store}: {e}"));
        assert_eq!(r.awareness.clicks, 7, "{store}");
        assert_eq!(r.campaigns[0].clicks, 7, "{store}");
    }
    let view: i64 = c
        .query_row("SELECT SUM(clicks) FROM funnel_daily", [], |r| r.get(0))
        .unwrap();
    assert_eq!(view, 7);
}

#[test]
fn a_postgres_read_error_says_what_the_server_said() {
    let Some(schema) = TestSchema::new("read_error") else {
        return;
    };
    let mut client = schema.client(); // The schema does not exist: no tables.
    let err = build_report(&mut client, &window("2025-03-01", "2025-03-30")).unwrap_err();
    assert!(
        matches!(err, ReportError::Postgres(_)) && err.to_string().contains("does not exist"),
        "{err}"
    );
}

/// Every row of the report's rollup tables, as text, sorted: what two ways of filling them are compared
/// by.
const ROLLUP_TABLES: [&str; 5] = [
    "growthflow_rollup_events",
    "growthflow_rollup_orders",
    "growthflow_rollup_refunds",
    "growthflow_rollup_customers",
    "growthflow_rollup_customer_currencies",
];

fn sqlite_rollups(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    for table in ROLLUP_TABLES {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let cols: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                    .collect();
                Ok(format!("{table}: {}", cols.join(", ")))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out.sort();
    out
}

fn postgres_rollups(client: &mut postgres::Client) -> Vec<String> {
    let mut out = Vec::new();
    for table in ROLLUP_TABLES {
        for r in client
            .query(&format!("SELECT t::text FROM {table} t"), &[])
            .unwrap()
        {
            out.push(format!("{table}: {}", r.get::<_, String>(0)));
        }
    }
    out.sort();
    out
}

/// Changes a sync could make, written in SQL both stores accept: an order moved to another day, into
/// another currency, cancelled and deleted; a refund's order made invalid; events moved, deleted,
/// re-attributed, re-valued and renamed; a repeat order renumbered; new rows on new days. (Numbers with
/// the scale SQLite's REAL copies into PostgreSQL have, so both PostgreSQL datasets hold the same
/// NUMERICs.)
const CHANGES: &[&str] = &[
    "UPDATE orders SET created_at = '2025-03-20T23:59:59Z' WHERE source = 'shop' AND order_id = '1002'",
    "UPDATE orders SET currency = 'EUR' WHERE source = 'woo' AND order_id = '2001'",
    "UPDATE orders SET cancelled = TRUE WHERE source = 'shop' AND order_id = '1001'",
    "DELETE FROM orders WHERE source = 'shop' AND order_id = '1005'",
    "UPDATE orders SET customer_order_index = 1 WHERE customer_id = 'alice@x.com'",
    "UPDATE journey_events SET date = '2025-03-29' WHERE event_type = 'sessions' AND date = '2025-03-01'",
    "DELETE FROM journey_events WHERE event_type = 'email_opened' AND date = '2025-03-10'",
    "UPDATE journey_events SET attributes = '{\"attributed\": false}' WHERE event_type = 'placed_order' AND value > 60",
    "UPDATE journey_events SET campaign = 'Renamed' WHERE event_type = 'ad_insights' AND date = '2025-03-05'",
    "UPDATE journey_events SET value = 12.34, quantity = 3.0 WHERE event_type = 'ad_insights' AND date = '2025-03-06'",
    "INSERT INTO orders (source, order_id, customer_id, email, created_at, currency, total_price, cancelled, test,
         utm_campaign, channel, customer_order_index)
     VALUES ('shop', '9001', 'zoe@x.com', 'zoe@x.com', '2025-05-01T10:00:00Z', 'usd ', 33.33, FALSE, FALSE,
         'New', 'email', 1),
            ('shop', '9002', 'alice@x.com', 'alice@x.com', '2025-05-02T10:00:00Z', 'USD', 1.01, FALSE, FALSE,
         NULL, 'direct', 3)",
    "INSERT INTO journey_events (event_id, source, stream, occurred_at, date, stage, event_type, channel,
         campaign, quantity, value, currency, attributes)
     VALUES ('new1', 'shop', 'refunds', '2025-05-03T00:00:00Z', '2025-05-03', 'feedback', 'refund', NULL,
         NULL, 1.0, 4.44, NULL, '{\"order_id\": \"9001\"}'),
            ('new2', 'ga4', 's', '2025-05-03T00:00:00Z', '2025-05-03', 'awareness', 'sessions', 'email',
         'New', 7.0, NULL, NULL, '{}')",
];

/// The rollups the rebuild keeps up to date change by change are the ones computed from scratch from
/// the final rows, in each store; and so is the report read from them.
#[test]
fn rollups_kept_up_to_date_equal_rollups_computed_from_scratch_in_each_store() {
    let conn = fixture();
    let schema = TestSchema::new("rollups");
    let mut pg = schema.as_ref().map(|s| copy_to_postgres(&conn, s));
    // Filled once before the changes (as by a first sync), so the changes are applied incrementally.
    let windows = [
        window("2025-03-01", "2025-03-30"),
        window("2025-02-01", "2025-05-31"),
        window("2025-03-06", "2025-03-20"),
        ReportOptions {
            currency: Some("EUR".into()),
            ..window("2025-01-01", "2025-12-31")
        },
    ];
    let before = build_report(&conn, &windows[1]).unwrap();
    assert_eq!(before.conversion.orders, 8, "{before:#?}");
    for sql in CHANGES {
        conn.execute_batch(sql).unwrap();
        if let Some(client) = pg.as_mut() {
            client.batch_execute(sql).unwrap();
        }
        // A refresh after each change, as each sync's rebuild does.
        growthflow_core::report::refresh_rollups_sqlite(&conn).unwrap();
        if let Some(client) = pg.as_mut() {
            let mut tx = client.transaction().unwrap();
            growthflow_core::report::refresh_rollups_postgres(&mut tx).unwrap();
            tx.commit().unwrap();
        }
    }
    let pending: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM growthflow_rollup_dirty_days)
                  + (SELECT COUNT(*) FROM growthflow_rollup_dirty_customers)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pending, 0, "the refresh empties the lists of changes");

    // The same final rows, written into a new dataset: its rollups are computed from scratch.
    let fresh = db();
    for table in ["orders", "journey_events", "growthflow_sources"] {
        let cols: Vec<String> = conn
            .prepare(&format!("SELECT * FROM {table}"))
            .unwrap()
            .column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let rows: Vec<Vec<rusqlite::types::Value>> = stmt
            .query_map([], |r| {
                (0..cols.len())
                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                    .collect()
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        for row in rows {
            fresh
                .execute(
                    &format!(
                        "INSERT INTO {table} ({}) VALUES ({})",
                        cols.join(", "),
                        marks.join(", ")
                    ),
                    rusqlite::params_from_iter(row),
                )
                .unwrap();
        }
    }
    growthflow_core::report::refresh_rollups_sqlite(&fresh).unwrap();
    let kept = sqlite_rollups(&conn);
    assert!(kept.len() > 40, "{kept:#?}");
    assert_eq!(kept, sqlite_rollups(&fresh), "sqlite");
    // Spot checks: the moved order is on its new day, the deleted one is gone, the cancelled order's
    // refund no longer counts.
    assert!(kept.iter().any(|r| r.starts_with(
        "growthflow_rollup_orders: Text(\"2025-03-20\"), Text(\"USD\"), Text(\"Spring Sale\")"
    )));
    assert!(!kept
        .iter()
        .any(|r| r.starts_with("growthflow_rollup_orders: Text(\"2025-03-31\")")));
    assert!(!kept
        .iter()
        .any(|r| r.starts_with("growthflow_rollup_refunds: Text(\"2025-03-02\")")));

    for opts in &windows {
        let got = build_report(&conn, opts).unwrap();
        assert_eq!(got, build_report(&fresh, opts).unwrap(), "{opts:?}");
        assert_ne!(got, build_report(&fixture(), opts).unwrap(), "{opts:?}");
    }

    if let (Some(client), Some(_)) = (pg.as_mut(), schema.as_ref()) {
        let fresh_schema = TestSchema::new("rollups_fresh").unwrap();
        let mut fresh_pg = copy_to_postgres(&conn, &fresh_schema);
        let kept = postgres_rollups(client);
        assert_eq!(kept.len(), sqlite_rollups(&conn).len());
        assert_eq!(kept, postgres_rollups(&mut fresh_pg), "postgres");
        for opts in &windows {
            assert_eq!(
                build_report(&mut *client, opts).unwrap(),
                build_report(&conn, opts).unwrap(),
                "postgres, {opts:?}"
            );
        }
    }
}

/// A report over rows written by hand (no rebuild, so nothing refreshed the rollups) refreshes them
/// first: it never reads stale days.
#[test]
fn a_report_over_rows_written_by_hand_refreshes_the_rollups_first() {
    let conn = fixture();
    let opts = window("2025-03-01", "2025-03-30");
    let first = build_report(&conn, &opts).unwrap();
    order(
        &conn,
        Order {
            id: "7777",
            customer: Some("new@x.com"),
            created_at: "2025-03-09T09:00:00Z",
            total: 1.5,
            index: Some(1),
            ..Default::default()
        },
    );
    let second = build_report(&conn, &opts).unwrap();
    assert_eq!(second.conversion.orders, first.conversion.orders + 1);
    assert_eq!(
        second.conversion.revenue,
        first.conversion.revenue + Decimal::from_str("1.5").unwrap()
    );
    assert_eq!(second.retention.customers, first.retention.customers + 1);
}
