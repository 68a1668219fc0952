//! The sync engine: reads streams, commits pages, owns state.
//!
//! The engine, not the connector, decides what state to save and when (the Singer SDK's rule): after a
//! page of a sorted incremental stream is committed, its highest cursor is safe to save in the same
//! transaction; an unsorted stream saves its cursor only once the whole stream is committed. A backfill
//! never writes state, so it can never move a saved cursor backwards. No saved cursor is later than the
//! run's time, and an unsorted stream's stays five minutes before its read began (`stream.rs`). A stream that fails is reported and
//! the others go on; everything committed before the failure stays.
//!
//! A sorted stream read without a saved cursor (a first sync, a full refresh, a backfill) may be read
//! as date windows side by side when its connector plans so ([`Connector::plan_windows`]); its pages
//! then carry the windows' low-water mark as checkpoint ([`crate::window`]), never the highest cursor.
//!
//! A run can be told to stop ([`StopSignal`], a deadline in [`RunControl`]): no new page is asked for,
//! what was already read is committed with its state, and the streams left unfinished say so. An
//! authentication failure stops the other streams of the same source, because they share its
//! credentials and would only fail the same way, one request each.
//!
//! With [`RunControl::locks`], a run takes each source's lock in the dataset before reading it
//! ([`crate::destination::locks`]): a source another run holds is reported `locked` (not a
//! failure), or waited for beside the others; every commit first confirms the lock, and a source
//! whose lock was lost stops at once. The locks are guards owned by [`run_with`]'s future, so they
//! are released however it ends, dropped half way included. [`rebuild_journey`] takes the
//! rebuild's lock the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::connector::{Connector, StreamDef, Window};
use crate::destination::locks::{LockSession, SourceLock, TryLock, JOURNEY};
use crate::destination::{DatasetWriter, LockHolder, RebuildStats};
use crate::error::ErrorKind;
use crate::http::{Clock, TokioClock};
use crate::model::JourneyMapper;

mod stream;
use stream::{measured, Ctx};

/// What to sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Where a stream without saved state begins.
    pub start: DateTime<Utc>,
    /// Only these streams (all when empty).
    pub streams: Vec<String>,
    /// Ignore saved state and read from `start`.
    pub full_refresh: bool,
    /// Backfill window; state is neither read nor written.
    pub window: Option<Window>,
    /// Streams read at once, across all sources.
    pub concurrency: usize,
}

/// Told about progress as pages commit (progress bars, logs).
pub trait Progress: Send + Sync {
    /// `n` more records of `source`/`stream` are committed.
    fn records(&self, source: &str, stream: &str, n: u64);
    /// A stream finished.
    fn finished(&self, source: &str, outcome: &StreamOutcome);
}

/// No progress reporting.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn records(&self, _: &str, _: &str, _: u64) {}
    fn finished(&self, _: &str, _: &StreamOutcome) {}
}

/// Why a run was told to stop before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The user asked (SIGINT, SIGTERM, or a library caller's [`StopSignal::stop`]).
    Interrupted,
    /// The run's time budget ([`RunControl::deadline`]) ran out.
    Deadline,
}

/// Tells a running sync to stop: cheap to clone, every clone stops the same run. The first reason
/// given wins, so a deadline that passes while the run is already being interrupted changes nothing.
#[derive(Debug, Clone)]
pub struct StopSignal {
    tx: Arc<watch::Sender<Option<StopReason>>>,
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal {
            tx: Arc::new(watch::channel(None).0),
        }
    }
}

