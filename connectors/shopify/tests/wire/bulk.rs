//! Bulk operations for long backfill windows.

use super::*;

/// The checkpoints of `pages`, in order.
fn checkpoints(pages: &[Page]) -> Vec<Value> {
    pages.iter().filter_map(|p| p.checkpoint.clone()).collect()
}

fn bulk_window() -> Window {
    Window {
        since: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
    }
}

async fn mount_bulk_start(h: &Harness) {
    h.graphql()
        .and(body_string_contains("bulkOperationRunQuery"))
        .and(body_string_contains(
            r#"created_at:>='2024-01-01T00:00:00Z' created_at:<'2024-04-01T00:00:00Z'"#,
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"bulkOperationRunQuery": {
                "bulkOperation": {"id": "gid://shopify/BulkOperation/5732981489854", "status": "CREATED"},
                "userErrors": []}},
            "extensions": cost(10, 1990)})))
        .expect(1)
        .mount(&h.server)
        .await;
}

/// The two halves of [`bulk_window`] run again as new operations (2024-01-01 .. 2024-02-15T12:00
/// and on to 2024-04-01), both completing with nothing to download.
async fn mount_empty_halves(h: &Harness) {
    for (since, until) in [
        ("2024-01-01T00:00:00Z", "2024-02-15T12:00:00Z"),
        ("2024-02-15T12:00:00Z", "2024-04-01T00:00:00Z"),
    ] {
        h.graphql()
            .and(body_string_contains("bulkOperationRunQuery"))
            .and(body_string_contains(format!(
                "created_at:>='{since}' created_at:<'{until}'"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": {"bulkOperationRunQuery": {
                    "bulkOperation": {"id": "gid://shopify/BulkOperation/5732981489854", "status": "CREATED"},
                    "userErrors": []}},
                "extensions": cost(10, 1990)})))
            .expect(1)
            .mount(&h.server)
            .await;
    }
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer("COMPLETED", None, None))
        .with_priority(2)
        .expect(2)
        .mount(&h.server)
        .await;
}

fn poll_answer(status: &str, error_code: Option<&str>, url: Option<String>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": {"node": {"id": "gid://shopify/BulkOperation/5732981489854", "status": status,
            "errorCode": error_code, "objectCount": "3", "url": url, "partialDataUrl": null}},
        "extensions": cost(1, 1999)}))
}

