//! Client-side rate limits.

use super::*;

/// governor's limiters run on the real clock and cannot take a virtual one, so instead of timing three
/// acquisitions (≈ 0.5 s of wall time) this polls each acquisition exactly once: an admitted request
/// completes on the first poll, a refused one is pending. Nothing sleeps, and the third request is
/// refused only if the limiter really holds it back (the window is 500 ms; the three polls take µs).
#[test]
fn per_endpoint_quota_holds_back_the_request_over_the_limit_and_others_are_free() {
    let limits = RateLimits::new(Quota::UNLIMITED, &[("slow", Quota::per_second(2))]);
    // Requests are spaced evenly (no burst), so no fixed second ever holds more than 2.
    assert!(limits.acquire("slow").now_or_never().is_some(), "1st");
    assert!(
        limits.acquire("slow").now_or_never().is_none(),
        "2nd request must wait half a second"
    );
    for i in 0..100 {
        assert!(
            limits.acquire("fast").now_or_never().is_some(),
            "unlimited endpoint waited at request {i}"
        );
    }
}

#[test]
fn every_window_of_a_quota_must_admit_a_request() {
    // 10 a second, but only 3 a minute: after one request the minute window spaces the next 20 s out.
    let limits = RateLimits::new(Quota::burst_steady(10, 3), &[]);
    assert!(limits.acquire("any").now_or_never().is_some());
    assert!(limits.acquire("any").now_or_never().is_none());
    // Endpoints without an override share the default limiters.
    assert!(limits.acquire("other").now_or_never().is_none());
}
