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

mod several_sources;
mod state_saving;
mod stopping;

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
        payload: json!({"id": id, "updated": cursor}).into(),
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
