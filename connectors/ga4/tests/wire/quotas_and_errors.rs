//! Metadata validation, the hourly and daily quotas, and the errors that end a read.

use super::*;

#[tokio::test]
async fn metadata_validation_names_the_wrong_metric() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    let catch_all = mount_catch_all(&server).await;
    let mut config = Ga4Config::with_service_account("123456789", key_file(&server, "metadata"));
    config.base_url = Some(server.uri());
    config.reports = vec![ReportConfig {
        name: "by_country".into(),
        dimensions: vec!["country".into()],
        metrics: vec!["sessions".into(), "conversions".into()],
        dimension_filter: None,
    }];
    let ga4 = Ga4::new(
        "web",
        config,
        &ClientOptions::with_clock(Arc::new(TestClock::new())),
    )
    .unwrap();
    assert!(ga4.streams().iter().any(|s| s.name == "report_by_country"));
    let mut req = one_day(1);
    req.stream = "report_by_country".into();
    let err = read_pages(&ga4, req).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Config { .. }), "{msg}");
    assert!(msg.contains("sources.web.reports[0].metrics"), "{msg}");
    assert!(
        msg.contains("\"conversions\"") && msg.contains("keyEvents"),
        "{msg}"
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn low_hourly_quota_in_a_batch_slows_down() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(|day: &str, offset, limit| {
            let mut r = day_report(day, &["google"], offset, limit);
            r["propertyQuota"] = json!({"tokensPerHour":{"consumed":12,"remaining":900},
                "tokensPerDay":{"consumed":12,"remaining":150000}});
            r
        }))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = connector(&server, "hourly", &clock);
    // Six days: two batches; the quota the first batch's reports carry pauses the second.
    let pages = read_pages(&ga4, window((6, 1), (6, 7))).await.unwrap();
    assert_eq!(pages.len(), 6);
    assert_eq!(bodies(&server, BATCH).await.len(), 2);
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(300)]);
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn daily_quota_stops_and_429_backs_off() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(body_partial_json(
            json!({"requests":[{"dateRanges":[{"startDate":"2024-06-01"}]}]}),
        ))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(json!({"error":{"code":429,
            "message":"Exhausted property tokens per day quota.","status":"RESOURCE_EXHAUSTED"}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(body_partial_json(
            json!({"requests":[{"dateRanges":[{"startDate":"2024-06-02"}]}]}),
        ))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(json!({"error":{"code":429,
            "message":"Exhausted concurrent requests quota.","status":"RESOURCE_EXHAUSTED"}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let mut one_row = fixture("run_report_page2.json");
    one_row["rowCount"] = 1.into();
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(body_partial_json(
            json!({"requests":[{"dateRanges":[{"startDate":"2024-06-02"}]}]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"reports":[one_row]})))
        .with_priority(2)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = connector(&server, "quota", &clock);
    let err = read_pages(&ga4, one_day(1)).await.unwrap_err();
    assert!(matches!(err, Error::QuotaExhausted { .. }), "{err}");
    assert!(err.to_string().contains("123456789"), "{err}");

    let pages = read_pages(&ga4, one_day(2)).await.unwrap();
    assert_eq!(pages.iter().map(|p| p.records.len()).sum::<usize>(), 1);
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(30)]);
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_403_says_to_add_the_account_as_viewer() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    Mock::given(method("GET"))
        .and(path(META))
        .respond_with(ResponseTemplate::new(403).set_body_json(fixture("error_403.json")))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let ga4 = connector(&server, "forbidden", &TestClock::new());
    let err = ga4.check().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Auth { .. }), "{msg}");
    assert!(
        msg.contains("property 123456789") && msg.contains("Viewer"),
        "{msg}"
    );
    assert!(
        msg.contains("source \"web\"") && msg.contains("PERMISSION_DENIED"),
        "{msg}"
    );
    assert_no_unexpected(catch_all).await;
}

/// A saved cursor that is not a date used to be ignored: the stream silently restarted from
/// `start_date`, re-reading (and spending quota on) the whole history. It is an error that names the
/// stream and says how to reset it, sent before any request.
#[tokio::test]
async fn an_unreadable_saved_cursor_fails_clearly_instead_of_restarting() {
    let server = MockServer::start().await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 6, 10, 15, 30, 0).unwrap());
    let ga4 = connector(&server, "unreadable-cursor", &clock);
    let err = read_pages(
        &ga4,
        ReadRequest {
            stream: "traffic_daily".into(),
            state: Some(json!({ "cursor": "June 9th" })),
            start: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            window: None,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("`traffic_daily`"), "{text}");
    assert!(text.contains("\"June 9th\""), "{text}");
    assert!(
        text.contains("--stream traffic_daily --full-refresh"),
        "{text}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_no_unexpected(catch_all).await;
}

/// The hourly token quota used to fail the stream ("asked to wait 1800s, longer than the 900s we wait")
/// although a wait was promised: the wait now runs until the next full hour by the client's clock, which
/// core's default `max_wait` admits, and the stream completes.
#[tokio::test]
async fn a_spent_hourly_quota_is_waited_out_until_the_next_hour() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(json!({"error":{"code":429,
            "message":"Exhausted property tokens for a project per hour.","status":"RESOURCE_EXHAUSTED"}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let mut one_row = fixture("run_report_page2.json");
    one_row["rowCount"] = 1.into();
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"reports":[one_row]})))
        .with_priority(2)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    // 10:15:30 by the client's clock: the quota refills at 11:00.
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 10, 15, 30).unwrap());
    let ga4 = connector(&server, "hourly-429", &clock);
    let pages = read_pages(&ga4, one_day(2)).await.unwrap();
    assert_eq!(pages.iter().map(|p| p.records.len()).sum::<usize>(), 1);
    let wait = Duration::from_secs(44 * 60 + 30 + 10);
    assert_eq!(clock.sleeps(), vec![wait]);
    assert_eq!(clock.elapsed(), wait);
    assert_eq!(bodies(&server, BATCH).await.len(), 2);
    assert_no_unexpected(catch_all).await;
}