impl StopSignal {
    /// A signal nobody has triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the run to stop: no new page is requested, what was read is committed.
    pub fn stop(&self, reason: StopReason) {
        self.tx.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Why the run was stopped, if it was.
    pub fn reason(&self) -> Option<StopReason> {
        *self.tx.borrow()
    }

    /// Resolves once the run is told to stop.
    pub async fn stopped(&self) -> StopReason {
        let mut rx = self.tx.subscribe();
        loop {
            if let Some(r) = *rx.borrow_and_update() {
                return r;
            }
            if rx.changed().await.is_err() {
                // Unreachable while `self` holds the sender; never resolve rather than spin.
                futures::future::pending::<()>().await;
            }
        }
    }
}

/// How a run may be cut short, and the clock it is timed on.
#[derive(Debug, Clone)]
pub struct RunControl {
    /// Triggered by the caller (the CLI wires SIGINT/SIGTERM to it).
    pub stop: StopSignal,
    /// The whole run's budget, counted on `clock` from the start of [`run_with`]. Streams still
    /// running when it passes are reported failed ("deadline passed"). The engine checks it on
    /// `clock` before asking for each page; to also cut a request or a throttle wait in flight when
    /// it passes, a caller arms a timer that calls `stop.stop(StopReason::Deadline)` (the CLI does).
    pub deadline: Option<Duration>,
    /// Times the deadline and each stream's `seconds`.
    pub clock: Arc<dyn Clock>,
    /// Take a lock on each source before reading it, so two runs on one dataset never sync the same
    /// source at once; `None`: no locks (a library caller that knows it runs alone).
    pub locks: Option<SourceLocks>,
}

/// How a run locks its sources (see [`RunControl::locks`]).
#[derive(Debug, Clone)]
pub struct SourceLocks {
    /// The run's lock session on the dataset (who this run is, and the locks' connection).
    pub session: LockSession,
    /// How long to wait for a source another run holds before skipping it as `locked` (zero: ask
    /// once). Meanwhile the sources this run could take are synced.
    pub wait: Duration,
}

/// The first pause of a run waiting for a held lock; each next pause doubles, up to
/// [`LOCK_POLL_MAX`].
pub const LOCK_POLL_FIRST: Duration = Duration::from_secs(1);

/// The longest pause between two asks for a held lock.
pub const LOCK_POLL_MAX: Duration = Duration::from_secs(5);

impl Default for RunControl {
    fn default() -> Self {
        RunControl {
            stop: StopSignal::new(),
            deadline: None,
            clock: Arc::new(TokioClock),
            locks: None,
        }
    }
}

/// How one stream went (the contract's `--json` stream object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamOutcome {
    /// Stream name.
    pub stream: String,
    /// Records committed.
    pub records: u64,
    /// `ok`, `failed`, `interrupted` (stopped by the user before it finished; what it read is
    /// committed and the next run continues from its saved state) or `locked` (another run holds
    /// its source: not read by this run, not a failure).
    pub status: &'static str,
    /// Why it failed or stopped.
    pub error: Option<String>,
    /// What kind of failure (`auth`, `config`, `throttled`, `transient`, `platform`, `decode`, `quota`,
    /// `destination`, `unreachable`, `internal`, `deadline`, `interrupted`, `locked`), so scripts can
    /// tell "fix the credentials" from
    /// "try again later"; `null` when ok.
    pub kind: Option<&'static str>,
    /// How long the stream ran, in seconds.
    pub seconds: f64,
    /// Where the next run resumes: the stream's saved state after this run (its `cursor` when it is
    /// the usual `{"cursor": …}`, else the whole state); `null` when it has none (full-refresh
    /// streams, a first run that failed).
    pub cursor: Option<Value>,
    /// HTTP requests the stream sent (retries included).
    pub requests: u64,
    /// Seconds the stream spent waiting on rate limits, pauses the platform asked for and backoff.
    pub waited_seconds: f64,
}

/// The `--json` name of an error's kind.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Transient => "transient",
        ErrorKind::Throttled => "throttled",
        ErrorKind::Auth => "auth",
        ErrorKind::Client => "platform",
        ErrorKind::Decode => "decode",
        ErrorKind::Config => "config",
        ErrorKind::Destination => "destination",
        ErrorKind::QuotaExhausted => "quota",
        ErrorKind::Unreachable => "unreachable",
        ErrorKind::Internal => "internal",
    }
}

/// How one source went (the contract's `--json` source object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceOutcome {
    /// Source name.
    pub source: String,
    /// Connector type.
    #[serde(rename = "type")]
    pub source_type: String,
    /// `ok` when every stream is ok; `interrupted` when a stream was interrupted; `locked` when
    /// another run held the source (nothing read, not a failure); else `failed`.
    pub status: &'static str,
    /// Per stream.
    pub streams: Vec<StreamOutcome>,
    /// From the start of its first stream to the end of its last, in seconds.
    pub seconds: f64,
    /// Who held the source, when `status` is `locked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_by: Option<LockHolder>,
}

