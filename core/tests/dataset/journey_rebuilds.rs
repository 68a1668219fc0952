//! Rebuilding again (twice, after new raw data, incrementally) gives the rows a full rebuild does.

use super::*;

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
    let incremental_rollups = rollups(&mut dest);
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
    let schema_objects =
        "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger')
                          ORDER BY type, name";
    let objects = (backend == Backend::Sqlite).then(|| rows(&mut dest, schema_objects));
    dest.rebuild_journey(&[]).unwrap();
    let full = dest.rebuild_journey(&mappers()).unwrap();
    assert_eq!(full.records, 13);
    assert_eq!(model(&mut dest), incremental);
    assert_eq!(
        rollups(&mut dest),
        incremental_rollups,
        "the report's rollups after a full rebuild are those kept change by change"
    );
    if let Some(objects) = objects {
        // SQLite's full rebuild takes the indexes and rollup triggers off for the load: all back.
        assert!(objects.len() > 10, "{objects:?}");
        assert_eq!(rows(&mut dest, schema_objects), objects);
        // And the triggers note changes again: a new order marks its day for the rollups.
        dest.commit(&[batch(
            "shop_a",
            "orders",
            vec![order("a9", None, "2025-04-02T00:00:00Z", "3.00", "paid")],
            None,
        )])
        .unwrap();
        dest.rebuild_journey(&mappers()).unwrap();
        assert!(
            rollups(&mut dest)
                .iter()
                .any(|r| r.starts_with("growthflow_rollup_orders") && r.contains("2025-04-02")),
            "the new order's day is rolled up"
        );
    }
}

/// Every row of the report's rollups, as text, sorted; and nothing left to roll up.
fn rollups(db: &mut Db) -> Vec<String> {
    let mut out = Vec::new();
    for table in [
        "growthflow_rollup_events",
        "growthflow_rollup_orders",
        "growthflow_rollup_refunds",
        "growthflow_rollup_customers",
        "growthflow_rollup_customer_currencies",
    ] {
        let all = rows(db, &format!("SELECT * FROM {table}"));
        out.extend(all.iter().map(|r| format!("{table}: {r:?}")));
    }
    out.sort();
    assert_eq!(
        count(
            db,
            "SELECT (SELECT COUNT(*) FROM growthflow_rollup_dirty_days)
                  + (SELECT COUNT(*) FROM growthflow_rollup_dirty_customers)"
        ),
        0,
        "every change is rolled up"
    );
    assert!(!out.is_empty());
    out
}

both_stores!(
    rebuilding_twice_gives_identical_rows,
    rebuild_follows_new_raw_data_and_renumbers,
    an_incremental_rebuild_gives_the_rows_of_a_full_one,
    records_naming_one_order_or_one_key_twice_keep_the_last,
);

/// Where two records give the same order, the order is the version of the record read last in
/// (stream, record id) order, each record keeps its own order event, and a key a record gives twice
/// keeps its last version; an event keyed like the record's order event is replaced by it. The same
/// in both stores, on a full rebuild and on an incremental one.
fn records_naming_one_order_or_one_key_twice_keep_the_last(backend: Backend) {
    let Some(mut dest) = Db::memory(backend, "last_wins") else {
        return;
    };
    dest.register_source("s", "teststore").unwrap();
    let with_extra = |id: &str, total: &str, extra: Value| {
        let mut r = order(
            id,
            Some("ann@example.com"),
            "2025-03-01T10:00:00Z",
            total,
            "paid",
        );
        let mut payload = r.payload.to_value();
        payload["extra"] = extra;
        r.payload = payload.into();
        r
    };
    let records = || {
        [
            batch(
                "s",
                "orders",
                vec![
                    with_extra(
                        "x1",
                        "10.00",
                        json!([["dup", 1], ["dup", 2], ["order:x1", 7]]),
                    ),
                    order(
                        "x2",
                        Some("ann@example.com"),
                        "2025-03-02T10:00:00Z",
                        "5.00",
                        "paid",
                    ),
                ],
                None,
            ),
            batch(
                "s",
                "orders_archive",
                vec![order(
                    "x1",
                    Some("ann@example.com"),
                    "2025-03-01T10:00:00Z",
                    "99.00",
                    "paid",
                )],
                None,
            ),
        ]
    };
    dest.commit(&records()).unwrap();
    let expect = |dest: &mut Db| {
        assert_eq!(
            rows(
                dest,
                "SELECT order_id, total_price, customer_order_index FROM orders ORDER BY order_id"
            ),
            vec![vec![t("x1"), r(99.0), i(1)], vec![t("x2"), r(5.0), i(2)],]
        );
        assert_eq!(
            rows(
                dest,
                "SELECT event_id, event_type, stage, quantity, value FROM journey_events
                 ORDER BY event_id"
            ),
            vec![
                vec![
                    t("s:orders:x1:dup"),
                    t("note"),
                    t("consideration"),
                    r(2.0),
                    NULL
                ],
                vec![
                    t("s:orders:x1:order:x1"),
                    t("order"),
                    t("conversion"),
                    r(1.0),
                    r(10.0)
                ],
                vec![
                    t("s:orders:x2:order:x2"),
                    t("order"),
                    t("retention"),
                    r(1.0),
                    r(5.0)
                ],
                vec![
                    t("s:orders_archive:x1:order:x1"),
                    t("order"),
                    t("conversion"),
                    r(1.0),
                    r(99.0)
                ],
            ]
        );
    };
    dest.rebuild_journey(&mappers()).unwrap(); // The first rebuild is a full one.
    expect(&mut dest);
    // The same records written again are mapped again, incrementally, in the same order.
    let raw = rows(&mut dest, "SELECT COUNT(*) FROM raw_records");
    dest.commit(&records()).unwrap();
    assert_eq!(rows(&mut dest, "SELECT COUNT(*) FROM raw_records"), raw);
    let stats = dest.rebuild_journey(&mappers()).unwrap();
    assert_eq!(
        stats.records, 3,
        "the records written again are mapped again"
    );
    expect(&mut dest);
}

