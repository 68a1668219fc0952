//! A one-off backfill as a library: re-read a year of Meta ad insights into a SQLite dataset without
//! touching the saved cursor of the scheduled sync — what `growthflow backfill --since … ads` does.
//! A year is too long for one synchronous insights call, so the connector reads it through async
//! report jobs (split and retried by itself if Meta fails one).
//!
//! With `META_AD_ACCOUNT_ID` and `META_ACCESS_TOKEN` set it reads that ad account; without them it
//! starts the sandbox's simulated account so the example runs anywhere:
//!
//! ```sh
//! cargo run -p growthflow-tests --example backfill_meta_ads
//! ```

use std::sync::Arc;

use chrono::{Duration, Utc};
use growthflow_core::connector::{Connector, Window};
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::DatasetWriter;
use growthflow_core::engine::{self, NoProgress, SyncOptions};
use growthflow_core::http::ClientOptions;
use growthflow_meta_ads::{MetaAds, MetaAdsConfig, MetaAdsMapper};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (config, _sandbox) = match (
        std::env::var("META_AD_ACCOUNT_ID"),
        std::env::var("META_ACCESS_TOKEN"),
    ) {
        (Ok(account), Ok(token)) => (MetaAdsConfig::new(account, token), None),
        _ => {
            let sandbox = growthflow_sandbox::Sandbox::start(growthflow_sandbox::SandboxConfig {
                end: Utc::now(),
                ..Default::default()
            })
            .await?;
            let account = sandbox.meta();
            let mut config =
                MetaAdsConfig::new(account.account_id.clone(), account.access_token.clone());
            config.base_url = Some(sandbox.meta_url());
            (config, Some(sandbox))
        }
    };
    let source: Arc<dyn Connector> =
        Arc::new(MetaAds::new("ads", config, &ClientOptions::default())?);

    let path = std::env::temp_dir()
        .join("growthflow-example")
        .join("backfill.db");
    let writer = DatasetWriter::spawn(Box::new(SqliteDestination::open(&path)?));
    let today = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let options = SyncOptions {
        start: today - Duration::days(365),
        streams: vec!["ad_insights".into()],
        full_refresh: false,
        // The last 365 whole days; a backfill window is neither read from nor saved to the state.
        window: Some(Window {
            since: today - Duration::days(365),
            until: today,
        }),
        concurrency: 1,
    };
    for outcome in engine::run(&[source], &writer, &options, Arc::new(NoProgress)).await {
        for stream in &outcome.streams {
            println!(
                "{}/{}: {} records, {}{}",
                outcome.source,
                stream.stream,
                stream.records,
                stream.status,
                stream
                    .error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
    }
    let stats = writer
        .rebuild_journey(vec![Arc::new(MetaAdsMapper)])
        .await?;
    println!("journey events: {}", stats.events);
    println!("dataset: {}", path.display());
    Ok(())
}
