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

/// A clock whose "today" is 2024-07-15, so date ranges and checkpoints do not depend on the day the
/// tests run (and stay inside Meta's 37-month retention, which is counted from today).
fn pinned() -> TestClock {
    TestClock::at(Utc.with_ymd_and_hms(2024, 7, 15, 12, 0, 0).unwrap())
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
    assert_eq!(pages[0].records[0].payload["spend"], "212.47");
    assert_eq!(pages[0].checkpoint, None);
    assert_eq!(pages[1].checkpoint, Some(json!({"cursor": "2024-06-02"})));
    assert!(clock.sleeps().is_empty());
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

#[tokio::test]
async fn an_expired_token_says_to_renew_it_and_never_shows_it() {
    let server = MockServer::start().await;
    let clock = pinned();
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
    let clock = pinned();
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
    match &err {
        Error::OffOrigin { host, .. } => assert_eq!(host, "evil.example"),
        other => panic!("expected OffOrigin, got {other:?}"),
    }
    assert!(err.to_string().contains("evil.example"), "{err}");
    assert!(!err.to_string().contains(STALE), "{err}");
    assert!(!err.to_string().contains(TOKEN), "{err}");
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
        clock.sleeps(),
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
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(1); 2]);
    assert_no_unexpected(catch_all).await;
}

/// A job as the fake saw it started: `time_range`, `level`, `filtering`.
type JobSeen = (String, String, Option<Value>);

/// Which jobs fail: given the job's days and its scope (`account`, or the campaign or ad set id).
type FailRule = Arc<dyn Fn(&[NaiveDate], &str) -> bool + Send + Sync>;

/// How many polls a job answers before it ends (1: it ends at its first poll), given its days.
type PollRule = Arc<dyn Fn(&[NaiveDate]) -> u32 + Send + Sync>;

/// Called with a job's days at each of its polls.
type PollHook = Arc<dyn Fn(&[NaiveDate]) + Send + Sync>;

/// What the fake saw, in order: `post N`, `poll N <status>`, `rows N`, `list <level>` (N is the
/// job's index, its id minus 900).
#[derive(Default)]
struct Seen {
    jobs: Vec<JobSeen>,
    polls: Vec<u32>,
    ended: Vec<bool>,
    events: Vec<String>,
    running: usize,
    max_running: usize,
}

/// A small fake Graph API for the async job tests: three ads (`a1` in ad set `s1` and `a2` in `s2`,
/// both of campaign `c1`; `a3` in `s3` of `c2`) delivering every day. A job runs for the number of
/// polls its [`PollRule`] says (one by default), then fails if its [`FailRule`] says so and completes
/// otherwise. It answers the async job calls and the one-day `level=campaign|adset` listings, records
/// every job and every call, and counts the jobs running at once (started and not yet polled to an
/// end), as Meta would see them.
#[derive(Clone)]
struct FakeGraph {
    fail: FailRule,
    polls: PollRule,
    /// Called with a job's days at each of its polls (to move a test clock).
    on_poll: PollHook,
    seen: Arc<std::sync::Mutex<Seen>>,
}

const FAKE_ADS: [(&str, &str, &str); 3] =
    [("a1", "s1", "c1"), ("a2", "s2", "c1"), ("a3", "s3", "c2")];

