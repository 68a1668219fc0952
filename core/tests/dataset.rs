//! The SQLite dataset: the contract's schema, migrations, atomic commits of records with their state, and
//! the journey-model rebuild (cross-store order numbering, stages, customers, stable ids).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use growthflow_core::connector::Record;
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::{DatasetWriter, Destination, RebuildStats, WriteBatch};
use growthflow_core::model::{
    Channel, CustomerRow, EventRow, JourneyMapper, JourneyRows, OrderRow, Stage,
};
use growthflow_core::{Error, ErrorKind, Result};
use rusqlite::types::Value as Sql;
use rusqlite::{params, Connection};
use rust_decimal::Decimal;
use serde_json::{json, Value};

// ---------------------------------------------------------------- helpers

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(1))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Every row of a query, as SQLite values.
fn rows(conn: &Connection, sql: &str) -> Vec<Vec<Sql>> {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Sql>(i)).collect())
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn rec(id: &str, cursor: Option<&str>, payload: Value) -> Record {
    Record {
        id: id.to_string(),
        cursor: cursor.map(str::to_string),
        payload,
    }
}

fn batch(source: &str, stream: &str, records: Vec<Record>, state: Option<Value>) -> WriteBatch {
    WriteBatch {
        source: source.into(),
        stream: stream.into(),
        records,
        state,
        replaces: None,
    }
}

fn t(s: &str) -> Sql {
    Sql::Text(s.to_string())
}
fn i(n: i64) -> Sql {
    Sql::Integer(n)
}
fn r(x: f64) -> Sql {
    Sql::Real(x)
}
const NULL: Sql = Sql::Null;

// ---------------------------------------------------------------- schema and migrations

fn assert_contract_schema(conn: &Connection) {
    let expect: &[(&str, &[&str])] = &[
        (
            "raw_records",
            &[
                "source",
                "stream",
                "record_id",
                "cursor_value",
                "payload",
                "synced_at",
            ],
        ),
        ("sync_state", &["source", "stream", "state", "updated_at"]),
        (
            "customers",
            &[
                "customer_id",
                "email",
                "first_seen_at",
                "first_order_at",
                "orders_count",
                "total_spent",
            ],
        ),
        (
            "orders",
            &[
                "source",
                "order_id",
                "customer_id",
                "email",
                "created_at",
                "currency",
                "total_price",
                "subtotal_price",
                "total_discounts",
                "total_refunded",
                "financial_status",
                "cancelled",
                "test",
                "utm_source",
                "utm_medium",
                "utm_campaign",
                "channel",
                "landing_page",
                "referrer",
                "customer_order_index",
            ],
        ),
        (
            "journey_events",
            &[
                "event_id",
                "source",
                "stream",
                "occurred_at",
                "date",
                "stage",
                "event_type",
                "channel",
                "campaign",
                "customer_id",
                "quantity",
                "value",
                "currency",
                "attributes",
            ],
        ),
    ];
    for (table, cols) in expect {
        assert_eq!(&columns(conn, table), cols, "columns of {table}");
    }
}

#[test]
fn migrations_create_the_contract_tables_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    // A folder that does not exist yet is created.
    let path = dir.path().join("nested/data/growthflow.db");
    let dest = SqliteDestination::open(&path).unwrap();
    assert!(path.exists());
    assert_contract_schema(dest.connection());
    assert_eq!(
        rows(
            dest.connection(),
            "SELECT version FROM schema_migrations ORDER BY version"
        ),
        vec![vec![i(1)], vec![i(2)]]
    );
}

#[test]
fn migrations_create_the_contract_tables_in_memory() {
    let dest = SqliteDestination::in_memory().unwrap();
    assert_contract_schema(dest.connection());
}

