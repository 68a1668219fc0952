//! One stream's read-and-commit loop: pages are read from the connector, each page's commit runs on
//! the writer thread while the next page is read, and the state that covers a page is committed with
//! it (see the rules in [`super`]).

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::{
    format_duration, kind_name, Progress, RunControl, StopReason, StreamOutcome, SyncOptions,
};
use chrono::{DateTime, Utc};

use crate::connector::{Connector, Page, ReadRequest, StreamDef, SyncMode};
use crate::destination::locks::LockProbe;
use crate::destination::{DatasetWriter, WriteBatch};
use crate::http::metrics::{metered, RequestMeter};

/// Why a stream stopped before its end without an error of its own.
pub(super) enum Halt {
    Stop(StopReason),
    /// Another stream of the same source failed authentication (its message).
    Auth(String),
    /// The run lost its lock on the source (why).
    LockLost(String),
}

/// What every stream of a run shares: the stop signal, the deadline, its source's auth failure.
pub(super) struct Ctx<'a> {
    pub(super) control: &'a RunControl,
    pub(super) deadline_at: Option<Instant>,
    pub(super) auth: Option<Arc<watch::Sender<Option<String>>>>,
    /// The run's lock on the source: confirmed before each commit, watched while reading.
    pub(super) lock: Option<LockProbe>,
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

