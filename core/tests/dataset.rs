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

both_stores!(
    migrations_create_the_contract_tables_on_a_file,
    migrations_create_the_contract_tables_in_memory,
    reopening_an_existing_dataset_does_not_rerun_migrations,
    a_dataset_from_a_newer_growthflow_is_refused,
    commit_upserts_on_the_record_key,
    a_replacing_batch_drops_the_partition_rows_it_no_longer_has,
    commit_saves_state_with_its_records_and_replaces_older_state,
    a_failing_commit_leaves_neither_records_nor_state,
    dataset_writer_commits_records_and_state_together,
    rebuild_builds_orders_events_and_customers,
    rebuilding_twice_gives_identical_rows,
    rebuild_follows_new_raw_data_and_renumbers,
    an_incremental_rebuild_gives_the_rows_of_a_full_one,
    rebuild_without_any_mapper_reads_but_writes_nothing,
    rebuild_on_a_file_is_visible_to_another_connection,
    a_source_keeps_its_type,
    state_can_be_listed_and_reset_per_stream_or_per_source,
);

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
    Sql::Text(canonical_json(s).unwrap_or_else(|| s.to_string()))
}
fn i(n: i64) -> Sql {
    Sql::Integer(n)
}
fn r(x: f64) -> Sql {
    Sql::Real(x)
}
const NULL: Sql = Sql::Null;

// ---------------------------------------------------------------- schema and migrations

fn assert_contract_schema(db: &mut Db) {
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
        assert_eq!(&db.columns(table), cols, "columns of {table}");
    }
}

fn migrations_create_the_contract_tables_on_a_file(backend: Backend) {
    // A folder (SQLite) or a schema (PostgreSQL) that does not exist yet is created.
    let Some(mut dest) = Db::file(backend, "migrations_file") else {
        return;
    };
    assert!(dest.exists());
    assert_contract_schema(&mut dest);
    assert_eq!(
        rows(
            &mut dest,
            "SELECT version FROM schema_migrations ORDER BY version"
        ),
        vec![
            vec![i(1)],
            vec![i(2)],
            vec![i(3)],
            vec![i(4)],
            vec![i(5)],
            vec![i(6)],
            vec![i(7)],
            vec![i(8)]
        ]
    );
    // The BI view (0003) is there, empty.
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM funnel_daily"), 0);
}

fn migrations_create_the_contract_tables_in_memory(backend: Backend) {
    let Some(mut dest) = Db::memory(backend, "migrations_memory") else {
        return;
    };
    assert_contract_schema(&mut dest);
}

fn reopening_an_existing_dataset_does_not_rerun_migrations(backend: Backend) {
    let Some(mut dest) = Db::file(backend, "reopen") else {
        return;
    };
    dest.commit(&[batch(
        "s",
        "orders",
        vec![rec("1", None, json!({"id": 1}))],
        Some(json!({"cursor": "c"})),
    )])
    .unwrap();
    let before = rows(
        &mut dest,
        "SELECT version, applied_at FROM schema_migrations",
    );
    assert_eq!(before.len(), 8);
    dest.reopen();
    assert_eq!(
        rows(
            &mut dest,
            "SELECT version, applied_at FROM schema_migrations"
        ),
        before
    );
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM raw_records"), 1);
    assert_eq!(
        dest.load_state("s", "orders").unwrap(),
        Some(json!({"cursor": "c"}))
    );
    assert_contract_schema(&mut dest);
}

fn a_dataset_from_a_newer_growthflow_is_refused(backend: Backend) {
    let Some(mut dest) = Db::file(backend, "too_new") else {
        return;
    };
    let sql = match backend {
        Backend::Sqlite => "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 'x')",
        Backend::Postgres => {
            "INSERT INTO schema_migrations (version, applied_at) VALUES (999, clock_timestamp())"
        }
    };
    match (&dest.file, dest.reader.as_mut()) {
        (Some(path), _) => {
            Connection::open(path).unwrap().execute(sql, []).unwrap();
        }
        (_, Some(reader)) => {
            blocking(|| reader.execute(sql, &[]).unwrap());
        }
        _ => unreachable!(),
    }
    let err = match backend {
        Backend::Sqlite => SqliteDestination::open(dest.file.as_ref().unwrap()).map(drop),
        Backend::Postgres => {
            let target = dest.schema.as_ref().unwrap().target();
            blocking(|| PostgresDestination::open(&target).map(drop))
        }
    }
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Destination);
    let found = growthflow_core::destination::schema_too_new(&err).expect("SchemaTooNew");
    assert_eq!((found.found, found.supported), (999, 8));
    assert!(err.to_string().contains("newer growthflow"), "{err}");
    // Nothing was touched.
    assert_eq!(
        count(&mut dest, "SELECT COUNT(*) FROM schema_migrations"),
        9
    );
}

