//! # growthflow-shopify
//!
//! Reads a Shopify shop through the GraphQL Admin API (`/admin/api/{version}/graphql.json`) into
//! growthflow: orders, customers, products and abandoned checkouts as raw records, and orders (with their
//! refunds), customers and abandoned checkouts into the journey model.
//!
//! The connector only says what Shopify is like — its streams and queries ([`streams`]), its two ways of
//! authenticating ([`auth`]), its errors ([`policy`]), its cost
//! bucket ([`limits`], [`cost`]) and how its records map
//! ([`mapper`]). Retries, pacing, paging and time parsing are growthflow-core's, so they behave the same
//! for every platform.
//!
//! ```no_run
//! use futures::StreamExt;
//! use growthflow_core::connector::{Connector, ReadRequest};
//! use growthflow_core::http::ClientOptions;
//! use growthflow_shopify::{Shopify, ShopifyConfig};
//!
//! # async fn run() -> growthflow_core::Result<()> {
//! let config = ShopifyConfig::new("acme", "shpat_…");
//! let shop = Shopify::new("shop", config, &ClientOptions::default())?;
//! shop.check().await?;
//! let mut pages = shop.read(ReadRequest {
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
pub mod bulk;
pub mod config;
pub mod cost;
pub mod install;
pub mod limits;
pub mod mapper;
pub mod policy;
pub mod streams;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use growthflow_core::auth::RotationHook;
use growthflow_core::connector::Connector;
use growthflow_core::http::{ClientOptions, HttpClient};
use growthflow_core::{Error, Result};

pub use config::ShopifyConfig;
pub use mapper::ShopifyMapper;
pub use policy::ShopifyPolicy;
pub use streams::stream_defs;

/// One configured Shopify shop.
pub struct Shopify {
    name: String,
    reader: Arc<streams::Reader>,
}

impl fmt::Debug for Shopify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shopify")
            .field("name", &self.name)
            .field("api_base", &self.reader.api_base.as_str())
            .finish_non_exhaustive()
    }
}

/// The smallest query that needs the same permission a sync does, for `check`.
const CHECK_QUERY: &str = "query Check { shop { name } orders(first: 1) { nodes { id } } }";

impl Shopify {
    /// Build the connector for source `name`. The config is validated here, so a bad key fails before any
    /// request; `options` carries the clock (tests pass a `TestClock`) and timeouts/retries.
    ///
    /// With expiring offline tokens, rotated refresh tokens are only logged; use
    /// [`with_rotation_hook`](Self::with_rotation_hook) to persist them.
    pub fn new(name: &str, config: ShopifyConfig, options: &ClientOptions) -> Result<Shopify> {
        Self::build(name, config, options, None)
    }

    /// Like [`new`](Self::new), with `on_rotate` called with every new refresh token Shopify issues
    /// (expiring offline tokens rotate on each refresh; the old one stops working once the new one is
    /// used, so it must be stored). An error from the hook fails the refresh loudly.
    pub fn with_rotation_hook(
        name: &str,
        config: ShopifyConfig,
        options: &ClientOptions,
        on_rotate: RotationHook,
    ) -> Result<Shopify> {
        Self::build(name, config, options, Some(on_rotate))
    }

    fn build(
        name: &str,
        config: ShopifyConfig,
        options: &ClientOptions,
        on_rotate: Option<RotationHook>,
    ) -> Result<Shopify> {
        config.validate(name)?;
        let api_base = config.api_base(name)?;
        let client = HttpClient::builder(Arc::new(ShopifyPolicy::new(name)))
            .options(options)
            .rate_limits(limits::rate_limits())
            .auth(Arc::new(auth::authenticator(name, &config, on_rotate)?))
            .origin(&api_base)
            .build()?;
        Ok(Shopify {
            name: name.to_string(),
            reader: Arc::new(streams::Reader {
                client,
                api_base,
                page_size: config.page_size,
                lookback_days: config.lookback_days(),
                bulk_threshold_days: config.bulk_threshold_days,
                source: name.to_string(),
                bucket: cost::CostBucket::new(),
                costs: Default::default(),
            }),
        })
    }

    /// The GraphQL endpoint this connector talks to (`…/admin/api/{version}/graphql.json`), Shopify's
    /// whole API.
    pub fn api_base(&self) -> &url::Url {
        &self.reader.api_base
    }

    /// The same URL as [`api_base`](Self::api_base), under the name GraphQL users look for.
    pub fn graphql_url(&self) -> &url::Url {
        self.api_base()
    }

    /// Run one GraphQL query with the connector's client (pacing, retries and auth included) and return
    /// the whole response body, for queries the streams do not cover.
    pub async fn graphql(&self, query: &str, variables: Value) -> Result<Value> {
        Ok(self.reader.post(query, variables).await?.1)
    }
}

#[async_trait]
impl Connector for Shopify {
    growthflow_core::connector_delegates! {
        source_type: mapper::SOURCE_TYPE,
        mapper: ShopifyMapper,
        streams: stream_defs,
        read: streams::read,
    }

    /// The shop's name and one order: the token must be valid and hold `read_orders`, so a source that
    /// passes `check` can sync its main stream.
    async fn check(&self) -> Result<()> {
        let body = self.graphql(CHECK_QUERY, json!({})).await?;
        if body.pointer("/data/shop/name").is_none() {
            return Err(Error::Decode {
                message: "Shopify answered the check query without data.shop".into(),
            });
        }
        Ok(())
    }
}
