//! The `[sources.NAME]` table of a WooCommerce source.
//!
//! Deserialised by whoever reads the config file (the CLI, or a library user with any serde format); the
//! connector only checks what serde cannot: that the URL is one we can talk to and that the numbers are
//! ones WooCommerce accepts, so that a typo fails before the first request instead of as a 400 mid-sync.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use growthflow_core::http::parse_base_url;
use growthflow_core::{Error, Result};

use crate::API_PATH;

/// How to reach one WooCommerce store.
///
/// `Debug` is safe to log: the key and secret print as `[REDACTED]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WooCommerceConfig {
    /// The site's address as WordPress knows it (`https://store.example.com`, or with a sub-folder when
    /// WordPress lives in one). The scheme matters: WooCommerce only accepts HTTP Basic over https and
    /// only OAuth 1.0a signatures over plain http, and signatures are computed over this exact URL.
    pub url: String,
    /// The REST API key's consumer key (`ck_…`), from WooCommerce › Settings › Advanced › REST API.
    pub consumer_key: SecretString,
    /// The REST API key's consumer secret (`cs_…`).
    pub consumer_secret: SecretString,
    /// Replaces `url` when set, for a proxy, the sandbox or tests: scheme, host, optional port and path
    /// prefix; `/wp-json/wc/v3` is appended after it.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Days re-read before the saved cursor on every incremental sync (default 0). WooCommerce does not
    /// restate data the way ad platforms do, but orders edited without their modification time changing
    /// (direct database writes by some plugins) are only caught by a lookback.
    #[serde(default)]
    pub lookback_days: Option<u32>,
    /// Records per page, 1 to 100 (WooCommerce's own maximum; default 100). Smaller pages help hosts
    /// whose PHP workers time out building large order pages.
    #[serde(default = "default_per_page")]
    pub per_page: u32,
    /// A fixed ceiling on requests a second, for a host or firewall known to block above it. Unset by
    /// default: WooCommerce has no limit of its own, and the adaptive concurrency limit (see
    /// [`crate::limits`]) already backs off on the host's 429, 503 and rising latency.
    #[serde(default)]
    pub max_requests_per_second: Option<u32>,
    /// The most requests in flight at once (default
    /// [`DEFAULT_CAP`](growthflow_core::adaptive::DEFAULT_CAP), 16). The adaptive limit grows up to it
    /// while the host keeps up; set 1 to read strictly one page at a time.
    #[serde(default)]
    pub max_concurrent_requests: Option<u32>,
}

/// WooCommerce's maximum page size: the fewest requests for a full read.
pub fn default_per_page() -> u32 {
    100
}

/// No lookback: the built-in one-second overlap already covers WooCommerce's exclusive date bounds.
pub fn default_lookback_days() -> u32 {
    0
}

impl WooCommerceConfig {
    /// A config with the defaults, for library use.
    pub fn new(
        url: impl Into<String>,
        consumer_key: impl Into<String>,
        consumer_secret: impl Into<String>,
    ) -> Self {
        WooCommerceConfig {
            url: url.into(),
            consumer_key: SecretString::from(consumer_key.into()),
            consumer_secret: SecretString::from(consumer_secret.into()),
            base_url: None,
            lookback_days: None,
            per_page: default_per_page(),
            max_requests_per_second: None,
            max_concurrent_requests: None,
        }
    }

    /// Days re-read before the saved cursor: every connector's config answers this one accessor.
    pub fn lookback_days(&self) -> u32 {
        self.lookback_days.unwrap_or_else(default_lookback_days)
    }

    /// Requests a second the client allows itself, when configured (no fixed pace otherwise).
    pub fn max_requests_per_second(&self) -> Option<u32> {
        self.max_requests_per_second
    }

    /// The ceiling of the adaptive concurrency limit.
    pub fn max_concurrent_requests(&self) -> usize {
        self.max_concurrent_requests
            .map_or(growthflow_core::adaptive::DEFAULT_CAP, |n| n as usize)
    }

    /// Check everything serde could not, naming the key at fault as `sources.<source>.<key>`.
    pub fn validate(&self, source: &str) -> Result<()> {
        self.api_base(source)?;
        let key = |k: &str| format!("sources.{source}.{k}");
        if self.consumer_key.expose_secret().trim().is_empty() {
            return Err(Error::config(
                key("consumer_key"),
                "is empty; create a REST API key with read access in WooCommerce › Settings › Advanced › REST API",
            ));
        }
        if self.consumer_secret.expose_secret().trim().is_empty() {
            return Err(Error::config(
                key("consumer_secret"),
                "is empty; it is shown once, next to the consumer key, when the REST API key is created",
            ));
        }
        if !(1..=100).contains(&self.per_page) {
            return Err(Error::config(
                key("per_page"),
                format!(
                    "must be between 1 and 100 (WooCommerce rejects larger pages), got {}",
                    self.per_page
                ),
            ));
        }
        if self.max_requests_per_second == Some(0) {
            return Err(Error::config(
                key("max_requests_per_second"),
                "must be at least 1",
            ));
        }
        if let Some(n) = self.max_concurrent_requests {
            if !(1..=64).contains(&n) {
                return Err(Error::config(
                    key("max_concurrent_requests"),
                    format!("must be between 1 and 64, got {n}"),
                ));
            }
        }
        Ok(())
    }

