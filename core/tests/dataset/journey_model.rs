//! The journey model.

use super::*;

/// A store with three streams: `orders` `{id, email, created, total, status}`, `refunds`
/// `{id, order_id, email, at, amount}` and `people` `{email, since}`. An unparsable time fails the record.
struct TestMapper;

fn time(v: &Value, field: &str) -> Result<DateTime<Utc>> {
    v[field]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .ok_or_else(|| Error::Decode {
            message: format!("bad {field}: {}", v[field]),
        })
}

fn money(v: &Value, field: &str) -> Decimal {
    v[field].as_str().unwrap().parse().unwrap()
}

impl JourneyMapper for TestMapper {
    fn source_type(&self) -> &'static str {
        "teststore"
    }

    fn map(&self, stream: &str, v: &Value) -> Result<JourneyRows> {
        let mut rows = JourneyRows::default();
        match stream {
            "orders" => {
                let status = v["status"].as_str().unwrap_or_default();
                rows.orders.push(OrderRow {
                    order_id: v["id"].as_str().unwrap().to_string(),
                    email: v["email"].as_str().map(str::to_string),
                    created_at: time(v, "created")?,
                    currency: Some("USD".into()),
                    total_price: money(v, "total"),
                    subtotal_price: None,
                    total_discounts: None,
                    total_refunded: Decimal::ZERO,
                    financial_status: Some(status.to_string()),
                    cancelled: status == "cancelled",
                    test: status == "test",
                    utm_source: None,
                    utm_medium: None,
                    utm_campaign: None,
                    channel: Channel::Direct,
                    landing_page: None,
                    referrer: None,
                });
            }
            "refunds" => {
                let mut ev = EventRow::at(
                    format!("refund:{}", v["id"].as_str().unwrap()),
                    time(v, "at")?,
                    Stage::Feedback,
                    "refund",
                );
                ev.email = v["email"].as_str().map(str::to_string);
                ev.value = Some(money(v, "amount"));
                ev.currency = Some("USD".into());
                ev.attributes = json!({"order_id": v["order_id"]});
                rows.events.push(ev);
            }
            "people" => rows.customers.push(CustomerRow {
                email: v["email"].as_str().unwrap().to_string(),
                first_seen_at: Some(time(v, "since")?),
            }),
            _ => {}
        }
        Ok(rows)
    }
}

fn order(id: &str, email: Option<&str>, created: &str, total: &str, status: &str) -> Record {
    rec(
        id,
        Some(created),
        json!({"id": id, "email": email, "created": created, "total": total, "status": status}),
    )
}

/// Two stores of the same type, a CRM-ish people stream, and a source whose type has no mapper.
fn journey_dataset(backend: Backend) -> Option<Db> {
    let mut dest = Db::memory(backend, "journey")?;
    dest.register_source("shop_a", "teststore").unwrap();
    dest.register_source("shop_b", "teststore").unwrap();
    dest.register_source("legacy", "unmapped").unwrap();
    dest.commit(&[
        batch(
            "shop_a",
            "orders",
            vec![
                order(
                    "a1",
                    Some("alice@example.com"),
                    "2025-03-01T10:00:00Z",
                    "20.00",
                    "paid",
                ),
                order(
                    "a2",
                    Some("  Alice@Example.COM "),
                    "2025-03-10T10:00:00Z",
                    "30.50",
                    "paid",
                ),
                order(
                    "a3",
                    Some("bob@example.com"),
                    "2025-03-05T09:00:00Z",
                    "15.25",
                    "cancelled",
                ),
                order(
                    "a4",
                    Some("bob@example.com"),
                    "2025-03-06T09:00:00Z",
                    "99.00",
                    "test",
                ),
                order(
                    "a5",
                    Some("carol@example.com"),
                    "not a date",
                    "1.00",
                    "paid",
                ),
            ],
            None,
        ),
        batch(
            "shop_a",
            "refunds",
            vec![rec(
                "r1",
                None,
                json!({"id": "r1", "order_id": "a2", "email": "ALICE@example.com",
                       "at": "2025-03-12T00:00:00Z", "amount": "10.50"}),
            )],
            None,
        ),
        batch(
            "shop_b",
            "orders",
            vec![
                order(
                    "b1",
                    Some("ALICE@example.com"),
                    "2025-03-05T12:00:00Z",
                    "12.25",
                    "paid",
                ),
                order(
                    "b2",
                    Some("bob@example.com"),
                    "2025-03-07T08:00:00Z",
                    "40.00",
                    "paid",
                ),
                order("b3", None, "2025-03-08T08:00:00Z", "5.00", "paid"),
            ],
            None,
        ),
        batch(
            "shop_b",
            "people",
            vec![
                rec(
                    "p1",
                    None,
                    json!({"email": "carol@example.com", "since": "2025-01-15T00:00:00Z"}),
                ),
                rec(
                    "p2",
                    None,
                    json!({"email": " Alice@example.com", "since": "2025-02-01T00:00:00Z"}),
                ),
            ],
            None,
        ),
        batch(
            "legacy",
            "orders",
            vec![order(
                "x1",
                Some("dave@example.com"),
                "2025-03-02T00:00:00Z",
                "7.00",
                "paid",
            )],
            None,
        ),
    ])
    .unwrap();
    Some(dest)
}

