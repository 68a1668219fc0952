//! End to end: `growthflow sync` and `report` against the sandbox's simulated GA4 property, authenticated
//! with a service-account key file, checked against values computed independently from the generated rows
//! — and again after the property restated its recent days.

use growthflow_tests::{cli, db, dec, on_both_stores, raw_payloads, snapshot, Store};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate, Utc};
use growthflow_sandbox::ga4::Row;
use growthflow_sandbox::{Sandbox, SandboxConfig};
use rust_decimal::Decimal;
use serde_json::Value;

fn close(got: &Value, want: Decimal, what: &str) {
    let got = dec(got);
    assert!(
        (got - want).abs() <= Decimal::new(1, 4),
        "{what}: report {got}, expected {want}"
    );
}

async fn sync_and_report_give_the_generated_ga4_values(store: Store) {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let property = sandbox.ga4();
    let config = ga4_config_on(&store, &sandbox, dir.path(), "2024-12-15");

    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let source = &summary["sources"][0];
    assert_eq!(source["source"], "web");
    assert_eq!(source["type"], "ga4");
    assert_eq!(source["status"], "ok", "{source}");
    assert!(property.tokens_issued() >= 1);

    let conn = db(&config);
    let raw: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM raw_records WHERE source='web' AND stream='traffic_daily'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(raw, property.rows().len() as i64, "one raw record per row");

    let (since, until) = ("2025-03-01", "2025-06-15");
    let (code, out) = cli(
        &config,
        &[
            "report", "--since", since, "--until", until, "--format", "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();

    let (s, u) = (since.parse().unwrap(), until.parse().unwrap());
    let all_rows = property.rows();
    let rows: Vec<_> = all_rows
        .iter()
        .filter(|row| row.date >= s && row.date <= u)
        .collect();
    let sum = |f: fn(&growthflow_sandbox::ga4::Row) -> i64| -> Decimal {
        rows.iter().map(|row| Decimal::from(f(row))).sum()
    };
    let sessions = sum(|r| r.sessions);
    let engaged = sum(|r| r.engaged_sessions);
    assert!(sessions > Decimal::ZERO);
    assert_eq!(dec(&r["awareness"]["sessions"]), sessions);
    assert_eq!(dec(&r["awareness"]["new_users"]), sum(|r| r.new_users));
    let c = &r["consideration"];
    assert_eq!(dec(&c["engaged_sessions"]), engaged);
    close(&c["engagement_rate"], engaged / sessions, "engagement_rate");
    assert_eq!(dec(&c["add_to_carts"]), sum(|r| r.add_to_carts));
    assert_eq!(dec(&c["checkouts_started"]), sum(|r| r.checkouts));
    assert_eq!(
        dec(&r["feedback"]["reported_purchases"]["ga4"]),
        sum(|r| r.ecommerce_purchases)
    );

    let mut per_campaign: BTreeMap<String, Decimal> = BTreeMap::new();
    for row in &rows {
        if !["(direct)", "(organic)", "(referral)", "(not set)"].contains(&row.campaign.as_str()) {
            *per_campaign.entry(row.campaign.clone()).or_default() += Decimal::from(row.sessions);
        }
    }
    let campaigns = r["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), per_campaign.len(), "{campaigns:?}");
    for (name, want) in &per_campaign {
        let row = campaigns
            .iter()
            .find(|c| c["campaign"] == name.as_str())
            .unwrap_or_else(|| panic!("campaign {name} in {campaigns:?}"));
        assert_eq!(dec(&row["sessions"]), *want, "{name} sessions");
    }

    let before = snapshot(&conn);
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        snapshot(&db(&config)),
        before,
        "a second sync changes nothing"
    );
    sandbox.shutdown().await;
}

/// A service-account key and a config for the sandbox's property starting at `start_date`.
fn ga4_config(sandbox: &Sandbox, dir: &Path, start_date: &str) -> PathBuf {
    ga4_config_on(&Store::sqlite(), sandbox, dir, start_date)
}

/// [`ga4_config`] writing to `store`.
fn ga4_config_on(store: &Store, sandbox: &Sandbox, dir: &Path, start_date: &str) -> PathBuf {
    let property = sandbox.ga4();
    let key = dir.join("service-account.json");
    std::fs::write(
        &key,
        property.service_account_json(&format!("{}/token", sandbox.ga4_url())),
    )
    .unwrap();
    let config = dir.join("growthflow.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[destination]
{destination}

[sync]
start_date = "{start_date}"

[sources.web]
type = "ga4"
property_id = "{id}"
credentials_file = "{key}"
base_url = "{url}"
"#,
            destination = store.destination_toml(dir),
            id = property.property_id,
            key = key.display(),
            url = sandbox.ga4_url(),
        ),
    )
    .unwrap();
    config
}

/// The record id the connector gives a row.
fn record_id(property: &str, row: &Row) -> String {
    format!(
        "{property}:{}:{}\u{1f}{}\u{1f}{}\u{1f}{}",
        row.date.format("%Y-%m-%d"),
        row.source,
        row.medium,
        row.campaign,
        row.channel_group
    )
}

/// `traffic_daily`'s metrics, in order.
const METRICS: [&str; 7] = [
    "sessions",
    "newUsers",
    "engagedSessions",
    "addToCarts",
    "checkouts",
    "ecommercePurchases",
    "purchaseRevenue",
];

/// A row's metrics as exact decimals, in `traffic_daily`'s metric order.
fn metrics(row: &Row) -> Vec<rust_decimal::Decimal> {
    METRICS
        .iter()
        .map(|m| row.metric(m).unwrap().parse().unwrap())
        .collect()
}

async fn restated_days_replace_their_rows_in_the_dataset_and_the_report(store: Store) {
    // The connector reads up to today by the real clock and re-reads from its saved cursor (≈ today),
    // so the property's recent days must be the real recent days.
    let sandbox = Sandbox::start(SandboxConfig {
        end: Utc::now(),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let property = sandbox.ga4();
    let end = property.end_date;
    let start = end - Duration::days(9);
    let config = ga4_config_on(
        &store,
        &sandbox,
        dir.path(),
        &start.format("%Y-%m-%d").to_string(),
    );

    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let before = raw_payloads(&db(&config), "web", "traffic_daily");
    let synced: Vec<Row> = property
        .rows()
        .into_iter()
        .filter(|r| r.date >= start)
        .collect();
    assert_eq!(before.len(), synced.len());

    // GA4 restates the last two days: late hits raise their metrics and one row vanishes.
    let vanished = property.restate_recent_days(2).expect("a row vanished");
    let vanished_id = record_id(&property.property_id, &vanished);
    assert!(
        before.contains_key(&vanished_id),
        "the vanished row was synced first"
    );
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["sources"][0]["status"], "ok", "{summary}");

    let after = raw_payloads(&db(&config), "web", "traffic_daily");
    let now_rows: Vec<Row> = property
        .rows()
        .into_iter()
        .filter(|r| r.date >= start)
        .collect();
    assert_eq!(
        after.len(),
        now_rows.len(),
        "nothing doubled, the vanished row gone"
    );
    assert!(!after.contains_key(&vanished_id));
    let restated: Vec<NaiveDate> = vec![end - Duration::days(1), end];
    let want: BTreeMap<String, Vec<rust_decimal::Decimal>> = now_rows
        .iter()
        .filter(|r| restated.contains(&r.date))
        .map(|r| (record_id(&property.property_id, r), metrics(r)))
        .collect();
    let got: BTreeMap<String, Vec<rust_decimal::Decimal>> = after
        .iter()
        .filter(|(_, p)| {
            restated.contains(&p["date"].as_str().unwrap().parse::<NaiveDate>().unwrap())
        })
        .map(|(id, p)| {
            let m = &p["metrics"];
            let values = METRICS.iter().map(|k| dec(&m[k])).collect();
            (id.clone(), values)
        })
        .collect();
    assert_eq!(
        got, want,
        "the restated days hold exactly the property's rows now"
    );
    assert_ne!(
        got.values().map(|v| v[0]).sum::<rust_decimal::Decimal>(),
        synced
            .iter()
            .filter(|r| restated.contains(&r.date))
            .map(|r| rust_decimal::Decimal::from(r.sessions))
            .sum::<rust_decimal::Decimal>(),
        "the restatement changed the numbers"
    );

    let since = end - Duration::days(6);
    let (code, out) = cli(
        &config,
        &[
            "report",
            "--since",
            &since.format("%Y-%m-%d").to_string(),
            "--until",
            &end.format("%Y-%m-%d").to_string(),
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    let in_window: Vec<&Row> = now_rows.iter().filter(|row| row.date >= since).collect();
    let sum = |f: fn(&Row) -> i64| -> rust_decimal::Decimal {
        in_window
            .iter()
            .map(|row| rust_decimal::Decimal::from(f(row)))
            .sum()
    };
    assert_eq!(dec(&r["awareness"]["sessions"]), sum(|r| r.sessions));
    assert_eq!(dec(&r["awareness"]["new_users"]), sum(|r| r.new_users));
    assert_eq!(
        dec(&r["consideration"]["engaged_sessions"]),
        sum(|r| r.engaged_sessions)
    );
    assert_eq!(
        dec(&r["feedback"]["reported_purchases"]["ga4"]),
        sum(|r| r.ecommerce_purchases)
    );
    sandbox.shutdown().await;
}

/// A config for the sandbox's property authenticated with a user's OAuth grant (`refresh_token`), its
/// token endpoint given by `token_url`.
fn oauth_config(sandbox: &Sandbox, dir: &Path, start_date: &str, refresh_token: &str) -> PathBuf {
    let property = sandbox.ga4();
    let (client_id, client_secret, _) = property.oauth_client();
    let config = dir.join("growthflow.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[destination]
url = "sqlite://{db}"

[sync]
start_date = "{start_date}"

[sources.web]
type = "ga4"
property_id = "{id}"
client_id = "{client_id}"
client_secret = "{client_secret}"
refresh_token = "{refresh_token}"
token_url = "{url}/token"
base_url = "{url}"
"#,
            db = dir.join("gf.db").display(),
            id = property.property_id,
            url = sandbox.ga4_url(),
        ),
    )
    .unwrap();
    config
}

#[tokio::test]
async fn a_users_oauth_grant_syncs_the_same_rows_and_a_revoked_one_says_why() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let property = sandbox.ga4();
    let (_, client_secret, refresh_token) = property.oauth_client();

    let dir = tempfile::tempdir().unwrap();
    let config = oauth_config(&sandbox, dir.path(), "2025-05-01", &refresh_token);
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        property.tokens_issued() >= 1,
        "the refresh token was exchanged"
    );
    let from: NaiveDate = "2025-05-01".parse().unwrap();
    let want: BTreeMap<String, Vec<Decimal>> = property
        .rows()
        .iter()
        .filter(|r| r.date >= from)
        .map(|r| (record_id(&property.property_id, r), metrics(r)))
        .collect();
    let got: BTreeMap<String, Vec<Decimal>> = raw_payloads(&db(&config), "web", "traffic_daily")
        .into_iter()
        .map(|(id, p)| {
            let values = METRICS.iter().map(|k| dec(&p["metrics"][k])).collect();
            (id, values)
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want, "every row since start_date, as generated");

    // Refresh tokens of apps in "Testing" expire after 7 days: Google answers invalid_grant.
    let revoked = tempfile::tempdir().unwrap();
    let config = oauth_config(&sandbox, revoked.path(), "2025-05-01", "1//0expired");
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 1, "{out}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let source = &summary["sources"][0];
    assert_eq!(source["status"], "failed", "{source}");
    let error = source.to_string();
    assert!(error.contains("7 days"), "{error}");
    assert!(error.contains("sources.web.refresh_token"), "{error}");
    for secret in [
        client_secret.as_str(),
        refresh_token.as_str(),
        "1//0expired",
    ] {
        assert!(!out.contains(secret), "a secret in the output: {out}");
    }
    let rows: i64 = db(&config)
        .query_row("SELECT COUNT(*) FROM raw_records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0, "a failed authentication writes nothing");
}

#[tokio::test]
async fn a_backfill_stopped_by_the_daily_quota_says_where_to_continue() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let property = sandbox.ga4();
    let dir = tempfile::tempdir().unwrap();
    let config = ga4_config(&sandbox, dir.path(), "2025-06-01");
    // Days cost a token each: one day first, then five to a batch; the budget lets 16 days through.
    property.set_daily_tokens(property.tokens_used() + 12);
    let backfill = |since: &'static str| {
        let config = config.clone();
        async move {
            cli(
                &config,
                &[
                    "backfill",
                    "--since",
                    since,
                    "--until",
                    "2025-05-31",
                    "web",
                    "--json",
                ],
            )
            .await
        }
    };
    let (code, out) = backfill("2025-05-01").await;
    assert_eq!(code, 1, "{out}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let stream = &summary["sources"][0]["streams"][0];
    assert_eq!(stream["status"], "failed", "{stream}");
    let error = stream["error"].as_str().unwrap();
    assert!(error.contains("daily token quota"), "{error}");
    assert!(
        error.contains("committed traffic_daily through 2025-05-16"),
        "{error}"
    );

    // The next day's refill: the backfill continues from where it got, not from its start.
    property.set_daily_tokens(u64::MAX);
    let (code, out) = backfill("2025-05-16").await;
    assert_eq!(code, 0, "{out}");
    let may = |d: NaiveDate| d.format("%Y-%m").to_string() == "2025-05";
    let want: BTreeMap<String, Vec<Decimal>> = property
        .rows()
        .iter()
        .filter(|r| may(r.date))
        .map(|r| (record_id(&property.property_id, r), metrics(r)))
        .collect();
    let got: BTreeMap<String, Vec<Decimal>> = raw_payloads(&db(&config), "web", "traffic_daily")
        .into_iter()
        .map(|(id, p)| {
            let values = METRICS.iter().map(|k| dec(&p["metrics"][k])).collect();
            (id, values)
        })
        .collect();
    assert_eq!(got, want, "all of May, each row once");
}

async fn a_sync_stopped_by_the_daily_quota_resumes_from_its_last_day(store: Store) {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let property = sandbox.ga4();
    let dir = tempfile::tempdir().unwrap();
    let config = ga4_config_on(&store, &sandbox, dir.path(), "2025-05-01");
    property.set_daily_tokens(property.tokens_used() + 22);
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 1, "{out}");
    let state: String = db(&config)
        .query_row(
            "SELECT state FROM sync_state WHERE source = 'web' AND stream = 'traffic_daily'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(
        state["cursor"], "2025-05-26",
        "a first day, then five batches of five days, were committed before the quota ran out"
    );
    assert!(state["checked"].is_string(), "the checked names: {state}");

    property.set_daily_tokens(u64::MAX);
    let used = property.tokens_used();
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    // From the saved day less the 3-day lookback (2025-05-23) to today, a token a day: not from the start.
    let resumed: NaiveDate = "2025-05-23".parse().unwrap();
    let days = (Utc::now().date_naive() - resumed).num_days() as u64 + 1;
    assert_eq!(
        property.tokens_used() - used,
        days,
        "one token per day read"
    );
    let from: NaiveDate = "2025-05-01".parse().unwrap();
    let want: BTreeMap<String, Vec<Decimal>> = property
        .rows()
        .iter()
        .filter(|r| r.date >= from)
        .map(|r| (record_id(&property.property_id, r), metrics(r)))
        .collect();
    let got: BTreeMap<String, Vec<Decimal>> = raw_payloads(&db(&config), "web", "traffic_daily")
        .into_iter()
        .map(|(id, p)| {
            let values = METRICS.iter().map(|k| dec(&p["metrics"][k])).collect();
            (id, values)
        })
        .collect();
    assert_eq!(got, want, "the same rows as one uninterrupted sync");
}

/// Issue 13: a sync with nothing new reads only the lookback days again — the saved day less 3 days
/// through today, one day and then the rest in one batch — plus an access token for the service
/// account, which every run asks for once (a token is never stored). Three requests, no more: the
/// property's metadata is not asked for — the first sync checked the names, and later ones check
/// them again only when they change ([`a_changed_name_is_checked_again_and_only_then`]); this first
/// sync's windows saved them as checked with the cursor. The
/// first sync, two years long, is read in windows of days side by side and brings every row once.
#[tokio::test]
async fn a_no_change_sync_rereads_only_the_lookback_days() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let property = sandbox.ga4();
    let dir = tempfile::tempdir().unwrap();
    let config = ga4_config(&sandbox, dir.path(), "2024-12-15");
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let raw: i64 = db(&config)
        .query_row(
            "SELECT COUNT(*) FROM raw_records WHERE source='web' AND stream='traffic_daily'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(raw, property.rows().len() as i64, "one raw record per row");
    let tokens = property.tokens_used();
    let requests = sandbox.request_count();
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let stream = &summary["sources"][0]["streams"][0];
    assert_eq!(stream["status"], "ok", "{stream}");
    assert_eq!(stream["requests"], 3, "token and two batches: {stream}");
    assert_eq!(
        sandbox.request_count() - requests,
        3,
        "the property was asked three times"
    );
    assert_eq!(
        property.tokens_used() - tokens,
        4,
        "the 3 lookback days and today, a token a day"
    );
}

/// Adds report `by_source` (`sessionSource` by day) with `metrics` to the config at `config`.
fn with_report(config: &Path, metrics: &[&str]) {
    let text = std::fs::read_to_string(config).unwrap();
    let base = text.split("\n[[sources.web.reports]]").next().unwrap();
    let metrics: Vec<String> = metrics.iter().map(|m| format!("\"{m}\"")).collect();
    std::fs::write(
        config,
        format!(
            "{base}\n[[sources.web.reports]]\nname = \"by_source\"\ndimensions = [\"sessionSource\"]\n\
             metrics = [{}]\n",
            metrics.join(", ")
        ),
    )
    .unwrap();
}

/// Runs a sync; its summary and how many requests the sandbox received meanwhile, which the summary's
/// per-stream counts must add up to.
async fn sync_counting(sandbox: &Sandbox, config: &Path) -> (Value, u64) {
    let before = sandbox.request_count();
    let (_, out) = cli(config, &["sync", "--json"]).await;
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let received = sandbox.request_count() - before;
    let counted: u64 = summary["sources"][0]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, received, "{summary}");
    (summary, received)
}

