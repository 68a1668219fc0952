//! The dataset, in both stores (SQLite and PostgreSQL): the contract's schema, migrations, atomic
//! commits of records with their state, and the journey-model rebuild (cross-store order numbering,
//! stages, customers, stable ids). Every test runs once per store (`sqlite::NAME`, `postgres::NAME`);
//! the PostgreSQL ones each get a fresh schema on the test server (see
//! `growthflow_core::destination::postgres::testing`) and pass with a visible note where there is none.

use std::path::PathBuf;
use std::sync::Arc;

use ::postgres::types::Type;
use chrono::{DateTime, SecondsFormat, Utc};
use growthflow_core::connector::Record;
use growthflow_core::destination::postgres::testing::{blocking, TestSchema};
use growthflow_core::destination::postgres::PostgresDestination;
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::{
    DatasetWriter, Destination, RebuildStats, SavedState, WriteBatch,
};
use growthflow_core::model::{
    Channel, CustomerRow, EventRow, JourneyMapper, JourneyRows, OrderRow, Stage,
};
use growthflow_core::{Error, ErrorKind, Result};
use rusqlite::types::Value as Sql;
use rusqlite::Connection;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};

// ---------------------------------------------------------------- the two stores

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

enum Store {
    Sqlite(SqliteDestination),
    Postgres(Box<PostgresDestination>),
}

/// A dataset under test in either store, read back as SQLite-like values (PostgreSQL's NUMERIC as
/// REAL, BOOLEAN as 0/1, times as RFC 3339 text, JSON as canonical text) so one assertion holds for
/// both.
struct Db {
    store: Option<Store>,
    file: Option<PathBuf>,
    reader: Option<::postgres::Client>,
    schema: Option<TestSchema>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    /// A fresh dataset: SQLite in memory, or a new PostgreSQL schema. `None`: PostgreSQL is skipped.
    fn memory(backend: Backend, label: &str) -> Option<Db> {
        Self::new(backend, label, false)
    }

    /// A fresh dataset that can be opened again: a SQLite file in a folder that does not exist yet,
    /// or a new PostgreSQL schema.
    fn file(backend: Backend, label: &str) -> Option<Db> {
        Self::new(backend, label, true)
    }

