//! Progress bars on a terminal, log lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use growthflow_core::engine::{Progress, StreamOutcome};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// One spinner per stream when stderr is a terminal; nothing otherwise (the logs say enough).
#[derive(Debug)]
pub struct Bars {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<(String, String), ProgressBar>>,
}

impl Bars {
    /// Bars only if stderr is a terminal and output is not quiet.
    pub fn new(quiet: bool) -> Self {
        let multi = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Bars {
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, source: &str, stream: &str) -> Option<ProgressBar> {
        let multi = self.multi.as_ref()?;
        let mut bars = self.bars.lock().expect("bars lock");
        let bar = bars
            .entry((source.to_string(), stream.to_string()))
            .or_insert_with(|| {
                let b = multi.add(ProgressBar::new_spinner());
                b.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<28} {pos:>9} records {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.set_prefix(format!("{source}/{stream}"));
                b.enable_steady_tick(std::time::Duration::from_millis(120));
                b
            });
        Some(bar.clone())
    }
}

impl Progress for Bars {
    fn records(&self, source: &str, stream: &str, n: u64) {
        if let Some(b) = self.bar(source, stream) {
            b.inc(n);
        }
    }

    fn finished(&self, source: &str, outcome: &StreamOutcome) {
        if let Some(b) = self.bar(source, &outcome.stream) {
            b.finish_with_message(if outcome.status == "ok" {
                "done"
            } else {
                outcome.status
            });
        }
        match &outcome.error {
            Some(e) if outcome.status == "interrupted" => {
                tracing::warn!(source, stream = %outcome.stream, records = outcome.records, reason = %e, "stream interrupted")
            }
            None => {
                tracing::info!(source, stream = %outcome.stream, records = outcome.records, "stream synced")
            }
            Some(e) => {
                tracing::error!(source, stream = %outcome.stream, records = outcome.records, error = %e, "stream failed")
            }
        }
    }
}
