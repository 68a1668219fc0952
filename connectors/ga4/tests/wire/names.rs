//! The configured names are checked against the property's metadata on a first read and again only
//! when they change; a name GA4 refuses later is still named as the check would.

use super::*;

/// A connector for `metrics` in report `by_source` (`sessionSource` by day).
fn by_source(server: &MockServer, test: &str, clock: &TestClock, metrics: &[&str]) -> Ga4 {
    let mut config = Ga4Config::with_service_account("123456789", key_file(server, test));
    config.base_url = Some(server.uri());
    config.reports = vec![ReportConfig {
        name: "by_source".into(),
        dimensions: vec!["sessionSource".into()],
        metrics: metrics.iter().map(|m| m.to_string()).collect(),
        dimension_filter: None,
    }];
    Ga4::new(
        "web",
        config,
        &ClientOptions::with_clock(Arc::new(clock.clone())),
    )
    .unwrap()
}

/// An incremental read of `report_by_source` from `state` (none: a first read from 2024-06-08).
fn incremental(state: Option<Value>) -> ReadRequest {
    ReadRequest {
        stream: "report_by_source".into(),
        state,
        start: Utc.with_ymd_and_hms(2024, 6, 8, 0, 0, 0).unwrap(),
        window: None,
    }
}

async fn requests_to(server: &MockServer, p: &str) -> usize {
    let all = server.received_requests().await.unwrap();
    all.iter().filter(|r| r.url.path() == p).count()
}

#[tokio::test]
async fn names_are_checked_on_a_first_read_and_again_only_when_they_change() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(Reports(|day: &str, _, _| day_report(day, &[], 0, 0)))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 6, 10, 15, 30, 0).unwrap());

    // A first read checks the names, and its state records them as checked.
    let ga4 = by_source(&server, "names-first", &clock, &["sessions"]);
    let pages = read_pages(&ga4, incremental(None)).await.unwrap();
    assert_eq!(requests_to(&server, META).await, 1);
    let state = pages.last().unwrap().checkpoint.clone().unwrap();
    let checked = ga4.checked("report_by_source").unwrap();
    assert_eq!(state, json!({"cursor": "2024-06-10", CHECKED: checked}));

    // The next run with the same names (a new process: nothing cached) asks only for the reports.
    let ga4 = by_source(&server, "names-same", &clock, &["sessions"]);
    let pages = read_pages(&ga4, incremental(Some(state.clone())))
        .await
        .unwrap();
    assert_eq!(requests_to(&server, META).await, 1, "no metadata again");
    assert_eq!(pages.last().unwrap().checkpoint, Some(state.clone()));

    // A metric added: the names are checked again, and the new state records the new names.
    let ga4 = by_source(&server, "names-added", &clock, &["sessions", "newUsers"]);
    let pages = read_pages(&ga4, incremental(Some(state.clone())))
        .await
        .unwrap();
    assert_eq!(
        requests_to(&server, META).await,
        2,
        "the changed names checked"
    );
    let added = pages.last().unwrap().checkpoint.clone().unwrap();
    assert_ne!(added[CHECKED], state[CHECKED]);
    assert_eq!(added[CHECKED], ga4.checked("report_by_source").unwrap());

    // A state that records no checked names (an older growthflow's) is not checked,
    // and gets no record either: the state stays what an uninterrupted sync would have saved.
    let ga4 = by_source(&server, "names-unrecorded", &clock, &["sessions"]);
    let pages = read_pages(&ga4, incremental(Some(json!({"cursor": "2024-06-09"}))))
        .await
        .unwrap();
    assert_eq!(requests_to(&server, META).await, 2, "no metadata");
    assert_eq!(
        pages.last().unwrap().checkpoint,
        Some(json!({"cursor": "2024-06-10"}))
    );

    // A retired name: the check fails before any report, naming the key, the name and its successor.
    let reports = requests_to(&server, BATCH).await;
    let ga4 = by_source(
        &server,
        "names-retired",
        &clock,
        &["sessions", "conversions"],
    );
    let err = read_pages(&ga4, incremental(Some(added)))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Config { .. }), "{msg}");
    assert!(msg.contains("sources.web.reports[0].metrics"), "{msg}");
    assert!(
        msg.contains("\"conversions\"") && msg.contains("keyEvents"),
        "{msg}"
    );
    assert_eq!(requests_to(&server, META).await, 3);
    assert_eq!(
        requests_to(&server, BATCH).await,
        reports,
        "no report asked for"
    );
    assert_no_unexpected(catch_all).await;
}

/// A state that records no checked names (saved by windows of days, or by an older growthflow) is not
/// a reason to ask for the metadata: the first report is sent at once, and when GA4 refuses a name in
/// it (400 INVALID_ARGUMENT), the metadata is asked for then, so that the error names the config key,
/// the name and what to do, as the check would have. A refusal the metadata does not explain is GA4's
/// own error.
#[tokio::test]
async fn a_name_ga4_refuses_is_named_as_the_check_would() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    mount_metadata(&server).await;
    Mock::given(method("POST"))
        .and(path(BATCH))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "code": 400,
            "message": "Field conversions is not a valid metric. For a list of valid dimensions and \
                        metrics, see https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema",
            "status": "INVALID_ARGUMENT"}})))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 6, 10, 15, 30, 0).unwrap());
    let cursor_only = Some(json!({"cursor": "2024-06-09"}));

    let ga4 = by_source(&server, "refused", &clock, &["sessions", "conversions"]);
    let err = read_pages(&ga4, incremental(cursor_only.clone()))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Config { .. }), "{msg}");
    assert!(msg.contains("sources.web.reports[0].metrics"), "{msg}");
    assert!(msg.contains("source \"web\""), "{msg}");
    assert!(
        msg.contains("\"conversions\"") && msg.contains("keyEvents"),
        "{msg}"
    );
    assert!(msg.contains("correct or remove it"), "{msg}");
    assert_eq!(requests_to(&server, BATCH).await, 1, "a 400 is not retried");
    assert_eq!(
        requests_to(&server, META).await,
        1,
        "asked once GA4 refused"
    );

    // The names are all known: GA4's own error (here, what the sandbox of this test says) stands.
    let ga4 = by_source(&server, "refused-known", &clock, &["sessions"]);
    let err = read_pages(&ga4, incremental(cursor_only))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Api { status: 400, code: Some(c), .. } if c == "INVALID_ARGUMENT"),
        "{err}"
    );
    assert_no_unexpected(catch_all).await;
}
