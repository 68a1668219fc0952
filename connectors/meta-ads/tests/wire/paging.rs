//! Paging and incremental reads: `paging.next` with the token replaced, lookback, `updated_time`.

use super::*;

#[tokio::test]
async fn insights_pages_follow_paging_next_with_the_token_replaced() {
    let server = MockServer::start().await;
    let clock = pinned();
    Mock::given(method("GET"))
        .and(path(INSIGHTS))
        .and(query_param_is_missing("after"))
        .respond_with(ok(fixture("insights_page1.json", &server.uri())).insert_header(
            "x-business-use-case-usage",
            r#"{"123456789012345":[{"type":"ads_insights","call_count":3,"total_cputime":1,"total_time":2,"estimated_time_to_regain_access":0}]}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(INSIGHTS))
        .and(query_param("after", "MQZDZD"))
        .respond_with(ok(fixture("insights_page2.json", &server.uri())))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;

    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2024, 6, 1), (2024, 6, 3))),
    )
    .await
    .unwrap();

    let received = server.received_requests().await.unwrap();
    let (first, second) = (&received[0], &received[1]);
    let q = query_map(first);
    assert_eq!(q["level"], "ad");
    assert_eq!(q["time_increment"], "1");
    assert_eq!(
        q["time_range"],
        r#"{"since":"2024-06-01","until":"2024-06-02"}"#
    );
    assert_eq!(
        q["fields"],
        "date_start,date_stop,account_id,account_currency,campaign_id,campaign_name,adset_id,adset_name,\
         ad_id,ad_name,impressions,reach,clicks,inline_link_clicks,spend,actions,action_values"
    );
    assert_eq!(q["action_attribution_windows"], r#"["7d_click","1d_view"]"#);
    assert_eq!(q["limit"], "500");
    assert_eq!(tokens(first), vec![TOKEN.to_string()]);
    // The followed next URL: Meta's copy of the token removed, exactly one — the configured — added.
    assert_eq!(tokens(second), vec![TOKEN.to_string()]);
    assert!(!second.url.as_str().contains(STALE));
    assert_eq!(query_map(second)["after"], "MQZDZD");

    assert_eq!(pages.len(), 2);
    let ids: Vec<&str> = pages
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "120208765432100789:2024-06-01",
            "120208765432100790:2024-06-01",
            "120208765432100791:2024-06-02"
        ]
    );
    assert_eq!(pages[0].records[0].cursor.as_deref(), Some("2024-06-01"));
    // Strings stay strings in the raw record: exact, as Meta sent them.
    assert_eq!(pages[0].records[0].payload.to_value()["spend"], "212.47");
    assert_eq!(pages[0].checkpoint, None);
    assert_eq!(pages[1].checkpoint, Some(json!({"cursor": "2024-06-02"})));
    // No pause for a usage of 3 %: the second page, asked right after the first, waits only the
    // client's spacing.
    assert_eq!(clock.sleeps(), [SPACING]);
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn incremental_time_range_starts_lookback_days_before_the_cursor() {
    let server = MockServer::start().await;
    let clock = pinned();
    Mock::given(method("GET"))
        .and(path(INSIGHTS))
        .respond_with(ok(json!({"data": []})))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let today = NaiveDate::from_ymd_opt(2024, 7, 15).unwrap();
    let cursor = today - chrono::Duration::days(1);
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request(
            "ad_insights",
            Some(json!({"cursor": cursor.to_string()})),
            None,
        ),
    )
    .await
    .unwrap();
    let received = server.received_requests().await.unwrap();
    let range: Value = serde_json::from_str(&query_map(&received[0])["time_range"]).unwrap();
    assert_eq!(range, json!({"since": "2024-06-16", "until": "2024-07-15"}));
    let since = NaiveDate::parse_from_str(range["since"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    assert_eq!(since, cursor - chrono::Duration::days(28));
    assert_eq!(pages.len(), 1);
    assert_eq!(
        pages[0].checkpoint,
        Some(json!({"cursor": cursor.to_string()}))
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn incremental_objects_filter_on_updated_time() {
    let server = MockServer::start().await;
    let clock = pinned();
    Mock::given(method("GET"))
        .and(path("/v25.0/act_123456789012345/ads"))
        .respond_with(ok(json!({"data": []})))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    read_pages(
        &meta,
        request("ads", Some(json!({"cursor": "2024-06-01T14:45:19Z"})), None),
    )
    .await
    .unwrap();
    let received = server.received_requests().await.unwrap();
    let filtering: Value = serde_json::from_str(&query_map(&received[0])["filtering"]).unwrap();
    assert_eq!(
        filtering,
        json!([{"field": "ad.updated_time", "operator": "GREATER_THAN", "value": 1717253118}])
    );
    assert_no_unexpected(catch_all).await;
}

/// On a multi-threaded runtime, as the CLI runs, an objects page is decoded (records and
/// `paging.next` from one parse): a page cut in transit is asked for once
/// more, and the records come out whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_pages_decoded_once_ask_again_when_truncated() {
    let server = MockServer::start().await;
    let clock = pinned();
    let next = format!(
        "{}{CAMPAIGNS}?fields=id&limit=500&after=QVFI&access_token={STALE}",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path(CAMPAIGNS))
        .and(query_param_is_missing("after"))
        .respond_with(ok(json!({
            "data": [
                {"id": "1201", "name": "Spring", "updated_time": "2024-06-01T07:45:19-0700"},
                {"id": "1202", "name": "Summer", "updated_time": "2024-06-02T07:45:19-0700"}
            ],
            "paging": {"cursors": {"after": "QVFI"}, "next": next}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(CAMPAIGNS))
        .and(query_param("after", "QVFI"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"data":[{"id":"1203","na"#, "application/json"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(CAMPAIGNS))
        .and(query_param("after", "QVFI"))
        .respond_with(ok(json!({
            "data": [{"id": "1203", "name": "Autumn", "updated_time": "2024-06-03T07:45:19-0700"}],
            "paging": {"cursors": {"after": "QVFJ"}}
        })))
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(&meta, request("campaigns", None, None))
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
                ("1201", "2024-06-01T14:45:19Z"),
                ("1202", "2024-06-02T14:45:19Z")
            ],
            vec![("1203", "2024-06-03T14:45:19Z")]
        ]
    );
    assert_eq!(pages[1].records[0].payload.to_value()["name"], "Autumn");
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 3);
    assert_eq!(tokens(&received[2]), vec![TOKEN.to_string()]);
    assert_no_unexpected(catch_all).await;
}

/// Insights pages read on a multi-threaded runtime: both pages' rows, in order, from two requests;
/// then a whole page holding a row that is no record fails at once, after one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_pages_decoded_once() {
    let server = MockServer::start().await;
    let clock = pinned();
    Mock::given(method("GET"))
        .and(path(INSIGHTS))
        .and(query_param_is_missing("after"))
        .respond_with(ok(fixture("insights_page1.json", &server.uri())))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(INSIGHTS))
        .and(query_param("after", "MQZDZD"))
        .respond_with(ok(fixture("insights_page2.json", &server.uri())))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2024, 6, 1), (2024, 6, 3))),
    )
    .await
    .unwrap();
    let ids: Vec<Vec<&str>> = pages
        .iter()
        .map(|p| p.records.iter().map(|r| r.id.as_str()).collect())
        .collect();
    assert_eq!(
        ids,
        vec![
            vec![
                "120208765432100789:2024-06-01",
                "120208765432100790:2024-06-01"
            ],
            vec!["120208765432100791:2024-06-02"]
        ]
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    assert_no_unexpected(catch_all).await;

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(INSIGHTS))
        .respond_with(ok(
            json!({"data": [{"date_start": "2024-06-01", "spend": "1.00"}]}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let err = read_pages(
        &meta,
        request("ad_insights", None, window((2024, 6, 1), (2024, 6, 2))),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(
        err.to_string().contains("Meta insights row without ad_id"),
        "{err}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    assert_no_unexpected(catch_all).await;
}

/// Behind a pass-through proxy (`base_url`), Meta's `paging.next` still names Meta's own host: the
/// next page is asked of the proxy, at the link's path and cursor, with the configured token only.
/// Before, page 2 was refused as off-origin.
#[tokio::test]
async fn meta_links_are_followed_through_the_configured_proxy() {
    let server = MockServer::start().await;
    let clock = pinned();
    Mock::given(method("GET"))
        .and(path(CAMPAIGNS))
        .and(query_param_is_missing("after"))
        .respond_with(ok(fixture("campaigns.json", "https://graph.facebook.com")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(CAMPAIGNS))
        .and(query_param("after", "QVFIUm"))
        .respond_with(ok(fixture("campaigns_page2.json", &server.uri())))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(&meta, request("campaigns", None, None))
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    assert_eq!(tokens(&received[1]), vec![TOKEN.to_string()]);
    assert!(!received[1].url.as_str().contains(STALE));
    assert_eq!(query_map(&received[1])["limit"], "100");
    assert_no_unexpected(catch_all).await;
}
