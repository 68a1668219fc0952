//! End to end: a `sync` stopped by SIGTERM is recorded in the run history as `interrupted`, with its
//! streams. A real signal to this test's own process, which is why this file holds a single test (the
//! signal reaches every thread of the process).

#![cfg(unix)]

use growthflow_sandbox::{Sandbox, SandboxConfig};
use growthflow_tests::cli;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_sync_is_recorded_interrupted() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = sandbox.woocommerce();
    let config = dir.path().join("growthflow.toml");
    std::fs::write(
        &config,
        format!(
            "[destination]\nurl = \"sqlite://{}\"\n\n[sync]\nstart_date = \"2015-01-01\"\n\n\
             [sources.woo]\ntype = \"woocommerce\"\nurl = \"{}\"\nconsumer_key = \"{}\"\n\
             consumer_secret = \"{}\"\n",
            dir.path().join("gf.db").display(),
            sandbox.woocommerce_url(),
            store.consumer_key,
            store.consumer_secret
        ),
    )
    .unwrap();
    // Every request is told to come back in 10 minutes: the run can only end by being stopped.
    sandbox.faults().rate_limit(1_000_000, 600);
    let run = tokio::spawn({
        let config = config.clone();
        async move { cli(&config, &["sync", "--json"]).await }
    });
    // The first request is made after the run's start is recorded and the signal handlers are up.
    while sandbox.request_count() == 0 {
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (code, out) = run.await.unwrap();
    assert_eq!(code, 143, "{out}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let run_id = summary["run_id"].as_str().unwrap().to_string();

    let (code, out) = cli(&config, &["status", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let status: Value = serde_json::from_str(out.trim()).unwrap();
    let recorded = &status["runs"][0];
    assert_eq!(recorded["run_id"], run_id.as_str());
    assert_eq!(recorded["status"], "interrupted", "{recorded}");
    assert!(recorded["finished_at"].is_string());
    let streams = recorded["streams"].as_array().unwrap();
    assert_eq!(
        streams.len(),
        summary["sources"][0]["streams"].as_array().unwrap().len()
    );
    for s in streams {
        assert_eq!(s["status"], "interrupted", "{s}");
        assert_eq!(s["kind"], "interrupted", "{s}");
    }
    // The throttled requests were sent, and counted.
    let requests: u64 = streams
        .iter()
        .map(|s| s["requests"].as_u64().unwrap())
        .sum();
    assert!(requests >= 1, "{recorded}");
}
