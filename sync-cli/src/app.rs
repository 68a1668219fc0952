//! The commands. Each returns the process exit code of the contract: 0 ok, 1 a source failed, 2 bad
//! usage or config, 130/143 a sync or backfill stopped by SIGINT/SIGTERM. Results go to `out`
//! (stdout), logs and progress to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, Utc};
use growthflow_core::connector::{Connector, SyncMode, Window};
use growthflow_core::destination::locks::{LockSession, LockSettings, LockTarget};
use growthflow_core::destination::postgres::{PostgresDestination, PostgresTarget};
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::{schema_too_new, DatasetWriter, Destination, RunOwner};
use growthflow_core::engine::{
    self, RunControl, SourceLocks, SourceOutcome, StopReason, StopSignal, SyncOptions,
};
use growthflow_core::http::{ClientOptions, Clock, HttpConfig, RetryPolicy, TokioClock};
use growthflow_core::report::{build_report, Report, ReportError, ReportOptions};
use growthflow_core::runs::{RunEnd, RunStart};
use growthflow_core::time::start_of_day;
use serde_json::json;

use crate::cli::{
    BackfillArgs, Cli, Command, ReportArgs, ReportFormat, Shard, StateAction, SyncArgs,
};
use crate::config::{self, Config, ConfigError, DestinationTarget};
use crate::progress::Bars;
use crate::registry;

/// Exit codes of the contract.
pub mod exit {
    /// Everything ok.
    pub const OK: i32 = 0;
    /// A source failed (the others were still committed).
    pub const FAILED: i32 = 1;
    /// Bad usage or config.
    pub const USAGE: i32 = 2;
    /// Stopped by SIGINT (Ctrl-C): 128 + 2, the shell's convention.
    pub const INTERRUPTED: i32 = 130;
    /// Stopped by SIGTERM (systemd, Kubernetes, `kill`): 128 + 15.
    pub const TERMINATED: i32 = 143;
}

/// How long `check` waits for one answer: it is a quick look, not a sync.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// `check`'s HTTP options: one attempt, no retries, no waiting out throttles, `timeout` for the whole
/// request. A platform that accepts the connection and never answers fails `check` in `timeout`
/// instead of after minutes of retries.
pub fn check_options(timeout: Duration) -> ClientOptions {
    ClientOptions {
        clock: Arc::new(TokioClock),
        config: HttpConfig {
            connect_timeout: timeout,
            request_timeout: timeout,
            retry: RetryPolicy {
                max_retries: 0,
                max_throttle_waits: 0,
                max_wait: Duration::ZERO,
                max_total_wait: Duration::ZERO,
                ..RetryPolicy::default()
            },
            ..HttpConfig::default()
        },
    }
}

/// `sync`/`backfill`'s HTTP options: the defaults with `[sync] max_wait`, waiting on `clock`.
fn sync_options(cfg: &Config, clock: &Arc<dyn Clock>) -> ClientOptions {
    let mut options = ClientOptions::with_clock(clock.clone());
    options.config.retry.max_wait = cfg.sync.max_wait;
    // One request's waits together must leave room for the longest single wait allowed.
    options.config.retry.max_total_wait =
        options.config.retry.max_total_wait.max(cfg.sync.max_wait);
    options
}

/// Run a parsed command line, writing results to `out`.
pub async fn run(cli: Cli, out: &mut (dyn Write + Send)) -> i32 {
    run_with_clock(cli, out, Arc::new(TokioClock)).await
}

