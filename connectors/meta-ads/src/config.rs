//! The `[sources.NAME]` table of a Meta Ads source.
//!
//! Deserialised by whoever reads the config file; the connector only checks what serde cannot — the ad
//! account id's shape, the pinned Graph API version, the attribution windows Meta still serves and a
//! usable `base_url` — so that a typo fails before the first request instead of as a 400 mid-sync.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use growthflow_core::http::parse_base_url;
use growthflow_core::{Error, Result};

/// Meta's Graph API host; every Marketing API path lives under `/{api_version}/`.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";

/// The Graph API version this connector is written and tested against (v25.0, released 2026-03, the
/// latest in Meta's SDK and docs). Pinned because unversioned calls use the app's default version, and
/// insights fields change in breaking ways every year; a version is usually served about two years.
pub const DEFAULT_API_VERSION: &str = "v25.0";

/// Meta freezes insight rows 28 days after the day they describe (conversions are attributed up to 28
/// days after the click), so the last 28 days are re-read on every sync.
pub const DEFAULT_LOOKBACK_DAYS: u32 = 28;

/// Meta's default attribution setting: 7-day click plus 1-day view.
pub const DEFAULT_ATTRIBUTION_WINDOWS: [&str; 2] = ["7d_click", "1d_view"];

/// The windows Meta accepts in `action_attribution_windows` since 2026-01-12 (`7d_view` and `28d_view`
/// were removed then; asking for them returns nothing or a 400).
pub const ALLOWED_ATTRIBUTION_WINDOWS: [&str; 7] = [
    "1d_click",
    "7d_click",
    "28d_click",
    "1d_view",
    "1d_ev",
    "default",
    "dda",
];

/// How to reach one Meta ad account.
///
/// `Debug` is safe to log: the access token prints as `[REDACTED]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaAdsConfig {
    /// The ad account, with or without the `act_` prefix (`act_123456789012345` or `123456789012345`).
    pub ad_account_id: String,
    /// A system-user (recommended, does not expire) or long-lived user access token with `ads_read`.
    /// Sent as the `access_token` query parameter, which core never logs.
    pub access_token: SecretString,
    /// The Graph API version in every path (`vNN.0`); default [`DEFAULT_API_VERSION`].
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Replaces `https://graph.facebook.com` when set, for a proxy, the sandbox or tests: scheme, host,
    /// optional port and path prefix; `/{api_version}/…` is appended after it.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Days of insights re-read before the saved cursor on every incremental sync (default 28, at most
    /// 37 months' worth is kept by Meta): rows are restated while conversions are still attributed.
    #[serde(default = "default_lookback_days")]
    pub lookback_days: u32,
    /// `action_attribution_windows` sent with insights (default `["7d_click", "1d_view"]`, Meta's
    /// default setting, so that `actions[].value` matches Ads Manager).
    #[serde(default = "default_attribution_windows")]
    pub action_attribution_windows: Vec<String>,
}

/// The pinned version, as a `String` for serde.
pub fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_string()
}

/// [`DEFAULT_LOOKBACK_DAYS`], for serde.
pub fn default_lookback_days() -> u32 {
    DEFAULT_LOOKBACK_DAYS
}

