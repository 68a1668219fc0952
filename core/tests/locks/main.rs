//! Locks in the dataset: a source (or the journey rebuild) is held by one run at a time, in both
//! stores; a lock is released on every way out of a run (its guard dropped, also when the sync
//! future is dropped half way); SQLite takes over the lock of a dead process or an expired
//! heartbeat, atomically; PostgreSQL's lock ends with its connection, and a run whose lock
//! connection died takes its locks again or stops the source. The engine skips a held source as
//! `locked` or waits for it on the run's clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use growthflow_core::connector::{Connector, Page, ReadRequest, Record, StreamDef, SyncMode};
use growthflow_core::destination::locks::{
    LockSession, LockSettings, LockTarget, SourceLock, TryLock, JOURNEY, PG_LOCK_KEY,
};
use growthflow_core::destination::postgres::testing::{blocking, TestSchema};
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::{DatasetWriter, LockHolder, RunOwner};
use growthflow_core::engine::{
    self, NoProgress, RunControl, SourceLocks, SourceOutcome, SyncOptions,
};
use growthflow_core::http::{Clock, TestClock};
use growthflow_core::model::{JourneyMapper, JourneyRows};
use growthflow_core::Result;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};

mod engine_runs;
mod postgres_connection_loss;
mod sqlite_takeover;

// ---------------------------------------------------------------- fakes

struct NoMapper;

impl JourneyMapper for NoMapper {
    fn source_type(&self) -> &'static str {
        "fake"
    }
    fn map(&self, _: &str, _: &Value) -> Result<JourneyRows> {
        Ok(JourneyRows::default())
    }
}

/// One full-refresh stream `orders`. Pages come from `pages` when given (the test feeds them; the
/// stream never ends while the sender lives), else one page of one record. Counts its reads and
/// tells `reading` when a read starts.
struct Fake {
    name: String,
    reads: AtomicUsize,
    reading: Arc<Notify>,
    pages: Mutex<Option<mpsc::UnboundedReceiver<Page>>>,
}

impl std::fmt::Debug for Fake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Fake {
    fn new(name: &str) -> Arc<Fake> {
        Arc::new(Fake {
            name: name.into(),
            reads: AtomicUsize::new(0),
            reading: Arc::new(Notify::new()),
            pages: Mutex::new(None),
        })
    }

    /// A source whose pages the test sends.
    fn fed(name: &str) -> (Arc<Fake>, mpsc::UnboundedSender<Page>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let f = Fake::new(name);
        *f.pages.lock().unwrap() = Some(rx);
        (f, tx)
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

fn page(id: &str) -> Page {
    Page {
        records: vec![Record {
            id: id.into(),
            cursor: None,
            payload: json!({ "id": id }).into(),
        }],
        ..Page::default()
    }
}

#[async_trait]
impl Connector for Fake {
    fn source_type(&self) -> &'static str {
        "fake"
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn streams(&self) -> Vec<StreamDef> {
        vec![StreamDef {
            name: "orders",
            primary_key: &["id"],
            mode: SyncMode::FullRefresh,
            sorted: false,
            parent: None,
            description: "test stream",
        }]
    }
    async fn check(&self) -> Result<()> {
        Ok(())
    }
    fn read(&self, _: ReadRequest) -> BoxStream<'_, Result<Page>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.reading.notify_one();
        match self.pages.lock().unwrap().take() {
            Some(mut rx) => Box::pin(async_stream::stream! {
                while let Some(p) = rx.recv().await {
                    yield Ok(p);
                }
            }),
            None => Box::pin(futures::stream::iter(vec![Ok(page("1"))])),
        }
    }
    fn mapper(&self) -> Arc<dyn JourneyMapper> {
        Arc::new(NoMapper)
    }
}

fn options() -> SyncOptions {
    SyncOptions {
        start: Utc::now(),
        streams: Vec::new(),
        full_refresh: false,
        window: None,
        concurrency: 2,
    }
}

fn owner(run_id: &str) -> RunOwner {
    RunOwner {
        run_id: run_id.into(),
        host: RunOwner::this_process().host,
        pid: std::process::id(),
    }
}

// ---------------------------------------------------------------- stores

/// A dataset in a temporary file (locks need a second connection, so not in memory).
struct SqliteFile {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl SqliteFile {
    fn new() -> SqliteFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gf.db");
        SqliteDestination::open(&path).unwrap();
        SqliteFile { _dir: dir, path }
    }
    fn writer(&self) -> DatasetWriter {
        DatasetWriter::spawn(Box::new(SqliteDestination::open(&self.path).unwrap()))
    }
    fn target(&self) -> LockTarget {
        LockTarget::Sqlite(self.path.clone())
    }
    fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).unwrap()
    }
}

async fn session(target: LockTarget, run_id: &str) -> LockSession {
    LockSession::open(target, owner(run_id), LockSettings::default())
        .await
        .unwrap()
}