/// [`stream_with`], with the stream's HTTP requests and waits counted (see [`crate::http::metrics`])
/// and its saved state after the run read back as its `cursor`.
pub(super) async fn measured(
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

/// Pages read while the stream's previous commit was still running, committed together as one
/// transaction once it is done: a stream read faster than it is written then commits fewer, larger
/// transactions (each commit has a fixed cost on top of its rows), and its state still goes in the
/// same transaction as the records it covers, after them.
#[derive(Default)]
struct Held {
    records: Vec<crate::connector::Record>,
    /// The newest state of the held pages (a page without one leaves the previous in place: a state
    /// stays true once more records are committed after it).
    state: Option<Value>,
    reached: Option<String>,
}

impl Held {
    /// Add a page, in reading order.
    fn push(
        &mut self,
        records: Vec<crate::connector::Record>,
        state: Option<Value>,
        reached: Option<String>,
    ) {
        if self.records.is_empty() {
            self.records = records;
        } else {
            self.records.extend(records);
        }
        if state.is_some() {
            self.state = state;
        }
        if reached.is_some() {
            self.reached = reached;
        }
    }
}

/// The most records held for one commit while the previous one runs: bounds the memory a stream's
/// read-ahead takes, two pages' worth. A held record is its JSON text (a WooCommerce order is 3-4 KB);
/// 500 measured no faster than 200 once records stopped being trees of values, so the bound stayed.
const HOLD_RECORDS: usize = 200;

async fn stream_with(
    connector: &dyn Connector,
    def: &StreamDef,
    writer: &DatasetWriter,
    options: &SyncOptions,
    progress: &dyn Progress,
    ctx: &Ctx<'_>,
) -> StreamOutcome {
    let started = ctx.control.clock.now();
    let began_utc = ctx.control.clock.utc_now();
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
            // A cursor saved in the future (by a version before the cap below) is read as now.
            Ok(s) => s.map(|s| not_after(s, ctx.control.clock.utc_now())),
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
    // any return), so a stream's state is still committed only after its records. Pages read while
    // it runs are held ([`Held`]) and handed over together once it is done.
    let mut in_flight: Option<InFlight> = None;
    let mut held: Option<Held> = None;
    // Hand `$held` to the writer as one batch (after checking the lock), leaving it in flight.
    macro_rules! submit {
        ($held:expr, $replaces:expr) => {{
            let h: Held = $held;
            // Never commit for a source whose lock is gone: another run may be syncing it now.
            if let Some(why) = ctx.lock_confirmed_lost().await {
                return halted(records, Halt::LockLost(why));
            }
            let n = h.records.len() as u64;
            let batch = WriteBatch {
                source: source.clone(),
                stream: def.name.to_string(),
                records: h.records,
                state: h.state,
                replaces: $replaces,
            };
            match writer.submit(batch).await {
                Ok(commit) => {
                    in_flight = Some(InFlight {
                        commit,
                        records: n,
                        reached: h.reached,
                    })
                }
                Err(e) => return failed(records, e),
            }
        }};
    }
    // `wait!()` waits for the commit in flight and counts its records (`wait!(reached)` also notes
    // how far a backfill got, for the paths that go on to say it); `settle!` does the same and then
    // commits the held pages too, so that everything read is committed.
    macro_rules! wait {
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
    macro_rules! settle {
        () => {
            wait!();
            if let Some(h) = held.take() {
                submit!(h, None);
                wait!();
            }
        };
        (reached) => {
            wait!(reached);
            if let Some(h) = held.take() {
                submit!(h, None);
                wait!(reached);
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
        let now = ctx.control.clock.utc_now();
        for r in &page.records {
            if let Some(c) = &r.cursor {
                let c = cursor_not_after(c, now).unwrap_or_else(|| c.clone());
                if max_cursor.as_ref().is_none_or(|m| c > *m) {
                    max_cursor = Some(c);
                }
            }
        }
        let page = Page {
            checkpoint: page.checkpoint.map(|cp| not_after(cp, now)),
            ..page
        };
        // How far a backfill got: only what the connector (or the windows) checkpoints. Its records'
        // highest cursor says nothing of it, as a backfill reads by creation date (Shopify's and
        // WooCommerce's windows) while the cursor is the modification time: a 2024 order refunded
        // last week would have told the user to resume from last week.
        let reached = match &page.checkpoint {
            Some(cp) => cp.get("cursor").and_then(Value::as_str).map(str::to_string),
            None if def.sorted && !windowed && options.window.is_none() => max_cursor.clone(),
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
        if page.replaces.is_some() {
            // Its partition's delete must not run after other pages' records of the same batch.
            settle!(reached);
            let mut alone = Held::default();
            alone.push(page.records, state, reached);
            submit!(alone, page.replaces);
            continue;
        }
        let running = in_flight.as_ref().is_some_and(|f| f.commit.running());
        let holding = held.as_ref().map_or(0, |h| h.records.len());
        if running && holding + page.records.len() <= HOLD_RECORDS {
            held.get_or_insert_with(Held::default)
                .push(page.records, state, reached);
            continue;
        }
        wait!(reached);
        let mut batch = held.take().unwrap_or_default();
        batch.push(page.records, state, reached);
        submit!(batch, None);
    }
    settle!();
    // An unsorted stream's records come in another order than their cursors (Shopify's abandoned
    // checkouts by id): one changed while the stream was read, behind the read's position, is not in
    // this read, while one changed later is, and its cursor would carry the saved state past the
    // first. So the cursor saved is no later than when the read began, less a margin for the
    // platform's clock; the next run reads those minutes again (upserts), never moving backwards.
    if !def.sorted {
        let cap = began_utc - UNSORTED_MARGIN;
        if let Some(capped) = max_cursor.as_deref().and_then(|c| cursor_not_after(c, cap)) {
            max_cursor = match &saved_cursor {
                Some(s) if *s >= capped => saved_cursor.clone(),
                _ => Some(capped),
            };
        }
    }
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

/// How far before the start of its read an unsorted stream's saved cursor stays (see `stream_with`).
const UNSORTED_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

/// A time cursor later than `now` (RFC 3339), as `now`; `None` when it is not later, or not a time.
///
/// A saved cursor is never in the future. Klaviyo takes event times up to a year ahead from whoever
/// sends the events, and a shop's clock can run fast: saved as it is, such a cursor would start every
/// later read after the records created until then, and skip them (or have the read refused, for a
/// filter on a time to come). Capped, the record is read again by each run until its time has come,
/// which is an upsert. Day cursors (reports by day, in the property's or the account's own time zone,
/// which may be a day ahead of UTC) are left as they are.
fn cursor_not_after(cursor: &str, now: DateTime<Utc>) -> Option<String> {
    let t = crate::time::parse_utc(cursor)?;
    (t > now && crate::time::parse_date(cursor).is_none()).then(|| crate::time::format_utc(now))
}

/// `state` with its `cursor` capped at `now` (see [`cursor_not_after`]).
fn not_after(mut state: Value, now: DateTime<Utc>) -> Value {
    let capped = state
        .get("cursor")
        .and_then(Value::as_str)
        .and_then(|c| cursor_not_after(c, now));
    if let (Some(c), Some(obj)) = (capped, state.as_object_mut()) {
        obj.insert("cursor".into(), Value::String(c));
    }
    state
}
