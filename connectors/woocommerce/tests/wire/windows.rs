//! Long first syncs and backfills read in date windows side by side.

use super::*;
use growthflow_core::testing::{recording_writer, Commit, CommitLog};

/// A store's orders as WooCommerce lists them: `after`/`before` on creation and
/// `modified_after`/`modified_before` on modification (all exclusive, whole seconds, `dates_are_gmt`),
/// ordered by `orderby` then id, paged with `page`/`per_page`, counted in `X-WP-Total`. Counts its
/// requests and says when the `kill_after`-th arrived.
struct Store {
    /// `(id, created, modified)`, naive GMT times as WooCommerce writes them.
    orders: Vec<(u64, String, String)>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    kill_after: usize,
    killed: Arc<tokio::sync::Notify>,
}

impl wiremock::Respond for Store {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if n == self.kill_after {
            self.killed.notify_one();
        }
        let q = query(req);
        if q.get("dates_are_gmt").map(String::as_str) != Some("true") {
            return ResponseTemplate::new(400).set_body_string("dates_are_gmt missing");
        }
        let bound = |k: &str| q.get(k).cloned();
        let (after, before) = (bound("after"), bound("before"));
        let (m_after, m_before) = (bound("modified_after"), bound("modified_before"));
        let mut matching: Vec<&(u64, String, String)> = self
            .orders
            .iter()
            .filter(|(_, c, m)| {
                after.as_ref().is_none_or(|a| c > a)
                    && before.as_ref().is_none_or(|b| c < b)
                    && m_after.as_ref().is_none_or(|a| m > a)
                    && m_before.as_ref().is_none_or(|b| m < b)
            })
            .collect();
        match q.get("orderby").map(String::as_str) {
            Some("modified") => matching.sort_by(|x, y| (&x.2, x.0).cmp(&(&y.2, y.0))),
            Some("date") => matching.sort_by(|x, y| (&x.1, x.0).cmp(&(&y.1, y.0))),
            _ => matching.sort_by_key(|x| x.0),
        }
        let page: usize = q["page"].parse().unwrap();
        let per_page: usize = q["per_page"].parse().unwrap();
        let items: Vec<Value> = matching
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|(id, created, modified)| {
                let mut o = order(*id, modified);
                o["date_created_gmt"] = json!(created);
                o
            })
            .collect();
        ResponseTemplate::new(200)
            .insert_header("X-WP-Total", matching.len().to_string().as_str())
            .insert_header(
                "X-WP-TotalPages",
                matching
                    .len()
                    .div_ceil(per_page)
                    .max(1)
                    .to_string()
                    .as_str(),
            )
            .set_body_json(Value::Array(items))
    }
}

/// 240 orders over 2025, one every 36 hours, each modified a few hours after its creation; every
/// twentieth shares its modification second with the one before (a keyset tie).
fn year_of_orders() -> Vec<(u64, String, String)> {
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let base = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let mut out: Vec<(u64, String, String)> = Vec::new();
    for id in 1..=240u64 {
        let created = base + chrono::Duration::hours(36 * id as i64);
        let modified = if id % 20 == 0 {
            out.last().unwrap().2.clone()
        } else {
            fmt(created + chrono::Duration::hours((id % 5) as i64))
        };
        out.push((id, fmt(created), modified));
    }
    out
}

/// At every commit that saved a cursor, every order modified before it was already committed: a run
/// killed right after any commit resumes (from that cursor less a second) without losing an order.
fn assert_state_never_passes_an_uncommitted_order(
    log: &CommitLog,
    orders: &[(u64, String, String)],
) -> Option<String> {
    let mut committed = std::collections::HashSet::new();
    let mut last = None;
    for Commit { ids, state, .. } in log.commits().iter() {
        committed.extend(ids.iter().cloned());
        let Some(cursor) = state.as_ref().and_then(|s| s["cursor"].as_str()) else {
            continue;
        };
        let saved = growthflow_core::time::parse_utc(cursor).unwrap();
        for (id, _, modified) in orders {
            if growthflow_core::time::parse_utc(modified).unwrap() < saved {
                assert!(
                    committed.contains(&id.to_string()),
                    "cursor {cursor} saved before order {id} (modified {modified}) was committed"
                );
            }
        }
        last = Some(cursor.to_string());
    }
    last
}

