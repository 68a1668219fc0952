//! The adaptive concurrency limiter and windowed reads, on clocks and connectors the tests control:
//! the limiter grows while answers are fast, halves on 429/503 and on rising latency, never exceeds
//! its cap; windows read side by side save only a low-water cursor, so a run stopped anywhere resumes
//! without losing a record.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use serde_json::json;
use tokio::sync::Notify;

use growthflow_core::adaptive::{AdaptiveConfig, AdaptiveLimiter, Outcome, Permit};
use growthflow_core::connector::{Connector, Page, ReadRequest, Record, StreamDef, SyncMode};
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::DatasetWriter;
use growthflow_core::engine::{sync_stream, NoProgress, SyncOptions};
use growthflow_core::http::{Clock, TestClock};
use growthflow_core::model::JourneyMapper;
use growthflow_core::time::{format_utc, parse_utc};
use growthflow_core::window::{split, LowWater, Span, WindowPlan};
use growthflow_core::{Error, Result};

fn limiter(config: AdaptiveConfig) -> (Arc<AdaptiveLimiter>, TestClock) {
    let clock = TestClock::new();
    (AdaptiveLimiter::new(config, Arc::new(clock.clone())), clock)
}

/// One round trip: as many requests as the limit allows go out together, the host answers all of
/// them after `latency(n)` with `outcome`. Returns how many went out.
async fn round(
    l: &Arc<AdaptiveLimiter>,
    clock: &TestClock,
    latency: impl Fn(usize) -> Duration,
    outcome: Outcome,
) -> usize {
    let mut permits: Vec<Permit> = Vec::new();
    while let Some(p) = l.acquire("/orders").now_or_never() {
        permits.push(p);
    }
    let n = permits.len();
    assert!(n <= l.limit() && n <= l.config().cap, "{n} in flight");
    clock.sleep(latency(n)).await;
    for p in permits {
        p.finish(outcome);
    }
    n
}

#[tokio::test]
async fn grows_while_answers_are_fast_up_to_the_cap() {
    let (l, clock) = limiter(AdaptiveConfig::default());
    assert_eq!(l.limit(), 2, "starts small");
    let mut seen = Vec::new();
    for _ in 0..6 {
        round(&l, &clock, |_| Duration::from_millis(100), Outcome::Success).await;
        seen.push(l.limit());
    }
    // Doubling until the first sign of load, never past the cap.
    assert_eq!(seen, [2, 4, 8, 16, 16, 16]);
    assert_eq!(l.peak_in_flight(), 16);
    // After a cut it grows one a round.
    round(
        &l,
        &clock,
        |_| Duration::from_millis(100),
        Outcome::Overload,
    )
    .await;
    assert_eq!(l.limit(), 8);
    let mut seen = Vec::new();
    for _ in 0..3 {
        round(&l, &clock, |_| Duration::from_millis(100), Outcome::Success).await;
        seen.push(l.limit());
    }
    assert_eq!(seen, [9, 10, 11]);
    // Requests that do not use the limit (a read winding down) do not grow it.
    for _ in 0..20 {
        let p = l.acquire("/orders").now_or_never().unwrap();
        clock.sleep(Duration::from_millis(100)).await;
        p.finish(Outcome::Success);
    }
    assert_eq!(l.limit(), 11);
    // A configured cap wins.
    let (l, clock) = limiter(AdaptiveConfig::with_cap(3));
    for _ in 0..20 {
        round(&l, &clock, |_| Duration::from_millis(100), Outcome::Success).await;
    }
    assert_eq!((l.limit(), l.peak_in_flight()), (3, 3));
}

