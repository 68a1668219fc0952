//! The `[sources.NAME]` table of a Klaviyo source.
//!
//! Deserialised by whoever reads the config file (the CLI, or a library user with any serde format); the
//! connector only checks what serde cannot: that exactly one way of authenticating is given, that the
//! revision is one Klaviyo can parse and that `base_url` is usable — so that a typo fails before the first
//! request instead of as a 400 mid-sync.

use chrono::NaiveDate;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use growthflow_core::http::{join_path, parse_base_url};
use growthflow_core::{Error, Result};

/// Klaviyo's own API host; every private endpoint lives under `/api`, the OAuth token endpoint under
/// `/oauth/token` (Klaviyo blocks token calls to `www.klaviyo.com` since 2025-03-31).
pub const DEFAULT_BASE_URL: &str = "https://a.klaviyo.com";

/// The API revision this connector is written and tested against (Klaviyo's OpenAPI `stable.json`,
/// `info.version`). Revisions are stable for a year, deprecated the next and retired after two, so
/// 2026-07-15 is served until 2028-07-15.
pub const DEFAULT_REVISION: &str = "2026-07-15";

/// How to reach one Klaviyo account.
///
/// `Debug` is safe to log: the key, client secret and refresh token print as `[REDACTED]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KlaviyoConfig {
    /// A private API key (`pk_…`, Settings › API keys) with read access to events, profiles, metrics,
    /// campaigns, flows and lists. Leave unset when using OAuth.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// OAuth app's client id: the alternative to `api_key`, for apps installed on a customer's account.
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth app's client secret, sent as HTTP Basic to the token endpoint as Klaviyo requires.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// The installation's refresh token. Klaviyo may rotate it on every refresh; library users persist the
    /// new one with [`Klaviyo::with_rotation_hook`](crate::Klaviyo::with_rotation_hook).
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    /// The `revision` header sent on every request (`YYYY-MM-DD`, optionally `.suffix`). Pinned so that a
    /// Klaviyo release never changes what a sync reads; default [`DEFAULT_REVISION`].
    #[serde(default = "default_revision")]
    pub revision: String,
    /// Replaces `https://a.klaviyo.com` when set, for a proxy, the sandbox or tests: scheme, host,
    /// optional port and path prefix; `/api/…` and `/oauth/token` are appended after it.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Days of events re-read before the saved cursor on every incremental sync (default 3). Klaviyo
    /// accepts events with past timestamps (integrations catching up, backfills), and its filter is on
    /// event time, so late events are only found by re-reading; re-read events are deduplicated by id.
    #[serde(default = "default_lookback_days")]
    pub lookback_days: u32,
}

/// The pinned revision, as a `String` for serde.
pub fn default_revision() -> String {
    DEFAULT_REVISION.to_string()
}

/// Three days: integrations such as Shopify deliver most late events within hours, and the reference
/// recommends 1–3 days for event syncs.
pub fn default_lookback_days() -> u32 {
    3
}

/// How the connector authenticates, decided by which keys are set.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `Authorization: Klaviyo-API-Key <key>`.
    ApiKey(SecretString),
    /// `Authorization: Bearer <access token>` from the refresh-token grant.
    OAuth {
        /// The app's client id.
        client_id: String,
        /// The app's client secret.
        client_secret: SecretString,
        /// The installation's refresh token.
        refresh_token: SecretString,
    },
}

impl KlaviyoConfig {
    /// Days re-read before the saved cursor: every connector's config answers this one accessor,
    /// whether its field is optional or defaulted by serde, so readers are built alike.
    pub fn lookback_days(&self) -> u32 {
        self.lookback_days
    }

    /// A private-API-key config with the defaults, for library use.
    pub fn with_api_key(api_key: impl Into<String>) -> Self {
        KlaviyoConfig {
            api_key: Some(SecretString::from(api_key.into())),
            client_id: None,
            client_secret: None,
            refresh_token: None,
            revision: default_revision(),
            base_url: None,
            lookback_days: default_lookback_days(),
        }
    }

    /// An OAuth config with the defaults, for library use.
    pub fn with_oauth(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        refresh_token: impl Into<String>,
    ) -> Self {
        KlaviyoConfig {
            api_key: None,
            client_id: Some(client_id.into()),
            client_secret: Some(SecretString::from(client_secret.into())),
            refresh_token: Some(SecretString::from(refresh_token.into())),
            ..KlaviyoConfig::with_api_key("")
        }
    }