impl FakeGraph {
    /// Jobs that cover `fail_day` at a scope in `fail` fail at their first poll; the others complete.
    fn new(fail_day: &'static str, fail: &[&'static str]) -> Self {
        let fail = fail.to_vec();
        Self::failing(move |days, scope| {
            days.iter().any(|d| d.to_string() == fail_day) && fail.contains(&scope)
        })
    }

    fn failing(fail: impl Fn(&[NaiveDate], &str) -> bool + Send + Sync + 'static) -> Self {
        FakeGraph {
            fail: Arc::new(fail),
            polls: Arc::new(|_| 1),
            on_poll: Arc::new(|_| {}),
            seen: Arc::default(),
        }
    }

    fn with_polls(mut self, polls: impl Fn(&[NaiveDate]) -> u32 + Send + Sync + 'static) -> Self {
        self.polls = Arc::new(polls);
        self
    }

    fn on_poll(mut self, f: impl Fn(&[NaiveDate]) + Send + Sync + 'static) -> Self {
        self.on_poll = Arc::new(f);
        self
    }

    fn jobs(&self) -> Vec<JobSeen> {
        self.seen.lock().unwrap().jobs.clone()
    }

    fn events(&self) -> Vec<String> {
        self.seen.lock().unwrap().events.clone()
    }

    fn max_running(&self) -> usize {
        self.seen.lock().unwrap().max_running
    }

    /// The ads a `filtering` parameter keeps, and the scope name it stands for (`account` without).
    fn scope(
        filtering: Option<&Value>,
    ) -> (String, Vec<(&'static str, &'static str, &'static str)>) {
        let Some(f) = filtering else {
            return ("account".into(), FAKE_ADS.to_vec());
        };
        let f = &f[0];
        assert_eq!(f["operator"], "IN", "{f}");
        let ids = f["value"].as_array().unwrap();
        assert_eq!(ids.len(), 1, "{f}");
        let id = ids[0].as_str().unwrap();
        let keep = FAKE_ADS
            .iter()
            .copied()
            .filter(|(_, s, c)| match f["field"].as_str().unwrap() {
                "campaign.id" => *c == id,
                "adset.id" => *s == id,
                other => panic!("filtering on {other}"),
            })
            .collect();
        (id.to_string(), keep)
    }

    fn days(range: &Value) -> Vec<NaiveDate> {
        let d =
            |k: &str| NaiveDate::parse_from_str(range[k].as_str().unwrap(), "%Y-%m-%d").unwrap();
        let (mut day, until) = (d("since"), d("until"));
        let mut out = Vec::new();
        while day <= until {
            out.push(day);
            day += chrono::Duration::days(1);
        }
        out
    }

    /// Job `id`'s index, days and scope.
    fn job(&self, id: &str) -> (usize, Vec<NaiveDate>, Option<Value>) {
        let n = id.parse::<usize>().unwrap() - 900;
        let (range, _, filtering) = self.seen.lock().unwrap().jobs[n].clone();
        let range: Value = serde_json::from_str(&range).unwrap();
        (n, Self::days(&range), filtering)
    }
}

impl wiremock::Respond for FakeGraph {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let q = query_map(req);
        let filtering: Option<Value> = q.get("filtering").map(|f| serde_json::from_str(f).unwrap());
        let segments: Vec<&str> = req
            .url
            .path()
            .trim_start_matches("/v25.0/")
            .split('/')
            .collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("POST", [act, "insights"]) if act.starts_with("act_") => {
                assert_eq!(q["level"], "ad");
                let mut seen = self.seen.lock().unwrap();
                let n = seen.jobs.len();
                seen.jobs
                    .push((q["time_range"].clone(), q["level"].clone(), filtering));
                seen.polls.push(0);
                seen.ended.push(false);
                seen.running += 1;
                seen.max_running = seen.max_running.max(seen.running);
                seen.events.push(format!("post {n}"));
                ok(json!({"report_run_id": format!("{}", 900 + n)}))
            }
            ("GET", [act, "insights"]) if act.starts_with("act_") => {
                // The listing of what delivered on one day.
                let range: Value = serde_json::from_str(&q["time_range"]).unwrap();
                assert_eq!(Self::days(&range).len(), 1, "listings are for one day");
                let (_, ads) = Self::scope(filtering.as_ref());
                let key = match q["level"].as_str() {
                    "campaign" => 2,
                    "adset" => 1,
                    other => panic!("level {other}"),
                };
                self.seen
                    .lock()
                    .unwrap()
                    .events
                    .push(format!("list {}", q["level"]));
                let mut ids: Vec<&str> = ads.iter().map(|a| [a.0, a.1, a.2][key]).collect();
                ids.dedup();
                let field = q["fields"].clone();
                let data: Vec<Value> = ids.iter().map(|id| json!({ field.as_str(): id })).collect();
                ok(json!({ "data": data }))
            }
            ("GET", [id]) => {
                let (n, days, filtering) = self.job(id);
                let (scope, _) = Self::scope(filtering.as_ref());
                (self.on_poll)(&days);
                let mut seen = self.seen.lock().unwrap();
                assert!(!seen.ended[n], "job {n} polled after it ended");
                seen.polls[n] += 1;
                let status = if seen.polls[n] < (self.polls)(&days) {
                    "Job Running"
                } else if (self.fail)(&days, &scope) {
                    "Job Failed"
                } else {
                    "Job Completed"
                };
                if status != "Job Running" {
                    seen.ended[n] = true;
                    seen.running -= 1;
                }
                seen.events.push(format!("poll {n} {status}"));
                job_status(id, status, 100)
            }
            ("GET", [id, "insights"]) => {
                let (n, days, filtering) = self.job(id);
                let (_, ads) = Self::scope(filtering.as_ref());
                {
                    let mut seen = self.seen.lock().unwrap();
                    assert!(seen.ended[n], "rows of job {n} read before it ended");
                    seen.events.push(format!("rows {n}"));
                }
                let mut data = Vec::new();
                for day in days {
                    for (ad, adset, campaign) in &ads {
                        data.push(json!({"date_start": day.to_string(), "date_stop": day.to_string(),
                            "ad_id": ad, "adset_id": adset, "campaign_id": campaign, "spend": "1.00"}));
                    }
                }
                ok(json!({ "data": data }))
            }
            _ => ResponseTemplate::new(500).set_body_string("unexpected request"),
        }
    }
}

