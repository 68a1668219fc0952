//! The Growth Flow report against a hand-made dataset whose every number is worked out by hand.
//! (The dataset and its hand computation are in `fixture.rs`.)
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

const SCHEMA: &str = include_str!("../../src/destination/migrations/0001_init.sql");
const FUNNEL_DAILY: &str = include_str!("../../src/destination/migrations/0003_funnel_daily.sql");
/// The report reads the rollups (and their triggers note the rows written below).
const ROLLUPS: &str = include_str!("../../src/destination/migrations/0008_report_rollups.sql");
/// The rollups' indexes the report's queries read.
const ROLLUP_INDEXES: &str =
    include_str!("../../src/destination/migrations/0009_report_covering.sql");

fn db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(FUNNEL_DAILY).unwrap();
    conn.execute_batch(ROLLUPS).unwrap();
    conn.execute_batch(ROLLUP_INDEXES).unwrap();
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

mod campaigns;
mod currencies;
mod fixture;
mod funnel_daily;
mod postgres_access;
mod rendering;
mod rollups;
mod shape;
mod sources;
mod windows;

use fixture::fixture;
