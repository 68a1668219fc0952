//! The connector against a mock Graph API (wiremock): what it sends and how it reacts.
//!
//! Every test mounts the core catch-all last, at the lowest priority, answering 500 "unexpected
//! request", and ends with `assert_no_unexpected`, so a wrong path or parameter fails loudly instead of
//! being retried into a pass. Waits run on a `TestClock`: nothing sleeps for real.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use growthflow_core::connector::{Connector, ReadRequest, Window};
use growthflow_core::http::{ClientOptions, TestClock};
use growthflow_core::testing::{assert_no_unexpected, mount_catch_all, query_map, read_pages};
use growthflow_core::Error;
use growthflow_meta_ads::{MetaAds, MetaAdsConfig};

const TOKEN: &str = "EAAB-configured-system-user-token-1234567890";
const STALE: &str = "EAAB-STALE-TOKEN-FROM-META";
const INSIGHTS: &str = "/v25.0/act_123456789012345/insights";
const CAMPAIGNS: &str = "/v25.0/act_123456789012345/campaigns";

fn fixture(name: &str, base: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text.replace("{{BASE}}", base)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn connector(server: &MockServer, clock: &TestClock) -> MetaAds {
    let mut config = MetaAdsConfig::new("act_123456789012345", TOKEN);
    config.base_url = Some(server.uri());
    MetaAds::new(
        "meta",
        config,
        &ClientOptions::with_clock(Arc::new(clock.clone())),
    )
    .unwrap()
}

fn window(since: (i32, u32, u32), until: (i32, u32, u32)) -> Option<Window> {
    Some(Window {
        since: Utc
            .with_ymd_and_hms(since.0, since.1, since.2, 0, 0, 0)
            .unwrap(),
        until: Utc
            .with_ymd_and_hms(until.0, until.1, until.2, 0, 0, 0)
            .unwrap(),
    })
}

fn request(stream: &str, state: Option<Value>, window: Option<Window>) -> ReadRequest {
    ReadRequest {
        stream: stream.into(),
        state,
        start: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        window,
    }
}

fn tokens(req: &Request) -> Vec<String> {
    req.url
        .query_pairs()
        .filter(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/json; charset=UTF-8")
        .set_body_json(body)
}

#[tokio::test]
async fn insights_pages_follow_paging_next_with_the_token_replaced() {
    let server = MockServer::start().await;
    let clock = TestClock::new();
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
    assert_eq!(pages[0].records[0].payload["spend"], "212.47");
    assert_eq!(pages[0].checkpoint, None);
    assert_eq!(pages[1].checkpoint, Some(json!({"cursor": "2024-06-02"})));
    assert!(clock.sleeps().is_empty());
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn incremental_time_range_starts_lookback_days_before_the_cursor() {
    let server = MockServer::start().await;
    let clock = TestClock::new();
    Mock::given(method("GET"))
        .and(path(INSIGHTS))
        .respond_with(ok(json!({"data": []})))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let today = Utc::now().date_naive();
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
    let since = NaiveDate::parse_from_str(range["since"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    assert_eq!(since, cursor - chrono::Duration::days(28));
    assert_eq!(range["until"], today.to_string());
    assert_eq!(pages.len(), 1);
    assert_eq!(
        pages[0].checkpoint,
        Some(json!({"cursor": cursor.to_string()}))
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn code_17_at_400_waits_the_announced_time_then_resumes() {
    let server = MockServer::start().await;
    let clock = TestClock::new();
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
    let clock = TestClock::new();
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

#[tokio::test]
async fn incremental_objects_filter_on_updated_time() {
    let server = MockServer::start().await;
    let clock = TestClock::new();
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

#[tokio::test]
async fn an_expired_token_says_to_renew_it_and_never_shows_it() {
    let server = MockServer::start().await;
    let clock = TestClock::new();
    Mock::given(method("GET"))
        .and(path(CAMPAIGNS))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("content-type", "application/json")
                .set_body_json(fixture("error_190.json", "")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let err = meta.check().await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(message.contains("source \"meta\""), "{message}");
    assert!(message.contains("190/463"), "{message}");
    assert!(message.contains("renew the token"), "{message}");
    assert!(!message.contains(TOKEN), "{message}");
    assert!(!format!("{err:?}").contains(TOKEN));
    assert!(!format!("{meta:?}").contains(TOKEN));
    let mut config = MetaAdsConfig::new("act_123456789012345", TOKEN);
    config.base_url = Some(server.uri());
    assert!(!format!("{config:?}").contains(TOKEN));
    assert!(clock.sleeps().is_empty(), "auth errors are not retried");
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_next_url_on_another_host_is_refused() {
    let server = MockServer::start().await;
    let clock = TestClock::new();
    Mock::given(method("GET"))
        .and(path(CAMPAIGNS))
        .respond_with(ok(fixture("campaigns.json", "https://evil.example")))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let err = read_pages(&meta, request("campaigns", None, None))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("refusing to send the token"),
        "{err}"
    );
    assert!(!err.to_string().contains(STALE), "{err}");
    assert_no_unexpected(catch_all).await;
}

fn job_status(id: &str, status: &str, pct: u32) -> ResponseTemplate {
    ok(json!({
        "id": id,
        "account_id": "123456789012345",
        "time_ref": 1717286400,
        "async_status": status,
        "async_percent_completion": pct,
    }))
}

#[tokio::test]
async fn long_ranges_run_as_an_async_job_polled_on_the_clock() {
    let server = MockServer::start().await;
    let clock = TestClock::new();
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
    // Two polls before completion (100 % while "Job Started" is not done): 5 s, then 10 s.
    assert_eq!(
        clock.sleeps(),
        vec![Duration::from_secs(5), Duration::from_secs(10)]
    );
    for r in server.received_requests().await.unwrap() {
        assert_eq!(tokens(&r), vec![TOKEN.to_string()], "{}", r.url.path());
    }
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_failed_job_is_split_in_halves_and_each_retried() {
    let server = MockServer::start().await;
    let clock = TestClock::new();
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
    assert!(clock.sleeps().is_empty());
    assert_no_unexpected(catch_all).await;
}
