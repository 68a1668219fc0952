//! Sync throughput: a WooCommerce store of `--orders N` orders, served by the sandbox in a child
//! process, synced into a fresh SQLite file (or the SQLite file or a fresh PostgreSQL schema that
//! `--destination URL` names)
//! the way `growthflow sync` does it, then the journey model rebuilt.
//!
//! ```sh
//! cargo build --release -p growthflow-bench
//! target/release/sync_bench --orders 100000
//! target/release/sync_bench --orders 100000 --destination postgres://root@127.0.0.1:5432/test
//! target/release/sync_bench --orders 100000 --host-latency 50,0.5,4   # a slow shop's server
//! target/release/sync_bench --orders 100000 --cli                     # `growthflow sync --json` itself
//! target/release/sync_bench --orders 100000 --again                   # then a sync with nothing new
//! ```
//!
//! The sandbox runs in a child process (this binary with `--serve`), so the peak RSS printed is the
//! sync's own, not the generated store's. `--serve` alone serves the store to another client: it
//! prints the store's URL and key pair on one JSON line and serves until its standard input closes.
//! With `--behind-tls` that store takes HTTP Basic auth, as WooCommerce does on an HTTPS site, for a
//! client that speaks nothing else (Airbyte's source, in docs/performance.md's side-by-side run).
//!
//! Prints records, seconds and records/s for fetch + write and for the rebuild, the requests the
//! sandbox answered and the peak RSS; `--json` prints the same as one JSON object.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use growthflow_bench::{cpu_seconds, mib, peak_rss_bytes};
use growthflow_cli::config::DestinationTarget;
use growthflow_core::destination::postgres::PostgresDestination;
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::{DatasetWriter, Destination};
use growthflow_core::engine::{self, NoProgress, SyncOptions};
use growthflow_core::http::ClientOptions;
use serde_json::{json, Value};

const USAGE: &str = "usage: sync_bench [--orders N] [--destination URL] \
[--host-latency BASE_MS,PER_RECORD_MS,CONCURRENT] [--concurrency N] [--cli] [--again] [--json] [--keep]
       sync_bench --serve [--orders N] [--host-latency ...] [--behind-tls]";

#[derive(Debug, Clone)]
struct Args {
    orders: usize,
    destination: Option<String>,
    host_latency: Option<(f64, f64, usize)>,
    concurrency: usize,
    cli: bool,
    /// After the first sync, sync again with nothing new: a scheduled run's cost.
    again: bool,
    json: bool,
    keep: bool,
    serve: bool,
    /// With `serve`: the store authenticates by HTTP Basic, as on an HTTPS site.
    behind_tls: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        orders: 100_000,
        destination: None,
        host_latency: None,
        concurrency: 4,
        cli: false,
        again: false,
        json: false,
        keep: false,
        serve: false,
        behind_tls: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--orders" => args.orders = value()?.replace('_', "").parse()?,
            "--destination" => args.destination = Some(value()?),
            "--concurrency" => args.concurrency = value()?.parse()?,
            "--host-latency" => {
                let v = value()?;
                let parts: Vec<&str> = v.split(',').collect();
                let [base, per, conc] = parts[..] else {
                    bail!("--host-latency takes BASE_MS,PER_RECORD_MS,CONCURRENT, got {v:?}");
                };
                args.host_latency = Some((base.parse()?, per.parse()?, conc.parse()?));
            }
            "--cli" => args.cli = true,
            "--again" => args.again = true,
            "--json" => args.json = true,
            "--keep" => args.keep = true,
            "--serve" => args.serve = true,
            "--behind-tls" => args.behind_tls = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if args.behind_tls && !args.serve {
        // The sync signs its requests with OAuth 1.0a on a plain-HTTP URL, which such a store ignores.
        bail!("--behind-tls serves a store to another client: use it with --serve\n{USAGE}");
    }
    Ok(args)
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1000.0)
}

