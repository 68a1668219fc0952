//! The account's run-time behaviour: restatements, report jobs that fail, filtering and levels.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};

use std::sync::Arc;
use std::time::Duration as StdDuration;

use growthflow_core::http::{Clock, TestClock};

use super::{cents, AdAccount, INSIGHT_DAYS, JOB_ROW_LIMIT};
use crate::{Sandbox, SandboxConfig};

fn key(r: &Value) -> String {
    format!(
        "{}:{}",
        r["ad_id"].as_str().unwrap(),
        r["date_start"].as_str().unwrap()
    )
}

fn count(row: &Value, list: &str) -> i64 {
    AdAccount::action(row, list, "purchase").map_or(0, |v| cents(&v))
}

#[test]
fn restating_changes_only_recent_days_upwards_and_deterministically() {
    let end = Utc.with_ymd_and_hms(2025, 6, 30, 23, 0, 0).unwrap();
    let a = AdAccount::generate(42, 1, end);
    // The rows as numbers: a row is served as `render` makes it of its numbers, so equal numbers
    // are equal rows, and only the restated days need rendering (two years of rows take a debug
    // build about half a second to render, and as long again to copy).
    let before = a.rows().clone();
    let days: std::collections::BTreeSet<String> =
        before.iter().map(|r| a.date_of(r).to_string()).collect();
    assert_eq!(days.len() as i64, INSIGHT_DAYS);
    assert_eq!(*days.iter().next_back().unwrap(), "2025-06-30");
    assert_eq!(a.render(before.last().unwrap())["date_start"], "2025-06-30");
    a.restate_recent_days(3);
    let after = a.rows().clone();
    assert_eq!(after.len(), before.len(), "rows do not vanish");
    let recent = NaiveDate::from_ymd_opt(2025, 6, 28).unwrap();
    let (mut changed, mut more_purchases) = (0, 0);
    for (b, r) in before.iter().zip(&after) {
        assert_eq!((b.day, b.ad), (r.day, r.ad));
        if a.date_of(b) < recent {
            assert_eq!(b, r);
            continue;
        }
        let (b, r) = (a.render(b), a.render(r));
        assert_eq!(key(&b), key(&r));
        changed += 1;
        assert!(cents(r["spend"].as_str().unwrap()) > cents(b["spend"].as_str().unwrap()));
        assert_eq!(r["impressions"], b["impressions"]);
        assert!(count(&r, "action_values") >= count(&b, "action_values"));
        if count(&r, "action_values") > count(&b, "action_values") {
            more_purchases += 1;
            for t in [
                "purchase",
                "omni_purchase",
                "offsite_conversion.fb_pixel_purchase",
            ] {
                assert!(AdAccount::action(&r, "actions", t).is_some(), "{t} in {r}");
            }
        }
    }
    assert!(
        changed > 50 && more_purchases > 10,
        "{changed} {more_purchases}"
    );
    let twin = AdAccount::generate(42, 1, end);
    twin.restate_recent_days(3);
    assert_eq!(*twin.rows(), after, "deterministic");
    assert_eq!(
        twin.insights_between(recent, end.date_naive()),
        a.insights_between(recent, end.date_naive())
    );
    twin.restate_recent_days(3);
    assert_ne!(
        *twin.rows(),
        after,
        "each restatement changes the rows again"
    );
}

/// A sandbox on a test clock, and a client of its Meta account polling on that clock.
async fn start() -> (Sandbox, Client) {
    let clock = TestClock::new();
    let sb = Sandbox::start_with_clock(SandboxConfig::default(), Arc::new(clock.clone()))
        .await
        .unwrap();
    let c = Client {
        root: format!("{}/v25.0", sb.meta_url()),
        act: format!("act_{}", sb.meta().account_id),
        token: sb.meta().access_token.clone(),
        http: reqwest::Client::new(),
        clock,
    };
    (sb, c)
}

struct Client {
    root: String,
    act: String,
    token: String,
    http: reqwest::Client,
    /// The sandbox's clock: the client waits between polls on it, so jobs advance without waiting.
    clock: TestClock,
}