/// While requests wait for room, slow start makes room for one more with each fast answer (TCP's
/// growth per acknowledgement) instead of waiting for a whole round: the first answers of a long
/// read already let more requests out.
#[tokio::test]
async fn slow_start_grows_with_each_fast_answer_while_requests_wait() {
    let (l, clock) = limiter(AdaptiveConfig::default());
    let a = l.acquire("/orders").now_or_never().unwrap();
    let b = l.acquire("/orders").now_or_never().unwrap();
    // Four more requests wait in line.
    let mut waiting: Vec<_> = (0..4).map(|_| Box::pin(l.acquire("/orders"))).collect();
    for w in &mut waiting {
        assert!(futures::poll!(w).is_pending());
    }
    clock.sleep(Duration::from_millis(200)).await;
    a.finish(Outcome::Success);
    assert_eq!(l.limit(), 3, "one answer, one more at once");
    b.finish(Outcome::Success);
    assert_eq!(l.limit(), 4);
    // The four waiting get their room; answers without anyone waiting grow it by the round again.
    let mut permits = Vec::new();
    for w in waiting {
        permits.push(w.await);
    }
    assert_eq!(l.in_flight(), 4);
    clock.sleep(Duration::from_millis(200)).await;
    for p in permits {
        p.finish(Outcome::Success);
    }
    assert_eq!(
        l.limit(),
        4,
        "the round that grew answer by answer does not double too"
    );
    // A 503 still halves, and a host that slows down still shrinks it (see the tests below).
    let p = l.acquire("/orders").now_or_never().unwrap();
    p.finish(Outcome::of_status(503));
    assert_eq!(l.limit(), 2);
}

#[tokio::test]
async fn halves_on_429_or_503_once_per_round_trip() {
    let (l, clock) = limiter(AdaptiveConfig {
        initial: 8,
        ..Default::default()
    });
    let mut permits = Vec::new();
    while let Some(p) = l.acquire("/orders").now_or_never() {
        permits.push(p);
    }
    assert_eq!(permits.len(), 8);
    clock.sleep(Duration::from_millis(50)).await;
    let mut rest = permits.split_off(1);
    permits.pop().unwrap().finish(Outcome::of_status(429));
    assert_eq!(l.limit(), 4, "halved");
    // The other seven were sent before the cut: their 503s are the same overload, not a new one.
    for p in rest.drain(..) {
        p.finish(Outcome::of_status(503));
    }
    assert_eq!(l.limit(), 4);
    // A request sent after the cut that is refused again halves again, down to one, never zero.
    for expected in [2, 1, 1] {
        let p = l.acquire("/orders").now_or_never().expect("room");
        p.finish(Outcome::Overload);
        assert_eq!(l.limit(), expected);
    }
    assert_eq!(Outcome::of_status(504), Outcome::Overload);
    assert_eq!(Outcome::of_status(408), Outcome::Overload);
    assert_eq!(Outcome::of_status(404), Outcome::Neutral);
    assert_eq!(Outcome::of_status(200), Outcome::Success);
    let timeout: Result<growthflow_core::http::Response> = Err(Error::Transient {
        message: "timed out: operation timed out".into(),
    });
    assert_eq!(Outcome::of(&timeout), Outcome::Overload);
}

#[tokio::test]
async fn shrinks_when_latency_rises_well_above_the_best_seen() {
    let (l, clock) = limiter(AdaptiveConfig {
        initial: 8,
        cap: 8,
        ..Default::default()
    });
    for _ in 0..5 {
        round(&l, &clock, |_| Duration::from_millis(100), Outcome::Success).await;
    }
    assert_eq!(l.limit(), 8);
    round(&l, &clock, |_| Duration::from_millis(300), Outcome::Success).await;
    assert_eq!(l.limit(), 4, "three times the best seen halves");
    // Latency back to normal: it grows again, one a round.
    round(&l, &clock, |_| Duration::from_millis(100), Outcome::Success).await;
    assert_eq!(l.limit(), 5);
    // A host slower for good: down to one request, whose latency is then the new best, so the limit
    // grows again instead of staying at one.
    for _ in 0..4 {
        round(&l, &clock, |_| Duration::from_millis(900), Outcome::Success).await;
    }
    assert_eq!(l.limit(), 1);
    for _ in 0..6 {
        round(&l, &clock, |_| Duration::from_millis(900), Outcome::Success).await;
    }
    assert!(l.limit() > 1, "re-based on the slower host");
    // A 404 or an auth failure says nothing about load.
    let before = l.limit();
    let p = l.acquire("/orders").now_or_never().unwrap();
    p.finish(Outcome::Neutral);
    assert_eq!(l.limit(), before);
}

