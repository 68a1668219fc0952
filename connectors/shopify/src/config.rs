//! The `[sources.NAME]` table of a Shopify source.
//!
//! Deserialised by whoever reads the config file (the CLI, or a library user with any serde format); the
//! connector only checks what serde cannot — that the shop name, API version and numbers are ones Shopify
//! accepts and that exactly one way of authenticating is given — so that a typo fails before the first
//! request instead of as a confusing 404 or 401 mid-sync.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use growthflow_core::http::{join_path, parse_base_url};
use growthflow_core::{Error, Result};

/// The Admin API version requested when the config names none: the latest stable quarterly release as
/// of November 2026 (Shopify supports each version for at least twelve months). Pinned, never "latest",
/// because Shopify changes field shapes between versions (`momentsCount`, bulk `groupObjects`).
pub const DEFAULT_API_VERSION: &str = "2026-10";

/// Shopify's maximum `first:` for a connection.
pub const MAX_PAGE_SIZE: u32 = 250;

/// How to reach one Shopify shop.
///
/// `Debug` is safe to log: the token, client secret and refresh token print as `[REDACTED]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifyConfig {
    /// The shop: its handle (`acme`) or its permanent domain (`acme.myshopify.com`) — not a custom
    /// storefront domain, because the Admin API is only served on `*.myshopify.com`.
    pub shop: String,
    /// An Admin API access token (`shpat_…`) of a custom app installed on the shop. Give either this or
    /// `client_id` + `client_secret` + `refresh_token`.
    #[serde(default)]
    pub access_token: Option<SecretString>,
    /// The Admin API version, `YYYY-MM` with a quarterly month (or `unstable`); default
    /// [`DEFAULT_API_VERSION`].
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Replaces `https://{shop}.myshopify.com` when set, for a proxy, the sandbox or tests: scheme, host,
    /// optional port and path prefix; `/admin/api/{version}/graphql.json` and `/admin/oauth/access_token`
    /// are appended after it.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Days re-read before the saved cursor on every incremental sync (default 0). Orders whose journey
    /// summary is still being attributed (`ready: false`) are completed later without always moving
    /// `updatedAt`; a lookback of 1–2 days picks them up.
    #[serde(default)]
    pub lookback_days: Option<u32>,
    /// The most records a page asks for, 1 to 250 (default 100). Each stream asks for fewer when its
    /// query's worst-case cost at this size would exceed Shopify's single-query limit (1000 points).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Backfill windows longer than this many days are read with one bulk operation instead of paging
    /// (default 30): long windows would otherwise cost thousands of requests and hit Shopify's
    /// deep-pagination cap. Incremental syncs always page.
    #[serde(default = "default_bulk_threshold_days")]
    pub bulk_threshold_days: u32,
    /// For expiring offline tokens: the app's client id (API key).
    #[serde(default)]
    pub client_id: Option<String>,
    /// For expiring offline tokens: the app's client secret.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// For expiring offline tokens: the refresh token from the install (`expiring=1`). Shopify rotates it
    /// on every refresh; see the README for persisting the new one.
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
}

/// The pinned API version.
pub fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_string()
}

/// At most 100 records a page. Streams whose query costs more per record (orders, products and
/// abandoned checkouts, with their nested line items or variants) start smaller, at the size that fits
/// the 1000-point query cost limit (`Spec::fitting_first` in the streams module).
pub fn default_page_size() -> u32 {
    100
}

/// Windows up to a month page comfortably; longer ones are what bulk operations exist for.
pub fn default_bulk_threshold_days() -> u32 {
    30
}

/// No lookback by default: the built-in one-second overlap covers second-granular `updated_at` filters.
pub fn default_lookback_days() -> u32 {
    0
}

/// How the connector authenticates, decided from the config.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A static Admin API access token.
    AccessToken(SecretString),
    /// Expiring offline tokens refreshed with the refresh-token grant.
    RefreshToken {
        /// The app's client id.
        client_id: String,
        /// The app's client secret.
        client_secret: SecretString,
        /// The current refresh token.
        refresh_token: SecretString,
    },
    /// The client-credentials grant: an app of the shop's own organisation exchanges its id and secret
    /// for a ~24 h token, fetched again when it expires.
    ClientCredentials {
        /// The app's client id.
        client_id: String,
        /// The app's client secret.
        client_secret: SecretString,
    },
}

