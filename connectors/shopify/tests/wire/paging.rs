//! Paging and incremental filters.

use super::*;

#[tokio::test]
async fn cursor_pages_are_followed_until_has_next_page_is_false() {
    let h = Harness::start().await;
    h.graphql()
        .and(Var("after", Value::Null))
        .respond_with(page(
            "customers",
            vec![fixture("customer_7391920570558.json")],
            Some("eyJsYXN0X2lkIjoxfQ=="),
            1900,
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    let mut second = fixture("customer_7391920570558.json");
    second["id"] = json!("gid://shopify/Customer/42");
    second["updatedAt"] = json!("2025-03-13T08:00:00+01:00");
    h.graphql()
        .and(Var("after", json!("eyJsYXN0X2lkIjoxfQ==")))
        .respond_with(page("customers", vec![second], None, 1900))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("customers", None))
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(ids(&pages), ["7391920570558", "42"]);
    let r = &pages[1].records[0];
    assert_eq!(r.cursor.as_deref(), Some("2025-03-13T07:00:00Z"));
    assert_eq!(r.payload.to_value()["id"], "gid://shopify/Customer/42");
    assert_eq!(r.payload.to_value()["numberOfOrders"], "1");
    let requests = h.finish(guard).await;
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let query = body["query"].as_str().unwrap();
    assert!(
        query.contains("customers(first: $first, after: $after, query: $query, sortKey: $sortKey)"),
        "{query}"
    );
    assert!(query.contains("$sortKey: CustomerSortKeys"), "{query}");
    assert_eq!(
        variables(&requests[0]),
        json!({"first": 100, "after": null, "query": "updated_at:>='2025-03-01T00:00:00Z'", "sortKey": "UPDATED_AT"})
    );
}

#[tokio::test]
async fn the_second_sync_filters_from_saved_state_and_lookback_reaches_further() {
    let h = Harness::start().await;
    h.graphql()
        .respond_with(page(
            "orders",
            vec![
                order(1, "2025-03-02T10:00:00Z"),
                order(2, "2025-03-12T16:40:09Z"),
            ],
            None,
            1900,
        ))
        .expect(3)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let connector = h.connector();
    let writer = DatasetWriter::spawn(Box::new(SqliteDestination::in_memory().unwrap()));
    let options = SyncOptions {
        start: start(),
        streams: Vec::new(),
        full_refresh: false,
        window: None,
        concurrency: 1,
    };
    let first = sync_stream(&connector, &streams::ORDERS, &writer, &options, &NoProgress).await;
    assert_eq!(
        (first.status, first.records),
        ("ok", 2),
        "{:?}",
        first.error
    );
    assert_eq!(
        writer.load_state("shop", "orders").await.unwrap(),
        Some(json!({ "cursor": "2025-03-12T16:40:09Z" }))
    );
    let second = sync_stream(&connector, &streams::ORDERS, &writer, &options, &NoProgress).await;
    assert_eq!(second.status, "ok", "{:?}", second.error);

    let mut config = h.config();
    config.lookback_days = Some(2);
    let pages = read_all(
        &h.connector_with(config),
        read_request("orders", Some(json!({"cursor": "2025-03-12T16:40:09Z"}))),
    )
    .await
    .unwrap();
    assert_eq!(ids(&pages), ["1", "2"]);

    let requests = h.finish(guard).await;
    let filters: Vec<Value> = requests
        .iter()
        .map(|r| variables(r)["query"].clone())
        .collect();
    assert_eq!(
        filters,
        [
            json!("updated_at:>='2025-03-01T00:00:00Z'"),
            json!("updated_at:>='2025-03-12T16:40:08Z'"),
            json!("updated_at:>='2025-03-10T16:40:08Z'"),
        ],
        "start date, then saved cursor − 1 s, then also − lookback_days"
    );
    assert!(requests
        .iter()
        .all(|r| variables(r)["sortKey"] == "UPDATED_AT"));
}

#[tokio::test]
async fn a_backfill_reads_by_creation_time_in_the_window() {
    let h = Harness::start().await;
    h.graphql()
        .and(Var(
            "query",
            json!("created_at:>='2025-01-01T00:00:00Z' created_at:<'2025-01-31T00:00:00Z'"),
        ))
        .and(Var("sortKey", json!("CREATED_AT")))
        .respond_with(page(
            "orders",
            vec![{
                // Created in the window, modified long after it (a refund last week, say).
                let mut o = order(7, "2025-06-05T00:00:00Z");
                o["createdAt"] = json!("2025-01-05T10:30:00+01:00");
                o
            }],
            None,
            1900,
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", Some(json!({"cursor": "2025-03-12T16:40:09Z"})));
    req.window = Some(Window {
        since: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2025, 1, 31, 0, 0, 0).unwrap(),
    });
    // 30 days: not longer than bulk_threshold_days, so paged.
    let pages = read_all(&h.connector(), req).await.unwrap();
    assert_eq!(ids(&pages), ["7"]);
    // How far it got is the last creation time read, not the modification time in June.
    assert_eq!(
        pages[0].checkpoint,
        Some(json!({"cursor": "2025-01-05T09:30:00Z"}))
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn abandoned_checkouts_are_read_by_id_with_their_own_sort_keys() {
    let h = Harness::start().await;
    h.graphql()
        .and(body_string_contains("$sortKey: AbandonedCheckoutSortKeys"))
        .and(Var("sortKey", json!("ID")))
        .respond_with(page(
            "abandonedCheckouts",
            vec![fixture("abandoned_checkout_38720911245502.json")],
            None,
            1900,
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("abandoned_checkouts", None))
        .await
        .unwrap();
    assert_eq!(ids(&pages), ["38720911245502"]);
    assert_eq!(
        pages[0].records[0].cursor.as_deref(),
        Some("2025-03-04T21:19:02Z")
    );
    h.finish(guard).await;
}

/// On a multi-threaded runtime, as the CLI runs, a page is decoded (nodes, `pageInfo` and the
/// reported cost from one parse): a page cut in transit is asked for once
/// more, a THROTTLED answer is still waited out and asked again, and the records come out in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_decoded_once_retry_truncated_and_throttled_answers() {
    let h = Harness::start().await;
    h.graphql()
        .and(Var("after", Value::Null))
        .respond_with(page(
            "orders",
            vec![
                order(1, "2025-03-02T10:00:00Z"),
                order(2, "2025-03-03T10:00:00Z"),
            ],
            Some("c2"),
            1900,
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    // Page 2: first cut in transit, then throttled, then whole.
    h.graphql()
        .and(Var("after", json!("c2")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"data":{"orders":{"nodes":[{"id":"gid://sho"#,
            "application/json",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&h.server)
        .await;
    h.graphql()
        .and(Var("after", json!("c2")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
            "extensions": cost(50, 1900)
        })))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&h.server)
        .await;
    h.graphql()
        .and(Var("after", json!("c2")))
        .respond_with(page(
            "orders",
            vec![order(3, "2025-03-04T10:00:00Z")],
            None,
            1900,
        ))
        .expect(1)
        .with_priority(3)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("orders", None))
        .await
        .unwrap();
    let records: Vec<Vec<(&str, &str)>> = pages
        .iter()
        .map(|p| {
            p.records
                .iter()
                .map(|r| (r.id.as_str(), r.cursor.as_deref().unwrap()))
                .collect()
        })
        .collect();
    assert_eq!(
        records,
        vec![
            vec![("1", "2025-03-02T10:00:00Z"), ("2", "2025-03-03T10:00:00Z")],
            vec![("3", "2025-03-04T10:00:00Z")]
        ]
    );
    assert_eq!(
        pages[1].records[0].payload.to_value()["id"],
        "gid://shopify/Order/3"
    );
    assert_eq!(h.finish(guard).await.len(), 4);
}

/// A whole page holding a node that is no record (no `id`) fails at once, on a multi-threaded
/// runtime as the CLI runs: asking again would fetch the same node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_page_with_a_node_without_an_id_fails_after_one_request() {
    let h = Harness::start().await;
    h.graphql()
        .respond_with(page(
            "orders",
            vec![json!({"updatedAt": "2025-03-02T10:00:00Z"})],
            None,
            1900,
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "could not decode the response: Shopify orders record without an `id`"
    );
    assert!(h.clock.sleeps().is_empty(), "{:?}", h.clock.sleeps());
    assert_eq!(h.finish(guard).await.len(), 1);
}
