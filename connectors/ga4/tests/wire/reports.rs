//! Reading reports: paging by offset, the incremental range, replaced days, batches sized by rows.

use super::*;

#[tokio::test]
async fn reports_page_by_offset_and_parse_typed_metrics() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    // The day's first page comes in a batch of one; its rowCount (3) exceeds the 2 rows sent, so the
    // day goes on with runReport at offset 2.
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(header("authorization", "Bearer ya29.c.mock"))
        .and(body_partial_json(json!({"requests":[
            {"offset":"0","limit":"2","returnPropertyQuota":true,
             "dateRanges":[{"startDate":"2024-06-01","endDate":"2024-06-01"}]}]})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"reports":[fixture("run_report_page1.json")]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(RUN))
        .and(header("authorization", "Bearer ya29.c.mock"))
        .and(body_partial_json(json!({"offset":"2","limit":"2",
            "dateRanges":[{"startDate":"2024-06-01","endDate":"2024-06-01"}]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("run_report_page2.json")))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 8, 0, 0).unwrap());
    let ga4 = connector(&server, "paging", &clock).with_page_size(2);
    let pages = read_pages(&ga4, one_day(1)).await.unwrap();
    // Only the day's first page replaces the day; its last one checkpoints it (a backfill's
    // checkpoints are not saved, they say how far it got).
    assert_eq!(
        summary(&pages),
        vec![
            (2, Some("2024-06-01".into()), None),
            (1, None, Some(json!({"cursor": "2024-06-01"})))
        ]
    );
    let records: Vec<_> = pages.iter().flat_map(|p| p.records.clone()).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[0].id,
        "123456789:2024-06-01:(direct)\u{1f}(none)\u{1f}(direct)\u{1f}Direct"
    );
    assert_eq!(records[0].cursor.as_deref(), Some("2024-06-01"));
    assert_eq!(
        records[0].payload.to_value()["metrics"]["purchaseRevenue"],
        "842.4"
    );
    assert_eq!(
        records[2].payload.to_value()["metrics"]["ecommercePurchases"],
        "58.5"
    );
    assert_eq!(
        records[2].payload.to_value()["metrics"]["purchaseRevenue"],
        "6720.9"
    );
    assert_eq!(
        records[2].payload.to_value()["dimensions"]["sessionDefaultChannelGroup"],
        "Email"
    );
    assert_eq!(
        records[2].payload.to_value()["metadata"]["currencyCode"],
        "USD"
    );
    assert!(clock.sleeps().is_empty());
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn incremental_reads_run_from_the_lookback_to_the_clocks_today() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(|day: &str, _, _| day_report(day, &[], 0, 0)))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    // "Today" is the client's clock's: 2024-06-10, whatever day the tests run on.
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 6, 10, 15, 30, 0).unwrap());
    let ga4 = connector(&server, "incremental", &clock);
    let pages = read_pages(
        &ga4,
        ReadRequest {
            stream: "traffic_daily".into(),
            state: Some(json!({ "cursor": "2024-06-09" })),
            start: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            window: None,
        },
    )
    .await
    .unwrap();
    // cursor − 3 days of lookback, through today: 5 empty days, each one empty page that replaces the
    // day (so a day whose rows all vanished is emptied) and checkpoints it.
    let days = [
        "2024-06-06",
        "2024-06-07",
        "2024-06-08",
        "2024-06-09",
        "2024-06-10",
    ];
    assert_eq!(
        summary(&pages),
        days.iter()
            .map(|d| (0, Some(d.to_string()), Some(json!({ "cursor": d }))))
            .collect::<Vec<_>>()
    );
    // The first request asks for one day; empty days are small, so the rest go in one batch.
    let batches = bodies(&server, BATCH).await;
    assert_eq!(batches.len(), 2);
    assert_eq!(batch_days(&batches[0]), days[..1]);
    assert_eq!(batch_days(&batches[1]), days[1..]);
    assert_no_unexpected(catch_all).await;

    // A restated day gives the same ids with new values, so the upsert replaces the rows.
    let mut restated = fixture("run_report_page1.json");
    restated["rows"][0]["metricValues"][0]["value"] = "530".into();
    let day = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let before =
        growthflow_ga4::streams::records("1", day, &fixture("run_report_page1.json")).unwrap();
    let after = growthflow_ga4::streams::records("1", day, &restated).unwrap();
    assert_eq!(before[0].id, after[0].id);
    assert_eq!(after[0].payload.to_value()["metrics"]["sessions"], "530");
}

