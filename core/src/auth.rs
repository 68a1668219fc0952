//! Credentials, kept secret and applied to requests in one place.
//!
//! A [`TokenProvider`] knows how to get a token (a static key, or an OAuth2 refresh-token grant that
//! caches the access token and rotates the refresh token); an [`Authenticator`] knows where the platform
//! wants it (a header with a prefix, a query parameter, or a signature the connector computes). The HTTP
//! layer calls [`Authenticator::on_unauthorized`] once on a 401 so that an expired token is refreshed
//! and the request replayed, instead of failing a long sync an hour in.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::{Error, Result};

/// Something that yields an access token.
#[async_trait]
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A token valid now (refreshing it first if it is about to expire).
    async fn token(&self) -> Result<SecretString>;

    /// Forget the cached token after a 401. Returns true when a fresh one can be obtained, so the request
    /// is worth replaying.
    async fn invalidate(&self) -> Result<bool> {
        Ok(false)
    }
}

/// A key that never changes: API keys, Admin API access tokens, system-user tokens.
#[derive(Clone)]
pub struct StaticToken(SecretString);

impl StaticToken {
    /// Wrap a secret.
    pub fn new(secret: SecretString) -> Self {
        StaticToken(secret)
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken([REDACTED])")
    }
}

#[async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self) -> Result<SecretString> {
        Ok(self.0.clone())
    }
}

/// Called with the new refresh token whenever the authorisation server rotates it. Rotating grants
/// (Shopify expiring offline tokens, Klaviyo) invalidate the old token, so failing to persist the new one
/// locks the user out: the callback's error fails the refresh loudly.
pub type RotationHook = Arc<dyn Fn(&SecretString) -> Result<()> + Send + Sync>;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with client id and secret (Klaviyo).
    BasicAuth,
    /// `client_id` and `client_secret` in the form body (Google, Shopify).
    RequestBody,
}

/// The OAuth2 refresh-token grant (RFC 6749 §6) through the `oauth2` crate, with the access token cached
/// until shortly before it expires and the refresh token rotated when the server issues a new one.
pub struct OAuth2RefreshToken {
    client_id: String,
    client_secret: Option<SecretString>,
    token_url: String,
    client_auth: ClientAuth,
    refresh_token: Mutex<SecretString>,
    cached: TokenCache,
    on_rotate: Option<RotationHook>,
    http: oauth2::reqwest::Client,
    /// Extra advice appended to an `invalid_grant` error (e.g. Google's 7-day testing-app expiry).
    invalid_grant_hint: String,
}

impl fmt::Debug for OAuth2RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2RefreshToken")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .field("client_secret", &"[REDACTED]")
            .field("refresh_token", &"[REDACTED]")
            .finish()
    }
}

/// Refresh this long before the reported expiry, so a token never expires mid-request.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// An access token kept until it is due (`None`: until a 401 says otherwise), for every provider that
/// exchanges something for short-lived tokens. Concurrent callers wait for one fetch instead of each
/// asking the token endpoint.
#[derive(Default)]
pub struct TokenCache {
    slot: Mutex<Option<(SecretString, Option<Instant>)>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenCache([REDACTED])")
    }
}

impl TokenCache {
    /// The cached token while `now` is before it is due, else the one `fetch` returns (kept with
    /// when it is due).
    pub async fn get_or_fetch<F, Fut>(&self, now: Instant, fetch: F) -> Result<SecretString>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(SecretString, Option<Instant>)>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((token, due)) = slot.as_ref() {
            if due.is_none_or(|due| now < due) {
                return Ok(token.clone());
            }
        }
        let (token, due) = fetch().await?;
        *slot = Some((token.clone(), due));
        Ok(token)
    }

    /// Forget the token (after a 401), so the next call fetches a new one.
    pub async fn clear(&self) {
        *self.slot.lock().await = None;
    }
}