    fn new(backend: Backend, label: &str, on_file: bool) -> Option<Db> {
        match backend {
            Backend::Sqlite if on_file => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("nested/data/growthflow.db");
                Some(Db {
                    store: Some(Store::Sqlite(SqliteDestination::open(&path).unwrap())),
                    file: Some(path),
                    reader: None,
                    schema: None,
                    _dir: Some(dir),
                })
            }
            Backend::Sqlite => Some(Db {
                store: Some(Store::Sqlite(SqliteDestination::in_memory().unwrap())),
                file: None,
                reader: None,
                schema: None,
                _dir: None,
            }),
            Backend::Postgres => {
                let schema = TestSchema::new(label)?;
                let (dest, reader) = blocking(|| (schema.open(), schema.client()));
                Some(Db {
                    store: Some(Store::Postgres(Box::new(dest))),
                    file: None,
                    reader: Some(reader),
                    schema: Some(schema),
                    _dir: None,
                })
            }
        }
    }

    fn backend(&self) -> Backend {
        if self.schema.is_some() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    fn dest(&mut self) -> &mut dyn Destination {
        match self.store.as_mut().expect("the dataset is open") {
            Store::Sqlite(d) => d,
            Store::Postgres(d) => d.as_mut(),
        }
    }

    /// Close and open the dataset again.
    fn reopen(&mut self) {
        let old = self.store.take();
        blocking(move || drop(old));
        self.store = Some(match (&self.file, &self.schema) {
            (Some(path), _) => Store::Sqlite(SqliteDestination::open(path).unwrap()),
            (_, Some(schema)) => Store::Postgres(Box::new(blocking(|| schema.open()))),
            _ => panic!("an in-memory dataset cannot be reopened"),
        });
    }

    /// Hand the store over (to a [`DatasetWriter`]); reads go through another connection after.
    fn take(&mut self) -> Box<dyn Destination> {
        match self.store.take().expect("the dataset is open") {
            Store::Sqlite(d) => Box::new(d),
            Store::Postgres(d) => d,
        }
    }

    /// Make inserting the raw record `poison` fail with "poisoned record", on this connection.
    fn poison(&mut self) {
        match (&self.store, &mut self.reader) {
            (Some(Store::Sqlite(d)), _) => d
                .connection()
                .execute_batch(
                    "CREATE TEMP TRIGGER poison BEFORE INSERT ON main.raw_records
                     WHEN NEW.record_id = 'poison'
                     BEGIN SELECT RAISE(ABORT, 'poisoned record'); END;",
                )
                .unwrap(),
            (_, Some(reader)) => blocking(|| {
                reader
                    .batch_execute(
                        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
                         BEGIN
                           IF NEW.record_id = 'poison' THEN RAISE EXCEPTION 'poisoned record'; END IF;
                           RETURN NEW;
                         END $$;
                         CREATE TRIGGER poison BEFORE INSERT ON raw_records
                           FOR EACH ROW EXECUTE FUNCTION poison();",
                    )
                    .unwrap()
            }),
            _ => panic!("no connection to poison"),
        }
    }

    fn columns(&mut self, table: &str) -> Vec<String> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid")
            }
            Backend::Postgres => format!(
                "SELECT column_name::TEXT FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = '{table}'
                 ORDER BY ordinal_position"
            ),
        };
        rows(self, &sql)
            .into_iter()
            .map(|r| match &r[0] {
                Sql::Text(t) => t.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn exists(&mut self) -> bool {
        match (&self.file, &self.schema) {
            (Some(path), _) => path.exists(),
            (_, Some(schema)) => {
                let name = schema.name().to_string();
                count(
                    self,
                    &format!("SELECT COUNT(*) FROM pg_namespace WHERE nspname = '{name}'"),
                ) == 1
            }
            _ => true,
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // The blocking PostgreSQL client may not be dropped on an async runtime's thread.
        let (store, reader) = (self.store.take(), self.reader.take());
        blocking(move || drop((store, reader)));
    }
}

/// Run a test once per store.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Sqlite)
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Postgres)
            })*
        }
    };
}

// ---------------------------------------------------------------- helpers

/// JSON with its object keys sorted, as text: JSONB keeps keys in its own order.
fn canonical_json(text: &str) -> Option<String> {
    fn sort(v: Value) -> Value {
        match v {
            Value::Object(o) => {
                let mut entries: Vec<(String, Value)> = o.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(sort).collect()),
            other => other,
        }
    }
    if !(text.starts_with('{') || text.starts_with('[')) {
        return None;
    }
    serde_json::from_str::<Value>(text)
        .ok()
        .map(|v| sort(v).to_string())
}

fn sqlite_value(v: Sql) -> Sql {
    match v {
        Sql::Text(s) => Sql::Text(canonical_json(&s).unwrap_or(s)),
        other => other,
    }
}

fn pg_value(row: &::postgres::Row, i: usize) -> Sql {
    let ty = row.columns()[i].type_().clone();
    let opt = |v: Option<Sql>| v.unwrap_or(Sql::Null);
    match ty {
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
            opt(row.get::<_, Option<String>>(i).map(Sql::Text))
        }
        Type::INT2 => opt(row.get::<_, Option<i16>>(i).map(|v| Sql::Integer(v.into()))),
        Type::INT4 => opt(row.get::<_, Option<i32>>(i).map(|v| Sql::Integer(v.into()))),
        Type::INT8 => opt(row.get::<_, Option<i64>>(i).map(Sql::Integer)),
        Type::FLOAT8 => opt(row.get::<_, Option<f64>>(i).map(Sql::Real)),
        Type::NUMERIC => opt(row
            .get::<_, Option<Decimal>>(i)
            .map(|d| Sql::Real(d.to_f64().unwrap()))),
        Type::BOOL => opt(row
            .get::<_, Option<bool>>(i)
            .map(|b| Sql::Integer(b.into()))),
        Type::TIMESTAMPTZ => opt(row
            .get::<_, Option<DateTime<Utc>>>(i)
            .map(|t| Sql::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)))),
        Type::DATE => opt(row
            .get::<_, Option<chrono::NaiveDate>>(i)
            .map(|d| Sql::Text(d.format("%Y-%m-%d").to_string()))),
        Type::JSONB | Type::JSON => opt(row
            .get::<_, Option<Value>>(i)
            .map(|v| Sql::Text(canonical_json(&v.to_string()).unwrap_or(v.to_string())))),
        other => panic!("no test conversion for {other}"),
    }
}

