//! The sync engine with a scripted connector: when state is saved (after each page of a sorted stream,
//! at the end of an unsorted one, never in a backfill), what the connector is handed back, and how
//! several sources and streams are reported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use futures::stream::BoxStream;
use growthflow_core::connector::{
    Connector, Page, ReadRequest, Record, StreamDef, SyncMode, Window,
};
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::{DatasetWriter, WriteBatch};
use growthflow_core::engine::{
    self, NoProgress, Progress, RunControl, SourceOutcome, StopReason, StopSignal, StreamOutcome,
    SyncOptions,
};
use growthflow_core::http::{Clock, TestClock};
use growthflow_core::model::{JourneyMapper, JourneyRows};
use growthflow_core::{Error, Result};
use rusqlite::Connection;
use serde_json::{json, Value};
use tokio::sync::oneshot;

// ---------------------------------------------------------------- a scripted connector

#[derive(Debug, Clone)]
enum Step {
    Page(Page),
    Fail(&'static str),
    /// Fails authentication.
    FailAuth(&'static str),
    /// The user stops the run (SIGTERM) here; yields nothing.
    Stop(StopSignal),
    /// Time passes (the HTTP client waiting out a throttle); yields nothing.
    Advance(TestClock, Duration),
    /// A request that never answers.
    Hang,
}

fn rec(id: &str, cursor: &str) -> Record {
    Record {
        id: id.to_string(),
        cursor: Some(cursor.to_string()),
        payload: json!({"id": id, "updated": cursor}),
    }
}

/// A page of `(id, cursor)` records.
fn page(records: &[(&str, &str)]) -> Step {
    Step::Page(Page {
        records: records.iter().map(|(id, c)| rec(id, c)).collect(),
        checkpoint: None,
        replaces: None,
    })
}

fn page_with_checkpoint(records: &[(&str, &str)], checkpoint: Value) -> Step {
    Step::Page(Page {
        records: records.iter().map(|(id, c)| rec(id, c)).collect(),
        checkpoint: Some(checkpoint),
        replaces: None,
    })
}

fn incremental(name: &'static str, sorted: bool) -> StreamDef {
    StreamDef {
        name,
        primary_key: &["id"],
        mode: SyncMode::Incremental {
            cursor_field: "updated",
        },
        sorted,
        parent: None,
        description: "test stream",
    }
}

fn full_refresh(name: &'static str) -> StreamDef {
    StreamDef {
        mode: SyncMode::FullRefresh,
        ..incremental(name, false)
    }
}

struct NoMapper;

impl JourneyMapper for NoMapper {
    fn source_type(&self) -> &'static str {
        "fake"
    }
    fn map(&self, _: &str, _: &Value) -> Result<JourneyRows> {
        Ok(JourneyRows::default())
    }
}

/// Plays a script per stream, records every `ReadRequest`, and (when given a writer) looks up the saved
/// state of the stream before yielding each step — i.e. after the engine committed the previous page.
#[derive(Debug)]
struct FakeConnector {
    name: String,
    streams: Vec<StreamDef>,
    script: HashMap<&'static str, Vec<Step>>,
    requests: Mutex<Vec<ReadRequest>>,
    observer: Option<DatasetWriter>,
    observed: Mutex<Vec<Option<Value>>>,
    /// A stream waits for its gate before its first page.
    gates: Mutex<HashMap<&'static str, oneshot::Receiver<()>>>,
}

impl FakeConnector {
    fn new(name: &str, streams: Vec<StreamDef>) -> Self {
        FakeConnector {
            name: name.to_string(),
            streams,
            script: HashMap::new(),
            requests: Mutex::default(),
            observer: None,
            observed: Mutex::default(),
            gates: Mutex::default(),
        }
    }

    fn script(mut self, stream: &'static str, steps: Vec<Step>) -> Self {
        self.script.insert(stream, steps);
        self
    }

    fn observe(mut self, writer: &DatasetWriter) -> Self {
        self.observer = Some(writer.clone());
        self
    }

    fn gate(self, stream: &'static str, rx: oneshot::Receiver<()>) -> Self {
        self.gates.lock().unwrap().insert(stream, rx);
        self
    }

    fn requests(&self) -> Vec<ReadRequest> {
        self.requests.lock().unwrap().clone()
    }

