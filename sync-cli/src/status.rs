//! `growthflow status [SOURCE…] [--json]`: the last runs recorded in the dataset's run history and
//! where each stream stands, so that whoever looks after a scheduled job sees at a glance whether it
//! ran, how it ended and how fresh each stream is — without reading logs.

use std::io::Write;

use chrono::Utc;
use growthflow_core::destination::runs::RECENT_RUNS;
use growthflow_core::destination::SavedState;
use growthflow_core::runs::{cursor_value, RunSummary};
use serde_json::{json, Value};

use crate::app::{age, exit, io, on_dataset, open_existing, Failure};
use crate::cli::StatusArgs;
use crate::config::Config;

/// Run `status`: exit 0, or 2 when there is no dataset yet (as `report` and `state`).
pub(crate) fn status(
    cfg: &Config,
    args: &StatusArgs,
    out: &mut (dyn Write + Send),
) -> Result<i32, Failure> {
    let (shown, dest) = open_existing(cfg)?;
    let wanted = args.sources.clone();
    let (runs, states) = on_dataset(dest, move |d| {
        let runs = d.recent_runs(RECENT_RUNS, &wanted)?;
        let mut states = d.saved_states(None)?;
        if !wanted.is_empty() {
            states.retain(|s| wanted.contains(&s.source));
        }
        Ok((runs, states))
    })
    .map_err(|e| Failure::Failed(format!("dataset {shown}: {e}")))?;
    if args.json {
        writeln!(out, "{}", to_json(&runs, &states)).map_err(io)?;
    } else {
        write_tables(&runs, &states, out)?;
    }
    Ok(exit::OK)
}

fn age_seconds(at: &str, now: chrono::DateTime<Utc>) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| (now - t.with_timezone(&Utc)).num_seconds().max(0))
}

/// `{"runs":[…], "streams":[…]}`: the runs newest first, each with its streams; then each stream's
/// saved cursor, when it was saved and how long ago.
fn to_json(runs: &[RunSummary], states: &[SavedState]) -> Value {
    let now = Utc::now();
    json!({
        "runs": runs.iter().map(|r| json!({
            "run_id": r.run_id,
            "command": r.command,
            "host": r.host,
            "pid": r.pid,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "seconds": r.seconds(),
            "status": r.status,
            "records": r.records,
            "error": r.error,
            "streams": r.streams,
        })).collect::<Vec<_>>(),
        "streams": states.iter().map(|s| json!({
            "source": s.source,
            "type": s.source_type,
            "stream": s.stream,
            "cursor": cursor_value(&s.state),
            "updated_at": s.updated_at,
            "age_seconds": age_seconds(&s.updated_at, now),
        })).collect::<Vec<_>>(),
    })
}

fn duration(seconds: Option<f64>) -> String {
    let Some(s) = seconds else {
        return "-".into();
    };
    let s = s.round() as i64;
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

fn write_tables(
    runs: &[RunSummary],
    states: &[SavedState],
    out: &mut (dyn Write + Send),
) -> Result<(), Failure> {
    let now = Utc::now();
    if runs.is_empty() {
        writeln!(out, "no runs recorded yet").map_err(io)?;
    } else {
        writeln!(out, "last runs (newest first):").map_err(io)?;
        writeln!(
            out,
            "  {:<40} {:<8} {:<16} {:<20} {:>8} {:<11} {:>9}",
            "run", "command", "host", "started", "took", "status", "records"
        )
        .map_err(io)?;
        for r in runs {
            let started = r
                .started_at
                .get(..19)
                .unwrap_or(&r.started_at)
                .replace('T', " ");
            writeln!(
                out,
                "  {:<40} {:<8} {:<16} {:<20} {:>8} {:<11} {:>9}",
                r.run_id,
                r.command,
                r.host,
                started,
                duration(r.seconds()),
                r.status,
                r.records
            )
            .map_err(io)?;
            for s in r.streams.iter().filter(|s| s.error.is_some()) {
                writeln!(
                    out,
                    "      {}/{}: {} ({}): {}",
                    s.source,
                    s.stream,
                    s.status,
                    s.kind.as_deref().unwrap_or("?"),
                    s.error.as_deref().unwrap_or_default()
                )
                .map_err(io)?;
            }
            if let Some(e) = &r.error {
                writeln!(out, "      {e}").map_err(io)?;
            }
        }
    }
    writeln!(out).map_err(io)?;
    if states.is_empty() {
        writeln!(out, "no saved cursors").map_err(io)?;
        return Ok(());
    }
    writeln!(out, "streams:").map_err(io)?;
    writeln!(
        out,
        "  {:<16} {:<22} {:<32} {:>10}",
        "source", "stream", "cursor", "saved"
    )
    .map_err(io)?;
    for s in states {
        let cursor = match cursor_value(&s.state) {
            Value::String(c) => c,
            other => other.to_string(),
        };
        writeln!(
            out,
            "  {:<16} {:<22} {:<32} {:>10}",
            s.source,
            s.stream,
            cursor,
            format!("{} ago", age(&s.updated_at, now))
        )
        .map_err(io)?;
    }
    Ok(())
}