/// [`run`] with `sync` and `backfill` timed on `clock`: their HTTP waits (throttles, retries, job
/// polls), lock waits and the `--deadline` checked between pages. The end-to-end tests pass the
/// [`TestClock`](growthflow_core::http::TestClock) the sandbox's platforms run on, so a throttle is
/// waited out without waiting. The timer that cuts a request in flight at `--deadline` and the
/// `check` command stay on real time: a test clock's sleep returns at once.
pub async fn run_with_clock(cli: Cli, out: &mut (dyn Write + Send), clock: Arc<dyn Clock>) -> i32 {
    let result = match &cli.command {
        #[cfg(feature = "demo")]
        Command::Demo(args) => {
            crate::demo::demo(
                &args.dir,
                args.scale,
                args.destination.as_deref(),
                args.serve,
                &cli,
                &clock,
                out,
            )
            .await
        }
        #[cfg(not(feature = "demo"))]
        Command::Demo(_) => Err(Failure::Usage(
            "this growthflow was built without the demo (cargo feature `demo`)".into(),
        )),
        Command::Completions(args) => {
            use clap::CommandFactory;
            clap_complete::generate(args.shell, &mut Cli::command(), "growthflow", out);
            Ok(exit::OK)
        }
        Command::Init => {
            let path = config::resolve_path(cli.config.as_deref());
            crate::init::init(&path, out)
                .map(|_| exit::OK)
                .map_err(|e| Failure::Failed(format!("cannot write {}: {e}", path.display())))
        }
        Command::Report(args) => match load_config(&cli, true) {
            Ok(cfg) => report(&cfg, args, out),
            Err(e) => Err(Failure::Usage(e.to_string())),
        },
        _ => match load_config(&cli, false) {
            Ok(cfg) => dispatch(&cli, &cfg, &clock, out).await,
            Err(e) => Err(Failure::Usage(e.to_string())),
        },
    };
    match result {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            // Config errors already say so ("config error: unknown key …").
            if msg.starts_with("config error") {
                eprintln!("{msg}");
            } else {
                eprintln!("error: {msg}");
            }
            exit::USAGE
        }
        Err(Failure::Failed(msg)) => {
            eprintln!("error: {msg}");
            exit::FAILED
        }
    }
}

/// Why a command did not succeed: bad usage or config (exit 2), or a failure (exit 1).
pub(crate) enum Failure {
    Usage(String),
    Failed(String),
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Usage(e.to_string())
    }
}

pub(crate) fn io(e: std::io::Error) -> Failure {
    Failure::Failed(format!("cannot write output: {e}"))
}

/// The config file; `report` works without one (it only needs the dataset's default location).
fn load_config(cli: &Cli, optional: bool) -> Result<Config, ConfigError> {
    let path = config::resolve_path(cli.config.as_deref());
    if optional && cli.config.is_none() && !path.exists() {
        return Ok(Config::default());
    }
    config::load(&path)
}

async fn dispatch(
    cli: &Cli,
    cfg: &Config,
    clock: &Arc<dyn Clock>,
    out: &mut (dyn Write + Send),
) -> Result<i32, Failure> {
    match &cli.command {
        Command::Check(a) => check(cfg, &a.sources, out).await,
        Command::Discover(a) => discover(cfg, &a.sources, a.json, out),
        Command::Sync(a) => sync(cli, cfg, a, clock, out).await,
        Command::Backfill(a) => backfill(cli, cfg, a, clock, out).await,
        Command::State(a) => state(cfg, &a.action, out),
        Command::Status(a) => crate::status::status(cfg, a, out),
        Command::Report(_) | Command::Demo(_) | Command::Init | Command::Completions(_) => {
            unreachable!("handled in run")
        }
    }
}

pub(crate) fn build_sources(
    cfg: &Config,
    names: &[String],
    options: &ClientOptions,
) -> Result<Vec<Arc<dyn Connector>>, Failure> {
    let entries = cfg.select_sources(names)?;
    let tokens = match cfg.destination.target()? {
        DestinationTarget::Sqlite(path) => crate::tokens::TokenStore::beside(&path),
        DestinationTarget::Postgres(t) => {
            crate::tokens::TokenStore::beside(&postgres_token_dir(&t).join("dataset"))
        }
    };
    if entries.is_empty() {
        return Err(Failure::Usage(
            "no sources configured: add a [sources.NAME] table to the config file".into(),
        ));
    }
    entries
        .into_iter()
        .map(|e| registry::build(e, options, &tokens).map_err(Failure::from))
        .collect()
}

