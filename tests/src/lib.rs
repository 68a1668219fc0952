//! Shared harness of the end-to-end tests (`tests/tests/*_e2e.rs`): run a `growthflow` command
//! in-process exactly as a user would, open the dataset it wrote, and compare datasets and money the
//! same way in every platform's test.

/// The README's code, compiled by `cargo test` (its Rust snippet is a doctest), so that what a new user
/// copies from it builds against today's API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Days, NaiveDate, Utc};
use growthflow_cli::app;
use growthflow_cli::cli::Cli;
use growthflow_core::destination::postgres::testing::{blocking, server_url, TestSchema};
use growthflow_core::destination::postgres::PostgresTarget;
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::http::{Clock, TestClock, TokioClock};
use growthflow_sandbox::{Sandbox, SandboxConfig};
use rusqlite::Connection;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

/// Run `growthflow -q --config CONFIG ARGS…` in-process; the exit code and what it printed on stdout.
pub async fn cli(config: &Path, args: &[&str]) -> (i32, String) {
    let parsed = parse(config, args);
    let mut out = Vec::new();
    let code = app::run(parsed, &mut out).await;
    (code, String::from_utf8(out).unwrap())
}

/// [`cli`] with `sync` and `backfill` timed on `clock` (`app::run_with_clock`): give it the clock
/// the sandbox was started on ([`Sandbox::start_with_clock`]), a [`TestClock::yielding`], and every
/// throttle, retry and job poll is waited out on it at once, the platform seeing that time pass.
/// Tests about real time (signals, `--deadline`, one run waiting for another's lock) use [`cli`].
pub async fn cli_on(clock: &TestClock, config: &Path, args: &[&str]) -> (i32, String) {
    let parsed = parse(config, args);
    let mut out = Vec::new();
    let code = app::run_with_clock(parsed, &mut out, Arc::new(clock.clone())).await;
    (code, String::from_utf8(out).unwrap())
}

/// [`cli_on`] on a [`SandboxClock`]: "today" is the sandbox's last day.
pub async fn cli_at(clock: &SandboxClock, config: &Path, args: &[&str]) -> (i32, String) {
    let parsed = parse(config, args);
    let mut out = Vec::new();
    let code = app::run_with_clock(parsed, &mut out, Arc::new(clock.clone())).await;
    (code, String::from_utf8(out).unwrap())
}

/// The clock of a [`RecentSandbox`]: its calendar stands still at a simulated now (the sandbox's
/// `end`), its sleeps are virtual ([`SandboxClock::at`]) or real ([`SandboxClock::real_time_at`]).
///
/// Give it to the sandbox ([`Sandbox::start_with_clock`]) and to the commands ([`cli_at`]): the
/// connectors that read "up to today" read up to the sandbox's last day whatever day the tests run,
/// and however long the runs have slept (the default sandbox ends at 23:59:59: a calendar that moved
/// with the sleeps would turn to the next day within one run, and two runs of one test would read
/// different ranges).
#[derive(Debug, Clone)]
pub struct SandboxClock {
    time: Arc<dyn Clock>,
    utc: DateTime<Utc>,
}

impl SandboxClock {
    /// Virtual time, as [`TestClock::yielding`]: every throttle, retry and job poll is waited out at
    /// once, the platforms seeing that time pass. Not for a run that waits for another run (a lock
    /// wait on virtual time is over before the other run has done anything).
    ///
    /// It yields at each sleep, unlike [`TestClock::at`]: on sleeps that return at once, a sync on
    /// one runtime with its sandbox spins for ever in Shopify's cost bucket, which waits for points
    /// held by a request in flight whose task then never gets a turn to give them back.
    pub fn at(utc: DateTime<Utc>) -> SandboxClock {
        SandboxClock {
            time: Arc::new(TestClock::yielding()),
            utc,
        }
    }

