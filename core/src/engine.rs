//! The sync engine: reads streams, commits pages, owns state.
//!
//! The engine, not the connector, decides what state to save and when (the Singer SDK's rule): after a
//! page of a sorted incremental stream is committed, its highest cursor is safe to save in the same
//! transaction; an unsorted stream saves its cursor only once the whole stream is committed. A backfill
//! never writes state, so it can never move a saved cursor backwards. A stream that fails is reported and
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
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::connector::{Connector, ReadRequest, StreamDef, SyncMode, Window};
use crate::destination::locks::{LockProbe, LockSession, SourceLock, TryLock, JOURNEY};
use crate::destination::{DatasetWriter, LockHolder, RebuildStats, WriteBatch};
use crate::error::ErrorKind;
use crate::http::metrics::{metered, RequestMeter};
use crate::http::{Clock, TokioClock};
use crate::model::JourneyMapper;

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

/// Why a stream stopped before its end without an error of its own.
enum Halt {
    Stop(StopReason),
    /// Another stream of the same source failed authentication (its message).
    Auth(String),
    /// The run lost its lock on the source (why).
    LockLost(String),
}

/// What every stream of a run shares: the stop signal, the deadline, its source's auth failure.
struct Ctx<'a> {
    control: &'a RunControl,
    deadline_at: Option<Instant>,
    auth: Option<Arc<watch::Sender<Option<String>>>>,
    /// The run's lock on the source: confirmed before each commit, watched while reading.
    lock: Option<LockProbe>,
}

impl Ctx<'_> {
    /// Halted already? The deadline is checked on the clock here, so a run timed on a test clock stops
    /// between pages even though no timer fires.
    fn halted(&self) -> Option<Halt> {
        if let Some(at) = self.deadline_at {
            if self.control.clock.now() >= at {
                self.control.stop.stop(StopReason::Deadline);
            }
        }
        if let Some(r) = self.control.stop.reason() {
            return Some(Halt::Stop(r));
        }
        if let Some(m) = self.lock_lost() {
            return Some(Halt::LockLost(m));
        }
        self.auth
            .as_ref()
            .and_then(|a| a.borrow().clone())
            .map(Halt::Auth)
    }

    /// Why the run lost its lock on the source, once it did: nothing more may be committed for it.
    fn lock_lost(&self) -> Option<String> {
        self.lock.as_ref().and_then(LockProbe::lost)
    }

    /// [`Ctx::lock_lost`], after asking the lock's session to confirm it is still held.
    async fn lock_confirmed_lost(&self) -> Option<String> {
        match &self.lock {
            Some(l) => l.confirm().await,
            None => None,
        }
    }

    /// Resolves when the run is stopped or the source's auth fails (an in-flight request is dropped).
    async fn until_halted(&self) -> Halt {
        let stop = async { Halt::Stop(self.control.stop.stopped().await) };
        let auth = async {
            let Some(a) = &self.auth else {
                return futures::future::pending().await;
            };
            let mut rx = a.subscribe();
            loop {
                if let Some(m) = rx.borrow_and_update().clone() {
                    return Halt::Auth(m);
                }
                if rx.changed().await.is_err() {
                    return futures::future::pending().await;
                }
            }
        };
        let lock = async {
            let Some(mut rx) = self.lock.as_ref().map(LockProbe::watch) else {
                return futures::future::pending().await;
            };
            loop {
                if let Some(m) = rx.borrow_and_update().clone() {
                    return Halt::LockLost(m);
                }
                if rx.changed().await.is_err() {
                    return futures::future::pending().await;
                }
            }
        };
        tokio::select! {
            h = stop => h,
            h = auth => h,
            h = lock => h,
        }
    }

    fn seconds_since(&self, started: Instant) -> f64 {
        let d = self.control.clock.now().saturating_duration_since(started);
        (d.as_secs_f64() * 1000.0).round() / 1000.0
    }
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

