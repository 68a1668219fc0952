//! The run history in both stores (`sync_runs`, `sync_run_streams`), the per-stream HTTP meters, and
//! the engine's new per-stream fields (`cursor`, `requests`, `waited_seconds`) and per-source
//! `seconds`. PostgreSQL tests each get a fresh schema (`postgres::testing`) and pass with a visible
//! note where there is no server, unless `GROWTHFLOW_REQUIRE_POSTGRES=1`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use futures::stream::BoxStream;
use growthflow_core::connector::{Connector, Page, ReadRequest, Record, StreamDef, SyncMode};
use growthflow_core::destination::postgres::testing::{blocking, TestSchema};
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::{DatasetWriter, Destination};
use growthflow_core::engine::{self, NoProgress, RunControl, SyncOptions};
use growthflow_core::http::metrics::{metered, RequestMeter};
use growthflow_core::http::{DefaultPolicy, HttpClient, Response, TestClock};
use growthflow_core::model::{JourneyMapper, JourneyRows};
use growthflow_core::runs::{new_run_id, run_status, RunEnd, RunStart, RunStream, RunSummary};
use growthflow_core::Result;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

// ---------------------------------------------------------------- the two stores

fn start(run_id: &str, minute: u32, streams: &[(&str, &str)]) -> RunStart {
    RunStart {
        run_id: run_id.to_string(),
        command: "sync".into(),
        host: "host-a".into(),
        pid: 4242,
        started_at: Utc.with_ymd_and_hms(2026, 1, 1, 12, minute, 0).unwrap(),
        streams: streams
            .iter()
            .map(|(s, t)| (s.to_string(), t.to_string()))
            .collect(),
    }
}

fn stream(source: &str, name: &str, records: u64, failed: Option<&str>) -> RunStream {
    RunStream {
        source: source.into(),
        stream: name.into(),
        records,
        status: if failed.is_some() { "failed" } else { "ok" }.into(),
        kind: failed.map(|_| "auth".to_string()),
        error: failed.map(str::to_string),
        cursor: failed.is_none().then(|| "2025-06-30T10:00:00Z".to_string()),
        requests: records / 10 + 1,
        waited_seconds: 1.5,
        seconds: 2.25,
    }
}

