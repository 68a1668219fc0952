//! End to end: every `sync` and `backfill` is recorded in the dataset's run history, `status` shows the
//! last runs and each stream's cursor, and `sync --json` carries the run id, request counts, waits and
//! saved cursors — in SQLite and PostgreSQL.

use std::path::PathBuf;

use growthflow_sandbox::{Sandbox, SandboxConfig};
use growthflow_tests::cli;
use serde_json::Value;

struct Env {
    sandbox: Sandbox,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        Env {
            sandbox: Sandbox::start(SandboxConfig::default()).await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A config in `sub/` with the sandbox's WooCommerce store as `woo` (its secret replaced by
    /// `bad_secret` when given), into `destination` (default: `sub/gf.db`).
    fn config(&self, sub: &str, bad_secret: Option<&str>, destination: Option<String>) -> PathBuf {
        let dir = self.dir.path().join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let store = self.sandbox.woocommerce();
        let destination = destination
            .unwrap_or_else(|| format!("url = \"sqlite://{}\"", dir.join("gf.db").display()));
        let text = format!(
            "[destination]\n{destination}\n\n[sync]\nstart_date = \"2015-01-01\"\n\n\
             [sources.woo]\ntype = \"woocommerce\"\nurl = \"{}\"\nconsumer_key = \"{}\"\n\
             consumer_secret = \"{}\"\n",
            self.sandbox.woocommerce_url(),
            store.consumer_key,
            bad_secret.unwrap_or(&store.consumer_secret),
        );
        let path = dir.join("growthflow.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn parse(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A sync, then `status --json`: the run is the newest, ok, with the sync's run id, its streams'
/// records and cursors, and requests that add up to what the sandbox received.
async fn sync_then_status(env: &Env, config: &std::path::Path) {
    let before = env.sandbox.request_count();
    let (code, out) = cli(config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let sent = env.sandbox.request_count() - before;
    let synced = parse(&out);
    let run_id = synced["run_id"].as_str().expect("run_id").to_string();
    let source = &synced["sources"][0];
    assert!(source["seconds"].as_f64().unwrap() >= 0.0, "{source}");
    let streams = source["streams"].as_array().unwrap();
    let requests: u64 = streams
        .iter()
        .map(|s| s["requests"].as_u64().expect("requests"))
        .sum();
    assert!(requests > 0);
    assert_eq!(
        requests, sent,
        "one source: every request the sandbox saw is counted"
    );
    for s in streams {
        assert!(s["waited_seconds"].as_f64().is_some(), "{s}");
        assert_eq!(s["status"], "ok", "{s}");
    }
    let orders = streams.iter().find(|s| s["stream"] == "orders").unwrap();
    let cursor = orders["cursor"]
        .as_str()
        .expect("orders has a saved cursor");
    assert!(cursor.starts_with("20"), "{cursor}");

    let (code, out) = cli(config, &["status", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let status = parse(&out);
    let run = &status["runs"][0];
    assert_eq!(run["run_id"], run_id.as_str());
    assert_eq!(run["command"], "sync");
    assert_eq!(run["status"], "ok");
    assert!(run["finished_at"].is_string(), "{run}");
    assert!(run["seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(run["pid"].as_u64(), Some(u64::from(std::process::id())));
    let recorded = run["streams"].as_array().unwrap();
    assert_eq!(recorded.len(), streams.len());
    let mut total = 0;
    for s in streams {
        let r = recorded
            .iter()
            .find(|r| r["stream"] == s["stream"])
            .unwrap_or_else(|| panic!("{} not recorded", s["stream"]));
        assert_eq!(r["source"], "woo");
        assert_eq!(r["records"], s["records"], "{r}");
        assert_eq!(r["status"], "ok");
        assert_eq!(r["requests"], s["requests"]);
        assert_eq!(r["cursor"], s["cursor"], "{r}");
        total += s["records"].as_u64().unwrap();
    }
    assert_eq!(run["records"].as_u64(), Some(total));
    let saved = status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "woo" && s["stream"] == "orders")
        .expect("the orders cursor");
    assert_eq!(saved["cursor"], cursor);
    assert_eq!(saved["type"], "woocommerce");
    assert!(saved["age_seconds"].as_i64().unwrap() >= 0);
}

#[tokio::test]
async fn status_shows_the_sync_that_just_ran_with_its_streams_and_cursors() {
    let env = Env::start().await;
    let config = env.config("ok", None, None);
    sync_then_status(&env, &config).await;

    // A backfill is recorded too, newest first; the human table names both.
    let (code, out) = cli(&config, &["backfill", "--since", "2025-06-01", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let backfill_id = parse(&out)["run_id"].as_str().unwrap().to_string();
    let (code, out) = cli(&config, &["status", "--json", "woo"]).await;
    assert_eq!(code, 0);
    let runs = parse(&out)["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["run_id"], backfill_id.as_str());
    assert_eq!(runs[0]["command"], "backfill");
    let (code, out) = cli(&config, &["status", "--json", "nobody"]).await;
    assert_eq!(code, 0);
    assert_eq!(parse(&out)["runs"], serde_json::json!([]));
    assert_eq!(parse(&out)["streams"], serde_json::json!([]));
    let (code, out) = cli(&config, &["status"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains(&backfill_id) && out.contains("backfill"),
        "{out}"
    );
    assert!(out.contains("orders"), "{out}");
}

#[tokio::test]
async fn a_source_with_a_bad_secret_is_recorded_failed_with_kind_auth() {
    let env = Env::start().await;
    let config = env.config("bad", Some("cs_wrong"), None);
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 1, "{out}");
    let run_id = parse(&out)["run_id"].as_str().unwrap().to_string();
    let (code, out) = cli(&config, &["status", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let run = &parse(&out)["runs"][0];
    assert_eq!(run["run_id"], run_id.as_str());
    assert_eq!(run["status"], "failed");
    let streams = run["streams"].as_array().unwrap();
    assert!(!streams.is_empty());
    for s in streams {
        assert_eq!(s["status"], "failed", "{s}");
        assert_eq!(s["kind"], "auth", "{s}");
        assert!(s["error"].is_string());
    }
    assert!(
        !out.contains("cs_wrong"),
        "a secret reached the run history: {out}"
    );
    let (code, out) = cli(&config, &["status"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("failed") && out.contains("(auth)"), "{out}");
}

#[tokio::test]
async fn status_refuses_a_dataset_that_does_not_exist_and_creates_none() {
    let env = Env::start().await;
    let config = env.config("missing", None, None);
    let (code, out) = cli(&config, &["status"]).await;
    assert_eq!(code, 2, "{out}");
    assert_eq!(out, "");
    assert!(!config.parent().unwrap().join("gf.db").exists());
}

#[tokio::test]
async fn postgres_records_runs_and_status_reads_them() {
    use growthflow_core::destination::postgres::testing::TestSchema;
    let Some(schema) = TestSchema::new("status_e2e") else {
        return;
    };
    let env = Env::start().await;
    let destination = format!("url = \"{}\"\nschema = \"{}\"", schema.url(), schema.name());
    let missing = env.config("pg_missing", None, Some(destination.clone()));
    let (code, out) = cli(&missing, &["status", "--json"]).await;
    assert_eq!(code, 2, "no dataset yet: {out}");
    let config = env.config("pg", None, Some(destination));
    sync_then_status(&env, &config).await;
}
