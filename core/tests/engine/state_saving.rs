//! When state is saved.

use super::*;

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
    // A sorted stream without checkpoints says nothing of how far it got: a backfill reads by
    // creation date (Shopify, WooCommerce) while the cursor is the modification time, so its highest
    // cursor (a 2024 order refunded last week) is no place to resume from.
    let def = incremental("orders", true);
    let c = FakeConnector::new("src", vec![def.clone()]).script(
        "orders",
        vec![
            page(&[("1", "2025-01-03T00:00:00Z"), ("2", "2025-01-05T00:00:00Z")]),
            Step::Fail("server error"),
        ],
    );
    let error = sync(&c, &def, &ds, &backfill).await.error.unwrap();
    assert!(error.contains("server error"), "{error}");
    assert!(!error.contains("committed orders through"), "{error}");
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

/// One stream of `c` read by `engine::run_with` on a test clock whose wall time is `now`.
async fn run_at(c: &Arc<FakeConnector>, ds: &Dataset, now: &str) -> Vec<SourceOutcome> {
    let sources: Vec<Arc<dyn Connector>> = vec![c.clone()];
    let control = RunControl {
        clock: Arc::new(TestClock::at(now.parse().unwrap())),
        ..RunControl::default()
    };
    engine::run_with(
        &sources,
        &ds.writer,
        &options(),
        Arc::new(NoProgress),
        &control,
    )
    .await
}

/// A record dated after the run's "now" (Klaviyo takes event times up to a year ahead) does not carry
/// the saved cursor past now: saved as it was, the next read would start after every record created
/// until then.
#[tokio::test]
async fn a_sorted_streams_cursor_is_never_saved_past_now() {
    let ds = Dataset::new();
    let def = incremental("orders", true);
    let c = Arc::new(
        FakeConnector::new("src", vec![def.clone()])
            .script("orders", three_pages())
            .observe(&ds.writer),
    );
    let outcomes = run_at(&c, &ds, "2025-01-04T12:00:00Z").await;
    assert_eq!(outcomes[0].streams[0].records, 5);
    assert_eq!(
        c.observed(),
        vec![
            None,
            cursor("2025-01-03T00:00:00Z"),
            // The page's maximum (01-05) is after now.
            cursor("2025-01-04T12:00:00Z"),
        ]
    );
    assert_eq!(
        ds.state("src", "orders").await,
        cursor("2025-01-04T12:00:00Z")
    );
}

/// A cursor that an earlier version saved in the future is read from now: the records created
/// since are not skipped.
#[tokio::test]
async fn a_cursor_saved_in_the_future_is_read_from_now() {
    let ds = Dataset::new();
    let def = incremental("orders", true);
    ds.writer.register_source("src", "fake").await.unwrap();
    ds.set_state("src", "orders", json!({"cursor": "2026-06-01T00:00:00Z"}))
        .await;
    let c = Arc::new(
        FakeConnector::new("src", vec![def.clone()])
            .script("orders", vec![page(&[("1", "2025-01-04T08:00:00Z")])]),
    );
    run_at(&c, &ds, "2025-01-04T12:00:00Z").await;
    let asked: Vec<Option<String>> = c
        .requests()
        .iter()
        .map(|r| r.state_cursor().map(str::to_string))
        .collect();
    assert_eq!(asked, vec![Some("2025-01-04T12:00:00Z".to_string())]);
    assert_eq!(ds.record_ids("src", "orders"), vec!["1"]);
}

/// An unsorted stream (records not in cursor order, as Shopify lists abandoned checkouts by id)
/// saves no later than when its read began, less five minutes: a record changed during the read,
/// behind the read's position, is read by the next run.
#[tokio::test]
async fn an_unsorted_streams_cursor_stays_before_its_read_began() {
    let ds = Dataset::new();
    let def = incremental("checkouts", false);
    let c =
        Arc::new(FakeConnector::new("src", vec![def.clone()]).script("checkouts", three_pages()));
    run_at(&c, &ds, "2025-01-05T00:00:00Z").await;
    assert_eq!(
        ds.state("src", "checkouts").await,
        cursor("2025-01-04T23:55:00Z")
    );

    // Never backwards: a saved cursor already inside the margin stays.
    let ds = Dataset::new();
    ds.writer.register_source("src", "fake").await.unwrap();
    ds.set_state(
        "src",
        "checkouts",
        json!({"cursor": "2025-01-04T23:58:00Z"}),
    )
    .await;
    let c =
        Arc::new(FakeConnector::new("src", vec![def.clone()]).script("checkouts", three_pages()));
    run_at(&c, &ds, "2025-01-05T00:00:00Z").await;
    assert_eq!(
        ds.state("src", "checkouts").await,
        cursor("2025-01-04T23:58:00Z")
    );
}

/// A connector's own checkpoint (or the windows' low-water mark) is capped at now the same way.
#[tokio::test]
async fn a_checkpoint_in_the_future_is_saved_as_now() {
    let ds = Dataset::new();
    let def = incremental("events", true);
    let c = Arc::new(FakeConnector::new("src", vec![def.clone()]).script(
        "events",
        vec![page_with_checkpoint(
            &[("1", "2025-01-03T00:00:00Z")],
            json!({"cursor": "2025-09-01T00:00:00Z", "checked": ["a"]}),
        )],
    ));
    run_at(&c, &ds, "2025-01-04T12:00:00Z").await;
    assert_eq!(
        ds.state("src", "events").await,
        Some(json!({"cursor": "2025-01-04T12:00:00Z", "checked": ["a"]}))
    );
}
