//! 3. Paging.

use super::*;

#[tokio::test]
async fn three_pages_yield_every_record_once_in_order() {
    let h = Harness::start().await;
    let pages_data = [
        vec![
            order(1, "2025-03-02T10:00:00"),
            order(2, "2025-03-02T11:00:00"),
        ],
        vec![
            order(3, "2025-03-03T10:00:00"),
            order(4, "2025-03-03T11:00:00"),
        ],
        vec![
            order(5, "2025-03-04T10:00:00"),
            order(6, "2025-03-04T11:00:00"),
        ],
    ];
    // Modification-ordered streams re-anchor each request on the newest time read (minus WooCommerce's
    // exclusive second) instead of asking for page N, so a record modified mid-sync cannot shift
    // another one out of reach; the last full page is followed by one that re-reads the newest second.
    let anchors = [
        "2025-03-01T00:00:00",
        "2025-03-02T10:59:59",
        "2025-03-03T10:59:59",
        "2025-03-04T10:59:59",
    ];
    let mut responses: Vec<Vec<Value>> = pages_data.to_vec();
    responses.push(vec![order(6, "2025-03-04T11:00:00")]);
    for (anchor, items) in anchors.iter().zip(responses) {
        Mock::given(method("GET"))
            .and(path("/wp-json/wc/v3/orders"))
            .and(query_param("page", "1"))
            .and(query_param("per_page", "2"))
            .and(query_param("orderby", "modified"))
            .and(query_param("order", "asc"))
            .and(query_param("modified_after", *anchor))
            .and(query_param("dates_are_gmt", "true"))
            .respond_with(list(items, 3))
            .expect(1)
            .mount(&h.server)
            .await;
    }
    let guard = h.catch_all().await;
    let mut config = h.config();
    config.per_page = 2;
    let pages = read_all(
        &h.connector_with(config),
        read_request("orders", None, start()),
    )
    .await
    .unwrap();
    let ids: Vec<Vec<&str>> = pages
        .iter()
        .map(|p| p.records.iter().map(|r| r.id.as_str()).collect())
        .collect();
    // The re-read of the newest second emits nothing already emitted.
    assert_eq!(
        ids,
        vec![vec!["1", "2"], vec!["3", "4"], vec!["5", "6"], vec![]]
    );
    let cursors: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.records.iter().map(|r| r.cursor.as_deref().unwrap()))
        .collect();
    assert_eq!(cursors[0], "2025-03-02T10:00:00Z");
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    assert!(pages.iter().all(|p| p.checkpoint.is_none()));
    // The payload is the record as received, unknown fields included.
    assert_eq!(
        pages[0].records[0].payload.to_value()["currency_symbol"],
        json!("£")
    );

    let requests = h.finish(guard).await;
    let asked: Vec<String> = requests
        .iter()
        .map(|r| query(r)["modified_after"].clone())
        .collect();
    assert_eq!(asked, anchors);
}

#[tokio::test]
async fn a_record_is_kept_as_the_text_the_page_held() {
    let h = Harness::start().await;
    // WordPress escapes slashes and non-ASCII by default; what the platform sent is what is kept.
    let first = r#"{"id":1,"date_modified_gmt":"2025-03-02T10:00:00","permalink":"https:\/\/shop.example.co\/?p=1","note":"caf\u00e9","meta_data":[{"key":"_x","value":{"deep":[1,2.50,null]}}]}"#;
    let second = r#"{ "id" : "2", "date_modified_gmt" : "2025-03-02T11:00:00", "total" : "9.90" }"#;
    let body = format!("[{first},\n  {second}]");
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-WP-Total", "2")
                .insert_header("X-WP-TotalPages", "1")
                .set_body_raw(body, "application/json; charset=UTF-8"),
        )
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("orders", None, start()))
        .await
        .unwrap();
    h.finish(guard).await;
    let records: Vec<_> = pages.iter().flat_map(|p| &p.records).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[0].id.as_str(), records[0].payload.as_str()),
        ("1", first)
    );
    assert_eq!(
        (records[1].id.as_str(), records[1].payload.as_str()),
        ("2", second)
    );
    assert_eq!(records[1].cursor.as_deref(), Some("2025-03-02T11:00:00Z"));
    assert_eq!(records[0].payload.to_value()["note"], json!("café"));
}
