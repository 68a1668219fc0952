//! End to end: runs on one dataset at once never sync the same source — the second is told who holds
//! it (`"status":"locked"`, exit 0), and N workers started together on one PostgreSQL schema sync
//! every source exactly once between them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use growthflow_core::destination::postgres::testing::{blocking, TestSchema};
use growthflow_sandbox::{Sandbox, SandboxConfig};
use growthflow_tests::cli;
use serde_json::Value;

/// A config syncing every simulated platform into `destination`, written to `dir/growthflow.toml`.
fn config(sandbox: &Sandbox, dir: &Path, destination: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join("ga4.json");
    std::fs::write(
        &key,
        sandbox
            .ga4()
            .service_account_json(&format!("{}/token", sandbox.ga4_url())),
    )
    .unwrap();
    let woo = sandbox.woocommerce();
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

[sources.shop]
type = "shopify"
shop = "sandbox"
access_token = "{shop_token}"
base_url = "{shop_url}"

[sources.email]
type = "klaviyo"
api_key = "{klaviyo_key}"
base_url = "{klaviyo_url}"

[sources.web]
type = "ga4"
property_id = "{ga4_property}"
credentials_file = "{ga4_key}"
base_url = "{ga4_url}"

[sources.ads]
type = "meta_ads"
ad_account_id = "act_{meta_account}"
access_token = "{meta_token}"
base_url = "{meta_url}"
"#,
        woo_url = sandbox.woocommerce_url(),
        ck = woo.consumer_key,
        cs = woo.consumer_secret,
        shop_token = sandbox.shopify().access_token,
        shop_url = sandbox.shopify_url(),
        klaviyo_key = sandbox.klaviyo().api_key,
        klaviyo_url = sandbox.klaviyo_url(),
        ga4_property = sandbox.ga4().property_id,
        ga4_key = key.display(),
        ga4_url = sandbox.ga4_url(),
        meta_account = sandbox.meta().account_id,
        meta_token = sandbox.meta().access_token,
        meta_url = sandbox.meta_url(),
    );
    let path = dir.join("growthflow.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Each source's status in a `--json` summary.
fn statuses(out: &str) -> BTreeMap<String, Value> {
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["source"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

/// Runs `configs` at once, each on its own task; their exit codes and summaries.
async fn at_once(configs: Vec<PathBuf>) -> Vec<(i32, String)> {
    let runs: Vec<_> = configs
        .into_iter()
        .map(|c| tokio::spawn(async move { cli(&c, &["sync", "--json"]).await }))
        .collect();
    let mut results = Vec::new();
    for r in runs {
        results.push(r.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runs_at_once_on_one_sqlite_dataset_never_sync_the_same_source() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let destination = format!("url = \"sqlite://{}\"", dir.path().join("gf.db").display());
    let a = config(&sandbox, &dir.path().join("a"), &destination);
    let b = config(&sandbox, &dir.path().join("b"), &destination);
    let results = at_once(vec![a.clone(), b]).await;
    let mut synced: BTreeMap<String, usize> = BTreeMap::new();
    let mut locked = 0;
    for (code, out) in &results {
        assert_eq!(*code, 0, "a locked source is not a failure: {out}");
        for (name, s) in statuses(out) {
            match s["status"].as_str().unwrap() {
                "ok" => *synced.entry(name).or_default() += 1,
                "locked" => {
                    locked += 1;
                    let by = &s["locked_by"];
                    assert!(by["run_id"].is_string() && by["since"].is_string(), "{s}");
                    assert!(by["pid"].as_i64().unwrap() > 0, "{s}");
                    assert_eq!(s["streams"], serde_json::json!([]), "{s}");
                }
                other => panic!("{name}: {other}: {out}"),
            }
        }
    }
    assert_eq!(synced.len(), 5, "{results:?}");
    assert!(synced.values().all(|n| *n == 1), "{synced:?}");
    assert_eq!(
        locked, 5,
        "every source was skipped by one run: {results:?}"
    );
    // The locks are released at the end: a later run syncs everything.
    let (code, out) = cli(&a, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        statuses(&out).values().all(|s| s["status"] == "ok"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn n_workers_on_one_postgres_schema_sync_every_source_exactly_once() {
    let Some(schema) = TestSchema::new("e2e_workers") else {
        return;
    };
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let destination = format!("url = \"{}\"\nschema = \"{}\"", schema.url(), schema.name());
    let workers: Vec<PathBuf> = (0..3)
        .map(|i| config(&sandbox, &dir.path().join(format!("w{i}")), &destination))
        .collect();
    let results = at_once(workers).await;
    let mut synced: BTreeMap<String, usize> = BTreeMap::new();
    for (code, out) in &results {
        assert_eq!(*code, 0, "{out}");
        for (name, s) in statuses(out) {
            match s["status"].as_str().unwrap() {
                "ok" => *synced.entry(name).or_default() += 1,
                "locked" => {}
                other => panic!("{name}: {other}: {out}"),
            }
        }
    }
    assert_eq!(synced.len(), 5, "{results:?}");
    assert!(synced.values().all(|n| *n == 1), "{synced:?}");
    let (sources, locks): (i64, i64) = blocking(|| {
        let mut c = schema.client();
        (
            c.query_one("SELECT COUNT(DISTINCT source) FROM raw_records", &[])
                .unwrap()
                .get(0),
            c.query_one("SELECT COUNT(*) FROM growthflow_locks", &[])
                .unwrap()
                .get(0),
        )
    });
    assert_eq!(sources, 5);
    assert_eq!(locks, 0, "every worker released its locks");
}
