//! Long ranges as an async report job polled on the clock, and a failed job split in halves.

use super::*;

#[tokio::test]
async fn long_ranges_run_as_an_async_job_polled_on_the_clock() {
    let server = MockServer::start().await;
    let clock = pinned();
    Mock::given(method("POST"))
        .and(path(INSIGHTS))
        .and(query_param(
            "time_range",
            r#"{"since":"2024-05-01","until":"2024-06-30"}"#,
        ))
        .and(query_param("level", "ad"))
        .and(query_param("time_increment", "1"))
        .respond_with(ok(json!({"report_run_id": "6123456789012345"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/6123456789012345"))
        .respond_with(job_status("6123456789012345", "Job Running", 45))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/6123456789012345"))
        .respond_with(job_status("6123456789012345", "Job Started", 100))
        .up_to_n_times(1)
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/6123456789012345"))
        .respond_with(job_status("6123456789012345", "Job Completed", 100))
        .with_priority(3)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/6123456789012345/insights"))
        .and(query_param("limit", "500"))
        .respond_with(ok(fixture("insights_page2.json", &server.uri())))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2024, 5, 1), (2024, 7, 1))),
    )
    .await
    .unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].records[0].id, "120208765432100791:2024-06-02");
    assert_eq!(pages[0].checkpoint, Some(json!({"cursor": "2024-06-30"})));
    // Three polls, each after a wait that starts at 1 s and doubles; 100 % while "Job Started" is
    // not done.
    assert_eq!(
        waits(&clock),
        vec![
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
    for r in server.received_requests().await.unwrap() {
        assert_eq!(tokens(&r), vec![TOKEN.to_string()], "{}", r.url.path());
    }
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_failed_job_is_split_in_halves_and_each_retried() {
    let server = MockServer::start().await;
    let clock = pinned();
    for (range, id) in [
        (r#"{"since":"2024-05-01","until":"2024-06-30"}"#, "700"),
        (r#"{"since":"2024-05-01","until":"2024-05-30"}"#, "701"),
        (r#"{"since":"2024-05-31","until":"2024-06-30"}"#, "702"),
    ] {
        Mock::given(method("POST"))
            .and(path(INSIGHTS))
            .and(query_param("time_range", range))
            .respond_with(ok(json!({ "report_run_id": id })))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/v25.0/700"))
        .respond_with(job_status("700", "Job Failed", 0))
        .expect(1)
        .mount(&server)
        .await;
    for id in ["701", "702"] {
        Mock::given(method("GET"))
            .and(path(format!("/v25.0/{id}")))
            .respond_with(job_status(id, "Job Completed", 100))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/v25.0/701/insights"))
        .respond_with(ok(fixture("insights_page1.json", &server.uri())))
        .expect(1)
        .mount(&server)
        .await;
    // Page 1's next URL is the synchronous insights path with `after`, as Meta builds it.
    Mock::given(method("GET"))
        .and(path(INSIGHTS))
        .and(query_param("after", "MQZDZD"))
        .respond_with(ok(json!({"data": []})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/702/insights"))
        .respond_with(ok(fixture("insights_page2.json", &server.uri())))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2024, 5, 1), (2024, 7, 1))),
    )
    .await
    .unwrap();
    let checkpoints: Vec<_> = pages.iter().map(|p| p.checkpoint.clone()).collect();
    assert_eq!(
        checkpoints,
        vec![
            None,
            Some(json!({"cursor": "2024-05-30"})),
            Some(json!({"cursor": "2024-06-30"}))
        ]
    );
    assert_eq!(pages.iter().map(|p| p.records.len()).sum::<usize>(), 3);
    // Both halves are started as soon as the whole fails, before either is read, and polled in one
    // round: two rounds in all, each after a 1 s wait (new jobs reset the wait).
    let calls: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    assert_eq!(
        calls,
        [
            format!("POST {INSIGHTS}"),
            "GET /v25.0/700".to_string(),
            format!("POST {INSIGHTS}"),
            format!("POST {INSIGHTS}"),
            "GET /v25.0/701".to_string(),
            "GET /v25.0/702".to_string(),
            "GET /v25.0/701/insights".to_string(),
            format!("GET {INSIGHTS}"),
            "GET /v25.0/702/insights".to_string(),
        ]
    );
    assert_eq!(waits(&clock), vec![Duration::from_secs(1); 2]);
    assert_no_unexpected(catch_all).await;
}

/// A synchronous read (30 days or less) that Meta answers with code 1, "Please reduce the amount of
/// data you're asking for", is not retried as it was: the same request fails the same way. The days
/// are asked again as an async report job, whose rows come in their place.
#[tokio::test]
async fn a_synchronous_read_meta_finds_too_large_runs_as_an_async_job() {
    let server = MockServer::start().await;
    let clock = pinned();
    let range = r#"{"since":"2024-06-01","until":"2024-06-14"}"#;
    Mock::given(method("GET"))
        .and(path(INSIGHTS))
        .and(query_param("time_range", range))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {
            "message": "Please reduce the amount of data you're asking for, then retry your request",
            "code": 1
        }})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(INSIGHTS))
        .and(query_param("time_range", range))
        .and(query_param("level", "ad"))
        .respond_with(ok(json!({"report_run_id": "6123456789012346"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/6123456789012346"))
        .respond_with(job_status("6123456789012346", "Job Completed", 100))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/6123456789012346/insights"))
        .respond_with(ok(fixture("insights_page2.json", &server.uri())))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2024, 6, 1), (2024, 6, 15))),
    )
    .await
    .unwrap();
    let records: Vec<&str> = pages
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(records[0], "120208765432100791:2024-06-02");
    assert_eq!(
        pages.last().unwrap().checkpoint,
        Some(json!({"cursor": "2024-06-14"}))
    );
    // No retry of the refused GET: only the job's poll waited.
    assert_eq!(waits(&clock), vec![Duration::from_secs(1)]);
    assert_no_unexpected(catch_all).await;
}