/// [`DEFAULT_ATTRIBUTION_WINDOWS`], for serde.
pub fn default_attribution_windows() -> Vec<String> {
    DEFAULT_ATTRIBUTION_WINDOWS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl MetaAdsConfig {
    /// Days re-read before the saved cursor: every connector's config answers this one accessor,
    /// whether its field is optional or defaulted by serde, so readers are built alike.
    pub fn lookback_days(&self) -> u32 {
        self.lookback_days
    }

    /// A config with the defaults, for library use.
    pub fn new(ad_account_id: impl Into<String>, access_token: impl Into<String>) -> Self {
        MetaAdsConfig {
            ad_account_id: ad_account_id.into(),
            access_token: SecretString::from(access_token.into()),
            api_version: default_api_version(),
            base_url: None,
            lookback_days: default_lookback_days(),
            action_attribution_windows: default_attribution_windows(),
        }
    }

    /// Check everything serde could not, naming the key at fault as `sources.<source>.<key>`.
    pub fn validate(&self, source: &str) -> Result<()> {
        let key = |k: &str| format!("sources.{source}.{k}");
        self.account_id(source)?;
        let token = self.access_token.expose_secret().trim();
        if token.is_empty() {
            return Err(Error::config(
                key("access_token"),
                "is empty; create a system-user token with ads_read in Business Manager",
            ));
        }
        if token.starts_with("Bearer ") || token.starts_with("OAuth ") {
            return Err(Error::config(
                key("access_token"),
                "must be the token alone, without a `Bearer`/`OAuth` prefix",
            ));
        }
        if !version_is_valid(&self.api_version) {
            return Err(Error::config(
                key("api_version"),
                format!(
                    "must be a Graph API version like {DEFAULT_API_VERSION}, got {:?}",
                    self.api_version
                ),
            ));
        }
        if self.lookback_days > 365 {
            return Err(Error::config(
                key("lookback_days"),
                format!(
                    "must be at most 365 (Meta freezes insights after 28 days), got {}",
                    self.lookback_days
                ),
            ));
        }
        if self.action_attribution_windows.is_empty() {
            return Err(Error::config(
                key("action_attribution_windows"),
                "is empty; leave it out for Meta's default [\"7d_click\", \"1d_view\"]",
            ));
        }
        for w in &self.action_attribution_windows {
            if w == "7d_view" || w == "28d_view" {
                return Err(Error::config(
                    key("action_attribution_windows"),
                    format!(
                        "{w:?} no longer exists: Meta removed 7d_view and 28d_view on 2026-01-12"
                    ),
                ));
            }
            if !ALLOWED_ATTRIBUTION_WINDOWS.contains(&w.as_str()) {
                return Err(Error::config(
                    key("action_attribution_windows"),
                    format!(
                        "{w:?} is not a Meta attribution window; use some of {}",
                        ALLOWED_ATTRIBUTION_WINDOWS.join(", ")
                    ),
                ));
            }
        }
        self.api_base(source)?;
        Ok(())
    }

    /// The ad account's numeric id, without `act_`.
    pub fn account_id(&self, source: &str) -> Result<String> {
        let raw = self.ad_account_id.trim();
        let id = raw.strip_prefix("act_").unwrap_or(raw);
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::config(
                format!("sources.{source}.ad_account_id"),
                format!(
                    "must be the numeric ad account id, with or without act_ (e.g. act_123456789012345), got {:?}",
                    self.ad_account_id
                ),
            ));
        }
        Ok(id.to_string())
    }

    /// `{base_url}/{api_version}/`: `base_url` when set (path prefix kept), else Meta's host.
    pub fn api_base(&self, source: &str) -> Result<Url> {
        let raw = self
            .base_url
            .as_deref()
            .map(str::trim)
            .unwrap_or(DEFAULT_BASE_URL);
        let base = parse_base_url(&format!("sources.{source}.base_url"), raw)?;
        let prefix = base.path().trim_end_matches('/');
        let mut root = base.clone();
        root.set_path(&format!("{prefix}/{}/", self.api_version.trim()));
        Ok(root)
    }
}

/// `vNN.N`, as Meta names versions.
pub fn version_is_valid(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let Some((major, minor)) = rest.split_once('.') else {
        return false;
    };
    !major.is_empty()
        && !minor.is_empty()
        && major.chars().all(|c| c.is_ascii_digit())
        && minor.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_account_id_forms() {
        let c = MetaAdsConfig::new("act_123", "EAAB-secret");
        assert_eq!(c.api_version, "v25.0");
        assert_eq!(c.lookback_days, 28);
        assert_eq!(c.action_attribution_windows, ["7d_click", "1d_view"]);
        c.validate("meta").unwrap();
        assert_eq!(c.account_id("meta").unwrap(), "123");
        assert_eq!(
            MetaAdsConfig::new("123", "t").account_id("meta").unwrap(),
            "123"
        );
        let e = MetaAdsConfig::new("acct_12x", "t")
            .validate("meta")
            .unwrap_err();
        assert!(e.to_string().contains("sources.meta.ad_account_id"), "{e}");
        assert!(!format!("{c:?}").contains("EAAB-secret"));
    }

    #[test]
    fn removed_windows_and_unknown_keys_are_rejected() {
        let mut c = MetaAdsConfig::new("act_1", "t");
        c.action_attribution_windows = vec!["7d_click".into(), "28d_view".into()];
        let e = c.validate("meta").unwrap_err().to_string();
        assert!(e.contains("sources.meta.action_attribution_windows"), "{e}");
        assert!(e.contains("2026-01-12"), "{e}");
        c.action_attribution_windows = vec!["7d_vieww".into()];
        assert!(c.validate("meta").is_err());
        let mut c = MetaAdsConfig::new("act_1", "t");
        c.api_version = "25".into();
        let e = c.validate("meta").unwrap_err().to_string();
        assert!(e.contains("sources.meta.api_version"), "{e}");
        let parsed: std::result::Result<MetaAdsConfig, _> =
            serde_json::from_str(r#"{"ad_account_id":"act_1","access_token":"t","lookback":3}"#);
        assert!(parsed.is_err());
    }

    #[test]
    fn base_url_keeps_its_prefix() {
        let mut c = MetaAdsConfig::new("act_1", "t");
        assert_eq!(
            c.api_base("meta").unwrap().as_str(),
            "https://graph.facebook.com/v25.0/"
        );
        c.base_url = Some("http://127.0.0.1:9/proxy/".into());
        assert_eq!(
            c.api_base("meta").unwrap().as_str(),
            "http://127.0.0.1:9/proxy/v25.0/"
        );
        c.base_url = Some("ftp://x".into());
        assert!(c
            .validate("meta")
            .unwrap_err()
            .to_string()
            .contains("sources.meta.base_url"));
    }
}