#[tokio::test]
async fn re_read_days_replace_their_rows_and_an_empty_day_is_emptied() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    let rows = |day: &str| -> &'static [&'static str] {
        match day {
            "2024-05-31" => &["google"],
            "2024-06-01" => &["bing", "google", "newsletter"],
            "2024-06-02" => &[],
            "2024-06-03" => &["bing", "google"],
            other => panic!("unexpected day {other}"),
        }
    };
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(move |day: &str, offset, limit| {
            day_report(day, rows(day), offset, limit)
        }))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(RUN))
        .respond_with(Reports(move |day: &str, offset, limit| {
            day_report(day, rows(day), offset, limit)
        }))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 6, 3, 18, 0, 0).unwrap());
    let ga4 = connector(&server, "replaces", &clock).with_page_size(2);
    let pages = read_pages(
        &ga4,
        ReadRequest {
            stream: "traffic_daily".into(),
            state: Some(json!({ "cursor": "2024-06-03" })),
            start: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            window: None,
        },
    )
    .await
    .unwrap();
    let day = |d: &str| Some(d.to_string());
    let cp = |d: &str| Some(json!({ "cursor": d }));
    assert_eq!(
        summary(&pages),
        vec![
            (1, day("2024-05-31"), cp("2024-05-31")),
            // 2024-06-01 overflows its page: the first page replaces the day, the rest only add to it.
            (2, day("2024-06-01"), None),
            (1, None, cp("2024-06-01")),
            // No rows left on 2024-06-02: an empty page still replaces (empties) the day.
            (0, day("2024-06-02"), cp("2024-06-02")),
            (2, day("2024-06-03"), cp("2024-06-03")),
        ]
    );
    // `replaces` is exactly the cursor the day's records carry, which is what the destination deletes by.
    for p in &pages {
        if let Some(r) = &p.replaces {
            assert!(p.records.iter().all(|rec| rec.cursor.as_ref() == Some(r)));
        }
    }
    let ids: Vec<_> = pages[1..3]
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(
        ids,
        ["bing", "google", "newsletter"].map(|s| format!("123456789:2024-06-01:{s}"))
    );
    let runs = bodies(&server, RUN).await;
    assert_eq!(runs.len(), 1, "only the overflowing day pages on");
    assert_eq!(runs[0]["offset"], "2");
    assert_eq!(runs[0]["dateRanges"][0]["startDate"], "2024-06-01");
    assert_no_unexpected(catch_all).await;
}

/// Seven one-row days read with `page_size` rows allowed per answer: the batches asked for, as days.
async fn batches_for_seven_days(page_size: u64) -> Vec<Vec<String>> {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .and(header("authorization", "Bearer ya29.c.mock"))
        .respond_with(Reports(|day: &str, offset, limit| {
            day_report(day, &["google"], offset, limit)
        }))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = connector(&server, "batches", &clock).with_page_size(page_size);
    let pages = read_pages(&ga4, window((6, 1), (6, 8))).await.unwrap();
    let days: Vec<String> = (1..=7).map(|d| format!("2024-06-{d:02}")).collect();
    assert_eq!(
        summary(&pages),
        days.iter()
            .map(|d| (1, Some(d.clone()), Some(json!({ "cursor": d }))))
            .collect::<Vec<_>>(),
        "one page per day, in date order, however the days were batched"
    );
    let batches = bodies(&server, BATCH).await;
    for inner in batches
        .iter()
        .flat_map(|b| b["requests"].as_array().unwrap())
    {
        assert_eq!(inner["offset"], "0");
        assert_eq!(inner["limit"], page_size.to_string());
        assert_eq!(inner["returnPropertyQuota"], true);
        assert_eq!(
            inner["dateRanges"][0]["startDate"],
            inner["dateRanges"][0]["endDate"]
        );
        assert_eq!(inner["dimensions"][0]["name"], "date");
    }
    assert!(clock.sleeps().is_empty());
    assert_no_unexpected(catch_all).await;
    batches.iter().map(batch_days).collect()
}

