//! Long first syncs and backfills of events read in date windows side by side.

use super::*;
use growthflow_core::testing::{recording_writer, Commit, CommitLog};

/// An account's events as `/api/events` lists them: `filter` takes `greater-or-equal(datetime,…)` and
/// `less-than(datetime,…)` (anything else is a 400, as Klaviyo answers an invalid filter), sorted by
/// `datetime` then id, paged by `page[cursor]` with `links.next` carrying every parameter. Pages hold
/// ten events whatever `page[size]` asks (a cursor-paged server may send fewer). Counts its requests,
/// says when the `kill_after`-th arrived, and answers the `throttle_at`-th with a 429.
struct Events {
    events: Vec<(String, DateTime<Utc>)>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    kill_after: usize,
    killed: Arc<tokio::sync::Notify>,
    throttle_at: usize,
    /// The server's address, as `links.next` names it.
    base: String,
}

const EVENTS_PER_PAGE: usize = 10;

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    growthflow_core::time::parse_utc(s)
}

impl wiremock::Respond for Events {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if n == self.kill_after {
            self.killed.notify_one();
        }
        if n == self.throttle_at {
            return ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .insert_header("content-type", "application/vnd.api+json")
                .set_body_json(json!({"errors": [{"status": 429, "code": "throttled",
                    "title": "Request was throttled.", "detail": "Expected available in 7 seconds."}]}));
        }
        let q = query(req);
        if q.get("sort").map(String::as_str) != Some("datetime") {
            return ResponseTemplate::new(400).set_body_string("sort=datetime missing");
        }
        let (mut since, mut until) = (None, None);
        for expr in q
            .get("filter")
            .map(String::as_str)
            .unwrap_or("")
            .split("),")
        {
            let expr = expr.trim_end_matches(')');
            if let Some(t) = expr.strip_prefix("greater-or-equal(datetime,") {
                since = parse_time(t);
            } else if let Some(t) = expr.strip_prefix("less-than(datetime,") {
                until = parse_time(t);
            } else {
                return ResponseTemplate::new(400).set_body_string(format!("bad filter {expr}"));
            }
        }
        let matching: Vec<&(String, DateTime<Utc>)> = self
            .events
            .iter()
            .filter(|(_, t)| since.is_none_or(|s| *t >= s) && until.is_none_or(|u| *t < u))
            .collect();
        let offset: usize = q
            .get("page[cursor]")
            .map(|c| c.parse().unwrap())
            .unwrap_or(0);
        let data: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(EVENTS_PER_PAGE)
            .map(|(id, t)| {
                json!({"type": "event", "id": id,
                       "attributes": {"datetime": t.to_rfc3339(), "event_properties": {}}})
            })
            .collect();
        let next = (offset + EVENTS_PER_PAGE < matching.len()).then(|| {
            let mut url = url::Url::parse(&format!("{}{}", self.base, req.url.path())).unwrap();
            let kept: Vec<(String, String)> = q
                .iter()
                .filter(|(k, _)| *k != "page[cursor]")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(kept)
                .append_pair("page[cursor]", &(offset + EVENTS_PER_PAGE).to_string());
            url.to_string()
        });
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/vnd.api+json")
            .set_body_json(
                json!({"data": data, "links": {"self": req.url.to_string(), "next": next}}),
            )
    }
}

/// 240 events over 2025, one every 36 hours; every twentieth shares its second with the one before.
fn year_of_events() -> Vec<(String, DateTime<Utc>)> {
    let base = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let mut out: Vec<(String, DateTime<Utc>)> = Vec::new();
    for i in 1..=240i64 {
        let t = if i % 20 == 0 {
            out.last().unwrap().1
        } else {
            base + chrono::Duration::hours(36 * i)
        };
        out.push((format!("ev{i:03}"), t));
    }
    out
}

/// At every commit that saved a cursor, every event before it was already committed: a run killed
/// right after any commit resumes from that cursor (less the lookback) without losing an event.
fn assert_state_never_passes_an_uncommitted_event(
    log: &CommitLog,
    events: &[(String, DateTime<Utc>)],
) -> Option<String> {
    let mut committed = std::collections::HashSet::new();
    let mut last = None;
    for Commit { ids, state, .. } in log.commits().iter() {
        committed.extend(ids.iter().cloned());
        let Some(cursor) = state.as_ref().and_then(|s| s["cursor"].as_str()) else {
            continue;
        };
        let saved = parse_time(cursor).unwrap();
        for (id, t) in events {
            if *t < saved {
                assert!(
                    committed.contains(id),
                    "cursor {cursor} saved before event {id} ({t}) was committed"
                );
            }
        }
        last = Some(cursor.to_string());
    }
    last
}

