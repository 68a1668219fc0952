//! The sync engine: reads streams, commits pages, owns state.
//!
//! The engine, not the connector, decides what state to save and when (the Singer SDK's rule): after a
//! page of a sorted incremental stream is committed, its highest cursor is safe to save in the same
//! transaction; an unsorted stream saves its cursor only once the whole stream is committed. A backfill
//! never writes state, so it can never move a saved cursor backwards. A stream that fails is reported and
//! the others go on; everything committed before the failure stays.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use crate::connector::{Connector, ReadRequest, StreamDef, SyncMode, Window};
use crate::destination::{DatasetWriter, WriteBatch};

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

/// How one stream went (the contract's `--json` stream object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamOutcome {
    /// Stream name.
    pub stream: String,
    /// Records committed.
    pub records: u64,
    /// `ok` or `failed`.
    pub status: &'static str,
    /// Why it failed.
    pub error: Option<String>,
}

/// How one source went (the contract's `--json` source object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceOutcome {
    /// Source name.
    pub source: String,
    /// Connector type.
    #[serde(rename = "type")]
    pub source_type: String,
    /// `ok` when every stream is ok.
    pub status: &'static str,
    /// Per stream.
    pub streams: Vec<StreamOutcome>,
}

impl SourceOutcome {
    /// True when every stream succeeded.
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// Sync `sources` into `writer`. Every source is attempted; the outcomes say which failed.
pub async fn run(
    sources: &[Arc<dyn Connector>],
    writer: &DatasetWriter,
    options: &SyncOptions,
    progress: Arc<dyn Progress>,
) -> Vec<SourceOutcome> {
    let mut work = Vec::new();
    let mut outcomes: Vec<SourceOutcome> = Vec::new();
    for (i, c) in sources.iter().enumerate() {
        outcomes.push(SourceOutcome {
            source: c.name().to_string(),
            source_type: c.source_type().to_string(),
            status: "ok",
            streams: Vec::new(),
        });
        if let Err(e) = writer.register_source(c.name(), c.source_type()).await {
            outcomes[i].status = "failed";
            outcomes[i].streams.push(StreamOutcome {
                stream: "*".into(),
                records: 0,
                status: "failed",
                error: Some(e.to_string()),
            });
            continue;
        }
        for def in c.streams() {
            if options.streams.is_empty() || options.streams.iter().any(|s| s == def.name) {
                work.push((i, c.clone(), def));
            }
        }
    }
    // Futures are built up front and boxed so that the whole sync future is provably `Send` (a closure
    // inside `buffer_unordered` trips the compiler's higher-ranked lifetime inference).
    let tasks: Vec<futures::future::BoxFuture<'_, (usize, StreamOutcome)>> = work
        .into_iter()
        .map(|(i, c, def)| {
            let progress = progress.clone();
            let fut: futures::future::BoxFuture<'_, (usize, StreamOutcome)> =
                Box::pin(async move {
                    let outcome = sync_stream(&*c, &def, writer, options, &*progress).await;
                    progress.finished(c.name(), &outcome);
                    (i, outcome)
                });
            fut
        })
        .collect();
    let results: Vec<(usize, StreamOutcome)> = futures::stream::iter(tasks)
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    for (i, o) in results {
        if o.status != "ok" {
            outcomes[i].status = "failed";
        }
        outcomes[i].streams.push(o);
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
    outcomes
}

/// Sync one stream of one source.
pub async fn sync_stream(
    connector: &dyn Connector,
    def: &StreamDef,
    writer: &DatasetWriter,
    options: &SyncOptions,
    progress: &dyn Progress,
) -> StreamOutcome {
    let source = connector.name().to_string();
    let incremental = matches!(def.mode, SyncMode::Incremental { .. });
    let keeps_state = incremental && options.window.is_none();
    let mut records = 0u64;
    let failed = |records: u64, e: crate::Error| StreamOutcome {
        stream: def.name.to_string(),
        records,
        status: "failed",
        error: Some(e.to_string()),
    };

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
    let mut pages = connector.read(request);
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(p) => p,
            Err(e) => {
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
            None if def.sorted => max_cursor.clone(),
            None => None,
        };
        let state = if !keeps_state {
            None
        } else if let Some(cp) = page.checkpoint {
            connector_checkpoints = true;
            Some(cp)
        } else if def.sorted {
            saved_cursor = max_cursor.clone();
            max_cursor.as_ref().map(|c| json!({ "cursor": c }))
        } else {
            None
        };
        let n = page.records.len() as u64;
        let batch = WriteBatch {
            source: source.clone(),
            stream: def.name.to_string(),
            records: page.records,
            state,
            replaces: page.replaces,
        };
        if let Err(e) = writer.commit(batch).await {
            return failed(records, e);
        }
        records += n;
        progress.records(&source, def.name, n);
        if reached.is_some() {
            backfilled = reached;
        }
    }
    if keeps_state && !connector_checkpoints && max_cursor != saved_cursor {
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
    }
}