/// Start and end of one run, the running rows replaced by the results, then the order and limit of
/// `recent_runs` and its source filter.
fn history_is_recorded(dest: &mut dyn Destination) {
    let first = start("run-00", 0, &[("shop", "orders"), ("shop", "customers")]);
    dest.record_run_start(&first).unwrap();
    let runs = dest.recent_runs(10, &[]).unwrap();
    assert_eq!(runs.len(), 1);
    let running = &runs[0];
    assert_eq!(
        (
            running.run_id.as_str(),
            running.command.as_str(),
            running.host.as_str(),
            running.pid,
            running.status.as_str(),
            running.finished_at.as_deref(),
        ),
        ("run-00", "sync", "host-a", 4242, "running", None)
    );
    assert_eq!(running.started_at, "2026-01-01T12:00:00.000000Z");
    assert_eq!(running.seconds(), None);
    assert_eq!(
        running
            .streams
            .iter()
            .map(|s| (s.source.as_str(), s.stream.as_str(), s.status.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("shop", "customers", "running"),
            ("shop", "orders", "running")
        ]
    );

    let end = RunEnd {
        run_id: "run-00".into(),
        finished_at: Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 42).unwrap(),
        status: "failed".into(),
        error: None,
        streams: vec![
            stream("shop", "orders", 120, None),
            stream("shop", "customers", 0, Some("Shopify answered 401")),
        ],
    };
    dest.record_run_end(&end).unwrap();
    let runs = dest.recent_runs(10, &[]).unwrap();
    let done: &RunSummary = &runs[0];
    assert_eq!(done.status, "failed");
    assert_eq!(
        done.finished_at.as_deref(),
        Some("2026-01-01T12:00:42.000000Z")
    );
    assert_eq!(done.seconds(), Some(42.0));
    assert_eq!(done.records, 120);
    let mut expected = vec![end.streams[1].clone(), end.streams[0].clone()];
    expected.sort_by(|a, b| a.stream.cmp(&b.stream));
    assert_eq!(done.streams, expected);

    // Eleven more, started a minute apart: the last ten, newest first.
    for m in 1..=11 {
        let source = if m % 2 == 0 { "ads" } else { "shop" };
        let run = start(&format!("run-{m:02}"), m, &[(source, "x")]);
        dest.record_run_start(&run).unwrap();
        dest.record_run_end(&RunEnd {
            run_id: run.run_id.clone(),
            finished_at: run.started_at + chrono::Duration::seconds(5),
            status: "ok".into(),
            error: None,
            streams: vec![stream(source, "x", m as u64, None)],
        })
        .unwrap();
    }
    let ids = |runs: Vec<RunSummary>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    assert_eq!(
        ids(dest.recent_runs(10, &[]).unwrap()),
        (2..=11)
            .rev()
            .map(|m| format!("run-{m:02}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        ids(dest.recent_runs(3, &["ads".to_string()]).unwrap()),
        vec!["run-10", "run-08", "run-06"]
    );
    assert_eq!(
        ids(dest.recent_runs(100, &["shop".to_string()]).unwrap()).len(),
        7,
        "run-00 and the six odd ones"
    );
    assert!(dest
        .recent_runs(10, &["nobody".to_string()])
        .unwrap()
        .is_empty());
}

#[test]
fn sqlite_records_runs_and_lists_the_recent_ones() {
    let mut dest = SqliteDestination::in_memory().unwrap();
    history_is_recorded(&mut dest);
}

#[test]
fn postgres_records_runs_and_lists_the_recent_ones() {
    let Some(schema) = TestSchema::new("runs_history") else {
        return;
    };
    blocking(move || {
        let mut dest = schema.open();
        history_is_recorded(&mut dest);
        // TIMESTAMPTZ in PostgreSQL, as the contract's other times.
        let ty: String = schema
            .client()
            .query_one(
                "SELECT data_type FROM information_schema.columns
                 WHERE table_schema = $1 AND table_name = 'sync_runs' AND column_name = 'started_at'",
                &[&schema.name()],
            )
            .unwrap()
            .get(0);
        assert_eq!(ty, "timestamp with time zone");
    });
}

#[test]
fn a_missing_migration_below_the_newest_is_still_applied() {
    // Migrations developed side by side can land in either order: a dataset that recorded a later
    // version first still gets the earlier one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gf.db");
    drop(SqliteDestination::open(&path).unwrap());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP VIEW funnel_daily; DROP INDEX journey_events_date;
             DELETE FROM schema_migrations WHERE version = 3;",
        )
        .unwrap();
    }
    let dest = SqliteDestination::open(&path).unwrap();
    let versions: Vec<i64> = dest
        .connection()
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(versions, (1..=11).collect::<Vec<i64>>());
    let views: i64 = dest
        .connection()
        .query_row("SELECT COUNT(*) FROM funnel_daily", [], |r| r.get(0))
        .unwrap();
    assert_eq!(views, 0);
}

#[test]
fn run_ids_are_unique_and_sort_by_start() {
    let a = new_run_id();
    std::thread::sleep(Duration::from_millis(2));
    let b = new_run_id();
    assert_ne!(a, b);
    assert!(a < b, "{a} {b}");
    assert!(a.contains(&format!("-{:x}-", std::process::id())), "{a}");
}

