//! Embed the whole pipeline: sync a source into a SQLite dataset with the engine, rebuild the journey
//! model and print the Growth Flow report — what `growthflow sync` + `growthflow report` do, as a library.
//!
//! ```sh
//! cargo run -p growthflow-tests --example sync_to_sqlite
//! ```
//! Uses the sandbox's simulated store; swap in your own `WooCommerceConfig` for a real one.

use std::sync::Arc;

use chrono::{Duration, Utc};
use growthflow_core::connector::Connector;
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::DatasetWriter;
use growthflow_core::engine::{self, NoProgress, SyncOptions};
use growthflow_core::http::ClientOptions;
use growthflow_core::report::{build_report, ReportOptions};
use growthflow_woocommerce::{WooCommerce, WooCommerceConfig, WooMapper};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sandbox =
        growthflow_sandbox::Sandbox::start(growthflow_sandbox::SandboxConfig::default()).await?;
    let store = sandbox.woocommerce();
    let config = WooCommerceConfig::new(
        sandbox.woocommerce_url(),
        store.consumer_key.clone(),
        store.consumer_secret.clone(),
    );
    let source: Arc<dyn Connector> =
        Arc::new(WooCommerce::new("woo", config, &ClientOptions::default())?);

    let dir = std::env::temp_dir().join("growthflow-example");
    let path = dir.join("growthflow.db");
    let writer = DatasetWriter::spawn(Box::new(SqliteDestination::open(&path)?));
    let options = SyncOptions {
        start: Utc::now() - Duration::days(5 * 365),
        streams: Vec::new(),
        full_refresh: false,
        window: None,
        concurrency: 4,
    };
    for outcome in engine::run(&[source], &writer, &options, Arc::new(NoProgress)).await {
        println!(
            "{}: {} {:?}",
            outcome.source, outcome.status, outcome.streams
        );
    }
    writer.rebuild_journey(vec![Arc::new(WooMapper)]).await?;

    let dataset = SqliteDestination::open(&path)?;
    let report = build_report(dataset.connection(), &ReportOptions::default())?;
    println!("{}", report.to_table());
    println!("dataset: {}", path.display());
    Ok(())
}
