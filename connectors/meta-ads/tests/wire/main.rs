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
use growthflow_meta_ads::{limits, MetaAds, MetaAdsConfig};

mod async_jobs;
mod paging;
mod several_jobs;
mod split_by_scope;
mod throttling;
mod token;

const TOKEN: &str = "EAAB-configured-system-user-token-1234567890";
const STALE: &str = "EAAB-STALE-TOKEN-FROM-META";
const INSIGHTS: &str = "/v25.0/act_123456789012345/insights";
const CAMPAIGNS: &str = "/v25.0/act_123456789012345/campaigns";

fn fixture(name: &str, base: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text.replace("{{BASE}}", base)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The client's spacing of requests sent back to back ([`limits::REQUESTS_PER_SECOND`]), waited on
/// the client's clock like every other wait.
const SPACING: Duration = Duration::from_millis(1000 / limits::REQUESTS_PER_SECOND as u64);

/// What a read waited on `clock` besides [`SPACING`]: its polling rounds and throttles, in order.
fn waits(clock: &TestClock) -> Vec<Duration> {
    clock
        .sleeps()
        .into_iter()
        .filter(|d| *d != SPACING)
        .collect()
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

fn job_status(id: &str, status: &str, pct: u32) -> ResponseTemplate {
    ok(json!({
        "id": id,
        "account_id": "123456789012345",
        "time_ref": 1717286400,
        "async_status": status,
        "async_percent_completion": pct,
    }))
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
    /// The `x-fb-ads-insights-throttle` percentage sent with job starts and polls (none: no header).
    throttle: Option<f64>,
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
            throttle: None,
            seen: Arc::default(),
        }
    }

    fn with_polls(mut self, polls: impl Fn(&[NaiveDate]) -> u32 + Send + Sync + 'static) -> Self {
        self.polls = Arc::new(polls);
        self
    }

    fn with_throttle(mut self, pct: f64) -> Self {
        self.throttle = Some(pct);
        self
    }

    /// `answer` with the insights throttle header, when this fake sends one.
    fn throttled(&self, answer: ResponseTemplate) -> ResponseTemplate {
        match self.throttle {
            Some(pct) => answer.insert_header(
                "x-fb-ads-insights-throttle",
                format!(r#"{{"app_id_util_pct":{pct},"acc_id_util_pct":1}}"#).as_str(),
            ),
            None => answer,
        }
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
                self.throttled(ok(json!({"report_run_id": format!("{}", 900 + n)})))
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
                self.throttled(job_status(id, status, 100))
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
