//! The `Connector` trait: what every platform connector provides, and nothing more.
//!
//! A connector declares its streams as data ([`StreamDef`], in the manner of the Singer SDK), checks its
//! credentials, and reads one stream as a lazy stream of [`Page`]s. It does not store anything and does
//! not own state: the sync engine decides when a checkpoint is safe (after the page it covers is
//! committed) and hands the saved state back on the next run.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::Serialize;
use serde_json::Value;

use crate::model::JourneyMapper;
pub use crate::payload::Payload;
use crate::window::{Span, WindowPlan};
use crate::{Error, Result};

/// How a stream is kept up to date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum SyncMode {
    /// Read only what changed since the saved cursor.
    Incremental {
        /// The record field the cursor follows, e.g. `date_modified_gmt`.
        cursor_field: &'static str,
    },
    /// Read everything every time.
    FullRefresh,
}

/// A stream declared as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamDef {
    /// Stream name, unique within the connector.
    pub name: &'static str,
    /// Fields that identify a record.
    pub primary_key: &'static [&'static str],
    /// Incremental cursor or full refresh.
    pub mode: SyncMode,
    /// True when the platform returns records in cursor order, so that the cursor can be checkpointed
    /// after every page; otherwise only at the end of the stream.
    pub sorted: bool,
    /// A stream whose records this one is read for (e.g. refunds of orders), if any.
    pub parent: Option<&'static str>,
    /// One line for `discover`.
    pub description: &'static str,
}

impl StreamDef {
    /// The field an incremental stream's cursor follows, `None` for a full refresh: connectors that
    /// order or bound every stream by some field fall back to their platform's own for the latter.
    pub fn cursor_field(&self) -> Option<&'static str> {
        match self.mode {
            SyncMode::Incremental { cursor_field } => Some(cursor_field),
            SyncMode::FullRefresh => None,
        }
    }
}

/// One record as the platform sent it, with its identity and cursor value pulled out.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Primary key value(s), joined with `:` when composite.
    pub id: String,
    /// Cursor value (RFC 3339 UTC for times, so that text order is time order).
    pub cursor: Option<String>,
    /// The record's JSON, unknown fields included: the platform's own text where the connector
    /// passed the record through.
    pub payload: Payload,
}

/// One page of records, and optionally the state that is safe to save once they are committed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The page's records.
    pub records: Vec<Record>,
    /// A connector-defined checkpoint (e.g. GA4's last complete date). When `None`, the engine derives
    /// `{"cursor": max cursor}` for sorted incremental streams.
    pub checkpoint: Option<Value>,
    /// When set, the stream's records whose cursor equals this value are deleted before this page's
    /// records are written, in the same transaction. A connector that re-reads a whole partition (a
    /// GA4 day, restated by the platform) marks the partition's first page with it, so that rows which
    /// vanished from the partition do not linger beside its new rows.
    pub replaces: Option<String>,
}

impl Page {
    /// A page of records whose checkpoint the engine derives (the largest cursor of a sorted stream).
    pub fn new(records: Vec<Record>) -> Page {
        Page {
            records,
            checkpoint: None,
            replaces: None,
        }
    }

    /// A page carrying the connector's own checkpoint (saved verbatim once the page is committed).
    pub fn with_checkpoint(records: Vec<Record>, checkpoint: Option<Value>) -> Page {
        Page {
            records,
            checkpoint,
            replaces: None,
        }
    }

    /// This page first replaces the stream's records whose cursor is `partition` (see
    /// [`replaces`](Self::replaces)).
    pub fn replacing(mut self, partition: Option<String>) -> Page {
        self.replaces = partition;
        self
    }
}

/// A closed time window, for backfills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start.
    pub since: DateTime<Utc>,
    /// Exclusive end.
    pub until: DateTime<Utc>,
}

/// What to read.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadRequest {
    /// The stream's name.
    pub stream: String,
    /// The saved state, if any and not overridden by a full refresh.
    pub state: Option<Value>,
    /// Where to begin when there is no state (the config's `start_date`).
    pub start: DateTime<Utc>,
    /// A backfill window: read records *created* in it, ignoring state.
    pub window: Option<Window>,
}

impl ReadRequest {
    /// The `cursor` field of the saved state.
    pub fn state_cursor(&self) -> Option<&str> {
        self.state
            .as_ref()
            .and_then(|s| s.get("cursor"))
            .and_then(|c| c.as_str())
    }
}

/// The error for a stream `platform`'s connector does not have, naming the streams it has (`defs`), so
/// that a misspelt stream reads the same whichever connector it was asked of.
pub fn unknown_stream(platform: &str, stream: &str, defs: &[StreamDef]) -> Error {
    let names: Vec<&str> = defs.iter().map(|d| d.name).collect();
    Error::Internal(format!(
        "{platform} has no stream {stream:?} (streams: {})",
        names.join(", ")
    ))
}

