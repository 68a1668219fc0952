//! Stopping a run.

use super::*;

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
