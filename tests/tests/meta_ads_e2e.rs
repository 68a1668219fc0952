//! End to end: `growthflow sync`, `backfill` and `report` against the sandbox's simulated Meta ad
//! account (beside its WooCommerce store, so campaigns join spend with revenue), checked against values
//! computed independently from the generated data.
//!
//! The connector reads "up to today" on the real clock and re-reads the 28 days before its saved
//! cursor (about yesterday), so the sandbox's account ends now: its recent days are the real recent
//! days, and every date below is counted back from that end.

use growthflow_tests::{
    cents, cli, cli_on, db, dec, on_both_stores, raw_payloads, snapshot, Store,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Duration, NaiveDate, Utc};
use growthflow_core::http::TestClock;
use growthflow_meta_ads::streams::INSIGHTS_JOB_DAYS;
use growthflow_sandbox::meta::INSIGHT_DAYS;
use growthflow_sandbox::{AdAccount, Sandbox, SandboxConfig};
use rust_decimal::Decimal;
use serde_json::Value;

/// The account and the commands run on one [`TestClock`]: report jobs run for the time the connector
/// waits between polls, and a throttle is waited out, without waiting.
struct Env {
    sandbox: Sandbox,
    clock: TestClock,
    dir: tempfile::TempDir,
    dataset: Store,
}

impl Env {
    async fn start() -> Env {
        Env::on(Store::sqlite()).await
    }

    async fn on(dataset: Store) -> Env {
        let config = SandboxConfig {
            end: Utc::now(),
            ..Default::default()
        };
        let clock = TestClock::yielding();
        Env {
            sandbox: Sandbox::start_with_clock(config, Arc::new(clock.clone()))
                .await
                .unwrap(),
            clock,
            dir: tempfile::tempdir().unwrap(),
            dataset,
        }
    }

    /// Run a command on the account's clock.
    async fn cli(&self, config: &Path, args: &[&str]) -> (i32, String) {
        cli_on(&self.clock, config, args).await
    }

    fn account(&self) -> &AdAccount {
        self.sandbox.meta()
    }

    /// The account's last day of insights: today.
    fn end(&self) -> NaiveDate {
        self.account().last_day()
    }

