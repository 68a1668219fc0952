//! What one rebuild writes (orders, events, customers), without any mapper, and on a file.

use super::*;

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
    rebuild_without_any_mapper_reads_but_writes_nothing,
    rebuild_on_a_file_is_visible_to_another_connection,
);
