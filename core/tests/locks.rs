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
            payload: json!({ "id": id }),
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

// ---------------------------------------------------------------- SQLite takeover

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

#[tokio::test]
async fn sqlite_lock_of_a_dead_process_on_this_host_is_taken_over_at_once() {
    let ds = SqliteFile::new();
    let host = RunOwner::this_process().host;
    let far = "2999-01-01T00:00:00.000000Z";
    // No such process (above Linux's largest pid), on this host: taken over at once.
    insert_row(&ds, "shop", "crashed-run", &host, 99_999_999, far);
    // The same pid on another host cannot be checked from here: still held.
    insert_row(&ds, "ads", "remote-run", "another-host", 99_999_999, far);
    // Another live process on this host (pid 1 always is): held.
    insert_row(&ds, "web", "live-run", &host, 1, far);
    let me = session(ds.target(), "me").await;
    let shop = taken(me.try_lock("shop").await.unwrap());
    assert_eq!(row_owner(&ds, "shop").as_deref(), Some("me"));
    assert_eq!(held(me.try_lock("ads").await.unwrap()).run_id, "remote-run");
    assert_eq!(held(me.try_lock("web").await.unwrap()).run_id, "live-run");
    drop(shop);
    assert!(me.held().await.unwrap().is_empty());
    assert_eq!(row_owner(&ds, "shop"), None);
}

#[tokio::test]
async fn sqlite_lock_with_an_expired_heartbeat_is_taken_over_and_its_holder_told() {
    let ds = SqliteFile::new();
    let now = Utc::now();
    let a = session_at(ds.target(), "run-a", now).await;
    let shop = taken(a.try_lock("shop").await.unwrap());
    // Within the ttl (2 minutes) the lock is a's...
    let b = session_at(ds.target(), "run-b", now + chrono::Duration::seconds(119)).await;
    assert_eq!(held(b.try_lock("shop").await.unwrap()).run_id, "run-a");
    drop(b);
    // ...after it, without a heartbeat, it is taken over.
    let c = session_at(ds.target(), "run-c", now + chrono::Duration::seconds(121)).await;
    let _shop_c = taken(c.try_lock("shop").await.unwrap());
    assert_eq!(row_owner(&ds, "shop").as_deref(), Some("run-c"));
    // a learns it at its next heartbeat, and its guard says so.
    assert_eq!(a.heartbeat().await.unwrap(), vec!["shop"]);
    assert!(shop.lost().unwrap().contains("another run took it over"));
    // Its guard's release leaves c's row alone.
    drop(shop);
    assert!(a.held().await.unwrap().is_empty());
    assert_eq!(row_owner(&ds, "shop").as_deref(), Some("run-c"));
}

