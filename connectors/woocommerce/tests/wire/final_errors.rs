//! 7, 8. Errors that must not be retried.

use super::*;

#[tokio::test]
async fn a_401_is_an_auth_error_naming_the_source_and_woocommerces_message() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header(
                    "WWW-Authenticate",
                    "Basic realm=\"WooCommerce API. Use a consumer key in the username field and a consumer secret in the password field.\"",
                )
                .set_body_json(fixture("error_401.json")),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None, start()))
        .await
        .unwrap_err();
    let Error::Auth { message } = &err else {
        panic!("expected an auth error, got {err:?}");
    };
    assert!(message.contains("source \"woo\""), "{message}");
    assert!(message.contains("Consumer secret is invalid."), "{message}");
    assert!(
        message.contains("woocommerce_rest_authentication_error"),
        "{message}"
    );
    assert!(
        message.contains("consumer_key and consumer_secret"),
        "{message}"
    );
    assert!(!message.contains(CS) && !message.contains(CK), "{message}");
    assert!(h.clock.sleeps().is_empty(), "auth failures are not retried");
    assert_eq!(h.finish(guard).await.len(), 1);
}

#[tokio::test]
async fn a_truncated_200_body_is_asked_for_once_more_then_is_a_decode_error() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-WP-TotalPages", "1")
                .insert_header("content-type", "application/json; charset=UTF-8")
                .set_body_string(
                    r#"[{"id":48213,"status":"processing","date_modified_gmt":"2025-03-07T16:0"#,
                ),
        )
        .expect(2)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None, start()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("orders"), "{err}");
    // Core asks once more for a page that is not valid JSON (a body cut in transit), then gives up.
    assert_eq!(h.clock.sleeps().len(), 1);
    assert_eq!(h.finish(guard).await.len(), 2);
}

#[tokio::test]
async fn an_html_page_with_200_points_at_the_permalink_setting() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html; charset=UTF-8")
                .set_body_string("<!DOCTYPE html><html><head><title>My Shop</title></head></html>"),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None, start()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("permalinks"), "{err}");
    h.finish(guard).await;
}

/// A well-formed page holding an item that is not a record (no `id`) fails the stream at once: the
/// page came whole, so asking for it again would only fetch the same item. Run on a multi-threaded
/// runtime, as the CLI does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_item_without_an_id_is_a_decode_error_after_one_request() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-WP-TotalPages", "1")
                .insert_header("X-WP-Total", "2")
                .set_body_json(json!([
                    {"id": 1, "date_modified_gmt": "2025-03-07T16:02:48"},
                    {"status": "processing", "date_modified_gmt": "2025-03-07T16:02:49"}
                ])),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None, start()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(
        err.to_string().contains("orders record without an `id`"),
        "{err}"
    );
    assert!(h.clock.sleeps().is_empty(), "{:?}", h.clock.sleeps());
    assert_eq!(h.finish(guard).await.len(), 1);
}
