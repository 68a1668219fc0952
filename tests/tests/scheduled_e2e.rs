//! End to end: a scheduled `growthflow` left alone keeps its dataset safe — the `.db` file alone holds
//! what `sync` committed, the file is owner-only, reading commands refuse a dataset that does not
//! exist, a source name keeps its connector type (until `state reset`), and `--shard` splits the
//! sources between runs.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use growthflow_core::http::TestClock;
use growthflow_sandbox::{Sandbox, SandboxConfig};
use growthflow_tests::{cli, cli_on};
use serde_json::Value;

struct Env {
    sandbox: Sandbox,
    dir: tempfile::TempDir,
    /// The sandbox's clock and the commands': Shopify's cost bucket is waited for in no time.
    clock: TestClock,
}

impl Env {
    async fn start() -> Env {
        let clock = TestClock::yielding();
        Env {
            sandbox: Sandbox::start_with_clock(SandboxConfig::default(), Arc::new(clock.clone()))
                .await
                .unwrap(),
            dir: tempfile::tempdir().unwrap(),
            clock,
        }
    }

    /// Run a command on the sandbox's clock.
    async fn cli(&self, config: &Path, args: &[&str]) -> (i32, String) {
        cli_on(&self.clock, config, args).await
    }

    /// A config in `sub/` with the sandbox's WooCommerce store as source `woo` (or, with `shopify`,
    /// the sandbox's Shopify shop under that same name).
    fn config(&self, sub: &str, shopify: bool) -> PathBuf {
        let dir = self.dir.path().join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let source = if shopify {
            format!(
                "type = \"shopify\"\nshop = \"sandbox\"\naccess_token = \"{}\"\nbase_url = \"{}\"",
                self.sandbox.shopify().access_token,
                self.sandbox.shopify_url()
            )
        } else {
            let store = self.sandbox.woocommerce();
            format!(
                "type = \"woocommerce\"\nurl = \"{}\"\nconsumer_key = \"{}\"\nconsumer_secret = \"{}\"",
                self.sandbox.woocommerce_url(),
                store.consumer_key,
                store.consumer_secret
            )
        };
        let text = format!(
            "[destination]\nurl = \"sqlite://{db}\"\n\n[sync]\nstart_date = \"2015-01-01\"\n\n\
             [sources.woo]\n{source}\n",
            db = dir.join("gf.db").display(),
        );
        let path = dir.join("growthflow.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn db_path(config: &Path) -> PathBuf {
    config.parent().unwrap().join("gf.db")
}

#[tokio::test]
async fn after_sync_the_db_file_alone_holds_the_records_and_is_owner_only() {
    let env = Env::start().await;
    let config = env.config("copy", false);
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let db = db_path(&config);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&db).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // Only the .db, as a backup that forgets the -wal would take it.
    let copy = env.dir.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let orders: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM raw_records WHERE source = 'woo' AND stream = 'orders'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orders, env.sandbox.woocommerce().orders.len() as i64);
    let states: i64 = conn
        .query_row("SELECT COUNT(*) FROM sync_state", [], |r| r.get(0))
        .unwrap();
    assert!(states > 0);
}

#[tokio::test]
async fn report_refuses_a_dataset_that_does_not_exist_and_creates_none() {
    let env = Env::start().await;
    let config = env.config("missing", false);
    let (code, out) = env.cli(&config, &["report"]).await;
    assert_eq!(code, 2, "{out}");
    assert_eq!(out, "");
    assert!(!db_path(&config).exists());
}

#[tokio::test]
async fn report_and_state_refuse_a_postgres_schema_without_a_dataset_and_create_none() {
    use growthflow_core::destination::postgres::testing::{blocking, TestSchema};
    let Some(schema) = TestSchema::new("no_dataset") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("growthflow.toml");
    std::fs::write(
        &config,
        format!(
            "[destination]\nurl = \"{}\"\nschema = \"{}\"\n",
            schema.url(),
            schema.name()
        ),
    )
    .unwrap();
    for args in [&["report"][..], &["state", "show"][..]] {
        let (code, out) = cli(&config, args).await;
        assert_eq!(code, 2, "{args:?}: {out}");
        assert_eq!(out, "", "{args:?}");
    }
    let name = schema.name().to_string();
    let created: bool = blocking(move || {
        schema
            .client()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&name],
            )
            .unwrap()
            .get(0)
    });
    assert!(!created, "the schema was created");
}