impl SourceOutcome {
    /// True when every stream succeeded, or another run held the source (it syncs it).
    pub fn ok(&self) -> bool {
        self.status == "ok" || self.status == "locked"
    }
}

/// Sync `sources` into `writer`. Every source is attempted; the outcomes say which failed. Never
/// stopped early: see [`run_with`].
pub async fn run(
    sources: &[Arc<dyn Connector>],
    writer: &DatasetWriter,
    options: &SyncOptions,
    progress: Arc<dyn Progress>,
) -> Vec<SourceOutcome> {
    run_with(sources, writer, options, progress, &RunControl::default()).await
}

/// Ask for `key`'s lock again and again, with growing pauses on the run's clock, until it is taken,
/// `wait` has passed since `since`, or the run is stopped: the holder when it was not taken.
async fn wait_for_lock(
    key: &str,
    locks: &SourceLocks,
    control: &RunControl,
    since: Instant,
    wait: Duration,
    mut holder: LockHolder,
) -> crate::Result<Result<SourceLock, LockHolder>> {
    // No end (the journey lock): `since + Duration::MAX` does not fit in an `Instant`.
    let until = since.checked_add(wait);
    let mut pause = LOCK_POLL_FIRST;
    loop {
        let now = control.clock.now();
        if until.is_some_and(|u| now >= u) || control.stop.reason().is_some() {
            return Ok(Err(holder));
        }
        tracing::info!(%key, "waiting: another run holds it: {holder}");
        let nap = until.map_or(pause, |u| pause.min(u - now));
        tokio::select! {
            _ = control.clock.sleep(nap) => {}
            _ = control.stop.stopped() => return Ok(Err(holder)),
        }
        pause = (pause * 2).min(LOCK_POLL_MAX);
        match locks.session.try_lock(key).await? {
            TryLock::Taken(lock) => return Ok(Ok(lock)),
            TryLock::Held(h) => holder = h,
        }
    }
}

/// Rebuild the journey model once no other run is rebuilding it: with locks, a run that finishes
/// while another rebuilds waits for it and then rebuilds too (its own records must reach the
/// model); a held lock is asked for again on the run's clock as [`SourceLocks::wait`] is. `None`:
/// the run was stopped while waiting, and did not rebuild.
pub async fn rebuild_journey(
    writer: &DatasetWriter,
    mappers: Vec<Arc<dyn JourneyMapper>>,
    control: &RunControl,
) -> crate::Result<Option<RebuildStats>> {
    let _lock = match &control.locks {
        None => None,
        Some(locks) => match locks.session.try_lock(JOURNEY).await? {
            TryLock::Taken(lock) => Some(lock),
            TryLock::Held(holder) => {
                let since = control.clock.now();
                match wait_for_lock(JOURNEY, locks, control, since, Duration::MAX, holder).await? {
                    Ok(lock) => Some(lock),
                    Err(_) => return Ok(None),
                }
            }
        },
    };
    writer.rebuild_journey(mappers).await.map(Some)
}