fn mappers() -> Vec<Arc<dyn JourneyMapper>> {
    vec![Arc::new(TestMapper)]
}

const ORDERS: &str =
    "SELECT source, order_id, customer_id, email, created_at, currency, total_price,
    subtotal_price, total_discounts, total_refunded, financial_status, cancelled, test, utm_source,
    utm_medium, utm_campaign, channel, landing_page, referrer, customer_order_index
    FROM orders ORDER BY source, order_id";
const EVENTS: &str =
    "SELECT event_id, source, stream, occurred_at, date, stage, event_type, channel,
    campaign, customer_id, quantity, value, currency, attributes
    FROM journey_events ORDER BY event_id";
const CUSTOMERS: &str = "SELECT customer_id, email, first_seen_at, first_order_at, orders_count,
    total_spent FROM customers ORDER BY customer_id";

#[allow(clippy::too_many_arguments)]
fn order_row(
    source: &str,
    id: &str,
    customer: Option<&str>,
    email: Option<&str>,
    created: &str,
    total: f64,
    status: &str,
    index: Option<i64>,
) -> Vec<Sql> {
    let opt = |s: Option<&str>| s.map(t).unwrap_or(NULL);
    vec![
        t(source),
        t(id),
        opt(customer),
        opt(email),
        t(created),
        t("USD"),
        r(total),
        NULL,
        NULL,
        r(0.0),
        t(status),
        i((status == "cancelled") as i64),
        i((status == "test") as i64),
        NULL,
        NULL,
        NULL,
        t("direct"),
        NULL,
        NULL,
        index.map(i).unwrap_or(NULL),
    ]
}

#[allow(clippy::too_many_arguments)]
fn order_event(
    source: &str,
    id: &str,
    created: &str,
    stage: &str,
    customer: Option<&str>,
    total: f64,
    valid: bool,
) -> Vec<Sql> {
    vec![
        t(&format!("{source}:orders:{id}:order:{id}")),
        t(source),
        t("orders"),
        t(created),
        t(&created[..10]),
        t(stage),
        t("order"),
        t("direct"),
        NULL,
        customer.map(t).unwrap_or(NULL),
        r(1.0),
        r(total),
        t("USD"),
        t(&json!({"order_id": id, "valid": valid}).to_string()),
    ]
}

