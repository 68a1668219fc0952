//! End to end: a real SIGTERM to a running `growthflow sync` (in this test's own process, which is
//! why this file holds a single test: the signal reaches every thread of the process). The run stops
//! without waiting out the platform, prints its summary with the unfinished streams `interrupted`,
//! exits 143, and the next run completes the dataset.

#![cfg(unix)]

use growthflow_sandbox::{Sandbox, SandboxConfig};
use growthflow_tests::{cli, db, snapshot};
use serde_json::Value;

fn config(sandbox: &Sandbox, dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let store = sandbox.woocommerce();
    let text = format!(
        r#"
[destination]
url = "sqlite://{db}"

[sync]
start_date = "2015-01-01"

[sources.woo]
type = "woocommerce"
url = "{url}"
consumer_key = "{ck}"
consumer_secret = "{cs}"
"#,
        db = dir.join("gf.db").display(),
        url = sandbox.woocommerce_url(),
        ck = store.consumer_key,
        cs = store.consumer_secret,
    );
    let path = dir.join("growthflow.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_sync_gracefully_with_143_and_a_rerun_completes_it() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let interrupted = config(&sandbox, &dir.path().join("interrupted"));
    // Every request is told to come back in 10 minutes (within the default max_wait): the run can
    // only end early by being stopped.
    sandbox.faults().rate_limit(1_000_000, 600);
    let run = tokio::spawn({
        let config = interrupted.clone();
        async move { cli(&config, &["sync", "--json"]).await }
    });
    // The first request is made after the signal handlers are installed.
    while sandbox.request_count() == 0 {
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (code, out) = run.await.unwrap();
    assert_eq!(code, 143, "{out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let source = &v["sources"][0];
    assert_eq!(source["status"], "interrupted", "{v}");
    for s in source["streams"].as_array().unwrap() {
        assert_eq!(s["status"], "interrupted", "{s}");
        assert_eq!(s["kind"], "interrupted", "{s}");
    }

    // The next run (the platform has recovered) gives the dataset of a run that was never stopped.
    sandbox.faults().clear();
    let (code, out) = cli(&interrupted, &["sync"]).await;
    assert_eq!(code, 0, "{out}");
    let whole = config(&sandbox, &dir.path().join("whole"));
    let (code, out) = cli(&whole, &["sync"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(snapshot(&db(&interrupted)), snapshot(&db(&whole)));
}
