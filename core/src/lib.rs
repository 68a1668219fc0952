//! # growthflow-core
//!
//! Everything the five connectors share, so that a connector only declares *what* it reads and *how its
//! platform speaks*, never how to retry, pace, page or store:
//!
//! - [`connector`]: the [`Connector`](connector::Connector) trait and its streams declared as data.
//! - [`http`]: one HTTP layer — rate limits per endpoint, classified errors, retries that honour the
//!   platform's own signals, timeouts, auth.
//! - [`auth`]: token providers (static keys, OAuth2 refresh-token grant) with secrets kept redacted.
//! - [`paginate`]: the paging styles the platforms use, as small reusable pieces.
//! - [`window`] and [`adaptive`]: long reads as date windows side by side, as many at once as the
//!   source's host sustains (AIMD on its latency, 429 and 503).
//! - [`start`]: where an incremental read starts (saved cursor less overlap and lookback), written once.
//! - [`model`] and [`channel`]: the journey model and the channel classifier; [`project`]: parsing a
//!   record's JSON into only what its mapper reads.
//! - [`destination`]: where records land (SQLite), with state committed alongside the records it covers.
//! - [`report`]: the Growth Flow report computed from the dataset.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod adaptive;
pub mod auth;
pub mod channel;
pub mod connector;
#[cfg(feature = "dataset")]
pub mod destination;
#[cfg(feature = "dataset")]
pub mod engine;
pub mod error;
pub mod extract;
pub mod http;
pub mod model;
pub mod paginate;
pub mod payload;
pub mod poll;
pub mod project;
#[cfg(feature = "dataset")]
pub mod report;
#[cfg(feature = "dataset")]
pub mod runs;
pub mod start;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod window;

pub use error::{Error, ErrorKind, Result};