    /// Real time (tokio's), for runs that wait for each other; only the calendar is pinned.
    pub fn real_time_at(utc: DateTime<Utc>) -> SandboxClock {
        SandboxClock {
            time: Arc::new(TokioClock),
            utc,
        }
    }
}

impl Clock for SandboxClock {
    fn now(&self) -> std::time::Instant {
        self.time.now()
    }
    fn sleep(
        &self,
        d: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        self.time.sleep(d)
    }
    fn utc_now(&self) -> DateTime<Utc> {
        self.utc
    }
}

/// Days of data a [`RecentSandbox::start`]'s configs read, up to the sandbox's last day. Every
/// stream of every platform still has records in them (the newest WooCommerce coupon, the stream's
/// last, was modified 119 days before the end), for about a fifth of what a sync from 2015 reads:
/// Meta's 730 days of insights and GA4's empty years before its 180 days of traffic are most of that.
pub const RECENT_DAYS: u64 = 120;

/// The default sandbox on a [`SandboxClock`] at its end, and configs syncing all five platforms over
/// its last days only: for tests that sync every platform and whose assertions compare runs or
/// datasets with each other, not with the store's whole volume.
pub struct RecentSandbox {
    /// The running sandbox, its timers on [`RecentSandbox::clock`].
    pub sandbox: Sandbox,
    /// The clock of the sandbox and of the commands run with [`RecentSandbox::cli`].
    pub clock: SandboxClock,
    /// The configs' `start_date`: [`RECENT_DAYS`] (or the days given) before the sandbox's last day.
    pub since: NaiveDate,
}

impl std::fmt::Debug for RecentSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentSandbox")
            .field("sandbox", &self.sandbox)
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

impl RecentSandbox {
    /// On virtual time ([`SandboxClock::at`]), reading the last [`RECENT_DAYS`] days: a sync is a
    /// few seconds of debug CPU and waits nothing on the wall clock.
    pub async fn start() -> RecentSandbox {
        Self::start_days(RECENT_DAYS).await
    }

    /// [`RecentSandbox::start`] reading the last `days` days: for tests whose runs need records but
    /// not every stream's (fewer than [`RECENT_DAYS`] leave some streams empty).
    pub async fn start_days(days: u64) -> RecentSandbox {
        let end = SandboxConfig::default().end;
        Self::start_on(SandboxClock::at(end), days).await
    }

    /// On real time ([`SandboxClock::real_time_at`]), reading the last `days` days, for runs that
    /// wait for each other. Up to 29 days (30 with the end day), Meta's insights are one synchronous
    /// read, no report job polled on the wall clock; Shopify's cost bucket is still waited for on it.
    pub async fn start_on_real_time(days: u64) -> RecentSandbox {
        let end = SandboxConfig::default().end;
        Self::start_on(SandboxClock::real_time_at(end), days).await
    }

    async fn start_on(clock: SandboxClock, days: u64) -> RecentSandbox {
        let config = SandboxConfig::default();
        let since = config.end.date_naive() - Days::new(days);
        let sandbox = Sandbox::start_with_clock(config, Arc::new(clock.clone()))
            .await
            .unwrap();
        RecentSandbox {
            sandbox,
            clock,
            since,
        }
    }

    /// [`all_platforms_config`] reading from [`RecentSandbox::since`].
    pub fn config(&self, dir: &Path, destination: &str) -> PathBuf {
        all_platforms_config_since(&self.sandbox, dir, destination, self.since)
    }

    /// Run a command on the sandbox's clock ([`cli_at`]).
    pub async fn cli(&self, config: &Path, args: &[&str]) -> (i32, String) {
        cli_at(&self.clock, config, args).await
    }
}

fn parse(config: &Path, args: &[&str]) -> Cli {
    let mut argv = vec!["growthflow", "-q", "--config", config.to_str().unwrap()];
    argv.extend_from_slice(args);
    Cli::try_parse_args_from(argv).expect("valid command line")
}