/// The child: start the sandbox, say where it is on one JSON line, serve until stdin closes, then say
/// how many requests it answered.
async fn serve(args: &Args) -> Result<()> {
    let sandbox = growthflow_sandbox::Sandbox::start(growthflow_sandbox::SandboxConfig {
        woocommerce_orders: Some(args.orders),
        woocommerce_behind_tls: args.behind_tls,
        ..Default::default()
    })
    .await?;
    if let Some((base, per, conc)) = args.host_latency {
        sandbox.faults().only_platform(Some("woocommerce"));
        sandbox.faults().host_capacity(ms(base), ms(per), conc);
    }
    let store = sandbox.woocommerce();
    let hello = json!({
        "url": sandbox.woocommerce_url(),
        "consumer_key": store.consumer_key,
        "consumer_secret": store.consumer_secret,
        "orders": store.orders.len(),
        "records": store.orders.len() + store.refunds.len() + store.customers.len()
            + store.products.len() + store.coupons.len(),
    });
    println!("{hello}");
    std::io::stdout().flush()?;
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await?;
    println!("{}", json!({ "requests": sandbox.request_count() }));
    sandbox.shutdown().await;
    Ok(())
}

/// A toml basic string.
fn toml_str(s: &str) -> String {
    Value::from(s).to_string()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    if args.serve {
        return serve(&args).await;
    }

    // The sandbox, in a child process.
    let t = Instant::now();
    let mut child_args = vec![
        "--serve".to_string(),
        "--orders".into(),
        args.orders.to_string(),
    ];
    if let Some((b, p, c)) = args.host_latency {
        child_args.extend(["--host-latency".into(), format!("{b},{p},{c}")]);
    }
    let mut child = Command::new(std::env::current_exe()?)
        .args(&child_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("start the sandbox child")?;
    let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();
    let hello: Value = serde_json::from_str(&lines.next().context("the sandbox said nothing")??)?;
    let generated = t.elapsed();
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    let schema = format!(
        "bench_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp()
    );
    let destination = match &args.destination {
        None => format!("url = {}", toml_str(&format!("sqlite://{}", db.display()))),
        Some(url) if url.starts_with("sqlite:") => format!("url = {}", toml_str(url)),
        Some(url) => format!("url = {}\nschema = {}", toml_str(url), toml_str(&schema)),
    };
    // Like a user's config for one store; the client-side request rate is lifted so that what is
    // measured is growthflow's own path (the sandbox answers as fast as it can, or as slowly as
    // --host-latency says).
    let config = format!(
        "[destination]\n{destination}\n\n[sync]\nstart_date = \"2024-01-01\"\nconcurrency = {}\n\n\
         [sources.woo]\ntype = \"woocommerce\"\nurl = {}\nconsumer_key = {}\nconsumer_secret = {}\n\
         max_requests_per_second = 100000\n",
        args.concurrency,
        toml_str(hello["url"].as_str().unwrap_or_default()),
        toml_str(hello["consumer_key"].as_str().unwrap_or_default()),
        toml_str(hello["consumer_secret"].as_str().unwrap_or_default()),
    );
    let config_path = dir.path().join("growthflow.toml");
    std::fs::write(&config_path, &config)?;

    let child_cpu_before = cpu_seconds(Some(child.id()));
    let run = |config: &Path| {
        let config = config.to_path_buf();
        async move {
            if args.cli {
                run_cli(&config).await
            } else {
                run_engine(&config).await
            }
        }
    };
    let result = run(&config_path).await;
    // A scheduled run's cost: the same sync again, nothing new on the store.
    let again = match (&result, args.again) {
        (Ok(_), true) => Some(run(&config_path).await?),
        _ => None,
    };

    let child_cpu = cpu_seconds(Some(child.id()))
        .zip(child_cpu_before)
        .map(|(a, b)| a - b);
    // Ask the child for its request count, then let it go.
    drop(child.stdin.take());
    let requests = lines
        .next()
        .and_then(|l| l.ok())
        .and_then(|l| serde_json::from_str::<Value>(&l).ok())
        .and_then(|v| v["requests"].as_u64());
    let _ = child.wait();
    if args.destination.is_some() && !args.keep {
        let cfg = growthflow_cli::config::load(&config_path)?;
        if let DestinationTarget::Postgres(t) = cfg.destination.target()? {
            std::thread::spawn(move || -> Result<()> {
                let mut c = t.connect()?;
                c.batch_execute(&format!(
                    "DROP SCHEMA {} CASCADE",
                    growthflow_core::destination::postgres::quote_ident(t.schema())
                ))?;
                Ok(())
            })
            .join()
            .map_err(|_| anyhow!("the cleanup thread panicked"))??;
        }
    }
    let m = result?;
    let records = m.records as f64;
    let total = m.fetch_write + m.rebuild;
    let peak = peak_rss_bytes().unwrap_or(0);
    let dest_name = match &args.destination {
        Some(url) if !url.starts_with("sqlite:") => "postgres",
        _ => "sqlite",
    };
    let host = args
        .host_latency
        .map(|(b, p, c)| format!("{b} ms + {p} ms/record, {c} at once"))
        .unwrap_or_else(|| "none".into());
    if args.json {
        println!(
            "{}",
            json!({
                "destination": dest_name,
                "host_latency": host,
                "orders": hello["orders"],
                "records": m.records,
                "fetch_write_seconds": m.fetch_write.as_secs_f64(),
                "rebuild_seconds": m.rebuild.as_secs_f64(),
                "total_seconds": total.as_secs_f64(),
                "records_per_second": records / total.as_secs_f64(),
                "orders_per_second": hello["orders"].as_f64().unwrap_or(0.0) / total.as_secs_f64(),
                "requests": requests,
                "peak_rss_bytes": peak,
                "peak_rss_after_fetch_write_bytes": m.rss_after_fetch_write,
                "cpu_fetch_write_seconds": m.cpu_fetch_write,
                "cpu_rebuild_seconds": m.cpu_rebuild,
                "sandbox_cpu_seconds": child_cpu,
                "journey_orders": m.orders,
                "streams": streams_json(&m),
                "again": again.as_ref().map(|a| json!({
                    "fetch_write_seconds": a.fetch_write.as_secs_f64(),
                    "rebuild_seconds": a.rebuild.as_secs_f64(),
                    "records": a.records,
                    "streams": streams_json(a),
                })),
            })
        );
    } else {
        let orders = hello["orders"].as_u64().unwrap_or(0);
        println!(
            "sync_bench: {orders} WooCommerce orders ({} records) into {dest_name}",
            m.records
        );
        println!("  host latency     {host}");
        println!(
            "  sandbox          generated in {:.1} s (child process)",
            generated.as_secs_f64()
        );
        if args.cli {
            println!(
                "  growthflow sync  {:>8.2} s  (fetch + write + rebuild, one command)",
                total.as_secs_f64()
            );
        } else {
            println!(
                "  fetch + write    {:>8.2} s  {:>9.0} records/s",
                m.fetch_write.as_secs_f64(),
                records / m.fetch_write.as_secs_f64()
            );
            println!(
                "  rebuild          {:>8.2} s  {:>9.0} records/s  ({} orders in the model)",
                m.rebuild.as_secs_f64(),
                records / m.rebuild.as_secs_f64().max(1e-9),
                m.orders
            );
        }
        println!(
            "  total            {:>8.2} s  {:>9.0} records/s  {:>9.0} orders/s",
            total.as_secs_f64(),
            records / total.as_secs_f64(),
            orders as f64 / total.as_secs_f64()
        );
        println!(
            "  requests         {}",
            requests
                .map(|r| r.to_string())
                .unwrap_or_else(|| "?".into())
        );
        for (name, seconds, records, requests) in &m.streams {
            println!(
                "  stream {name:<9} {seconds:>8.2} s  {records:>9} records  {requests:>6} requests"
            );
        }
        if args.cli {
            println!("  peak RSS         {}", mib(peak));
        } else {
            println!(
                "  peak RSS         {} ({} after fetch + write)",
                mib(peak),
                mib(m.rss_after_fetch_write)
            );
            println!(
                "  CPU              {:.2} s fetch + write, {:.2} s rebuild (this process); \
                 sandbox {:.2} s",
                m.cpu_fetch_write,
                m.cpu_rebuild,
                child_cpu.unwrap_or(f64::NAN)
            );
        }
        if let Some(a) = &again {
            let per_stream: Vec<String> = a
                .streams
                .iter()
                .map(|(name, _, _, requests)| format!("{name} {requests}"))
                .collect();
            println!(
                "  again, no change {:>8.2} s  ({:.2} s fetch + write, {:.2} s rebuild; {} records; \
                 requests: {})",
                (a.fetch_write + a.rebuild).as_secs_f64(),
                a.fetch_write.as_secs_f64(),
                a.rebuild.as_secs_f64(),
                a.records,
                per_stream.join(", ")
            );
        }
    }
    Ok(())
}

/// A run's streams for `--json`.
fn streams_json(m: &Measured) -> Vec<Value> {
    m.streams
        .iter()
        .map(|(name, seconds, records, requests)| {
            json!({"stream": name, "seconds": seconds, "records": records, "requests": requests})
        })
        .collect()
}

struct Measured {
    records: u64,
    rss_after_fetch_write: u64,
    cpu_fetch_write: f64,
    cpu_rebuild: f64,
    orders: u64,
    fetch_write: Duration,
    rebuild: Duration,
    /// Per stream: name, seconds, records, requests (the engine's outcome; empty with `--cli`).
    streams: Vec<(String, f64, u64, u64)>,
}

/// What `growthflow sync` does, with the clock read between the sync and the rebuild.
async fn run_engine(config_path: &Path) -> Result<Measured> {
    let cfg = growthflow_cli::config::load(config_path)?;
    let target = cfg.destination.target()?;
    let tokens = match &target {
        DestinationTarget::Sqlite(p) => growthflow_cli::tokens::TokenStore::beside(p),
        DestinationTarget::Postgres(_) => {
            growthflow_cli::tokens::TokenStore::beside(&config_path.with_file_name("pg"))
        }
    };
    let sources = cfg
        .sources
        .iter()
        .map(|e| growthflow_cli::registry::build(e, &ClientOptions::default(), &tokens))
        .collect::<Result<Vec<_>, _>>()?;
    let t = Instant::now();
    let dest: Box<dyn Destination> = match target {
        DestinationTarget::Sqlite(p) => Box::new(SqliteDestination::open(&p)?),
        // The blocking client runs its own runtime: connect from a plain thread, as the CLI does.
        DestinationTarget::Postgres(t) => Box::new(
            std::thread::spawn(move || PostgresDestination::open(&t))
                .join()
                .map_err(|_| anyhow!("the connecting thread panicked"))??,
        ),
    };
    let writer = DatasetWriter::spawn(dest);
    let cpu0 = cpu_seconds(None).unwrap_or(0.0);
    let options = SyncOptions {
        start: cfg
            .sync
            .start_date
            .and_hms_opt(0, 0, 0)
            .context("start date")?
            .and_utc(),
        streams: Vec::new(),
        full_refresh: false,
        window: None,
        concurrency: cfg.sync.concurrency,
    };
    let outcomes = engine::run(&sources, &writer, &options, Arc::new(NoProgress)).await;
    let fetch_write = t.elapsed();
    let cpu1 = cpu_seconds(None).unwrap_or(0.0);
    let rss_after_fetch_write = peak_rss_bytes().unwrap_or(0);
    if let Some(bad) = outcomes.iter().find(|o| !o.ok()) {
        bail!("the sync failed: {bad:?}");
    }
    let records = outcomes
        .iter()
        .flat_map(|o| &o.streams)
        .map(|s| s.records)
        .sum();
    let streams = outcomes
        .iter()
        .flat_map(|o| &o.streams)
        .map(|s| (s.stream.clone(), s.seconds, s.records, s.requests))
        .collect();
    let t = Instant::now();
    let stats = writer
        .rebuild_journey(growthflow_cli::registry::mappers())
        .await?;
    writer.close().await?;
    let rebuild = t.elapsed();
    let cpu2 = cpu_seconds(None).unwrap_or(0.0);
    Ok(Measured {
        records,
        rss_after_fetch_write,
        cpu_fetch_write: cpu1 - cpu0,
        cpu_rebuild: cpu2 - cpu1,
        orders: stats.orders,
        fetch_write,
        rebuild,
        streams,
    })
}

/// `growthflow --config PATH sync --json`, in-process: one figure for the whole command.
async fn run_cli(config_path: &Path) -> Result<Measured> {
    use clap::Parser;
    let cli = growthflow_cli::cli::Cli::try_parse_from([
        "growthflow",
        "--quiet",
        "--config",
        &config_path.display().to_string(),
        "sync",
        "--json",
    ])?;
    let mut out: Vec<u8> = Vec::new();
    let t = Instant::now();
    let code = growthflow_cli::app::run(cli, &mut out).await;
    let elapsed = t.elapsed();
    let text = String::from_utf8_lossy(&out);
    if code != 0 {
        bail!("growthflow sync exited {code}: {text}");
    }
    let v: Value = serde_json::from_str(text.trim())?;
    let records = v["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["streams"].as_array().into_iter().flatten())
        .filter_map(|s| s["records"].as_u64())
        .sum();
    Ok(Measured {
        records,
        rss_after_fetch_write: 0,
        cpu_fetch_write: 0.0,
        cpu_rebuild: 0.0,
        orders: 0,
        fetch_write: elapsed,
        rebuild: Duration::ZERO,
        streams: Vec::new(),
    })
}
