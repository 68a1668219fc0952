//! The engine's source locks: a source another run holds is skipped as `locked` (not a failure, no
//! request) or, with a wait, waited for on the run's clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use growthflow_core::connector::{Connector, Page, ReadRequest, Record, StreamDef, SyncMode};
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::{DatasetWriter, RunOwner};
use growthflow_core::engine::{self, NoProgress, RunControl, SourceLocks, SyncOptions};
use growthflow_core::http::TestClock;
use growthflow_core::model::{JourneyMapper, JourneyRows};
use growthflow_core::Result;
use serde_json::{json, Value};

struct NoMapper;

impl JourneyMapper for NoMapper {
    fn source_type(&self) -> &'static str {
        "fake"
    }
    fn map(&self, _: &str, _: &Value) -> Result<JourneyRows> {
        Ok(JourneyRows::default())
    }
}

/// One full-refresh stream of one record; counts its reads.
#[derive(Debug)]
struct OneRecord {
    name: String,
    reads: AtomicUsize,
}

#[async_trait]
impl Connector for OneRecord {
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
        Box::pin(futures::stream::iter(vec![Ok(Page {
            records: vec![Record {
                id: "1".into(),
                cursor: None,
                payload: json!({"id": 1}),
            }],
            ..Page::default()
        })]))
    }
    fn mapper(&self) -> Arc<dyn JourneyMapper> {
        Arc::new(NoMapper)
    }
}

fn owner(run_id: &str) -> RunOwner {
    RunOwner {
        run_id: run_id.into(),
        host: "h".into(),
        pid: 7,
    }
}

const TTL: Duration = Duration::from_secs(600);

async fn run(
    writer: &DatasetWriter,
    source: &Arc<OneRecord>,
    clock: &TestClock,
    wait: Duration,
) -> Vec<engine::SourceOutcome> {
    let sources: Vec<Arc<dyn Connector>> = vec![source.clone()];
    let control = RunControl {
        clock: Arc::new(clock.clone()),
        locks: Some(SourceLocks {
            owner: owner("this-run"),
            ttl: TTL,
            wait,
        }),
        ..RunControl::default()
    };
    engine::run_with(
        &sources,
        writer,
        &SyncOptions {
            start: chrono::Utc::now(),
            streams: Vec::new(),
            full_refresh: false,
            window: None,
            concurrency: 2,
        },
        Arc::new(NoProgress),
        &control,
    )
    .await
}

#[tokio::test]
async fn a_source_another_run_holds_is_skipped_as_locked_without_a_request() {
    let writer = DatasetWriter::spawn(Box::new(SqliteDestination::in_memory().unwrap()));
    let other = owner("other-run");
    assert_eq!(
        writer.try_lock_source("shop", &other, TTL).await.unwrap(),
        None
    );
    let shop = Arc::new(OneRecord {
        name: "shop".into(),
        reads: AtomicUsize::new(0),
    });
    let clock = TestClock::new();
    let outcomes = run(&writer, &shop, &clock, Duration::ZERO).await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].status, "locked");
    assert!(outcomes[0].ok(), "locked is not a failure");
    assert!(outcomes[0].streams.is_empty());
    let holder = outcomes[0].locked_by.as_ref().unwrap();
    assert_eq!(holder.run_id, "other-run");
    let v = serde_json::to_value(&outcomes[0]).unwrap();
    assert_eq!(v["status"], "locked");
    assert_eq!(v["locked_by"]["run_id"], "other-run");
    assert_eq!(shop.reads.load(Ordering::SeqCst), 0);
    assert_eq!(clock.elapsed(), Duration::ZERO, "no wait without --wait");

    // Once the other run lets go, the source is synced (and this run holds it).
    writer.unlock_sources(&other).await.unwrap();
    let outcomes = run(&writer, &shop, &clock, Duration::ZERO).await;
    assert_eq!(outcomes[0].status, "ok");
    assert!(outcomes[0].locked_by.is_none());
    assert_eq!(shop.reads.load(Ordering::SeqCst), 1);
    let held = writer.try_lock_source("shop", &other, TTL).await.unwrap();
    assert_eq!(held.map(|h| h.run_id), Some("this-run".to_string()));
}

#[tokio::test]
async fn with_a_wait_the_run_asks_again_until_the_wait_is_spent() {
    let writer = DatasetWriter::spawn(Box::new(SqliteDestination::in_memory().unwrap()));
    writer
        .try_lock_source("shop", &owner("other-run"), TTL)
        .await
        .unwrap();
    let shop = Arc::new(OneRecord {
        name: "shop".into(),
        reads: AtomicUsize::new(0),
    });
    let clock = TestClock::new();
    let outcomes = run(&writer, &shop, &clock, Duration::from_secs(5)).await;
    assert_eq!(outcomes[0].status, "locked");
    assert_eq!(
        clock.sleeps(),
        vec![
            Duration::from_secs(2),
            Duration::from_secs(2),
            Duration::from_secs(1)
        ]
    );
    assert_eq!(shop.reads.load(Ordering::SeqCst), 0);
}