    fn observed(&self) -> Vec<Option<Value>> {
        self.observed.lock().unwrap().clone()
    }
}

#[async_trait]
impl Connector for FakeConnector {
    fn source_type(&self) -> &'static str {
        "fake"
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn streams(&self) -> Vec<StreamDef> {
        self.streams.clone()
    }
    async fn check(&self) -> Result<()> {
        Ok(())
    }
    fn read(&self, request: ReadRequest) -> BoxStream<'_, Result<Page>> {
        self.requests.lock().unwrap().push(request.clone());
        let steps = self
            .script
            .get(request.stream.as_str())
            .cloned()
            .unwrap_or_default();
        let gate = self.gates.lock().unwrap().remove(request.stream.as_str());
        Box::pin(async_stream::stream! {
            if let Some(gate) = gate {
                gate.await.expect("gate released");
            }
            for step in steps {
                if let Some(writer) = &self.observer {
                    let state = writer.load_state(&self.name, &request.stream).await.unwrap();
                    self.observed.lock().unwrap().push(state);
                }
                match step {
                    Step::Page(p) => yield Ok(p),
                    Step::Fail(message) => {
                        yield Err(Error::Transient { message: message.to_string() });
                        return;
                    }
                    Step::FailAuth(message) => {
                        yield Err(Error::Auth { message: message.to_string() });
                        return;
                    }
                    Step::Stop(signal) => signal.stop(StopReason::Interrupted),
                    Step::Advance(clock, d) => clock.sleep(d).await,
                    Step::Hang => futures::future::pending::<()>().await,
                }
            }
        })
    }
    fn mapper(&self) -> Arc<dyn JourneyMapper> {
        Arc::new(NoMapper)
    }
}

// ---------------------------------------------------------------- the dataset

struct Dataset {
    _dir: tempfile::TempDir,
    path: PathBuf,
    writer: DatasetWriter,
}

impl Dataset {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growthflow.db");
        let writer = DatasetWriter::spawn(Box::new(SqliteDestination::open(&path).unwrap()));
        Dataset {
            _dir: dir,
            path,
            writer,
        }
    }

    fn reader(&self) -> Connection {
        open(&self.path)
    }

    async fn state(&self, source: &str, stream: &str) -> Option<Value> {
        self.writer.load_state(source, stream).await.unwrap()
    }

    async fn set_state(&self, source: &str, stream: &str, state: Value) {
        self.writer
            .commit(WriteBatch {
                source: source.into(),
                stream: stream.into(),
                records: vec![],
                state: Some(state),
                replaces: None,
            })
            .await
            .unwrap();
    }

    /// `(source, stream, record_id)` of every raw record.
    fn records(&self) -> Vec<(String, String, String)> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare(
                "SELECT source, stream, record_id FROM raw_records ORDER BY source, stream, record_id",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn record_ids(&self, source: &str, stream: &str) -> Vec<String> {
        self.records()
            .into_iter()
            .filter(|(s, st, _)| s == source && st == stream)
            .map(|(_, _, id)| id)
            .collect()
    }
}

