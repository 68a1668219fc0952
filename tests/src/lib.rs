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