async fn mount_fake(server: &MockServer, fake: &FakeGraph) {
    Mock::given(wiremock::matchers::path_regex(
        r"^/v25\.0/(act_123456789012345/insights|9\d\d(/insights)?)$",
    ))
    .respond_with(fake.clone())
    .mount(server)
    .await;
}

#[tokio::test]
async fn a_failing_day_is_split_by_campaign_then_by_ad_set_and_only_parts_retried() {
    let server = MockServer::start().await;
    let clock = pinned();
    let fake = FakeGraph::new("2024-05-20", &["account", "c1"]);
    mount_fake(&server, &fake).await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2024, 5, 1), (2024, 6, 1))),
    )
    .await
    .unwrap();

    // Every job, in the order started: each failed range's parts are started in the round that
    // saw it fail (up to four jobs running), so the halving reaches the failing day a round at a time
    // while the halves that completed wait to be read; that day per campaign, the failing
    // campaign-day per ad set. Each part is run once, and the set of jobs is the same as when they
    // ran one by one.
    let campaign =
        |id: &str| Some(json!([{"field": "campaign.id", "operator": "IN", "value": [id]}]));
    let adset = |id: &str| Some(json!([{"field": "adset.id", "operator": "IN", "value": [id]}]));
    let range = |a: &str, b: &str| json!({"since": a, "until": b}).to_string();
    let jobs: Vec<(String, Option<Value>)> = fake
        .jobs()
        .iter()
        .map(|(r, level, f)| {
            assert_eq!(level, "ad", "parts are still read at level=ad");
            (r.clone(), f.clone())
        })
        .collect();
    let day = "2024-05-20";
    assert_eq!(
        jobs,
        vec![
            (range("2024-05-01", "2024-05-31"), None), // round 1: fails
            (range("2024-05-01", "2024-05-15"), None), // round 2: completes
            (range("2024-05-16", "2024-05-31"), None), // round 2: fails
            (range("2024-05-16", "2024-05-23"), None), // round 3: fails
            (range("2024-05-24", "2024-05-31"), None), // round 3: completes
            (range("2024-05-16", "2024-05-19"), None),
            (range("2024-05-20", "2024-05-23"), None), // round 4: fails
            (range("2024-05-20", "2024-05-21"), None), // round 5: fails
            (range("2024-05-22", "2024-05-23"), None),
            (range(day, day), None), // round 6: fails
            (range("2024-05-21", "2024-05-21"), None),
            (range(day, day), campaign("c1")), // round 7: fails
            (range(day, day), campaign("c2")),
            (range(day, day), adset("s1")), // round 8: both complete
            (range(day, day), adset("s2")),
        ]
    );
    assert!(fake.max_running() <= 4);
    // The listings: campaigns of the day, then ad sets of the failed campaign.
    let listings: Vec<(String, Option<String>)> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "GET" && r.url.path() == INSIGHTS)
        .map(|r| {
            let q = query_map(r);
            assert_eq!(q["time_range"], range(day, day));
            (q["level"].clone(), q.get("filtering").cloned())
        })
        .collect();
    assert_eq!(
        listings,
        vec![
            ("campaign".to_string(), None),
            (
                "adset".to_string(),
                Some(campaign("c1").unwrap().to_string())
            ),
        ]
    );

    // Every ad's every day exactly once.
    let mut ids: Vec<String> = pages
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(ids.len(), 31 * 3);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 31 * 3, "no row twice");

    // The split day is claimed complete only by its last part.
    let checkpoints: Vec<Option<Value>> = pages.iter().map(|p| p.checkpoint.clone()).collect();
    let cp = |d: &str| Some(json!({ "cursor": d }));
    assert_eq!(
        checkpoints,
        vec![
            cp("2024-05-15"),
            cp("2024-05-19"),
            cp("2024-05-19"), // s1's part of the 20th
            cp("2024-05-19"), // s2's
            cp("2024-05-20"), // c2's, the day's last part
            cp("2024-05-21"),
            cp("2024-05-23"),
            cp("2024-05-31"),
        ]
    );
    // Eight polling rounds, each after 1 s: every round started new jobs, which resets the wait.
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(1); 8]);
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn an_ad_set_day_that_fails_is_an_error_naming_the_day_and_ad_set() {
    let server = MockServer::start().await;
    let clock = pinned();
    let fake = FakeGraph::new("2024-05-20", &["account", "c1", "s2"]);
    mount_fake(&server, &fake).await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    // The parts read before the error never claim the failing day.
    let mut pages = Vec::new();
    let mut stream = meta.read(request(
        "ad_insights",
        None,
        window((2024, 5, 15), (2024, 6, 16)),
    ));
    let err = loop {
        match futures::StreamExt::next(&mut stream).await {
            Some(Ok(p)) => pages.push(p),
            Some(Err(e)) => break e,
            None => panic!("the read ended without the error"),
        }
    };
    let message = err.to_string();
    assert!(message.contains("2024-05-20"), "{message}");
    assert!(message.contains("ad set s2"), "{message}");
    assert!(message.contains("run again later"), "{message}");
    let last = pages.iter().rev().find_map(|p| p.checkpoint.clone());
    assert_eq!(last, Some(json!({"cursor": "2024-05-19"})));
    // s1's rows of the day arrived; s2's part was the last job.
    assert!(pages
        .iter()
        .flat_map(|p| &p.records)
        .any(|r| r.id == "a1:2024-05-20"));
    assert_eq!(
        fake.jobs().last().unwrap().2,
        Some(json!([{"field": "adset.id", "operator": "IN", "value": ["s2"]}]))
    );
    assert_no_unexpected(catch_all).await;
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The record dates of `pages` in the order they arrived, checked to never go back, and every
/// `{ad}:{date}` id checked to come once.
fn dates_in_order(pages: &[growthflow_core::connector::Page]) -> Vec<String> {
    let records: Vec<_> = pages.iter().flat_map(|p| &p.records).collect();
    let dates: Vec<String> = records.iter().map(|r| r.cursor.clone().unwrap()).collect();
    assert!(
        dates.windows(2).all(|w| w[0] <= w[1]),
        "records out of date order"
    );
    let mut ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), records.len(), "a row came twice");
    dates
}