/// PostgreSQL's full rebuild reads the raw records on a second connection in its snapshot; where the
/// server refuses that connection (here: a role allowed one connection, the one the dataset holds),
/// it reads them in its own transaction instead. Both ways give the same rows.
#[test]
fn a_postgres_full_rebuild_without_a_second_connection_gives_the_same_rows() {
    use growthflow_core::destination::postgres::PostgresTarget;

    let Some(mut expected) = journey_dataset(Backend::Postgres) else {
        return;
    };
    expected.rebuild_journey(&mappers()).unwrap();
    let Some(schema) = TestSchema::new("one_connection") else {
        return;
    };
    let Some(role) = OneConnectionRole::create(&schema) else {
        return;
    };
    let mut url = url::Url::parse(schema.url()).unwrap();
    url.set_username(&role.name).unwrap();
    let target = PostgresTarget::parse(url.as_str(), Some(schema.name())).unwrap();
    let (dest, refused) = blocking(|| {
        let dest = PostgresDestination::open(&target).unwrap();
        // The role's one connection is the dataset's: the rebuild's reader cannot have another.
        (dest, target.connect().map(drop).unwrap_err().to_string())
    });
    assert!(refused.contains("too many connections"), "{refused}");
    let reader = blocking(|| schema.client());
    let mut db = Db {
        store: Some(Store::Postgres(Box::new(dest))),
        file: None,
        reader: Some(reader),
        schema: Some(schema),
        _dir: None,
    };
    fill_journey(&mut db);
    let stats = db.rebuild_journey(&mappers()).unwrap();
    assert_eq!((stats.records, stats.orders), (12, 7));
    let rows = model(&mut db);
    assert_eq!(rows, model(&mut expected));
    assert_eq!(rows.0.len(), 7);
    // Dropped first: the schema and the role's connection go before the role.
    drop(db);
    drop(role);
}

/// A login role allowed one connection, owning the test schema (created by the dataset's first
/// open, as a user's would be); dropped, with its grants, when the test ends.
struct OneConnectionRole {
    name: String,
    admin_url: String,
}

impl OneConnectionRole {
    /// `None`, after one visible line, when the test server's user may not create roles.
    fn create(schema: &TestSchema) -> Option<OneConnectionRole> {
        let name = format!("{}_role", schema.name());
        let admin_url = schema.url().to_string();
        let sql = format!(
            "CREATE ROLE \"{name}\" LOGIN CONNECTION LIMIT 1;
             DO $$ BEGIN
               EXECUTE format('GRANT CREATE ON DATABASE %I TO %I', current_database(), '{name}');
             END $$;"
        );
        match blocking(|| admin(&admin_url).batch_execute(&sql)) {
            Ok(()) => Some(OneConnectionRole { name, admin_url }),
            Err(e) if e.code() == Some(&::postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
                use std::io::Write;
                let why = e
                    .as_db_error()
                    .map_or(e.to_string(), |d| d.message().to_string());
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "skipped: the test server's user may not create roles ({why})"
                );
                None
            }
            Err(e) => panic!("creating the test role: {e}"),
        }
    }
}

impl Drop for OneConnectionRole {
    fn drop(&mut self) {
        let sql = format!(
            "DROP OWNED BY \"{name}\" CASCADE; DROP ROLE \"{name}\";",
            name = self.name
        );
        let url = self.admin_url.clone();
        blocking(move || {
            let _ = admin(&url).batch_execute(&sql);
        });
    }
}

fn admin(url: &str) -> ::postgres::Client {
    growthflow_core::destination::postgres::PostgresTarget::parse(url, None)
        .unwrap()
        .connect()
        .unwrap()
}