impl OAuth2RefreshToken {
    /// A refresh-token grant against `token_url`.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: Option<SecretString>,
        refresh_token: SecretString,
        token_url: impl Into<String>,
        client_auth: ClientAuth,
    ) -> Result<Self> {
        let http = oauth2::reqwest::ClientBuilder::new()
            .redirect(oauth2::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Internal(format!("could not build the OAuth HTTP client: {e}")))?;
        Ok(OAuth2RefreshToken {
            client_id: client_id.into(),
            client_secret,
            token_url: token_url.into(),
            client_auth,
            refresh_token: Mutex::new(refresh_token),
            cached: TokenCache::default(),
            on_rotate: None,
            http,
            invalid_grant_hint: String::new(),
        })
    }

    /// Persist rotated refresh tokens through `hook`.
    pub fn on_rotate(mut self, hook: RotationHook) -> Self {
        self.on_rotate = Some(hook);
        self
    }

    /// Advice for the user when the refresh token is rejected.
    pub fn invalid_grant_hint(mut self, hint: impl Into<String>) -> Self {
        self.invalid_grant_hint = hint.into();
        self
    }

    async fn refresh(&self) -> Result<(SecretString, Option<Instant>)> {
        use oauth2::basic::BasicClient;
        use oauth2::{AuthType, ClientId, ClientSecret, RefreshToken};
        use oauth2::{TokenResponse, TokenUrl};

        let token_url = TokenUrl::new(self.token_url.clone())
            .map_err(|e| Error::config("token_url", e.to_string()))?;
        let mut client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_token_uri(token_url)
            .set_auth_type(match self.client_auth {
                ClientAuth::BasicAuth => AuthType::BasicAuth,
                ClientAuth::RequestBody => AuthType::RequestBody,
            });
        if let Some(secret) = &self.client_secret {
            client =
                client.set_client_secret(ClientSecret::new(secret.expose_secret().to_string()));
        }
        let mut refresh_token = self.refresh_token.lock().await;
        let grant = RefreshToken::new(refresh_token.expose_secret().to_string());
        // The oauth2 crate hands every non-200 body to its error parser, so an outage page would read
        // as a malformed token response; answer 5xx/408/429 as transport errors instead, which the
        // mapping below turns into retryable ones.
        let http = self.http.clone();
        let send = move |req: oauth2::HttpRequest| {
            let http = http.clone();
            async move { checked_token_call(http, req).await }
        };
        let response = client
            .exchange_refresh_token(&grant)
            .request_async(&send)
            .await
            .map_err(|e| token_error(e, &self.invalid_grant_hint))?;
        if let Some(new_refresh) = response.refresh_token() {
            let new_refresh = SecretString::from(new_refresh.secret().to_string());
            if new_refresh.expose_secret() != refresh_token.expose_secret() {
                if let Some(hook) = &self.on_rotate {
                    hook(&new_refresh)?;
                }
                *refresh_token = new_refresh;
            }
        }
        let access = SecretString::from(response.access_token().secret().to_string());
        let expires = response
            .expires_in()
            .map(|d| Instant::now() + d.saturating_sub(EXPIRY_MARGIN));
        Ok((access, expires))
    }
}

/// What a failed token request means for the user: a rejected grant is an auth error with advice, an
/// unreachable or failing endpoint is transient.
fn token_error(
    e: oauth2::RequestTokenError<
        oauth2::HttpClientError<oauth2::reqwest::Error>,
        oauth2::basic::BasicErrorResponse,
    >,
    invalid_grant_hint: &str,
) -> Error {
    use oauth2::basic::BasicErrorResponseType;
    use oauth2::RequestTokenError;
    match e {
        RequestTokenError::ServerResponse(r) => {
            let desc = r.error_description().cloned().unwrap_or_default();
            if *r.error() == BasicErrorResponseType::InvalidGrant {
                Error::Auth {
                    message: format!(
                        "the refresh token was rejected (invalid_grant{}{desc}); authorise again to get a new one{invalid_grant_hint}",
                        if desc.is_empty() { "" } else { ": " },
                    ),
                }
            } else {
                Error::Auth {
                    message: format!("token endpoint refused the grant: {} {desc}", r.error()),
                }
            }
        }
        RequestTokenError::Request(e) => Error::Transient {
            message: format!("token endpoint unreachable: {e}"),
        },
        RequestTokenError::Parse(e, body) => Error::decode(e, &body),
        RequestTokenError::Other(m) => Error::Other(m),
    }
}

