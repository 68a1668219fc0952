//! Which connector types this build knows, how to build each from its config table, and the journey
//! mappers used to rebuild the model. The one place that names every connector crate.

use std::sync::Arc;

use growthflow_core::connector::Connector;
use growthflow_core::http::ClientOptions;
use growthflow_core::model::JourneyMapper;

use crate::config::{ConfigError, SourceEntry};
use crate::tokens::TokenStore;

/// Build the connector for one configured source. Errors name the config key at fault. Sources that
/// authenticate with a rotating refresh token start from the newest one in `tokens` and save each
/// rotation there.
pub fn build(
    entry: &SourceEntry,
    options: &ClientOptions,
    tokens: &TokenStore,
) -> Result<Arc<dyn Connector>, ConfigError> {
    let invalid = |e: growthflow_core::Error| entry.connector_error(e);
    match entry.source_type.as_str() {
        "woocommerce" => {
            let config: growthflow_woocommerce::WooCommerceConfig = entry.deserialize()?;
            let c = growthflow_woocommerce::WooCommerce::new(&entry.name, config, options)
                .map_err(invalid)?;
            Ok(Arc::new(c))
        }
        "shopify" => {
            let mut config: growthflow_shopify::ShopifyConfig = entry.deserialize()?;
            let c = if config.refresh_token.is_some() {
                if let Some(saved) = tokens.load(&entry.name) {
                    config.refresh_token = Some(saved);
                }
                let hook = tokens.hook(&entry.name);
                growthflow_shopify::Shopify::with_rotation_hook(&entry.name, config, options, hook)
            } else {
                growthflow_shopify::Shopify::new(&entry.name, config, options)
            };
            Ok(Arc::new(c.map_err(invalid)?))
        }
        "klaviyo" => {
            let mut config: growthflow_klaviyo::KlaviyoConfig = entry.deserialize()?;
            let c = if config.refresh_token.is_some() {
                if let Some(saved) = tokens.load(&entry.name) {
                    config.refresh_token = Some(saved);
                }
                let hook = tokens.hook(&entry.name);
                growthflow_klaviyo::Klaviyo::with_rotation_hook(&entry.name, config, options, hook)
            } else {
                growthflow_klaviyo::Klaviyo::new(&entry.name, config, options)
            };
            Ok(Arc::new(c.map_err(invalid)?))
        }
        "meta_ads" => {
            let config: growthflow_meta_ads::MetaAdsConfig = entry.deserialize()?;
            let c = growthflow_meta_ads::MetaAds::new(&entry.name, config, options)
                .map_err(invalid)?;
            Ok(Arc::new(c))
        }
        "ga4" => {
            let config: growthflow_ga4::Ga4Config = entry.deserialize()?;
            let c = growthflow_ga4::Ga4::new(&entry.name, config, options).map_err(invalid)?;
            Ok(Arc::new(c))
        }
        other => Err(ConfigError::Invalid {
            key: format!("{}.type", entry.key_path()),
            message: format!(
                "the {other} connector is not part of this build yet (available: woocommerce, shopify, klaviyo, ga4, meta_ads)"
            ),
        }),
    }
}

/// Every journey mapper this build has, for rebuilding the model from whatever the dataset holds.
pub fn mappers() -> Vec<Arc<dyn JourneyMapper>> {
    vec![
        Arc::new(growthflow_woocommerce::WooMapper),
        Arc::new(growthflow_shopify::ShopifyMapper),
        Arc::new(growthflow_klaviyo::KlaviyoMapper),
        Arc::new(growthflow_meta_ads::MetaAdsMapper),
        Arc::new(growthflow_ga4::Ga4Mapper),
    ]
}
