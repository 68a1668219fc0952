//! Several sources and streams.

use super::*;

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
