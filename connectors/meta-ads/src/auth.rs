//! Meta's credentials: an access token in the `access_token` query parameter.
//!
//! The Graph API accepts the token as a query parameter or a bearer header; the query parameter is what
//! Meta's own `paging.next` URLs carry, so using it keeps followed pages consistent. Core's
//! [`QueryAuth`] replaces any `access_token` already in a URL, and core logs paths only, never query
//! strings, so the token is never written anywhere.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use growthflow_core::auth::{Authenticator, QueryAuth, StaticToken};

/// The query parameter Meta reads the token from.
pub const TOKEN_PARAM: &str = "access_token";

/// The authenticator for a static (system-user or long-lived) token.
pub fn authenticator(token: &SecretString) -> Arc<dyn Authenticator> {
    let token = SecretString::from(token.expose_secret().trim().to_string());
    Arc::new(QueryAuth::new(
        TOKEN_PARAM,
        Arc::new(StaticToken::new(token)),
    ))
}

/// A long-lived user token as Meta returns it from the `fb_exchange_token` grant.
#[derive(Clone, serde::Deserialize)]
pub struct LongLivedToken {
    /// The token (about 60 days).
    #[serde(deserialize_with = "secret")]
    pub access_token: SecretString,
    /// Seconds until it expires, when Meta says.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl std::fmt::Debug for LongLivedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LongLivedToken")
            .field("access_token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<SecretString, D::Error> {
    <String as serde::Deserialize>::deserialize(d).map(SecretString::from)
}

/// Exchange a short-lived user token (about an hour, as Graph API Explorer or Facebook Login give it)
/// for a long-lived one (about 60 days): `GET {api_base}/oauth/access_token?grant_type=fb_exchange_token`.
/// `api_base` is `https://graph.facebook.com/v25.0` (see [`MetaAdsConfig::api_base`](crate::MetaAdsConfig)).
/// A library helper: system-user tokens, which do not expire, are the better choice for a scheduled job.
pub async fn exchange_for_long_lived(
    api_base: &url::Url,
    app_id: &str,
    app_secret: &SecretString,
    short_lived: &SecretString,
    options: &growthflow_core::http::ClientOptions,
) -> growthflow_core::Result<LongLivedToken> {
    let client = growthflow_core::http::HttpClient::builder(Arc::new(crate::MetaPolicy::new(
        "token exchange",
    )))
    .options(options)
    .build()?;
    let mut url = api_base.clone();
    url.set_path(&format!(
        "{}/oauth/access_token",
        url.path().trim_end_matches('/')
    ));
    url.query_pairs_mut()
        .append_pair("grant_type", "fb_exchange_token")
        .append_pair("client_id", app_id)
        .append_pair("client_secret", app_secret.expose_secret())
        .append_pair("fb_exchange_token", short_lived.expose_secret());
    client
        .send("oauth", client.reqwest().get(url))
        .await?
        .json()
}