fn checkpoints(pages: &[growthflow_core::connector::Page]) -> Vec<Value> {
    pages.iter().filter_map(|p| p.checkpoint.clone()).collect()
}

/// 2023-12-01 to 2024-06-17: 200 days, planned as 67 + 67 + 66.
const JOB_RANGES_200: [(&str, &str); 3] = [
    ("2023-12-01", "2024-02-05"),
    ("2024-02-06", "2024-04-12"),
    ("2024-04-13", "2024-06-17"),
];

#[tokio::test]
async fn a_long_range_runs_as_several_jobs_polled_together_and_read_in_date_order() {
    let server = MockServer::start().await;
    let clock = pinned();
    // The first job ends at its 2nd poll, the second at its 3rd, the third at its 1st.
    let fake = FakeGraph::failing(|_, _| false).with_polls(|days| match days[0].to_string() {
        d if d == JOB_RANGES_200[0].0 => 2,
        d if d == JOB_RANGES_200[1].0 => 3,
        _ => 1,
    });
    mount_fake(&server, &fake).await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2023, 12, 1), (2024, 6, 18))),
    )
    .await
    .unwrap();

    let range = |a: &str, b: &str| json!({"since": a, "until": b}).to_string();
    let jobs: Vec<String> = fake.jobs().into_iter().map(|(r, _, _)| r).collect();
    let want: Vec<String> = JOB_RANGES_200.iter().map(|(a, b)| range(a, b)).collect();
    assert_eq!(jobs, want, "three jobs of at most 90 days, in date order");
    for (a, b) in JOB_RANGES_200 {
        assert!((day(b) - day(a)).num_days() < 90);
    }
    // All three started before any row is read; each round polls every running job once; the
    // first job's rows are read as soon as it completes, while the second still runs.
    assert_eq!(
        fake.events(),
        [
            "post 0",
            "post 1",
            "post 2",
            "poll 0 Job Running",
            "poll 1 Job Running",
            "poll 2 Job Completed",
            "poll 0 Job Completed",
            "poll 1 Job Running",
            "rows 0",
            "poll 1 Job Completed",
            "rows 1",
            "rows 2",
        ]
    );
    // One wait per round, not per job: 1 s, then doubling.
    assert_eq!(clock.sleeps(), [1, 2, 4].map(Duration::from_secs).to_vec());
    let dates = dates_in_order(&pages);
    assert_eq!(dates.len(), 200 * 3);
    assert_eq!(dates.first().unwrap(), "2023-12-01");
    assert_eq!(dates.last().unwrap(), "2024-06-17");
    assert_eq!(
        checkpoints(&pages),
        JOB_RANGES_200.map(|(_, until)| json!({ "cursor": until }))
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn no_more_than_four_jobs_run_at_once_and_freed_slots_start_the_next() {
    use growthflow_meta_ads::streams::MAX_CONCURRENT_JOBS;
    let server = MockServer::start().await;
    let clock = pinned();
    // 2023-01-01 to 2024-06-30, 547 days: seven jobs (79 days, then six of 78). The first job is
    // slow (5 polls); the others end after 1 to 3 polls, so slots free up while it runs.
    let polls = [5, 1, 2, 1, 3, 1, 1];
    let first_days = [
        "2023-01-01",
        "2023-03-21",
        "2023-06-07",
        "2023-08-24",
        "2023-11-10",
        "2024-01-27",
        "2024-04-14",
    ];
    let fake = FakeGraph::failing(|_, _| false).with_polls(move |days| {
        let k = first_days
            .iter()
            .position(|d| *d == days[0].to_string())
            .unwrap_or_else(|| panic!("unplanned job from {}", days[0]));
        polls[k]
    });
    mount_fake(&server, &fake).await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2023, 1, 1), (2024, 7, 1))),
    )
    .await
    .unwrap();

    assert_eq!(MAX_CONCURRENT_JOBS, 4);
    assert_eq!(
        fake.max_running(),
        MAX_CONCURRENT_JOBS,
        "never more than four running, and four used"
    );
    let jobs = fake.jobs();
    assert_eq!(jobs.len(), 7, "each slice one job");
    let mut expected_since = day("2023-01-01");
    for (r, _, _) in &jobs {
        let r: Value = serde_json::from_str(r).unwrap();
        let (since, until) = (
            day(r["since"].as_str().unwrap()),
            day(r["until"].as_str().unwrap()),
        );
        assert_eq!(since, expected_since, "jobs tile the range in order");
        assert!((until - since).num_days() < 90);
        expected_since = until + chrono::Duration::days(1);
    }
    assert_eq!(expected_since, day("2024-07-01"));
    // Jobs 5 to 7 started as earlier ones ended, while the slow first job still ran, and every job
    // started before the first one's rows could be read.
    let events = fake.events();
    let at = |e: &str| events.iter().position(|x| x == e).unwrap();
    assert!(at("post 4") < at("poll 0 Job Completed"));
    assert!(at("post 6") < at("poll 0 Job Completed"));
    assert!(at("post 4") > at("poll 1 Job Completed"));
    assert!(at("post 6") < at("rows 0"));
    let rows: Vec<&String> = events.iter().filter(|e| e.starts_with("rows")).collect();
    assert_eq!(
        rows,
        ["rows 0", "rows 1", "rows 2", "rows 3", "rows 4", "rows 5", "rows 6"]
    );
    // Rounds: 1 s; 1 s (new jobs); 1 s (new job); then 2 s and 4 s for the slow ones.
    assert_eq!(
        clock.sleeps(),
        [1, 1, 1, 2, 4].map(Duration::from_secs).to_vec()
    );
    let dates = dates_in_order(&pages);
    assert_eq!(dates.len(), 547 * 3);
    assert_eq!(checkpoints(&pages).len(), 7);
    assert_eq!(
        checkpoints(&pages).last(),
        Some(&json!({"cursor": "2024-06-30"}))
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_failing_job_in_the_middle_is_split_and_its_rows_come_in_its_place() {
    let server = MockServer::start().await;
    let clock = pinned();
    // The middle job (67 days) fails; its halves (33 and 34 days) complete.
    let middle = day(JOB_RANGES_200[1].0);
    let fake = FakeGraph::failing(move |days, _| days.len() > 40 && days[0] == middle);
    mount_fake(&server, &fake).await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2023, 12, 1), (2024, 6, 18))),
    )
    .await
    .unwrap();

    let range = |a: &str, b: &str| json!({"since": a, "until": b}).to_string();
    let jobs: Vec<String> = fake.jobs().into_iter().map(|(r, _, _)| r).collect();
    assert_eq!(
        jobs,
        [
            range("2023-12-01", "2024-02-05"),
            range("2024-02-06", "2024-04-12"),
            range("2024-04-13", "2024-06-17"),
            range("2024-02-06", "2024-03-09"),
            range("2024-03-10", "2024-04-12"),
        ]
    );
    // The halves start in the round that saw the failure; the first job's rows are read while they
    // run, then the halves' rows, then the third job's, which had completed long before.
    assert_eq!(
        fake.events(),
        [
            "post 0",
            "post 1",
            "post 2",
            "poll 0 Job Completed",
            "poll 1 Job Failed",
            "poll 2 Job Completed",
            "post 3",
            "post 4",
            "rows 0",
            "poll 3 Job Completed",
            "poll 4 Job Completed",
            "rows 3",
            "rows 4",
            "rows 2",
        ]
    );
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(1); 2]);
    let dates = dates_in_order(&pages);
    assert_eq!(dates.len(), 200 * 3, "every row once");
    let cp = |d: &str| json!({ "cursor": d });
    assert_eq!(
        checkpoints(&pages),
        [
            cp("2024-02-05"),
            cp("2024-03-09"),
            cp("2024-04-12"),
            cp("2024-06-17")
        ]
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_job_running_an_hour_after_its_own_start_is_split() {
    use growthflow_core::http::Clock;
    let server = MockServer::start().await;
    let clock = pinned();
    // The whole 61-day job never ends, and each of its polls finds 20 more minutes gone on the
    // client's clock; its halves end at their second poll.
    let whole = day("2024-05-01");
    let moved = clock.clone();
    let fake = FakeGraph::failing(|_, _| false)
        .with_polls(move |days| if days.len() == 61 { u32::MAX } else { 2 })
        .on_poll(move |days| {
            if days.len() == 61 && days[0] == whole {
                drop(moved.sleep(Duration::from_secs(20 * 60)));
            }
        });
    mount_fake(&server, &fake).await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2024, 5, 1), (2024, 7, 1))),
    )
    .await
    .unwrap();

    let range = |a: &str, b: &str| json!({"since": a, "until": b}).to_string();
    let jobs: Vec<String> = fake.jobs().into_iter().map(|(r, _, _)| r).collect();
    assert_eq!(
        jobs,
        [
            range("2024-05-01", "2024-06-30"),
            range("2024-05-01", "2024-05-30"),
            range("2024-05-31", "2024-06-30"),
        ]
    );
    // Given up at the poll that found it running 60 min after its start; the halves, started an
    // hour into the read, are timed from their own start and complete.
    let s = Duration::from_secs;
    assert_eq!(
        clock.sleeps(),
        [s(1), s(1200), s(2), s(1200), s(4), s(1200), s(1), s(2)]
    );
    assert_eq!(
        fake.events()[..4],
        [
            "post 0",
            "poll 0 Job Running",
            "poll 0 Job Running",
            "poll 0 Job Running"
        ]
    );
    assert_eq!(dates_in_order(&pages).len(), 61 * 3);
    assert_eq!(
        checkpoints(&pages),
        [
            json!({"cursor": "2024-05-30"}),
            json!({"cursor": "2024-06-30"})
        ]
    );
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