impl ShopifyConfig {
    /// A config with a static access token and the defaults, for library use.
    pub fn new(shop: impl Into<String>, access_token: impl Into<String>) -> Self {
        ShopifyConfig {
            access_token: Some(SecretString::from(access_token.into())),
            ..Self::empty(shop)
        }
    }

    /// A config for expiring offline tokens (refresh-token grant), for library use.
    pub fn with_refresh_token(
        shop: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        refresh_token: impl Into<String>,
    ) -> Self {
        ShopifyConfig {
            client_id: Some(client_id.into()),
            client_secret: Some(SecretString::from(client_secret.into())),
            refresh_token: Some(SecretString::from(refresh_token.into())),
            ..Self::empty(shop)
        }
    }

    fn empty(shop: impl Into<String>) -> Self {
        ShopifyConfig {
            shop: shop.into(),
            access_token: None,
            api_version: default_api_version(),
            base_url: None,
            lookback_days: None,
            page_size: default_page_size(),
            bulk_threshold_days: default_bulk_threshold_days(),
            client_id: None,
            client_secret: None,
            refresh_token: None,
        }
    }

    /// Days re-read before the saved cursor: every connector's config answers this one accessor.
    pub fn lookback_days(&self) -> u32 {
        self.lookback_days.unwrap_or_else(default_lookback_days)
    }

    /// The shop's handle (`acme`), from either accepted form of `shop`.
    pub fn shop_handle(&self, source: &str) -> Result<String> {
        let key = format!("sources.{source}.shop");
        let raw = self.shop.trim().to_ascii_lowercase();
        let raw = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"))
            .unwrap_or(&raw)
            .trim_end_matches('/');
        let handle = raw.strip_suffix(".myshopify.com").unwrap_or(raw);
        if handle.is_empty() {
            return Err(Error::config(
                key,
                "is empty; give the shop's handle (acme) or its myshopify.com domain",
            ));
        }
        let valid = handle
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !handle.starts_with('-');
        if !valid {
            return Err(Error::config(
                key,
                format!(
                    "{:?} is not a shop handle; give `acme` or `acme.myshopify.com` (the permanent domain \
                     shown in Settings › Domains, not a custom storefront domain)",
                    self.shop
                ),
            ));
        }
        Ok(handle.to_string())
    }

    /// Scheme, host and path prefix every path is appended to: `base_url`, else
    /// `https://{shop}.myshopify.com`.
    pub fn origin(&self, source: &str) -> Result<Url> {
        let Some(base) = &self.base_url else {
            let handle = self.shop_handle(source)?;
            return Url::parse(&format!("https://{handle}.myshopify.com"))
                .map_err(|e| Error::config(format!("sources.{source}.shop"), e.to_string()));
        };
        parse_base_url(&format!("sources.{source}.base_url"), base)
    }

    fn join(&self, source: &str, path: &str) -> Result<Url> {
        Ok(join_path(&self.origin(source)?, path))
    }

    /// `…/admin/api/{version}/graphql.json`: every connector names its API root `api_base`, and
    /// Shopify's GraphQL API is this one endpoint.
    pub fn api_base(&self, source: &str) -> Result<Url> {
        self.join(
            source,
            &format!("/admin/api/{}/graphql.json", self.api_version.trim()),
        )
    }

    /// The same URL as [`api_base`](Self::api_base), under the name GraphQL users look for.
    pub fn graphql_url(&self, source: &str) -> Result<Url> {
        self.api_base(source)
    }

    /// `…/admin/oauth/access_token`, where refresh tokens are exchanged.
    pub fn token_url(&self, source: &str) -> Result<Url> {
        self.join(source, "/admin/oauth/access_token")
    }

