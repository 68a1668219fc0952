//! # growthflow-woocommerce
//!
//! Reads a WooCommerce store through its REST API v3 (`/wp-json/wc/v3`) into growthflow: orders, refunds,
//! customers, products and coupons as raw records, and orders/refunds/customers into the journey model.
//!
//! The connector only says what WooCommerce is like — its streams ([`streams`]), its two authentication
//! schemes ([`auth`]), its error bodies ([`policy`]), its
//! request pacing ([`limits`]) and how its records map ([`mapper`]). Retries, rate
//! limiting, paging and time parsing are growthflow-core's, so they behave the same for every platform.
//!
//! ```no_run
//! use futures::StreamExt;
//! use growthflow_core::connector::{Connector, ReadRequest};
//! use growthflow_core::http::ClientOptions;
//! use growthflow_woocommerce::{WooCommerce, WooCommerceConfig};
//!
//! # async fn run() -> growthflow_core::Result<()> {
//! let config = WooCommerceConfig::new("https://store.example.com", "ck_…", "cs_…");
//! let woo = WooCommerce::new("woo", config, &ClientOptions::default())?;
//! woo.check().await?;
//! let mut pages = woo.read(ReadRequest {
//!     stream: "orders".into(),
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
use growthflow_core::connector::{Connector, ReadRequest};
use growthflow_core::http::{ClientOptions, HttpClient};
use growthflow_core::paginate::{param, set_query};
use growthflow_core::window::WindowPlan;
use growthflow_core::Result;

pub use auth::WooAuth;
pub use config::WooCommerceConfig;
pub use mapper::WooMapper;
pub use policy::WooPolicy;
pub use streams::stream_defs;

/// The REST API root below the site's address.
pub const API_PATH: &str = "/wp-json/wc/v3";

/// One configured WooCommerce store.
pub struct WooCommerce {
    name: String,
    reader: Arc<streams::Reader>,
}

impl fmt::Debug for WooCommerce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WooCommerce")
            .field("name", &self.name)
            .field("api_base", &self.reader.api_base.as_str())
            .finish_non_exhaustive()
    }
}

impl WooCommerce {
    /// Build the connector for source `name`. The config is validated here, so a bad key fails before any
    /// request; `options` carries the clock (tests pass a `TestClock`) and timeouts/retries.
    pub fn new(
        name: &str,
        config: WooCommerceConfig,
        options: &ClientOptions,
    ) -> Result<WooCommerce> {
        config.validate(name)?;
        let api_base = config.api_base(name)?;
        let limiter = limits::concurrency(config.max_concurrent_requests(), options.clock.clone());
        let client = HttpClient::builder(Arc::new(WooPolicy::new(name)))
            .options(options)
            .rate_limits(limits::rate_limits(config.max_requests_per_second()))
            .adaptive(limiter.clone())
            .auth(Arc::new(WooAuth::new(
                config.consumer_key.clone(),
                config.consumer_secret.clone(),
            )))
            .origin(&api_base)
            .build()?;
        Ok(WooCommerce {
            name: name.to_string(),
            reader: Arc::new(streams::Reader {
                client,
                api_base,
                per_page: config.per_page,
                lookback_days: config.lookback_days(),
                limiter,
            }),
        })
    }

    /// The REST API root this connector talks to (`…/wp-json/wc/v3`).
    pub fn api_base(&self) -> &url::Url {
        &self.reader.api_base
    }

    /// The store's adaptive concurrency limit (shared by all its streams), for progress displays and
    /// tests.
    pub fn limiter(&self) -> &Arc<AdaptiveLimiter> {
        &self.reader.limiter
    }
}

#[async_trait]
impl Connector for WooCommerce {
    growthflow_core::connector_delegates! {
        source_type: mapper::SOURCE_TYPE,
        mapper: WooMapper,
        streams: stream_defs,
        read: streams::read,
        read_window: streams::read_window,
    }

    /// One order, which needs the same read permission a sync does: a key that passes `check` can sync.
    async fn check(&self) -> Result<()> {
        let mut url = self.reader.endpoint_url("orders");
        set_query(&mut url, &[param("per_page", "1"), param("page", "1")]);
        self.reader.get_list(url, "orders").await?;
        Ok(())
    }

    /// Orders, refunds, products and coupons filter on their cursor, so a long first sync or backfill
    /// is read in windows; customers cannot be.
    async fn plan_windows(&self, request: &ReadRequest) -> Result<Option<WindowPlan>> {
        streams::plan_windows(&self.reader, request).await
    }
}