/// [`stream_with`], with the stream's HTTP requests and waits counted (see [`crate::http::metrics`])
/// and its saved state after the run read back as its `cursor`.
async fn measured(
    connector: &dyn Connector,
    def: &StreamDef,
    writer: &DatasetWriter,
    options: &SyncOptions,
    progress: &dyn Progress,
    ctx: &Ctx<'_>,
) -> StreamOutcome {
    let meter = Arc::new(RequestMeter::default());
    let mut outcome = metered(
        meter.clone(),
        stream_with(connector, def, writer, options, progress, ctx),
    )
    .await;
    outcome.requests = meter.requests();
    outcome.waited_seconds = (meter.waited().as_secs_f64() * 1000.0).round() / 1000.0;
    if matches!(def.mode, SyncMode::Incremental { .. }) {
        // What is saved, whatever this run did: a backfill keeps the cursor it found.
        outcome.cursor = writer
            .load_state(connector.name(), def.name)
            .await
            .ok()
            .flatten()
            .map(|state| crate::runs::cursor_value(&state));
    }
    outcome
}

/// A page's commit handed to the writer and not yet known to be done.
struct InFlight {
    commit: crate::destination::Committing,
    records: u64,
    /// The cursor the page brought a backfill to.
    reached: Option<String>,
}