#[tokio::test]
async fn batches_grow_to_five_days_while_days_stay_small() {
    let d =
        |days: &[u32]| -> Vec<String> { days.iter().map(|n| format!("2024-06-{n:02}")).collect() };
    // One day first (nothing is known yet), then five small ones at a time.
    assert_eq!(
        batches_for_seven_days(growthflow_ga4::streams::DEFAULT_PAGE_SIZE).await,
        vec![d(&[1]), d(&[2, 3, 4, 5, 6]), d(&[7])]
    );
    // Answers are kept to about page_size rows: with two rows allowed, one-row days go two by two.
    assert_eq!(
        batches_for_seven_days(2).await,
        vec![d(&[1]), d(&[2, 3]), d(&[4, 5]), d(&[6, 7])]
    );
    use growthflow_ga4::streams::next_batch;
    assert_eq!(next_batch(100_000, None), 1);
    assert_eq!(next_batch(100_000, Some(0)), 5);
    assert_eq!(next_batch(100_000, Some(30_000)), 3);
    assert_eq!(next_batch(100_000, Some(100_000)), 1);
}

/// On a multi-threaded runtime, as the CLI runs, a report is decoded (rows, `rowCount` and the
/// property quota from one parse): a day that overflows its batched page
/// goes on with runReport, a runReport answer cut in transit is asked for once more, and the low
/// hourly quota the batch reported still pauses the next report request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_pages_decoded_once_page_on_pause_and_ask_again_when_truncated() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    let sources = ["bing", "google", "newsletter"];
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(move |day: &str, offset, limit| {
            let mut r = day_report(day, &sources, offset, limit);
            r["propertyQuota"] = json!({"tokensPerHour": {"consumed": 12, "remaining": 900}});
            r
        }))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(RUN))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"dimensionHeaders":[{"na"#, "application/json"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(RUN))
        .respond_with(Reports(move |day: &str, offset, limit| {
            day_report(day, &sources, offset, limit)
        }))
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = connector(&server, "decoded", &clock).with_page_size(2);
    let pages = read_pages(&ga4, one_day(1)).await.unwrap();
    let ids: Vec<Vec<String>> = pages
        .iter()
        .map(|p| p.records.iter().map(|r| r.id.clone()).collect())
        .collect();
    assert_eq!(
        ids,
        vec![
            vec![
                "123456789:2024-06-01:bing".to_string(),
                "123456789:2024-06-01:google".to_string()
            ],
            vec!["123456789:2024-06-01:newsletter".to_string()]
        ]
    );
    assert_eq!(
        pages[1].records[0].payload.to_value()["metrics"]["sessions"],
        "12"
    );
    assert_eq!(bodies(&server, BATCH).await.len(), 1);
    let runs = bodies(&server, RUN).await;
    assert_eq!(runs.len(), 2, "the truncated answer is asked for once more");
    assert!(runs.iter().all(|r| r["offset"] == "2"));
    // The quota pause first, then the one wait before asking again for the truncated answer.
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    assert_eq!(sleeps[0], Duration::from_secs(300), "{sleeps:?}");
    assert_no_unexpected(catch_all).await;
}

/// GA4's `(other)` row, which folds in what is past its cardinality limits, carries `(other)` in
/// every dimension, the date too: it belongs to the day the report asked for, instead of failing the
/// whole day (on every run, while the lookback re-reads it). Any other unreadable date still fails.
#[test]
fn the_other_row_is_dated_by_the_report_it_came_in() {
    let day = chrono::NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
    let mut body = fixture("run_report_page1.json");
    body["rows"][1]["dimensionValues"] = json!([
        {"value": "(other)"}, {"value": "(other)"}, {"value": "(other)"},
        {"value": "(other)"}, {"value": "(other)"}
    ]);
    body["metadata"]["dataLossFromOtherRow"] = json!(true);
    let records = growthflow_ga4::streams::records("1", day, &body).unwrap();
    assert_eq!(records.len(), 2);
    let other = records[1].payload.to_value();
    assert_eq!(records[1].cursor.as_deref(), Some("2024-06-01"));
    let sep = growthflow_ga4::streams::ID_SEPARATOR.to_string();
    assert_eq!(
        records[1].id,
        ["1:2024-06-01:(other)", "(other)", "(other)", "(other)"].join(&sep)
    );
    assert_eq!(other["date"], "2024-06-01");
    assert_eq!(other["metadata"]["other_row"], true);
    assert_eq!(other["metrics"]["sessions"], "1204");

    body["rows"][1]["dimensionValues"][0] = json!({"value": "2024-06-01"});
    assert!(growthflow_ga4::streams::records("1", day, &body).is_err());
}