#[tokio::test]
async fn a_long_backfill_runs_a_bulk_operation_and_reattaches_children() {
    let h = Harness::start().await;
    mount_bulk_start(&h).await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .and(Var(
            "id",
            json!("gid://shopify/BulkOperation/5732981489854"),
        ))
        .respond_with(poll_answer("RUNNING", None, None))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&h.server)
        .await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer(
            "COMPLETED",
            None,
            Some(format!(
                "{}/bulk/bulk-5732981489854.jsonl?X-Goog-Signature=abc",
                h.server.uri()
            )),
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    // groupObjects false: the first line item arrives before its order.
    let jsonl = [
        json!({"__typename": "LineItem", "id": "gid://shopify/LineItem/15497838051518", "sku": "MCS-CHA-M", "quantity": 2,
               "__parentId": "gid://shopify/Order/6021883183294"}),
        json!({"__typename": "Order", "id": "gid://shopify/Order/6021883183294", "createdAt": "2024-03-05T16:47:22Z",
               "updatedAt": "2024-03-12T16:40:09Z", "totalPriceSet": {"shopMoney": {"amount": "167.33", "currencyCode": "USD"}}}),
        json!({"__typename": "LineItem", "id": "gid://shopify/LineItem/15497838084286", "sku": "TR2-SLT-10", "quantity": 1,
               "__parentId": "gid://shopify/Order/6021883183294"}),
        json!({"__typename": "Order", "id": "gid://shopify/Order/6021907759294", "createdAt": "2024-03-05T18:02:10Z",
               "updatedAt": "2024-03-05T18:02:14Z", "totalPriceSet": {"shopMoney": {"amount": "42.0", "currencyCode": "USD"}}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n")
        + "\n";
    Mock::given(method("GET"))
        .and(path("/bulk/bulk-5732981489854.jsonl"))
        .respond_with(ResponseTemplate::new(200).set_body_string(jsonl))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(bulk_window());
    let pages = read_all(&h.connector(), req).await.unwrap();
    assert_eq!(ids(&pages), ["6021883183294", "6021907759294"]);
    // The slice's end, once it is read whole (not an order's modification time).
    assert_eq!(
        checkpoints(&pages),
        [json!({"cursor": "2024-04-01T00:00:00Z"})]
    );
    let first = &pages[0].records[0];
    assert_eq!(first.cursor.as_deref(), Some("2024-03-12T16:40:09Z"));
    let payload = first.payload.to_value();
    let skus: Vec<&str> = payload["lineItems"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["MCS-CHA-M", "TR2-SLT-10"]);
    assert!(payload.get("__typename").is_none());
    assert!(payload["lineItems"]["nodes"][0].get("__parentId").is_none());
    // Polls wait on the injected clock: 1 s, then 2 s.
    assert_eq!(
        h.clock.sleeps(),
        vec![Duration::from_secs(1), Duration::from_secs(2)]
    );
    let requests = h.finish(guard).await;
    let download = requests
        .iter()
        .find(|r| r.url.path().ends_with(".jsonl"))
        .unwrap();
    assert!(
        download.headers.get("x-shopify-access-token").is_none(),
        "the Admin API token must not be sent to the storage URL"
    );
}

#[tokio::test]
async fn a_failed_bulk_operation_is_retried_in_halves() {
    let h = Harness::start().await;
    mount_bulk_start(&h).await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer("FAILED", Some("INTERNAL_SERVER_ERROR"), None))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&h.server)
        .await;
    mount_empty_halves(&h).await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(bulk_window());
    let pages = read_all(&h.connector(), req).await.unwrap();
    assert!(ids(&pages).is_empty());
    // Each half, once whole, says how far the backfill got: a stopped one resumes from there.
    assert_eq!(
        checkpoints(&pages),
        [
            json!({"cursor": "2024-02-15T12:00:00Z"}),
            json!({"cursor": "2024-04-01T00:00:00Z"})
        ]
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn a_bulk_operation_that_keeps_failing_is_an_error_with_its_code_at_one_day() {
    let h = Harness::start().await;
    // Every operation fails: 31 days → 15.5 → 7.75 → 3.9 → 1.9 → 0.97 days, where splitting stops.
    h.graphql()
        .and(body_string_contains("bulkOperationRunQuery"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"bulkOperationRunQuery": {
                "bulkOperation": {"id": "gid://shopify/BulkOperation/5732981489854", "status": "CREATED"},
                "userErrors": []}},
            "extensions": cost(10, 1990)})))
        .expect(6)
        .mount(&h.server)
        .await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer("FAILED", Some("INTERNAL_SERVER_ERROR"), None))
        .expect(6)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(Window {
        since: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap(),
    });
    let err = read_all(&h.connector(), req).await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { code: Some(code), message, .. }
            if code == "BULK_FAILED" && message.contains("INTERNAL_SERVER_ERROR")),
        "{err:?}"
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn a_bulk_operation_denied_access_is_an_auth_error() {
    let h = Harness::start().await;
    mount_bulk_start(&h).await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer("FAILED", Some("ACCESS_DENIED"), None))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(bulk_window());
    let err = read_all(&h.connector(), req).await.unwrap_err();
    assert!(
        matches!(&err, Error::Auth { message } if message.contains("read_all_orders")),
        "{err:?}"
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn a_completed_bulk_operation_without_a_file_yields_nothing() {
    let h = Harness::start().await;
    mount_bulk_start(&h).await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer("COMPLETED", None, None))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(bulk_window());
    let pages = read_all(&h.connector(), req).await.unwrap();
    assert!(ids(&pages).is_empty());
    assert_eq!(
        checkpoints(&pages),
        [json!({"cursor": "2024-04-01T00:00:00Z"})]
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn a_bulk_operation_waits_for_a_free_slot_when_the_shops_are_taken() {
    let h = Harness::start().await;
    // Two answers say every bulk slot is taken (e.g. by operations a killed backfill left running);
    // the third starts the operation.
    h.graphql()
        .and(body_string_contains("bulkOperationRunQuery"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"bulkOperationRunQuery": {"bulkOperation": null, "userErrors": [{
                "field": null, "code": "LIMIT_REACHED",
                "message": "A maximum of 5 bulk queries can run at a time for this app and shop."}]}},
            "extensions": cost(10, 1990)})))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&h.server)
        .await;
    mount_bulk_start(&h).await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer("COMPLETED", None, None))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(bulk_window());
    assert!(ids(&read_all(&h.connector(), req).await.unwrap()).is_empty());
    let slot = growthflow_shopify::bulk::SLOT_RETRY_INTERVAL;
    assert_eq!(
        h.clock.sleeps(),
        vec![slot, slot, growthflow_shopify::bulk::FIRST_POLL_INTERVAL],
        "two waits for a slot, then the first poll"
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn other_bulk_user_errors_fail_at_once_with_their_code() {
    let h = Harness::start().await;
    h.graphql()
        .and(body_string_contains("bulkOperationRunQuery"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"bulkOperationRunQuery": {"bulkOperation": null, "userErrors": [{
                "field": ["query"], "code": "INVALID",
                "message": "Invalid bulk query: Field 'nope' doesn't exist on type 'Order'"}]}},
            "extensions": cost(10, 1990)})))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(bulk_window());
    let err = read_all(&h.connector(), req).await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { code: Some(code), message, .. }
            if code == "INVALID" && message.contains("Field 'nope'")),
        "{err:?}"
    );
    assert!(h.clock.sleeps().is_empty());
    h.finish(guard).await;
}