#[test]
fn reopening_an_existing_dataset_does_not_rerun_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growthflow.db");
    let before = {
        let mut dest = SqliteDestination::open(&path).unwrap();
        dest.commit(&[batch(
            "s",
            "orders",
            vec![rec("1", None, json!({"id": 1}))],
            Some(json!({"cursor": "c"})),
        )])
        .unwrap();
        rows(
            dest.connection(),
            "SELECT version, applied_at FROM schema_migrations",
        )
    };
    assert_eq!(before.len(), 2);
    let mut dest = SqliteDestination::open(&path).unwrap();
    assert_eq!(
        rows(
            dest.connection(),
            "SELECT version, applied_at FROM schema_migrations"
        ),
        before
    );
    assert_eq!(
        count(dest.connection(), "SELECT COUNT(*) FROM raw_records"),
        1
    );
    assert_eq!(
        dest.load_state("s", "orders").unwrap(),
        Some(json!({"cursor": "c"}))
    );
    assert_contract_schema(dest.connection());
}

// ---------------------------------------------------------------- commits

#[test]
fn commit_upserts_on_the_record_key() {
    let mut dest = SqliteDestination::in_memory().unwrap();
    dest.commit(&[batch(
        "s",
        "orders",
        vec![
            rec(
                "1",
                Some("2025-01-01T00:00:00Z"),
                json!({"id": 1, "v": "old"}),
            ),
            rec("2", Some("2025-01-01T00:00:00Z"), json!({"id": 2})),
        ],
        None,
    )])
    .unwrap();
    dest.commit(&[batch(
        "s",
        "orders",
        vec![rec(
            "1",
            Some("2025-01-02T00:00:00Z"),
            json!({"id": 1, "v": "new"}),
        )],
        None,
    )])
    .unwrap();
    // The same id in another stream or source is another record.
    dest.commit(&[
        batch("s", "refunds", vec![rec("1", None, json!({"r": 1}))], None),
        batch("t", "orders", vec![rec("1", None, json!({"o": 1}))], None),
    ])
    .unwrap();
    assert_eq!(
        rows(
            dest.connection(),
            "SELECT source, stream, record_id, cursor_value, payload FROM raw_records
             ORDER BY source, stream, record_id"
        ),
        vec![
            vec![
                t("s"),
                t("orders"),
                t("1"),
                t("2025-01-02T00:00:00Z"),
                t(r#"{"id":1,"v":"new"}"#)
            ],
            vec![
                t("s"),
                t("orders"),
                t("2"),
                t("2025-01-01T00:00:00Z"),
                t(r#"{"id":2}"#)
            ],
            vec![t("s"), t("refunds"), t("1"), NULL, t(r#"{"r":1}"#)],
            vec![t("t"), t("orders"), t("1"), NULL, t(r#"{"o":1}"#)],
        ]
    );
    let synced: String = dest
        .connection()
        .query_row(
            "SELECT synced_at FROM raw_records WHERE record_id = '2' AND stream = 'orders'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        DateTime::parse_from_rfc3339(&synced).is_ok() && synced.ends_with('Z'),
        "{synced}"
    );
}

#[test]
fn a_replacing_batch_drops_the_partition_rows_it_no_longer_has() {
    let mut dest = SqliteDestination::in_memory().unwrap();
    let day = |id: &str, d: &str| rec(id, Some(d), json!({"id": id}));
    dest.commit(&[
        batch(
            "g",
            "traffic_daily",
            vec![
                day("a", "2025-06-01"),
                day("b", "2025-06-01"),
                day("c", "2025-06-02"),
            ],
            None,
        ),
        batch("g", "other", vec![day("x", "2025-06-01")], None),
        batch("h", "traffic_daily", vec![day("y", "2025-06-01")], None),
    ])
    .unwrap();
    // 2025-06-01 is read again and only `a` and a new `d` remain.
    let mut replacing = batch(
        "g",
        "traffic_daily",
        vec![day("a", "2025-06-01"), day("d", "2025-06-01")],
        Some(json!({"cursor": "2025-06-01"})),
    );
    replacing.replaces = Some("2025-06-01".into());
    dest.commit(&[replacing]).unwrap();
    assert_eq!(
        rows(
            dest.connection(),
            "SELECT source, stream, record_id FROM raw_records ORDER BY source, stream, record_id"
        ),
        vec![
            vec![t("g"), t("other"), t("x")],
            vec![t("g"), t("traffic_daily"), t("a")],
            vec![t("g"), t("traffic_daily"), t("c")],
            vec![t("g"), t("traffic_daily"), t("d")],
            vec![t("h"), t("traffic_daily"), t("y")],
        ],
        "only the re-read day of that source and stream is replaced"
    );
}

#[test]
fn commit_saves_state_with_its_records_and_replaces_older_state() {
    let mut dest = SqliteDestination::in_memory().unwrap();
    assert_eq!(dest.load_state("s", "orders").unwrap(), None);
    dest.commit(&[batch(
        "s",
        "orders",
        vec![rec("1", Some("a"), json!({}))],
        Some(json!({"cursor": "a"})),
    )])
    .unwrap();
    assert_eq!(
        count(dest.connection(), "SELECT COUNT(*) FROM raw_records"),
        1
    );
    assert_eq!(
        dest.load_state("s", "orders").unwrap(),
        Some(json!({"cursor": "a"}))
    );
    // A batch without state leaves the saved state alone.
    dest.commit(&[batch(
        "s",
        "orders",
        vec![rec("2", Some("b"), json!({}))],
        None,
    )])
    .unwrap();
    assert_eq!(
        dest.load_state("s", "orders").unwrap(),
        Some(json!({"cursor": "a"}))
    );
    dest.commit(&[batch(
        "s",
        "orders",
        vec![],
        Some(json!({"cursor": "b", "extra": [1, 2]})),
    )])
    .unwrap();
    assert_eq!(
        dest.load_state("s", "orders").unwrap(),
        Some(json!({"cursor": "b", "extra": [1, 2]}))
    );
    assert_eq!(
        count(dest.connection(), "SELECT COUNT(*) FROM sync_state"),
        1
    );
    assert_eq!(dest.load_state("s", "other").unwrap(), None);
    assert_eq!(dest.load_state("other", "orders").unwrap(), None);
}

#[test]
fn a_failing_commit_leaves_neither_records_nor_state() {
    let mut dest = SqliteDestination::in_memory().unwrap();
    // No record can naturally fail to insert, so make one fail with a trigger on this connection.
    dest.connection()
        .execute_batch(
            "CREATE TEMP TRIGGER poison BEFORE INSERT ON main.raw_records
             WHEN NEW.record_id = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned record'); END;",
        )
        .unwrap();
    let err = dest
        .commit(&[
            batch(
                "s",
                "orders",
                vec![rec("1", Some("a"), json!({}))],
                Some(json!({"cursor": "a"})),
            ),
            batch(
                "s",
                "refunds",
                vec![
                    rec("ok", Some("b"), json!({})),
                    rec("poison", Some("c"), json!({})),
                ],
                Some(json!({"cursor": "c"})),
            ),
        ])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Destination, "{err:?}");
    assert!(err.to_string().contains("poisoned record"), "{err}");
    assert_eq!(
        count(dest.connection(), "SELECT COUNT(*) FROM raw_records"),
        0
    );
    assert_eq!(
        count(dest.connection(), "SELECT COUNT(*) FROM sync_state"),
        0
    );

    // The connection is usable afterwards.
    dest.commit(&[batch(
        "s",
        "orders",
        vec![rec("1", Some("a"), json!({}))],
        Some(json!({"cursor": "a"})),
    )])
    .unwrap();
    assert_eq!(
        count(dest.connection(), "SELECT COUNT(*) FROM raw_records"),
        1
    );
    assert_eq!(
        dest.load_state("s", "orders").unwrap(),
        Some(json!({"cursor": "a"}))
    );
}

#[tokio::test]
async fn dataset_writer_commits_records_and_state_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growthflow.db");
    let dest = SqliteDestination::open(&path).unwrap();
    dest.connection()
        .execute_batch(
            "CREATE TEMP TRIGGER poison BEFORE INSERT ON main.raw_records
             WHEN NEW.record_id = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned record'); END;",
        )
        .unwrap();
    let writer = DatasetWriter::spawn(Box::new(dest));
    writer.register_source("s", "teststore").await.unwrap();
    writer
        .commit(batch(
            "s",
            "orders",
            vec![
                rec("1", Some("2025-01-01"), json!({"id": 1})),
                rec("2", Some("2025-01-02"), json!({"id": 2})),
            ],
            Some(json!({"cursor": "2025-01-02"})),
        ))
        .await
        .unwrap();

    let reader = Connection::open(&path).unwrap();
    assert_eq!(
        rows(
            &reader,
            "SELECT record_id, payload FROM raw_records ORDER BY record_id"
        ),
        vec![
            vec![t("1"), t(r#"{"id":1}"#)],
            vec![t("2"), t(r#"{"id":2}"#)]
        ]
    );
    assert_eq!(
        rows(&reader, "SELECT source, stream, state FROM sync_state"),
        vec![vec![t("s"), t("orders"), t(r#"{"cursor":"2025-01-02"}"#)]]
    );
    assert_eq!(
        writer.load_state("s", "orders").await.unwrap(),
        Some(json!({"cursor": "2025-01-02"}))
    );

    let err = writer
        .commit(batch(
            "s",
            "orders",
            vec![
                rec("3", Some("2025-01-03"), json!({"id": 3})),
                rec("poison", Some("2025-01-04"), json!({})),
            ],
            Some(json!({"cursor": "2025-01-04"})),
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("poisoned record"), "{err}");
    assert_eq!(count(&reader, "SELECT COUNT(*) FROM raw_records"), 2);
    assert_eq!(
        writer.load_state("s", "orders").await.unwrap(),
        Some(json!({"cursor": "2025-01-02"}))
    );
    assert_eq!(
        rows(&reader, "SELECT source, type FROM growthflow_sources"),
        vec![vec![t("s"), t("teststore")]]
    );
}

// ---------------------------------------------------------------- the journey model

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
fn journey_dataset() -> SqliteDestination {
    let mut dest = SqliteDestination::in_memory().unwrap();
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
    dest
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

#[test]
fn rebuild_builds_orders_events_and_customers() {
    let mut dest = journey_dataset();
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
    let conn = dest.connection();
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

#[test]
fn rebuilding_twice_gives_identical_rows() {
    let mut dest = journey_dataset();
    let first = dest.rebuild_journey(&mappers()).unwrap();
    let before = model(dest.connection());
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
    assert_eq!(model(dest.connection()), before);
    assert_eq!(before.1.len(), 8);
}

#[test]
fn rebuild_follows_new_raw_data_and_renumbers() {
    let mut dest = journey_dataset();
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
    let conn = dest.connection();
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
fn model(conn: &Connection) -> (Rows, Rows, Rows) {
    (
        rows(conn, ORDERS),
        rows(conn, EVENTS),
        rows(conn, CUSTOMERS),
    )
}

#[test]
fn an_incremental_rebuild_gives_the_rows_of_a_full_one() {
    let mut dest = journey_dataset();
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
    let incremental = model(dest.connection());
    assert_eq!(
        count(
            dest.connection(),
            "SELECT COUNT(*) FROM journey_events WHERE event_id LIKE 'shop_a:refunds:r3:%'"
        ),
        0,
        "the dropped refund's event is gone"
    );
    assert_eq!(
        rows(
            dest.connection(),
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
    assert_eq!(model(dest.connection()), incremental);
}

#[test]
fn rebuild_without_any_mapper_reads_but_writes_nothing() {
    let mut dest = journey_dataset();
    dest.rebuild_journey(&mappers()).unwrap();
    let stats = dest.rebuild_journey(&[]).unwrap();
    assert_eq!(
        stats,
        RebuildStats {
            records: 12,
            ..RebuildStats::default()
        }
    );
    let conn = dest.connection();
    for table in ["orders", "journey_events", "customers"] {
        assert_eq!(
            count(conn, &format!("SELECT COUNT(*) FROM {table}")),
            0,
            "{table} is rebuilt from scratch"
        );
    }
}

#[test]
fn rebuild_on_a_file_is_visible_to_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growthflow.db");
    let mut dest = SqliteDestination::open(&path).unwrap();
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
    let reader = Connection::open(&path).unwrap();
    assert_eq!(
        rows(&reader, "SELECT order_id, customer_order_index FROM orders"),
        vec![vec![t("a1"), i(1)]]
    );
    let n: i64 = reader
        .query_row(
            "SELECT COUNT(*) FROM customers WHERE customer_id = ?1",
            params!["alice@example.com"],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}