fn rebuild_builds_orders_events_and_customers(backend: Backend) {
    let Some(mut dest) = journey_dataset(backend) else {
        return;
    };
    let stats = dest.rebuild_journey(&mappers()).unwrap();
    assert_eq!(
        stats,
        RebuildStats {
            records: 12,
            orders: 7,
            events: 8,
            customers: 3,
            failed: 1,
        }
    );
    let conn = &mut dest;
    let alice = Some("alice@example.com");
    let bob = Some("bob@example.com");

    assert_eq!(
        rows(conn, ORDERS),
        vec![
            order_row(
                "shop_a",
                "a1",
                alice,
                alice,
                "2025-03-01T10:00:00Z",
                20.0,
                "paid",
                Some(1)
            ),
            order_row(
                "shop_a",
                "a2",
                alice,
                Some("  Alice@Example.COM "),
                "2025-03-10T10:00:00Z",
                30.5,
                "paid",
                Some(3)
            ),
            order_row(
                "shop_a",
                "a3",
                bob,
                bob,
                "2025-03-05T09:00:00Z",
                15.25,
                "cancelled",
                None
            ),
            order_row(
                "shop_a",
                "a4",
                bob,
                bob,
                "2025-03-06T09:00:00Z",
                99.0,
                "test",
                None
            ),
            order_row(
                "shop_b",
                "b1",
                alice,
                Some("ALICE@example.com"),
                "2025-03-05T12:00:00Z",
                12.25,
                "paid",
                Some(2)
            ),
            order_row(
                "shop_b",
                "b2",
                bob,
                bob,
                "2025-03-07T08:00:00Z",
                40.0,
                "paid",
                Some(1)
            ),
            order_row(
                "shop_b",
                "b3",
                None,
                None,
                "2025-03-08T08:00:00Z",
                5.0,
                "paid",
                None
            ),
        ]
    );

    let refund = vec![
        t("shop_a:refunds:r1:refund:r1"),
        t("shop_a"),
        t("refunds"),
        t("2025-03-12T00:00:00Z"),
        t("2025-03-12"),
        t("feedback"),
        t("refund"),
        NULL,
        NULL,
        t("alice@example.com"),
        r(1.0),
        r(10.5),
        t("USD"),
        t(r#"{"order_id":"a2"}"#),
    ];
    assert_eq!(
        rows(conn, EVENTS),
        vec![
            order_event(
                "shop_a",
                "a1",
                "2025-03-01T10:00:00Z",
                "conversion",
                alice,
                20.0,
                true
            ),
            order_event(
                "shop_a",
                "a2",
                "2025-03-10T10:00:00Z",
                "retention",
                alice,
                30.5,
                true
            ),
            order_event(
                "shop_a",
                "a3",
                "2025-03-05T09:00:00Z",
                "conversion",
                bob,
                15.25,
                false
            ),
            order_event(
                "shop_a",
                "a4",
                "2025-03-06T09:00:00Z",
                "conversion",
                bob,
                99.0,
                false
            ),
            refund,
            order_event(
                "shop_b",
                "b1",
                "2025-03-05T12:00:00Z",
                "retention",
                alice,
                12.25,
                true
            ),
            order_event(
                "shop_b",
                "b2",
                "2025-03-07T08:00:00Z",
                "conversion",
                bob,
                40.0,
                true
            ),
            order_event(
                "shop_b",
                "b3",
                "2025-03-08T08:00:00Z",
                "conversion",
                None,
                5.0,
                true
            ),
        ]
    );

    assert_eq!(
        rows(conn, CUSTOMERS),
        vec![
            vec![
                t("alice@example.com"),
                t("alice@example.com"),
                t("2025-02-01T00:00:00Z"),
                t("2025-03-01T10:00:00Z"),
                i(3),
                r(62.75),
            ],
            vec![
                t("bob@example.com"),
                t("bob@example.com"),
                // Seen first on the cancelled order, which still is contact.
                t("2025-03-05T09:00:00Z"),
                t("2025-03-07T08:00:00Z"),
                i(1),
                r(40.0),
            ],
            vec![
                t("carol@example.com"),
                t("carol@example.com"),
                t("2025-01-15T00:00:00Z"),
                NULL,
                i(0),
                r(0.0),
            ],
        ]
    );
    // Nothing from the source without a mapper, nor from the failed record.
    assert_eq!(
        count(
            conn,
            "SELECT COUNT(*) FROM orders WHERE source = 'legacy' OR order_id = 'a5'"
        ),
        0
    );
    assert_eq!(
        count(
            conn,
            "SELECT COUNT(*) FROM journey_events WHERE source = 'legacy'"
        ),
        0
    );
    assert_eq!(
        count(
            conn,
            "SELECT COUNT(*) FROM customers WHERE customer_id = 'dave@example.com'"
        ),
        0
    );
}

fn rebuilding_twice_gives_identical_rows(backend: Backend) {
    let Some(mut dest) = journey_dataset(backend) else {
        return;
    };
    let first = dest.rebuild_journey(&mappers()).unwrap();
    let before = model(&mut dest);
    let second = dest.rebuild_journey(&mappers()).unwrap();
    assert_eq!(
        second,
        RebuildStats {
            records: 0,
            failed: 0,
            ..first.clone()
        },
        "nothing changed, so nothing is mapped again and the model stays the same size"
    );
    assert_eq!(model(&mut dest), before);
    assert_eq!(before.1.len(), 8);
}

fn rebuild_follows_new_raw_data_and_renumbers(backend: Backend) {
    let Some(mut dest) = journey_dataset(backend) else {
        return;
    };
    dest.rebuild_journey(&mappers()).unwrap();
    // An earlier order for alice turns up in shop_b; a1 is cancelled meanwhile.
    dest.commit(&[
        batch(
            "shop_b",
            "orders",
            vec![order(
                "b0",
                Some("alice@example.com"),
                "2025-02-20T00:00:00Z",
                "1.00",
                "paid",
            )],
            None,
        ),
        batch(
            "shop_a",
            "orders",
            vec![order(
                "a1",
                Some("alice@example.com"),
                "2025-03-01T10:00:00Z",
                "20.00",
                "cancelled",
            )],
            None,
        ),
    ])
    .unwrap();
    dest.rebuild_journey(&mappers()).unwrap();
    let conn = &mut dest;
    assert_eq!(
        rows(
            conn,
            "SELECT source, order_id, customer_order_index FROM orders
             WHERE customer_id = 'alice@example.com' ORDER BY created_at"
        ),
        vec![
            vec![t("shop_b"), t("b0"), i(1)],
            vec![t("shop_a"), t("a1"), NULL],
            vec![t("shop_b"), t("b1"), i(2)],
            vec![t("shop_a"), t("a2"), i(3)],
        ]
    );
    assert_eq!(
        rows(
            conn,
            "SELECT event_id, stage FROM journey_events
             WHERE event_type = 'order' AND customer_id = 'alice@example.com' ORDER BY occurred_at"
        ),
        vec![
            vec![t("shop_b:orders:b0:order:b0"), t("conversion")],
            vec![t("shop_a:orders:a1:order:a1"), t("conversion")],
            vec![t("shop_b:orders:b1:order:b1"), t("retention")],
            vec![t("shop_a:orders:a2:order:a2"), t("retention")],
        ]
    );
    assert_eq!(
        rows(
            conn,
            "SELECT first_order_at, orders_count, total_spent FROM customers
             WHERE customer_id = 'alice@example.com'"
        ),
        vec![vec![t("2025-02-20T00:00:00Z"), i(3), r(43.75)]]
    );
}

/// Rows of a query.
type Rows = Vec<Vec<Sql>>;

/// The model as rows (orders, events, customers), for comparing two rebuilds.
fn model(conn: &mut Db) -> (Rows, Rows, Rows) {
    (
        rows(conn, ORDERS),
        rows(conn, EVENTS),
        rows(conn, CUSTOMERS),
    )
}

fn an_incremental_rebuild_gives_the_rows_of_a_full_one(backend: Backend) {
    let Some(mut dest) = journey_dataset(backend) else {
        return;
    };
    dest.commit(&[batch(
        "shop_a",
        "refunds",
        vec![rec(
            "r3",
            Some("2025-03-20"),
            json!({"id": "r3", "order_id": "b2", "email": "bob@example.com",
                   "at": "2025-03-20T00:00:00Z", "amount": "4.00"}),
        )],
        None,
    )])
    .unwrap();
    dest.rebuild_journey(&mappers()).unwrap();
    // Every kind of change at once: an order changes hands (alice → bob), a cancelled one is paid after
    // all, a record that failed to map is fixed, a new customer orders, a profile's first-seen date
    // moves, a re-read partition drops a refund, and a source without a mapper changes.
    let mut dropped = batch("shop_a", "refunds", vec![], None);
    dropped.replaces = Some("2025-03-20".into());
    dest.commit(&[
        batch(
            "shop_b",
            "orders",
            vec![
                order(
                    "b1",
                    Some("bob@example.com"),
                    "2025-03-05T12:00:00Z",
                    "12.25",
                    "paid",
                ),
                order(
                    "b4",
                    Some("eve@example.com"),
                    "2025-03-09T08:00:00Z",
                    "8.00",
                    "paid",
                ),
            ],
            None,
        ),
        batch(
            "shop_a",
            "orders",
            vec![
                order(
                    "a3",
                    Some("bob@example.com"),
                    "2025-03-05T09:00:00Z",
                    "15.25",
                    "paid",
                ),
                order(
                    "a5",
                    Some("carol@example.com"),
                    "2025-03-11T00:00:00Z",
                    "1.00",
                    "paid",
                ),
            ],
            None,
        ),
        batch(
            "shop_b",
            "people",
            vec![rec(
                "p2",
                None,
                json!({"email": "alice@example.com", "since": "2024-12-01T00:00:00Z"}),
            )],
            None,
        ),
        dropped,
        batch(
            "legacy",
            "orders",
            vec![order(
                "x1",
                Some("dave@example.com"),
                "2025-03-03T00:00:00Z",
                "9.00",
                "paid",
            )],
            None,
        ),
    ])
    .unwrap();
    let stats = dest.rebuild_journey(&mappers()).unwrap();
    assert_eq!(
        stats.records, 6,
        "only the six changed records are mapped again (the dropped one is only taken out)"
    );
    let incremental = model(&mut dest);
    assert_eq!(
        count(
            &mut dest,
            "SELECT COUNT(*) FROM journey_events WHERE event_id LIKE 'shop_a:refunds:r3:%'"
        ),
        0,
        "the dropped refund's event is gone"
    );
    assert_eq!(
        rows(
            &mut dest,
            "SELECT customer_id, first_seen_at, orders_count FROM customers ORDER BY customer_id"
        ),
        vec![
            vec![t("alice@example.com"), t("2024-12-01T00:00:00Z"), i(2)],
            vec![t("bob@example.com"), t("2025-03-05T09:00:00Z"), i(3)],
            vec![t("carol@example.com"), t("2025-01-15T00:00:00Z"), i(1)],
            vec![t("eve@example.com"), t("2025-03-09T08:00:00Z"), i(1)],
        ]
    );
    // Dropping every mapper and adding them back forces a rebuild from scratch.
    dest.rebuild_journey(&[]).unwrap();
    let full = dest.rebuild_journey(&mappers()).unwrap();
    assert_eq!(full.records, 13);
    assert_eq!(model(&mut dest), incremental);
}

fn rebuild_without_any_mapper_reads_but_writes_nothing(backend: Backend) {
    let Some(mut dest) = journey_dataset(backend) else {
        return;
    };
    dest.rebuild_journey(&mappers()).unwrap();
    let stats = dest.rebuild_journey(&[]).unwrap();
    assert_eq!(
        stats,
        RebuildStats {
            records: 12,
            ..RebuildStats::default()
        }
    );
    let conn = &mut dest;
    for table in ["orders", "journey_events", "customers"] {
        assert_eq!(
            count(conn, &format!("SELECT COUNT(*) FROM {table}")),
            0,
            "{table} is rebuilt from scratch"
        );
    }
}

fn rebuild_on_a_file_is_visible_to_another_connection(backend: Backend) {
    let Some(mut dest) = Db::file(backend, "visible") else {
        return;
    };
    dest.register_source("shop_a", "teststore").unwrap();
    dest.commit(&[batch(
        "shop_a",
        "orders",
        vec![order(
            "a1",
            Some("alice@example.com"),
            "2025-03-01T10:00:00Z",
            "20.00",
            "paid",
        )],
        None,
    )])
    .unwrap();
    dest.rebuild_journey(&mappers()).unwrap();
    // Read through another connection.
    assert_eq!(
        rows(
            &mut dest,
            "SELECT order_id, customer_order_index FROM orders"
        ),
        vec![vec![t("a1"), i(1)]]
    );
    assert_eq!(
        count(
            &mut dest,
            "SELECT COUNT(*) FROM customers WHERE customer_id = 'alice@example.com'"
        ),
        1
    );
}

both_stores!(
    rebuild_builds_orders_events_and_customers,
    rebuilding_twice_gives_identical_rows,
    rebuild_follows_new_raw_data_and_renumbers,
    an_incremental_rebuild_gives_the_rows_of_a_full_one,
    rebuild_without_any_mapper_reads_but_writes_nothing,
    rebuild_on_a_file_is_visible_to_another_connection,
);
