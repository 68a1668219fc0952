//! Where logs go and how they look: stderr, as text for people or as one JSON object per line for log
//! aggregators (`--log-format json`), colour only on a terminal and never under `NO_COLOR`, and on a
//! terminal written *between* redraws of the progress bars, so that neither overwrites the other.

use std::ffi::OsStr;
use std::io::Write;

use clap::ValueEnum;
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::progress;

/// The shape of log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Lines for people: time, level, message, fields.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields.message`, the other fields), for Loki,
    /// CloudWatch, Datadog and the like.
    Json,
}

/// Colour on stderr: only on a terminal, and never when `NO_COLOR` is set to anything but the empty
/// string (<https://no-color.org>).
pub fn use_color(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// The subscriber of the `growthflow` binary: `filter`, `format`, `color`, writing to `writer`.
pub fn subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    color: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(color).finish()),
        // JSON is for machines: never colour codes inside the strings.
        LogFormat::Json => Box::new(builder.json().with_ansi(false).finish()),
    }
}

/// stderr, through the progress bars when they are drawn: each log line is written while the bars are
/// cleared, then the bars are drawn again below it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter(Vec::new())
    }
}

/// One log event, written out in one piece when dropped.
#[derive(Debug)]
pub struct LineWriter(Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.0);
        let write = || {
            let _ = std::io::stderr().lock().write_all(&line);
        };
        match progress::terminal() {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(format: LogFormat, color: bool) -> String {
        let buffer = Buffer::default();
        let writer = {
            let b = buffer.clone();
            move || b.clone()
        };
        let sub = subscriber(EnvFilter::new("info"), format, color, writer);
        tracing::subscriber::with_default(sub, || {
            tracing::info!(source = "woo", records = 12, "stream synced");
            tracing::debug!("not at info");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn json_logs_are_one_object_per_line_with_the_fields() {
        let text = logged(LogFormat::Json, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["fields"]["message"], "stream synced");
        assert_eq!(v["fields"]["source"], "woo");
        assert_eq!(v["fields"]["records"], 12);
        assert!(v["timestamp"].is_string(), "{v}");
        assert!(
            !text.contains('\u{1b}'),
            "no colour codes in JSON: {text:?}"
        );
    }

    #[test]
    fn text_logs_carry_colour_only_when_asked() {
        let plain = logged(LogFormat::Text, false);
        assert!(
            plain.contains("stream synced") && plain.contains("source=\"woo\""),
            "{plain}"
        );
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        assert!(logged(LogFormat::Text, true).contains('\u{1b}'));
    }

    #[test]
    fn no_color_turns_colour_off_on_a_terminal() {
        assert!(use_color(true, None));
        assert!(
            use_color(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!use_color(true, Some(OsStr::new("1"))));
        assert!(
            !use_color(false, None),
            "never colour into a file or a pipe"
        );
    }
}