async fn stream_with(
    connector: &dyn Connector,
    def: &StreamDef,
    writer: &DatasetWriter,
    options: &SyncOptions,
    progress: &dyn Progress,
    ctx: &Ctx<'_>,
) -> StreamOutcome {
    let started = ctx.control.clock.now();
    let source = connector.name().to_string();
    let incremental = matches!(def.mode, SyncMode::Incremental { .. });
    let keeps_state = incremental && options.window.is_none();
    let mut records = 0u64;
    let failed = |records: u64, e: crate::Error| StreamOutcome {
        stream: def.name.to_string(),
        records,
        status: "failed",
        kind: Some(kind_name(e.kind())),
        error: Some(e.to_string()),
        seconds: ctx.seconds_since(started),
        cursor: None,
        requests: 0,
        waited_seconds: 0.0,
    };
    let halted = |records: u64, h: Halt| {
        let (status, kind, error) = match h {
            Halt::Stop(StopReason::Interrupted) => (
                "interrupted",
                "interrupted",
                format!(
                    "stopped before the stream finished; the {records} records read are \
                     committed and the next run continues from there"
                ),
            ),
            Halt::Stop(StopReason::Deadline) => (
                "failed",
                "deadline",
                format!(
                    "deadline passed: the run's --deadline of {} ran out before this stream \
                     finished; the {records} records read are committed and the next run \
                     continues from there",
                    format_duration(ctx.control.deadline.unwrap_or_default())
                ),
            ),
            Halt::Auth(message) => (
                "failed",
                "auth",
                format!("{message} (another stream of this source; not attempted)"),
            ),
            Halt::LockLost(why) => (
                "failed",
                "locked",
                format!(
                    "this run lost its lock on the source ({why}), so it stopped; the {records} \
                     records committed while it held the lock stay"
                ),
            ),
        };
        StreamOutcome {
            stream: def.name.to_string(),
            records,
            status,
            error: Some(error),
            kind: Some(kind),
            seconds: ctx.seconds_since(started),
            cursor: None,
            requests: 0,
            waited_seconds: 0.0,
        }
    };
    if let Some(h) = ctx.halted() {
        return halted(0, h);
    }

    let saved = if keeps_state && !options.full_refresh {
        match writer.load_state(&source, def.name).await {
            Ok(s) => s,
            Err(e) => return failed(0, e),
        }
    } else {
        None
    };
    let request = ReadRequest {
        stream: def.name.to_string(),
        state: saved.clone(),
        start: options.start,
        window: options.window,
    };
    let mut max_cursor: Option<String> = request.state_cursor().map(str::to_string);
    let mut saved_cursor = max_cursor.clone();
    let mut connector_checkpoints = false;
    // How far a backfill got (it saves no state): the connector's last checkpoint, or a sorted
    // stream's highest committed cursor. Told to the user when the backfill fails, so that a long one
    // stopped by a quota is continued from there rather than from its start.
    let mut backfilled: Option<String> = None;
    // A long first sync or a backfill may be read as date windows side by side; their pages then
    // carry the low-water mark as checkpoint (see `crate::window`), so the max-cursor rules below
    // must not apply to them.
    let plan = if def.sorted && incremental && request.state.is_none() {
        let planned = tokio::select! {
            biased;
            p = connector.plan_windows(&request) => p,
            h = ctx.until_halted() => return halted(0, h),
        };
        match planned {
            Ok(p) => p,
            Err(e) => return failed(0, e),
        }
    } else {
        None
    };
    let windowed = plan.is_some();
    connector_checkpoints |= windowed;
    let mut pages = match plan {
        Some(plan) => crate::window::read_windowed(connector, request, plan),
        None => connector.read(request),
    };
    // One page's commit runs on the writer thread while the next page is read: fetching and
    // writing overlap, and the commit is waited for before the next one is handed over (and before
    // any return), so a stream's state is still committed only after its records.
    let mut in_flight: Option<InFlight> = None;
    // `settle!()` waits for the commit in flight and counts its records; `settle!(reached)` also
    // notes how far a backfill got, for the paths that go on to say it.
    macro_rules! settle {
        () => {
            if let Some(f) = in_flight.take() {
                if let Err(e) = f.commit.done().await {
                    return failed(records, e);
                }
                records += f.records;
                progress.records(&source, def.name, f.records);
            }
        };
        (reached) => {
            if let Some(f) = in_flight.take() {
                if let Err(e) = f.commit.done().await {
                    return failed(records, e);
                }
                records += f.records;
                progress.records(&source, def.name, f.records);
                if f.reached.is_some() {
                    backfilled = f.reached;
                }
            }
        };
    }
    loop {
        if let Some(h) = ctx.halted() {
            settle!();
            return halted(records, h);
        }
        // A page that arrives together with a stop is still committed: it was read.
        let next = tokio::select! {
            biased;
            p = pages.next() => p,
            h = ctx.until_halted() => {
                drop(pages);
                settle!();
                return halted(records, h);
            }
        };
        let Some(page) = next else { break };
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                settle!(reached);
                tracing::warn!(%source, stream = def.name, error = %e, "stream failed");
                let mut outcome = failed(records, e);
                if let (Some(_), Some(through)) = (options.window, &backfilled) {
                    if let Some(error) = &mut outcome.error {
                        error.push_str(&format!(
                            "; this backfill committed {} through {through}: run it again from \
                             there to continue",
                            def.name
                        ));
                    }
                }
                return outcome;
            }
        };
        for r in &page.records {
            if let Some(c) = &r.cursor {
                if max_cursor.as_ref().is_none_or(|m| c > m) {
                    max_cursor = Some(c.clone());
                }
            }
        }
        let reached = match &page.checkpoint {
            Some(cp) => cp.get("cursor").and_then(Value::as_str).map(str::to_string),
            None if def.sorted && !windowed => max_cursor.clone(),
            None => None,
        };
        let state = if !keeps_state {
            None
        } else if let Some(cp) = page.checkpoint {
            connector_checkpoints = true;
            Some(cp)
        } else if def.sorted && !windowed {
            saved_cursor = max_cursor.clone();
            max_cursor.as_ref().map(|c| json!({ "cursor": c }))
        } else {
            None
        };
        settle!(reached);
        // Never commit for a source whose lock is gone: another run may be syncing it now.
        if let Some(why) = ctx.lock_confirmed_lost().await {
            return halted(records, Halt::LockLost(why));
        }
        let n = page.records.len() as u64;
        let batch = WriteBatch {
            source: source.clone(),
            stream: def.name.to_string(),
            records: page.records,
            state,
            replaces: page.replaces,
        };
        match writer.submit(batch).await {
            Ok(commit) => {
                in_flight = Some(InFlight {
                    commit,
                    records: n,
                    reached,
                })
            }
            Err(e) => return failed(records, e),
        }
    }
    settle!();
    if keeps_state && !connector_checkpoints && max_cursor != saved_cursor {
        if let Some(why) = ctx.lock_confirmed_lost().await {
            return halted(records, Halt::LockLost(why));
        }
        let batch = WriteBatch {
            source: source.clone(),
            stream: def.name.to_string(),
            records: Vec::new(),
            state: max_cursor.as_ref().map(|c| json!({ "cursor": c })),
            replaces: None,
        };
        if let Err(e) = writer.commit(batch).await {
            return failed(records, e);
        }
    }
    StreamOutcome {
        stream: def.name.to_string(),
        records,
        status: "ok",
        error: None,
        kind: None,
        seconds: ctx.seconds_since(started),
        cursor: None,
        requests: 0,
        waited_seconds: 0.0,
    }
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