fn open(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

fn options() -> SyncOptions {
    SyncOptions {
        start: start(),
        streams: vec![],
        full_refresh: false,
        window: None,
        concurrency: 4,
    }
}

fn ok(stream: &str, records: u64) -> StreamOutcome {
    StreamOutcome {
        stream: stream.to_string(),
        records,
        status: "ok",
        error: None,
        kind: None,
        seconds: 0.0,
        cursor: None,
        requests: 0,
        waited_seconds: 0.0,
    }
}

/// `engine::run_with` on a test clock that only moves when told to (so `seconds` is exact).
/// `run` must end by itself (a stop ends a hanging request): a run still going after a minute fails
/// the test with a message instead of hanging the suite.
async fn ends<T>(run: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the run hung: a stop or an auth failure must end the requests still waiting")
}

async fn run(
    sources: &[Arc<dyn Connector>],
    writer: &DatasetWriter,
    options: &SyncOptions,
    progress: Arc<dyn Progress>,
) -> Vec<SourceOutcome> {
    let control = RunControl {
        clock: Arc::new(TestClock::new()),
        ..RunControl::default()
    };
    let mut outcomes = engine::run_with(sources, writer, options, progress, &control).await;
    // The saved cursors are held against the dataset itself here; core/tests/runs.rs checks them.
    for s in outcomes.iter_mut().flat_map(|o| o.streams.iter_mut()) {
        s.cursor = None;
    }
    outcomes
}

async fn sync(
    c: &FakeConnector,
    def: &StreamDef,
    ds: &Dataset,
    options: &SyncOptions,
) -> StreamOutcome {
    ds.writer.register_source(c.name(), "fake").await.unwrap();
    let mut outcome = engine::sync_stream(c, def, &ds.writer, options, &NoProgress).await;
    assert!(outcome.seconds >= 0.0);
    outcome.seconds = 0.0;
    outcome.cursor = None;
    outcome
}

fn three_pages() -> Vec<Step> {
    vec![
        page(&[("1", "2025-01-02T00:00:00Z"), ("2", "2025-01-03T00:00:00Z")]),
        page(&[("3", "2025-01-05T00:00:00Z"), ("4", "2025-01-04T00:00:00Z")]),
        page(&[("5", "2025-01-06T00:00:00Z")]),
    ]
}

fn two_pages_then_failure() -> Vec<Step> {
    let mut steps = three_pages();
    steps[2] = Step::Fail("page 3 exploded");
    steps
}

fn cursor(c: &str) -> Option<Value> {
    Some(json!({ "cursor": c }))
}

// ---------------------------------------------------------------- when state is saved

#[tokio::test]
async fn sorted_stream_saves_the_max_cursor_after_every_page() {
    let ds = Dataset::new();
    let def = incremental("orders", true);
    let c = FakeConnector::new("src", vec![def.clone()])
        .script("orders", three_pages())
        .observe(&ds.writer);
    let outcome = sync(&c, &def, &ds, &options()).await;
    assert_eq!(outcome, ok("orders", 5));
    assert_eq!(
        c.observed(),
        vec![
            None,
            cursor("2025-01-03T00:00:00Z"),
            // The page's maximum, not its last record.
            cursor("2025-01-05T00:00:00Z"),
        ]
    );
    assert_eq!(
        ds.state("src", "orders").await,
        cursor("2025-01-06T00:00:00Z")
    );
    assert_eq!(
        ds.record_ids("src", "orders"),
        vec!["1", "2", "3", "4", "5"]
    );
}

#[tokio::test]
async fn sorted_stream_failing_midway_keeps_committed_pages_and_their_cursor() {
    let ds = Dataset::new();
    let def = incremental("orders", true);
    let c = FakeConnector::new("src", vec![def.clone()]).script("orders", two_pages_then_failure());
    let outcome = sync(&c, &def, &ds, &options()).await;
    assert_eq!(outcome.status, "failed");
    assert_eq!(outcome.records, 4);
    let error = outcome.error.unwrap();
    assert!(error.contains("page 3 exploded"), "{error}");
    assert_eq!(ds.record_ids("src", "orders"), vec!["1", "2", "3", "4"]);
    assert_eq!(
        ds.state("src", "orders").await,
        cursor("2025-01-05T00:00:00Z")
    );
}

#[tokio::test]
async fn unsorted_stream_saves_state_only_at_the_end() {
    let ds = Dataset::new();
    let def = incremental("customers", false);
    let c = FakeConnector::new("src", vec![def.clone()])
        .script("customers", three_pages())
        .observe(&ds.writer);
    let outcome = sync(&c, &def, &ds, &options()).await;
    assert_eq!(outcome, ok("customers", 5));
    assert_eq!(c.observed(), vec![None, None, None]);
    assert_eq!(
        ds.state("src", "customers").await,
        cursor("2025-01-06T00:00:00Z")
    );
}

#[tokio::test]
async fn unsorted_stream_failing_midway_saves_no_state() {
    let ds = Dataset::new();
    let def = incremental("customers", false);
    let c =
        FakeConnector::new("src", vec![def.clone()]).script("customers", two_pages_then_failure());
    let outcome = sync(&c, &def, &ds, &options()).await;
    assert_eq!(outcome.status, "failed");
    assert_eq!(outcome.records, 4);
    assert_eq!(ds.record_ids("src", "customers"), vec!["1", "2", "3", "4"]);
    assert_eq!(ds.state("src", "customers").await, None);
}

#[tokio::test]
async fn unsorted_stream_failing_midway_keeps_the_previous_state() {
    let ds = Dataset::new();
    ds.set_state(
        "src",
        "customers",
        json!({"cursor": "2025-01-01T12:00:00Z"}),
    )
    .await;
    let def = incremental("customers", false);
    let c =
        FakeConnector::new("src", vec![def.clone()]).script("customers", two_pages_then_failure());
    sync(&c, &def, &ds, &options()).await;
    assert_eq!(
        ds.state("src", "customers").await,
        cursor("2025-01-01T12:00:00Z")
    );
}

#[tokio::test]
async fn the_next_run_is_handed_the_saved_state() {
    let ds = Dataset::new();
    let def = incremental("orders", true);
    let first = FakeConnector::new("src", vec![def.clone()]).script("orders", three_pages());
    sync(&first, &def, &ds, &options()).await;
    assert_eq!(
        first.requests(),
        vec![ReadRequest {
            stream: "orders".into(),
            state: None,
            start: start(),
            window: None,
        }]
    );

    // The second run finds nothing newer than the cursor; an older record re-read (a lookback) never
    // moves it back.
    let second = FakeConnector::new("src", vec![def.clone()])
        .script("orders", vec![page(&[("2", "2025-01-03T00:00:00Z")])]);
    let outcome = sync(&second, &def, &ds, &options()).await;
    assert_eq!(outcome, ok("orders", 1));
    let req = &second.requests()[0];
    assert_eq!(req.state, cursor("2025-01-06T00:00:00Z"));
    assert_eq!(req.state_cursor(), Some("2025-01-06T00:00:00Z"));
    assert_eq!(req.start, start());
    assert_eq!(req.window, None);
    assert_eq!(
        ds.state("src", "orders").await,
        cursor("2025-01-06T00:00:00Z")
    );

    // Same for an unsorted stream.
    let def = incremental("customers", false);
    let third = FakeConnector::new("src", vec![def.clone()])
        .script("customers", vec![page(&[("9", "2025-01-02T00:00:00Z")])]);
    ds.set_state(
        "src",
        "customers",
        json!({"cursor": "2025-01-04T00:00:00Z"}),
    )
    .await;
    sync(&third, &def, &ds, &options()).await;
    assert_eq!(third.requests()[0].state, cursor("2025-01-04T00:00:00Z"));
    assert_eq!(
        ds.state("src", "customers").await,
        cursor("2025-01-04T00:00:00Z")
    );
}

#[tokio::test]
async fn full_refresh_ignores_saved_state_but_saves_the_new_one() {
    let ds = Dataset::new();
    ds.set_state("src", "orders", json!({"cursor": "2025-01-04T00:00:00Z"}))
        .await;
    let def = incremental("orders", true);
    let c = FakeConnector::new("src", vec![def.clone()]).script(
        "orders",
        vec![
            page(&[("1", "2025-01-02T00:00:00Z")]),
            page(&[("7", "2025-02-01T00:00:00Z")]),
        ],
    );
    let options = SyncOptions {
        full_refresh: true,
        ..options()
    };
    let outcome = sync(&c, &def, &ds, &options).await;
    assert_eq!(outcome, ok("orders", 2));
    assert_eq!(
        c.requests(),
        vec![ReadRequest {
            stream: "orders".into(),
            state: None,
            start: start(),
            window: None,
        }]
    );
    assert_eq!(
        ds.state("src", "orders").await,
        cursor("2025-02-01T00:00:00Z")
    );
}

#[tokio::test]
async fn backfill_never_reads_or_writes_state() {
    let ds = Dataset::new();
    ds.set_state("src", "orders", json!({"cursor": "2025-06-01T00:00:00Z"}))
        .await;
    let window = Window {
        since: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2025, 2, 1, 0, 0, 0).unwrap(),
    };
    let options = SyncOptions {
        window: Some(window),
        ..options()
    };
    for (stream, sorted) in [("orders", true), ("customers", false)] {
        let def = incremental(stream, sorted);
        let c = FakeConnector::new("src", vec![def.clone()]).script(
            stream,
            vec![
                page(&[("1", "2025-01-02T00:00:00Z")]),
                // Even a record updated after the saved cursor does not move it: a backfill is no sync.
                page_with_checkpoint(
                    &[("2", "2025-07-01T00:00:00Z")],
                    json!({"cursor": "2025-07-01T00:00:00Z"}),
                ),
            ],
        );
        let outcome = sync(&c, &def, &ds, &options).await;
        assert_eq!(outcome, ok(stream, 2));
        assert_eq!(
            c.requests(),
            vec![ReadRequest {
                stream: stream.into(),
                state: None,
                start: start(),
                window: Some(window),
            }]
        );
        assert_eq!(ds.record_ids("src", stream), vec!["1", "2"]);
    }
    assert_eq!(
        ds.state("src", "orders").await,
        cursor("2025-06-01T00:00:00Z")
    );
    assert_eq!(ds.state("src", "customers").await, None);
}

