//! The run history: who ran which `sync` or `backfill`, when, how it ended and what each stream did.
//!
//! A run is recorded in the dataset's `sync_runs` table (and its streams in `sync_run_streams`) when it
//! starts, as `running`, and again when it ends, so that a scheduled job can be watched with SQL alone
//! and `growthflow status` can tell "the last run failed an hour ago" from "no run since Tuesday". A run
//! killed outright stays `running` with no `finished_at`: that, too, is worth seeing. Nothing recorded
//! here is a secret: the errors are the ones `--json` already prints.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::destination::RunOwner;
use crate::engine::SourceOutcome;

/// A new run id, unique across hosts and processes and sortable by start time:
/// `20260101T120000.123456Z-1f2e-9a8b7c6d` (UTC start, process id in hex, 32 random bits in hex).
pub fn new_run_id() -> String {
    format!(
        "{}-{:x}-{:08x}",
        Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        std::process::id(),
        fastrand::u32(..)
    )
}

/// The name of this machine (or pod) for the run history: `$HOSTNAME`, else the kernel's host name,
/// else `unknown-host`. Several replicas of a scheduled job are told apart by it.
pub fn this_host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// A run as it starts: recorded `running`, with a `running` row for each stream it is about to read,
/// so that a run that never finishes still shows which sources it held up.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStart {
    /// From [`new_run_id`]: the same id the run's source locks carry.
    pub run_id: String,
    /// `sync` or `backfill`.
    pub command: String,
    /// From [`this_host`].
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The `(source, stream)` pairs it is about to read.
    pub streams: Vec<(String, String)>,
}

impl RunStart {
    /// This process's run of `command` over `streams`, starting now, with a fresh id.
    pub fn now(command: &str, streams: Vec<(String, String)>) -> RunStart {
        RunStart::of(&RunOwner::this_process(), command, streams)
    }

    /// The start of `owner`'s run: the run id its source locks name is the one the history shows.
    pub fn of(owner: &RunOwner, command: &str, streams: Vec<(String, String)>) -> RunStart {
        RunStart {
            run_id: owner.run_id.clone(),
            command: command.to_string(),
            host: owner.host.clone(),
            pid: owner.pid,
            started_at: Utc::now(),
            streams,
        }
    }
}

/// What one stream of a run did (a `sync_run_streams` row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStream {
    /// Source name.
    pub source: String,
    /// Stream name.
    pub stream: String,
    /// Records committed.
    pub records: u64,
    /// `running`, `ok`, `failed`, `interrupted` or `locked`.
    pub status: String,
    /// The `--json` `kind` of its failure, if it failed.
    pub kind: Option<String>,
    /// Why it failed or stopped.
    pub error: Option<String>,
    /// The saved cursor after the run (see [`cursor_text`]).
    pub cursor: Option<String>,
    /// HTTP requests it sent.
    pub requests: u64,
    /// Seconds it spent waiting on rate limits and backoff.
    pub waited_seconds: f64,
    /// How long it ran, in seconds.
    pub seconds: f64,
}

/// A run as it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    /// The id it started with.
    pub run_id: String,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// `ok`, `failed`, `interrupted` or `locked` (see [`run_status`]).
    pub status: String,
    /// A failure of the run itself rather than of a stream (the journey rebuild).
    pub error: Option<String>,
    /// Every stream it read.
    pub streams: Vec<RunStream>,
}

impl RunEnd {
    /// The end of run `run_id` from the engine's outcomes, now.
    pub fn from_outcomes(
        run_id: &str,
        outcomes: &[SourceOutcome],
        interrupted: bool,
        error: Option<String>,
    ) -> RunEnd {
        RunEnd {
            run_id: run_id.to_string(),
            finished_at: Utc::now(),
            status: run_status(outcomes, interrupted, error.is_some()).to_string(),
            error,
            streams: stream_results(outcomes),
        }
    }

    /// Records committed by every stream.
    pub fn records(&self) -> u64 {
        self.streams.iter().map(|s| s.records).sum()
    }
}

/// A recorded run, as `growthflow status` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Its id.
    pub run_id: String,
    /// `sync` or `backfill`.
    pub command: String,
    /// Where it ran.
    pub host: String,
    /// Its process id.
    pub pid: i64,
    /// When it started, RFC 3339 UTC.
    pub started_at: String,
    /// When it ended, RFC 3339 UTC; `None` while running or when it was killed.
    pub finished_at: Option<String>,
    /// `running`, `ok`, `failed`, `interrupted` or `locked`.
    pub status: String,
    /// Records committed by all its streams.
    pub records: u64,
    /// A failure of the run itself (the journey rebuild).
    pub error: Option<String>,
    /// Its streams, by source and stream.
    pub streams: Vec<RunStream>,
}

impl RunSummary {
    /// How long it ran, in seconds (`None` until it ended).
    pub fn seconds(&self) -> Option<f64> {
        let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok();
        let (start, end) = (
            parse(&self.started_at)?,
            parse(self.finished_at.as_deref()?)?,
        );
        Some(((end - start).num_milliseconds().max(0) as f64) / 1000.0)
    }
}

/// A run's status from its sources': `interrupted` when it was stopped by a signal; `failed` when a
/// source failed or the run itself did (`failed_itself`: the journey rebuild); `locked` when every
/// source was held by another run (nothing was read, and that is not a failure); else `ok`.
pub fn run_status(
    outcomes: &[SourceOutcome],
    interrupted: bool,
    failed_itself: bool,
) -> &'static str {
    if interrupted || outcomes.iter().any(|o| o.status == "interrupted") {
        "interrupted"
    } else if failed_itself || outcomes.iter().any(|o| o.status == "failed") {
        "failed"
    } else if !outcomes.is_empty() && outcomes.iter().all(|o| o.status == "locked") {
        "locked"
    } else {
        "ok"
    }
}

/// One [`RunStream`] per stream outcome (a source that failed before reading has a `*` stream).
pub fn stream_results(outcomes: &[SourceOutcome]) -> Vec<RunStream> {
    outcomes
        .iter()
        .flat_map(|o| {
            o.streams.iter().map(|s| RunStream {
                source: o.source.clone(),
                stream: s.stream.clone(),
                records: s.records,
                status: s.status.to_string(),
                kind: s.kind.map(str::to_string),
                error: s.error.clone(),
                cursor: s.cursor.as_ref().map(cursor_text),
                requests: s.requests,
                waited_seconds: s.waited_seconds,
                seconds: s.seconds,
            })
        })
        .collect()
}

/// A saved stream state's cursor as one value for `--json` and the run history: the state's `cursor`
/// when it is the usual `{"cursor": …}`, else the whole state (a connector's own checkpoint).
pub fn cursor_value(state: &Value) -> Value {
    match state.get("cursor") {
        Some(c) if !c.is_null() => c.clone(),
        _ => state.clone(),
    }
}

/// [`cursor_value`] as text: a string cursor as it is, anything else as JSON.
pub fn cursor_text(cursor: &Value) -> String {
    match cursor_value(cursor) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}
