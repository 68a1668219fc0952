//! End to end: `growthflow sync` and `report` against the sandbox's simulated Klaviyo account (beside its
//! WooCommerce store), checked against values computed independently from the generated data.
//!
//! The account and the commands run on one [`TestClock`]: the connector's rate tiers space its
//! requests on it and the account counts its fixed windows on it, so the spacing is kept without
//! being waited for.

use growthflow_tests::{cents, cli_on, db, dec, on_both_stores, per_stream, raw_payloads, Store};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use growthflow_core::http::TestClock;
use growthflow_sandbox::{KlaviyoAccount, Sandbox, SandboxConfig};
use rusqlite::Connection;
use rust_decimal::Decimal;
use serde_json::Value;

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
        let clock = TestClock::yielding();
        Env {
            sandbox: Sandbox::start_with_clock(SandboxConfig::default(), Arc::new(clock.clone()))
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

    fn account(&self) -> &KlaviyoAccount {
        self.sandbox.klaviyo()
    }

    /// A config with the sandbox's WooCommerce store and Klaviyo account, in `sub/`.
    fn config(&self, sub: &str) -> PathBuf {
        let dir = self.dir.path().join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let store = self.sandbox.woocommerce();
        let text = format!(
            r#"
[destination]
{destination}

[sync]
start_date = "2015-01-01"

[sources.woo]
type = "woocommerce"
url = "{woo_url}"
consumer_key = "{ck}"
consumer_secret = "{cs}"

[sources.email]
type = "klaviyo"
api_key = "{key}"
base_url = "{klaviyo_url}"
"#,
            destination = self.dataset.destination_toml(&dir),
            woo_url = self.sandbox.woocommerce_url(),
            ck = store.consumer_key,
            cs = store.consumer_secret,
            key = self.account().api_key,
            klaviyo_url = self.sandbox.klaviyo_url(),
        );
        let path = dir.join("growthflow.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn count(conn: &Connection, sql: &str, param: &str) -> i64 {
    conn.query_row(sql, [param], |r| r.get(0)).unwrap()
}

async fn sync_reads_every_klaviyo_record_within_the_rate_tiers(store: Store) {
    let env = Env::on(store).await;
    let config = env.config("a");
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let source = summary["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "email")
        .expect("the klaviyo source is in the summary");
    assert_eq!(source["type"], "klaviyo");
    assert_eq!(source["status"], "ok", "{source}");
    let account = env.account();
    let records = per_stream(source, "records");
    let expected: [(&str, &Vec<Value>); 6] = [
        ("events", &account.events),
        ("metrics", &account.metrics),
        ("profiles", &account.profiles),
        ("campaigns", &account.campaigns),
        ("flows", &account.flows),
        ("lists", &account.lists),
    ];
    let conn = db(&config);
    for (stream, items) in expected {
        assert_eq!(
            records[stream],
            items.len() as u64,
            "{stream} in the summary"
        );
        let got: HashMap<String, Value> = raw_payloads(&conn, "email", stream);
        assert_eq!(got.len(), items.len(), "{stream} in raw_records");
        for item in items.iter() {
            let mut payload = got[item["id"].as_str().unwrap()].clone();
            let joined = payload.as_object_mut().unwrap().remove("included");
            assert_eq!(&payload, item, "{stream} {} as served", item["id"]);
            if stream == "events" {
                let joined = joined.expect("events carry their included resources");
                assert_eq!(
                    joined["metric"]["attributes"]["name"].as_str(),
                    account.metric_name(item)
                );
                assert!(joined["profile"]["attributes"]["email"].is_string());
            }
        }
    }
    assert_eq!(
        account.throttled_count(),
        0,
        "the connector's quotas kept it under Klaviyo's tiers"
    );
    env.sandbox.shutdown().await;
}

async fn report_gives_the_klaviyo_values_of_the_generated_account(store: Store) {
    let env = Env::on(store).await;
    let config = env.config("a");
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let (since, until) = ("2025-04-01", "2025-06-20");
    let (code, out) = env
        .cli(
            &config,
            &[
                "report", "--since", since, "--until", until, "--format", "json",
            ],
        )
        .await;
    assert_eq!(code, 0, "{out}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();

    let account = env.account();
    let since = NaiveDate::from_str(since).unwrap();
    let until = NaiveDate::from_str(until).unwrap();
    let in_window = |e: &Value| {
        let d = NaiveDate::from_str(&e["attributes"]["datetime"].as_str().unwrap()[..10]).unwrap();
        d >= since && d <= until
    };
    let of = |name: &str| -> Vec<&Value> {
        account
            .events
            .iter()
            .filter(|e| account.metric_name(e) == Some(name) && in_window(e))
            .collect()
    };
    let opens = of("Opened Email").len() as i64;
    let clicks = of("Clicked Email").len() as i64;
    let attributed: Vec<&Value> = of("Placed Order")
        .into_iter()
        .filter(|e| KlaviyoAccount::is_attributed(e))
        .collect();
    let revenue: Decimal = attributed
        .iter()
        .map(|e| dec(&e["attributes"]["event_properties"]["$value"]))
        .sum();
    assert!(opens > 0 && clicks > 0 && !attributed.is_empty());

    assert_eq!(r["consideration"]["email_opens"].as_i64(), Some(opens));
    assert_eq!(r["consideration"]["email_clicks"].as_i64(), Some(clicks));
    assert_eq!(
        cents(dec(&r["retention"]["email_attributed_revenue"])),
        cents(revenue)
    );
    assert_eq!(
        r["feedback"]["reported_purchases"]["klaviyo"].as_i64(),
        Some(attributed.len() as i64)
    );
    // Flow emails name no campaign: their flow's name, resolved from the synced flows, is the
    // campaign in the report, on the email channel.
    let email_campaigns: Vec<&str> = r["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["channel"] == "email")
        .map(|c| c["campaign"].as_str().unwrap())
        .collect();
    let mut flow_names = 0;
    for e in of("Opened Email").into_iter().chain(of("Clicked Email")) {
        let Some(flow) = e["attributes"]["event_properties"]["$flow"].as_str() else {
            continue;
        };
        let name = account
            .flows
            .iter()
            .find(|f| f["id"] == flow)
            .and_then(|f| f["attributes"]["name"].as_str())
            .unwrap();
        assert!(
            email_campaigns.contains(&name.trim()),
            "{name} not in {email_campaigns:?}"
        );
        flow_names += 1;
    }
    assert!(flow_names > 0);
    assert_eq!(account.throttled_count(), 0);
    env.sandbox.shutdown().await;
}

async fn profiles_join_store_customers_on_normalised_email(store: Store) {
    let env = Env::on(store).await;
    let config = env.config("a");
    let (code, out) = env.cli(&config, &["sync"]).await;
    assert_eq!(code, 0, "{out}");
    let conn = db(&config);
    let account = env.account();
    let store_emails: HashSet<String> = env
        .sandbox
        .woocommerce()
        .orders
        .iter()
        .map(growthflow_sandbox::WooStore::order_email)
        .filter(|e| e.contains('@'))
        .collect();
    let mut joined = 0;
    let mut mixed_case = 0;
    for p in &account.profiles {
        let Some(email) = p["attributes"]["email"].as_str() else {
            continue;
        };
        let norm = email.trim().to_lowercase();
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM customers WHERE lower(trim(email)) = ?1 OR customer_id = ?1",
                &norm
            ),
            1,
            "one person for {email}"
        );
        if store_emails.contains(&norm) {
            joined += 1;
            if email != norm {
                mixed_case += 1;
            }
            assert!(
                count(
                    &conn,
                    "SELECT count(*) FROM orders WHERE customer_id = ?1",
                    &norm
                ) > 0,
                "{email} is the person of the store's orders"
            );
        }
    }
    assert!(joined > 10, "{joined} profiles are store customers");
    assert!(mixed_case > 0, "some of them typed in another case");
    env.sandbox.shutdown().await;
}

/// `n` metric reads (`check`) on one connector instance, as fast as its client-side quotas allow;
/// every read must succeed; returns how many 429s the sandbox served meanwhile, how many requests
/// it answered (a 429 retried after `Retry-After` would be one more) and how much time passed on the
/// clock the connector and the account share.
async fn sustained_metric_reads(n: usize) -> (u64, u64, Duration) {
    let env = Env::start().await;
    let config = env.config("a");
    let parsed = growthflow_cli::config::load(&config).unwrap();
    let entry = parsed.source("email").unwrap();
    let tokens =
        growthflow_cli::tokens::TokenStore::beside(&config.parent().unwrap().join("gf.db"));
    let connector = growthflow_cli::registry::build(
        entry,
        &growthflow_core::http::ClientOptions::with_clock(Arc::new(env.clock.clone())),
        &tokens,
    )
    .unwrap();
    let before = env.sandbox.request_count();
    let started = env.clock.elapsed();
    for i in 0..n {
        if let Err(e) = connector.check().await {
            panic!("read {i} of {n} failed: {e}");
        }
    }
    let answered = env.sandbox.request_count() - before;
    let throttled = env.account().throttled_count();
    let took = env.clock.elapsed() - started;
    env.sandbox.shutdown().await;
    (throttled, answered, took)
}

/// Klaviyo counts fixed wall-clock windows (a second and a minute), and the connector's quota for tier M
/// spaces requests evenly at the tighter of 10/s and 150/min (one every 0.4 s), which never puts more
/// than the limit in any window. So 12 reads in a row — more than the burst window's 10, which reads
/// sent back to back would overrun into a 429 — are each answered at the first request. Both sides
/// count the test clock's time, so the 4.4 s that spacing asks for pass on it, not on the wall.
#[tokio::test]
async fn sustained_requests_stay_inside_the_fixed_windows_and_all_succeed() {
    let (throttled, answered, took) = sustained_metric_reads(12).await;
    assert_eq!(
        (throttled, answered),
        (0, 12),
        "no read was answered 429, each was one request"
    );
    assert_eq!(
        took,
        Duration::from_millis(11 * 400),
        "the 11 reads after the first waited 0.4 s each"
    );
}

async fn a_second_sync_and_a_backfill_use_filters_klaviyo_accepts(store: Store) {
    let env = Env::on(store).await;
    let config = env.config("a");
    assert_eq!(env.cli(&config, &["sync"]).await.0, 0);
    let raw_count = |config: &Path| -> i64 {
        db(config)
            .query_row(
                "SELECT count(*) FROM raw_records WHERE source='email'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let before = raw_count(&config);
    let account = env.account();
    let total = account.events.len()
        + account.metrics.len()
        + account.profiles.len()
        + account.campaigns.len()
        + account.flows.len()
        + account.lists.len();
    assert_eq!(before, total as i64);
    for args in [
        &["sync", "--json"][..],
        &[
            "backfill",
            "--since",
            "2025-05-01",
            "--until",
            "2025-05-31",
            "--json",
        ][..],
    ] {
        let (code, out) = env.cli(&config, args).await;
        assert_eq!(code, 0, "{args:?}: {out}");
        let summary: Value = serde_json::from_str(out.trim()).unwrap();
        for source in summary["sources"].as_array().unwrap() {
            assert_eq!(source["status"], "ok", "{args:?}: {source}");
        }
        assert_eq!(raw_count(&config), before, "{args:?} adds nothing");
    }
    assert_eq!(account.throttled_count(), 0);
    env.sandbox.shutdown().await;
}

/// Issue 13: a sync with nothing new makes at most one request per stream — campaigns two, because
/// Klaviyo lists campaigns only with an `equals(messages.channel,…)` filter, one channel a request. A
/// first sync of this account is short, so its measuring request for event windows is its first page.
#[tokio::test]
async fn a_no_change_sync_makes_at_most_one_request_per_stream() {
    let env = Env::start().await;
    let config = env.config("a");
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let source = summary["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "email")
        .unwrap();
    let requests = per_stream(source, "requests");
    let want: HashMap<String, u64> = [
        ("events", 1),
        ("metrics", 1),
        ("profiles", 1),
        ("campaigns", 2),
        ("flows", 1),
        ("lists", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(requests, want);
    assert_eq!(env.account().throttled_count(), 0);
    env.sandbox.shutdown().await;
}

on_both_stores!(
    sync_reads_every_klaviyo_record_within_the_rate_tiers,
    report_gives_the_klaviyo_values_of_the_generated_account,
    profiles_join_store_customers_on_normalised_email,
    a_second_sync_and_a_backfill_use_filters_klaviyo_accepts,
);