#[tokio::test]
async fn a_failed_backfill_says_how_far_it_got() {
    let ds = Dataset::new();
    let window = Window {
        since: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2025, 2, 1, 0, 0, 0).unwrap(),
    };
    let backfill = SyncOptions {
        window: Some(window),
        ..options()
    };
    // A connector checkpointing whole days, stopped by a spent quota after the second day.
    let def = incremental("traffic_daily", false);
    let c = FakeConnector::new("src", vec![def.clone()]).script(
        "traffic_daily",
        vec![
            page_with_checkpoint(&[("d1", "2025-01-01")], json!({"cursor": "2025-01-01"})),
            page_with_checkpoint(&[("d2", "2025-01-02")], json!({"cursor": "2025-01-02"})),
            Step::Fail("daily quota spent"),
        ],
    );
    let outcome = sync(&c, &def, &ds, &backfill).await;
    assert_eq!(outcome.status, "failed");
    assert_eq!(outcome.records, 2);
    let error = outcome.error.unwrap();
    assert!(error.contains("daily quota spent"), "{error}");
    assert!(
        error.contains("this backfill committed traffic_daily through 2025-01-02"),
        "{error}"
    );
    // A sorted stream without checkpoints: its highest committed cursor.
    let def = incremental("orders", true);
    let c = FakeConnector::new("src", vec![def.clone()]).script(
        "orders",
        vec![
            page(&[("1", "2025-01-03T00:00:00Z"), ("2", "2025-01-05T00:00:00Z")]),
            Step::Fail("server error"),
        ],
    );
    let error = sync(&c, &def, &ds, &backfill).await.error.unwrap();
    assert!(
        error.contains("committed orders through 2025-01-05T00:00:00Z"),
        "{error}"
    );
    // The same failure in a sync says nothing of the kind: its state already holds the progress.
    let c = FakeConnector::new("src", vec![def.clone()]).script(
        "orders",
        vec![
            page(&[("1", "2025-01-03T00:00:00Z")]),
            Step::Fail("server error"),
        ],
    );
    let error = sync(&c, &def, &ds, &options()).await.error.unwrap();
    assert!(!error.contains("backfill"), "{error}");
    assert_eq!(ds.state("src", "traffic_daily").await, None);
}

