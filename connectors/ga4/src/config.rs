//! The `[sources.NAME]` table of a GA4 source.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use growthflow_core::http::parse_base_url;
use growthflow_core::{Error, Result};

/// Where the Data API lives unless `base_url` says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://analyticsdata.googleapis.com";
/// Google's OAuth token endpoint for a user's refresh-token grant.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Days re-read before the saved cursor: GA4 restates up to 48 h, plus a time-zone edge.
pub const DEFAULT_LOOKBACK_DAYS: u32 = 3;

fn default_lookback_days() -> u32 {
    DEFAULT_LOOKBACK_DAYS
}

/// A GA4 source's configuration.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ga4Config {
    /// The numeric property id (`123456789`); `properties/123456789` is accepted too.
    pub property_id: String,
    /// A service-account key file (JSON); its `token_uri` is honoured.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// OAuth client id of a user's grant (with `client_secret` and `refresh_token`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// OAuth client secret of a user's grant.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// The user's refresh token.
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    /// Where the OAuth refresh-token grant is posted instead of Google's
    /// [`DEFAULT_TOKEN_URL`] (`https://oauth2.googleapis.com/token`): for a proxy in front of Google,
    /// or tests. An http(s) URL; only with `client_id`/`client_secret`/`refresh_token`, because a
    /// service-account key names its own endpoint (`token_uri`).
    #[serde(default)]
    pub token_url: Option<String>,
    /// Replaces `https://analyticsdata.googleapis.com` (proxies, sandbox, tests).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Days re-read before the saved cursor (default [`DEFAULT_LOOKBACK_DAYS`]).
    #[serde(default = "default_lookback_days")]
    pub lookback_days: u32,
    /// User-defined reports, read as streams `report_<name>`.
    #[serde(default)]
    pub reports: Vec<ReportConfig>,
}

/// One user-defined report.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// `[a-z0-9_]+`; the stream is `report_<name>`.
    pub name: String,
    /// Dimension API names; `date` is added first when missing.
    pub dimensions: Vec<String>,
    /// Metric API names.
    pub metrics: Vec<String>,
    /// A Data API `FilterExpression`, passed as is.
    #[serde(default)]
    pub dimension_filter: Option<serde_json::Value>,
}

impl std::fmt::Debug for Ga4Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ga4Config")
            .field("property_id", &self.property_id)
            .field("credentials_file", &self.credentials_file)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("token_url", &self.token_url)
            .field("base_url", &self.base_url)
            .field("lookback_days", &self.lookback_days)
            .field("reports", &self.reports)
            .finish()
    }
}

/// How the source authenticates.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A service-account key file.
    ServiceAccount(PathBuf),
    /// A user's OAuth refresh-token grant.
    OAuth {
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: SecretString,
        /// Refresh token.
        refresh_token: SecretString,
        /// The token endpoint the grant is posted to.
        token_url: String,
    },
}

impl Ga4Config {
    /// Days re-read before the saved cursor: every connector's config answers this one accessor,
    /// whether its field is optional or defaulted by serde, so readers are built alike.
    pub fn lookback_days(&self) -> u32 {
        self.lookback_days
    }

    /// A config for `property_id` authenticating with a service-account key file.
    pub fn with_service_account(property_id: impl Into<String>, file: impl Into<PathBuf>) -> Self {
        Ga4Config {
            property_id: property_id.into(),
            credentials_file: Some(file.into()),
            client_id: None,
            client_secret: None,
            refresh_token: None,
            token_url: None,
            base_url: None,
            lookback_days: DEFAULT_LOOKBACK_DAYS,
            reports: Vec::new(),
        }
    }

    /// The property id's digits.
    pub fn property(&self) -> &str {
        let p = self.property_id.trim();
        p.strip_prefix("properties/").unwrap_or(p)
    }