/// [`run`], stoppable: through `control.stop` and `control.deadline`. Streams not finished when the
/// run stops are reported `interrupted` (a stop) or `failed` with kind `deadline`; everything read
/// before is committed with its state.
pub async fn run_with(
    sources: &[Arc<dyn Connector>],
    writer: &DatasetWriter,
    options: &SyncOptions,
    progress: Arc<dyn Progress>,
    control: &RunControl,
) -> Vec<SourceOutcome> {
    let started = control.clock.now();
    let deadline_at = control.deadline.map(|d| started + d);
    let mut outcomes: Vec<SourceOutcome> = Vec::new();
    let mut auth: Vec<Arc<watch::Sender<Option<String>>>> = Vec::new();
    // The locks this run holds: dropped (released) when this function returns or its future is
    // dropped, whatever happened.
    let mut held: Vec<Option<SourceLock>> = Vec::new();
    let mut queue: std::collections::VecDeque<Work> = std::collections::VecDeque::new();
    let mut waiting: futures::stream::FuturesUnordered<Waiting<'_>> =
        futures::stream::FuturesUnordered::new();
    for (i, c) in sources.iter().enumerate() {
        outcomes.push(SourceOutcome {
            source: c.name().to_string(),
            source_type: c.source_type().to_string(),
            status: "ok",
            streams: Vec::new(),
            seconds: 0.0,
            locked_by: None,
        });
        auth.push(Arc::new(watch::channel(None).0));
        held.push(None);
        if let Some(locks) = &control.locks {
            match locks.session.try_lock(c.name()).await {
                Ok(TryLock::Taken(lock)) => held[i] = Some(lock),
                Ok(TryLock::Held(holder)) if locks.wait.is_zero() => {
                    mark_locked(&mut outcomes[i], &**c, options, holder);
                    continue;
                }
                Ok(TryLock::Held(holder)) => {
                    let name = c.name().to_string();
                    waiting.push(Box::pin(async move {
                        let got =
                            wait_for_lock(&name, locks, control, started, locks.wait, holder).await;
                        (i, got)
                    }));
                    continue;
                }
                Err(e) => {
                    fail_source(&mut outcomes[i], format!("cannot lock the source: {e}"), &e);
                    continue;
                }
            }
        }
        start_source(i, c, writer, options, &mut outcomes[i], &mut queue).await;
    }
    let mut running: futures::stream::FuturesUnordered<
        futures::future::BoxFuture<'_, (usize, StreamOutcome, Instant, Instant)>,
    > = futures::stream::FuturesUnordered::new();
    let mut results: Vec<(usize, StreamOutcome, Instant, Instant)> = Vec::new();
    let limit = options.concurrency.max(1);
    loop {
        while running.len() < limit {
            let Some((i, c, def)) = queue.pop_front() else {
                break;
            };
            let ctx = Ctx {
                control,
                deadline_at,
                auth: Some(auth[i].clone()),
                lock: held[i].as_ref().map(SourceLock::probe),
            };
            running.push(stream_task(
                i,
                c,
                def,
                writer,
                options,
                progress.clone(),
                ctx,
            ));
        }
        if running.is_empty() && waiting.is_empty() {
            break;
        }
        tokio::select! {
            Some(r) = running.next(), if !running.is_empty() => results.push(r),
            Some((i, got)) = waiting.next(), if !waiting.is_empty() => match got {
                Ok(Ok(lock)) => {
                    held[i] = Some(lock);
                    let c = &sources[i];
                    start_source(i, c, writer, options, &mut outcomes[i], &mut queue).await;
                }
                Ok(Err(holder)) => mark_locked(&mut outcomes[i], &*sources[i], options, holder),
                Err(e) => fail_source(&mut outcomes[i], format!("cannot lock the source: {e}"), &e),
            },
        }
    }
    let mut spans: Vec<Option<(Instant, Instant)>> = vec![None; outcomes.len()];
    for (i, o, began, ended) in results {
        spans[i] = Some(match spans[i] {
            Some((b, e)) => (b.min(began), e.max(ended)),
            None => (began, ended),
        });
        if o.status == "interrupted" {
            outcomes[i].status = "interrupted";
        } else if o.status != "ok" && outcomes[i].status == "ok" {
            outcomes[i].status = "failed";
        }
        outcomes[i].streams.push(o);
    }
    for (o, span) in outcomes.iter_mut().zip(spans) {
        if let Some((began, ended)) = span {
            let d = ended.saturating_duration_since(began);
            o.seconds = (d.as_secs_f64() * 1000.0).round() / 1000.0;
        }
    }
    for o in &mut outcomes {
        let order: Vec<&'static str> = sources
            .iter()
            .find(|c| c.name() == o.source)
            .map(|c| c.streams().iter().map(|d| d.name).collect())
            .unwrap_or_default();
        o.streams.sort_by_key(|s| {
            order
                .iter()
                .position(|n| *n == s.stream)
                .unwrap_or(usize::MAX)
        });
    }
    drop(held);
    outcomes
}