// ---------------------------------------------------------------- commits

fn commit_upserts_on_the_record_key(backend: Backend) {
    let Some(mut dest) = Db::memory(backend, "t") else {
        return;
    };
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
            &mut dest,
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
    let synced = match &rows(
        &mut dest,
        "SELECT synced_at FROM raw_records WHERE record_id = '2' AND stream = 'orders'",
    )[0][0]
    {
        Sql::Text(s) => s.clone(),
        other => panic!("{other:?}"),
    };
    assert!(
        DateTime::parse_from_rfc3339(&synced).is_ok() && synced.ends_with('Z'),
        "{synced}"
    );
}

fn a_replacing_batch_drops_the_partition_rows_it_no_longer_has(backend: Backend) {
    let Some(mut dest) = Db::memory(backend, "t") else {
        return;
    };
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
            &mut dest,
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

fn commit_saves_state_with_its_records_and_replaces_older_state(backend: Backend) {
    let Some(mut dest) = Db::memory(backend, "t") else {
        return;
    };
    assert_eq!(dest.load_state("s", "orders").unwrap(), None);
    dest.commit(&[batch(
        "s",
        "orders",
        vec![rec("1", Some("a"), json!({}))],
        Some(json!({"cursor": "a"})),
    )])
    .unwrap();
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM raw_records"), 1);
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
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM sync_state"), 1);
    assert_eq!(dest.load_state("s", "other").unwrap(), None);
    assert_eq!(dest.load_state("other", "orders").unwrap(), None);
}

fn a_failing_commit_leaves_neither_records_nor_state(backend: Backend) {
    let Some(mut dest) = Db::memory(backend, "t") else {
        return;
    };
    // No record can naturally fail to insert, so make one fail with a trigger.
    dest.poison();
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
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM raw_records"), 0);
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM sync_state"), 0);

    // The connection is usable afterwards.
    dest.commit(&[batch(
        "s",
        "orders",
        vec![rec("1", Some("a"), json!({}))],
        Some(json!({"cursor": "a"})),
    )])
    .unwrap();
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM raw_records"), 1);
    assert_eq!(
        dest.load_state("s", "orders").unwrap(),
        Some(json!({"cursor": "a"}))
    );
}

fn dataset_writer_commits_records_and_state_together(backend: Backend) {
    let Some(mut db) = Db::file(backend, "writer") else {
        return;
    };
    db.poison();
    let dest = db.take();
    let reader = &mut db;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(writer_commits(dest, reader));
}

async fn writer_commits(dest: Box<dyn Destination>, reader: &mut Db) {
    let writer = DatasetWriter::spawn(dest);
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

    assert_eq!(
        rows(
            reader,
            "SELECT record_id, payload FROM raw_records ORDER BY record_id"
        ),
        vec![
            vec![t("1"), t(r#"{"id":1}"#)],
            vec![t("2"), t(r#"{"id":2}"#)]
        ]
    );
    assert_eq!(
        rows(reader, "SELECT source, stream, state FROM sync_state"),
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
    assert_eq!(count(reader, "SELECT COUNT(*) FROM raw_records"), 2);
    assert_eq!(
        writer.load_state("s", "orders").await.unwrap(),
        Some(json!({"cursor": "2025-01-02"}))
    );
    assert_eq!(
        rows(reader, "SELECT source, type FROM growthflow_sources"),
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

// ---------------------------------------------------------------- safety of the dataset

/// A source name stays with its connector type: a re-platformed store under the same name is refused
/// (kind `config`, saying how to proceed) instead of resuming from the other connector's cursors.
fn a_source_keeps_its_type(backend: Backend) {
    let Some(mut db) = Db::memory(backend, "keeps_type") else {
        return;
    };
    db.dest().register_source("shop", "woocommerce").unwrap();
    db.dest()
        .commit(&[batch(
            "shop",
            "orders",
            vec![],
            Some(json!({"cursor": "2025-01-02"})),
        )])
        .unwrap();
    // The same type again is fine.
    db.dest().register_source("shop", "woocommerce").unwrap();
    let err = db.dest().register_source("shop", "shopify").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("`shop` as type `woocommerce`, not `shopify`"),
        "{msg}"
    );
    assert!(msg.contains("growthflow state reset shop --yes"), "{msg}");
    assert!(msg.contains("new name"), "{msg}");
    assert_eq!(
        rows(&mut db, "SELECT source, type FROM growthflow_sources"),
        vec![vec![t("shop"), t("woocommerce")]]
    );
    assert_eq!(
        db.dest().load_state("shop", "orders").unwrap(),
        Some(json!({"cursor": "2025-01-02"}))
    );
    // Another name is another source.
    db.dest().register_source("shop2", "shopify").unwrap();
}

fn on_runtime<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The dataset holds customers' emails and orders: the file and its `-wal`/`-shm` are owner-only.
#[cfg(unix)]
#[test]
fn a_new_sqlite_dataset_and_its_log_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gf.db");
    let mut dest = SqliteDestination::open(&path).unwrap();
    dest.register_source("s", "teststore").unwrap();
    dest.commit(&[batch("s", "orders", vec![rec("1", None, json!({}))], None)])
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}: {:o}", file.display(), mode);
    }
}

/// Once the writer is closed, the `.db` file alone holds every commit: a copy of it without the
/// `-wal` has the records (a backup or a move between machines loses nothing).
#[test]
fn after_the_writer_closes_the_db_file_alone_holds_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gf.db");
    let dest = SqliteDestination::open(&path).unwrap();
    on_runtime(async {
        let writer = DatasetWriter::spawn(Box::new(dest));
        writer.register_source("s", "teststore").await.unwrap();
        writer
            .commit(batch(
                "s",
                "orders",
                vec![
                    rec("1", None, json!({"id": 1})),
                    rec("2", None, json!({"id": 2})),
                ],
                Some(json!({"cursor": "x"})),
            ))
            .await
            .unwrap();
        writer.close().await.unwrap();
        let err = writer.load_state("s", "orders").await.unwrap_err();
        assert!(err.to_string().contains("stopped"), "{err}");
    });
    let copy = tempfile::tempdir().unwrap();
    let copied = copy.path().join("copy.db");
    std::fs::copy(&path, &copied).unwrap();
    let conn = Connection::open(&copied).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM raw_records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    let state: String = conn
        .query_row("SELECT state FROM sync_state", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, r#"{"cursor":"x"}"#);
}

/// `state show` and `state reset`: a stream's reset keeps the source's type and the other streams; a
/// source's reset forgets its type too, so the same name can come back as another connector.
fn state_can_be_listed_and_reset_per_stream_or_per_source(backend: Backend) {
    let Some(mut db) = Db::memory(backend, "state_reset") else {
        return;
    };
    db.register_source("shop", "woocommerce").unwrap();
    db.register_source("ads", "meta_ads").unwrap();
    db.commit(&[
        batch(
            "shop",
            "orders",
            vec![rec("1", None, json!({}))],
            Some(json!({"c": 1})),
        ),
        batch("shop", "customers", vec![], Some(json!({"c": 2}))),
        batch("ads", "insights", vec![], Some(json!({"d": "2025-01-01"}))),
    ])
    .unwrap();
    let all = db.saved_states(None).unwrap();
    let listed: Vec<(&str, Option<&str>, &str, &Value)> = all
        .iter()
        .map(|s| {
            (
                s.source.as_str(),
                s.source_type.as_deref(),
                s.stream.as_str(),
                &s.state,
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (
                "ads",
                Some("meta_ads"),
                "insights",
                &json!({"d": "2025-01-01"})
            ),
            ("shop", Some("woocommerce"), "customers", &json!({"c": 2})),
            ("shop", Some("woocommerce"), "orders", &json!({"c": 1})),
        ]
    );
    for s in &all {
        assert!(
            DateTime::parse_from_rfc3339(&s.updated_at).is_ok(),
            "{}",
            s.updated_at
        );
    }
    assert_eq!(db.saved_states(Some("ads")).unwrap().len(), 1);

    assert_eq!(db.reset_state("shop", Some("orders")).unwrap(), 1);
    assert_eq!(db.load_state("shop", "orders").unwrap(), None);
    assert_eq!(
        db.load_state("shop", "customers").unwrap(),
        Some(json!({"c": 2}))
    );
    // The type is still remembered after a stream's reset.
    assert!(db.register_source("shop", "shopify").is_err());

    assert_eq!(db.reset_state("shop", None).unwrap(), 1);
    assert_eq!(db.saved_states(Some("shop")).unwrap(), vec![]);
    assert_eq!(
        db.load_state("ads", "insights").unwrap(),
        Some(json!({"d": "2025-01-01"}))
    );
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM raw_records"), 1);
    db.register_source("shop", "shopify").unwrap();
    assert_eq!(
        rows(
            &mut db,
            "SELECT type FROM growthflow_sources WHERE source = 'shop'"
        ),
        vec![vec![t("shopify")]]
    );
}
