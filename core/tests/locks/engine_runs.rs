//! The engine.

use super::*;

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