#[tokio::test]
async fn connector_checkpoints_are_saved_verbatim() {
    let ds = Dataset::new();
    let def = incremental("report", true);
    let c = FakeConnector::new("src", vec![def.clone()])
        .script(
            "report",
            vec![
                page_with_checkpoint(
                    &[("d1", "2025-01-02T00:00:00Z")],
                    json!({"last_complete_date": "2025-01-02", "v": [1]}),
                ),
                page_with_checkpoint(
                    &[("d2", "2025-01-03T00:00:00Z")],
                    json!({"last_complete_date": "2025-01-03", "v": [1]}),
                ),
            ],
        )
        .observe(&ds.writer);
    let outcome = sync(&c, &def, &ds, &options()).await;
    assert_eq!(outcome, ok("report", 2));
    assert_eq!(
        c.observed(),
        vec![
            None,
            Some(json!({"last_complete_date": "2025-01-02", "v": [1]}))
        ]
    );
    // Not replaced by a derived {"cursor": …} at the end.
    assert_eq!(
        ds.state("src", "report").await,
        Some(json!({"last_complete_date": "2025-01-03", "v": [1]}))
    );
    // And handed back as is.
    let again = FakeConnector::new("src", vec![def.clone()]).script("report", vec![]);
    sync(&again, &def, &ds, &options()).await;
    assert_eq!(
        again.requests()[0].state,
        Some(json!({"last_complete_date": "2025-01-03", "v": [1]}))
    );
    assert_eq!(again.requests()[0].state_cursor(), None);
}

#[tokio::test]
async fn full_refresh_streams_keep_no_state() {
    let ds = Dataset::new();
    let def = full_refresh("products");
    let c = FakeConnector::new("src", vec![def.clone()]).script("products", three_pages());
    let outcome = sync(&c, &def, &ds, &options()).await;
    assert_eq!(outcome, ok("products", 5));
    assert_eq!(c.requests()[0].state, None);
    assert_eq!(ds.state("src", "products").await, None);
    assert_eq!(ds.record_ids("src", "products").len(), 5);
}

// ---------------------------------------------------------------- several sources and streams

