//! The simulated Meta ad account over HTTP: token errors, cursor paging, time ranges, async report
//! jobs and object filtering.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use growthflow_core::http::{Clock, TestClock};
use growthflow_sandbox::{Sandbox, SandboxConfig};
use serde_json::{json, Value};

async fn get(url: &str, query: &[(&str, String)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(url)
        .query(query)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert!(resp.headers().contains_key("x-business-use-case-usage"));
    assert!(resp.headers().contains_key("x-ad-account-usage"));
    (status, resp.json().await.unwrap())
}

/// Every row of a paged edge, following `paging.next` as given.
async fn all_pages(first: String, query: &[(&str, String)]) -> Vec<Value> {
    let (status, mut body) = get(&first, query).await;
    assert_eq!(status, 200, "{body}");
    let mut rows = Vec::new();
    loop {
        rows.extend(body["data"].as_array().unwrap().iter().cloned());
        let Some(next) = body["paging"]["next"].as_str().map(str::to_string) else {
            break;
        };
        assert!(
            next.contains("access_token="),
            "next carries the token like Meta's"
        );
        let (status, b) = get(&next, &[]).await;
        assert_eq!(status, 200, "{b}");
        body = b;
    }
    rows
}

/// POST an ad-level daily insights job for `[since, until]`; its `report_run_id`.
async fn start_job(
    root: &str,
    account_id: &str,
    token: &(&str, String),
    since: &str,
    until: &str,
) -> String {
    let started: Value = reqwest::Client::new()
        .post(format!("{root}/act_{account_id}/insights"))
        .query(&[
            token.clone(),
            ("level", "ad".into()),
            ("time_increment", "1".into()),
            (
                "time_range",
                json!({"since": since, "until": until}).to_string(),
            ),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    started["report_run_id"].as_str().unwrap().to_string()
}

fn key(r: &Value) -> String {
    format!(
        "{}:{}",
        r["ad_id"].as_str().unwrap(),
        r["date_start"].as_str().unwrap()
    )
}

#[tokio::test]
async fn a_wrong_token_is_code_190() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let acct = sb.meta();
    let url = format!("{}/v25.0/act_{}/campaigns", sb.meta_url(), acct.account_id);
    let (status, body) = get(&url, &[("access_token", "nope".into())]).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 190);
    assert_eq!(body["error"]["type"], "OAuthException");
    assert_eq!(
        body["error"]["message"],
        "Invalid OAuth access token - Cannot parse access token"
    );
    assert!(body["error"]["fbtrace_id"].is_string());
    let (status, _) = get(&url, &[]).await;
    assert_eq!(status, 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn insights_pages_return_every_row_once_within_the_time_range() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let acct = sb.meta();
    let all = acct.insights();
    assert!(all.len() > 3000, "{}", all.len());
    assert_eq!(acct.campaigns.len(), 6);
    assert_eq!(acct.ads.len(), 24);
    let url = format!("{}/v25.0/act_{}/insights", sb.meta_url(), acct.account_id);
    let q = |range: Value| {
        vec![
            ("access_token", acct.access_token.clone()),
            ("level", "ad".to_string()),
            ("time_increment", "1".to_string()),
            ("time_range", range.to_string()),
            ("limit", "500".to_string()),
        ]
    };
    let rows = all_pages(
        url.clone(),
        &q(json!({"since": "2020-01-01", "until": "2030-01-01"})),
    )
    .await;
    assert_eq!(rows.len(), all.len());
    let keys: HashSet<String> = rows.iter().map(key).collect();
    assert_eq!(keys.len(), rows.len(), "no row twice");
    assert_eq!(rows, all);

    let rows = all_pages(
        url.clone(),
        &q(json!({"since": "2025-03-01", "until": "2025-03-10"})),
    )
    .await;
    let expected: Vec<&Value> = all
        .iter()
        .filter(|r| {
            let d = r["date_start"].as_str().unwrap();
            ("2025-03-01"..="2025-03-10").contains(&d)
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(rows.iter().collect::<Vec<_>>(), expected);
    for r in &rows {
        assert!(r["spend"].is_string() && r["impressions"].is_string());
        assert_eq!(r["date_start"], r["date_stop"]);
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn async_report_jobs_run_for_a_while_then_complete() {
    // The jobs' clock: the polls below wait on it, so the job runs for the time they wait.
    let clock = TestClock::new();
    let sb = Sandbox::start_with_clock(SandboxConfig::default(), Arc::new(clock.clone()))
        .await
        .unwrap();
    let acct = sb.meta();
    let root = format!("{}/v25.0", sb.meta_url());
    let token = ("access_token", acct.access_token.clone());
    let id = start_job(&root, &acct.account_id, &token, "2025-04-01", "2025-05-31").await;
    let started_at = clock.now();
    let early = get(
        &format!("{root}/{id}/insights"),
        std::slice::from_ref(&token),
    )
    .await;
    assert_eq!(
        early.0, 400,
        "no rows before the job completes: {}",
        early.1
    );
    // Like Meta's, the job advances with time, not with polls: poll as a client would until done.
    let mut seen: Vec<String> = Vec::new();
    loop {
        let (status, body) = get(&format!("{root}/{id}"), std::slice::from_ref(&token)).await;
        assert_eq!(status, 200, "{body}");
        let s = body["async_status"].as_str().unwrap().to_string();
        assert!(body["async_percent_completion"].is_u64());
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s == "Job Completed" {
            break;
        }
        assert!(clock.now() - started_at < Duration::from_secs(30));
        clock.sleep(Duration::from_millis(100)).await;
    }
    assert!(clock.now() - started_at >= growthflow_sandbox::meta::routes::JOB_RUN_TIME);
    let order = ["Job Not Started", "Job Running", "Job Completed"];
    let ranks: Vec<usize> = seen
        .iter()
        .map(|s| order.iter().position(|o| o == s).unwrap())
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] < w[1]) && seen.contains(&"Job Running".to_string()),
        "{seen:?}"
    );
    let rows = all_pages(
        format!("{root}/{id}/insights"),
        &[token, ("limit", "500".into())],
    )
    .await;
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let expected = acct.insights_between(day("2025-04-01"), day("2025-05-31"));
    assert!(expected
        .iter()
        .all(|r| ("2025-04-01"..="2025-05-31").contains(&r["date_start"].as_str().unwrap())));
    assert_eq!(rows, expected);
    sb.shutdown().await;
}

#[tokio::test]
async fn objects_filter_on_updated_time() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let acct = sb.meta();
    let token = ("access_token", acct.access_token.clone());
    for (edge, object, items) in [
        ("campaigns", "campaign", &acct.campaigns),
        ("adsets", "adset", &acct.adsets),
        ("ads", "ad", &acct.ads),
    ] {
        let url = format!("{}/v25.0/act_{}/{edge}", sb.meta_url(), acct.account_id);
        let rows = all_pages(url.clone(), &[token.clone(), ("limit", "5".into())]).await;
        assert_eq!(&rows, items);
        let mut times: Vec<i64> = items
            .iter()
            .map(|i| {
                chrono::DateTime::parse_from_str(
                    i["updated_time"].as_str().unwrap(),
                    "%Y-%m-%dT%H:%M:%S%z",
                )
                .unwrap()
                .timestamp()
            })
            .collect();
        times.sort();
        let cut = times[times.len() / 2];
        let filter = json!([{"field": format!("{object}.updated_time"), "operator": "GREATER_THAN", "value": cut}]);
        let rows = all_pages(
            url,
            &[
                token.clone(),
                ("filtering", filter.to_string()),
                ("fields", "id,name,updated_time".into()),
            ],
        )
        .await;
        assert_eq!(
            rows.len(),
            times.iter().filter(|t| **t > cut).count(),
            "{edge}"
        );
        assert!(rows.iter().all(|r| r.as_object().unwrap().len() == 3));
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn usage_rises_with_the_rate_until_code_17() {
    // On a clock that does not move, every request falls in one rate window, however long a
    // loaded machine takes to send them.
    let sb = Sandbox::start_with_clock(SandboxConfig::default(), Arc::new(TestClock::new()))
        .await
        .unwrap();
    let acct = sb.meta();
    let url = format!("{}/v25.0/act_{}/campaigns", sb.meta_url(), acct.account_id);
    let client = reqwest::Client::new();
    let usage = |r: &reqwest::Response| -> (f64, f64) {
        let h: Value =
            serde_json::from_str(r.headers()["x-business-use-case-usage"].to_str().unwrap())
                .unwrap();
        let e = &h[acct.account_id.as_str()][0];
        (
            e["call_count"].as_f64().unwrap(),
            e["estimated_time_to_regain_access"].as_f64().unwrap(),
        )
    };
    let mut last = 0.0;
    let mut throttled = None;
    for i in 0..2000 {
        let resp = client
            .get(&url)
            .query(&[("access_token", acct.access_token.as_str()), ("limit", "1")])
            .send()
            .await
            .unwrap();
        let (pct, regain) = usage(&resp);
        if resp.status().as_u16() == 400 {
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], 17, "{body}");
            assert_eq!(body["error"]["message"], "User request limit reached");
            assert!(regain > 0.0);
            throttled = Some(i);
            break;
        }
        assert!(pct >= last, "usage rises with the rate");
        last = pct;
    }
    assert!(throttled.is_some(), "the rate limit is reached");
    assert!(last > 75.0);
    assert_eq!(acct.throttled_count(), 1);
    sb.shutdown().await;
}

/// An account's report jobs can run for another time than the default (the demo's complete in a
/// second); a job keeps the run time it started with.
#[tokio::test]
async fn a_job_runs_for_the_accounts_run_time_when_it_started() {
    let clock = TestClock::new();
    let sb = Sandbox::start_with_clock(SandboxConfig::default(), Arc::new(clock.clone()))
        .await
        .unwrap();
    let acct = sb.meta();
    assert_eq!(
        acct.job_run_time(),
        growthflow_sandbox::meta::routes::JOB_RUN_TIME
    );
    let root = format!("{}/v25.0", sb.meta_url());
    let token = ("access_token", acct.access_token.clone());
    let start = || start_job(&root, &acct.account_id, &token, "2025-05-01", "2025-05-07");
    let status = |id: String| {
        let (root, token) = (root.clone(), token.clone());
        async move {
            let (code, body) = get(&format!("{root}/{id}"), &[token]).await;
            assert_eq!(code, 200, "{body}");
            body["async_status"].as_str().unwrap().to_string()
        }
    };
    acct.set_job_run_time(Duration::from_millis(400));
    let quick = start().await;
    acct.set_job_run_time(Duration::from_secs(3));
    let slow = start().await;
    clock.sleep(Duration::from_millis(450)).await;
    assert_eq!(status(quick.clone()).await, "Job Completed");
    assert_eq!(status(slow.clone()).await, "Job Running");
    clock.sleep(Duration::from_millis(2600)).await;
    assert_eq!(status(slow).await, "Job Completed");
    sb.shutdown().await;
}
