//! 10. check().

use super::*;

#[tokio::test]
async fn check_reads_one_order() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .and(query_param("per_page", "1"))
        .and(query_param("page", "1"))
        .respond_with(list(vec![order(1, "2025-03-02T10:00:00")], 1287))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    h.connector().check().await.unwrap();
    assert_eq!(h.finish(guard).await.len(), 1);
}

#[tokio::test]
async fn check_fails_with_the_auth_message_on_401() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(ResponseTemplate::new(401).set_body_json(fixture("error_401.json")))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = h.connector().check().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "authentication failed: WooCommerce rejected the credentials of source \"woo\" (401 \
         woocommerce_rest_authentication_error: Consumer secret is invalid.): check consumer_key and \
         consumer_secret (a REST API key with read access from WooCommerce › Settings › Advanced › REST API)"
    );
    assert_eq!(h.finish(guard).await.len(), 1);
}

#[tokio::test]
async fn base_url_replaces_url_and_keeps_its_path_prefix() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/proxy/woo/wp-json/wc/v3/orders"))
        .respond_with(list(vec![], 1))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = WooCommerceConfig::new("https://store.example.invalid", CK, CS);
    config.base_url = Some(format!("{}/proxy/woo", h.server.uri()));
    let c = h.connector_with(config);
    assert_eq!(
        c.api_base().as_str(),
        format!("{}/proxy/woo/wp-json/wc/v3", h.server.uri())
    );
    c.check().await.unwrap();
    h.finish(guard).await;
}

#[tokio::test]
async fn an_unknown_stream_is_an_error_without_a_request() {
    let h = Harness::start().await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("subscriptions", None, start()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("subscriptions"), "{err}");
    assert!(h.finish(guard).await.is_empty());
}

/// A live store: order 1 is modified while the sync reads page 1, jumps to the end of the
/// modification order and every later order shifts one place forward. Asking for "page 2" would now
/// skip order 3; re-anchoring on the newest modification time reads every order.
#[tokio::test]
async fn an_order_modified_mid_sync_does_not_hide_another() {
    let h = Harness::start().await;
    let live = [
        order(2, "2025-03-02T11:00:00"),
        order(3, "2025-03-03T10:00:00"),
        order(4, "2025-03-03T11:00:00"),
        order(1, "2025-03-09T09:00:00"),
    ];
    let answers: [(&str, Vec<Value>); 5] = [
        (
            "2025-03-01T00:00:00",
            vec![
                order(1, "2025-03-02T10:00:00"),
                order(2, "2025-03-02T11:00:00"),
            ],
        ),
        (
            "2025-03-02T10:59:59",
            vec![live[0].clone(), live[1].clone()],
        ),
        (
            "2025-03-03T09:59:59",
            vec![live[1].clone(), live[2].clone()],
        ),
        (
            "2025-03-03T10:59:59",
            vec![live[2].clone(), live[3].clone()],
        ),
        ("2025-03-09T08:59:59", vec![live[3].clone()]),
    ];
    for (anchor, items) in answers {
        Mock::given(method("GET"))
            .and(path("/wp-json/wc/v3/orders"))
            .and(query_param("page", "1"))
            .and(query_param("modified_after", anchor))
            .respond_with(list(items, 2))
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
    let read: Vec<(String, String)> = pages
        .iter()
        .flat_map(|p| p.records.iter())
        .map(|r| (r.id.clone(), r.cursor.clone().unwrap()))
        .collect();
    assert_eq!(
        read,
        [
            ("1".into(), "2025-03-02T10:00:00Z".into()),
            ("2".into(), "2025-03-02T11:00:00Z".into()),
            ("3".into(), "2025-03-03T10:00:00Z".into()),
            ("4".into(), "2025-03-03T11:00:00Z".into()),
            ("1".into(), "2025-03-09T09:00:00Z".into()),
        ]
    );
    h.finish(guard).await;
}

/// A WooCommerce orders listing that filters by `modified_after` (exclusive, whole seconds), sorts by
/// modification time then id, and pages with `page`/`per_page` — the real server's behaviour, so a test
/// does not depend on the exact request sequence the connector chooses.
struct OrdersListing {
    orders: Vec<(u64, &'static str)>,
}

impl wiremock::Respond for OrdersListing {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let q = query(req);
        let after = q
            .get("modified_after")
            .map(|s| s.as_str())
            .unwrap_or("0000");
        let page: usize = q["page"].parse().unwrap();
        let per_page: usize = q["per_page"].parse().unwrap();
        let mut matching: Vec<&(u64, &str)> = self
            .orders
            .iter()
            .filter(|(_, modified)| *modified > after)
            .collect();
        matching.sort_by_key(|(id, modified)| (*modified, *id));
        let total_pages = matching.len().div_ceil(per_page).max(1);
        let items: Vec<Value> = matching
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|(id, modified)| order(*id, modified))
            .collect();
        ResponseTemplate::new(200)
            .insert_header("X-WP-Total", matching.len().to_string().as_str())
            .insert_header("X-WP-TotalPages", total_pages.to_string().as_str())
            .set_body_json(Value::Array(items))
    }
}

/// Three orders modified in one second with `per_page = 2` make the read page on within that second;
/// the newer orders after them must then be read from page 1 of the re-anchored listing, not from the
/// page number reached inside the second (which skipped `per_page` newer orders and saved a cursor past
/// them).
#[tokio::test]
async fn a_full_page_within_one_second_followed_by_newer_orders_loses_none() {
    let h = Harness::start().await;
    let orders = vec![
        (1, "2025-03-02T10:00:00"),
        (2, "2025-03-02T10:00:00"),
        (3, "2025-03-02T10:00:00"),
        (4, "2025-03-02T10:00:05"),
        (5, "2025-03-02T10:00:06"),
        (6, "2025-03-02T10:00:07"),
        (7, "2025-03-02T10:00:08"),
    ];
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .and(query_param("orderby", "modified"))
        .and(query_param("order", "asc"))
        .and(query_param("dates_are_gmt", "true"))
        .respond_with(OrdersListing { orders })
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = h.config();
    config.per_page = 2;
    let connector = h.connector_with(config);
    let writer = DatasetWriter::spawn(Box::new(SqliteDestination::in_memory().unwrap()));
    let options = sync_options_from_start();
    let pages = read_all(&connector, read_request("orders", None, start()))
        .await
        .unwrap();
    let mut ids: Vec<u64> = pages
        .iter()
        .flat_map(|p| p.records.iter().map(|r| r.id.parse::<u64>().unwrap()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7], "every order is read");

    let outcome = sync_stream(&connector, &streams::ORDERS, &writer, &options, &NoProgress).await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    assert_eq!(outcome.records, 7);
    assert_eq!(
        writer.load_state("woo", "orders").await.unwrap(),
        Some(json!({ "cursor": "2025-03-02T10:00:08Z" }))
    );
    h.finish(guard).await;
}