#[derive(Default)]
struct RecordingProgress {
    records: Mutex<HashMap<(String, String), u64>>,
    finished: Mutex<Vec<(String, String)>>,
    /// Fired when the stream named in the key finishes.
    release: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl Progress for RecordingProgress {
    fn records(&self, source: &str, stream: &str, n: u64) {
        *self
            .records
            .lock()
            .unwrap()
            .entry((source.to_string(), stream.to_string()))
            .or_default() += n;
    }
    fn finished(&self, source: &str, outcome: &StreamOutcome) {
        self.finished
            .lock()
            .unwrap()
            .push((source.to_string(), outcome.stream.clone()));
        if let Some(tx) = self.release.lock().unwrap().remove(&outcome.stream) {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn run_commits_the_healthy_source_when_another_fails() {
    let ds = Dataset::new();
    let good = Arc::new(
        FakeConnector::new(
            "good",
            vec![incremental("orders", true), full_refresh("products")],
        )
        .script(
            "orders",
            vec![page(&[
                ("1", "2025-01-02T00:00:00Z"),
                ("2", "2025-01-03T00:00:00Z"),
            ])],
        )
        .script("products", vec![page(&[("p", "2025-01-01T00:00:00Z")])]),
    );
    let bad = Arc::new(
        FakeConnector::new(
            "bad",
            vec![incremental("orders", true), full_refresh("products")],
        )
        .script(
            "orders",
            vec![Step::Fail("TestPlatform answered 503: upstream down")],
        )
        .script("products", vec![page(&[("q", "2025-01-01T00:00:00Z")])]),
    );
    let sources: Vec<Arc<dyn Connector>> = vec![good.clone(), bad.clone()];
    let progress = Arc::new(RecordingProgress::default());
    let outcomes = run(&sources, &ds.writer, &options(), progress.clone()).await;

    let failed = StreamOutcome {
        stream: "orders".into(),
        records: 0,
        status: "failed",
        error: Some("temporary failure: TestPlatform answered 503: upstream down".into()),
        kind: Some("transient"),
        seconds: 0.0,
        cursor: None,
        requests: 0,
        waited_seconds: 0.0,
    };
    assert_eq!(
        outcomes,
        vec![
            SourceOutcome {
                source: "good".into(),
                source_type: "fake".into(),
                status: "ok",
                streams: vec![ok("orders", 2), ok("products", 1)],
                seconds: 0.0,
                locked_by: None,
            },
            SourceOutcome {
                source: "bad".into(),
                source_type: "fake".into(),
                status: "failed",
                streams: vec![failed, ok("products", 1)],
                seconds: 0.0,
                locked_by: None,
            },
        ]
    );
    assert!(outcomes[0].ok() && !outcomes[1].ok());
    assert_eq!(
        ds.records(),
        vec![
            ("bad".into(), "products".into(), "q".into()),
            ("good".into(), "orders".into(), "1".into()),
            ("good".into(), "orders".into(), "2".into()),
            ("good".into(), "products".into(), "p".into()),
        ]
    );
    assert_eq!(
        ds.state("good", "orders").await,
        cursor("2025-01-03T00:00:00Z")
    );
    assert_eq!(ds.state("bad", "orders").await, None);
    let counted = progress.records.lock().unwrap().clone();
    assert_eq!(counted.get(&("good".into(), "orders".into())), Some(&2));
    assert_eq!(progress.finished.lock().unwrap().len(), 4);

    // The contract's --json shape.
    let text = serde_json::to_value(&outcomes[1]).unwrap();
    assert_eq!(
        text,
        json!({"source": "bad", "type": "fake", "status": "failed", "streams": [
            {"stream": "orders", "records": 0, "status": "failed",
             "error": "temporary failure: TestPlatform answered 503: upstream down",
             "kind": "transient", "seconds": 0.0, "cursor": null, "requests": 0,
             "waited_seconds": 0.0},
            {"stream": "products", "records": 1, "status": "ok", "error": null, "kind": null,
             "seconds": 0.0, "cursor": null, "requests": 0, "waited_seconds": 0.0}
        ], "seconds": 0.0})
    );
    // The source types are remembered for rebuilding the model.
    let conn = ds.reader();
    let types: Vec<(String, String)> = conn
        .prepare("SELECT source, type FROM growthflow_sources ORDER BY source")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        types,
        vec![
            ("bad".into(), "fake".into()),
            ("good".into(), "fake".into())
        ]
    );
}

#[tokio::test]
async fn the_streams_filter_limits_what_is_read() {
    let ds = Dataset::new();
    let c = Arc::new(
        FakeConnector::new(
            "src",
            vec![
                incremental("a", true),
                incremental("b", true),
                incremental("c", false),
            ],
        )
        .script("a", vec![page(&[("1", "2025-01-02T00:00:00Z")])])
        .script("b", vec![page(&[("2", "2025-01-02T00:00:00Z")])])
        .script("c", vec![page(&[("3", "2025-01-02T00:00:00Z")])]),
    );
    let options = SyncOptions {
        streams: vec!["b".into()],
        ..options()
    };
    let sources: Vec<Arc<dyn Connector>> = vec![c.clone()];
    let outcomes = run(&sources, &ds.writer, &options, Arc::new(NoProgress)).await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].streams, vec![ok("b", 1)]);
    let read: Vec<String> = c.requests().into_iter().map(|r| r.stream).collect();
    assert_eq!(read, vec!["b"]);
    assert_eq!(ds.records(), vec![("src".into(), "b".into(), "2".into())]);
}

#[tokio::test]
async fn outcome_streams_are_in_declaration_order_whatever_order_they_finish_in() {
    let ds = Dataset::new();
    let (tx, rx) = oneshot::channel();
    // "first" cannot start before "second" has finished.
    let c = Arc::new(
        FakeConnector::new(
            "src",
            vec![incremental("first", true), incremental("second", true)],
        )
        .script("first", vec![page(&[("1", "2025-01-02T00:00:00Z")])])
        .script(
            "second",
            vec![page(&[
                ("2", "2025-01-02T00:00:00Z"),
                ("3", "2025-01-03T00:00:00Z"),
            ])],
        )
        .gate("first", rx),
    );
    let progress = Arc::new(RecordingProgress::default());
    progress.release.lock().unwrap().insert("second".into(), tx);
    let sources: Vec<Arc<dyn Connector>> = vec![c];
    let outcomes = run(&sources, &ds.writer, &options(), progress.clone()).await;
    assert_eq!(
        *progress.finished.lock().unwrap(),
        vec![
            ("src".to_string(), "second".to_string()),
            ("src".to_string(), "first".to_string())
        ],
        "the scenario really finishes out of order"
    );
    assert_eq!(outcomes[0].streams, vec![ok("first", 1), ok("second", 2)]);
    assert_eq!(outcomes[0].status, "ok");
}

#[tokio::test]
async fn a_source_that_cannot_be_registered_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growthflow.db");
    let dest = SqliteDestination::open(&path).unwrap();
    dest.connection()
        .execute_batch(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.growthflow_sources
             WHEN NEW.source = 'broken'
             BEGIN SELECT RAISE(ABORT, 'registration refused'); END;",
        )
        .unwrap();
    let writer = DatasetWriter::spawn(Box::new(dest));
    let broken = Arc::new(
        FakeConnector::new("broken", vec![incremental("orders", true)])
            .script("orders", vec![page(&[("1", "2025-01-02T00:00:00Z")])]),
    );
    let fine = Arc::new(
        FakeConnector::new("fine", vec![incremental("orders", true)])
            .script("orders", vec![page(&[("2", "2025-01-02T00:00:00Z")])]),
    );
    let sources: Vec<Arc<dyn Connector>> = vec![broken.clone(), fine.clone()];
    let outcomes = run(&sources, &writer, &options(), Arc::new(NoProgress)).await;
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].source, "broken");
    assert_eq!(outcomes[0].status, "failed");
    assert!(outcomes[0].streams.iter().all(|s| s.status == "failed"));
    let error = outcomes[0].streams[0].error.clone().unwrap();
    assert!(error.contains("registration refused"), "{error}");
    assert!(broken.requests().is_empty(), "nothing is read from it");
    assert_eq!(outcomes[1].source, "fine");
    assert_eq!(outcomes[1].streams, vec![ok("orders", 1)]);
    let ids: Vec<String> = open(&path)
        .prepare("SELECT source || '/' || record_id FROM raw_records")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(ids, vec!["fine/2"]);
}