    /// A config with the sandbox's Meta ad account (and its WooCommerce store when `woo`) starting at
    /// `start`, in `sub/`.
    fn config(&self, sub: &str, start: NaiveDate, woo: bool) -> PathBuf {
        let dir = self.dir.path().join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let store = self.sandbox.woocommerce();
        let woo = if woo {
            format!(
                r#"
[sources.woo]
type = "woocommerce"
url = "{}"
consumer_key = "{}"
consumer_secret = "{}"
"#,
                self.sandbox.woocommerce_url(),
                store.consumer_key,
                store.consumer_secret
            )
        } else {
            String::new()
        };
        let text = format!(
            r#"
[destination]
{destination}

[sync]
start_date = "{start}"
{woo}
[sources.ads]
type = "meta_ads"
ad_account_id = "{id}"
access_token = "{token}"
base_url = "{meta_url}"
"#,
            destination = self.dataset.destination_toml(&dir),
            id = self.account().account_id,
            token = self.account().access_token,
            meta_url = self.sandbox.meta_url(),
        );
        let path = dir.join("growthflow.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn close(got: &Value, want: Decimal, what: &str) {
    let got = dec(got);
    let diff = (got - want).abs();
    assert!(
        diff <= Decimal::new(1, 4),
        "{what}: report {got}, expected {want}"
    );
}

fn date(row: &Value) -> &str {
    row["date_start"].as_str().unwrap()
}

fn key(row: &Value) -> String {
    format!("{}:{}", row["ad_id"].as_str().unwrap(), date(row))
}

/// The `ads` source of a `--json` summary, checked `ok`.
fn ads_ok(out: &str) -> Value {
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let source = summary["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "ads")
        .expect("the meta_ads source is in the summary")
        .clone();
    assert_eq!(source["type"], "meta_ads");
    assert_eq!(source["status"], "ok", "{source}");
    source
}

/// The saved state of `ads`/`stream`.
fn state(config: &std::path::Path, stream: &str) -> Option<String> {
    state_in(&db(config), stream)
}

/// [`state`] in a dataset already open (a PostgreSQL one is copied whole by each [`db`]).
fn state_in(conn: &rusqlite::Connection, stream: &str) -> Option<String> {
    conn.query_row(
        "SELECT state FROM sync_state WHERE source='ads' AND stream=?1",
        [stream],
        |r| r.get(0),
    )
    .ok()
}

/// `report` over `[since, until]` against the sums of `rows` (the account's insights as they are now).
async fn check_report(config: &std::path::Path, rows: &[Value], since: &str, until: &str) {
    let (code, out) = cli(
        config,
        &[
            "report", "--since", since, "--until", until, "--format", "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    let (mut impressions, mut clicks, mut spend, mut purchases) =
        (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    let mut per_campaign: BTreeMap<String, (Decimal, Decimal, Decimal)> = BTreeMap::new();
    for row in rows.iter().filter(|r| (since..=until).contains(&date(r))) {
        let (i, c, s) = (
            dec(&row["impressions"]),
            dec(&row["clicks"]),
            dec(&row["spend"]),
        );
        impressions += i;
        clicks += c;
        spend += s;
        if let Some(p) = AdAccount::action(row, "actions", "purchase") {
            purchases += dec(&Value::String(p));
        }
        let e = per_campaign
            .entry(row["campaign_name"].as_str().unwrap().to_lowercase())
            .or_default();
        e.0 += s;
        e.1 += i;
        e.2 += c;
    }
    assert!(impressions > Decimal::ZERO && purchases > Decimal::ZERO);
    let a = &r["awareness"];
    assert_eq!(dec(&a["impressions"]), impressions);
    assert_eq!(dec(&a["clicks"]), clicks);
    assert_eq!(cents(dec(&a["spend"])), cents(spend));
    close(&a["ctr"], clicks / impressions, "ctr");
    assert_eq!(
        cents(dec(&a["cpm"])),
        cents(spend / impressions * Decimal::from(1000)),
        "cpm"
    );
    assert_eq!(
        dec(&r["feedback"]["reported_purchases"]["meta_ads"]),
        purchases,
        "the purchase action only, not omni_purchase or the pixel alias"
    );

    let campaigns: HashMap<String, &Value> = r["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["campaign"].as_str().unwrap().trim().to_lowercase(), c))
        .collect();
    let mut joined = 0;
    for (name, (s, i, c)) in &per_campaign {
        let row = campaigns
            .get(name)
            .unwrap_or_else(|| panic!("campaign {name} in the report: {}", r["campaigns"]));
        assert_eq!(row["channel"], "paid_social", "{row}");
        assert_eq!(cents(dec(&row["spend"])), cents(*s), "{name} spend");
        assert_eq!(dec(&row["impressions"]), *i, "{name} impressions");
        assert_eq!(dec(&row["clicks"]), *c, "{name} clicks");
        let revenue = dec(&row["revenue"]);
        if revenue > Decimal::ZERO {
            joined += 1;
            let roas = dec(&row["roas"]);
            assert!(
                (roas - revenue / *s).abs() <= Decimal::new(5, 3),
                "{name} roas: report {roas}, expected {}",
                revenue / *s
            );
        }
    }
    assert!(joined >= 2, "spend joins store revenue: {}", r["campaigns"]);
}

async fn sync_restatement_and_report_give_the_generated_meta_values(store: Store) {
    let env = Env::on(store).await;
    let account = env.account();
    let end = env.end();
    let start = end - Duration::days(200);
    let config = env.config("a", start, true);
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    ads_ok(&out);
    assert_eq!(account.throttled_count(), 0, "no code 17 during the sync");
    assert_eq!(
        account.jobs_started(),
        3,
        "201 days go through three async jobs of 67 days (at most 90 each), none failing"
    );
    assert_eq!(account.jobs_failed(), 0);

    // Only the days from start_date on, each row as generated.
    let from = start.to_string();
    let generated: HashMap<String, Value> = account
        .insights_between(start, end)
        .into_iter()
        .filter(|r| date(r) >= from.as_str())
        .map(|r| (key(&r), r))
        .collect();
    assert!(generated.len() < account.insight_count());
    let synced = generated.len();
    let conn = db(&config);
    assert_eq!(raw_payloads(&conn, "ads", "ad_insights"), generated);
    for (stream, n) in [
        ("campaigns", account.campaigns.len()),
        ("adsets", account.adsets.len()),
        ("ads", account.ads.len()),
    ] {
        assert_eq!(raw_payloads(&conn, "ads", stream).len(), n, "{stream}");
    }
    let yesterday = (end - Duration::days(1)).to_string();
    assert_eq!(
        state_in(&conn, "ad_insights"),
        Some(format!(r#"{{"cursor":"{yesterday}"}}"#)),
        "the last complete day"
    );
    let report_days = (end - Duration::days(89), end);
    let (since, until) = (report_days.0.to_string(), report_days.1.to_string());
    check_report(
        &config,
        &account.insights_between(report_days.0, report_days.1),
        &since,
        &until,
    )
    .await;

    // Meta restates the last three days; the next sync re-reads them within the lookback.
    let recent = (end - Duration::days(2)).to_string();
    let old: HashMap<String, Value> = generated
        .into_iter()
        .filter(|(_, r)| date(r) >= recent.as_str())
        .collect();
    account.restate_recent_days(3);
    let restated: HashMap<String, Value> = account
        .insights_between(end - Duration::days(2), end)
        .into_iter()
        .filter(|r| date(r) >= recent.as_str())
        .map(|r| (key(&r), r))
        .collect();
    assert_eq!(restated.len(), old.len());
    assert!(restated.iter().all(|(k, r)| old[k]["spend"] != r["spend"]));
    let jobs = account.jobs_started();
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    ads_ok(&out);
    assert_eq!(
        account.jobs_started(),
        jobs,
        "30 days are one synchronous read"
    );
    let raw = raw_payloads(&db(&config), "ads", "ad_insights");
    let raw_recent: HashMap<String, Value> = raw
        .iter()
        .filter(|(_, r)| date(r) >= recent.as_str())
        .map(|(k, r)| (k.clone(), r.clone()))
        .collect();
    assert_eq!(
        raw_recent, restated,
        "the restated rows replaced theirs, once each"
    );
    assert_eq!(raw.len(), synced, "restated rows are replaced, not added");
    check_report(
        &config,
        &account.insights_between(report_days.0, report_days.1),
        &since,
        &until,
    )
    .await;

    let before = snapshot(&db(&config));
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        snapshot(&db(&config)),
        before,
        "a third sync changes nothing"
    );
    assert_eq!(account.throttled_count(), 0, "no code 17 in any sync");
}

async fn a_two_year_backfill_splits_its_job_and_brings_every_day_once(store: Store) {
    let env = Env::on(store).await;
    let account = env.account();
    let end = env.end();
    let config = env.config("b", end - Duration::days(20), false);
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    ads_ok(&out);
    let saved = state(&config, "ad_insights");
    assert!(saved.is_some());
    assert_eq!(account.jobs_started(), 0, "21 days are read synchronously");

    // The backfill is planned as jobs of at most 90 days (nine of 81–82 days), each far below the
    // sandbox's default limit. A limit of about 60 days of rows makes every one of them fail, as
    // Meta fails jobs too big for an account, while their halves (40–41 days) complete.
    let rows_per_day = account.insight_count() / INSIGHT_DAYS as usize;
    account.set_job_row_limit(rows_per_day * 60);
    let planned = (INSIGHT_DAYS + INSIGHTS_JOB_DAYS - 1) / INSIGHTS_JOB_DAYS;
    assert_eq!(planned, 9);
    let since = (end - Duration::days(INSIGHT_DAYS - 1)).to_string();
    let (code, out) = env
        .cli(
            &config,
            &[
                "backfill",
                "--since",
                &since,
                "--until",
                &end.to_string(),
                "ads",
                "--json",
            ],
        )
        .await;
    assert_eq!(code, 0, "{out}");
    let source = ads_ok(&out);
    let insights = source["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == "ad_insights")
        .unwrap();
    assert_eq!(insights["status"], "ok", "{insights}");
    assert_eq!(
        account.jobs_failed() as i64,
        planned,
        "every planned job is over the row limit"
    );
    assert_eq!(
        account.jobs_started() as i64,
        3 * planned,
        "each failed job was split in two halves, which completed"
    );

    let generated: HashMap<String, Value> = account
        .insights()
        .into_iter()
        .map(|r| (key(&r), r))
        .collect();
    let days: std::collections::BTreeSet<&str> = generated.values().map(date).collect();
    assert_eq!(days.len() as i64, INSIGHT_DAYS);
    let conn = db(&config);
    assert_eq!(
        raw_payloads(&conn, "ads", "ad_insights"),
        generated,
        "every row of the 730 days, as generated"
    );
    let stored: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM raw_records WHERE source='ads' AND stream='ad_insights'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored as usize, generated.len(), "each row once");
    assert_eq!(
        state_in(&conn, "ad_insights"),
        saved,
        "a backfill leaves the saved cursor alone"
    );
}

/// The level split against the sandbox, through the connector as the CLI builds it from the config
/// file, on the sandbox's clock: the dozen jobs run for the time their polls wait on it.
#[tokio::test]
async fn a_day_failing_at_account_scope_comes_through_the_campaign_split() {
    use futures::StreamExt;
    use growthflow_core::connector::{ReadRequest, Window};
    use growthflow_core::http::ClientOptions;

    let env = Env::start().await;
    let account = env.account();
    let end = env.end();
    let config = env.config("c", end - Duration::days(40), false);
    let cfg = growthflow_cli::config::load(&config).unwrap();
    let clock = env.clock.clone();
    let meta = growthflow_cli::registry::build(
        cfg.source("ads").unwrap(),
        &ClientOptions::with_clock(Arc::new(clock.clone())),
        &growthflow_cli::tokens::TokenStore::beside(&config.with_file_name("gf.db")),
    )
    .unwrap();

    // 31 days, the last of them failing for the whole account.
    let (since, until) = (end - Duration::days(40), end - Duration::days(10));
    account.fail_account_jobs_on(until);
    let at = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let mut pages = meta.read(ReadRequest {
        stream: "ad_insights".into(),
        state: None,
        start: at(since),
        window: Some(Window {
            since: at(since),
            until: at(until + Duration::days(1)),
        }),
    });
    let mut got: Vec<(String, Value)> = Vec::new();
    while let Some(page) = pages.next().await {
        got.extend(
            page.unwrap()
                .records
                .into_iter()
                .map(|r| (r.id, r.payload.to_value())),
        );
    }
    let expected: HashMap<String, Value> = account
        .insights_between(since, until)
        .into_iter()
        .filter(|r| (since.to_string().as_str()..=until.to_string().as_str()).contains(&date(r)))
        .map(|r| (key(&r), r))
        .collect();
    assert_eq!(got.len(), expected.len(), "each row once");
    assert_eq!(got.into_iter().collect::<HashMap<_, _>>(), expected);
    let campaigns_that_day = expected
        .values()
        .filter(|r| date(r) == until.to_string())
        .map(|r| r["campaign_id"].as_str().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    // 31 days are planned as one job (over 30 days, under 90), so the counts are those of one job
    // split alone; running the parts side by side changes when they run, not which: the window
    // halved down to the day — 31, 16, 8, 4, 2 and 1 days failing, their five other halves
    // completing — then one job per campaign that delivered that day, and nothing else again.
    assert_eq!(account.jobs_failed(), 6);
    assert_eq!(account.jobs_started(), 6 + 5 + campaigns_that_day);
    assert!(
        clock.elapsed() > std::time::Duration::ZERO,
        "polls waited on the test clock"
    );
}

async fn a_sync_killed_mid_insights_and_run_again_ends_with_the_uninterrupted_dataset(
    store: Store,
) {
    let env = Env::on(store).await;
    let start = env.end() - Duration::days(200);
    let reference = env.config("reference", start, false);
    let (code, out) = env.cli(&reference, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let expected = snapshot(&db(&reference));

    // Kill the sync once its first insights page is committed: three jobs are planned, so most of
    // the 201 days are still to come.
    let killed = env.config("killed", start, false);
    let run = tokio::spawn({
        let killed = killed.clone();
        let clock = env.clock.clone();
        async move { cli_on(&clock, &killed, &["sync", "--stream", "ad_insights"]).await }
    });
    let committed = |path: &std::path::Path| -> i64 {
        let conn = db(path);
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn.query_row(
            "SELECT COUNT(*) FROM raw_records WHERE stream = 'ad_insights'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while committed(&killed) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no insights page committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    run.abort();
    let _ = run.await;
    let partial = committed(&killed);
    let total = expected["raw_records"]
        .iter()
        .filter(|r| r.contains("ad_insights"))
        .count() as i64;
    assert!(
        partial < total,
        "the kill happened mid-stream ({partial} of {total})"
    );
    // State never claims a day whose rows are not all committed.
    let conn = db(&killed);
    if let Some(state) = state_in(&conn, "ad_insights") {
        let cursor: Value = serde_json::from_str(&state).unwrap();
        let cursor = cursor["cursor"].as_str().unwrap().to_string();
        let stored: std::collections::BTreeSet<String> = raw_payloads(&conn, "ads", "ad_insights")
            .keys()
            .cloned()
            .collect();
        let claimed = NaiveDate::parse_from_str(&cursor, "%Y-%m-%d").unwrap();
        for row in env.account().insights_between(start, claimed) {
            if (start.to_string().as_str()..=cursor.as_str()).contains(&date(&row)) {
                assert!(
                    stored.contains(&key(&row)),
                    "{} claimed but missing",
                    key(&row)
                );
            }
        }
    }
    drop(conn);

    let (code, out) = env.cli(&killed, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(snapshot(&db(&killed)), expected);
}

/// Issue 13: a sync with nothing new makes one request per object stream, and for insights only the
/// pages of the lookback days it re-reads (one synchronous range from the saved day less 28 days to
/// today): no job, no other request.
#[tokio::test]
async fn a_no_change_sync_makes_one_request_per_stream_plus_the_insights_lookback() {
    let env = Env::start().await;
    let account = env.account();
    let end = env.end();
    let config = env.config("a", end - Duration::days(120), false);
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    ads_ok(&out);
    let jobs = account.jobs_started();
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let source = ads_ok(&out);
    let requests: HashMap<String, u64> = source["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stream"].as_str().unwrap().to_string(),
                s["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    // The saved cursor is yesterday: the re-read runs from 28 days before it through today.
    let from = (end - Duration::days(29)).to_string();
    let rows = account
        .insights_between(end - Duration::days(29), end)
        .iter()
        .filter(|r| date(r) >= from.as_str())
        .count() as u64;
    let pages = rows
        .div_ceil(u64::from(growthflow_meta_ads::streams::INSIGHTS_PAGE_SIZE))
        .max(1);
    let want: HashMap<String, u64> = [
        ("ad_insights", pages),
        ("campaigns", 1),
        ("adsets", 1),
        ("ads", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(requests, want);
    assert_eq!(account.jobs_started(), jobs, "no job for the lookback");
    assert_eq!(account.throttled_count(), 0);
}

on_both_stores!(
    sync_restatement_and_report_give_the_generated_meta_values,
    a_two_year_backfill_splits_its_job_and_brings_every_day_once,
    a_sync_killed_mid_insights_and_run_again_ends_with_the_uninterrupted_dataset,
);
