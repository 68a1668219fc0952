//! 5, 6. Throttles and server errors are retried on the injected clock.

use super::*;

#[tokio::test]
async fn a_429_with_retry_after_waits_that_long_then_succeeds() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_string("Too Many Requests"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(list(vec![order(1, "2025-03-02T10:00:00")], 1))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("orders", None, start()))
        .await
        .unwrap();
    assert_eq!(pages[0].records.len(), 1);
    assert_eq!(h.clock.sleeps(), vec![Duration::from_secs(7)]);
    assert_eq!(h.finish(guard).await.len(), 2);
}

#[tokio::test]
async fn html_503_pages_are_retried_with_backoff_then_succeed() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("content-type", "text/html; charset=UTF-8")
                .set_body_string(
                    "<!DOCTYPE html><html><body><h1>Service Unavailable</h1></body></html>",
                ),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(list(vec![order(1, "2025-03-02T10:00:00")], 1))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("orders", None, start()))
        .await
        .unwrap();
    assert_eq!(pages[0].records[0].id, "1");
    let sleeps = h.clock.sleeps();
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    // Core's exponential backoff with jitter: attempt 0 in [250, 500] ms, attempt 1 in [500, 1000] ms.
    assert!(
        sleeps[0] >= Duration::from_millis(250) && sleeps[0] <= Duration::from_millis(500),
        "{sleeps:?}"
    );
    assert!(
        sleeps[1] >= Duration::from_millis(500) && sleeps[1] <= Duration::from_secs(1),
        "{sleeps:?}"
    );
    let requests = h.finish(guard).await;
    assert_eq!(requests.len(), 3);
    // Each attempt is signed afresh: WooCommerce rejects a replayed nonce.
    let nonces: std::collections::BTreeSet<String> = requests
        .iter()
        .map(|r| query(r)["oauth_nonce"].clone())
        .collect();
    assert_eq!(nonces.len(), 3);
}