// ---------------------------------------------------------------- stopping a run

fn control(clock: &TestClock) -> RunControl {
    RunControl {
        clock: Arc::new(clock.clone()),
        ..RunControl::default()
    }
}

#[tokio::test]
async fn a_stopped_run_commits_what_it_read_and_a_rerun_completes_it() {
    let ds = Dataset::new();
    let clock = TestClock::new();
    let ctl = control(&clock);
    let mut steps = three_pages();
    // The stop arrives while page 3 is being requested; the request never answers.
    steps.insert(2, Step::Stop(ctl.stop.clone()));
    steps.insert(3, Step::Hang);
    let c = Arc::new(
        FakeConnector::new(
            "src",
            vec![incremental("orders", true), incremental("customers", false)],
        )
        .script("orders", steps)
        .script("customers", vec![page(&[("c", "2025-01-02T00:00:00Z")])]),
    );
    let sources: Vec<Arc<dyn Connector>> = vec![c.clone()];
    let one_at_a_time = SyncOptions {
        concurrency: 1,
        ..options()
    };
    let outcomes = ends(engine::run_with(
        &sources,
        &ds.writer,
        &one_at_a_time,
        Arc::new(NoProgress),
        &ctl,
    ))
    .await;

    assert_eq!(outcomes[0].status, "interrupted");
    let s = &outcomes[0].streams;
    assert_eq!(
        (s[0].stream.as_str(), s[0].status, s[0].records),
        ("orders", "interrupted", 4)
    );
    assert_eq!(s[0].kind, Some("interrupted"));
    assert!(
        s[0].error
            .as_deref()
            .unwrap()
            .starts_with("stopped before the stream finished"),
        "{:?}",
        s[0].error
    );
    assert_eq!(
        (s[1].stream.as_str(), s[1].status, s[1].records),
        ("customers", "interrupted", 0)
    );
    assert_eq!(
        c.requests()
            .iter()
            .map(|r| r.stream.as_str())
            .collect::<Vec<_>>(),
        vec!["orders"],
        "no stream is started after the stop"
    );
    assert_eq!(ds.record_ids("src", "orders"), vec!["1", "2", "3", "4"]);
    assert_eq!(
        ds.state("src", "orders").await,
        cursor("2025-01-05T00:00:00Z")
    );
    assert_eq!(ds.state("src", "customers").await, None);

    // The next run starts from the saved cursor and ends with the dataset of an uninterrupted run.
    let rerun = Arc::new(
        FakeConnector::new(
            "src",
            vec![incremental("orders", true), incremental("customers", false)],
        )
        .script("orders", vec![page(&[("5", "2025-01-06T00:00:00Z")])])
        .script("customers", vec![page(&[("c", "2025-01-02T00:00:00Z")])]),
    );
    let sources: Vec<Arc<dyn Connector>> = vec![rerun.clone()];
    let outcomes = run(&sources, &ds.writer, &options(), Arc::new(NoProgress)).await;
    assert_eq!(outcomes[0].status, "ok");
    assert_eq!(
        rerun.requests()[0].state,
        cursor("2025-01-05T00:00:00Z"),
        "continued from the committed page"
    );

    let whole = Dataset::new();
    let once = Arc::new(
        FakeConnector::new(
            "src",
            vec![incremental("orders", true), incremental("customers", false)],
        )
        .script("orders", three_pages())
        .script("customers", vec![page(&[("c", "2025-01-02T00:00:00Z")])]),
    );
    let sources: Vec<Arc<dyn Connector>> = vec![once];
    run(&sources, &whole.writer, &options(), Arc::new(NoProgress)).await;
    assert_eq!(ds.records(), whole.records());
    for stream in ["orders", "customers"] {
        assert_eq!(
            ds.state("src", stream).await,
            whole.state("src", stream).await
        );
    }
}

#[tokio::test]
async fn a_stop_before_the_run_starts_reads_nothing() {
    let ds = Dataset::new();
    let ctl = control(&TestClock::new());
    ctl.stop.stop(StopReason::Interrupted);
    ctl.stop.stop(StopReason::Deadline);
    assert_eq!(
        ctl.stop.reason(),
        Some(StopReason::Interrupted),
        "the first reason wins"
    );
    let c = Arc::new(
        FakeConnector::new("src", vec![incremental("orders", true)])
            .script("orders", three_pages()),
    );
    let sources: Vec<Arc<dyn Connector>> = vec![c.clone()];
    let outcomes =
        engine::run_with(&sources, &ds.writer, &options(), Arc::new(NoProgress), &ctl).await;
    assert_eq!(outcomes[0].status, "interrupted");
    assert!(c.requests().is_empty());
    assert!(ds.records().is_empty());
}