    /// The REST API root (`…/wp-json/wc/v3`), from `base_url` when set, else `url`.
    ///
    /// Errors name whichever of the two keys was used, since that is the one the user must fix.
    pub fn api_base(&self, source: &str) -> Result<Url> {
        let (name, raw) = match &self.base_url {
            Some(b) => ("base_url", b.as_str()),
            None => ("url", self.url.as_str()),
        };
        let key = format!("sources.{source}.{name}");
        if raw.trim().is_empty() {
            return Err(Error::config(
                key,
                "is empty; give the store's address, e.g. https://store.example.com",
            ));
        }
        let site = parse_base_url(&key, raw)?;
        let base = format!("{}{API_PATH}", site.as_str().trim_end_matches('/'));
        Url::parse(&base).map_err(|e| Error::config(key, format!("is not a usable base URL ({e})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> WooCommerceConfig {
        WooCommerceConfig::new(url, "ck_1", "cs_1")
    }

    #[test]
    fn api_base_appends_the_path_once() {
        assert_eq!(
            cfg("https://shop.example.co/")
                .api_base("woo")
                .unwrap()
                .as_str(),
            "https://shop.example.co/wp-json/wc/v3"
        );
        assert_eq!(
            cfg("https://example.co/shop")
                .api_base("woo")
                .unwrap()
                .as_str(),
            "https://example.co/shop/wp-json/wc/v3"
        );
        let mut c = cfg("https://shop.example.co");
        c.base_url = Some("http://127.0.0.1:8080/woo/".into());
        assert_eq!(
            c.api_base("woo").unwrap().as_str(),
            "http://127.0.0.1:8080/woo/wp-json/wc/v3"
        );
    }

    #[test]
    fn validation_names_the_key() {
        let key_of = |c: WooCommerceConfig| match c.validate("woo") {
            Err(Error::Config { key, .. }) => key,
            other => panic!("expected a config error, got {other:?}"),
        };
        assert_eq!(key_of(cfg("ftp://x")), "sources.woo.url");
        assert_eq!(key_of(cfg("not a url")), "sources.woo.url");
        assert_eq!(key_of(cfg("https://x.co/?a=1")), "sources.woo.url");
        let mut c = cfg("https://x.co");
        c.base_url = Some("".into());
        assert_eq!(key_of(c), "sources.woo.base_url");
        let mut c = cfg("https://x.co");
        c.per_page = 101;
        assert_eq!(key_of(c), "sources.woo.per_page");
        let mut c = cfg("https://x.co");
        c.per_page = 0;
        assert_eq!(key_of(c), "sources.woo.per_page");
        assert_eq!(
            key_of(WooCommerceConfig::new("https://x.co", " ", "cs")),
            "sources.woo.consumer_key"
        );
        assert_eq!(
            key_of(WooCommerceConfig::new("https://x.co", "ck", "")),
            "sources.woo.consumer_secret"
        );
        let mut c = cfg("https://x.co");
        c.max_requests_per_second = Some(0);
        assert_eq!(key_of(c), "sources.woo.max_requests_per_second");
        let mut c = cfg("https://x.co");
        c.max_concurrent_requests = Some(0);
        assert_eq!(key_of(c), "sources.woo.max_concurrent_requests");
        assert!(cfg("https://x.co").validate("woo").is_ok());
    }

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_keys() {
        let c: WooCommerceConfig = serde_json::from_value(serde_json::json!({
            "url": "https://x.co", "consumer_key": "ck_a", "consumer_secret": "cs_b"
        }))
        .unwrap();
        assert_eq!(c.per_page, 100);
        assert_eq!(c.lookback_days(), 0);
        assert_eq!(
            c.max_requests_per_second(),
            None,
            "no fixed pace by default"
        );
        assert_eq!(c.max_concurrent_requests(), 16);
        let err = serde_json::from_value::<WooCommerceConfig>(serde_json::json!({
            "url": "https://x.co", "consumer_key": "ck_a", "consumer_secret": "cs_b", "shop": "x"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `shop`"), "{err}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let text = format!(
            "{:?}",
            WooCommerceConfig::new("https://x.co", "ck_visible", "cs_visible")
        );
        assert!(
            !text.contains("ck_visible") && !text.contains("cs_visible"),
            "{text}"
        );
    }
}
