//! Shopify's ways of authenticating the Admin API, all sent as `X-Shopify-Access-Token`.
//!
//! - A static Admin API access token (`shpat_…`) of a custom app: [`StaticToken`].
//! - The client-credentials grant of an app developed by the shop's own organisation (~24 h tokens):
//!   [`OAuth2ClientCredentials`].
//! - Expiring offline tokens (since December 2025, mandatory for public apps from 2027): a 60-minute
//!   access token refreshed with the refresh-token grant at `/admin/oauth/access_token`, where Shopify
//!   *rotates* the refresh token on every refresh: [`OAuth2RefreshToken`] with the client id and secret
//!   in the request body, and a rotation hook so the new refresh token can be persisted.
//!
//! Both come from growthflow-core, so caching, refresh-on-401 and redaction behave as for every platform.

use std::sync::Arc;

use reqwest::header::HeaderName;

use growthflow_core::auth::{
    ClientAuth, HeaderAuth, OAuth2ClientCredentials, OAuth2RefreshToken, RotationHook, StaticToken,
    TokenProvider,
};
use growthflow_core::Result;

use crate::config::{Credentials, ShopifyConfig};

/// The header Shopify reads the token from (no `Bearer` prefix).
pub const ACCESS_TOKEN_HEADER: &str = "x-shopify-access-token";

/// The authenticator for `config`, with `on_rotate` receiving every new refresh token Shopify issues.
/// Without a hook the rotation is only logged (never the token itself), and the configured refresh
/// token stops working once the new one is used — see the README.
pub fn authenticator(
    source: &str,
    config: &ShopifyConfig,
    on_rotate: Option<RotationHook>,
) -> Result<HeaderAuth> {
    let provider: Arc<dyn TokenProvider> = match config.credentials(source)? {
        Credentials::AccessToken(token) => Arc::new(StaticToken::new(token)),
        Credentials::ClientCredentials {
            client_id,
            client_secret,
        } => Arc::new(OAuth2ClientCredentials::new(
            client_id,
            client_secret,
            config.token_url(source)?.to_string(),
            ClientAuth::RequestBody,
        )?),
        Credentials::RefreshToken {
            client_id,
            client_secret,
            refresh_token,
        } => {
            let source_name = source.to_string();
            let hook = on_rotate.unwrap_or_else(|| {
                Arc::new(move |_new| {
                    tracing::warn!(
                        source = %source_name,
                        "Shopify rotated the refresh token; it is held in memory only — \
                         store the new one (library users: pass a rotation hook)"
                    );
                    Ok(())
                })
            });
            Arc::new(
                OAuth2RefreshToken::new(
                    client_id,
                    Some(client_secret),
                    refresh_token,
                    config.token_url(source)?.to_string(),
                    ClientAuth::RequestBody,
                )?
                .on_rotate(hook)
                .invalid_grant_hint(
                    "; reinstall or re-authorise the app on the shop to get a new expiring offline token",
                ),
            )
        }
    };
    Ok(HeaderAuth::new(
        HeaderName::from_static(ACCESS_TOKEN_HEADER),
        "",
        provider,
    ))
}