impl Client {
    async fn send(&self, post: bool, path: &str, query: &[(&str, String)]) -> (u16, Value) {
        let url = format!("{}/{path}", self.root);
        let req = if post {
            self.http.post(url)
        } else {
            self.http.get(url)
        };
        let mut q: Vec<(&str, String)> = vec![("access_token", self.token.clone())];
        q.extend_from_slice(query);
        let resp = req.query(&q).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Every row of an insights request, following `after` cursors.
    async fn rows(&self, path: &str, query: &[(&str, String)]) -> Vec<Value> {
        let mut q: Vec<(&str, String)> = query.to_vec();
        q.push(("limit", "5000".into()));
        let mut out = Vec::new();
        loop {
            let (status, body) = self.send(false, path, &q).await;
            assert_eq!(status, 200, "{body}");
            out.extend(body["data"].as_array().unwrap().iter().cloned());
            if body["paging"]["next"].is_null() {
                return out;
            }
            q.retain(|(k, _)| *k != "after");
            q.push((
                "after",
                body["paging"]["cursors"]["after"].as_str().unwrap().into(),
            ));
        }
    }

    /// Start a job; poll it every 100 ms of the sandbox's clock (jobs advance with time) until it
    /// ends; the statuses seen, each once, in order.
    async fn job(&self, query: &[(&str, String)]) -> (String, Vec<String>) {
        let (status, started) = self
            .send(true, &format!("{}/insights", self.act), query)
            .await;
        assert_eq!(status, 200, "{started}");
        let id = started["report_run_id"].as_str().unwrap().to_string();
        let mut seen: Vec<String> = Vec::new();
        let started = self.clock.now();
        loop {
            let (_, body) = self.send(false, &id, &[]).await;
            let s = body["async_status"].as_str().unwrap().to_string();
            if seen.last() != Some(&s) {
                seen.push(s.clone());
            }
            if s == "Job Completed" || s == "Job Failed" {
                return (id, seen);
            }
            assert!(
                self.clock.now() - started < StdDuration::from_secs(30),
                "{seen:?}"
            );
            self.clock.sleep(StdDuration::from_millis(100)).await;
        }
    }
}

fn range(since: NaiveDate, until: NaiveDate) -> (&'static str, String) {
    (
        "time_range",
        json!({"since": since.to_string(), "until": until.to_string()}).to_string(),
    )
}

#[tokio::test]
async fn big_jobs_and_account_jobs_over_a_failing_day_fail() {
    let (sb, c) = start().await;
    let acct = sb.meta();
    let last = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
    let first = last - Duration::days(INSIGHT_DAYS - 1);
    assert!(acct.insight_count() > JOB_ROW_LIMIT);
    let level = ("level", "ad".to_string());
    let (id, seen) = c.job(&[level.clone(), range(first, last)]).await;
    assert_eq!(seen.last().unwrap(), "Job Failed", "{seen:?}");
    assert!(!seen.contains(&"Job Completed".to_string()));
    assert_eq!((acct.jobs_started(), acct.jobs_failed()), (1, 1));
    let (status, body) = c.send(false, &format!("{id}/insights"), &[]).await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!(100)));
    // Polling the failed job again does not count it twice.
    c.send(false, &id, &[]).await;
    assert_eq!(acct.jobs_failed(), 1);

    // Half of it fits.
    let (_, seen) = c
        .job(&[level.clone(), range(first, first + Duration::days(364))])
        .await;
    assert_eq!(seen.last().unwrap(), "Job Completed");

    // A failing day: account-wide jobs over it fail, a campaign's job completes with its rows only.
    let day = last - Duration::days(10);
    acct.fail_account_jobs_on(day);
    let (_, seen) = c
        .job(&[level.clone(), range(day - Duration::days(2), day)])
        .await;
    assert_eq!(seen.last().unwrap(), "Job Failed");
    let campaign = acct.campaigns[1]["id"].as_str().unwrap().to_string();
    let filter = json!([{"field": "campaign.id", "operator": "IN", "value": [campaign]}]);
    let (id, seen) = c
        .job(&[
            level.clone(),
            range(day, day),
            ("filtering", filter.to_string()),
        ])
        .await;
    assert_eq!(seen.last().unwrap(), "Job Completed");
    let rows = c.rows(&format!("{id}/insights"), &[]).await;
    let expected: Vec<Value> = acct
        .insights_between(day, day)
        .into_iter()
        .filter(|r| r["date_start"] == day.to_string() && r["campaign_id"] == campaign)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(rows, expected);
    assert_eq!((acct.jobs_started(), acct.jobs_failed()), (4, 2));

    // A lower limit makes small jobs fail too.
    acct.set_job_row_limit(10);
    let (_, seen) = c
        .job(&[level, range(first, first + Duration::days(1))])
        .await;
    assert_eq!(seen.last().unwrap(), "Job Failed");
    sb.shutdown().await;
}