/// Issue 13: the configured names are checked against the property's metadata by the first sync, not
/// again while they stay the same (the stream's state records what was checked), and again by the
/// first sync after one of them changed — a wrong one then failing its stream, before any report of
/// it is asked for, with the config key, the name and what to do. Each stream here reads 4 lookback
/// days in two batches; a run asks once for a token.
#[tokio::test]
async fn a_changed_name_is_checked_again_and_only_then() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Five days: read in sequence, so the state records the checked names from the first sync on.
    let start = Utc::now().date_naive() - Duration::days(4);
    let config = ga4_config(&sandbox, dir.path(), &start.format("%Y-%m-%d").to_string());
    with_report(&config, &["sessions"]);
    let (summary, first) = sync_counting(&sandbox, &config).await;
    assert_eq!(summary["sources"][0]["status"], "ok", "{summary}");
    assert_eq!(
        first,
        1 + 1 + 2 * 2,
        "token, the metadata (once a run: the streams share it) and two batches a stream"
    );

    let (summary, same) = sync_counting(&sandbox, &config).await;
    assert_eq!(summary["sources"][0]["status"], "ok", "{summary}");
    assert_eq!(same, 1 + 2 * 2, "token and two batches a stream: {summary}");

    // A metric added to the report: its names are checked again; traffic_daily's are not.
    with_report(&config, &["sessions", "newUsers"]);
    let (summary, changed) = sync_counting(&sandbox, &config).await;
    assert_eq!(summary["sources"][0]["status"], "ok", "{summary}");
    assert_eq!(
        changed,
        1 + 2 * 2 + 1,
        "one metadata request more: {summary}"
    );
    let (_, again) = sync_counting(&sandbox, &config).await;
    assert_eq!(again, 1 + 2 * 2, "and then no more");

    // A retired name fails the report's stream before it asks for a report; the other stream syncs.
    with_report(&config, &["sessions", "conversions"]);
    let (summary, wrong) = sync_counting(&sandbox, &config).await;
    assert_eq!(
        wrong,
        1 + 2 + 1,
        "token, traffic_daily's two batches, metadata: {summary}"
    );
    let streams = summary["sources"][0]["streams"].as_array().unwrap();
    let status = |name: &str| {
        let s = streams.iter().find(|s| s["stream"] == name).unwrap();
        (
            s["status"].clone(),
            s["error"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert_eq!(status("traffic_daily").0, "ok", "{summary}");
    let (state, error) = status("report_by_source");
    assert_eq!(state, "failed", "{summary}");
    assert!(error.contains("sources.web.reports[0].metrics"), "{error}");
    assert!(
        error.contains("\"conversions\"") && error.contains("keyEvents"),
        "{error}"
    );
    sandbox.shutdown().await;
}

on_both_stores!(
    sync_and_report_give_the_generated_ga4_values,
    restated_days_replace_their_rows_in_the_dataset_and_the_report,
    a_sync_stopped_by_the_daily_quota_resumes_from_its_last_day,
);