/// The OAuth2 client-credentials grant (RFC 6749 §4.4): an app's own id and secret exchanged for a
/// short-lived access token (Shopify's apps on stores of their own organisation), cached until shortly
/// before it expires and fetched again after a 401.
pub struct OAuth2ClientCredentials {
    client_id: String,
    client_secret: SecretString,
    token_url: String,
    client_auth: ClientAuth,
    cached: TokenCache,
    http: oauth2::reqwest::Client,
}

impl fmt::Debug for OAuth2ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2ClientCredentials")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .field("client_secret", &"[REDACTED]")
            .finish()
    }
}

impl OAuth2ClientCredentials {
    /// A client-credentials grant against `token_url`.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: SecretString,
        token_url: impl Into<String>,
        client_auth: ClientAuth,
    ) -> Result<Self> {
        let http = oauth2::reqwest::ClientBuilder::new()
            .redirect(oauth2::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Internal(format!("could not build the OAuth HTTP client: {e}")))?;
        Ok(OAuth2ClientCredentials {
            client_id: client_id.into(),
            client_secret,
            token_url: token_url.into(),
            client_auth,
            cached: TokenCache::default(),
            http,
        })
    }

    async fn fetch(&self) -> Result<(SecretString, Option<Instant>)> {
        use oauth2::basic::BasicClient;
        use oauth2::{AuthType, ClientId, ClientSecret, TokenResponse, TokenUrl};
        let token_url = TokenUrl::new(self.token_url.clone())
            .map_err(|e| Error::config("token_url", e.to_string()))?;
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                self.client_secret.expose_secret().to_string(),
            ))
            .set_token_uri(token_url)
            .set_auth_type(match self.client_auth {
                ClientAuth::BasicAuth => AuthType::BasicAuth,
                ClientAuth::RequestBody => AuthType::RequestBody,
            });
        let http = self.http.clone();
        let send = move |req: oauth2::HttpRequest| {
            let http = http.clone();
            async move { checked_token_call(http, req).await }
        };
        let response = client
            .exchange_client_credentials()
            .request_async(&send)
            .await
            .map_err(|e| token_error(e, ""))?;
        let access = SecretString::from(response.access_token().secret().to_string());
        let expires = response
            .expires_in()
            .map(|d| Instant::now() + d.saturating_sub(EXPIRY_MARGIN));
        Ok((access, expires))
    }
}

#[async_trait]
impl TokenProvider for OAuth2ClientCredentials {
    async fn token(&self) -> Result<SecretString> {
        self.cached
            .get_or_fetch(Instant::now(), || self.fetch())
            .await
    }

    async fn invalidate(&self) -> Result<bool> {
        self.cached.clear().await;
        Ok(true)
    }
}

async fn checked_token_call(
    http: oauth2::reqwest::Client,
    req: oauth2::HttpRequest,
) -> std::result::Result<oauth2::HttpResponse, oauth2::HttpClientError<oauth2::reqwest::Error>> {
    use oauth2::AsyncHttpClient;
    let resp = http.call(req).await?;
    let status = resp.status().as_u16();
    if status >= 500 || status == 408 || status == 429 {
        return Err(oauth2::HttpClientError::Other(format!(
            "the token endpoint answered {status}"
        )));
    }
    // RFC 6749 makes `token_type` required, but Shopify's refresh answer leaves it out; every grant
    // growthflow uses issues bearer tokens, so a missing type is read as bearer instead of failing.
    if (200..300).contains(&status) {
        if let Ok(serde_json::Value::Object(mut body)) =
            serde_json::from_slice::<serde_json::Value>(resp.body())
        {
            if !body.contains_key("token_type") {
                body.insert("token_type".into(), "bearer".into());
                let (parts, _) = resp.into_parts();
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                return Ok(oauth2::HttpResponse::from_parts(parts, bytes));
            }
        }
    }
    Ok(resp)
}