struct WindowedHarness {
    h: Harness,
    events: Vec<(String, DateTime<Utc>)>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    killed: Arc<tokio::sync::Notify>,
}

impl WindowedHarness {
    async fn start(kill_after: usize, throttle_at: usize) -> WindowedHarness {
        let h = Harness {
            server: MockServer::start().await,
            // "Now" is pinned: the last window of an incremental read starts before it.
            clock: TestClock::at(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        };
        let events = year_of_events();
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let killed = Arc::new(tokio::sync::Notify::new());
        Mock::given(method("GET"))
            .and(path("/api/events"))
            .and(header("revision", "2026-07-15"))
            .and(query_param("page[size]", "1000"))
            .and(query_param("include", "metric,profile,attributions"))
            .respond_with(Events {
                events: events.clone(),
                requests: requests.clone(),
                kill_after,
                killed: killed.clone(),
                throttle_at,
                base: h.uri(),
            })
            .mount(&h.server)
            .await;
        WindowedHarness {
            h,
            events,
            requests,
            killed,
        }
    }

    fn newest(&self) -> String {
        growthflow_core::time::format_utc(self.events.iter().map(|e| e.1).max().unwrap())
    }

    fn ids(log: &CommitLog) -> Vec<String> {
        let mut ids: Vec<String> = log.ids();
        ids.sort();
        ids.dedup();
        ids
    }
}

fn sync_options(window: Option<Window>) -> SyncOptions {
    SyncOptions {
        start: Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 0).unwrap(),
        streams: Vec::new(),
        full_refresh: false,
        window,
        concurrency: 1,
    }
}

#[tokio::test]
async fn a_long_first_sync_of_events_reads_windows_side_by_side_and_gets_every_event_once() {
    let w = WindowedHarness::start(0, 0).await;
    let guard = w.h.catch_all().await;
    let connector = w.h.connector();
    let (writer, log) = recording_writer();
    let outcome = sync_stream(
        &connector,
        &streams::EVENTS,
        &writer,
        &sync_options(None),
        &NoProgress,
    )
    .await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    assert_eq!(WindowedHarness::ids(&log).len(), 240, "every event");
    assert_eq!(
        writer.load_state("email", "events").await.unwrap(),
        Some(json!({ "cursor": w.newest() })),
        "the newest event time, as a sequential read saves"
    );
    assert_eq!(
        assert_state_never_passes_an_uncommitted_event(&log, &w.events),
        Some(w.newest())
    );

    let requests = w.h.finish(guard).await;
    // One measuring request (the first page of the whole range), then the windows: from the first
    // event, bounded on both sides but the last, which reads on past "now".
    assert_eq!(
        query(&requests[0])["filter"],
        "greater-or-equal(datetime,2024-12-01T00:00:00Z)"
    );
    let mut windows: Vec<String> = requests[1..]
        .iter()
        .filter(|r| !query(r).contains_key("page[cursor]"))
        .map(|r| query(r)["filter"].clone())
        .collect();
    windows.sort();
    // 24 pages of ten, measured from the first page's spread as 27: six windows.
    assert_eq!(windows.len(), 6, "{windows:?}");
    assert!(
        windows[0]
            .starts_with("greater-or-equal(datetime,2025-01-02T12:00:00Z),less-than(datetime,"),
        "{windows:?}"
    );
    let open: Vec<&String> = windows
        .iter()
        .filter(|f| !f.contains("less-than"))
        .collect();
    assert_eq!(open.len(), 1, "the last window is open: {windows:?}");
    // Adjacent windows share their bounds: no gap, no overlap.
    let bound = |f: &str, op: &str| {
        f.split(op)
            .nth(1)
            .map(|t| t.split(')').next().unwrap().to_string())
    };
    let mut starts: Vec<String> = windows
        .iter()
        .map(|f| bound(f, "greater-or-equal(datetime,").unwrap())
        .collect();
    let mut ends: Vec<String> = windows
        .iter()
        .filter_map(|f| bound(f, "less-than(datetime,"))
        .collect();
    starts.sort();
    ends.sort();
    assert_eq!(&starts[1..], &ends[..], "windows tile the range");
    assert!(
        connector.limiter().peak_in_flight() >= 2,
        "windows were read side by side"
    );
    assert!(
        connector.limiter().peak_in_flight() <= limits::MAX_IN_FLIGHT,
        "never above the cap"
    );

    // Nothing changed since: the next sync makes one request (no measuring, no windows), from the
    // saved cursor less the lookback, and keeps the cursor.
    let before = requests.len();
    let again = sync_stream(
        &connector,
        &streams::EVENTS,
        &writer,
        &sync_options(None),
        &NoProgress,
    )
    .await;
    assert_eq!(again.status, "ok", "{:?}", again.error);
    let all = w.h.server.received_requests().await.unwrap();
    assert_eq!(
        all.len() - before,
        1,
        "one request for a sync with nothing new"
    );
    assert_eq!(
        query(&all[before])["filter"],
        "greater-or-equal(datetime,2025-12-22T12:00:00Z)",
        "the newest event less lookback_days = 3"
    );
    assert_eq!(
        writer.load_state("email", "events").await.unwrap(),
        Some(json!({ "cursor": w.newest() }))
    );
}

