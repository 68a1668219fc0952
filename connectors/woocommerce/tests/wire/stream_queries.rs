//! Stream-specific queries: refunds, customers, backfill windows.

use super::*;

#[tokio::test]
async fn refunds_use_the_global_endpoint_by_creation_date() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/refunds"))
        .and(query_param("after", "2025-03-01T00:00:00"))
        .and(query_param("dates_are_gmt", "true"))
        .and(query_param("orderby", "date"))
        .and(query_param("order", "asc"))
        .and(query_param_is_missing("modified_after"))
        .respond_with(list(vec![fixture("refund_48230.json")], 1))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("refunds", None, start()))
        .await
        .unwrap();
    let r = &pages[0].records[0];
    assert_eq!(
        (r.id.as_str(), r.cursor.as_deref()),
        ("48230", Some("2025-03-07T16:02:41Z"))
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn refunds_on_an_old_woocommerce_say_which_version_is_needed() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/refunds"))
        .respond_with(ResponseTemplate::new(404).set_body_json(fixture("error_404_no_route.json")))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("refunds", None, start()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("rest_no_route") && text.contains("WooCommerce 9.0"),
        "{text}"
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn customers_are_scanned_by_id_and_filtered_here() {
    let h = Harness::start().await;
    let mut old = fixture("customer_1187.json");
    old["id"] = json!(1);
    old["date_modified_gmt"] = json!("2025-02-01T00:00:00");
    let mut changed = fixture("customer_1187.json");
    changed["id"] = json!(2);
    changed["date_modified_gmt"] = json!("2025-03-06T09:00:00");
    let mut never_modified = fixture("customer_1187.json");
    never_modified["id"] = json!(3);
    never_modified["date_modified_gmt"] = Value::Null;
    never_modified["date_created_gmt"] = json!("2025-03-05T00:00:00");
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/customers"))
        .and(query_param("role", "all"))
        .and(query_param("orderby", "id"))
        .and(query_param("order", "asc"))
        .and(query_param_is_missing("modified_after"))
        .and(query_param_is_missing("after"))
        .respond_with(list(vec![old, changed, never_modified], 1))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let state = json!({ "cursor": "2025-03-05T00:00:01Z" });
    let pages = read_all(
        &h.connector(),
        read_request("customers", Some(state), start()),
    )
    .await
    .unwrap();
    let kept: Vec<(&str, &str)> = pages
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| (r.id.as_str(), r.cursor.as_deref().unwrap()))
        .collect();
    // Cursor − 1 s = 2025-03-05T00:00:00, inclusive.
    assert_eq!(
        kept,
        [("2", "2025-03-06T09:00:00Z"), ("3", "2025-03-05T00:00:00Z")]
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn a_backfill_reads_by_creation_time_in_the_window() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .and(query_param("after", "2025-01-31T23:59:59"))
        .and(query_param("before", "2025-03-01T00:00:00"))
        .and(query_param("dates_are_gmt", "true"))
        .and(query_param("orderby", "date"))
        .and(query_param("order", "asc"))
        .and(query_param_is_missing("modified_after"))
        .respond_with(list(vec![order(9, "2025-03-09T00:00:00")], 1))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let request = ReadRequest {
        stream: "orders".into(),
        state: Some(json!({ "cursor": "2025-03-07T16:02:48Z" })),
        start: start(),
        window: Some(Window {
            since: Utc.with_ymd_and_hms(2025, 2, 1, 0, 0, 0).unwrap(),
            until: Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap(),
        }),
    };
    let pages = read_all(&h.connector(), request).await.unwrap();
    assert_eq!(pages[0].records[0].id, "9");
    h.finish(guard).await;
}