#[tokio::test]
async fn insights_filter_on_campaign_and_adset_and_sum_by_level() {
    let (sb, c) = start().await;
    let acct = sb.meta();
    let path = format!("{}/insights", c.act);
    let day = NaiveDate::from_ymd_opt(2025, 5, 5).unwrap();
    let all: Vec<Value> = acct
        .insights_between(day, day)
        .into_iter()
        .filter(|r| r["date_start"] == day.to_string())
        .collect();
    let campaign = all[0]["campaign_id"].as_str().unwrap().to_string();
    let adset = all[0]["adset_id"].as_str().unwrap().to_string();

    let q = |extra: Vec<(&'static str, String)>| {
        let mut q = vec![range(day, day)];
        q.extend(extra);
        q
    };
    let filtering = |f: Value| ("filtering", f.to_string());
    let rows = c
        .rows(
            &path,
            &q(vec![filtering(
                json!([{"field": "campaign.id", "operator": "IN", "value": [campaign]}]),
            )]),
        )
        .await;
    let want: Vec<&Value> = all
        .iter()
        .filter(|r| r["campaign_id"] == campaign)
        .collect();
    assert_eq!(rows.iter().collect::<Vec<_>>(), want);
    let rows = c
        .rows(
            &path,
            &q(vec![filtering(
                json!([{"field": "adset.id", "operator": "EQUAL", "value": adset}]),
            )]),
        )
        .await;
    let want: Vec<&Value> = all.iter().filter(|r| r["adset_id"] == adset).collect();
    assert_eq!(rows.iter().collect::<Vec<_>>(), want);

    // level=campaign: one row per delivering campaign, sums of its ads.
    let rows = c
        .rows(
            &path,
            &q(vec![
                ("level", "campaign".into()),
                ("fields", "campaign_id,spend,impressions".into()),
            ]),
        )
        .await;
    let mut sums: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in &all {
        let e = sums
            .entry(r["campaign_id"].as_str().unwrap().into())
            .or_default();
        e.0 += cents(r["spend"].as_str().unwrap());
        e.1 += r["impressions"].as_str().unwrap().parse::<i64>().unwrap();
    }
    let got: BTreeMap<String, (i64, i64)> = rows
        .iter()
        .map(|r| {
            assert!(r.get("ad_id").is_none(), "{r}");
            (
                r["campaign_id"].as_str().unwrap().into(),
                (
                    cents(r["spend"].as_str().unwrap()),
                    r["impressions"].as_str().unwrap().parse().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, sums);
    // level=adset within a campaign.
    let rows = c
        .rows(
            &path,
            &q(vec![
                ("level", "adset".into()),
                ("fields", "adset_id".into()),
                filtering(json!([{"field": "campaign.id", "operator": "IN", "value": [campaign]}])),
            ]),
        )
        .await;
    let mut want: Vec<&str> = all
        .iter()
        .filter(|r| r["campaign_id"] == campaign)
        .map(|r| r["adset_id"].as_str().unwrap())
        .collect();
    want.dedup();
    let got: Vec<&str> = rows
        .iter()
        .map(|r| r["adset_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, want);

    // Anything else is a Graph-shaped 400.
    for extra in [
        vec![("level", "account".to_string())],
        vec![filtering(
            json!([{"field": "ad.name", "operator": "IN", "value": ["x"]}]),
        )],
        vec![filtering(
            json!([{"field": "campaign.id", "operator": "CONTAIN", "value": "1"}]),
        )],
        vec![("filtering", "nope".to_string())],
    ] {
        let (status, body) = c.send(false, &path, &q(extra.clone())).await;
        assert_eq!(status, 400, "{extra:?}: {body}");
        assert_eq!(body["error"]["code"], 100, "{body}");
        assert!(body["error"]["fbtrace_id"].is_string());
        let (status, _) = c.send(true, &path, &q(extra)).await;
        assert_eq!(status, 400);
    }
    assert_eq!(acct.jobs_started(), 0, "refused jobs are not started");
    sb.shutdown().await;
}
