//! # growthflow-meta-ads
//!
//! Reads a Meta (Facebook) ad account through the Marketing API (`https://graph.facebook.com`, pinned
//! Graph API version) into growthflow: daily ad-level insights, campaigns, ad sets and ads as raw
//! records, and impressions/spend plus Meta-reported purchases into the journey model.
//!
//! The connector only says what Meta is like — its streams ([`streams`]), its error codes and usage
//! headers ([`policy`]), its token ([`auth`]), its pacing ([`limits`]) and how its rows map
//! ([`mapper`]). Retries, rate limiting, paging and time parsing are growthflow-core's, so they behave
//! the same for every platform.
//!
//! ```no_run
//! use futures::StreamExt;
//! use growthflow_core::connector::{Connector, ReadRequest};
//! use growthflow_core::http::ClientOptions;
//! use growthflow_meta_ads::{MetaAds, MetaAdsConfig};
//!
//! # async fn run() -> growthflow_core::Result<()> {
//! let meta = MetaAds::new("meta", MetaAdsConfig::new("act_123456789012345", "EAAB…"), &ClientOptions::default())?;
//! meta.check().await?;
//! let mut pages = meta.read(ReadRequest {
//!     stream: "ad_insights".into(),
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

use growthflow_core::connector::Connector;
use growthflow_core::http::{ClientOptions, HttpClient};
use growthflow_core::Result;

pub use config::MetaAdsConfig;
pub use mapper::MetaAdsMapper;
pub use policy::MetaPolicy;
pub use streams::stream_defs;

/// One configured Meta ad account.
pub struct MetaAds {
    name: String,
    reader: Arc<streams::Reader>,
}

impl fmt::Debug for MetaAds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaAds")
            .field("name", &self.name)
            .field("api_base", &self.reader.api_base.as_str())
            .field("ad_account_id", &self.reader.account_id)
            .finish_non_exhaustive()
    }
}

impl MetaAds {
    /// Build the connector for source `name`. The config is validated here, so a bad key fails before
    /// any request; `options` carries the clock (tests pass a `TestClock`) and timeouts/retries.
    pub fn new(name: &str, config: MetaAdsConfig, options: &ClientOptions) -> Result<MetaAds> {
        config.validate(name)?;
        let client = HttpClient::builder(Arc::new(MetaPolicy::new(name)))
            .options(options)
            .rate_limits(limits::rate_limits())
            .auth(auth::authenticator(&config.access_token))
            .origin(&config.api_base(name)?)
            .build()?;
        Ok(MetaAds {
            name: name.to_string(),
            reader: Arc::new(streams::Reader {
                client,
                api_base: config.api_base(name)?,
                account_id: config.account_id(name)?,
                lookback_days: config.lookback_days(),
                attribution_windows: config.action_attribution_windows.clone(),
                insights_throttle: Default::default(),
            }),
        })
    }

    /// `{base_url}/{api_version}/`, the root every request is made under.
    pub fn api_base(&self) -> &url::Url {
        &self.reader.api_base
    }

    /// The ad account's numeric id (without `act_`).
    pub fn ad_account_id(&self) -> &str {
        &self.reader.account_id
    }
}

#[async_trait]
impl Connector for MetaAds {
    growthflow_core::connector_delegates! {
        source_type: mapper::SOURCE_TYPE,
        mapper: MetaAdsMapper,
        streams: stream_defs,
        read: streams::read,
    }

    /// One campaign: proves the token, its `ads_read` access to this account, the version and the host
    /// in one cheap request.
    async fn check(&self) -> Result<()> {
        let mut url = self.reader.account_url("campaigns");
        url.query_pairs_mut()
            .append_pair("fields", "id")
            .append_pair("limit", "1");
        self.reader.get("campaigns", url).await?;
        Ok(())
    }
}