#[tokio::test]
async fn a_heartbeat_keeps_a_sqlite_lock_alive() {
    let ds = SqliteFile::new();
    let now = Utc::now();
    let later = Arc::new(Mutex::new(now));
    let clock = later.clone();
    let a = LockSession::open(
        ds.target(),
        owner("run-a"),
        LockSettings {
            wall_clock: Arc::new(move || *clock.lock().unwrap()),
            ..LockSettings::default()
        },
    )
    .await
    .unwrap();
    let _shop = taken(a.try_lock("shop").await.unwrap());
    *later.lock().unwrap() = now + chrono::Duration::seconds(100);
    assert!(a.heartbeat().await.unwrap().is_empty());
    // 200 s after the lock was taken, 100 s after its heartbeat: still a's.
    let b = session_at(ds.target(), "run-b", now + chrono::Duration::seconds(200)).await;
    assert_eq!(held(b.try_lock("shop").await.unwrap()).run_id, "run-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runs_racing_for_a_stale_lock_never_both_win() {
    let ds = SqliteFile::new();
    let host = RunOwner::this_process().host;
    let mut sessions = Vec::new();
    for i in 0..4 {
        sessions.push(session(ds.target(), &format!("racer-{i}")).await);
    }
    for round in 0..25 {
        let source = format!("s{round}");
        insert_row(
            &ds,
            &source,
            "crashed",
            &host,
            99_999_999,
            "2999-01-01T00:00:00.000000Z",
        );
        let results = futures::future::join_all(sessions.iter().map(|s| {
            let (s, source) = (s.clone(), source.clone());
            tokio::spawn(async move { s.try_lock(&source).await.unwrap() })
        }))
        .await;
        let mut winners = Vec::new();
        let mut holders = Vec::new();
        for r in results {
            match r.unwrap() {
                TryLock::Taken(l) => winners.push(l),
                TryLock::Held(h) => holders.push(h.run_id),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {holders:?}");
        let winner = row_owner(&ds, &source).unwrap();
        assert!(
            holders.iter().all(|h| *h == winner),
            "{holders:?} vs {winner}"
        );
    }
}

// ---------------------------------------------------------------- PostgreSQL connection loss

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

#[tokio::test]
async fn postgres_lock_ends_with_its_connection_and_is_taken_again_or_reported_lost() {
    let Some(schema) = TestSchema::new("locks_conn") else {
        return;
    };
    blocking(|| drop(schema.open()));
    let target = LockTarget::Postgres(Box::new(schema.target()));
    let a = session(target.clone(), "run-a").await;
    let b = session(target, "run-b").await;

    // The connection dies and nobody takes the lock meanwhile: a takes it again.
    let shop = taken(a.try_lock("shop").await.unwrap());
    let pid = blocking(|| backend_holding(&schema, "shop"));
    blocking(|| terminate(&schema, pid));
    assert_eq!(a.heartbeat().await.unwrap(), Vec::<String>::new());
    assert_eq!(shop.lost(), None);
    assert_ne!(blocking(|| backend_holding(&schema, "shop")), pid);
    assert_eq!(held(b.try_lock("shop").await.unwrap()).run_id, "run-a");

    // The connection dies and another run takes the lock: the server released it with the
    // connection, and a, noticing, reports it lost instead of going on without it.
    let pid = blocking(|| backend_holding(&schema, "shop"));
    blocking(|| terminate(&schema, pid));
    let shop_b = taken(b.try_lock("shop").await.unwrap());
    assert_eq!(a.heartbeat().await.unwrap(), vec!["shop"]);
    let why = shop.lost().expect("a lost it");
    assert!(why.contains("run run-b"), "{why}");
    assert!(a.held().await.unwrap().is_empty());
    drop(shop);
    // a's late release does not free b's lock.
    assert!(a.held().await.unwrap().is_empty());
    assert_eq!(held(a.try_lock("shop").await.unwrap()).run_id, "run-b");
    drop(shop_b);
    assert!(b.held().await.unwrap().is_empty());
    drop(taken(a.try_lock("shop").await.unwrap()));
}

// ---------------------------------------------------------------- the engine

async fn run_engine(
    sources: Vec<Arc<dyn Connector>>,
    writer: &DatasetWriter,
    clock: Arc<dyn Clock>,
    session: LockSession,
    wait: Duration,
) -> Vec<SourceOutcome> {
    let control = RunControl {
        clock,
        locks: Some(SourceLocks { session, wait }),
        ..RunControl::default()
    };
    engine::run_with(&sources, writer, &options(), Arc::new(NoProgress), &control).await
}

#[tokio::test]
async fn a_source_another_run_holds_is_skipped_as_locked_without_a_request() {
    let ds = SqliteFile::new();
    let writer = ds.writer();
    let other = session(ds.target(), "other-run").await;
    let me = session(ds.target(), "this-run").await;
    let held_by_other = taken(other.try_lock("shop").await.unwrap());
    let (shop, ads) = (Fake::new("shop"), Fake::new("ads"));
    let clock = TestClock::new();
    let sources: Vec<Arc<dyn Connector>> = vec![shop.clone(), ads.clone()];
    let outcomes = run_engine(
        sources.clone(),
        &writer,
        Arc::new(clock.clone()),
        me.clone(),
        Duration::ZERO,
    )
    .await;
    assert_eq!(outcomes[0].status, "locked");
    assert!(outcomes[0].ok(), "locked is not a failure");
    assert_eq!(outcomes[1].status, "ok");
    let v = serde_json::to_value(&outcomes[0]).unwrap();
    assert_eq!(v["locked_by"]["run_id"], "other-run");
    assert_eq!(v["streams"][0]["stream"], "orders");
    assert_eq!(v["streams"][0]["status"], "locked");
    assert_eq!(v["streams"][0]["kind"], "locked");
    assert_eq!(v["streams"][0]["records"], 0);
    let error = v["streams"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("another run holds source shop: run other-run on "),
        "{error}"
    );
    assert_eq!((shop.reads(), ads.reads()), (0, 1));
    assert_eq!(clock.elapsed(), Duration::ZERO, "no wait without --wait");
    // The run's locks are released when it returns.
    assert!(me.held().await.unwrap().is_empty());

    drop(held_by_other);
    assert!(other.held().await.unwrap().is_empty());
    let outcomes = run_engine(
        sources,
        &writer,
        Arc::new(clock),
        me.clone(),
        Duration::ZERO,
    )
    .await;
    assert_eq!(
        outcomes.iter().map(|o| o.status).collect::<Vec<_>>(),
        vec!["ok", "ok"]
    );
    assert!(outcomes[0].locked_by.is_none());
    assert_eq!(shop.reads(), 1);
}

/// A clock whose `n`th sleep (from 1) first drops a lock and waits until its session released it:
/// "the other run finished" at a known point of the wait.
#[derive(Debug)]
struct ReleasingClock {
    clock: TestClock,
    n: usize,
    lock: Arc<Mutex<Option<(SourceLock, LockSession)>>>,
}

impl Clock for ReleasingClock {
    fn now(&self) -> Instant {
        self.clock.now()
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        let slept = self.clock.sleep(d);
        let release = if self.clock.sleeps().len() == self.n {
            self.lock.lock().unwrap().take()
        } else {
            None
        };
        Box::pin(async move {
            slept.await;
            if let Some((lock, session)) = release {
                drop(lock);
                assert!(session.held().await.unwrap().is_empty());
            }
        })
    }
}

#[tokio::test]
async fn with_a_wait_the_run_asks_again_with_growing_pauses_until_it_gives_up() {
    let ds = SqliteFile::new();
    let writer = ds.writer();
    let other = session(ds.target(), "other-run").await;
    let _held = taken(other.try_lock("shop").await.unwrap());
    let shop = Fake::new("shop");
    let clock = TestClock::new();
    let me = session(ds.target(), "this-run").await;
    let outcomes = run_engine(
        vec![shop.clone()],
        &writer,
        Arc::new(clock.clone()),
        me,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(outcomes[0].status, "locked");
    assert_eq!(outcomes[0].locked_by.as_ref().unwrap().run_id, "other-run");
    // Doubling up to 5 s, then what is left of the 20 s.
    assert_eq!(
        clock.sleeps(),
        [1, 2, 4, 5, 5, 3].map(Duration::from_secs).to_vec()
    );
    assert_eq!(shop.reads(), 0);
}

#[tokio::test]
async fn with_a_wait_the_run_syncs_the_source_once_its_holder_lets_go_and_the_others_meanwhile() {
    let ds = SqliteFile::new();
    let writer = ds.writer();
    let other = session(ds.target(), "other-run").await;
    let holder = taken(other.try_lock("shop").await.unwrap());
    let (shop, ads) = (Fake::new("shop"), Fake::new("ads"));
    let clock = ReleasingClock {
        clock: TestClock::new(),
        n: 2,
        lock: Arc::new(Mutex::new(Some((holder, other)))),
    };
    let sleeps = clock.clock.clone();
    let me = session(ds.target(), "this-run").await;
    let outcomes = run_engine(
        vec![shop.clone(), ads.clone()],
        &writer,
        Arc::new(clock),
        me,
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(
        outcomes.iter().map(|o| o.status).collect::<Vec<_>>(),
        vec!["ok", "ok"]
    );
    assert_eq!(outcomes[0].streams[0].records, 1);
    assert_eq!((shop.reads(), ads.reads()), (1, 1));
    // Released during the second pause; taken at the ask after it.
    assert_eq!(sleeps.sleeps(), [1, 2].map(Duration::from_secs).to_vec());
}

#[tokio::test]
async fn dropping_the_sync_future_mid_run_releases_its_locks() {
    let ds = SqliteFile::new();
    let writer = ds.writer();
    let me = session(ds.target(), "this-run").await;
    let (shop, _pages) = Fake::fed("shop");
    let reading = shop.reading.clone();
    let run = {
        let (writer, me) = (writer.clone(), me.clone());
        let sources: Vec<Arc<dyn Connector>> = vec![shop.clone()];
        tokio::spawn(async move {
            run_engine(
                sources,
                &writer,
                Arc::new(TestClock::new()),
                me,
                Duration::ZERO,
            )
            .await
        })
    };
    reading.notified().await;
    assert_eq!(me.held().await.unwrap(), vec!["shop"]);
    let other = session(ds.target(), "other-run").await;
    assert_eq!(
        held(other.try_lock("shop").await.unwrap()).run_id,
        "this-run"
    );
    // The run is dropped half way (a caller's timeout, a panic elsewhere, Ctrl-C at once).
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    assert!(me.held().await.unwrap().is_empty());
    assert_eq!(row_owner(&ds, "shop"), None);
    drop(taken(other.try_lock("shop").await.unwrap()));
}

#[tokio::test]
async fn a_lost_lock_stops_the_source_before_its_next_commit() {
    let ds = SqliteFile::new();
    let writer = ds.writer();
    let now = Utc::now();
    let me = session_at(ds.target(), "this-run", now).await;
    let (shop, pages) = Fake::fed("shop");
    pages.send(page("1")).unwrap();
    let run = {
        let (writer, me) = (writer.clone(), me.clone());
        let sources: Vec<Arc<dyn Connector>> = vec![shop.clone()];
        tokio::spawn(async move {
            run_engine(
                sources,
                &writer,
                Arc::new(TestClock::new()),
                me,
                Duration::ZERO,
            )
            .await
        })
    };
    shop.reading.notified().await;
    // Another run takes the lock over (this one looked dead: its heartbeat expired).
    let thief = session_at(ds.target(), "thief", now + chrono::Duration::minutes(5)).await;
    let _stolen = taken(thief.try_lock("shop").await.unwrap());
    assert_eq!(me.heartbeat().await.unwrap(), vec!["shop"]);
    // The stream stops at once (a request in flight is dropped); a page read after that would not
    // be committed.
    let _ = pages.send(page("2"));
    let outcomes = run.await.unwrap();
    let s = &outcomes[0].streams[0];
    assert_eq!(
        (outcomes[0].status, s.status, s.kind),
        ("failed", "failed", Some("locked"))
    );
    assert!(s.error.as_ref().unwrap().contains("lost its lock"), "{s:?}");
    let ids: Vec<String> = {
        let conn = ds.conn();
        let mut st = conn
            .prepare("SELECT record_id FROM raw_records ORDER BY record_id")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert!(!ids.contains(&"2".to_string()), "{ids:?}");
    assert_eq!(s.records as usize, ids.len());
}

#[tokio::test]
async fn a_rebuild_waits_for_another_runs_rebuild_and_then_rebuilds() {
    let ds = SqliteFile::new();
    let writer = ds.writer();
    let other = session(ds.target(), "other-run").await;
    let rebuilding = taken(other.try_lock(JOURNEY).await.unwrap());
    let clock = ReleasingClock {
        clock: TestClock::new(),
        n: 3,
        lock: Arc::new(Mutex::new(Some((rebuilding, other)))),
    };
    let sleeps = clock.clock.clone();
    let me = session(ds.target(), "this-run").await;
    let control = RunControl {
        clock: Arc::new(clock),
        locks: Some(SourceLocks {
            session: me.clone(),
            wait: Duration::ZERO,
        }),
        ..RunControl::default()
    };
    let stats = engine::rebuild_journey(&writer, vec![Arc::new(NoMapper)], &control)
        .await
        .unwrap();
    assert!(stats.is_some(), "rebuilt after waiting");
    assert_eq!(sleeps.sleeps(), [1, 2, 4].map(Duration::from_secs).to_vec());
    assert!(me.held().await.unwrap().is_empty());

    // Stopped while waiting: no rebuild.
    let other = session(ds.target(), "other-run-2").await;
    let _rebuilding = taken(other.try_lock(JOURNEY).await.unwrap());
    let control = RunControl {
        clock: Arc::new(TestClock::new()),
        locks: Some(SourceLocks {
            session: me,
            wait: Duration::ZERO,
        }),
        ..RunControl::default()
    };
    control.stop.stop(engine::StopReason::Interrupted);
    let stats = engine::rebuild_journey(&writer, vec![Arc::new(NoMapper)], &control)
        .await
        .unwrap();
    assert_eq!(stats, None);
}

#[tokio::test]
async fn a_postgres_lock_lost_with_its_connection_stops_the_source_at_its_next_commit() {
    let Some(schema) = TestSchema::new("locks_engine") else {
        return;
    };
    let writer = DatasetWriter::spawn(Box::new(blocking(|| schema.open())));
    let target = LockTarget::Postgres(Box::new(schema.target()));
    let me = session(target.clone(), "this-run").await;
    let (shop, pages) = Fake::fed("shop");
    pages.send(page("1")).unwrap();
    let run = {
        let (writer, me) = (writer.clone(), me.clone());
        let sources: Vec<Arc<dyn Connector>> = vec![shop.clone()];
        tokio::spawn(async move {
            run_engine(
                sources,
                &writer,
                Arc::new(TestClock::new()),
                me,
                Duration::ZERO,
            )
            .await
        })
    };
    shop.reading.notified().await;
    // The lock connection dies (no heartbeat runs in between) and another run takes the source.
    let pid = blocking(|| backend_holding(&schema, "shop"));
    blocking(|| terminate(&schema, pid));
    let thief = session(target, "thief").await;
    let _stolen = taken(thief.try_lock("shop").await.unwrap());
    // The next page is not committed: the commit first confirms the lock, finds the connection
    // dead, cannot take the lock again, and stops the source.
    pages.send(page("2")).unwrap();
    let outcomes = run.await.unwrap();
    let s = &outcomes[0].streams[0];
    assert_eq!((s.status, s.kind), ("failed", Some("locked")), "{s:?}");
    let error = s.error.as_ref().unwrap();
    assert!(error.contains("run thief"), "{error}");
    let ids: Vec<String> = blocking(|| {
        schema
            .client()
            .query("SELECT record_id FROM raw_records ORDER BY record_id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    });
    assert!(!ids.contains(&"2".to_string()), "{ids:?}");
    assert_eq!(s.records as usize, ids.len());
}

#[tokio::test]
async fn a_run_aborted_in_this_process_leaves_its_sources_free_at_once() {
    let ds = SqliteFile::new();
    let writer = ds.writer();
    let (shop, _pages) = Fake::fed("shop");
    let reading = shop.reading.clone();
    let target = ds.target();
    // The run owns its only lock session (as the CLI's run does).
    let run = {
        let writer = writer.clone();
        let sources: Vec<Arc<dyn Connector>> = vec![shop.clone()];
        tokio::spawn(async move {
            let me = session(target, "aborted-run").await;
            run_engine(
                sources,
                &writer,
                Arc::new(TestClock::new()),
                me,
                Duration::ZERO,
            )
            .await
        })
    };
    reading.notified().await;
    assert_eq!(row_owner(&ds, "shop").as_deref(), Some("aborted-run"));
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    // Dropping the run's last handle waited for its session to release and close: no round trip,
    // no delay, the row is gone.
    assert_eq!(row_owner(&ds, "shop"), None);
    let next = session(ds.target(), "next-run").await;
    drop(taken(next.try_lock("shop").await.unwrap()));
}

#[tokio::test]
async fn a_row_of_this_process_whose_run_is_over_is_taken_over_at_once() {
    let ds = SqliteFile::new();
    let host = RunOwner::this_process().host;
    let pid = i64::from(std::process::id());
    let far = "2999-01-01T00:00:00.000000Z";
    // Left by a run of this process (or of an earlier process with this pid, as a restarted
    // container's pid 1) that is over: taken over at once.
    insert_row(&ds, "shop", "over-run", &host, pid, far);
    let me = session(ds.target(), "me").await;
    let _shop = taken(me.try_lock("shop").await.unwrap());
    // A run of this process whose session is open keeps its lock.
    let other = session(ds.target(), "other").await;
    let _ads = taken(other.try_lock("ads").await.unwrap());
    assert_eq!(held(me.try_lock("ads").await.unwrap()).run_id, "other");
}