#[tokio::test]
async fn a_request_waits_for_room_and_a_cancelled_one_gives_it_back() {
    let (l, _clock) = limiter(AdaptiveConfig::with_cap(2));
    assert_eq!(l.idle(), 2);
    let a = l.acquire("/orders").now_or_never().unwrap();
    assert_eq!(l.idle(), 1);
    let b = l.acquire("/orders").now_or_never().unwrap();
    assert_eq!((l.in_flight(), l.idle()), (2, 0));
    assert!(l.acquire("/orders").now_or_never().is_none(), "full");
    let waiting = {
        let l = l.clone();
        tokio::spawn(async move { l.acquire("/orders").await })
    };
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    drop(a); // a cancelled request: room back, no signal
    let c = waiting.await.unwrap();
    assert_eq!((l.in_flight(), l.limit()), (2, 2));
    drop(b);
    c.finish(Outcome::Success);
    assert_eq!(l.in_flight(), 0);
    assert_eq!(l.peak_in_flight(), 2);
}

/// Room goes to the request that has waited longest, not to whoever asks right when it frees: a
/// stream with one request waiting (a count, a small stream's page) is not starved by streams that
/// ask again the moment each answer arrives — in `sync_bench` on a slow host, products waited 20 s
/// for their first request that way and finished last.
#[tokio::test]
async fn room_goes_to_the_request_waiting_longest() {
    let (l, _clock) = limiter(AdaptiveConfig::with_cap(2));
    let a = l.acquire("/orders").now_or_never().unwrap();
    let b = l.acquire("/orders").now_or_never().unwrap();
    let waiting = {
        let l = l.clone();
        tokio::spawn(async move { l.acquire("/products").await })
    };
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    drop(a);
    // A request asking right now (the next page of a busy stream) does not jump the line…
    assert!(
        l.acquire("/orders").now_or_never().is_none(),
        "jumped the line"
    );
    // …the one that waited gets the room.
    let products = waiting.await.unwrap();
    assert_eq!(l.in_flight(), 2);
    drop(b);
    // With room for two and one waiter ahead gone, a newcomer is served at once.
    assert!(l.acquire("/orders").now_or_never().is_some());
    drop(products);
}

/// A host that builds 8 pages at once in 500 ms each; more queue (latency grows with the queue) and
/// past 16 it sheds load with 503. Read one page at a time it serves 2 pages a second.
#[tokio::test]
async fn settles_near_what_a_slow_host_sustains() {
    let (l, clock) = limiter(AdaptiveConfig::default());
    let capacity = 8usize;
    let latency = |n: usize| Duration::from_millis(500 * n.max(capacity) as u64 / capacity as u64);
    let (mut pages, mut elapsed) = (0usize, Duration::ZERO);
    for i in 0..80 {
        let before = clock.elapsed();
        let n = round(&l, &clock, latency, Outcome::Success).await;
        if i >= 20 {
            pages += n;
            elapsed += clock.elapsed() - before;
        }
    }
    let per_second = pages as f64 / elapsed.as_secs_f64();
    assert!(
        per_second >= 0.85 * 16.0,
        "{per_second:.1} pages/s (host: 16/s at most, one at a time: 2/s)"
    );
    // It stops growing once requests queue at the host (a queue of two at most), not at the cap;
    // only slow start's one overshooting round went past that.
    assert!((8..=10).contains(&l.limit()), "limit {}", l.limit());
    assert!(l.peak_in_flight() <= 16);
}

