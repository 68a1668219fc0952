//! Which connector types this build knows, how to build each from its config table, and the journey
//! mappers used to rebuild the model. The one place that names every connector crate.

use std::sync::Arc;

use growthflow_core::connector::Connector;
use growthflow_core::http::ClientOptions;
use growthflow_core::model::JourneyMapper;
use secrecy::SecretString;

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
            let c = if let Some(configured) = config.refresh_token.clone() {
                let hook = rotating(entry, tokens, &configured)?;
                config.refresh_token = Some(tokens.refresh_token(&entry.name, &configured));
                growthflow_shopify::Shopify::with_rotation_hook(&entry.name, config, options, hook)
            } else {
                growthflow_shopify::Shopify::new(&entry.name, config, options)
            };
            Ok(Arc::new(c.map_err(invalid)?))
        }
        "klaviyo" => {
            let mut config: growthflow_klaviyo::KlaviyoConfig = entry.deserialize()?;
            let c = if let Some(configured) = config.refresh_token.clone() {
                let hook = rotating(entry, tokens, &configured)?;
                config.refresh_token = Some(tokens.refresh_token(&entry.name, &configured));
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

/// The rotation hook of a source whose refresh token rotates, after checking that a rotated token can
/// be saved at all: the platform invalidates the old token at each refresh, so refreshing without a
/// place to keep the new one would lock the source out. `configured` is the config's token, whose
/// fingerprint the saved tokens carry (see [`TokenStore::refresh_token`]).
fn rotating(
    entry: &SourceEntry,
    tokens: &TokenStore,
    configured: &SecretString,
) -> Result<growthflow_core::auth::RotationHook, ConfigError> {
    tokens
        .ensure_writable(&entry.name)
        .map_err(|message| ConfigError::Invalid {
            key: format!("{}.refresh_token", entry.key_path()),
            message,
        })?;
    Ok(tokens.hook(&entry.name, configured))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shop_with_refresh_token() -> crate::config::Config {
        crate::config::parse(
            r#"
[sources.shop]
type = "shopify"
shop = "acme"
client_id = "app"
client_secret = "shpss_secret"
refresh_token = "shprt_configured"
"#,
            &|_| None,
        )
        .unwrap()
    }

    /// A rotated token that cannot be saved would be lost after the platform invalidated the old one:
    /// the source fails to build, naming its refresh_token key, before any request.
    #[test]
    fn a_rotating_source_fails_before_any_refresh_when_tokens_cannot_be_saved() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_folder = dir.path().join("not-a-folder");
        std::fs::write(&not_a_folder, "").unwrap();
        let cfg = shop_with_refresh_token();
        let entry = cfg.source("shop").unwrap();
        let tokens = TokenStore::beside(&not_a_folder.join("gf.db"));
        let err = build(entry, &ClientOptions::default(), &tokens).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sources.shop.refresh_token"), "{text}");
        assert!(text.contains("cannot be saved"), "{text}");

        let tokens = TokenStore::beside(&dir.path().join("gf.db"));
        assert!(build(entry, &ClientOptions::default(), &tokens).is_ok());
    }
}
