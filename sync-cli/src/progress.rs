//! Progress bars on a terminal, log lines otherwise.
//!
//! One [`MultiProgress`] per process ([`terminal`]): the bars draw on it and log lines are written
//! through it ([`crate::logging::Stderr`]), so that a log line never tears a bar and a redraw never
//! overwrites a log line.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use growthflow_core::engine::{Progress, StreamOutcome};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

static TERMINAL: OnceLock<Option<MultiProgress>> = OnceLock::new();

/// Decide once, at start, whether bars may be drawn: only when stderr is a terminal and output is not
/// `-q`. Later calls keep the first answer.
pub fn init_terminal(quiet: bool) {
    TERMINAL.get_or_init(|| (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new));
}

/// The process's bars, when stderr is a terminal (see [`init_terminal`]).
pub fn terminal() -> Option<&'static MultiProgress> {
    TERMINAL.get().and_then(Option::as_ref)
}

/// One bar per stream, counting committed records and pages, when stderr is a terminal; nothing
/// otherwise (the logs say enough).
#[derive(Debug)]
pub struct Bars {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<(String, String), (ProgressBar, u64)>>,
}

impl Bars {
    /// Bars only if stderr is a terminal and output is not quiet (nor `--json`).
    pub fn new(quiet: bool) -> Self {
        init_terminal(quiet);
        Bars {
            multi: terminal().filter(|_| !quiet).cloned(),
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Apply `f` to the bar of `source`/`stream` (made on first use) and its page count.
    fn with_bar(&self, source: &str, stream: &str, f: impl FnOnce(&ProgressBar, &mut u64)) {
        let Some(multi) = &self.multi else {
            return;
        };
        let mut bars = self.bars.lock().expect("bars lock");
        let (bar, pages) = bars
            .entry((source.to_string(), stream.to_string()))
            .or_insert_with(|| {
                let b = multi.add(ProgressBar::new_spinner());
                b.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix:<28} {human_pos:>9} records {msg:<12} {elapsed:>4}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.set_prefix(format!("{source}/{stream}"));
                b.enable_steady_tick(std::time::Duration::from_millis(120));
                (b, 0)
            });
        f(bar, pages);
    }
}

/// The bar's message after `pages` committed pages.
fn pages_message(pages: u64) -> String {
    match pages {
        1 => "1 page".to_string(),
        n => format!("{n} pages"),
    }
}

impl Progress for Bars {
    fn records(&self, source: &str, stream: &str, n: u64) {
        self.with_bar(source, stream, |bar, pages| {
            *pages += 1;
            bar.inc(n);
            bar.set_message(pages_message(*pages));
        });
    }

    fn finished(&self, source: &str, outcome: &StreamOutcome) {
        self.with_bar(source, &outcome.stream, |bar, pages| {
            let status = if outcome.status == "ok" {
                "done"
            } else {
                outcome.status
            };
            bar.finish_with_message(format!("{} {status}", pages_message(*pages)));
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_count_pages_and_records() {
        let bars = Bars {
            multi: Some(MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::hidden(),
            )),
            bars: Mutex::new(HashMap::new()),
        };
        bars.records("woo", "orders", 100);
        bars.records("woo", "orders", 40);
        bars.records("woo", "refunds", 3);
        let map = bars.bars.lock().unwrap();
        let (orders, pages) = &map[&("woo".to_string(), "orders".to_string())];
        assert_eq!((orders.position(), *pages), (140, 2));
        assert_eq!(orders.message(), "2 pages");
        let (refunds, pages) = &map[&("woo".to_string(), "refunds".to_string())];
        assert_eq!(
            (refunds.position(), *pages, refunds.message()),
            (3, 1, "1 page".into())
        );
    }
}
