//! Long first syncs and backfills read windows of days side by side.

use super::*;

use growthflow_core::engine::{sync_stream, NoProgress, SyncOptions};
use growthflow_core::testing::{recording_writer, Commit, CommitLog};

/// The property's days: every seventh day has no rows, the others two sources.
fn sources_of(day: &str) -> &'static [&'static str] {
    let n: u32 = day[8..10].parse().unwrap();
    if n % 7 == 0 {
        &[]
    } else {
        &["google", "newsletter"]
    }
}

fn ymd(d: chrono::NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// 2024-04-01 through 2024-05-30, the clock's today.
fn sixty_days() -> Vec<String> {
    let first = chrono::NaiveDate::from_ymd_opt(2024, 4, 1).unwrap();
    first.iter_days().take(60).map(ymd).collect()
}

fn day_options(window: Option<Window>) -> SyncOptions {
    SyncOptions {
        start: Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
        streams: Vec::new(),
        full_refresh: false,
        window,
        concurrency: 1,
    }
}

/// At every commit that saved a cursor (a day), every day before it was committed whole: a run killed
/// then resumes from that day (less the lookback) without losing one. Returns the saved cursors.
fn assert_cursor_never_passes_an_unread_day(log: &CommitLog) -> Vec<String> {
    let mut rows: std::collections::HashSet<String> = Default::default();
    let mut cursors = Vec::new();
    for Commit { ids, state, .. } in log.commits().iter() {
        rows.extend(ids.iter().cloned());
        let Some(cursor) = state.as_ref().and_then(|s| s["cursor"].as_str()) else {
            continue;
        };
        assert_eq!(
            cursor.len(),
            10,
            "a day, as a sequential read saves: {cursor}"
        );
        for day in sixty_days().iter().filter(|d| d.as_str() < cursor) {
            for source in sources_of(day) {
                let id = format!("123456789:{day}:{source}");
                assert!(
                    rows.contains(&id),
                    "cursor {cursor} saved before {id} was committed"
                );
            }
        }
        cursors.push(cursor.to_string());
    }
    cursors
}

#[tokio::test]
async fn a_long_first_sync_reads_windows_of_days_side_by_side_and_each_day_once() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(|day: &str, offset, limit| {
            day_report(day, sources_of(day), offset, limit)
        }))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 5, 30, 15, 30, 0).unwrap());
    let ga4 = connector(&server, "windows", &clock);
    let (writer, log) = recording_writer();
    let def = ga4.streams().remove(0);
    let outcome = sync_stream(&ga4, &def, &writer, &day_options(None), &NoProgress).await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    let rows: usize = sixty_days().iter().map(|d| sources_of(d).len()).sum();
    assert_eq!(outcome.records as usize, rows, "every row once");

    // Every day was asked for once — no gap, no overlap between windows — and replaced once.
    let mut asked: Vec<String> = bodies(&server, BATCH)
        .await
        .iter()
        .flat_map(batch_days)
        .collect();
    asked.sort();
    assert_eq!(asked, sixty_days());
    let mut replaced: Vec<String> = log
        .commits()
        .into_iter()
        .filter_map(|c| c.replaces)
        .collect();
    replaced.sort();
    assert_eq!(replaced, sixty_days(), "each day's first page replaces it");
    assert!(ga4.limiter().peak_in_flight() >= 2, "windows side by side");
    assert!(ga4.limiter().peak_in_flight() <= growthflow_ga4::limits::MAX_CONCURRENT_REQUESTS);

    // The state is a day, as a sequential read saves it, and ends at today (an empty day counts); it
    // records the names checked, as a sequential read's does, so the next run asks no metadata.
    let cursors = assert_cursor_never_passes_an_unread_day(&log);
    assert_eq!(cursors.last().map(String::as_str), Some("2024-05-30"));
    assert_eq!(
        writer.load_state("web", "traffic_daily").await.unwrap(),
        Some(json!({ "cursor": "2024-05-30", "checked": ga4.checked("traffic_daily").unwrap() }))
    );
    assert_no_unexpected(catch_all).await;

    // Nothing changed since: the next sync — a new run, knowing nothing of this one's token and
    // metadata — re-reads only the lookback days (in sequence, no windows), in two requests (one
    // day, then the rest batched), and does not ask for the metadata: the windows' state records
    // the names as checked, and the state stays what one sync saved.
    let ga4 = connector(&server, "windows", &clock);
    let before = server.received_requests().await.unwrap().len();
    let again = sync_stream(&ga4, &def, &writer, &day_options(None), &NoProgress).await;
    assert_eq!(again.status, "ok", "{:?}", again.error);
    let all = server.received_requests().await.unwrap();
    assert_eq!(
        all[before].url.path(),
        "/token",
        "the new run's access token"
    );
    let new: Vec<Value> = all[before + 1..]
        .iter()
        .map(|r| {
            assert_eq!(r.url.path(), BATCH, "then only the lookback's reports");
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect();
    assert_eq!(
        new.iter().map(batch_days).collect::<Vec<_>>(),
        vec![
            vec!["2024-05-27".to_string()],
            vec![
                "2024-05-28".into(),
                "2024-05-29".into(),
                "2024-05-30".into()
            ]
        ]
    );
    assert_eq!(
        writer.load_state("web", "traffic_daily").await.unwrap(),
        Some(json!({ "cursor": "2024-05-30", "checked": ga4.checked("traffic_daily").unwrap() }))
    );
}

#[tokio::test]
async fn a_long_backfill_reads_windows_of_days_and_saves_no_state() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(|day: &str, offset, limit| {
            day_report(day, sources_of(day), offset, limit)
        }))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 6, 30, 15, 30, 0).unwrap());
    let ga4 = connector(&server, "windowed-backfill", &clock);
    let (writer, _log) = recording_writer();
    let def = ga4.streams().remove(0);
    let window = Window {
        since: Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2024, 5, 31, 0, 0, 0).unwrap(),
    };
    let outcome = sync_stream(&ga4, &def, &writer, &day_options(Some(window)), &NoProgress).await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    let mut asked: Vec<String> = bodies(&server, BATCH)
        .await
        .iter()
        .flat_map(batch_days)
        .collect();
    asked.sort();
    assert_eq!(asked, sixty_days(), "the window's days, each once");
    assert_eq!(
        writer.load_state("web", "traffic_daily").await.unwrap(),
        None
    );
    assert!(ga4.limiter().peak_in_flight() >= 2, "windows side by side");
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_windowed_first_sync_killed_midway_resumes_without_losing_a_day() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killed = Arc::new(tokio::sync::Notify::new());
    let (seen, kill) = (requests.clone(), killed.clone());
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(move |day: &str, offset, limit| {
            if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == 12 {
                kill.notify_one();
            }
            day_report(day, sources_of(day), offset, limit)
        }))
        .mount(&server)
        .await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 5, 30, 15, 30, 0).unwrap());
    let ga4 = connector(&server, "windowed-kill", &clock);
    let (writer, log) = recording_writer();
    let def = ga4.streams().remove(0);
    let options = day_options(None);
    tokio::select! {
        o = sync_stream(&ga4, &def, &writer, &options, &NoProgress) => {
            panic!("the sync finished before the kill: {o:?}")
        }
        () = killed.notified() => {}
    }
    let saved = writer.load_state("web", "traffic_daily").await.unwrap();
    let cursors = assert_cursor_never_passes_an_unread_day(&log);
    assert_eq!(
        saved.map(|s| s["cursor"].as_str().unwrap().to_string()),
        cursors.last().cloned()
    );

    let outcome = sync_stream(&ga4, &def, &writer, &options, &NoProgress).await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    let all: std::collections::HashSet<String> = log.ids().into_iter().collect();
    let rows: usize = sixty_days().iter().map(|d| sources_of(d).len()).sum();
    // The resumed run re-reads the lookback before its saved day, which may reach before start_date.
    let in_range = all
        .iter()
        .filter(|id| sixty_days().iter().any(|d| id.contains(d.as_str())))
        .count();
    assert_eq!(in_range, rows, "no row lost");
    assert_eq!(
        writer.load_state("web", "traffic_daily").await.unwrap(),
        Some(json!({ "cursor": "2024-05-30", "checked": ga4.checked("traffic_daily").unwrap() }))
    );
    assert_cursor_never_passes_an_unread_day(&log);
}