/// The slow host of `sync_bench --host-latency 200,3,8`: a page costs 200 ms plus 3 ms per record it
/// was asked for, eight are built at once. A count request (one record, 203 ms), full pages (500 ms)
/// and a window's short last pages (asked for 100, holding 30: 500 ms with a small body) answer at
/// different, steady latencies; that spread is the host's design, not load, so the limit grows to
/// what the host builds at once and stays there. A 503 then halves it, and so does latency rising to
/// three times the best seen.
#[tokio::test]
async fn steady_per_record_latency_is_not_overload_but_503_and_rising_latency_are() {
    let (l, clock) = limiter(AdaptiveConfig::with_cap(8));
    // (body bytes, latency) of the three kinds of answers.
    let kinds = [(600, 203u64), (200_000, 500), (60_000, 500)];
    let round = |i: usize, slow: u64| {
        let l = l.clone();
        let clock = clock.clone();
        async move {
            let mut permits = Vec::new();
            while let Some(p) = l.acquire("/wp-json/wc/v3/orders").now_or_never() {
                permits.push(p);
            }
            let mut timed: Vec<(u64, usize, Permit)> = permits
                .into_iter()
                .enumerate()
                .map(|(j, p)| {
                    let (bytes, ms) = kinds[(i + j) % kinds.len()];
                    (ms * slow, bytes, p)
                })
                .collect();
            timed.sort_by_key(|t| t.0);
            let mut now = 0;
            for (ms, bytes, p) in timed {
                clock.sleep(Duration::from_millis(ms - now)).await;
                now = ms;
                p.finish_response(&answer(bytes));
            }
        }
    };
    let mut limits = Vec::new();
    for i in 0..40 {
        round(i, 1).await;
        limits.push(l.limit());
    }
    let full = limits
        .iter()
        .position(|n| *n == 8)
        .expect("reaches the cap");
    assert!(full <= 5, "slow start: {limits:?}");
    assert!(limits[full..].iter().all(|n| *n == 8), "{limits:?}");
    // Overload: one 503 halves.
    let p = l.acquire("/wp-json/wc/v3/orders").now_or_never().unwrap();
    p.finish(Outcome::of_status(503));
    assert_eq!(l.limit(), 4);
    for i in 0..8 {
        round(i, 1).await;
    }
    let before = l.limit();
    assert!(before > 4, "grows back while latency holds ({before})");
    // Rising latency: every answer three times as slow as its kind's best.
    round(0, 3).await;
    assert_eq!(l.limit(), before / 2);
}

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, d, 0, 0, 0).unwrap()
}

fn spans(n: u32) -> Vec<Span> {
    split(&WindowPlan {
        since: day(1),
        until: day(1 + 3 * n),
        windows: n as usize,
        open_end: false,
        limiter: None,
    })
}

#[test]
fn the_low_water_mark_only_passes_finished_windows() {
    // Windows [1,4) [4,7) [7,10).
    let mut lw = LowWater::new(spans(3), None);
    lw.committed(2, [day(8)]);
    lw.finished(2);
    assert_eq!(
        lw.cursor(),
        None,
        "a later window finishing first saves nothing"
    );
    lw.committed(0, [day(2)]);
    assert_eq!(
        lw.cursor(),
        Some(day(2)),
        "the first window's own pages come in order"
    );
    lw.committed(1, [day(5)]);
    assert_eq!(
        lw.cursor(),
        Some(day(2)),
        "the second window waits for the first"
    );
    lw.finished(0);
    assert_eq!(lw.cursor(), Some(day(5)));
    assert_eq!(lw.through(), Some(day(4)));
    lw.finished(1);
    assert_eq!(lw.cursor(), Some(day(8)));
    assert!(lw.all_finished());

    // A record outside its window never carries the mark past the window's end, and the mark never
    // falls below the cursor already saved.
    let mut lw = LowWater::new(spans(2), Some(day(2)));
    assert_eq!(lw.cursor(), Some(day(2)));
    lw.committed(0, [day(6)]);
    assert_eq!(lw.cursor(), Some(day(4)));
}