#[test]
fn a_run_is_ok_failed_interrupted_or_locked() {
    use growthflow_core::engine::SourceOutcome;
    let source = |status: &'static str| SourceOutcome {
        source: "s".into(),
        source_type: "t".into(),
        status,
        streams: vec![],
        seconds: 0.0,
        locked_by: None,
    };
    assert_eq!(
        run_status(&[source("ok"), source("ok")], false, false),
        "ok"
    );
    assert_eq!(run_status(&[], false, false), "ok");
    assert_eq!(run_status(&[source("ok")], false, true), "failed");
    assert_eq!(
        run_status(&[source("ok"), source("failed")], false, false),
        "failed"
    );
    assert_eq!(run_status(&[source("failed")], true, false), "interrupted");
    assert_eq!(
        run_status(&[source("locked"), source("locked")], false, false),
        "locked"
    );
    assert_eq!(
        run_status(&[source("locked"), source("ok")], false, false),
        "ok"
    );
}

// ---------------------------------------------------------------- meters

fn client(clock: &TestClock) -> HttpClient {
    HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
}

async fn get(client: &HttpClient, url: String) -> Result<Response> {
    client.send("default", client.reqwest().get(url)).await
}

#[tokio::test]
async fn two_futures_sharing_one_client_are_metered_apart() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/slow"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "7"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let http = client(&clock);
    let (a, b) = (
        Arc::new(RequestMeter::default()),
        Arc::new(RequestMeter::default()),
    );
    let uri = server.uri();
    let three = metered(a.clone(), async {
        for _ in 0..3 {
            get(&http, format!("{uri}/fast")).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let throttled = metered(b.clone(), async {
        get(&http, format!("{uri}/slow")).await.unwrap();
    });
    futures::join!(three, throttled);
    // Outside any meter nothing is counted (and nothing fails).
    get(&http, format!("{uri}/fast")).await.unwrap();
    assert_eq!((a.requests(), b.requests()), (3, 2));
    assert_eq!(b.waited(), Duration::from_secs(7));
    // The throttle paused the endpoint for everyone: `three` may have waited part of it too, never
    // more.
    assert!(a.waited() <= Duration::from_secs(7), "{:?}", a.waited());
    assert_eq!(server.received_requests().await.unwrap().len(), 6);
}

// ---------------------------------------------------------------- the engine

/// Two streams read through one shared client: `orders` (incremental, two pages) and `products`
/// (full refresh, one page, throttled once).
#[derive(Debug)]
struct HttpConnector {
    http: HttpClient,
    base: String,
}

struct NoMapper;

impl JourneyMapper for NoMapper {
    fn source_type(&self) -> &'static str {
        "http"
    }
    fn map(&self, _: &str, _: &Value) -> Result<JourneyRows> {
        Ok(JourneyRows::default())
    }
}

#[async_trait]
impl Connector for HttpConnector {
    fn source_type(&self) -> &'static str {
        "http"
    }
    fn name(&self) -> &str {
        "web"
    }
    fn streams(&self) -> Vec<StreamDef> {
        vec![
            StreamDef {
                name: "orders",
                primary_key: &["id"],
                mode: SyncMode::Incremental {
                    cursor_field: "updated",
                },
                sorted: true,
                parent: None,
                description: "orders",
            },
            StreamDef {
                name: "products",
                primary_key: &["id"],
                mode: SyncMode::FullRefresh,
                sorted: false,
                parent: None,
                description: "products",
            },
        ]
    }
    async fn check(&self) -> Result<()> {
        Ok(())
    }
    fn read(&self, request: ReadRequest) -> BoxStream<'_, Result<Page>> {
        let pages = if request.stream == "orders" { 2 } else { 1 };
        Box::pin(async_stream::try_stream! {
            for page in 1..=pages {
                let url = format!("{}/{}?page={page}", self.base, request.stream);
                let body: Value = get(&self.http, url).await?.json()?;
                let records = body["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| Record {
                        id: r["id"].to_string(),
                        cursor: r["updated"].as_str().map(str::to_string),
                        payload: r.into(),
                    })
                    .collect();
                yield Page { records, ..Page::default() };
            }
        })
    }
    fn mapper(&self) -> Arc<dyn JourneyMapper> {
        Arc::new(NoMapper)
    }
}

