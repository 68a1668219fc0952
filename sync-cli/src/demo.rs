//! `growthflow demo`: the sandbox's simulated platforms on loopback, synced like any config, then the
//! report. Behind the CLI's default `demo` feature, so a production build links no simulator.
//!
//! The demo's platforms are configured like a real business of that size would have them, not like
//! the tests' (which exercise the throttles and failures): the Shopify shop is on Shopify Plus (its
//! GraphQL cost bucket restores 1,000 points a second, Standard's 100 kept a scale-10 demo waiting
//! two minutes), the Meta ad account's report jobs complete (in 1 s, up to 10,000 × scale rows) rather
//! than fail and split, and Meta Ads, the longest source to read, is listed first so that it starts at
//! once (docs/performance.md, "The demo's memory").

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use chrono::{Days, Utc};
use growthflow_core::engine::SyncOptions;
use growthflow_core::http::{ClientOptions, Clock};
use growthflow_core::report::ReportOptions;
use growthflow_core::time::start_of_day;

use crate::app::{build_sources, compute_report, io, print_report, run_sync, Failure, RunFlags};
use crate::cli::{Cli, ReportFormat};
use crate::config::{self, DestinationTarget};

/// The demo: simulated platforms on loopback, synced into `DIR/growthflow.db` (or `destination`), then
/// the report, `DIR/growthflow.toml` and the commands to try next. With `serve`, the platforms stay up
/// until Ctrl-C. The platforms and the sync share `clock` (real time, but for tests: a test clock
/// waits out the simulated throttles and report jobs without waiting).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn demo(
    dir: &Path,
    scale: u32,
    destination: Option<&str>,
    serve: bool,
    cli: &Cli,
    clock: &Arc<dyn Clock>,
    out: &mut (dyn Write + Send),
) -> Result<i32, Failure> {
    let sandbox = growthflow_sandbox::Sandbox::start_with_clock(
        growthflow_sandbox::SandboxConfig {
            scale,
            end: clock.utc_now(),
            // A shop of the demo's size on Shopify Plus: its GraphQL cost bucket restores 1,000
            // points a second (Standard's 100 kept a scale-10 demo waiting two minutes).
            shopify_plan: growthflow_sandbox::ShopifyPlan::Plus,
            ..Default::default()
        },
        clock.clone(),
    )
    .await
    .map_err(|e| Failure::Failed(format!("cannot start the sandbox: {e}")))?;
    // An ad account whose report jobs complete, in a second, for the windows the connector plans at
    // any scale (`scale` times the default account's row limit): the demo shows a sync, not the
    // failed jobs, splits and slower jobs the Meta tests exercise.
    let meta = sandbox.meta();
    meta.set_job_row_limit(meta.job_row_limit() * scale.max(1) as usize);
    meta.set_job_run_time(std::time::Duration::from_secs(1));
    // Absolute, so that the config written below works from any directory.
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let dir = &std::fs::canonicalize(dir)
        .map_err(|e| Failure::Failed(format!("cannot find {}: {e}", dir.display())))?;
    let text = demo_config(&sandbox, dir, destination)?;
    let cfg = config::parse(&text, &|_| None)?;
    let config_path = dir.join("growthflow.toml");
    std::fs::write(&config_path, crate::init::demo_file(&text, serve))
        .map_err(|e| Failure::Failed(format!("cannot write {}: {e}", config_path.display())))?;
    let sources = build_sources(&cfg, &[], &ClientOptions::with_clock(clock.clone()))?;
    let options = SyncOptions {
        start: start_of_day(cfg.sync.start_date),
        streams: Vec::new(),
        full_refresh: false,
        window: None,
        concurrency: cfg.sync.concurrency,
    };
    let mut summary = Vec::new();
    let code = run_sync(
        cli,
        &cfg,
        "sync",
        &sources,
        &options,
        RunFlags::on(clock.clone()),
        &mut summary,
    )
    .await?;
    let serving = if serve {
        Some(sandbox)
    } else {
        sandbox.shutdown().await;
        None
    };
    out.write_all(&summary).map_err(io)?;
    writeln!(out).map_err(io)?;
    let r = compute_report(&cfg, &ReportOptions::default())?;
    print_report(&r, ReportFormat::Table, out)?;
    match cfg.destination.target()? {
        DestinationTarget::Sqlite(path) => {
            writeln!(out, "\ndataset: {}", path.display()).map_err(io)?;
        }
        DestinationTarget::Postgres(t) => {
            writeln!(out, "\ndataset: {} (schema {})", t.display(), t.schema()).map_err(io)?;
        }
    }
    writeln!(out, "\n{}", crate::init::next_steps(&config_path, serve)).map_err(io)?;
    if let Some(sandbox) = serving {
        out.flush().map_err(io)?;
        let stopped = until_stopped().await;
        sandbox.shutdown().await;
        stopped.map_err(|e| Failure::Failed(format!("cannot wait for Ctrl-C: {e}")))?;
    }
    Ok(code)
}

/// Until Ctrl-C (or SIGTERM: a sync's signal listener may have taken over its default action).
async fn until_stopped() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

/// The demo's config, as TOML text: every simulated platform as a source, the dataset in `dir`.
/// Meta Ads comes first: its two years of insights take the longest to read (the connector paces
/// its requests, about 330 pages at scale 10), so it starts at once rather than waiting for one of
/// the sync's stream slots behind the other sources.
fn demo_config(
    sandbox: &growthflow_sandbox::Sandbox,
    dir: &Path,
    destination: Option<&str>,
) -> Result<String, Failure> {
    let woo = sandbox.woocommerce();
    let db = dir.join("growthflow.db");
    let dest_url = match destination {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", db.display().to_string().replace('\\', "/")),
    };
    // The simulated property's service-account key (a test-only key pair made for the sandbox).
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let ga4_key = dir.join("ga4-service-account.json");
    let token_uri = format!("{}/token", sandbox.ga4_url());
    std::fs::write(&ga4_key, sandbox.ga4().service_account_json(&token_uri))
        .map_err(|e| Failure::Failed(format!("cannot write {}: {e}", ga4_key.display())))?;
    let text = format!(
        r#"
[destination]
url = {dest_url}

[sync]
start_date = "{start}"

[sources.ads]
type = "meta_ads"
ad_account_id = "act_{meta_account}"
access_token = "{meta_token}"
base_url = "{meta_url}"

[sources.woo]
type = "woocommerce"
url = "{url}"
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
"#,
        dest_url = toml::Value::String(dest_url),
        // Far enough back to include the simulated shop's whole catalogue, not only recent orders.
        start = (Utc::now().date_naive() - Days::new(5 * 366)).format("%Y-%m-%d"),
        url = sandbox.woocommerce_url(),
        ck = woo.consumer_key,
        cs = woo.consumer_secret,
        shop_token = sandbox.shopify().access_token,
        shop_url = sandbox.shopify_url(),
        klaviyo_key = sandbox.klaviyo().api_key,
        klaviyo_url = sandbox.klaviyo_url(),
        meta_account = sandbox.meta().account_id,
        meta_token = sandbox.meta().access_token,
        meta_url = sandbox.meta_url(),
        ga4_property = sandbox.ga4().property_id,
        ga4_key = ga4_key.display().to_string().replace('\\', "/"),
        ga4_url = sandbox.ga4_url(),
    );
    Ok(text)
}