    /// Check every key, naming `sources.<source>.<key>` in the error.
    pub fn validate(&self, source: &str) -> Result<()> {
        let key = |k: &str| format!("sources.{source}.{k}");
        let p = self.property();
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::config(
                key("property_id"),
                format!(
                    "\"{}\" is not a GA4 property id: expected digits such as 123456789 (Admin › Property \
                     details), not a measurement id (G-…)",
                    self.property_id
                ),
            ));
        }
        self.credentials(source)?;
        self.api_base(source)?;
        for (i, r) in self.reports.iter().enumerate() {
            let k = key(&format!("reports[{i}]"));
            if r.name.is_empty()
                || !r
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(Error::config(format!("{k}.name"), "use [a-z0-9_]+"));
            }
            if r.metrics.is_empty() || r.metrics.len() > 10 {
                return Err(Error::config(
                    format!("{k}.metrics"),
                    "give 1 to 10 metrics",
                ));
            }
            // GA4 takes at most 9 dimensions, and every report is asked for with `date` among them.
            let besides_date = r.dimensions.iter().filter(|d| d.as_str() != "date").count();
            if besides_date > 8 {
                return Err(Error::config(
                    format!("{k}.dimensions"),
                    "at most 8 dimensions besides date (GA4 takes 9, and each report adds date)",
                ));
            }
        }
        Ok(())
    }

    /// The credentials, from exactly one of `credentials_file` or the OAuth trio.
    pub fn credentials(&self, source: &str) -> Result<Credentials> {
        let key = |k: &str| format!("sources.{source}.{k}");
        let oauth_any = self.client_id.is_some()
            || self.client_secret.is_some()
            || self.refresh_token.is_some();
        match (&self.credentials_file, oauth_any) {
            (Some(_), _) if self.token_url.is_some() => Err(Error::config(
                key("token_url"),
                "only for the OAuth client_id/client_secret/refresh_token grant; a service-account key \
                 file names its own token endpoint (token_uri)",
            )),
            (Some(_), true) => Err(Error::config(
                key("credentials_file"),
                "give either credentials_file or client_id/client_secret/refresh_token, not both",
            )),
            (Some(f), false) => Ok(Credentials::ServiceAccount(f.clone())),
            (None, true) => {
                let missing = |k: &str| Error::config(key(k), "missing (needed with the other OAuth keys)");
                Ok(Credentials::OAuth {
                    client_id: self.client_id.clone().ok_or_else(|| missing("client_id"))?,
                    client_secret: self.client_secret.clone().ok_or_else(|| missing("client_secret"))?,
                    refresh_token: self.refresh_token.clone().ok_or_else(|| missing("refresh_token"))?,
                    token_url: self.token_url(source)?,
                })
            }
            (None, false) => Err(Error::config(
                key("credentials_file"),
                "missing: give a service-account key file, or client_id/client_secret/refresh_token",
            )),
        }
    }

    /// The OAuth token endpoint (`token_url` or Google's), checked to be an http(s) URL with a host.
    pub fn token_url(&self, source: &str) -> Result<String> {
        let raw = self
            .token_url
            .as_deref()
            .unwrap_or(DEFAULT_TOKEN_URL)
            .trim();
        let key = format!("sources.{source}.token_url");
        let url = Url::parse(raw)
            .map_err(|e| Error::config(&key, format!("\"{raw}\" is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::config(
                key,
                format!("\"{raw}\" is not an http(s) URL; use https://host[:port]/path"),
            ));
        }
        Ok(raw.to_string())
    }

    /// The API root (`base_url` or the default), without a trailing slash.
    pub fn api_base(&self, source: &str) -> Result<Url> {
        let raw = self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        parse_base_url(&format!("sources.{source}.base_url"), raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_like: serde_json::Value) -> std::result::Result<Ga4Config, serde_json::Error> {
        serde_json::from_value(toml_like)
    }

    #[test]
    fn property_ids_and_errors_name_keys() {
        let c =
            parse(serde_json::json!({"property_id":"properties/123","credentials_file":"k.json"}))
                .unwrap();
        assert_eq!(c.property(), "123");
        assert_eq!(c.lookback_days, 3);
        c.validate("web").unwrap();
        let bad =
            parse(serde_json::json!({"property_id":"G-ABC","credentials_file":"k.json"})).unwrap();
        assert!(bad
            .validate("web")
            .unwrap_err()
            .to_string()
            .contains("sources.web.property_id"));
        let none = parse(serde_json::json!({"property_id":"1"})).unwrap();
        assert!(none
            .validate("web")
            .unwrap_err()
            .to_string()
            .contains("sources.web.credentials_file"));
        let half = parse(serde_json::json!({"property_id":"1","client_id":"x"})).unwrap();
        assert!(half
            .validate("web")
            .unwrap_err()
            .to_string()
            .contains("sources.web.client_secret"));
        assert!(parse(serde_json::json!({"property_id":"1","bogus":1})).is_err());
        let secret = parse(serde_json::json!({"property_id":"1","client_id":"x","client_secret":"s3cr3t","refresh_token":"r3fr3sh"})).unwrap();
        let dbg = format!("{secret:?}");
        assert!(!dbg.contains("s3cr3t") && !dbg.contains("r3fr3sh"), "{dbg}");
    }

    /// GA4 takes 9 dimensions and every report asks for `date`: 8 others fit, 9 do not (it was
    /// accepted here and refused by GA4 with a 400 on every run).
    #[test]
    fn a_report_has_at_most_eight_dimensions_besides_date() {
        let with = |dims: Vec<String>| {
            parse(
                serde_json::json!({"property_id": "1", "credentials_file": "k.json",
                "reports": [{"name": "r", "metrics": ["sessions"], "dimensions": dims}]}),
            )
            .unwrap()
            .validate("web")
        };
        let dims = |n: usize| {
            (0..n)
                .map(|i| format!("customEvent:d{i}"))
                .collect::<Vec<_>>()
        };
        with(dims(8)).unwrap();
        let mut eight_and_date = dims(8);
        eight_and_date.insert(0, "date".into());
        with(eight_and_date).unwrap();
        let err = with(dims(9)).unwrap_err().to_string();
        assert!(
            err.contains("sources.web.reports[0].dimensions") && err.contains("at most 8"),
            "{err}"
        );
    }

    #[test]
    fn token_url_defaults_to_google_and_must_be_http() {
        let oauth = serde_json::json!({"property_id":"1","client_id":"x","client_secret":"s","refresh_token":"r"});
        let c = parse(oauth.clone()).unwrap();
        match c.credentials("web").unwrap() {
            Credentials::OAuth { token_url, .. } => assert_eq!(token_url, DEFAULT_TOKEN_URL),
            other => panic!("{other:?}"),
        }
        let mut proxied = oauth.clone();
        proxied["token_url"] = "http://127.0.0.1:9/oauth/token".into();
        match parse(proxied).unwrap().credentials("web").unwrap() {
            Credentials::OAuth { token_url, .. } => {
                assert_eq!(token_url, "http://127.0.0.1:9/oauth/token")
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            "oauth2.googleapis.com/token",
            "ftp://example.com/token",
            "not a url",
        ] {
            let mut b = oauth.clone();
            b["token_url"] = bad.into();
            let err = parse(b).unwrap().validate("web").unwrap_err().to_string();
            assert!(err.contains("sources.web.token_url"), "{bad}: {err}");
        }
        let with_key = parse(
            serde_json::json!({"property_id":"1","credentials_file":"k.json",
            "token_url":"https://proxy.example.com/token"}),
        )
        .unwrap();
        let err = with_key.validate("web").unwrap_err().to_string();
        assert!(
            err.contains("sources.web.token_url") && err.contains("token_uri"),
            "{err}"
        );
    }
}
