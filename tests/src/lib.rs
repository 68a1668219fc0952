//! Shared harness of the end-to-end tests (`tests/tests/*_e2e.rs`): run a `growthflow` command
//! in-process exactly as a user would, open the dataset it wrote, and compare datasets and money the
//! same way in every platform's test.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use chrono::NaiveDate;
use growthflow_cli::app;
use growthflow_cli::cli::Cli;
use rusqlite::Connection;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

/// Run `growthflow -q --config CONFIG ARGS…` in-process; the exit code and what it printed on stdout.
pub async fn cli(config: &Path, args: &[&str]) -> (i32, String) {
    let mut argv = vec!["growthflow", "-q", "--config", config.to_str().unwrap()];
    argv.extend_from_slice(args);
    let parsed = Cli::try_parse_args_from(argv).expect("valid command line");
    let mut out = Vec::new();
    let code = app::run(parsed, &mut out).await;
    (code, String::from_utf8(out).unwrap())
}

/// The dataset `gf.db` beside a test's config file.
pub fn db(config: &Path) -> Connection {
    Connection::open(config.parent().unwrap().join("gf.db")).unwrap()
}

/// A platform number, sent as a string or a JSON number, as an exact decimal.
pub fn dec(v: &Value) -> Decimal {
    match v {
        Value::String(s) => Decimal::from_str(s).unwrap(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).unwrap(),
        other => panic!("not a number: {other}"),
    }
}

/// Money as the report rounds it: to the cent, half away from zero.
pub fn cents(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// The UTC date at the start of a timestamp string (`2025-03-05T14:22:31…`).
pub fn date_of(t: &Value) -> NaiveDate {
    NaiveDate::parse_from_str(&t.as_str().unwrap()[..10], "%Y-%m-%d").unwrap()
}

/// Every row of the tables that make up the dataset, sorted, minus sync timestamps: two datasets with
/// equal snapshots hold the same data.
pub fn snapshot(conn: &Connection) -> BTreeMap<&'static str, Vec<String>> {
    let queries = [
        (
            "raw_records",
            "SELECT source, stream, record_id, cursor_value, payload FROM raw_records",
        ),
        ("sync_state", "SELECT source, stream, state FROM sync_state"),
        ("orders", "SELECT * FROM orders"),
        ("customers", "SELECT * FROM customers"),
        ("journey_events", "SELECT * FROM journey_events"),
    ];
    let mut out = BTreeMap::new();
    for (name, sql) in queries {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut cols = Vec::new();
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    cols.push(format!("{v:?}"));
                }
                Ok(cols.join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        out.insert(name, rows);
    }
    out
}

/// The queries of [`snapshot`], for comparing stores.
const SNAPSHOT_QUERIES: [(&str, &str); 5] = [
    (
        "raw_records",
        "SELECT source, stream, record_id, cursor_value, payload FROM raw_records",
    ),
    ("sync_state", "SELECT source, stream, state FROM sync_state"),
    ("orders", "SELECT * FROM orders"),
    ("customers", "SELECT * FROM customers"),
    ("journey_events", "SELECT * FROM journey_events"),
];

/// One value written the same way whichever store it came from: numbers as exact decimals to six
/// places (SQLite keeps money as REAL), flags as 0/1, times as RFC 3339 UTC, JSON with sorted keys.
fn neutral_text(s: &str) -> String {
    if s.starts_with('{') || s.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Value>(s) {
            return format!("json:{}", sorted_json(v));
        }
    }
    format!("text:{s}")
}

fn neutral_number(d: Decimal) -> String {
    format!("num:{}", d.round_dp(6).normalize())
}

fn sorted_json(v: Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut entries: Vec<(String, Value)> = o.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted_json(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted_json).collect()),
        other => other,
    }
}

/// [`snapshot`] in a store-neutral form, to hold a SQLite dataset against a PostgreSQL one.
pub fn neutral_snapshot(conn: &Connection) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for (name, sql) in SNAPSHOT_QUERIES {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut cols = Vec::new();
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    cols.push(match v {
                        rusqlite::types::Value::Null => "null".to_string(),
                        rusqlite::types::Value::Integer(i) => neutral_number(i.into()),
                        rusqlite::types::Value::Real(f) => {
                            neutral_number(Decimal::from_f64_retain(f).unwrap())
                        }
                        rusqlite::types::Value::Text(t) => neutral_text(&t),
                        rusqlite::types::Value::Blob(b) => format!("{b:?}"),
                    });
                }
                Ok(cols.join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        out.insert(name, rows);
    }
    out
}

/// [`neutral_snapshot`] of a PostgreSQL dataset (`client`'s `search_path` is its schema).
pub fn neutral_snapshot_pg(client: &mut postgres::Client) -> BTreeMap<&'static str, Vec<String>> {
    use postgres::types::Type;
    let mut out = BTreeMap::new();
    for (name, sql) in SNAPSHOT_QUERIES {
        let mut rows: Vec<String> = client
            .query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        let ty = r.columns()[i].type_().clone();
                        let v: Option<String> = match ty {
                            Type::TEXT | Type::VARCHAR => {
                                r.get::<_, Option<String>>(i).map(|s| neutral_text(&s))
                            }
                            Type::INT4 => {
                                r.get::<_, Option<i32>>(i).map(|n| neutral_number(n.into()))
                            }
                            Type::INT8 => {
                                r.get::<_, Option<i64>>(i).map(|n| neutral_number(n.into()))
                            }
                            Type::NUMERIC => r.get::<_, Option<Decimal>>(i).map(neutral_number),
                            Type::BOOL => r
                                .get::<_, Option<bool>>(i)
                                .map(|b| neutral_number(u8::from(b).into())),
                            Type::TIMESTAMPTZ => r
                                .get::<_, Option<chrono::DateTime<chrono::Utc>>>(i)
                                .map(|t| {
                                    neutral_text(
                                        &t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                                    )
                                }),
                            Type::DATE => r
                                .get::<_, Option<NaiveDate>>(i)
                                .map(|d| neutral_text(&d.format("%Y-%m-%d").to_string())),
                            Type::JSONB => r
                                .get::<_, Option<Value>>(i)
                                .map(|v| format!("json:{}", sorted_json(v))),
                            other => panic!("no neutral form for {other}"),
                        };
                        v.unwrap_or_else(|| "null".to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        rows.sort();
        out.insert(name, rows);
    }
    out
}

/// Every raw record of `source`/`stream` as stored: record id → payload parsed back into JSON.
pub fn raw_payloads(conn: &Connection, source: &str, stream: &str) -> HashMap<String, Value> {
    let mut stmt = conn
        .prepare("SELECT record_id, payload FROM raw_records WHERE source = ?1 AND stream = ?2")
        .unwrap();
    stmt.query_map([source, stream], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })
    .unwrap()
    .map(|r| {
        let (id, p) = r.unwrap();
        (id, serde_json::from_str(&p).unwrap())
    })
    .collect()
}

/// A log sink a test shares with a `tracing_subscriber` writer (`move || sink.clone()`), read back
/// with [`Captured::text`] to check what reached the logs.
#[derive(Debug, Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