/// A held source being waited for: its index, and the lock or, once the wait is over, its holder.
type Waiting<'a> =
    futures::future::BoxFuture<'a, (usize, crate::Result<Result<SourceLock, LockHolder>>)>;

/// A stream to read: its source's index, the source, the stream.
type Work = (usize, Arc<dyn Connector>, StreamDef);

/// The streams of `c` the run reads.
fn selected(c: &dyn Connector, options: &SyncOptions) -> Vec<StreamDef> {
    c.streams()
        .into_iter()
        .filter(|def| options.streams.is_empty() || options.streams.iter().any(|s| s == def.name))
        .collect()
}

/// Register source `i` and queue its streams (or fail it when it cannot be registered).
async fn start_source(
    i: usize,
    c: &Arc<dyn Connector>,
    writer: &DatasetWriter,
    options: &SyncOptions,
    outcome: &mut SourceOutcome,
    queue: &mut std::collections::VecDeque<Work>,
) {
    if let Err(e) = writer.register_source(c.name(), c.source_type()).await {
        fail_source(outcome, e.to_string(), &e);
        return;
    }
    for def in selected(&**c, options) {
        queue.push_back((i, c.clone(), def));
    }
}

fn fail_source(outcome: &mut SourceOutcome, error: String, e: &crate::Error) {
    outcome.status = "failed";
    outcome.streams.push(StreamOutcome {
        stream: "*".into(),
        records: 0,
        status: "failed",
        error: Some(error),
        kind: Some(kind_name(e.kind())),
        seconds: 0.0,
        cursor: None,
        requests: 0,
        waited_seconds: 0.0,
    });
}

/// Another run holds the source: nothing read, each stream listed as `locked`, naming the holder.
fn mark_locked(
    outcome: &mut SourceOutcome,
    c: &dyn Connector,
    options: &SyncOptions,
    holder: LockHolder,
) {
    tracing::warn!(source = %c.name(), "skipped: another run holds it: {holder}");
    let error = format!(
        "another run holds source {}: {holder}; skipped (that run syncs it)",
        c.name()
    );
    outcome.status = "locked";
    outcome.streams = selected(c, options)
        .into_iter()
        .map(|def| StreamOutcome {
            stream: def.name.to_string(),
            records: 0,
            status: "locked",
            error: Some(error.clone()),
            kind: Some("locked"),
            seconds: 0.0,
            cursor: None,
            requests: 0,
            waited_seconds: 0.0,
        })
        .collect();
    outcome.locked_by = Some(holder);
}

/// One stream's future, boxed so that the whole sync future is provably `Send` (a closure inside a
/// stream combinator trips the compiler's higher-ranked lifetime inference).
fn stream_task<'a>(
    i: usize,
    c: Arc<dyn Connector>,
    def: StreamDef,
    writer: &'a DatasetWriter,
    options: &'a SyncOptions,
    progress: Arc<dyn Progress>,
    ctx: Ctx<'a>,
) -> futures::future::BoxFuture<'a, (usize, StreamOutcome, Instant, Instant)> {
    Box::pin(async move {
        let began = ctx.control.clock.now();
        let outcome = measured(&*c, &def, writer, options, &*progress, &ctx).await;
        if outcome.kind == Some("auth") {
            if let (Some(a), Some(e)) = (&ctx.auth, &outcome.error) {
                let message = e.clone();
                a.send_if_modified(|m| {
                    if m.is_none() {
                        *m = Some(message);
                        true
                    } else {
                        false
                    }
                });
            }
        }
        progress.finished(c.name(), &outcome);
        (i, outcome, began, ctx.control.clock.now())
    })
}

/// Sync one stream of one source (never stopped early).
pub async fn sync_stream(
    connector: &dyn Connector,
    def: &StreamDef,
    writer: &DatasetWriter,
    options: &SyncOptions,
    progress: &dyn Progress,
) -> StreamOutcome {
    let control = RunControl::default();
    let ctx = Ctx {
        control: &control,
        deadline_at: None,
        auth: None,
        lock: None,
    };
    measured(connector, def, writer, options, progress, &ctx).await
}

/// A duration the way `--deadline` takes it: `90s`, `30m`, `2h`, `1h30m`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}
