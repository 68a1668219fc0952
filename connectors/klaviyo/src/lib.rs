//! # growthflow-klaviyo
//!
//! Reads a Klaviyo account through its JSON:API REST API (`https://a.klaviyo.com/api`, pinned
//! `revision`) into growthflow: events, metrics, profiles, campaigns, flows and lists as raw records, and
//! email engagement, product views, checkouts, orders and people into the journey model.
//!
//! The connector only says what Klaviyo is like — its streams ([`streams`]), its rate tiers
//! ([`limits`]), its two ways of authenticating ([`auth`]), its error documents and rate-limit headers
//! ([`policy`]) and how its records map ([`mapper`]). Retries, rate limiting, paging and time parsing are
//! growthflow-core's, so they behave the same for every platform.
//!
//! ```no_run
//! use futures::StreamExt;
//! use growthflow_core::connector::{Connector, ReadRequest};
//! use growthflow_core::http::ClientOptions;
//! use growthflow_klaviyo::{Klaviyo, KlaviyoConfig};
//!
//! # async fn run() -> growthflow_core::Result<()> {
//! let klaviyo = Klaviyo::new("email", KlaviyoConfig::with_api_key("pk_…"), &ClientOptions::default())?;
//! klaviyo.check().await?;
//! let mut pages = klaviyo.read(ReadRequest {
//!     stream: "events".into(),
//!     state: None,
//!     start: chrono::Utc::now() - chrono::Duration::days(7),
//!     window: None,
//! });
//! while let Some(page) = pages.next().await {
//!     for record in page?.records {
//!         println!("{} {:?}", record.id, record.cursor);
//!     }
//! }
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
use growthflow_core::auth::RotationHook;
use growthflow_core::connector::{Connector, ReadRequest};
use growthflow_core::http::{ClientOptions, HttpClient};
use growthflow_core::window::WindowPlan;
use growthflow_core::Result;

pub use config::KlaviyoConfig;
pub use mapper::KlaviyoMapper;
pub use policy::KlaviyoPolicy;
pub use streams::stream_defs;

/// One configured Klaviyo account.
pub struct Klaviyo {
    name: String,
    reader: Arc<streams::Reader>,
}

impl fmt::Debug for Klaviyo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Klaviyo")
            .field("name", &self.name)
            .field("api_base", &self.reader.api_base.as_str())
            .field("revision", &self.reader.revision)
            .finish_non_exhaustive()
    }
}

impl Klaviyo {
    /// Build the connector for source `name`. The config is validated here, so a bad key fails before any
    /// request; `options` carries the clock (tests pass a `TestClock`) and timeouts/retries. With OAuth, a
    /// rotated refresh token is only logged: use [`with_rotation_hook`](Self::with_rotation_hook) to keep it.
    pub fn new(name: &str, config: KlaviyoConfig, options: &ClientOptions) -> Result<Klaviyo> {
        Self::build(name, config, options, None)
    }

    /// [`new`](Self::new), handing every rotated OAuth refresh token to `hook` so it can be persisted
    /// (Klaviyo invalidates the old one; a hook error fails the refresh rather than losing the token).
    pub fn with_rotation_hook(
        name: &str,
        config: KlaviyoConfig,
        options: &ClientOptions,
        hook: RotationHook,
    ) -> Result<Klaviyo> {
        Self::build(name, config, options, Some(hook))
    }

    fn build(
        name: &str,
        config: KlaviyoConfig,
        options: &ClientOptions,
        hook: Option<RotationHook>,
    ) -> Result<Klaviyo> {
        config.validate(name)?;
        let credentials = config.credentials(name)?;
        let oauth = matches!(credentials, config::Credentials::OAuth { .. });
        let authenticator = auth::authenticator(name, credentials, &config.token_url(name)?, hook)?;
        let limiter = limits::concurrency(options.clock.clone());
        let client = HttpClient::builder(Arc::new(KlaviyoPolicy::new(name).oauth(oauth)))
            .options(options)
            .rate_limits(limits::rate_limits())
            .adaptive(limiter.clone())
            .auth(authenticator)
            .origin(&config.api_base(name)?)
            .build()?;
        Ok(Klaviyo {
            name: name.to_string(),
            reader: Arc::new(streams::Reader {
                client,
                api_base: config.api_base(name)?,
                revision: config.revision.trim().to_string(),
                lookback_days: config.lookback_days(),
                limiter,
                probed: Default::default(),
            }),
        })
    }

    /// The API root this connector talks to (`…/api`).
    pub fn api_base(&self) -> &url::Url {
        &self.reader.api_base
    }

    /// The `revision` header sent on every request.
    pub fn revision(&self) -> &str {
        &self.reader.revision
    }

    /// The account's adaptive concurrency limit (shared by all its streams), for progress displays
    /// and tests.
    pub fn limiter(&self) -> &Arc<AdaptiveLimiter> {
        &self.reader.limiter
    }
}

#[async_trait]
impl Connector for Klaviyo {
    growthflow_core::connector_delegates! {
        source_type: mapper::SOURCE_TYPE,
        mapper: KlaviyoMapper,
        streams: stream_defs,
        read: streams::read,
        read_window: streams::read_window,
    }

    /// One page of metrics: it proves the key, the revision and the host in one cheap request (metrics
    /// are few and take no page size). Missing scopes for other streams surface as 403s naming them.
    async fn check(&self) -> Result<()> {
        let url = self.reader.endpoint_url("metrics");
        self.reader.get(url, "metrics").await?;
        Ok(())
    }

    /// Events filter `datetime` on both sides, so a long first sync or backfill of them is read in
    /// windows; the other streams are read in sequence.
    async fn plan_windows(&self, request: &ReadRequest) -> Result<Option<WindowPlan>> {
        streams::plan_windows(&self.reader, request).await
    }
}