    /// Check everything serde could not, naming the key at fault as `sources.<source>.<key>`.
    pub fn validate(&self, source: &str) -> Result<()> {
        self.credentials(source)?;
        self.base(source)?;
        let key = |k: &str| format!("sources.{source}.{k}");
        if !revision_is_valid(&self.revision) {
            return Err(Error::config(
                key("revision"),
                format!(
                    "must be a Klaviyo API revision like {DEFAULT_REVISION} (YYYY-MM-DD, optionally .suffix), got {:?}",
                    self.revision
                ),
            ));
        }
        if self.lookback_days > 365 {
            return Err(Error::config(
                key("lookback_days"),
                format!(
                    "must be at most 365 (re-reading more is a backfill), got {}",
                    self.lookback_days
                ),
            ));
        }
        Ok(())
    }

    /// The credentials to use: an API key, or all three OAuth keys — never both, never a partial set.
    pub fn credentials(&self, source: &str) -> Result<Credentials> {
        let key = |k: &str| format!("sources.{source}.{k}");
        let blank = |s: Option<&str>| s.is_none_or(|s| s.trim().is_empty());
        let oauth_set = self.client_id.is_some()
            || self.client_secret.is_some()
            || self.refresh_token.is_some();
        if let Some(api_key) = &self.api_key {
            if oauth_set {
                return Err(Error::config(
                    key("api_key"),
                    "is set together with OAuth keys (client_id, client_secret, refresh_token); use one or the other",
                ));
            }
            let k = api_key.expose_secret().trim();
            if k.is_empty() {
                return Err(Error::config(
                    key("api_key"),
                    "is empty; create a private API key with read access in Klaviyo › Settings › API keys",
                ));
            }
            if k.starts_with("Klaviyo-API-Key") || k.starts_with("Bearer ") {
                return Err(Error::config(
                    key("api_key"),
                    "must be the key alone (pk_…), without the `Klaviyo-API-Key` prefix",
                ));
            }
            if k.len() == 6 && k.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(Error::config(
                    key("api_key"),
                    "looks like the public API key (site ID), which cannot read data; use a private API key (pk_…)",
                ));
            }
            return Ok(Credentials::ApiKey(SecretString::from(k.to_string())));
        }
        if !oauth_set {
            return Err(Error::config(
                key("api_key"),
                "is missing; give a private API key (pk_…), or client_id, client_secret and refresh_token of an OAuth app",
            ));
        }
        if blank(self.client_id.as_deref()) {
            return Err(Error::config(
                key("client_id"),
                "is missing or empty; OAuth needs client_id, client_secret and refresh_token",
            ));
        }
        if blank(self.client_secret.as_ref().map(|s| s.expose_secret())) {
            return Err(Error::config(
                key("client_secret"),
                "is missing or empty; OAuth needs client_id, client_secret and refresh_token",
            ));
        }
        if blank(self.refresh_token.as_ref().map(|s| s.expose_secret())) {
            return Err(Error::config(
                key("refresh_token"),
                "is missing or empty; OAuth needs client_id, client_secret and refresh_token",
            ));
        }
        Ok(Credentials::OAuth {
            client_id: self
                .client_id
                .clone()
                .unwrap_or_default()
                .trim()
                .to_string(),
            client_secret: self.client_secret.clone().unwrap_or_default(),
            refresh_token: self.refresh_token.clone().unwrap_or_default(),
        })
    }

    /// Where the API lives: `base_url` when set (path prefix kept, no trailing slash), else Klaviyo's host.
    pub fn base(&self, source: &str) -> Result<Url> {
        let Some(raw) = &self.base_url else {
            return Url::parse(DEFAULT_BASE_URL).map_err(|e| Error::Internal(e.to_string()));
        };
        parse_base_url(&format!("sources.{source}.base_url"), raw)
    }

    /// The root of the private API (`…/api`).
    pub fn api_base(&self, source: &str) -> Result<Url> {
        Ok(join_path(&self.base(source)?, "api"))
    }

    /// The OAuth token endpoint (`…/oauth/token`).
    pub fn token_url(&self, source: &str) -> Result<Url> {
        Ok(join_path(&self.base(source)?, "oauth/token"))
    }
}