/// The store an end-to-end test writes to. Every platform suite runs its tests once on each (see
/// [`on_both_stores!`]): the same assertions hold a SQLite dataset and a PostgreSQL one.
#[derive(Debug)]
pub enum Store {
    /// `gf.db` beside each of the test's config files.
    Sqlite,
    /// A fresh schema on the test server for each of the test's config folders, dropped when the test
    /// ends.
    Postgres(Mutex<HashMap<PathBuf, TestSchema>>),
}

impl Store {
    /// The embedded default.
    pub fn sqlite() -> Store {
        Store::Sqlite
    }

    /// PostgreSQL; `None` when PostgreSQL tests are skipped (no server answers and
    /// `GROWTHFLOW_REQUIRE_POSTGRES` is not set).
    pub fn postgres() -> Option<Store> {
        server_url().map(|_| Store::Postgres(Mutex::default()))
    }

    /// The body of the `[destination]` table of a config written in `dir` (the same dataset each
    /// time for one `dir`).
    pub fn destination_toml(&self, dir: &Path) -> String {
        match self {
            Store::Sqlite => format!("url = \"sqlite://{}\"", dir.join("gf.db").display()),
            Store::Postgres(schemas) => {
                let mut schemas = schemas.lock().unwrap();
                let schema = schemas.entry(dir.to_path_buf()).or_insert_with(|| {
                    let label = dir.file_name().unwrap_or_default().to_string_lossy();
                    TestSchema::new(&format!("e2e_{label}")).expect("the server answered")
                });
                format!("url = \"{}\"\nschema = \"{}\"", schema.url(), schema.name())
            }
        }
    }
}

/// Run each named `async fn NAME(store: Store)` of an end-to-end suite as two tests, `NAME::sqlite` and
/// `NAME::postgres` (the latter skipped with a visible line where no test server answers).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::Store::sqlite()).await
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(store) = $crate::Store::postgres() {
                    super::$name(store).await
                }
            }
        }
    )* };
}

/// The dataset a test's config file names, to query with SQLite's SQL whichever store holds it.
#[derive(Debug)]
pub struct Dataset {
    conn: Connection,
    _mirror: Option<tempfile::TempDir>,
}

