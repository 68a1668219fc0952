//! Benchmark: a full WooCommerce sync from the sandbox into SQLite, the journey rebuild, a scheduled
//! re-sync with its incremental rebuild (`rebuild+`), and the report.
//!
//! ```sh
//! cargo bench -p growthflow-tests --bench sync_woocommerce            # scale 10 (3,000 orders)
//! GROWTHFLOW_BENCH_SCALE=40 cargo bench -p growthflow-tests --bench sync_woocommerce
//! ```
//! Prints records per second for each phase over a few runs (min / median), so changes to the HTTP
//! layer, the writer or the rebuild show up as numbers, not impressions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as Days, Utc};
use growthflow_core::connector::Connector;
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::DatasetWriter;
use growthflow_core::engine::{self, NoProgress, SyncOptions};
use growthflow_core::http::ClientOptions;
use growthflow_core::report::{build_report, ReportOptions};
use growthflow_woocommerce::{WooCommerce, WooCommerceConfig, WooMapper};

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2])
}

#[tokio::main]
async fn main() {
    let scale: u32 = std::env::var("GROWTHFLOW_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let runs = 3;
    let sandbox = growthflow_sandbox::Sandbox::start(growthflow_sandbox::SandboxConfig {
        scale,
        ..Default::default()
    })
    .await
    .expect("sandbox");
    let store = sandbox.woocommerce();
    let total = store.orders.len()
        + store.refunds.len()
        + store.customers.len()
        + store.products.len()
        + store.coupons.len();
    let (mut sync_t, mut rebuild_t, mut report_t) = (Vec::new(), Vec::new(), Vec::new());
    let (mut resync_t, mut incremental_t) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bench.db");
        let mut config = WooCommerceConfig::new(
            sandbox.woocommerce_url(),
            store.consumer_key.clone(),
            store.consumer_secret.clone(),
        );
        // The sandbox is local: let the client go as fast as the server answers.
        config.max_requests_per_second = Some(10_000);
        let source: Arc<dyn Connector> = Arc::new(
            WooCommerce::new("woo", config, &ClientOptions::default()).expect("connector"),
        );
        let writer = DatasetWriter::spawn(Box::new(SqliteDestination::open(&path).expect("db")));
        let options = SyncOptions {
            start: Utc::now() - Days::days(3650),
            streams: Vec::new(),
            full_refresh: false,
            window: None,
            concurrency: 4,
        };
        let t = Instant::now();
        let outcomes = engine::run(
            std::slice::from_ref(&source),
            &writer,
            &options,
            Arc::new(NoProgress),
        )
        .await;
        sync_t.push(t.elapsed());
        assert!(outcomes.iter().all(|o| o.ok()), "{outcomes:?}");
        let t = Instant::now();
        writer
            .rebuild_journey(vec![Arc::new(WooMapper)])
            .await
            .expect("rebuild");
        rebuild_t.push(t.elapsed());
        // What a scheduled run costs: an incremental sync that finds little new, then the rebuild,
        // which maps only what that sync committed.
        let t = Instant::now();
        let outcomes = engine::run(&[source], &writer, &options, Arc::new(NoProgress)).await;
        resync_t.push(t.elapsed());
        assert!(outcomes.iter().all(|o| o.ok()), "{outcomes:?}");
        let t = Instant::now();
        writer
            .rebuild_journey(vec![Arc::new(WooMapper)])
            .await
            .expect("rebuild");
        incremental_t.push(t.elapsed());
        let dataset = SqliteDestination::open(&path).expect("db");
        let t = Instant::now();
        build_report(dataset.connection(), &ReportOptions::default()).expect("report");
        report_t.push(t.elapsed());
    }
    println!("scale {scale}: {total} records, {runs} runs (records/s: the dataset's records over the median)");
    for (name, v) in [
        ("sync", sync_t),
        ("rebuild", rebuild_t),
        ("re-sync", resync_t),
        ("rebuild+", incremental_t),
        ("report", report_t),
    ] {
        let (min, median) = stats(v);
        println!(
            "{name:<8} min {:>8.1} ms  median {:>8.1} ms  {:>9.0} records/s",
            min.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3,
            total as f64 / median.as_secs_f64()
        );
    }
    sandbox.shutdown().await;
}
