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