#[tokio::test]
async fn a_307_to_another_host_is_not_followed_and_the_token_stays_home() {
    let h = Harness::start().await;
    let elsewhere = MockServer::start().await;
    h.graphql()
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("Location", format!("{}/steal", elsewhere.uri()).as_str()),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None))
        .await
        .unwrap_err();
    match &err {
        Error::OffOrigin { what, host, .. } => {
            assert_eq!(*what, "a redirect");
            assert_eq!(host, &elsewhere.address().to_string());
        }
        other => panic!("expected OffOrigin, got {other:?}"),
    }
    assert!(!err.to_string().contains(TOKEN), "{err}");
    let stolen = elsewhere.received_requests().await.unwrap();
    assert!(
        stolen.is_empty(),
        "the other host received {} request(s)",
        stolen.len()
    );
    assert!(h.clock.sleeps().is_empty(), "refusals are not retried");
    assert_eq!(h.finish(guard).await.len(), 1);
}

/// A new client knows nothing of the bucket another run may have drained. Streams started together
/// used to all go at once (and get `THROTTLED`); now the first query goes alone, and the others wait for
/// its answer and then for the points they need, on the client's clock.
#[tokio::test]
async fn streams_started_together_wait_for_the_first_answer_to_learn_the_bucket() {
    let h = Harness::start().await;
    // The bucket holds only 100 points; a page of customers costs 400.
    h.graphql()
        .respond_with(page(
            "customers",
            vec![customer(1, "2025-03-02T10:00:00Z")],
            None,
            100,
        ))
        .expect(2)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let shopify = h.connector();
    let (a, b) = futures::join!(
        read_all(&shopify, read_request("customers", None)),
        read_all(&shopify, read_request("customers", None)),
    );
    assert_eq!(ids(&a.unwrap()), ["1"]);
    assert_eq!(ids(&b.unwrap()), ["1"]);
    // The second query reserves its estimated cost (2 + 100 × 4 = 402 points) only after the first
    // answer said 100 are left: (402 − 100) / 100 per second = 3.02 s. Sent together, both would have gone
    // at once and nothing been waited for.
    assert_eq!(h.clock.sleeps(), vec![Duration::from_millis(3020)]);
    assert_eq!(h.finish(guard).await.len(), 2);
}

/// The storage host refusing the result's signed link (a 403 from the bucket: expired, say) is not
/// Shopify refusing the token, which the download does not carry: the slice is read again by new
/// operations, as when an operation fails, instead of an auth error that blamed the token and
/// stopped the source's other streams.
#[tokio::test]
async fn a_result_link_the_storage_host_refuses_reads_the_slice_again() {
    let h = Harness::start().await;
    mount_bulk_start(&h).await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer(
            "COMPLETED",
            None,
            Some(format!(
                "{}/bulk/bulk-5732981489854.jsonl?X-Goog-Signature=abc",
                h.server.uri()
            )),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/bulk/bulk-5732981489854.jsonl"))
        .respond_with(ResponseTemplate::new(403).set_body_string(
            "<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code></Error>",
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    mount_empty_halves(&h).await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(bulk_window());
    let pages = read_all(&h.connector(), req).await.unwrap();
    assert!(ids(&pages).is_empty());
    assert_eq!(
        checkpoints(&pages).last(),
        Some(&json!({"cursor": "2024-04-01T00:00:00Z"}))
    );
    h.finish(guard).await;
}
