//! Client-side rate limits.

use super::*;

/// The limiters on a [`TestClock`]: nothing sleeps, and each wait a window imposes is recorded, so
/// the spacing itself is what is checked.
fn on(clock: &TestClock, limits: RateLimits) -> RateLimits {
    limits.with_clock(Arc::new(clock.clone()))
}

#[tokio::test]
async fn per_endpoint_quota_holds_back_the_request_over_the_limit_and_others_are_free() {
    let clock = TestClock::new();
    let limits = on(
        &clock,
        RateLimits::new(Quota::UNLIMITED, &[("slow", Quota::per_second(2))]),
    );
    // Requests are spaced evenly (no burst), so no fixed second ever holds more than 2.
    limits.acquire("slow").await;
    assert_eq!(clock.sleeps(), [], "the 1st request goes at once");
    limits.acquire("slow").await;
    assert_eq!(
        clock.sleeps(),
        [Duration::from_millis(500)],
        "the 2nd request waits half a second"
    );
    limits.acquire("slow").await;
    assert_eq!(
        clock.elapsed(),
        Duration::from_secs(1),
        "and the 3rd one more"
    );
    for _ in 0..100 {
        limits.acquire("fast").await;
    }
    assert_eq!(
        clock.sleeps().len(),
        2,
        "the unlimited endpoint never waited"
    );
}

#[tokio::test]
async fn every_window_of_a_quota_must_admit_a_request() {
    // 10 a second, but only 3 a minute: after one request the minute window spaces the next 20 s out.
    let clock = TestClock::new();
    let limits = on(&clock, RateLimits::new(Quota::burst_steady(10, 3), &[]));
    limits.acquire("any").await;
    assert_eq!(clock.elapsed(), Duration::ZERO);
    limits.acquire("any").await;
    assert_eq!(clock.elapsed(), Duration::from_secs(20));
    // Endpoints without an override share the default limiters.
    limits.acquire("other").await;
    assert_eq!(clock.elapsed(), Duration::from_secs(40));
}

#[tokio::test]
async fn on_real_time_a_refused_request_is_held_back() {
    // The limiters' default clock is real time. Each acquisition is polled exactly once: an admitted
    // request completes on the first poll, a refused one is pending (its window is 500 ms; the polls
    // take µs), so nothing waits.
    let limits = RateLimits::new(Quota::UNLIMITED, &[("slow", Quota::per_second(2))]);
    assert!(limits.acquire("slow").now_or_never().is_some(), "1st");
    assert!(limits.acquire("slow").now_or_never().is_none(), "2nd");
    assert!(limits.acquire("fast").now_or_never().is_some());
    // Moved to a test clock, the windows start afresh on it and are waited for on it.
    let clock = TestClock::new();
    let limits = limits.with_clock(Arc::new(clock.clone()));
    assert!(limits.acquire("slow").now_or_never().is_some());
    assert!(limits.acquire("slow").now_or_never().is_some());
    assert_eq!(clock.sleeps(), [Duration::from_millis(500)]);
}

#[tokio::test]
async fn a_client_waits_for_its_windows_on_its_clock() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .expect(3)
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let client = HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")))
        .clock(Arc::new(clock.clone()))
        .rate_limits(on(&clock, RateLimits::new(Quota::per_second(4), &[])))
        .build()
        .unwrap();
    for _ in 0..3 {
        get(&client, "x", format!("{}/x", server.uri()))
            .await
            .unwrap();
    }
    assert_eq!(
        clock.sleeps(),
        [Duration::from_millis(250), Duration::from_millis(250)],
        "4 a second: 250 ms between requests, on the client's clock"
    );
}
