//! Headers, includes, cursor pages.

use super::*;

#[tokio::test]
async fn events_send_key_revision_accept_and_follow_links_next_verbatim() {
    let h = Harness::start().await;
    let base = h.uri();
    Mock::given(method("GET"))
        .and(path("/api/events"))
        .and(header(
            "authorization",
            format!("Klaviyo-API-Key {KEY}").as_str(),
        ))
        .and(header("revision", "2026-07-15"))
        .and(header("accept", "application/vnd.api+json"))
        .and(query_param(
            "filter",
            "greater-or-equal(datetime,2024-06-01T00:00:00Z)",
        ))
        .and(query_param("sort", "datetime"))
        .and(query_param("include", "metric,profile,attributions"))
        .and(query_param("fields[metric]", "name,integration"))
        .and(query_param("fields[profile]", "email"))
        .and(query_param("page[size]", "1000"))
        .and(query_param_is_missing("page[cursor]"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/vnd.api+json")
                .insert_header("RateLimit-Limit", "3500")
                .insert_header("RateLimit-Remaining", "3497")
                .insert_header("RateLimit-Reset", "41")
                .set_body_json(fixture("events_page1.json", &base)),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    // Page 2 is exactly `links.next`: Klaviyo's trailing-slash path and every parameter it carries.
    Mock::given(method("GET"))
        .and(path("/api/events/"))
        .and(header(
            "authorization",
            format!("Klaviyo-API-Key {KEY}").as_str(),
        ))
        .and(header("revision", "2026-07-15"))
        .and(header("accept", "application/vnd.api+json"))
        .and(query_param("page[cursor]", CURSOR))
        .and(query_param(
            "filter",
            "greater-or-equal(datetime,2024-06-01T00:00:00Z)",
        ))
        .and(query_param("page[size]", "1000"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/vnd.api+json")
                .set_body_json(fixture("events_page2.json", &base)),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("events", None))
        .await
        .unwrap();

    let ids: Vec<Vec<(&str, &str)>> = pages
        .iter()
        .map(|p| {
            p.records
                .iter()
                .map(|r| (r.id.as_str(), r.cursor.as_deref().unwrap()))
                .collect()
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            vec![
                ("5Q8rVYhTZpE", "2024-06-01T08:00:00Z"),
                ("5QbW2kLmN7s", "2024-06-01T16:30:00Z")
            ],
            vec![("5RcX3mNpQ8t", "2024-06-01T18:00:00Z")]
        ]
    );
    // The payload is the data item as sent, plus the resources its relationships point at.
    let order = &pages[0].records[1].payload.to_value();
    assert_eq!(
        order["attributes"]["event_properties"]["$value"],
        json!(129.9)
    );
    assert_eq!(
        order["included"]["metric"]["attributes"]["name"],
        "Placed Order"
    );
    assert_eq!(
        order["included"]["profile"]["attributes"]["email"],
        "sarah.mason@example.com"
    );
    assert_eq!(
        order["included"]["attributions"][0]["relationships"]["campaign"]["data"]["id"],
        "01HZ4K7Q3M2V8N5R6T9W0XYZAA"
    );
    let opened = &pages[0].records[0].payload.to_value();
    assert_eq!(
        opened["included"]["metric"]["attributes"]["name"],
        "Opened Email"
    );
    assert_eq!(opened["included"]["attributions"], json!([]));
    assert!(pages.iter().all(|p| p.checkpoint.is_none()));

    let requests = h.finish(guard).await;
    assert_eq!(requests.len(), 2);
    // wiremock reports the host as `localhost`; path and query are compared byte for byte.
    let next = url::Url::parse(
        fixture("events_page1.json", &base)["links"]["next"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (requests[1].url.path(), requests[1].url.query()),
        (next.path(), next.query()),
        "links.next is followed verbatim"
    );
    // Headers only on these two; the key never travels in the URL.
    assert!(requests.iter().all(|r| !r.url.as_str().contains(KEY)));
}

#[tokio::test]
async fn an_older_revision_sends_no_page_size_on_events() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/api/events"))
        .and(header("revision", "2025-10-15"))
        .and(query_param_is_missing("page[size]"))
        .respond_with(doc(vec![]))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = h.config();
    config.revision = "2025-10-15".into();
    let pages = read_all(&h.connector_with(config), read_request("events", None))
        .await
        .unwrap();
    assert_eq!(pages.len(), 1);
    assert!(pages[0].records.is_empty());
    h.finish(guard).await;
}

/// On a multi-threaded runtime, as the CLI runs, each page is decoded (records and `links.next`
/// from one parse): a page cut in transit is asked for once more, and the
/// records come out whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_decoded_once_follow_links_next_and_ask_again_when_truncated() {
    let h = Harness::start().await;
    let base = h.uri();
    let profile = |id: &str, updated: &str| json!({"type": "profile", "id": id, "attributes": {"email": format!("{id}@example.com"), "updated": updated}});
    Mock::given(method("GET"))
        .and(path("/api/profiles"))
        .and(query_param_is_missing("page[cursor]"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/vnd.api+json")
                .set_body_json(json!({
                    "data": [profile("P1", "2024-06-02T10:00:00+00:00"), profile("P2", "2024-06-03T10:00:00+00:00")],
                    "links": {"self": "x", "next": format!("{base}/api/profiles/?page%5Bcursor%5D=c2"), "prev": null}
                })),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/profiles/"))
        .and(query_param("page[cursor]", "c2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/vnd.api+json")
                .set_body_string(r#"{"data": [{"type": "profile", "id": "P3", "attri"#),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/profiles/"))
        .and(query_param("page[cursor]", "c2"))
        .respond_with(doc(vec![profile("P3", "2024-06-04T10:00:00+00:00")]))
        .expect(1)
        .with_priority(2)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("profiles", None))
        .await
        .unwrap();
    let ids: Vec<Vec<(&str, &str)>> = pages
        .iter()
        .map(|p| {
            p.records
                .iter()
                .map(|r| (r.id.as_str(), r.cursor.as_deref().unwrap()))
                .collect()
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            vec![
                ("P1", "2024-06-02T10:00:00Z"),
                ("P2", "2024-06-03T10:00:00Z")
            ],
            vec![("P3", "2024-06-04T10:00:00Z")]
        ]
    );
    assert_eq!(
        pages[1].records[0].payload.to_value()["attributes"]["email"],
        "P3@example.com"
    );
    assert_eq!(h.finish(guard).await.len(), 3);
}

/// A whole page holding an item that is no record (no `id`) fails at once, on a multi-threaded
/// runtime as the CLI runs: asking again would fetch the same item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_page_with_an_item_without_an_id_fails_after_one_request() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/api/profiles"))
        .respond_with(doc(vec![
            json!({"type": "profile", "attributes": {"updated": "2024-06-02T10:00:00+00:00"}}),
        ]))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("profiles", None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "could not decode the response: Klaviyo profiles record without an `id`"
    );
    assert!(h.clock.sleeps().is_empty(), "{:?}", h.clock.sleeps());
    assert_eq!(h.finish(guard).await.len(), 1);
}