async fn check(
    cfg: &Config,
    names: &[String],
    out: &mut (dyn Write + Send),
) -> Result<i32, Failure> {
    let sources = build_sources(cfg, names, &check_options(CHECK_TIMEOUT))?;
    let results = futures::future::join_all(sources.iter().map(|s| s.check())).await;
    let mut code = exit::OK;
    for (s, r) in sources.iter().zip(results) {
        match r {
            Ok(()) => writeln!(out, "{}: ok", s.name()).map_err(io)?,
            Err(e) => {
                code = exit::FAILED;
                writeln!(out, "{}: failed: {e}", s.name()).map_err(io)?;
            }
        }
    }
    Ok(code)
}

fn discover(
    cfg: &Config,
    names: &[String],
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<i32, Failure> {
    let sources = build_sources(cfg, names, &ClientOptions::default())?;
    if as_json {
        let v = json!({ "sources": sources.iter().map(|s| json!({
            "source": s.name(),
            "type": s.source_type(),
            "streams": s.streams().iter().map(|d| json!({
                "stream": d.name,
                "primary_key": d.primary_key,
                "mode": match d.mode { SyncMode::Incremental { .. } => "incremental", SyncMode::FullRefresh => "full_refresh" },
                "cursor": match d.mode { SyncMode::Incremental { cursor_field } => Some(cursor_field), SyncMode::FullRefresh => None },
                "sorted": d.sorted,
                "description": d.description,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>() });
        writeln!(out, "{v}").map_err(io)?;
        return Ok(exit::OK);
    }
    for s in &sources {
        writeln!(out, "{} ({})", s.name(), s.source_type()).map_err(io)?;
        for d in s.streams() {
            let mode = match d.mode {
                SyncMode::Incremental { cursor_field } => format!("incremental on {cursor_field}"),
                SyncMode::FullRefresh => "full refresh".to_string(),
            };
            writeln!(
                out,
                "  {:<20} key {:<14} {}",
                d.name,
                d.primary_key.join(","),
                mode
            )
            .map_err(io)?;
        }
    }
    Ok(exit::OK)
}

/// Rotated refresh tokens of a PostgreSQL dataset never go into the dataset: they are kept on this
/// machine, in `$XDG_STATE_HOME/growthflow/<server and schema>/.growthflow-tokens/` (by default
/// `~/.local/state/…`), one folder per dataset so two datasets' sources of the same name stay apart.
fn postgres_token_dir(t: &PostgresTarget) -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .unwrap_or_else(|| PathBuf::from("."));
    let key: String = format!(
        "{}_{}",
        t.display().trim_start_matches("postgres://"),
        t.schema()
    )
    .chars()
    .map(|c| {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
            c
        } else {
            '_'
        }
    })
    .collect();
    state.join("growthflow").join(key)
}

/// A dataset-opening failure: one from a newer growthflow is bad usage (exit 2), anything else failed.
fn open_failure(what: &str, e: growthflow_core::Error) -> Failure {
    if schema_too_new(&e).is_some() {
        Failure::Usage(format!("cannot open the dataset {what}: {e}"))
    } else {
        Failure::Failed(format!("cannot open the dataset {what}: {e}"))
    }
}

/// The commands that only read the dataset refuse a missing one (exit 2) rather than create an empty
/// one and answer from it.
fn no_dataset(shown: &str) -> Failure {
    Failure::Usage(format!(
        "no dataset at {shown}: run `growthflow sync` first"
    ))
}

/// The configured dataset, SQLite or PostgreSQL, for writing; and how to name it in messages.
fn open_dataset(cfg: &Config) -> Result<(String, Box<dyn Destination>), Failure> {
    match cfg.destination.target()? {
        DestinationTarget::Sqlite(path) => {
            let dest = SqliteDestination::open(&path)
                .map_err(|e| open_failure(&path.display().to_string(), e))?;
            Ok((path.display().to_string(), Box::new(dest)))
        }
        DestinationTarget::Postgres(t) => {
            // The blocking client runs its own runtime: connect from a plain thread.
            let opened = std::thread::scope(|s| {
                s.spawn(|| PostgresDestination::open(&t))
                    .join()
                    .unwrap_or_else(|_| {
                        Err(growthflow_core::Error::destination(
                            "the connecting thread panicked",
                        ))
                    })
            });
            let shown = format!("{} (schema {})", t.display(), t.schema());
            let dest = opened.map_err(|e| open_failure(&shown, e))?;
            Ok((shown, Box::new(dest)))
        }
    }
}

/// The configured dataset for a command that only looks at it or edits its bookkeeping: a SQLite
/// file that does not exist is refused (exit 2) instead of created empty.
pub(crate) fn open_existing(cfg: &Config) -> Result<(String, Box<dyn Destination>), Failure> {
    match cfg.destination.target()? {
        DestinationTarget::Sqlite(path) if !path.exists() => {
            return Err(no_dataset(&path.display().to_string()));
        }
        DestinationTarget::Sqlite(_) => {}
        DestinationTarget::Postgres(t) => postgres_dataset_exists(&t)?,
    }
    open_dataset(cfg)
}

/// `Ok` when the PostgreSQL target holds a dataset; the "run sync first" refusal (exit 2) when its
/// schema has none. Asked from a plain thread: the blocking client may not run on the runtime's.
fn postgres_dataset_exists(t: &PostgresTarget) -> Result<(), Failure> {
    let shown = format!("{} (schema {})", t.display(), t.schema());
    let exists = std::thread::scope(|s| {
        s.spawn(|| PostgresDestination::exists(t))
            .join()
            .unwrap_or_else(|_| {
                Err(growthflow_core::Error::destination(
                    "the dataset thread panicked",
                ))
            })
    })
    .map_err(|e| open_failure(&shown, e))?;
    if exists {
        Ok(())
    } else {
        Err(no_dataset(&shown))
    }
}

/// Run `f` on the dataset from a plain thread (the blocking PostgreSQL client may not be used or
/// dropped on the async runtime's threads), closing the dataset after.
pub(crate) fn on_dataset<T: Send>(
    mut dest: Box<dyn Destination>,
    f: impl FnOnce(&mut dyn Destination) -> growthflow_core::Result<T> + Send,
) -> growthflow_core::Result<T> {
    std::thread::scope(|s| {
        s.spawn(move || {
            let result = f(dest.as_mut());
            let closed = dest.close();
            drop(dest);
            let value = result?;
            closed.map(|()| value)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(growthflow_core::Error::destination(
                "the dataset thread panicked",
            ))
        })
    })
}

/// How long ago an RFC 3339 time was, in the largest two units (`3d 4h`, `12m 5s`).
pub(crate) fn age(at: &str, now: chrono::DateTime<Utc>) -> String {
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(at) else {
        return "?".into();
    };
    let secs = (now - at.with_timezone(&Utc)).num_seconds().max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// `state show` / `state reset`.
fn state(cfg: &Config, action: &StateAction, out: &mut (dyn Write + Send)) -> Result<i32, Failure> {
    if let StateAction::Reset {
        yes: false, source, ..
    } = action
    {
        return Err(Failure::Usage(format!(
            "`state reset` makes the next sync read {source} again from [sync] start_date: add --yes \
             to do it"
        )));
    }
    let (shown, dest) = open_existing(cfg)?;
    let failed = |e: growthflow_core::Error| Failure::Failed(format!("dataset {shown}: {e}"));
    match action {
        StateAction::Show { source, json } => {
            let states = on_dataset(dest, |d| d.saved_states(source.as_deref())).map_err(failed)?;
            let now = Utc::now();
            if *json {
                let v = json!({ "states": states.iter().map(|s| json!({
                    "source": s.source,
                    "type": s.source_type,
                    "stream": s.stream,
                    "state": s.state,
                    "updated_at": s.updated_at,
                    "age_seconds": chrono::DateTime::parse_from_rfc3339(&s.updated_at)
                        .map(|at| (now - at.with_timezone(&Utc)).num_seconds().max(0))
                        .ok(),
                })).collect::<Vec<_>>() });
                writeln!(out, "{v}").map_err(io)?;
                return Ok(exit::OK);
            }
            if states.is_empty() {
                writeln!(out, "no saved state").map_err(io)?;
            }
            let mut last: Option<&str> = None;
            for s in &states {
                if last != Some(s.source.as_str()) {
                    let kind = s.source_type.as_deref().unwrap_or("type forgotten");
                    writeln!(out, "{} ({kind})", s.source).map_err(io)?;
                    last = Some(&s.source);
                }
                writeln!(
                    out,
                    "  {:<20} {:>8} ago  {}",
                    s.stream,
                    age(&s.updated_at, now),
                    s.state
                )
                .map_err(io)?;
            }
            Ok(exit::OK)
        }
        StateAction::Reset { source, stream, .. } => {
            let removed =
                on_dataset(dest, |d| d.reset_state(source, stream.as_deref())).map_err(failed)?;
            match stream {
                Some(stream) => writeln!(
                    out,
                    "{source}: the state of {stream} is forgotten ({removed} removed); the next \
                     sync reads it from [sync] start_date"
                ),
                None => writeln!(
                    out,
                    "{source}: {removed} stream states and the source's type are forgotten; the \
                     next sync reads it from [sync] start_date"
                ),
            }
            .map_err(io)?;
            Ok(exit::OK)
        }
    }
}

fn check_streams(sources: &[Arc<dyn Connector>], streams: &[String]) -> Result<(), Failure> {
    for s in streams {
        if !sources
            .iter()
            .any(|c| c.streams().iter().any(|d| d.name == s))
        {
            let known: Vec<String> = sources
                .iter()
                .flat_map(|c| c.streams().into_iter().map(|d| d.name.to_string()))
                .collect();
            return Err(Failure::Usage(format!(
                "--stream {s}: no selected source has this stream (known: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

async fn sync(
    cli: &Cli,
    cfg: &Config,
    a: &SyncArgs,
    clock: &Arc<dyn Clock>,
    out: &mut (dyn Write + Send),
) -> Result<i32, Failure> {
    let sources = build_sources(cfg, &a.sources, &sync_options(cfg, clock))?;
    check_streams(&sources, &a.streams)?;
    let sources = shard(sources, a.shard);
    let options = SyncOptions {
        start: start_of_day(cfg.sync.start_date),
        streams: a.streams.clone(),
        full_refresh: a.full_refresh,
        window: None,
        concurrency: cfg.sync.concurrency,
    };
    let flags = RunFlags {
        json: a.json,
        deadline: a.deadline,
        wait: a.wait,
        clock: clock.clone(),
    };
    run_sync(cli, cfg, "sync", &sources, &options, flags, out).await
}

/// The sources `--shard` gives this run (all of them without it).
fn shard(sources: Vec<Arc<dyn Connector>>, shard: Option<Shard>) -> Vec<Arc<dyn Connector>> {
    let Some(shard) = shard else {
        return sources;
    };
    let names: Vec<&str> = sources.iter().map(|s| s.name()).collect();
    let taken: Vec<String> = shard.take(&names).into_iter().map(String::from).collect();
    tracing::info!(
        shard = %format!("{}/{}", shard.index, shard.count),
        sources = %taken.join(","),
        "this run's shard of the sources"
    );
    sources
        .into_iter()
        .filter(|s| taken.iter().any(|t| t == s.name()))
        .collect()
}

async fn backfill(
    cli: &Cli,
    cfg: &Config,
    a: &BackfillArgs,
    clock: &Arc<dyn Clock>,
    out: &mut (dyn Write + Send),
) -> Result<i32, Failure> {
    let sources = build_sources(cfg, &a.sources, &sync_options(cfg, clock))?;
    let sources = shard(sources, a.shard);
    let until = a.until.unwrap_or_else(|| Utc::now().date_naive());
    let options = SyncOptions {
        start: start_of_day(a.since),
        streams: Vec::new(),
        full_refresh: false,
        window: Some(Window {
            since: start_of_day(a.since),
            until: start_of_day(until + Days::new(1)),
        }),
        concurrency: cfg.sync.concurrency,
    };
    let flags = RunFlags {
        json: a.json,
        deadline: a.deadline,
        wait: a.wait,
        clock: clock.clone(),
    };
    run_sync(cli, cfg, "backfill", &sources, &options, flags, out).await
}

/// `sync`/`backfill`'s flags that shape a run: `--json`, `--deadline`, `--wait`; and the clock the
/// run is timed on (real time by default).
#[derive(Debug, Clone)]
pub(crate) struct RunFlags {
    json: bool,
    deadline: Option<Duration>,
    wait: Option<Duration>,
    clock: Arc<dyn Clock>,
}

impl Default for RunFlags {
    fn default() -> Self {
        RunFlags {
            json: false,
            deadline: None,
            wait: None,
            clock: Arc::new(TokioClock),
        }
    }
}

impl RunFlags {
    /// The default flags, the run timed on `clock`.
    #[cfg(feature = "demo")]
    pub(crate) fn on(clock: Arc<dyn Clock>) -> Self {
        RunFlags {
            clock,
            ..RunFlags::default()
        }
    }
}

/// Sync into the configured dataset, rebuild the journey model, print the summary.
///
/// SIGINT/SIGTERM stop the run gracefully (no new request; what was read is committed with its
/// state; the summary is printed; exit 130/143); a second signal exits at once. An interrupted run
/// skips the journey rebuild: the user asked to stop, the rebuild can take a while on a large
/// dataset, and the next sync rebuilds the whole model from every committed record anyway. A run
/// stopped by `--deadline` still rebuilds, so the report includes what was read within the budget.
///
/// Every run is recorded in the dataset's run history (`sync_runs`): `running` when it starts, its
/// status and streams when it ends, whatever the end (see [`finish_sync`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_sync(
    cli: &Cli,
    cfg: &Config,
    command: &str,
    sources: &[Arc<dyn Connector>],
    options: &SyncOptions,
    flags: RunFlags,
    out: &mut (dyn Write + Send),
) -> Result<i32, Failure> {
    let RunFlags {
        json: as_json,
        deadline,
        wait,
        clock,
    } = flags;
    let (shown, dest) = open_dataset(cfg)?;
    let writer = DatasetWriter::spawn(dest);
    let bars = Arc::new(Bars::new(cli.quiet || as_json));
    // The run's locks on its sources and on the journey rebuild: a connection of their own, released
    // when `control` is dropped, however this function returns.
    let lock_target = match cfg.destination.target()? {
        DestinationTarget::Sqlite(path) => LockTarget::Sqlite(path),
        DestinationTarget::Postgres(t) => LockTarget::Postgres(t),
    };
    let owner = RunOwner::this_process();
    tracing::debug!(run_id = %owner.run_id, "run started");
    let session = LockSession::open(lock_target, owner.clone(), LockSettings::default())
        .await
        .map_err(|e| {
            Failure::Failed(format!("cannot open the dataset {shown} for locking: {e}"))
        })?;
    let control = RunControl {
        stop: StopSignal::new(),
        deadline,
        clock,
        locks: Some(SourceLocks {
            session,
            wait: wait.unwrap_or(Duration::ZERO),
        }),
    };
    let signalled = Arc::new(AtomicI32::new(0));
    let signals = tokio::spawn(stop_on_signals(control.stop.clone(), signalled.clone()));
    // The engine checks the deadline between pages, on the run's clock; this timer also cuts a
    // request or a wait that is in flight when the budget runs out. It counts real time whatever the
    // run's clock: a test clock's sleep returns at once and would stop every run at its start.
    let timer = deadline.map(|d| {
        let stop = control.stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            stop.stop(StopReason::Deadline);
        })
    });
    let planned: Vec<(String, String)> = sources
        .iter()
        .flat_map(|c| {
            c.streams()
                .into_iter()
                .filter(|d| {
                    options.streams.is_empty() || options.streams.iter().any(|s| s == d.name)
                })
                .map(|d| (c.name().to_string(), d.name.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let run = RunStart::of(&owner, command, planned);
    if let Err(e) = writer.record_run_start(&run).await {
        tracing::warn!(dataset = %shown, error = %e, "cannot record the run's start in sync_runs");
    }
    let outcomes = engine::run_with(sources, &writer, options, bars, &control).await;
    if let Some(timer) = timer {
        timer.abort();
    }
    let result = finish_sync(
        &writer,
        &shown,
        &run.run_id,
        &control,
        &outcomes,
        as_json,
        out,
    )
    .await;
    // Every lock is released by now (the guards are dropped); one more round trip to the lock
    // session makes sure the releases are done before the process may exit.
    if let Some(locks) = &control.locks {
        if let Err(e) = locks.session.held().await {
            tracing::warn!("cannot confirm this run's locks are released (they expire): {e}");
        }
    }
    // Close the store before returning (and so before the process exits): SQLite's write-ahead log
    // is checkpointed, and the `.db` file alone then holds everything committed.
    let closed = writer.close().await;
    signals.abort();
    result?;
    closed.map_err(|e| Failure::Failed(format!("cannot close the dataset {shown}: {e}")))?;
    let code = signalled.load(Ordering::SeqCst);
    Ok(if code != 0 {
        code
    } else if outcomes.iter().all(SourceOutcome::ok) {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// Rebuild the journey model (unless interrupted), record how the run ended in `sync_runs` (also
/// when a source or the rebuild failed) and print the summary.
async fn finish_sync(
    writer: &DatasetWriter,
    shown: &str,
    run_id: &str,
    control: &RunControl,
    outcomes: &[SourceOutcome],
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), Failure> {
    let rebuilt = if control.stop.reason() == Some(StopReason::Interrupted) {
        tracing::warn!(
            "interrupted: the journey model was not rebuilt (the next sync rebuilds it from \
             everything committed)"
        );
        Ok(())
    } else if !outcomes.is_empty() && outcomes.iter().all(|o| o.status == "locked") {
        // Nothing committed here; the runs holding the sources rebuild once they are done.
        tracing::info!(
            "every source was locked by another run: the journey model is theirs to rebuild"
        );
        Ok(())
    } else {
        match engine::rebuild_journey(writer, registry::mappers(), control).await {
            Ok(None) => {
                tracing::warn!(
                    "stopped while waiting for another run's journey rebuild: not rebuilt (the \
                     next sync rebuilds it from everything committed)"
                );
                Ok(())
            }
            Ok(Some(stats)) => {
                tracing::info!(dataset = %shown, orders = stats.orders, events = stats.events, customers = stats.customers, "journey model rebuilt");
                Ok(())
            }
            Err(e) => Err(Failure::Failed(format!(
                "rebuilding the journey model failed (the records above are committed; the next \
                 sync rebuilds it): {e}"
            ))),
        }
    };
    let interrupted = control.stop.reason() == Some(StopReason::Interrupted);
    let failure = match &rebuilt {
        Err(Failure::Failed(m) | Failure::Usage(m)) => Some(m.clone()),
        Ok(()) => None,
    };
    let end = RunEnd::from_outcomes(run_id, outcomes, interrupted, failure);
    if let Err(e) = writer.record_run_end(&end).await {
        tracing::warn!(dataset = %shown, error = %e, "cannot record the run's end in sync_runs");
    }
    // The per-stream results first, whatever the rebuild did: they say what is committed.
    print_outcomes(run_id, outcomes, as_json, out)?;
    rebuilt
}

/// The first SIGINT/SIGTERM stops the run gracefully and records its exit code (130/143); a second
/// one exits at once.
async fn stop_on_signals(stop: StopSignal, signalled: Arc<AtomicI32>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!("cannot listen for SIGINT/SIGTERM: a signal stops the run at once");
            return;
        };
        loop {
            let code = tokio::select! {
                _ = int.recv() => exit::INTERRUPTED,
                _ = term.recv() => exit::TERMINATED,
            };
            on_signal(&stop, &signalled, code);
        }
    }
    #[cfg(not(unix))]
    loop {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        on_signal(&stop, &signalled, exit::INTERRUPTED);
    }
}

fn on_signal(stop: &StopSignal, signalled: &AtomicI32, code: i32) {
    if signalled
        .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        eprintln!("stopped at once: what was committed so far is kept");
        std::process::exit(code);
    }
    eprintln!("stopping: no new requests; committing what was read (signal again to exit at once)");
    stop.stop(StopReason::Interrupted);
}

fn print_outcomes(
    run_id: &str,
    outcomes: &[SourceOutcome],
    as_json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), Failure> {
    if as_json {
        let v = json!({ "run_id": run_id, "sources": outcomes });
        writeln!(out, "{v}").map_err(io)?;
        return Ok(());
    }
    for o in outcomes {
        writeln!(out, "{} ({}): {}", o.source, o.source_type, o.status).map_err(io)?;
        if let Some(holder) = &o.locked_by {
            // Its streams all say the same: once is enough.
            writeln!(out, "  held by {holder}: skipped (that run syncs it)").map_err(io)?;
            continue;
        }
        for s in &o.streams {
            match &s.error {
                None => writeln!(out, "  {:<18} {:>9} records", s.stream, s.records),
                Some(e) => writeln!(
                    out,
                    "  {:<18} {:>9} records  {}: {e}",
                    s.stream, s.records, s.status
                ),
            }
            .map_err(io)?;
        }
    }
    Ok(())
}

fn report(cfg: &Config, a: &ReportArgs, out: &mut (dyn Write + Send)) -> Result<i32, Failure> {
    let opts = ReportOptions {
        since: a.since,
        until: a.until,
        currency: a.currency.clone(),
    };
    let r = compute_report(cfg, &opts)?;
    print_report(&r, a.format, out)?;
    Ok(exit::OK)
}

/// The report of the configured dataset, SQLite or PostgreSQL; every metric is aggregated by the
/// store itself.
pub(crate) fn compute_report(cfg: &Config, opts: &ReportOptions) -> Result<Report, Failure> {
    let failed = |e: ReportError| Failure::Failed(format!("cannot compute the report: {e}"));
    match cfg.destination.target()? {
        DestinationTarget::Sqlite(path) => {
            if !path.exists() {
                return Err(no_dataset(&path.display().to_string()));
            }
            let dest = SqliteDestination::open(&path)
                .map_err(|e| open_failure(&path.display().to_string(), e))?;
            // One read transaction: in WAL mode a snapshot, as PostgreSQL's below.
            let conn = dest.connection();
            conn.execute_batch("BEGIN")
                .map_err(|e| failed(ReportError::from(e)))?;
            let r = build_report(conn, opts).map_err(failed)?;
            conn.execute_batch("COMMIT")
                .map_err(|e| failed(ReportError::from(e)))?;
            Ok(r)
        }
        DestinationTarget::Postgres(t) => {
            postgres_dataset_exists(&t)?;
            // The blocking client runs its own runtime: open and read from a plain thread. A read-only
            // role may report; the queries share one snapshot, so a sync committing meanwhile cannot
            // make the report's sections disagree.
            let shown = format!("{} (schema {})", t.display(), t.schema());
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut client = PostgresDestination::open_for_reading(&t)
                        .map_err(|e| open_failure(&shown, e))?;
                    client
                        .batch_execute(
                            "START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
                        )
                        .map_err(|e| failed(ReportError::from(e)))?;
                    let r = build_report(&mut client, opts).map_err(failed)?;
                    client
                        .batch_execute("COMMIT")
                        .map_err(|e| failed(ReportError::from(e)))?;
                    Ok(r)
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(Failure::Failed(
                        "cannot compute the report: the reading thread panicked".into(),
                    ))
                })
            })
        }
    }
}

pub(crate) fn print_report(
    r: &Report,
    format: ReportFormat,
    out: &mut (dyn Write + Send),
) -> Result<(), Failure> {
    let text = match format {
        ReportFormat::Table => r.to_table(),
        ReportFormat::Json => r.to_json().to_string(),
        ReportFormat::Csv => r.to_csv(),
    };
    writeln!(out, "{}", text.trim_end()).map_err(io)?;
    Ok(())
}