#[async_trait]
impl TokenProvider for OAuth2RefreshToken {
    async fn token(&self) -> Result<SecretString> {
        self.cached
            .get_or_fetch(Instant::now(), || self.refresh())
            .await
    }

    async fn invalidate(&self) -> Result<bool> {
        self.cached.clear().await;
        Ok(true)
    }
}

/// Applies credentials to an outgoing request.
#[async_trait]
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// Add credentials to `req` (headers, query parameters or a signature).
    async fn authorize(&self, req: &mut reqwest::Request) -> Result<()>;

    /// Called once after a 401; true means credentials were refreshed and the request should be replayed.
    async fn on_unauthorized(&self) -> Result<bool> {
        Ok(false)
    }
}

/// No credentials (public endpoints, token endpoints).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAuth;

#[async_trait]
impl Authenticator for NoAuth {
    async fn authorize(&self, _req: &mut reqwest::Request) -> Result<()> {
        Ok(())
    }
}

/// A token in a header, with an optional prefix: `Authorization: Bearer …`,
/// `X-Shopify-Access-Token: …`, `Authorization: Klaviyo-API-Key …`.
#[derive(Debug, Clone)]
pub struct HeaderAuth {
    header: HeaderName,
    prefix: &'static str,
    provider: Arc<dyn TokenProvider>,
}

impl HeaderAuth {
    /// `header: {prefix}{token}`.
    pub fn new(header: HeaderName, prefix: &'static str, provider: Arc<dyn TokenProvider>) -> Self {
        HeaderAuth {
            header,
            prefix,
            provider,
        }
    }

    /// `Authorization: Bearer {token}`.
    pub fn bearer(provider: Arc<dyn TokenProvider>) -> Self {
        Self::new(reqwest::header::AUTHORIZATION, "Bearer ", provider)
    }
}

#[async_trait]
impl Authenticator for HeaderAuth {
    async fn authorize(&self, req: &mut reqwest::Request) -> Result<()> {
        let token = self.provider.token().await?;
        let mut value = HeaderValue::from_str(&format!("{}{}", self.prefix, token.expose_secret()))
            .map_err(|_| Error::Auth {
                message: "the token contains characters that cannot be sent in a header".into(),
            })?;
        value.set_sensitive(true);
        req.headers_mut().insert(self.header.clone(), value);
        Ok(())
    }

    async fn on_unauthorized(&self) -> Result<bool> {
        self.provider.invalidate().await
    }
}

/// A token as a query parameter (Meta's `access_token`). URLs carrying it are never logged by the HTTP
/// layer, which logs paths only.
#[derive(Debug, Clone)]
pub struct QueryAuth {
    param: &'static str,
    provider: Arc<dyn TokenProvider>,
}

impl QueryAuth {
    /// `?{param}={token}`.
    pub fn new(param: &'static str, provider: Arc<dyn TokenProvider>) -> Self {
        QueryAuth { param, provider }
    }
}

#[async_trait]
impl Authenticator for QueryAuth {
    async fn authorize(&self, req: &mut reqwest::Request) -> Result<()> {
        let token = self.provider.token().await?;
        let url = req.url_mut();
        let others: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != self.param)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(others)
            .append_pair(self.param, token.expose_secret());
        Ok(())
    }

    async fn on_unauthorized(&self) -> Result<bool> {
        self.provider.invalidate().await
    }
}