/// `YYYY-MM-DD` (a real date) optionally followed by `.suffix` (`2026-07-15.pre`).
pub fn revision_is_valid(revision: &str) -> bool {
    let (date, suffix) = match revision.split_once('.') {
        Some((d, s)) => (d, Some(s)),
        None => (revision, None),
    };
    date.len() == 10
        && NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
        && suffix.is_none_or(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// True when `revision` is `since` or later (both `YYYY-MM-DD…`; text order is date order).
pub fn revision_at_least(revision: &str, since: &str) -> bool {
    revision.get(..10).unwrap_or(revision) >= since
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let c: KlaviyoConfig =
            serde_json::from_value(serde_json::json!({ "api_key": "pk_abc" })).unwrap();
        assert_eq!(c.revision, "2026-07-15");
        assert_eq!(c.lookback_days, 3);
        assert!(c.base_url.is_none());
        assert!(c.validate("email").is_ok());
        let err = serde_json::from_value::<KlaviyoConfig>(
            serde_json::json!({ "api_key": "pk_abc", "private_key": "x" }),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `private_key`"),
            "{err}"
        );
    }

    #[test]
    fn validation_names_the_key() {
        let key_of = |c: KlaviyoConfig| match c.validate("email") {
            Err(Error::Config { key, .. }) => key,
            other => panic!("expected a config error, got {other:?}"),
        };
        let mut none = KlaviyoConfig::with_api_key("pk_1");
        none.api_key = None;
        assert_eq!(key_of(none), "sources.email.api_key");
        assert_eq!(
            key_of(KlaviyoConfig::with_api_key(" ")),
            "sources.email.api_key"
        );
        assert_eq!(
            key_of(KlaviyoConfig::with_api_key("AbC123")),
            "sources.email.api_key"
        );
        assert_eq!(
            key_of(KlaviyoConfig::with_api_key("Klaviyo-API-Key pk_1")),
            "sources.email.api_key"
        );
        let mut both = KlaviyoConfig::with_api_key("pk_1");
        both.client_id = Some("cid".into());
        assert_eq!(key_of(both), "sources.email.api_key");
        let mut partial = KlaviyoConfig::with_oauth("cid", "cs", "rt");
        partial.refresh_token = None;
        assert_eq!(key_of(partial), "sources.email.refresh_token");
        assert_eq!(
            key_of(KlaviyoConfig::with_oauth("", "cs", "rt")),
            "sources.email.client_id"
        );
        assert_eq!(
            key_of(KlaviyoConfig::with_oauth("cid", "", "rt")),
            "sources.email.client_secret"
        );
        let mut c = KlaviyoConfig::with_api_key("pk_1");
        c.revision = "2026-7-15".into();
        assert_eq!(key_of(c), "sources.email.revision");
        let mut c = KlaviyoConfig::with_api_key("pk_1");
        c.base_url = Some("ftp://x".into());
        assert_eq!(key_of(c), "sources.email.base_url");
        let mut c = KlaviyoConfig::with_api_key("pk_1");
        c.lookback_days = 1000;
        assert_eq!(key_of(c), "sources.email.lookback_days");
        assert!(KlaviyoConfig::with_oauth("cid", "cs", "rt")
            .validate("email")
            .is_ok());
    }

    #[test]
    fn urls_keep_the_path_prefix() {
        let c = KlaviyoConfig::with_api_key("pk_1");
        assert_eq!(
            c.api_base("e").unwrap().as_str(),
            "https://a.klaviyo.com/api"
        );
        assert_eq!(
            c.token_url("e").unwrap().as_str(),
            "https://a.klaviyo.com/oauth/token"
        );
        let mut c = KlaviyoConfig::with_api_key("pk_1");
        c.base_url = Some("http://127.0.0.1:8080/klaviyo/".into());
        assert_eq!(
            c.api_base("e").unwrap().as_str(),
            "http://127.0.0.1:8080/klaviyo/api"
        );
        assert_eq!(
            c.token_url("e").unwrap().as_str(),
            "http://127.0.0.1:8080/klaviyo/oauth/token"
        );
    }

    #[test]
    fn revisions() {
        assert!(revision_is_valid("2026-07-15"));
        assert!(revision_is_valid("2026-07-15.pre"));
        assert!(!revision_is_valid("2026-07-15."));
        assert!(!revision_is_valid("2026-13-15"));
        assert!(!revision_is_valid("latest"));
        assert!(revision_at_least("2026-07-15", "2026-01-15"));
        assert!(revision_at_least("2026-01-15.pre", "2026-01-15"));
        assert!(!revision_at_least("2025-10-15", "2026-01-15"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let text = format!(
            "{:?} {:?}",
            KlaviyoConfig::with_api_key("pk_visible"),
            KlaviyoConfig::with_oauth("cid", "cs_visible", "rt_visible")
        );
        assert!(
            !text.contains("pk_visible")
                && !text.contains("cs_visible")
                && !text.contains("rt_visible"),
            "{text}"
        );
    }
}