#[test]
fn a_split_window_counts_as_finished_where_it_was_split_and_its_parts_follow_it() {
    let hours = |d: u32, h: i64| day(d) + chrono::Duration::hours(h);
    // Windows [1,4) [4,7) [7,10); the second, read up to March 5, is split there into [5,6) [6,7).
    let mut lw = LowWater::new(spans(3), None);
    lw.committed(0, [day(2)]);
    lw.finished(0);
    lw.committed(1, [day(4), day(5)]);
    assert_eq!(lw.cursor(), Some(day(5)));
    let parts = [
        Span {
            since: day(5),
            until: Some(day(6)),
        },
        Span {
            since: day(6),
            until: Some(day(7)),
        },
    ];
    lw.split(1, day(5), &parts);
    // Positions now: [1,4) [4,5) (finished) [5,6) [6,7) [7,10).
    assert_eq!(lw.through(), Some(day(5)));
    lw.committed(3, [hours(6, 12)]);
    lw.finished(3);
    assert_eq!(
        lw.cursor(),
        Some(day(5)),
        "a later part finishing first saves nothing"
    );
    lw.committed(2, [hours(5, 1), hours(6, 3)]);
    assert_eq!(lw.cursor(), Some(day(6)), "clamped below the part's end");
    lw.finished(2);
    assert_eq!(lw.cursor(), Some(hours(6, 12)));
    assert_eq!(lw.through(), Some(day(7)));
    lw.finished(4);
    assert!(lw.all_finished());
}

/// Ten records a day over March 1–20, read in windows, one record per page; the window starting at
/// `fail_window_at` fails after its first page once every other window has finished (a run killed
/// there, as far as state goes).
#[derive(Debug, Default)]
struct Fake {
    fail_window_at: Option<DateTime<Utc>>,
    windows_read: Mutex<Vec<Span>>,
    others_done: Arc<(AtomicUsize, Notify)>,
}

fn all_records() -> Vec<Record> {
    (1..=20u32)
        .flat_map(|d| (0..10u32).map(move |i| (d, i)))
        .map(|(d, i)| {
            let at = day(d) + chrono::Duration::hours(i64::from(i));
            Record {
                id: format!("{d}-{i}"),
                cursor: Some(format_utc(at)),
                payload: json!({}).into(),
            }
        })
        .collect()
}

fn pages_of(records: Vec<Record>) -> Vec<Result<Page>> {
    records
        .into_iter()
        .map(|r| {
            Ok(Page {
                records: vec![r],
                checkpoint: None,
                replaces: None,
            })
        })
        .collect()
}

fn at(r: &Record) -> DateTime<Utc> {
    parse_utc(r.cursor.as_deref().unwrap()).unwrap()
}

const STREAM: StreamDef = StreamDef {
    name: "events",
    primary_key: &["id"],
    mode: SyncMode::Incremental { cursor_field: "at" },
    sorted: true,
    parent: None,
    description: "test",
};

#[async_trait]
impl Connector for Fake {
    fn source_type(&self) -> &'static str {
        "fake"
    }
    fn name(&self) -> &str {
        "fake"
    }
    fn streams(&self) -> Vec<StreamDef> {
        vec![STREAM]
    }
    async fn check(&self) -> Result<()> {
        Ok(())
    }
    fn read(&self, request: ReadRequest) -> BoxStream<'_, Result<Page>> {
        let from = request.state_cursor().and_then(parse_utc);
        let records: Vec<Record> = all_records()
            .into_iter()
            .filter(|r| from.is_none_or(|f| at(r) >= f))
            .collect();
        futures::stream::iter(pages_of(records)).boxed()
    }
    fn mapper(&self) -> Arc<dyn JourneyMapper> {
        unimplemented!("not mapped")
    }
    async fn plan_windows(&self, request: &ReadRequest) -> Result<Option<WindowPlan>> {
        Ok(request.state.is_none().then(|| WindowPlan {
            since: day(1),
            until: day(21),
            windows: 4,
            open_end: true,
            limiter: None,
        }))
    }
    fn read_window(&self, _request: ReadRequest, span: Span) -> BoxStream<'_, Result<Page>> {
        self.windows_read.lock().unwrap().push(span);
        let records: Vec<Record> = all_records()
            .into_iter()
            .filter(|r| at(r) >= span.since && span.until.is_none_or(|u| at(r) < u))
            .collect();
        let mut pages = pages_of(records);
        let done = self.others_done.clone();
        if self.fail_window_at == Some(span.since) {
            pages.truncate(1);
            let fail = futures::stream::once(async move {
                loop {
                    let woken = done.1.notified();
                    if done.0.load(Ordering::SeqCst) >= 3 {
                        break;
                    }
                    woken.await;
                }
                Err(Error::Transient {
                    message: "connection reset".into(),
                })
            });
            return futures::stream::iter(pages).chain(fail).boxed();
        }
        let end = futures::stream::once(async move {
            done.0.fetch_add(1, Ordering::SeqCst);
            done.1.notify_waiters();
        })
        .filter_map(|()| async { None });
        futures::stream::iter(pages).chain(end).boxed()
    }
}