impl std::ops::Deref for Dataset {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// The tables a test reads, in the order they are copied.
const DATASET_TABLES: [&str; 6] = [
    "raw_records",
    "sync_state",
    "orders",
    "customers",
    "journey_events",
    "growthflow_sources",
];

/// One figure of each stream of a source in a `sync --json` summary (`"records"`, `"requests"`),
/// by stream name; every stream must have ended `ok`.
pub fn per_stream(source: &Value, figure: &str) -> HashMap<String, u64> {
    source["streams"]
        .as_array()
        .expect("the source's streams")
        .iter()
        .map(|s| {
            assert_eq!(s["status"], "ok", "{s}");
            (
                s["stream"].as_str().unwrap().to_string(),
                s[figure].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The dataset of a test's config file. A SQLite dataset is opened as is. A PostgreSQL one is copied,
/// value by value, into a fresh SQLite dataset made by the SQLite store's own migrations, each value
/// written as the SQLite store writes it (money as REAL, times as RFC 3339 text, flags as 0/1, JSON as
/// text): the suites' queries and assertions then run unchanged against what PostgreSQL holds.
pub fn db(config: &Path) -> Dataset {
    let text = std::fs::read_to_string(config).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let dest = table["destination"].as_table().unwrap();
    let url = dest["url"].as_str().unwrap();
    if let Some(file) = url.strip_prefix("sqlite://") {
        let conn = Connection::open(file).unwrap();
        // A sync's writer thread may still be finishing its last commit (a test that aborted it).
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        return Dataset {
            conn,
            _mirror: None,
        };
    }
    let schema = dest
        .get("schema")
        .and_then(|s| s.as_str())
        .unwrap_or("growthflow");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror.db");
    drop(SqliteDestination::open(&file).unwrap());
    let mut conn = Connection::open(&file).unwrap();
    let target = PostgresTarget::parse(url, Some(schema)).unwrap();
    // A schema the first sync has not created yet reads as an empty dataset, as a new SQLite file does.
    let rows: Vec<MirroredTable> = blocking(|| {
        let mut client = target.connect().unwrap();
        let mut rows = Vec::new();
        for t in DATASET_TABLES {
            let sql = format!("SELECT * FROM {t}");
            let Ok(stmt) = client.prepare(&sql) else {
                continue;
            };
            let columns = stmt
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect();
            let result = client.query(&stmt, &[]).unwrap();
            rows.push((t, columns, result.iter().map(sqlite_values).collect()));
        }
        rows
    });
    let tx = conn.transaction().unwrap();
    for (table, columns, values) in rows {
        let marks = vec!["?"; columns.len()].join(", ");
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({marks})",
            columns.join(", ")
        );
        let mut stmt = tx.prepare(&sql).unwrap();
        for row in values {
            stmt.execute(rusqlite::params_from_iter(row)).unwrap();
        }
    }
    tx.commit().unwrap();
    Dataset {
        conn,
        _mirror: Some(dir),
    }
}

/// A table read from PostgreSQL: its name, its columns and its rows in SQLite's terms.
type MirroredTable = (&'static str, Vec<String>, Vec<Vec<rusqlite::types::Value>>);

/// One PostgreSQL row as the SQLite store would have written it.
fn sqlite_values(row: &postgres::Row) -> Vec<rusqlite::types::Value> {
    use postgres::types::Type;
    use rusqlite::types::Value as V;
    (0..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_().clone();
            let v: Option<V> = match ty {
                Type::TEXT | Type::VARCHAR => row.get::<_, Option<String>>(i).map(V::Text),
                Type::INT2 => row.get::<_, Option<i16>>(i).map(|n| V::Integer(n.into())),
                Type::INT4 => row.get::<_, Option<i32>>(i).map(|n| V::Integer(n.into())),
                Type::INT8 => row.get::<_, Option<i64>>(i).map(V::Integer),
                Type::FLOAT8 => row.get::<_, Option<f64>>(i).map(V::Real),
                Type::NUMERIC => row
                    .get::<_, Option<Decimal>>(i)
                    .map(|d| V::Real(rust_decimal::prelude::ToPrimitive::to_f64(&d).unwrap())),
                Type::BOOL => row
                    .get::<_, Option<bool>>(i)
                    .map(|b| V::Integer(i64::from(b))),
                Type::TIMESTAMPTZ => row
                    .get::<_, Option<chrono::DateTime<chrono::Utc>>>(i)
                    .map(|t| V::Text(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))),
                Type::DATE => row
                    .get::<_, Option<NaiveDate>>(i)
                    .map(|d| V::Text(d.format("%Y-%m-%d").to_string())),
                Type::JSONB | Type::JSON => row
                    .get::<_, Option<Value>>(i)
                    .map(|v| V::Text(v.to_string())),
                other => panic!("no SQLite form for {other}"),
            };
            v.unwrap_or(V::Null)
        })
        .collect()
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

/// A config syncing every simulated platform of `sandbox` into `destination` (the body of its
/// `[destination]` table), written to `dir/growthflow.toml` with the GA4 key file beside it.
pub fn all_platforms_config(sandbox: &Sandbox, dir: &Path, destination: &str) -> PathBuf {
    let start = NaiveDate::from_ymd_opt(2015, 1, 1).expect("valid constant date");
    all_platforms_config_since(sandbox, dir, destination, start)
}

/// [`all_platforms_config`] with `start` as its `[sync] start_date`.
pub fn all_platforms_config_since(
    sandbox: &Sandbox,
    dir: &Path,
    destination: &str,
    start: NaiveDate,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join("ga4.json");
    std::fs::write(
        &key,
        sandbox
            .ga4()
            .service_account_json(&format!("{}/token", sandbox.ga4_url())),
    )
    .unwrap();
    let woo = sandbox.woocommerce();
    let text = format!(
        r#"
[destination]
{destination}

[sync]
start_date = "{start}"

[sources.woo]
type = "woocommerce"
url = "{woo_url}"
consumer_key = "{ck}"
consumer_secret = "{cs}"

[sources.shop]
type = "shopify"
shop = "sandbox"
access_token = "{shop_token}"
base_url = "{shop_url}"

[sources.email]
type = "klaviyo"
api_key = "{klaviyo_key}"
base_url = "{klaviyo_url}"

[sources.web]
type = "ga4"
property_id = "{ga4_property}"
credentials_file = "{ga4_key}"
base_url = "{ga4_url}"

[sources.ads]
type = "meta_ads"
ad_account_id = "act_{meta_account}"
access_token = "{meta_token}"
base_url = "{meta_url}"
"#,
        woo_url = sandbox.woocommerce_url(),
        ck = woo.consumer_key,
        cs = woo.consumer_secret,
        shop_token = sandbox.shopify().access_token,
        shop_url = sandbox.shopify_url(),
        klaviyo_key = sandbox.klaviyo().api_key,
        klaviyo_url = sandbox.klaviyo_url(),
        ga4_property = sandbox.ga4().property_id,
        ga4_key = key.display(),
        ga4_url = sandbox.ga4_url(),
        meta_account = sandbox.meta().account_id,
        meta_token = sandbox.meta().access_token,
        meta_url = sandbox.meta_url(),
        start = start.format("%Y-%m-%d"),
    );
    let path = dir.join("growthflow.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A relay to a sandbox that holds every connection until [`Gate::open`]ed: a run whose config
/// reaches some platforms through it ([`Gate::route`]) is held in the middle, so "while the run is
/// syncing" is a state a test waits for, never a guess about timing. Plain threads: it serves runs
/// on any runtime, and the test's own.
#[derive(Debug)]
pub struct Gate {
    addr: std::net::SocketAddr,
    sandbox: String,
    open: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl Gate {
    /// A closed gate to `sandbox`.
    pub fn to(sandbox: &Sandbox) -> Gate {
        let target: std::net::SocketAddr = sandbox
            .base_url()
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let shared = open.clone();
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                let open = shared.clone();
                std::thread::spawn(move || {
                    let (flag, opened) = &*open;
                    drop(opened.wait_while(flag.lock().unwrap(), |o| !*o).unwrap());
                    if let Ok(outbound) = std::net::TcpStream::connect(target) {
                        relay(inbound, outbound);
                    }
                });
            }
        });
        Gate {
            addr,
            sandbox: sandbox.base_url(),
            open,
        }
    }

    /// Let every held connection through, and every later one.
    pub fn open(&self) {
        let (flag, opened) = &*self.open;
        *flag.lock().unwrap() = true;
        opened.notify_all();
    }

    /// Make the config at `path` reach `platforms` (path prefixes: `woocommerce`, `shopify`,
    /// `klaviyo`, `ga4`, `meta`) through the gate; its other platforms stay direct.
    pub fn route(&self, path: &Path, platforms: &[&str]) {
        let mut text = std::fs::read_to_string(path).unwrap();
        for p in platforms {
            text = text.replace(
                &format!("\"{}/{p}", self.sandbox),
                &format!("\"http://{}/{p}", self.addr),
            );
        }
        std::fs::write(path, text).unwrap();
    }
}

/// Copy both ways between two connections until both are done, passing each half-close on.
fn relay(a: std::net::TcpStream, b: std::net::TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut &a, &mut &b);
        let _ = b.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut &b2, &mut &a2);
    let _ = a2.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
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