#[tokio::test]
async fn each_stream_reports_its_requests_waits_and_saved_cursor() {
    let server = MockServer::start().await;
    let items = |ids: &[(u32, &str)]| json!({"items": ids.iter().map(|(id, at)| json!({"id": id, "updated": at})).collect::<Vec<_>>()});
    for (page, body) in [
        (
            "1",
            items(&[(1, "2025-01-02T00:00:00Z"), (2, "2025-01-03T00:00:00Z")]),
        ),
        ("2", items(&[(3, "2025-01-04T00:00:00Z")])),
    ] {
        Mock::given(method("GET"))
            .and(path("/orders"))
            .and(query_param("page", page))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/products"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "3"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/products"))
        .respond_with(ResponseTemplate::new(200).set_body_json(items(&[(9, "x")])))
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let connector = Arc::new(HttpConnector {
        http: client(&clock),
        base: server.uri(),
    });
    let writer = DatasetWriter::spawn(Box::new(SqliteDestination::in_memory().unwrap()));
    let options = SyncOptions {
        start: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        streams: vec![],
        full_refresh: false,
        window: None,
        concurrency: 4,
    };
    let control = RunControl {
        clock: Arc::new(clock.clone()),
        ..RunControl::default()
    };
    let sources: Vec<Arc<dyn Connector>> = vec![connector.clone()];
    let outcomes =
        engine::run_with(&sources, &writer, &options, Arc::new(NoProgress), &control).await;
    let streams = &outcomes[0].streams;
    assert_eq!(outcomes[0].status, "ok");
    let view = |i: usize| {
        let s = &streams[i];
        (
            s.stream.as_str(),
            s.records,
            s.requests,
            s.waited_seconds,
            s.cursor.clone(),
        )
    };
    assert_eq!(
        view(0),
        ("orders", 3, 2, 0.0, Some(json!("2025-01-04T00:00:00Z")))
    );
    assert_eq!(view(1), ("products", 1, 2, 3.0, None));
    // Timed on the test clock: the source took as long as its slowest stream's throttle.
    assert_eq!(outcomes[0].seconds, 3.0);
    let total: u64 = streams.iter().map(|s| s.requests).sum();
    assert_eq!(
        total as usize,
        server.received_requests().await.unwrap().len()
    );

    // The next run resumes after the saved cursor; a backfill keeps and reports it.
    let backfill = SyncOptions {
        window: Some(growthflow_core::connector::Window {
            since: options.start,
            until: Utc.with_ymd_and_hms(2025, 1, 2, 0, 0, 0).unwrap(),
        }),
        streams: vec!["orders".into()],
        ..options.clone()
    };
    let outcomes =
        engine::run_with(&sources, &writer, &backfill, Arc::new(NoProgress), &control).await;
    assert_eq!(
        outcomes[0].streams[0].cursor,
        Some(json!("2025-01-04T00:00:00Z"))
    );
    assert_eq!(outcomes[0].streams[0].requests, 2);

    // What the run history keeps of them.
    let end = RunEnd::from_outcomes("r", &outcomes, false, None);
    assert_eq!(end.status, "ok");
    assert_eq!(
        end.streams[0].cursor.as_deref(),
        Some("2025-01-04T00:00:00Z")
    );
    assert_eq!(end.streams[0].requests, 2);
    writer.close().await.unwrap();
}

#[test]
fn postgres_applies_a_missing_migration_below_the_newest_even_when_only_reading() {
    use growthflow_core::destination::postgres::PostgresDestination;
    let Some(schema) = TestSchema::new("runs_missing_version") else {
        return;
    };
    blocking(move || {
        drop(schema.open());
        schema
            .client()
            .batch_execute(
                "DROP VIEW funnel_daily; DROP INDEX journey_events_date; DROP INDEX orders_created_date;
                 DELETE FROM schema_migrations WHERE version = 3;",
            )
            .unwrap();
        let mut client = PostgresDestination::open_for_reading(&schema.target()).unwrap();
        let versions: Vec<i32> = client
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, (1..=11).collect::<Vec<i32>>());
        let rows: i64 = client
            .query_one("SELECT COUNT(*) FROM funnel_daily", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, 0);
    });
}
