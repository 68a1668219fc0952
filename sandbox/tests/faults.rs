//! Run-time faults: 429 with Retry-After, 5xx, dropped connections, slowness.

mod common;

use std::time::{Duration, Instant};

use common::{header, Woo};
use serde_json::Value;

#[tokio::test]
async fn rate_limit_gives_429_with_retry_after_then_recovers() {
    let woo = Woo::start().await;
    woo.sandbox.faults().rate_limit(2, 7);
    for _ in 0..2 {
        let resp = woo.get(&woo.signed_url("orders", &[])).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(header(&resp, "retry-after").as_deref(), Some("7"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["data"]["status"], 429);
    }
    let resp = woo.get(&woo.signed_url("orders", &[])).await;
    assert_eq!(resp.status(), 200);
    // Faults apply before authentication, like a host or WAF in front of WordPress.
    woo.sandbox.faults().rate_limit(1, 1);
    let resp = woo.get(&woo.endpoint("orders")).await;
    assert_eq!(resp.status(), 429);
}

#[tokio::test]
async fn server_errors_give_html_503_then_500() {
    let woo = Woo::start().await;
    woo.sandbox.faults().server_errors(2);
    let resp = woo.get(&woo.signed_url("orders", &[])).await;
    assert_eq!(resp.status(), 503);
    assert!(header(&resp, "content-type")
        .unwrap()
        .starts_with("text/html"));
    let text = resp.text().await.unwrap();
    assert!(text.contains("503 Service Unavailable"));
    assert!(serde_json::from_str::<Value>(&text).is_err(), "not JSON");
    let resp = woo.get(&woo.signed_url("orders", &[])).await;
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "internal_server_error");
    let resp = woo.get(&woo.signed_url("orders", &[])).await;
    assert_eq!(resp.status(), 200);

    woo.sandbox.faults().server_errors_with_status(1, 502);
    let resp = woo.get(&woo.signed_url("customers", &[])).await;
    assert_eq!(resp.status(), 502);
}

#[tokio::test]
async fn dropped_connection_is_a_body_error_in_the_client() {
    let woo = Woo::start().await;
    woo.sandbox.faults().drop_connection_after(1);
    // One more successful list page…
    let resp = woo
        .get(&woo.signed_url("orders", &[("per_page", "100")]))
        .await;
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap();
    // …then headers and part of the body, then the connection is cut.
    let resp = woo
        .get(&woo.signed_url("orders", &[("per_page", "100")]))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-wp-total").as_deref(), Some("300"));
    let err = resp.bytes().await.expect_err("the body must fail mid-way");
    assert!(
        err.is_body() || err.is_decode() || err.is_request(),
        "{err:?}"
    );
    // One-shot: the next page is whole again (a fresh nonce, as a retrying client must sign anew).
    let resp = woo
        .get(&woo.signed_url("orders", &[("per_page", "100")]))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn slow_delays_responses_and_clear_switches_everything_off() {
    let woo = Woo::start().await;
    let delay = Duration::from_millis(150);
    woo.sandbox.faults().slow(delay);
    let t0 = Instant::now();
    let resp = woo
        .get(&woo.signed_url("orders", &[("per_page", "1")]))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(t0.elapsed() >= delay);

    woo.sandbox.faults().rate_limit(5, 1);
    woo.sandbox.faults().clear();
    let resp = woo
        .get(&woo.signed_url("orders", &[("per_page", "1")]))
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn faults_can_target_other_platforms_only() {
    let woo = Woo::start().await;
    woo.sandbox.faults().only_platform(Some("shopify"));
    woo.sandbox.faults().server_errors(3);
    let resp = woo.get(&woo.signed_url("orders", &[])).await;
    assert_eq!(resp.status(), 200);
    woo.sandbox.faults().only_platform(Some("woocommerce"));
    let resp = woo.get(&woo.signed_url("orders", &[])).await;
    assert_eq!(resp.status(), 503);
    // The root index is not a platform: never faulted.
    let resp = woo.get(&format!("{}/", woo.sandbox.base_url())).await;
    assert_eq!(resp.status(), 200);
}