#[tokio::test]
async fn a_windowed_events_sync_killed_midway_resumes_without_losing_an_event() {
    let w = WindowedHarness::start(12, 0).await;
    let connector = w.h.connector();
    let (writer, log) = recording_writer();
    let options = sync_options(None);
    tokio::select! {
        o = sync_stream(&connector, &streams::EVENTS, &writer, &options, &NoProgress) => {
            panic!("the sync finished before the kill: {o:?}")
        }
        () = w.killed.notified() => {}
    }
    let saved = writer.load_state("email", "events").await.unwrap();
    let partial = WindowedHarness::ids(&log).len();
    assert!(partial > 0 && partial < 240, "killed midway ({partial})");
    let cursor = assert_state_never_passes_an_uncommitted_event(&log, &w.events);
    assert_eq!(
        saved
            .as_ref()
            .map(|s| s["cursor"].as_str().unwrap().to_string()),
        cursor
    );

    // The next run resumes in sequence from the saved cursor less the lookback (or from start_date
    // when nothing was saved) and ends with every event and the newest cursor.
    let before = w.requests.load(std::sync::atomic::Ordering::SeqCst);
    let outcome = sync_stream(&connector, &streams::EVENTS, &writer, &options, &NoProgress).await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    assert_eq!(WindowedHarness::ids(&log).len(), 240, "no event lost");
    assert_eq!(
        writer.load_state("email", "events").await.unwrap(),
        Some(json!({ "cursor": w.newest() }))
    );
    assert_eq!(
        assert_state_never_passes_an_uncommitted_event(&log, &w.events),
        Some(w.newest())
    );
    if let Some(cursor) = cursor {
        let expected = growthflow_core::time::format_utc(
            parse_time(&cursor).unwrap() - chrono::Duration::days(3),
        );
        let resumed = w.h.server.received_requests().await.unwrap();
        assert!(
            resumed[before..].iter().any(|r| {
                query(r)["filter"] == format!("greater-or-equal(datetime,{expected})")
            }),
            "no request resumed from {expected}"
        );
    }
}

#[tokio::test]
async fn a_429_in_a_window_halves_the_limit_waits_its_retry_after_and_loses_nothing() {
    let w = WindowedHarness::start(0, 6).await;
    let guard = w.h.catch_all().await;
    let connector = w.h.connector();
    let (writer, log) = recording_writer();
    let outcome = sync_stream(
        &connector,
        &streams::EVENTS,
        &writer,
        &sync_options(None),
        &NoProgress,
    )
    .await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    assert_eq!(WindowedHarness::ids(&log).len(), 240, "every event");
    assert!(
        w.h.clock.sleeps().contains(&Duration::from_secs(7)),
        "Retry-After honoured: {:?}",
        w.h.clock.sleeps()
    );
    assert_eq!(
        writer.load_state("email", "events").await.unwrap(),
        Some(json!({ "cursor": w.newest() }))
    );
    w.h.finish(guard).await;
}

#[tokio::test]
async fn a_long_events_backfill_reads_windows_and_saves_no_state() {
    let w = WindowedHarness::start(0, 0).await;
    let guard = w.h.catch_all().await;
    let connector = w.h.connector();
    let (writer, log) = recording_writer();
    let window = Window {
        since: Utc.with_ymd_and_hms(2025, 2, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2025, 11, 1, 0, 0, 0).unwrap(),
    };
    let outcome = sync_stream(
        &connector,
        &streams::EVENTS,
        &writer,
        &sync_options(Some(window)),
        &NoProgress,
    )
    .await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    let expected: Vec<String> = w
        .events
        .iter()
        .filter(|(_, t)| *t >= window.since && *t < window.until)
        .map(|e| e.0.clone())
        .collect();
    assert_eq!(
        WindowedHarness::ids(&log),
        expected,
        "each event of the window once"
    );
    assert_eq!(writer.load_state("email", "events").await.unwrap(), None);
    let requests = w.h.finish(guard).await;
    assert!(
        requests
            .iter()
            .all(|r| query(r)["filter"].contains("less-than(datetime,")),
        "every window of a backfill is bounded"
    );
    assert!(requests.len() > 8, "read in windows: {}", requests.len());
}