/// Every row of a query, as SQLite-like values.
fn rows(db: &mut Db, sql: &str) -> Vec<Vec<Sql>> {
    if let Some(reader) = db.reader.as_mut() {
        return blocking(|| {
            reader
                .query(sql, &[])
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| (0..r.len()).map(|i| pg_value(r, i)).collect())
                .collect()
        });
    }
    let read = |conn: &Connection| -> Vec<Vec<Sql>> {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, Sql>(i).map(sqlite_value))
                .collect()
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    };
    match (&db.store, &db.file) {
        // Another connection on a file, so what it sees is what was committed.
        (_, Some(path)) => read(&Connection::open(path).unwrap()),
        (Some(Store::Sqlite(d)), None) => read(d.connection()),
        _ => panic!("no connection to read with"),
    }
}

fn count(db: &mut Db, sql: &str) -> i64 {
    match rows(db, sql)[0][0] {
        Sql::Integer(n) => n,
        ref other => panic!("{other:?}"),
    }
}

impl Destination for Db {
    fn register_source(&mut self, source: &str, source_type: &str) -> Result<()> {
        let d = self.dest();
        blocking(|| d.register_source(source, source_type))
    }
    fn load_state(&mut self, source: &str, stream: &str) -> Result<Option<Value>> {
        let d = self.dest();
        blocking(|| d.load_state(source, stream))
    }
    fn commit(&mut self, batches: &[WriteBatch]) -> Result<()> {
        let d = self.dest();
        blocking(|| d.commit(batches))
    }
    fn rebuild_journey(&mut self, mappers: &[Arc<dyn JourneyMapper>]) -> Result<RebuildStats> {
        let d = self.dest();
        blocking(|| d.rebuild_journey(mappers))
    }
    fn saved_states(&mut self, source: Option<&str>) -> Result<Vec<SavedState>> {
        let d = self.dest();
        blocking(|| d.saved_states(source))
    }
    fn reset_state(&mut self, source: &str, stream: Option<&str>) -> Result<u64> {
        let d = self.dest();
        blocking(|| d.reset_state(source, stream))
    }
}

fn rec(id: &str, cursor: Option<&str>, payload: Value) -> Record {
    Record {
        id: id.to_string(),
        cursor: cursor.map(str::to_string),
        payload: payload.into(),
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
    Sql::Text(canonical_json(s).unwrap_or_else(|| s.to_string()))
}
fn i(n: i64) -> Sql {
    Sql::Integer(n)
}
fn r(x: f64) -> Sql {
    Sql::Real(x)
}
const NULL: Sql = Sql::Null;

// ---------------------------------------------------------------- the journey-model store

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
            // `orders_archive` gives the same orders again (two records naming one order).
            "orders" | "orders_archive" => {
                // Events a record may also give: ones named by `extra` as [key, quantity] pairs
                // (a key given twice, or `order:ID`, which the order's own event overrides).
                for extra in v["extra"].as_array().into_iter().flatten() {
                    let mut ev = EventRow::at(
                        extra[0].as_str().unwrap(),
                        time(v, "created")?,
                        Stage::Consideration,
                        "note",
                    );
                    ev.quantity = Decimal::from(extra[1].as_i64().unwrap());
                    rows.events.push(ev);
                }
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
    fill_journey(&mut dest);
    Some(dest)
}

/// The records of [`journey_dataset`], into `dest`.
fn fill_journey(dest: &mut Db) {
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

mod commits;
mod journey_model;
mod journey_rebuilds;
mod safety;
mod schema_and_migrations;
