//! End to end: what keeps a scheduled `growthflow sync` bounded — `[sync] max_wait`, `--deadline`, a
//! quick `check`, an auth failure stopping its source, plausible dates — and the `--json` fields a
//! scheduler's script reads (`kind`, `seconds`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use growthflow_cli::app;
use growthflow_core::connector::Connector;
use growthflow_core::ErrorKind;
use growthflow_sandbox::{Sandbox, SandboxConfig};
use growthflow_tests::cli;
use growthflow_woocommerce::{WooCommerce, WooCommerceConfig};
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

    /// A config for the sandbox store in `sub/`, with `sync` lines added to `[sync]`.
    fn config(&self, sub: &str, sync: &str, secret: Option<&str>) -> PathBuf {
        let dir = self.dir.path().join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let store = self.sandbox.woocommerce();
        let text = format!(
            r#"
[destination]
url = "sqlite://{db}"

[sync]
start_date = "2015-01-01"
{sync}

[sources.woo]
type = "woocommerce"
url = "{url}"
consumer_key = "{ck}"
consumer_secret = "{cs}"
"#,
            db = dir.join("gf.db").display(),
            url = self.sandbox.woocommerce_url(),
            ck = store.consumer_key,
            cs = secret.unwrap_or(&store.consumer_secret),
        );
        let path = dir.join("growthflow.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn streams(out: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["sources"][0]["streams"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_wait_longer_than_max_wait_fails_the_stream_at_once_as_throttled() {
    let env = Env::start().await;
    // Every request is told to come back in 10 minutes; the config allows 1.
    env.sandbox.faults().rate_limit(1_000, 600);
    let config = env.config("max_wait", "max_wait = \"1m\"\nconcurrency = 1", None);
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 1, "{out}");
    let streams = streams(&out);
    let first = &streams[0];
    assert_eq!(first["status"], "failed");
    assert_eq!(first["kind"], "throttled", "{first}");
    assert!(first["seconds"].is_number(), "{first}");
    // The contract's existing fields are all still there.
    for key in ["stream", "records", "status", "error"] {
        assert!(first.get(key).is_some(), "{key} missing: {first}");
    }
}

#[tokio::test]
async fn a_passed_deadline_fails_the_running_streams_and_exits_1() {
    let env = Env::start().await;
    // Every request is told to wait 10 minutes (allowed by the default max_wait of 15): only the
    // deadline can end this run.
    env.sandbox.faults().rate_limit(1_000, 600);
    let config = env.config("deadline", "", None);
    let (code, out) = cli(&config, &["sync", "--json", "--deadline", "1s"]).await;
    assert_eq!(code, 1, "{out}");
    let streams = streams(&out);
    assert!(!streams.is_empty());
    for s in &streams {
        assert_eq!(s["status"], "failed", "{s}");
        assert_eq!(s["kind"], "deadline", "{s}");
        let error = s["error"].as_str().unwrap();
        assert!(
            error.starts_with("deadline passed: the run's --deadline of 1s ran out"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn an_auth_failure_fails_every_stream_of_the_source_with_one_request() {
    let env = Env::start().await;
    let config = env.config("auth", "concurrency = 1", Some("cs_wrong"));
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 1, "{out}");
    let streams = streams(&out);
    assert!(streams.len() > 1);
    let reason = streams[0]["error"].as_str().unwrap().to_string();
    for s in &streams {
        assert_eq!(
            (s["status"].as_str(), s["kind"].as_str()),
            (Some("failed"), Some("auth")),
            "{s}"
        );
        assert!(s["error"].as_str().unwrap().starts_with(&reason), "{s}");
    }
    assert_eq!(
        env.sandbox.request_count(),
        1,
        "the other streams make no request"
    );
}

#[tokio::test]
async fn start_date_out_of_range_is_a_config_error() {
    let env = Env::start().await;
    let dir = env.dir.path().join("old");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("growthflow.toml");
    std::fs::write(&config, "[sync]\nstart_date = \"1999-12-31\"\n").unwrap();
    let (code, _) = cli(&config, &["sync"]).await;
    assert_eq!(code, 2);
    assert_eq!(env.sandbox.request_count(), 0);
}

#[tokio::test]
async fn check_makes_one_attempt_against_a_server_that_never_answers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            open.push(socket); // accepted, never answered
        }
    });
    let woo = WooCommerce::new(
        "woo",
        WooCommerceConfig::new(url, "ck_test", "cs_test"),
        &app::check_options(Duration::from_millis(300)),
    )
    .unwrap();
    let err = woo.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one attempt, no retry");
    assert_eq!(app::CHECK_TIMEOUT, Duration::from_secs(15));
}