    /// The credentials to use: exactly one of `access_token` or the three client keys.
    pub fn credentials(&self, source: &str) -> Result<Credentials> {
        let key = |k: &str| format!("sources.{source}.{k}");
        let blank = |s: &Option<SecretString>| {
            s.as_ref()
                .is_none_or(|s| s.expose_secret().trim().is_empty())
        };
        let client_given = self.client_id.is_some()
            || self.client_secret.is_some()
            || self.refresh_token.is_some();
        if let Some(token) = &self.access_token {
            if client_given {
                return Err(Error::config(
                    key("access_token"),
                    "give either access_token or client_id + client_secret + refresh_token, not both",
                ));
            }
            if token.expose_secret().trim().is_empty() {
                return Err(Error::config(
                    key("access_token"),
                    "is empty; give the Admin API access token (shpat_…) of an app installed on the shop",
                ));
            }
            return Ok(Credentials::AccessToken(token.clone()));
        }
        if !client_given {
            return Err(Error::config(
                key("access_token"),
                "is missing; give an Admin API access token (shpat_…), or client_id + client_secret + \
                 refresh_token for an app with expiring offline tokens",
            ));
        }
        let client_id = self
            .client_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::config(
                    key("client_id"),
                    "is missing; the app's client id (API key) is needed with client_secret",
                )
            })?;
        if blank(&self.client_secret) {
            return Err(Error::config(
                key("client_secret"),
                "is missing; the app's client secret is needed with client_id",
            ));
        }
        if self.refresh_token.is_none() {
            // No refresh token: the app is the shop's own and uses the client-credentials grant.
            return Ok(Credentials::ClientCredentials {
                client_id: client_id.to_string(),
                client_secret: self.client_secret.clone().expect("checked above"),
            });
        }
        if blank(&self.refresh_token) {
            return Err(Error::config(
                key("refresh_token"),
                "is empty; give the refresh token Shopify issued with the expiring offline token, or \
                 leave it out to use the client-credentials grant",
            ));
        }
        Ok(Credentials::RefreshToken {
            client_id: client_id.to_string(),
            client_secret: self.client_secret.clone().expect("checked above"),
            refresh_token: self.refresh_token.clone().expect("checked above"),
        })
    }

    /// Check everything serde could not, naming the key at fault as `sources.<source>.<key>`.
    pub fn validate(&self, source: &str) -> Result<()> {
        let key = |k: &str| format!("sources.{source}.{k}");
        self.shop_handle(source)?;
        self.origin(source)?;
        if !is_api_version(self.api_version.trim()) {
            return Err(Error::config(
                key("api_version"),
                format!(
                    "{:?} is not a Shopify API version; use a quarterly YYYY-MM (01, 04, 07, 10) such as \
                     {DEFAULT_API_VERSION}, or unstable",
                    self.api_version
                ),
            ));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(Error::config(
                key("page_size"),
                format!(
                    "must be between 1 and {MAX_PAGE_SIZE} (Shopify's maximum for `first`), got {}",
                    self.page_size
                ),
            ));
        }
        if self.bulk_threshold_days == 0 {
            return Err(Error::config(
                key("bulk_threshold_days"),
                "must be at least 1",
            ));
        }
        self.credentials(source)?;
        Ok(())
    }
}

