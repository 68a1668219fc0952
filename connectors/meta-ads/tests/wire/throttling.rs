//! Rate limits: code 17 waits (announced, or brief and growing); high usage slows the next request.

use super::*;

#[tokio::test]
async fn code_17_at_400_waits_the_announced_time_then_resumes() {
    let server = MockServer::start().await;
    let clock = pinned();
    Mock::given(method("GET"))
        .and(path(INSIGHTS))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("content-type", "application/json")
                .insert_header(
                    "x-business-use-case-usage",
                    r#"{"123456789012345":[{"type":"ads_insights","call_count":100,"total_cputime":34,"total_time":41,"estimated_time_to_regain_access":2}]}"#,
                )
                .set_body_json(fixture("error_17.json", "")),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(INSIGHTS))
        .respond_with(ok(fixture("insights_page2.json", &server.uri())))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2024, 6, 2), (2024, 6, 3))),
    )
    .await
    .unwrap();
    assert_eq!(pages[0].records.len(), 1);
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(120)]);
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn usage_at_90_percent_slows_the_next_request() {
    let server = MockServer::start().await;
    let clock = pinned();
    Mock::given(method("GET"))
        .and(path(CAMPAIGNS))
        .and(query_param_is_missing("after"))
        .respond_with(ok(fixture("campaigns.json", &server.uri())).insert_header(
            "x-ad-account-usage",
            r#"{"acc_id_util_pct":90,"reset_time_duration":100}"#,
        ))
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
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(45)]);
    let records: Vec<_> = pages.iter().flat_map(|p| &p.records).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].id, "120208765432100123");
    assert_eq!(records[0].cursor.as_deref(), Some("2024-06-01T14:45:19Z"));
    let received = server.received_requests().await.unwrap();
    assert!(!query_map(&received[0]).contains_key("filtering"));
    assert_eq!(tokens(&received[1]), vec![TOKEN.to_string()]);
    assert_no_unexpected(catch_all).await;
}

/// Code 17 with `estimated_time_to_regain_access: 0`: Meta says access is not blocked, so the waits are
/// brief and grow (5 s, 10 s, 20 s) instead of a fixed 5 minutes each.
#[tokio::test]
async fn code_17_not_blocked_backs_off_briefly_and_grows() {
    let server = MockServer::start().await;
    let clock = pinned();
    Mock::given(method("GET"))
        .and(path(INSIGHTS))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("content-type", "application/json")
                .insert_header(
                    "x-business-use-case-usage",
                    r#"{"123456789012345":[{"type":"ads_insights","call_count":100,"total_cputime":34,"total_time":41,"estimated_time_to_regain_access":0}]}"#,
                )
                .set_body_json(fixture("error_17.json", "")),
        )
        .up_to_n_times(3)
        .with_priority(1)
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(INSIGHTS))
        .respond_with(ok(fixture("insights_page2.json", &server.uri())))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2024, 6, 2), (2024, 6, 3))),
    )
    .await
    .unwrap();
    assert_eq!(pages[0].records.len(), 1);
    assert_eq!(
        clock.sleeps(),
        vec![
            Duration::from_secs(5),
            Duration::from_secs(10),
            Duration::from_secs(20)
        ]
    );
    assert_no_unexpected(catch_all).await;
}