async fn session_at(target: LockTarget, run_id: &str, now: DateTime<Utc>) -> LockSession {
    let settings = LockSettings {
        wall_clock: Arc::new(move || now),
        ..LockSettings::default()
    };
    LockSession::open(target, owner(run_id), settings)
        .await
        .unwrap()
}

fn taken(t: TryLock) -> SourceLock {
    match t {
        TryLock::Taken(l) => l,
        TryLock::Held(h) => panic!("expected the lock, held by {h}"),
    }
}

fn held(t: TryLock) -> LockHolder {
    match t {
        TryLock::Held(h) => h,
        TryLock::Taken(l) => panic!("expected {} held by another run", l.key()),
    }
}

/// Two sessions on one dataset: one holder at a time, told who holds it, released on drop.
async fn one_holder_at_a_time(target: LockTarget) {
    let a = session(target.clone(), "run-a").await;
    let b = session(target, "run-b").await;
    let shop = taken(a.try_lock("shop").await.unwrap());
    assert_eq!(shop.key(), "shop");
    assert_eq!(shop.lost(), None);
    let holder = held(b.try_lock("shop").await.unwrap());
    assert_eq!(
        (holder.run_id.as_str(), holder.pid),
        ("run-a", i64::from(std::process::id()))
    );
    assert_eq!(holder.host, RunOwner::this_process().host);
    assert!(
        DateTime::parse_from_rfc3339(&holder.since).is_ok(),
        "{}",
        holder.since
    );
    assert!(holder.to_string().starts_with("run run-a on "), "{holder}");
    // Asking again for a lock it holds is answered "held" (by this run), never a second guard.
    assert_eq!(held(a.try_lock("shop").await.unwrap()).run_id, "run-a");
    // Another source, and the journey rebuild, are separate locks.
    let ads = taken(b.try_lock("ads").await.unwrap());
    let journey = taken(b.try_lock(JOURNEY).await.unwrap());
    assert_eq!(held(a.try_lock(JOURNEY).await.unwrap()).run_id, "run-b");
    assert_eq!(a.heartbeat().await.unwrap(), Vec::<String>::new());
    assert_eq!(a.held().await.unwrap(), vec!["shop"]);
    drop(shop);
    assert_eq!(a.held().await.unwrap(), Vec::<String>::new());
    let shop_b = taken(b.try_lock("shop").await.unwrap());
    assert_eq!(held(a.try_lock("shop").await.unwrap()).run_id, "run-b");
    drop((shop_b, ads, journey));
    assert_eq!(b.held().await.unwrap(), Vec::<String>::new());
    drop(taken(a.try_lock("shop").await.unwrap()));
    assert!(a.held().await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_one_holder_at_a_time_released_on_drop() {
    let ds = SqliteFile::new();
    one_holder_at_a_time(ds.target()).await;
    let rows: i64 = ds
        .conn()
        .query_row("SELECT COUNT(*) FROM growthflow_locks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0, "every row released");
}

#[tokio::test]
async fn postgres_one_holder_at_a_time_released_on_drop() {
    let Some(schema) = TestSchema::new("locks_holder") else {
        return;
    };
    blocking(|| drop(schema.open()));
    one_holder_at_a_time(LockTarget::Postgres(Box::new(schema.target()))).await;
    let rows: i64 = blocking(|| {
        schema
            .client()
            .query_one("SELECT COUNT(*) FROM growthflow_locks", &[])
            .unwrap()
            .get(0)
    });
    assert_eq!(rows, 0, "every row released");
}

fn insert_row(ds: &SqliteFile, source: &str, run_id: &str, host: &str, pid: i64, expires: &str) {
    ds.conn()
        .execute(
            "INSERT INTO growthflow_locks (source, run_id, host, pid, since, heartbeat, expires)
             VALUES (?1, ?2, ?3, ?4, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', ?5)",
            rusqlite::params![source, run_id, host, pid, expires],
        )
        .unwrap();
}

fn row_owner(ds: &SqliteFile, source: &str) -> Option<String> {
    use rusqlite::OptionalExtension;
    ds.conn()
        .query_row(
            "SELECT run_id FROM growthflow_locks WHERE source = ?1",
            [source],
            |r| r.get(0),
        )
        .optional()
        .unwrap()
}

/// The backend holding `key`'s advisory lock in `schema`.
fn backend_holding(schema: &TestSchema, key: &str) -> i32 {
    schema
        .client()
        .query_one(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::int8::oid
               AND objid = (hashtext($2)::int8 & 4294967295)::oid AND objsubid = 2 AND granted",
            &[&i64::from(PG_LOCK_KEY), &format!("{}/{key}", schema.name())],
        )
        .unwrap()
        .get(0)
}

fn terminate(schema: &TestSchema, pid: i32) {
    // Waits (up to 10 s) until the backend is gone, so its locks are released when this returns.
    let done: bool = schema
        .client()
        .query_one("SELECT pg_terminate_backend($1, 10000)", &[&pid])
        .unwrap()
        .get(0);
    assert!(done);
}