#[tokio::test]
async fn a_passed_deadline_stops_the_run_and_fails_the_unfinished_streams() {
    let ds = Dataset::new();
    let clock = TestClock::new();
    let ctl = RunControl {
        deadline: Some(Duration::from_secs(30 * 60)),
        ..control(&clock)
    };
    let twenty_minutes = || Step::Advance(clock.clone(), Duration::from_secs(20 * 60));
    let c = Arc::new(
        FakeConnector::new(
            "src",
            vec![incremental("orders", true), incremental("refunds", true)],
        )
        .script(
            "orders",
            vec![
                page(&[("1", "2025-01-02T00:00:00Z")]),
                twenty_minutes(),
                page(&[("2", "2025-01-03T00:00:00Z")]),
                twenty_minutes(),
                page(&[("3", "2025-01-04T00:00:00Z")]),
                page(&[("4", "2025-01-05T00:00:00Z")]),
            ],
        )
        .script("refunds", vec![page(&[("r", "2025-01-02T00:00:00Z")])]),
    );
    let sources: Vec<Arc<dyn Connector>> = vec![c.clone()];
    let one_at_a_time = SyncOptions {
        concurrency: 1,
        ..options()
    };
    let outcomes = ends(engine::run_with(
        &sources,
        &ds.writer,
        &one_at_a_time,
        Arc::new(NoProgress),
        &ctl,
    ))
    .await;

    assert_eq!(outcomes[0].status, "failed");
    let orders = &outcomes[0].streams[0];
    assert_eq!(
        (orders.status, orders.records, orders.kind),
        ("failed", 3, Some("deadline"))
    );
    let error = orders.error.clone().unwrap();
    assert!(
        error.starts_with("deadline passed: the run's --deadline of 30m ran out"),
        "{error}"
    );
    assert_eq!(orders.seconds, 2400.0, "timed on the run's clock");
    let refunds = &outcomes[0].streams[1];
    assert_eq!(
        (refunds.status, refunds.records, refunds.kind),
        ("failed", 0, Some("deadline"))
    );
    assert_eq!(ctl.stop.reason(), Some(StopReason::Deadline));
    assert_eq!(
        c.requests().len(),
        1,
        "refunds is not started after the deadline"
    );
    assert_eq!(ds.record_ids("src", "orders"), vec!["1", "2", "3"]);
    assert_eq!(
        ds.state("src", "orders").await,
        cursor("2025-01-04T00:00:00Z")
    );
}

#[tokio::test]
async fn an_auth_failure_stops_the_other_streams_of_its_source() {
    let ds = Dataset::new();
    let clock = TestClock::new();
    let streams = vec![
        incremental("a", true),
        incremental("b", true),
        incremental("c", true),
    ];
    let bad = Arc::new(
        FakeConnector::new("bad", streams.clone())
            // "a" is waiting on its second page when "b" learns the token was revoked.
            .script(
                "a",
                vec![page(&[("1", "2025-01-02T00:00:00Z")]), Step::Hang],
            )
            .script("b", vec![Step::FailAuth("token revoked: create a new one")])
            .script("c", vec![page(&[("3", "2025-01-02T00:00:00Z")])]),
    );
    let fine = Arc::new(
        FakeConnector::new("fine", streams)
            .script("a", vec![page(&[("x", "2025-01-02T00:00:00Z")])])
            .script("b", vec![])
            .script("c", vec![]),
    );
    let sources: Vec<Arc<dyn Connector>> = vec![bad.clone(), fine.clone()];
    let two = SyncOptions {
        concurrency: 2,
        ..options()
    };
    let outcomes = ends(engine::run_with(
        &sources,
        &ds.writer,
        &two,
        Arc::new(NoProgress),
        &control(&clock),
    ))
    .await;

    let reason = "authentication failed: token revoked: create a new one";
    let s = &outcomes[0].streams;
    assert_eq!(outcomes[0].status, "failed");
    assert_eq!(s[1].error.as_deref(), Some(reason));
    for other in [&s[0], &s[2]] {
        assert_eq!(
            (other.status, other.kind),
            ("failed", Some("auth")),
            "{other:?}"
        );
        let error = other.error.clone().unwrap();
        assert!(error.starts_with(reason), "{error}");
    }
    assert_eq!(s[0].records, 1, "what was read before is kept");
    assert_eq!(
        bad.requests()
            .iter()
            .map(|r| r.stream.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "b"],
        "c makes no request"
    );
    assert_eq!(outcomes[1].status, "ok", "another source is not affected");
    assert_eq!(ds.record_ids("fine", "a"), vec!["x"]);
}