struct WindowedHarness {
    h: Harness,
    orders: Vec<(u64, String, String)>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    killed: Arc<tokio::sync::Notify>,
}

impl WindowedHarness {
    async fn start(kill_after: usize) -> WindowedHarness {
        WindowedHarness::with_orders(kill_after, year_of_orders()).await
    }

    async fn with_orders(kill_after: usize, orders: Vec<(u64, String, String)>) -> WindowedHarness {
        let h = Harness {
            server: MockServer::start().await,
            // "Now" is pinned: the last window of an incremental read starts before it.
            clock: TestClock::at(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        };
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let killed = Arc::new(tokio::sync::Notify::new());
        Mock::given(method("GET"))
            .and(path("/wp-json/wc/v3/orders"))
            .respond_with(Store {
                orders: orders.clone(),
                requests: requests.clone(),
                kill_after,
                killed: killed.clone(),
            })
            .mount(&h.server)
            .await;
        WindowedHarness {
            h,
            orders,
            requests,
            killed,
        }
    }

    fn connector(&self) -> WooCommerce {
        let mut config = self.h.config();
        config.per_page = 10;
        self.h.connector_with(config)
    }

    fn newest(&self) -> String {
        let newest = self.orders.iter().map(|o| o.2.clone()).max().unwrap();
        format!("{newest}Z")
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
async fn a_long_first_sync_reads_windows_side_by_side_and_gets_every_order_once() {
    let w = WindowedHarness::start(0).await;
    let guard = w.h.catch_all().await;
    let connector = w.connector();
    let (writer, log) = recording_writer();
    let outcome = sync_stream(
        &connector,
        &streams::ORDERS,
        &writer,
        &sync_options(None),
        &NoProgress,
    )
    .await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    assert_eq!(outcome.records, 240, "every order exactly once");
    let mut ids: Vec<String> = log.ids();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 240);
    assert_eq!(
        writer.load_state("woo", "orders").await.unwrap(),
        Some(json!({ "cursor": w.newest() })),
        "the newest modification time, as a sequential read saves"
    );
    assert_eq!(
        assert_state_never_passes_an_uncommitted_order(&log, &w.orders),
        Some(w.newest())
    );

    let requests = w.h.finish(guard).await;
    // One count (24 pages of 10 → 6 windows), then the windows: bounded on both sides but the last,
    // which reads on past "now".
    assert_eq!(query(&requests[0])["per_page"], "1");
    let mut windows: Vec<(String, Option<String>)> = requests[1..]
        .iter()
        .map(|r| {
            let q = query(r);
            (
                q["modified_after"].clone(),
                q.get("modified_before").cloned(),
            )
        })
        .collect();
    let mut ends: Vec<Option<String>> = windows.iter().map(|w| w.1.clone()).collect();
    ends.sort();
    ends.dedup();
    // Six planned; the limiter had room for more, so windows with pages to go were split.
    assert!(ends.len() >= 6, "{ends:?}");
    assert_eq!(ends[0], None, "the last window is open");
    windows.sort();
    assert_eq!(windows[0].0, "2024-11-30T23:59:59", "from start_date");
    assert!(
        connector.limiter().peak_in_flight() >= 2,
        "windows were read side by side"
    );

    // Nothing changed since: the next sync makes one request (no count, no windows) and keeps the
    // cursor.
    let before = requests.len();
    let again = sync_stream(
        &connector,
        &streams::ORDERS,
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
        writer.load_state("woo", "orders").await.unwrap(),
        Some(json!({ "cursor": w.newest() }))
    );
}

#[tokio::test]
async fn a_windowed_sync_killed_midway_resumes_without_losing_an_order() {
    let w = WindowedHarness::start(12).await;
    let connector = w.connector();
    let (writer, log) = recording_writer();
    let options = sync_options(None);
    tokio::select! {
        o = sync_stream(&connector, &streams::ORDERS, &writer, &options, &NoProgress) => {
            panic!("the sync finished before the kill: {o:?}")
        }
        () = w.killed.notified() => {}
    }
    // Whatever the writer had been handed is committed before it answers this.
    let saved = writer.load_state("woo", "orders").await.unwrap();
    let killed_at = log.commits().len();
    let partial: usize = log.commits().iter().map(|c| c.ids.len()).sum();
    assert!(partial > 0 && partial < 240, "killed midway ({partial})");
    let cursor = assert_state_never_passes_an_uncommitted_order(&log, &w.orders);
    assert_eq!(
        saved
            .as_ref()
            .map(|s| s["cursor"].as_str().unwrap().to_string()),
        cursor
    );

    // The next run resumes from the saved cursor (in sequence: it has state now) and the dataset ends
    // with every order and the newest cursor.
    let before = w.requests.load(std::sync::atomic::Ordering::SeqCst);
    let outcome = sync_stream(&connector, &streams::ORDERS, &writer, &options, &NoProgress).await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    let mut ids: Vec<String> = log.ids();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 240, "no order lost");
    assert_eq!(
        writer.load_state("woo", "orders").await.unwrap(),
        Some(json!({ "cursor": w.newest() }))
    );
    assert_eq!(
        assert_state_never_passes_an_uncommitted_order(&log, &w.orders),
        Some(w.newest())
    );
    assert!(log.commits().len() > killed_at);
    // Resuming re-reads from the saved cursor, not from start_date, in sequence (no count, no
    // windows). A request of the killed run may still reach the server after the kill, so the
    // resumed run's requests are told apart by their bounds rather than their position.
    let resumed = w.h.server.received_requests().await.unwrap();
    if let Some(cursor) = cursor {
        let expected =
            growthflow_core::time::parse_utc(&cursor).unwrap() - chrono::Duration::seconds(1);
        let expected = streams::wc_date(expected);
        assert!(
            resumed[before..].iter().any(|r| {
                let q = query(r);
                q["modified_after"] == expected && !q.contains_key("modified_before")
            }),
            "no request resumed from {expected}"
        );
    }
}

#[tokio::test]
async fn a_long_backfill_reads_creation_windows_and_saves_no_state() {
    let w = WindowedHarness::start(0).await;
    let guard = w.h.catch_all().await;
    let connector = w.connector();
    let (writer, log) = recording_writer();
    let window = Window {
        since: Utc.with_ymd_and_hms(2025, 2, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).unwrap(),
    };
    let outcome = sync_stream(
        &connector,
        &streams::ORDERS,
        &writer,
        &sync_options(Some(window)),
        &NoProgress,
    )
    .await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    let inside: Vec<String> = w
        .orders
        .iter()
        .filter(|(_, created, _)| {
            let c = growthflow_core::time::parse_utc(created).unwrap();
            c >= window.since && c < window.until
        })
        .map(|o| o.0.to_string())
        .collect();
    assert_eq!(
        outcome.records,
        inside.len() as u64,
        "each order of the window once"
    );
    let mut ids: Vec<String> = log.ids();
    ids.sort();
    let mut expected = inside.clone();
    expected.sort();
    assert_eq!(ids, expected);
    assert!(log.commits().iter().all(|c| c.state.is_none()), "no state");
    assert_eq!(writer.load_state("woo", "orders").await.unwrap(), None);
    let requests = w.h.finish(guard).await;
    assert!(requests.len() > 8, "read in windows");
    assert!(requests[1..].iter().all(|r| {
        let q = query(r);
        q["orderby"] == "date" && q.contains_key("before") && !q.contains_key("modified_after")
    }));
}

#[tokio::test]
async fn one_request_at_a_time_reads_in_sequence_without_a_count() {
    let w = WindowedHarness::start(0).await;
    let guard = w.h.catch_all().await;
    let mut config = w.h.config();
    config.per_page = 10;
    config.max_concurrent_requests = Some(1);
    let connector = w.h.connector_with(config);
    let (writer, _log) = recording_writer();
    let outcome = sync_stream(
        &connector,
        &streams::ORDERS,
        &writer,
        &sync_options(None),
        &NoProgress,
    )
    .await;
    assert_eq!((outcome.status, outcome.records), ("ok", 240));
    let requests = w.h.finish(guard).await;
    assert_eq!(query(&requests[0])["per_page"], "10", "no count first");
    // A host's time grows with the records a page is asked for: the last request asks only for the
    // eight orders the count said were left (its second's order read again, and seven new).
    let sizes: Vec<String> = requests
        .iter()
        .map(|r| query(r)["per_page"].clone())
        .collect();
    assert_eq!(sizes.last().map(String::as_str), Some("8"), "{sizes:?}");
    assert!(
        sizes[..sizes.len() - 1].iter().all(|s| s == "10"),
        "{sizes:?}"
    );
    assert!(requests.iter().all(|r| {
        let q = query(r);
        !q.contains_key("modified_before") && q.get("order").map(String::as_str) == Some("asc")
    }));
    assert_eq!(connector.limiter().peak_in_flight(), 1);
}

#[tokio::test]
async fn windows_start_at_the_oldest_order_when_start_date_lies_far_before_it() {
    let w = WindowedHarness::start(0).await;
    let guard = w.h.catch_all().await;
    let connector = w.connector();
    let (writer, _log) = recording_writer();
    // Five years before the first order: split from here, five of the six windows would be empty
    // and all 240 orders would crowd into the last one.
    let options = SyncOptions {
        start: Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap(),
        ..sync_options(None)
    };
    let outcome = sync_stream(&connector, &streams::ORDERS, &writer, &options, &NoProgress).await;
    assert_eq!((outcome.status, outcome.records), ("ok", 240));
    let oldest = w.orders.iter().map(|o| o.2.clone()).min().unwrap();
    let oldest = growthflow_core::time::parse_utc(&oldest).unwrap();
    let requests = w.h.finish(guard).await;
    // The windows' requests (not the count and the newest record, which ask for one).
    let mut afters: Vec<String> = requests
        .iter()
        .map(query)
        .filter(|q| q["per_page"] != "1")
        .map(|q| q["modified_after"].clone())
        .collect();
    afters.sort();
    assert_eq!(
        afters[0],
        streams::wc_date(oldest - chrono::Duration::seconds(1)),
        "the first window starts at the oldest order"
    );
}

/// 240 orders of which 200 were modified within one week of November 2025: the count's plan splits
/// the year into six windows, one of which holds twenty of the twenty-four pages.
fn crowded_orders() -> Vec<(u64, String, String)> {
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let spread = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let crowd = Utc.with_ymd_and_hms(2025, 11, 10, 0, 0, 0).unwrap();
    (1..=240u64)
        .map(|id| {
            let modified = if id <= 40 {
                spread + chrono::Duration::days(7 * id as i64)
            } else {
                // Every fifth shares its second with the one before (keyset ties).
                crowd + chrono::Duration::minutes(50 * (id - id / 5) as i64)
            };
            (
                id,
                fmt(modified - chrono::Duration::hours(1)),
                fmt(modified),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_window_that_turns_out_big_is_split_and_read_side_by_side_without_losing_an_order() {
    let orders = crowded_orders();
    let w = WindowedHarness::with_orders(0, orders.clone()).await;
    let guard = w.h.catch_all().await;
    let connector = w.connector();
    let (writer, log) = recording_writer();
    let outcome = sync_stream(
        &connector,
        &streams::ORDERS,
        &writer,
        &sync_options(None),
        &NoProgress,
    )
    .await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    assert_eq!(outcome.records, 240, "every order exactly once");
    let mut ids: Vec<String> = log.ids();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 240);
    assert_eq!(
        assert_state_never_passes_an_uncommitted_order(&log, &orders),
        Some(w.newest())
    );
    let requests = w.h.finish(guard).await;
    // Windows that end inside the crowded week: only a split makes them (the plan's six windows
    // are each about two months wide).
    let crowd = orders[40].2.as_str()..=orders[239].2.as_str();
    let inside: Vec<String> = requests
        .iter()
        .map(query)
        .filter_map(|q| q.get("modified_before").cloned())
        .filter(|b| crowd.contains(&b.as_str()))
        .collect();
    assert!(!inside.is_empty(), "the crowded window was not split");
}

#[test]
fn the_limit_starts_at_four_requests_in_flight_within_the_cap() {
    use growthflow_woocommerce::limits::{concurrency, INITIAL_IN_FLIGHT};
    let clock = || Arc::new(TestClock::new()) as Arc<dyn growthflow_core::http::Clock>;
    assert_eq!(INITIAL_IN_FLIGHT, 4);
    assert_eq!(concurrency(16, clock()).limit(), 4);
    assert_eq!(concurrency(2, clock()).limit(), 2, "a configured cap wins");
    assert_eq!(concurrency(1, clock()).limit(), 1);
}
