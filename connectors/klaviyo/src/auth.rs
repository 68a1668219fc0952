//! Klaviyo's two ways of authenticating, both as a header core applies on every attempt.
//!
//! A private API key goes out as `Authorization: Klaviyo-API-Key pk_…`; an OAuth app's access token as
//! `Authorization: Bearer …`, obtained from `POST /oauth/token` with the refresh-token grant and HTTP
//! Basic client authentication (Klaviyo accepts no other). Klaviyo may rotate the refresh token on each
//! refresh and then rejects the old one, so a rotation is handed to a hook that must persist it.

use std::sync::Arc;

use reqwest::header::AUTHORIZATION;
use secrecy::SecretString;
use url::Url;

use growthflow_core::auth::{
    Authenticator, ClientAuth, HeaderAuth, OAuth2RefreshToken, RotationHook, StaticToken,
};
use growthflow_core::Result;

use crate::config::Credentials;

/// The prefix of a private API key in the `Authorization` header.
pub const API_KEY_PREFIX: &str = "Klaviyo-API-Key ";

/// The authenticator for `credentials`; `token_url` is used by OAuth only, `on_rotate` receives rotated
/// refresh tokens (without one a rotation is only logged, and the next process starts from the old token).
pub fn authenticator(
    source: &str,
    credentials: Credentials,
    token_url: &Url,
    on_rotate: Option<RotationHook>,
) -> Result<Arc<dyn Authenticator>> {
    Ok(match credentials {
        Credentials::ApiKey(key) => Arc::new(HeaderAuth::new(
            AUTHORIZATION,
            API_KEY_PREFIX,
            Arc::new(StaticToken::new(key)),
        )),
        Credentials::OAuth {
            client_id,
            client_secret,
            refresh_token,
        } => {
            let hook = on_rotate.unwrap_or_else(|| log_rotation(source));
            let grant = OAuth2RefreshToken::new(
                client_id,
                Some(client_secret),
                refresh_token,
                token_url.as_str(),
                ClientAuth::BasicAuth,
            )?
            .on_rotate(hook)
            .invalid_grant_hint(format!(
                "; reinstall the app (or re-run its OAuth flow) and set sources.{source}.refresh_token"
            ));
            Arc::new(HeaderAuth::bearer(Arc::new(grant)))
        }
    })
}

/// The default rotation hook: say that the stored refresh token is now stale (never the token itself).
fn log_rotation(source: &str) -> RotationHook {
    let source = source.to_string();
    Arc::new(move |_new: &SecretString| {
        tracing::warn!(
            source = %source,
            "Klaviyo rotated the OAuth refresh token; the configured refresh_token will stop working once \
             this run ends unless the new one is saved (library users: Klaviyo::with_rotation_hook)"
        );
        Ok(())
    })
}