/// `YYYY-01/04/07/10` or `unstable`.
fn is_api_version(v: &str) -> bool {
    if v == "unstable" {
        return true;
    }
    let Some((year, month)) = v.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.chars().all(|c| c.is_ascii_digit())
        && matches!(month, "01" | "04" | "07" | "10")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(c: &ShopifyConfig) -> String {
        match c.validate("shop") {
            Err(Error::Config { key, .. }) => key,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn both_shop_forms_give_the_same_urls() {
        for shop in ["acme", "acme.myshopify.com", "https://ACME.myshopify.com/"] {
            let c = ShopifyConfig::new(shop, "shpat_x");
            assert_eq!(
                c.graphql_url("shop").unwrap().as_str(),
                "https://acme.myshopify.com/admin/api/2026-10/graphql.json"
            );
        }
        let c = ShopifyConfig::new("acme", "shpat_x");
        assert_eq!(
            c.token_url("shop").unwrap().as_str(),
            "https://acme.myshopify.com/admin/oauth/access_token"
        );
    }

    #[test]
    fn base_url_replaces_the_origin_and_keeps_its_prefix() {
        let mut c = ShopifyConfig::new("acme", "shpat_x");
        c.base_url = Some("http://127.0.0.1:8080/shopify/".into());
        c.api_version = "2025-10".into();
        assert_eq!(
            c.graphql_url("shop").unwrap().as_str(),
            "http://127.0.0.1:8080/shopify/admin/api/2025-10/graphql.json"
        );
        assert_eq!(
            c.token_url("shop").unwrap().as_str(),
            "http://127.0.0.1:8080/shopify/admin/oauth/access_token"
        );
    }

    #[test]
    fn validation_names_the_key() {
        let ok = ShopifyConfig::new("acme", "shpat_x");
        assert!(ok.validate("shop").is_ok());
        assert_eq!(
            key_of(&ShopifyConfig::new("shop.example.com", "t")),
            "sources.shop.shop"
        );
        assert_eq!(key_of(&ShopifyConfig::new("", "t")), "sources.shop.shop");
        assert_eq!(
            key_of(&ShopifyConfig::new("acme", " ")),
            "sources.shop.access_token"
        );
        let mut c = ok.clone();
        c.api_version = "2025-11".into();
        assert_eq!(key_of(&c), "sources.shop.api_version");
        let mut c = ok.clone();
        c.page_size = 251;
        assert_eq!(key_of(&c), "sources.shop.page_size");
        let mut c = ok.clone();
        c.page_size = 0;
        assert_eq!(key_of(&c), "sources.shop.page_size");
        let mut c = ok.clone();
        c.base_url = Some("ftp://x".into());
        assert_eq!(key_of(&c), "sources.shop.base_url");
        let mut c = ok.clone();
        c.client_id = Some("id".into());
        assert_eq!(key_of(&c), "sources.shop.access_token");
        let mut c = ok.clone();
        c.access_token = None;
        assert_eq!(key_of(&c), "sources.shop.access_token");
        let mut c = ShopifyConfig::with_refresh_token("acme", "id", "secret", "shprt_1");
        assert!(c.validate("shop").is_ok());
        c.refresh_token = Some(" ".to_string().into());
        assert_eq!(key_of(&c), "sources.shop.refresh_token");
        // Without a refresh token, client id + secret select the client-credentials grant.
        c.refresh_token = None;
        assert!(matches!(
            c.credentials("shop"),
            Ok(Credentials::ClientCredentials { ref client_id, .. }) if client_id == "id"
        ));
        let mut c = ShopifyConfig::with_refresh_token("acme", "id", "secret", "shprt_1");
        c.client_id = Some(" ".into());
        assert_eq!(key_of(&c), "sources.shop.client_id");
        let mut c = ShopifyConfig::with_refresh_token("acme", "id", "secret", "shprt_1");
        c.client_secret = None;
        assert_eq!(key_of(&c), "sources.shop.client_secret");
        let mut c = ok;
        c.api_version = "unstable".into();
        assert!(c.validate("shop").is_ok());
    }

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_keys() {
        let c: ShopifyConfig = serde_json::from_value(serde_json::json!({
            "shop": "acme", "access_token": "shpat_a"
        }))
        .unwrap();
        assert_eq!(c.api_version, "2026-10");
        assert_eq!(c.page_size, 100);
        assert_eq!(c.bulk_threshold_days, 30);
        assert_eq!(c.lookback_days(), 0);
        let err = serde_json::from_value::<ShopifyConfig>(serde_json::json!({
            "shop": "acme", "access_token": "shpat_a", "url": "x"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `url`"), "{err}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let text = format!(
            "{:?} {:?}",
            ShopifyConfig::new("acme", "shpat_visible"),
            ShopifyConfig::with_refresh_token("acme", "id", "secret_visible", "shprt_visible")
        );
        assert!(!text.contains("visible"), "{text}");
    }
}
