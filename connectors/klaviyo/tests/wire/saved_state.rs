//! Saved state drives the filters.

use super::*;

#[tokio::test]
async fn the_second_sync_filters_from_saved_state_minus_the_lookback() {
    let h = Harness::start().await;
    let base = h.uri();
    let mut page = fixture("events_page2.json", &base);
    page["data"][0]["attributes"]["datetime"] = json!("2024-06-10T12:00:00+00:00");
    Mock::given(method("GET"))
        .and(path("/api/events"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/vnd.api+json")
                .set_body_json(page),
        )
        .expect(2)
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
    let first = sync_stream(&connector, &streams::EVENTS, &writer, &options, &NoProgress).await;
    assert_eq!(
        (first.status, first.records),
        ("ok", 1),
        "{:?}",
        first.error
    );
    assert_eq!(
        writer.load_state("email", "events").await.unwrap(),
        Some(json!({ "cursor": "2024-06-10T12:00:00Z" }))
    );
    let second = sync_stream(&connector, &streams::EVENTS, &writer, &options, &NoProgress).await;
    assert_eq!(second.status, "ok", "{:?}", second.error);

    let requests = h.finish(guard).await;
    assert_eq!(requests.len(), 2);
    assert_eq!(
        query(&requests[0])["filter"],
        "greater-or-equal(datetime,2024-06-01T00:00:00Z)"
    );
    assert_eq!(
        query(&requests[1])["filter"],
        "greater-or-equal(datetime,2024-06-07T12:00:00Z)",
        "saved cursor minus lookback_days = 3"
    );
    assert_eq!(query(&requests[1])["sort"], "datetime");
}

#[tokio::test]
async fn profiles_use_greater_than_on_updated_one_second_back() {
    let h = Harness::start().await;
    let base = h.uri();
    Mock::given(method("GET"))
        .and(path("/api/profiles"))
        .and(query_param(
            "filter",
            "greater-than(updated,2024-06-01T16:30:04Z)",
        ))
        .and(query_param("sort", "updated"))
        .and(query_param("page[size]", "100"))
        .and(query_param_is_missing("include"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("profiles.json", &base)))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let state = json!({ "cursor": "2024-06-01T16:30:05Z" });
    let pages = read_all(&h.connector(), read_request("profiles", Some(state)))
        .await
        .unwrap();
    let r = &pages[0].records[0];
    assert_eq!(
        (r.id.as_str(), r.cursor.as_deref()),
        ("01HZ1A2B3C4D5E6F7G8H9J0KLM", Some("2024-06-01T16:30:05Z"))
    );
    assert!(r.payload.to_value().get("included").is_none());
    h.finish(guard).await;
}

#[tokio::test]
async fn campaigns_are_read_once_per_channel() {
    let h = Harness::start().await;
    let base = h.uri();
    Mock::given(method("GET"))
        .and(path("/api/campaigns"))
        .and(query_param(
            "filter",
            "equals(messages.channel,'email'),greater-or-equal(updated_at,2024-06-01T00:00:00Z)",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("campaign_email.json", &base)),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/campaigns"))
        .and(query_param(
            "filter",
            "equals(messages.channel,'sms'),greater-or-equal(updated_at,2024-06-01T00:00:00Z)",
        ))
        .respond_with(doc(vec![]))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let state = json!({ "cursor": "2024-06-01T00:00:00Z" });
    let pages = read_all(&h.connector(), read_request("campaigns", Some(state)))
        .await
        .unwrap();
    let records: Vec<(&str, &str)> = pages
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| (r.id.as_str(), r.cursor.as_deref().unwrap()))
        .collect();
    assert_eq!(
        records,
        [("01HZ4K7Q3M2V8N5R6T9W0XYZAA", "2024-06-01T08:05:12Z")]
    );
    assert_eq!(h.finish(guard).await.len(), 2);
}

#[tokio::test]
async fn flows_lists_and_metrics_queries() {
    let h = Harness::start().await;
    let base = h.uri();
    Mock::given(method("GET"))
        .and(path("/api/flows"))
        .and(query_param("filter", "greater-or-equal(updated,2024-06-01T00:00:00Z)"))
        .and(query_param("sort", "updated"))
        .and(query_param_is_missing("page[size]"))
        .respond_with(doc(vec![json!({"type":"flow","id":"XVTP5Q","attributes":{"name":"Abandoned Checkout","status":"live","archived":false,"created":"2022-05-31T06:48:46+00:00","updated":"2024-05-02T11:20:31+00:00","trigger_type":"Metric"}})]))
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/lists"))
        .and(query_param("filter", "greater-than(updated,2024-06-01T00:00:00Z)"))
        .and(query_param("sort", "updated"))
        .respond_with(doc(vec![json!({"type":"list","id":"Y6nRLr","attributes":{"name":"Newsletter","created":"2021-03-31T10:50:36+00:00","updated":"2024-05-20T09:00:00+00:00","opt_in_process":"double_opt_in"}})]))
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .and(query_param_is_missing("filter"))
        .and(query_param_is_missing("page[size]"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("metrics.json", &base)))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let c = h.connector();
    let flows = read_all(&c, read_request("flows", None)).await.unwrap();
    assert_eq!(
        flows[0].records[0].cursor.as_deref(),
        Some("2024-05-02T11:20:31Z")
    );
    let lists = read_all(&c, read_request("lists", None)).await.unwrap();
    assert_eq!(lists[0].records[0].id, "Y6nRLr");
    let metrics = read_all(
        &c,
        read_request("metrics", Some(json!({"cursor": "2030-01-01T00:00:00Z"}))),
    )
    .await
    .unwrap();
    assert_eq!(metrics[0].records.len(), 2, "metrics are a full refresh");
    assert_eq!(h.finish(guard).await.len(), 3);
}

#[tokio::test]
async fn a_backfill_filters_events_on_the_window() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/api/events"))
        .and(query_param(
            "filter",
            "greater-or-equal(datetime,2024-05-01T00:00:00Z),less-than(datetime,2024-06-01T00:00:00Z)",
        ))
        .respond_with(doc(vec![]))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let request = ReadRequest {
        stream: "events".into(),
        state: Some(json!({ "cursor": "2024-06-10T00:00:00Z" })),
        start: start(),
        window: Some(Window {
            since: Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap(),
            until: Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap(),
        }),
    };
    read_all(&h.connector(), request).await.unwrap();
    h.finish(guard).await;
}

/// A backfill's window ends tomorrow by default. Klaviyo refuses a filter's end date in the future on
/// some endpoints ("End date may not be in the future"), so an object stream's window ends now at the
/// latest: nothing was created after now.
#[tokio::test]
async fn a_backfill_window_ending_in_the_future_is_filtered_up_to_now() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/api/flows"))
        .respond_with(doc(vec![]))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let before = Utc::now();
    let request = ReadRequest {
        stream: "flows".into(),
        state: None,
        start: start(),
        window: Some(Window {
            since: Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap(),
            until: before + chrono::Duration::days(2),
        }),
    };
    read_all(&h.connector(), request).await.unwrap();
    let after = Utc::now();
    let requests = h.finish(guard).await;
    let filter = query(&requests[0])["filter"].clone();
    // The window's start as asked; its end now, not the day after tomorrow.
    let to = filter
        .strip_prefix("greater-or-equal(created,2024-05-01T00:00:00Z),less-than(created,")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{filter}"));
    let to: DateTime<Utc> = to.parse().unwrap();
    assert!(
        to >= before - chrono::Duration::seconds(1) && to <= after,
        "{filter}"
    );
}