/// A read that yields `err` and ends: a connector plans a read before its first request, and a plan
/// that cannot be made (an unknown stream, an unreadable saved state) is the read's only item.
pub fn failed_read<'a>(err: Error) -> BoxStream<'a, Result<Page>> {
    Box::pin(futures::stream::once(async move { Err(err) }))
}

/// A platform connector.
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// The connector type (`woocommerce`, `shopify`, …).
    fn source_type(&self) -> &'static str;

    /// The user's name for this source (`[sources.NAME]`), used in messages.
    fn name(&self) -> &str;

    /// The streams this connector reads.
    fn streams(&self) -> Vec<StreamDef>;

    /// Authenticate and read one small page; the error says what to fix.
    async fn check(&self) -> Result<()>;

    /// Read one stream as pages. Nothing is fetched until the stream is polled.
    fn read(&self, request: ReadRequest) -> BoxStream<'_, Result<Page>>;

    /// How this connector's records map into the journey model.
    fn mapper(&self) -> Arc<dyn JourneyMapper>;

    /// Whether to read `request` (a sorted incremental stream with no saved cursor, or a backfill) as
    /// date windows side by side, and how many (see [`crate::window`]). A connector whose API filters
    /// the stream on its cursor answers for long reads only (it may ask the API how many records the
    /// range holds); the default, and `None`, read the stream as one sequence.
    async fn plan_windows(&self, _request: &ReadRequest) -> Result<Option<WindowPlan>> {
        Ok(None)
    }

    /// Read the records of `request` whose cursor lies in `span` (for a backfill: created in it), in
    /// cursor order. Only called for plans from [`Connector::plan_windows`].
    fn read_window(&self, request: ReadRequest, _span: Span) -> BoxStream<'_, Result<Page>> {
        failed_read(Error::Other(format!(
            "{} cannot read stream {} in windows",
            self.source_type(),
            request.stream
        )))
    }
}

/// What [`connector_delegates!`](crate::connector_delegates) expands to names, so that a connector
/// crate needs no dependency of its own for it.
#[doc(hidden)]
pub mod __delegates {
    pub use futures::stream::BoxStream;
}

/// The [`Connector`] methods that every connector writes the same way, written once: `source_type`,
/// `name` (the struct's `name: String` field), `streams` (a function of the crate's `streams`
/// module), `read` and `read_window` (handing the struct's `reader: Arc<Reader>` field and the request
/// to the crate's own functions) and `mapper`. Only the declarations repeat across connectors; what a
/// stream is and how it is read stay in each connector, and `check` and `plan_windows` — whose doc
/// comments say what they prove or why a stream is windowed — are written out beside the macro.
///
/// Used inside the `#[async_trait] impl Connector for …` block; `streams` and `read_window` may be
/// left out (a connector whose streams depend on its config, one that does not read in windows).
///
/// ```ignore
/// #[async_trait]
/// impl Connector for WooCommerce {
///     growthflow_core::connector_delegates! {
///         source_type: mapper::SOURCE_TYPE,
///         mapper: WooMapper,
///         streams: stream_defs,
///         read: streams::read,
///         read_window: streams::read_window,
///     }
///
///     async fn check(&self) -> Result<()> {
///         // One cheap request that needs the permissions a sync does.
///         Ok(())
///     }
/// }
/// ```
#[macro_export]
macro_rules! connector_delegates {
    (
        source_type: $source_type:expr,
        mapper: $mapper:expr,
        $(streams: $streams:path,)?
        read: $read:path
        $(, read_window: $read_window:path)?
        $(,)?
    ) => {
        fn source_type(&self) -> &'static str {
            $source_type
        }

        fn name(&self) -> &str {
            &self.name
        }

        $(
            fn streams(&self) -> ::std::vec::Vec<$crate::connector::StreamDef> {
                $streams()
            }
        )?

        fn read(
            &self,
            request: $crate::connector::ReadRequest,
        ) -> $crate::connector::__delegates::BoxStream<'_, $crate::Result<$crate::connector::Page>> {
            $read(::std::sync::Arc::clone(&self.reader), request)
        }

        $(
            fn read_window(
                &self,
                request: $crate::connector::ReadRequest,
                span: $crate::window::Span,
            ) -> $crate::connector::__delegates::BoxStream<'_, $crate::Result<$crate::connector::Page>> {
                $read_window(::std::sync::Arc::clone(&self.reader), request, span)
            }
        )?

        fn mapper(&self) -> ::std::sync::Arc<dyn $crate::model::JourneyMapper> {
            ::std::sync::Arc::new($mapper)
        }
    };
}
