//! # growthflow-ga4
//!
//! Reads a Google Analytics 4 property through the Data API v1beta (one report per day, up to five days
//! per `batchRunReports` request, a day too big for one page going on with `runReport` paged by
//! `offset`/`rowCount`) into growthflow: daily traffic by source, medium, campaign and channel group as
//! raw records, and sessions, new users, engagement, add-to-carts, checkouts and GA4's reported
//! purchases into the journey model. Each day read replaces that day's stored rows, so what GA4
//! restates — rows that vanished included — is what the dataset holds.
//!
//! The connector only says what GA4 is like — its streams ([`streams`]), its two ways of authenticating
//! ([`auth`]: a service account's RS256 JWT, or a user's refresh token), its error envelope
//! ([`policy`]), its property quotas ([`limits`]) and how its rows map ([`mapper`]). Retries, paging and
//! time are growthflow-core's.
//!
//! ```no_run
//! use growthflow_core::connector::Connector;
//! use growthflow_core::http::ClientOptions;
//! use growthflow_ga4::{Ga4, Ga4Config};
//!
//! # async fn run() -> growthflow_core::Result<()> {
//! let config = Ga4Config::with_service_account("123456789", "service-account.json");
//! let ga4 = Ga4::new("web", config, &ClientOptions::default())?;
//! ga4.check().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod limits;
pub mod mapper;
pub mod policy;
pub mod streams;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use growthflow_core::adaptive::AdaptiveLimiter;
use growthflow_core::connector::{Connector, ReadRequest, StreamDef, SyncMode};
use growthflow_core::http::{ClientOptions, HttpClient};
use growthflow_core::window::WindowPlan;
use growthflow_core::Result;

pub use config::Ga4Config;
pub use mapper::Ga4Mapper;
pub use policy::Ga4Policy;
pub use streams::stream_defs;

/// One configured GA4 property.
pub struct Ga4 {
    name: String,
    reader: Arc<streams::Reader>,
    report_names: Vec<&'static str>,
}

impl fmt::Debug for Ga4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ga4")
            .field("name", &self.name)
            .field("property", &self.reader.property)
            .field("api_base", &self.reader.api_base.as_str())
            .finish_non_exhaustive()
    }
}

impl Ga4 {
    /// Build the connector for source `name`. The config is validated and the key file read here, so a
    /// bad key fails before any request; `options` carries the clock and timeouts/retries.
    pub fn new(name: &str, config: Ga4Config, options: &ClientOptions) -> Result<Ga4> {
        config.validate(name)?;
        let property = config.property().to_string();
        let authenticator = auth::authenticator(name, config.credentials(name)?, options)?;
        let limiter = limits::concurrency(options.clock.clone());
        let client = HttpClient::builder(Arc::new(
            Ga4Policy::new(name, property.clone()).with_clock(options.clock.clone()),
        ))
        .options(options)
        .rate_limits(limits::rate_limits())
        .adaptive(limiter.clone())
        .auth(authenticator)
        .origin(&config.api_base(name)?)
        .build()?;
        // Stream names are 'static in StreamDef; a handful of report names per process is fine to leak.
        let report_names = config
            .reports
            .iter()
            .map(|r| &*Box::leak(format!("{}{}", streams::REPORT_PREFIX, r.name).into_boxed_str()))
            .collect();
        Ok(Ga4 {
            name: name.to_string(),
            reader: Arc::new(streams::Reader {
                source: name.to_string(),
                client,
                api_base: config.api_base(name)?,
                property,
                lookback_days: config.lookback_days(),
                page_size: streams::DEFAULT_PAGE_SIZE,
                reports: config.reports,
                metadata: Default::default(),
                limiter,
                largest_day: Default::default(),
                probed: Default::default(),
            }),
            report_names,
        })
    }

    /// Rows an answer may hold (default [`streams::DEFAULT_PAGE_SIZE`], 100,000; the API allows up
    /// to 250,000 a report): each day's report is paged by it and batches are sized to it. Lower it to
    /// bound memory further; tests use a few rows to page without huge fixtures.
    pub fn with_page_size(mut self, rows: u64) -> Self {
        if let Some(reader) = Arc::get_mut(&mut self.reader) {
            reader.page_size = rows.max(1);
        }
        self
    }

    /// The property's digits.
    pub fn property(&self) -> &str {
        &self.reader.property
    }

    /// The API root this connector talks to.
    pub fn api_base(&self) -> &url::Url {
        &self.reader.api_base
    }

    /// The digest of `stream`'s names that its saved state records once they are checked
    /// ([`streams::CHECKED`]): a read whose state records another one checks them again.
    pub fn checked(&self, stream: &str) -> Result<String> {
        Ok(self.reader.spec(stream)?.checked(&self.reader.property))
    }

    /// The property's adaptive concurrency limit (shared by all its streams), for progress displays
    /// and tests.
    pub fn limiter(&self) -> &Arc<AdaptiveLimiter> {
        &self.reader.limiter
    }
}

#[async_trait]
impl Connector for Ga4 {
    growthflow_core::connector_delegates! {
        source_type: mapper::SOURCE_TYPE,
        mapper: Ga4Mapper,
        read: streams::read,
        read_window: streams::read_window,
    }

    fn streams(&self) -> Vec<StreamDef> {
        let mut defs = stream_defs();
        defs.extend(self.report_names.iter().map(|name| StreamDef {
            name,
            primary_key: &["property", "date", "dimensions"],
            mode: SyncMode::Incremental {
                cursor_field: "date",
            },
            sorted: true,
            parent: None,
            description: "a user-defined GA4 report, one row per day and dimension values",
        }));
        defs
    }

    /// Reads the property's metadata and checks `traffic_daily`'s names against it: proves the
    /// credentials, the property id and the Viewer access in one cheap request.
    async fn check(&self) -> Result<()> {
        let spec = self.reader.spec(streams::TRAFFIC_DAILY)?;
        self.reader.validate(&spec).await
    }

    /// Every day is its own report, so a long first sync or backfill is read as windows of days side
    /// by side.
    async fn plan_windows(&self, request: &ReadRequest) -> Result<Option<WindowPlan>> {
        streams::plan_windows(&self.reader, request).await
    }
}