#[tokio::test]
async fn a_source_that_changed_type_is_refused_before_anything_is_read() {
    let env = Env::start().await;
    let config = env.config("replatform", false);
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let requests = env.sandbox.request_count();
    // The same source name, now a Shopify shop.
    let config = env.config("replatform", true);
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let source = &v["sources"][0];
    assert_eq!(source["status"], "failed", "{source}");
    let stream = &source["streams"][0];
    assert_eq!(stream["kind"], "config", "{stream}");
    let error = stream["error"].as_str().unwrap();
    assert!(
        error.contains("`woo` as type `woocommerce`, not `shopify`"),
        "{error}"
    );
    assert!(
        error.contains("growthflow state reset woo --yes"),
        "{error}"
    );
    assert_eq!(env.sandbox.request_count(), requests, "nothing was read");

    // Without --yes nothing changes (exit 2); with it, the name starts over as the Shopify shop.
    let (code, _) = env.cli(&config, &["state", "reset", "woo"]).await;
    assert_eq!(code, 2);
    let (code, out) = env.cli(&config, &["state", "show", "woo", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let states = v["states"].as_array().unwrap();
    assert!(!states.is_empty(), "{v}");
    assert!(states.iter().all(|s| s["type"] == "woocommerce"), "{v}");
    assert!(
        states
            .iter()
            .all(|s| s["age_seconds"].as_i64().unwrap() < 600),
        "{v}"
    );
    let (code, out) = env.cli(&config, &["state", "reset", "woo", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("type are forgotten"), "{out}");
    let (code, out) = env.cli(&config, &["state", "show", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), r#"{"states":[]}"#);
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let (_, out) = env.cli(&config, &["state", "show"]).await;
    assert!(out.starts_with("woo (shopify)\n"), "{out}");
}

#[tokio::test]
async fn state_commands_refuse_a_dataset_that_does_not_exist() {
    let env = Env::start().await;
    let config = env.config("nostate", false);
    let (code, _) = env.cli(&config, &["state", "show"]).await;
    assert_eq!(code, 2);
    let (code, _) = env.cli(&config, &["state", "reset", "woo", "--yes"]).await;
    assert_eq!(code, 2);
    assert!(!db_path(&config).exists());
}

#[tokio::test]
async fn shards_split_the_sources_between_runs_without_overlap() {
    let env = Env::start().await;
    let config = env.config("shards", false);
    // A second source, the sandbox's Shopify shop, as `shop`.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[sources.shop]\ntype = \"shopify\"\nshop = \"sandbox\"\naccess_token = \"{}\"\nbase_url = \"{}\"\n",
        env.sandbox.shopify().access_token,
        env.sandbox.shopify_url()
    ));
    std::fs::write(&config, text).unwrap();
    let names = |out: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        v["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["source"].as_str().unwrap().to_string())
            .collect()
    };
    // Sorted by name: shop, woo.
    let (code, out) = env
        .cli(&config, &["sync", "--json", "--shard", "1/2"])
        .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(names(&out), vec!["shop"]);
    let (code, out) = env
        .cli(&config, &["sync", "--json", "--shard", "2/2"])
        .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(names(&out), vec!["woo"]);
}

#[tokio::test]
async fn a_host_that_does_not_resolve_fails_at_once_as_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("growthflow.toml");
    std::fs::write(
        &config,
        format!(
            "[destination]\nurl = \"sqlite://{}\"\n\n[sources.woo]\ntype = \"woocommerce\"\n\
             url = \"https://does-not-exist.invalid\"\nconsumer_key = \"ck_x\"\n\
             consumer_secret = \"cs_x\"\n",
            dir.path().join("gf.db").display()
        ),
    )
    .unwrap();
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let streams = v["sources"][0]["streams"].as_array().unwrap();
    assert!(!streams.is_empty(), "{v}");
    for s in streams {
        assert_eq!(s["status"], "failed", "{s}");
        assert_eq!(s["kind"], "unreachable", "{s}");
        let error = s["error"].as_str().unwrap();
        assert!(
            error.contains("could not resolve the host name does-not-exist.invalid"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_failed_rebuild_still_prints_the_summary_and_says_why() {
    let env = Env::start().await;
    let config = env.config("rebuild", false);
    assert_eq!(env.cli(&config, &["sync"]).await.0, 0);
    // Break the journey model (a table an operator dropped by hand): the records still commit.
    rusqlite::Connection::open(db_path(&config))
        .unwrap()
        .execute_batch("DROP VIEW funnel_daily; DROP TABLE journey_events;")
        .unwrap();
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(out.trim()).expect("the summary, as JSON, on stdout");
    let source = &v["sources"][0];
    assert_eq!(
        source["status"], "ok",
        "the records are committed: {source}"
    );
    assert!(v["run_id"].is_string(), "{v}");
    let streams = source["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 5, "{source}");
    assert!(streams.iter().all(|s| s["status"] == "ok"), "{source}");
}