#[tokio::test]
async fn windows_read_side_by_side_save_a_cursor_that_never_skips_a_record() {
    let writer = DatasetWriter::spawn(Box::new(SqliteDestination::in_memory().unwrap()));
    let options = SyncOptions {
        start: day(1),
        streams: Vec::new(),
        full_refresh: false,
        window: None,
        concurrency: 1,
    };
    // Windows of five days: [1,6) [6,11) [11,16) [16,…). The second fails after its first record,
    // while the third and fourth have read on.
    let fake = Fake {
        fail_window_at: Some(day(6)),
        ..Default::default()
    };
    let first = sync_stream(&fake, &STREAM, &writer, &options, &NoProgress).await;
    assert_eq!(first.status, "failed");
    assert_eq!(
        fake.windows_read.lock().unwrap().len(),
        4,
        "read side by side"
    );
    assert_eq!(first.records, 151, "the later windows were committed too");
    // Saved: the second window's first record — not the newest record committed.
    let state = writer.load_state("fake", "events").await.unwrap();
    assert_eq!(state, Some(json!({ "cursor": format_utc(day(6)) })));

    // The next run continues from the saved cursor and ends with every record and the newest cursor.
    let fake = Fake::default();
    let second = sync_stream(&fake, &STREAM, &writer, &options, &NoProgress).await;
    assert_eq!(second.status, "ok", "{:?}", second.error);
    assert!(
        fake.windows_read.lock().unwrap().is_empty(),
        "resumed in sequence"
    );
    assert_eq!(second.records, 150, "every record from March 6 on");
    let newest = all_records().iter().map(at).max().unwrap();
    assert_eq!(
        writer.load_state("fake", "events").await.unwrap(),
        Some(json!({ "cursor": format_utc(newest) }))
    );

    // A full windowed run saves the newest cursor, like a sequential one.
    let writer = DatasetWriter::spawn(Box::new(SqliteDestination::in_memory().unwrap()));
    let whole = sync_stream(&fake, &STREAM, &writer, &options, &NoProgress).await;
    assert_eq!((whole.status, whole.records), ("ok", 200));
    assert_eq!(
        writer.load_state("fake", "events").await.unwrap(),
        Some(json!({ "cursor": format_utc(newest) }))
    );
}

fn answer(bytes: usize) -> Result<growthflow_core::http::Response> {
    Ok(growthflow_core::http::Response {
        status: reqwest::StatusCode::OK,
        headers: reqwest::header::HeaderMap::new(),
        body: vec![b' '; bytes],
    })
}

/// A one-record count request answers in 200 ms, a full page in 500 ms on the same host at the same
/// load: full pages are compared with full pages, so the count does not read as congestion.
#[tokio::test]
async fn pages_are_compared_with_pages_of_their_size() {
    let (l, clock) = limiter(AdaptiveConfig {
        initial: 4,
        cap: 4,
        ..Default::default()
    });
    let timed = |bytes: usize, ms: u64| {
        let l = l.clone();
        let clock = clock.clone();
        async move {
            let mut permits = Vec::new();
            while let Some(p) = l.acquire("/orders").now_or_never() {
                permits.push(p);
            }
            clock.sleep(Duration::from_millis(ms)).await;
            for p in permits {
                p.finish_response(&answer(bytes));
            }
        }
    };
    for _ in 0..3 {
        timed(1_000, 200).await;
    }
    for _ in 0..5 {
        timed(200_000, 500).await;
    }
    assert_eq!(l.limit(), 4, "full pages are not 2.5 times a count request");
    // The same full pages at three times their own best do halve.
    timed(200_000, 1_500).await;
    assert_eq!(l.limit(), 2);
}
