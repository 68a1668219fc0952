//! 4. Saved state drives the next sync.

use super::*;

#[tokio::test]
async fn the_second_sync_sends_modified_after_from_saved_state() {
    let h = Harness::start().await;
    // As WooCommerce answers: the second sync's bound (16:02:47, exclusive) leaves order 2 only.
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .and(query_param("dates_are_gmt", "true"))
        .and(query_param("modified_after", "2025-03-07T16:02:47"))
        .respond_with(list(vec![order(2, "2025-03-07T16:02:48")], 1))
        .expect(1)
        .with_priority(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .and(query_param("dates_are_gmt", "true"))
        .respond_with(list(
            vec![
                order(1, "2025-03-02T10:00:00"),
                order(2, "2025-03-07T16:02:48"),
            ],
            1,
        ))
        .expect(2)
        .with_priority(2)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let connector = h.connector();
    let writer = DatasetWriter::spawn(Box::new(SqliteDestination::in_memory().unwrap()));
    let options = sync_options_from_start();
    let def = streams::ORDERS;

    let first = sync_stream(&connector, &def, &writer, &options, &NoProgress).await;
    assert_eq!(
        (first.status, first.records),
        ("ok", 2),
        "{:?}",
        first.error
    );
    assert_eq!(
        writer.load_state("woo", "orders").await.unwrap(),
        Some(json!({ "cursor": "2025-03-07T16:02:48Z" }))
    );
    let second = sync_stream(&connector, &def, &writer, &options, &NoProgress).await;
    assert_eq!(second.status, "ok", "{:?}", second.error);

    // A first sync asks once how many orders the range holds (`per_page=1`, reading `X-WP-Total`):
    // two are not worth reading in windows. The second, incremental sync makes one request.
    let requests = h.finish(guard).await;
    assert_eq!(requests.len(), 3);
    let probe = query(&requests[0]);
    assert_eq!(probe["per_page"], "1");
    assert!(!probe.contains_key("modified_before"), "{probe:?}");
    let (q1, q2) = (query(&requests[1]), query(&requests[2]));
    assert_eq!(q1["modified_after"], "2025-03-01T00:00:00");
    assert_eq!(
        q2["modified_after"], "2025-03-07T16:02:47",
        "saved cursor minus 1 s"
    );
    assert_eq!(q2["dates_are_gmt"], "true");
    assert_eq!(
        (q2["orderby"].as_str(), q2["order"].as_str()),
        ("modified", "asc")
    );
}

#[tokio::test]
async fn lookback_days_reach_further_back_than_the_saved_cursor() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .and(query_param("modified_after", "2025-03-04T16:02:47"))
        .respond_with(list(vec![], 0))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = h.config();
    config.lookback_days = Some(3);
    let state = json!({ "cursor": "2025-03-07T16:02:48Z" });
    let pages = read_all(
        &h.connector_with(config),
        read_request("orders", Some(state), start()),
    )
    .await
    .unwrap();
    assert_eq!(pages.iter().map(|p| p.records.len()).sum::<usize>(), 0);
    h.finish(guard).await;
}

/// A site that ignores `modified_after` (WooCommerce before 5.8 has no such filter) lists the store
/// from its first record: said at once, naming what to update, instead of re-reading the store from
/// page 1 after every page (n²/2 requests) and every sync re-reading it all.
#[tokio::test]
async fn a_site_that_ignores_modified_after_is_told_to_update_woocommerce() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(list(
            vec![
                order(1, "2025-03-02T10:00:00"),
                order(2, "2025-03-07T16:02:48"),
            ],
            1,
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let connector = h.connector();
    let writer = DatasetWriter::spawn(Box::new(SqliteDestination::in_memory().unwrap()));
    writer.register_source("woo", "woocommerce").await.unwrap();
    writer
        .commit(growthflow_core::destination::WriteBatch {
            source: "woo".into(),
            stream: "orders".into(),
            records: vec![],
            state: Some(json!({ "cursor": "2025-03-05T00:00:00Z" })),
            replaces: None,
        })
        .await
        .unwrap();
    let options = sync_options_from_start();
    let outcome = sync_stream(&connector, &streams::ORDERS, &writer, &options, &NoProgress).await;
    assert_eq!(outcome.status, "failed");
    let error = outcome.error.unwrap();
    assert!(
        error.contains("ignored modified_after")
            && error.contains("modified at 2025-03-02T10:00:00")
            && error.contains("WooCommerce 5.8 or later"),
        "{error}"
    );
    assert_eq!(
        h.finish(guard).await.len(),
        1,
        "one request, then the error"
    );
    // Nothing of the unfiltered page was committed, and the saved cursor stays.
    assert_eq!(
        writer.load_state("woo", "orders").await.unwrap(),
        Some(json!({ "cursor": "2025-03-05T00:00:00Z" }))
    );
}
