//! The one HTTP layer every connector goes through.
//!
//! A connector builds a request and names the endpoint it belongs to; [`HttpClient::send`] does the rest
//! the same way for all five platforms: waits for the endpoint's rate-limit windows and any pause the
//! platform asked for, applies credentials, enforces timeouts, classifies the answer through the
//! connector's [`ApiPolicy`], refreshes credentials once on a 401, and retries transient and throttled
//! failures with backoff that honours the platform's own delay. Only paths are logged, never query
//! strings, because some platforms put tokens there.
//!
//! Credentials go with every request, so a client with credentials is bound to one origin (scheme,
//! host, port — the connector's base URL): a request, next-page link or redirect elsewhere is refused
//! with [`Error::OffOrigin`] before anything is sent, and redirects are only followed on the
//! request's own origin. A body is read in chunks up to [`HttpConfig::max_response_bytes`]; a
//! successful answer that is meant as JSON but does not parse (cut in transit) is asked for once more.
//! A host name that does not resolve or a TLS certificate that is refused is final, not transient, and
//! one request never waits longer than [`RetryPolicy::max_total_wait`] in total.

mod base_url;
mod clock;
mod config;
pub mod metrics;
mod policy;
mod ratelimit;
mod retry;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};

pub use base_url::{join_path, parse_base_url};
pub use clock::{Clock, TestClock, TokioClock};
use config::MAX_REDIRECTS;
pub use config::{ClientOptions, HttpConfig, DEFAULT_MAX_RESPONSE_BYTES};
pub use policy::{default_classify, generic_error_message, ApiPolicy, DefaultPolicy, Response};
pub use ratelimit::{Quota, RateLimits};
pub use retry::{parse_retry_after, RetryPolicy, DEFAULT_MAX_WAIT};

use crate::auth::{Authenticator, NoAuth};
use crate::{Error, Result};

/// The shared client. Cheap to clone; clones share limits, pauses and credentials.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    config: HttpConfig,
    limits: RateLimits,
    auth: Arc<dyn Authenticator>,
    policy: Arc<dyn ApiPolicy>,
    clock: Arc<dyn Clock>,
    /// The only scheme, host and port [`send`](Self::send) talks to (credentials go with every request).
    origin: Option<Url>,
    /// Per endpoint: no request before this instant (set by [`ApiPolicy::pace`] and throttles).
    not_before: Arc<Mutex<HashMap<String, Instant>>>,
    /// The source's adaptive concurrency limit, when it reads side by side.
    adaptive: Option<Arc<crate::adaptive::AdaptiveLimiter>>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("platform", &self.policy.platform())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Builds an [`HttpClient`].
#[derive(Debug)]
pub struct HttpClientBuilder {
    config: HttpConfig,
    limits: RateLimits,
    auth: Arc<dyn Authenticator>,
    policy: Arc<dyn ApiPolicy>,
    clock: Arc<dyn Clock>,
    origin: Option<Url>,
    auth_set: bool,
    adaptive: Option<Arc<crate::adaptive::AdaptiveLimiter>>,
}

impl HttpClientBuilder {
    /// Timeouts and retry settings.
    pub fn config(mut self, config: HttpConfig) -> Self {
        self.config = config;
        self
    }
    /// Client-side rate limits.
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.limits = limits;
        self
    }
    /// Credentials. A client with credentials must also be given its [`origin`](Self::origin).
    pub fn auth(mut self, auth: Arc<dyn Authenticator>) -> Self {
        self.auth = auth;
        self.auth_set = true;
        self
    }
    /// The platform's base URL (the connector's `base_url` or the platform's own host): only its scheme,
    /// host and port count. [`HttpClient::send`] refuses any request elsewhere — a next-page link, a
    /// `Link` header, a redirect — with [`Error::OffOrigin`], so that credentials never leave it.
    pub fn origin(mut self, base_url: &Url) -> Self {
        let mut origin = base_url.clone();
        origin.set_path("/");
        origin.set_query(None);
        origin.set_fragment(None);
        self.origin = Some(origin);
        self
    }
    /// Clock and config from [`ClientOptions`].
    pub fn options(mut self, options: &ClientOptions) -> Self {
        self.clock = options.clock.clone();
        self.config = options.config.clone();
        self
    }
    /// The clock (tests pass a [`TestClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// An adaptive concurrency limit: every attempt of [`HttpClient::send`] holds one of its permits
    /// and reports its latency or overload signal to it.
    pub fn adaptive(mut self, limiter: Arc<crate::adaptive::AdaptiveLimiter>) -> Self {
        self.adaptive = Some(limiter);
        self
    }
    /// Build the client.
    pub fn build(self) -> Result<HttpClient> {
        if self.auth_set && self.origin.is_none() {
            return Err(Error::Internal(format!(
                "{}: an HTTP client with credentials needs the origin they belong to",
                self.policy.platform()
            )));
        }
        let inner = reqwest::Client::builder()
            .connect_timeout(self.config.connect_timeout)
            .timeout(self.config.request_timeout)
            .read_timeout(self.config.request_timeout)
            .user_agent(self.config.user_agent.clone())
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| Error::Internal(format!("could not build the HTTP client: {e}")))?;
        Ok(HttpClient {
            inner,
            config: self.config,
            // The windows are kept, and waited for, on the client's clock like every other wait.
            limits: self.limits.with_clock(self.clock.clone()),
            auth: self.auth,
            policy: self.policy,
            clock: self.clock,
            origin: self.origin,
            not_before: Arc::default(),
            adaptive: self.adaptive,
        })
    }
}

impl HttpClient {
    /// A builder for a platform described by `policy`.
    pub fn builder(policy: Arc<dyn ApiPolicy>) -> HttpClientBuilder {
        HttpClientBuilder {
            config: HttpConfig::default(),
            limits: RateLimits::default(),
            auth: Arc::new(NoAuth),
            policy,
            clock: Arc::new(TokioClock),
            origin: None,
            auth_set: false,
            adaptive: None,
        }
    }

    /// The underlying reqwest client, to build requests with.
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.inner
    }

    /// The policy this client classifies with.
    pub fn policy(&self) -> &dyn ApiPolicy {
        &*self.policy
    }

    /// The clock this client waits on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// `Ok` when `url` is on this client's origin (or the client has none); else the
    /// [`Error::OffOrigin`] that [`send`](Self::send) would return, for callers that want to refuse a
    /// next-page link as soon as they read it.
    pub fn check_origin(&self, url: &Url) -> Result<()> {
        match &self.origin {
            Some(origin) if origin.origin() != url.origin() => Err(Error::OffOrigin {
                what: "a request",
                host: host_of(url),
                allowed: origin.origin().ascii_serialization(),
            }),
            _ => Ok(()),
        }
    }

    /// Do not send anything on `endpoint` for `delay` from now (used by connectors that learn of a
    /// limit outside a response, and by [`send`](Self::send) for throttles).
    pub fn pause(&self, endpoint: &str, delay: Duration) {
        let until = self.clock.now() + delay;
        let mut map = self.not_before.lock().expect("pause lock");
        let entry = map.entry(endpoint.to_string()).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    async fn wait_turn(&self, endpoint: &str) {
        let wait = {
            let map = self.not_before.lock().expect("pause lock");
            map.get(endpoint)
                .and_then(|t| t.checked_duration_since(self.clock.now()))
        };
        if let Some(wait) = wait.filter(|w| !w.is_zero()) {
            tracing::debug!(endpoint, wait_ms = wait.as_millis() as u64, "pacing");
            self.clock.sleep(wait).await;
            metrics::count_wait(wait);
        }
        // The rate limiter waits on the same clock; a millisecond or less is not a wait.
        let limited = self.clock.now();
        self.limits.acquire(endpoint).await;
        let held = self.clock.now().saturating_duration_since(limited);
        if held > Duration::from_millis(1) {
            metrics::count_wait(held);
        }
    }

    /// Send `request` (built with [`reqwest`](Self::reqwest)) on `endpoint` — the name its rate limit is
    /// declared under — and return the successful response, retrying as the policy classifies.
    pub async fn send(&self, endpoint: &str, request: reqwest::RequestBuilder) -> Result<Response> {
        self.send_with(endpoint, request, |resp, path| async move {
            let checked = match self.malformed_json(&resp, &path) {
                Some(error) => Err(error),
                None => Ok(()),
            };
            (resp, checked)
        })
        .await
        .map(|(resp, ())| resp)
    }

    /// [`send`](Self::send), with the successful response decoded by `decode` as part of the request,
    /// so that a page is parsed once instead of once to check it and again to read it. A body that
    /// is not well-formed JSON is asked for once more and then fails with the same error as `send`
    /// gives; what `decode` refuses in a well-formed body is final at once.
    ///
    /// `decode` runs where the request is awaited. Running it as a task of its own on the runtime's
    /// workers measured no faster at 100,000 WooCommerce orders and raised the sync's peak memory by
    /// a fifth (each worker's allocations went to a malloc arena of its own).
    pub async fn send_decoded<T, F>(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
        decode: F,
    ) -> Result<(Response, T)>
    where
        F: Fn(&Response) -> Result<T>,
    {
        self.send_with(endpoint, request, |resp, _path| {
            let decoded = decode(&resp);
            async move { (resp, decoded) }
        })
        .await
    }

    /// The request loop of [`send`](Self::send): `accept` checks (and may decode) each successful
    /// response; a decode error on a body that is meant to be JSON is asked for once more.
    async fn send_with<T, A, Fut>(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
        accept: A,
    ) -> Result<(Response, T)>
    where
        A: Fn(Response, String) -> Fut,
        Fut: std::future::Future<Output = (Response, Result<T>)>,
    {
        let template = request
            .build()
            .map_err(|e| Error::Internal(format!("invalid request: {e}")))?;
        self.check_origin(template.url())?;
        let path = template.url().path().to_string();
        let mut attempt = 0u32;
        let mut throttles = 0u32;
        let mut refreshed = false;
        let mut decode_retried = false;
        let mut waited = Duration::ZERO;
        loop {
            self.wait_turn(endpoint).await;
            let mut req = template
                .try_clone()
                .ok_or_else(|| Error::Internal("request body cannot be replayed".into()))?;
            let permit = match &self.adaptive {
                Some(limiter) => Some(limiter.acquire(&path).await),
                None => None,
            };
            let started = Instant::now();
            let mut secrets = Vec::new();
            let outcome = match self.auth.authorize(&mut req).await {
                Ok(()) => {
                    secrets = request_secrets(&req);
                    self.execute_once(req).await
                }
                Err(e) if e.is_retryable() => Err(e),
                Err(e) => return Err(e),
            };
            if let Some(permit) = permit {
                permit.finish_response(&outcome);
            }
            let error = match outcome {
                Ok(resp) => {
                    if let Some(pause) = self.policy.pace(&resp) {
                        self.pause(endpoint, pause);
                    }
                    refuse_off_origin_redirect(template.url(), &resp)?;
                    let classified = self.policy.classify(&resp);
                    match classified.map(|e| e.without_secrets(&secrets)) {
                        None => {
                            let ms = started.elapsed().as_millis() as u64;
                            let status = resp.status.as_u16();
                            let (resp, accepted) = accept(resp, path.clone()).await;
                            if let Err(error) = accepted {
                                // Only a body that is not well-formed JSON is asked for again (the
                                // check parses it once more, on this failure path only); a decoder
                                // refusing a whole page is final, as its page will not change.
                                let malformed = match &error {
                                    Error::Decode { .. } => self.malformed_json(&resp, &path),
                                    _ => None,
                                };
                                let Some(error) = malformed else {
                                    return Err(error);
                                };
                                if decode_retried {
                                    return Err(error);
                                }
                                // A body cut at a chunk boundary by a proxy or a dropped connection
                                // reads as well-formed but truncated JSON; asking once more is cheap.
                                decode_retried = true;
                                tracing::info!(endpoint, path = %path, error = %error,
                                    "malformed JSON; asking once more");
                                self.clock.sleep(self.config.retry.backoff(0)).await;
                                metrics::count_wait(self.config.retry.backoff(0));
                                continue;
                            }
                            tracing::debug!(endpoint, path = %path, status, ms, "ok");
                            return accepted.map(|v| (resp, v));
                        }
                        Some(Error::Auth { message })
                            if resp.status == StatusCode::UNAUTHORIZED && !refreshed =>
                        {
                            refreshed = true;
                            if self.auth.on_unauthorized().await? {
                                tracing::info!(endpoint, "credentials refreshed after a 401");
                                continue;
                            }
                            Error::Auth { message }
                        }
                        Some(e) => e,
                    }
                }
                Err(e) => e,
            };
            if !error.is_retryable() {
                // Not a warning here: the caller decides what a final answer means (Shopify asks
                // again with a smaller page on MAX_COST_EXCEEDED; the engine warns about a failed
                // stream).
                tracing::debug!(endpoint, path = %path, attempt, error = %error, "request failed");
                return Err(error);
            }
            if self.budget_spent(&error, attempt, throttles) {
                tracing::warn!(endpoint, path = %path, attempt, error = %error,
                    "request failed; retries exhausted");
                return Err(error);
            }
            let delay = self.retry_delay(endpoint, &error, attempt)?;
            let error = match self.total_wait_left(waited, delay, error) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(endpoint, path = %path, error = %e, "request failed; waited too long");
                    return Err(e);
                }
            };
            waited += delay;
            tracing::info!(
                endpoint,
                path = %path,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "retrying"
            );
            self.clock.sleep(delay).await;
            metrics::count_wait(delay);
            Self::count(&error, &mut attempt, &mut throttles);
        }
    }

    /// True when `error` has used up its kind of retry budget: platform-paced waits and plain retries
    /// are counted apart (see [`RetryPolicy::max_throttle_waits`]).
    fn budget_spent(&self, error: &Error, attempt: u32, throttles: u32) -> bool {
        if error.retry_after().is_some() {
            throttles >= self.config.retry.max_throttle_waits
        } else {
            attempt >= self.config.retry.max_retries
        }
    }

    /// `Ok(error)` (to retry) when waiting `delay` more keeps this request within
    /// [`RetryPolicy::max_total_wait`]; else the error to return, saying why it was not retried.
    fn total_wait_left(&self, waited: Duration, delay: Duration, error: Error) -> Result<Error> {
        let budget = self.config.retry.max_total_wait;
        if waited + delay <= budget {
            return Ok(error);
        }
        let why = format!(
            "; not retried: the next wait ({}s) would pass the {}s this request may wait in total",
            delay.as_secs(),
            budget.as_secs()
        );
        Err(match error {
            Error::Transient { message } => Error::Transient {
                message: message + &why,
            },
            Error::Throttled {
                retry_after,
                message,
            } => Error::Throttled {
                retry_after,
                message: message + &why,
            },
            other => other,
        })
    }

    fn count(error: &Error, attempt: &mut u32, throttles: &mut u32) {
        if error.retry_after().is_some() {
            *throttles += 1;
        } else {
            *attempt += 1;
        }
    }

    /// How long to wait before retrying after `error`: the platform's own delay when it gave one (and
    /// then every request on the endpoint waits, not just this one), else backoff. A delay beyond
    /// `max_wait` ends the retries with a message saying to run again later.
    fn retry_delay(&self, endpoint: &str, error: &Error, attempt: u32) -> Result<Duration> {
        match error.retry_after() {
            Some(d) if d > self.config.retry.max_wait => Err(Error::Throttled {
                retry_after: Some(d),
                message: format!(
                    "{} asked to wait {}s, longer than the {}s we wait; run again later",
                    self.policy.platform(),
                    d.as_secs(),
                    self.config.retry.max_wait.as_secs()
                ),
            }),
            Some(d) => {
                self.pause(endpoint, d);
                Ok(d)
            }
            None => Ok(self.config.retry.backoff(attempt)),
        }
    }

    /// A [`Error::Decode`] when a successful answer says or looks like JSON (not HTML, which the
    /// connectors explain themselves) but does not parse.
    fn malformed_json(&self, resp: &Response, path: &str) -> Option<Error> {
        if !json_expected(resp) {
            return None;
        }
        let err = serde_json::from_slice::<serde::de::IgnoredAny>(&resp.body).err()?;
        let Error::Decode { message } = Error::decode(err, &resp.body) else {
            return None;
        };
        Some(Error::Decode {
            message: format!("{} {path}: {message}", self.policy.platform()),
        })
    }

    async fn execute_once(&self, req: reqwest::Request) -> Result<Response> {
        let path = req.url().path().to_string();
        metrics::count_request();
        let resp = self.inner.execute(req).await.map_err(transport_error)?;
        self.read_capped(resp, &path).await
    }

    /// Read a body in chunks, failing with [`Error::ResponseTooLarge`] as soon as it — or its announced
    /// `Content-Length` — passes the cap, so a runaway answer never sits whole in memory.
    async fn read_capped(&self, mut resp: reqwest::Response, path: &str) -> Result<Response> {
        let limit = self.config.max_response_bytes;
        let too_large = || Error::ResponseTooLarge {
            what: format!("{} {path}", self.policy.platform()),
            limit,
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0).min(1 << 20) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Send and return the raw streaming response after the status checks (for large downloads such as
    /// Shopify's bulk JSONL). Retries only happen before the body starts. No credentials are applied:
    /// such downloads are pre-signed URLs on a storage host, which must never receive the platform's
    /// token.
    pub async fn send_raw(
        &self,
        endpoint: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let template = request
            .build()
            .map_err(|e| Error::Internal(format!("invalid request: {e}")))?;
        let mut attempt = 0u32;
        let mut throttles = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            self.wait_turn(endpoint).await;
            let mut req = template
                .try_clone()
                .ok_or_else(|| Error::Internal("request body cannot be replayed".into()))?;
            // A whole file, not a page: the request's deadline is the download's (the idle read
            // timeout still ends a stalled one).
            *req.timeout_mut() = Some(self.config.download_timeout);
            metrics::count_request();
            let error = match self.inner.execute(req).await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status();
                    let r = match self.read_capped(resp, template.url().path()).await {
                        Ok(r) => r,
                        Err(e) if e.is_retryable() => Response {
                            status,
                            headers: HeaderMap::new(),
                            body: Vec::new(),
                        },
                        Err(e) => return Err(e),
                    };
                    refuse_off_origin_redirect(template.url(), &r)?;
                    self.policy
                        .classify(&r)
                        .unwrap_or_else(|| Error::Transient {
                            message: format!("unexpected status {status}"),
                        })
                }
                Err(e) => transport_error(e),
            };
            if !error.is_retryable() || self.budget_spent(&error, attempt, throttles) {
                return Err(error);
            }
            let delay = self.retry_delay(endpoint, &error, attempt)?;
            let error = self.total_wait_left(waited, delay, error)?;
            waited += delay;
            self.clock.sleep(delay).await;
            metrics::count_wait(delay);
            Self::count(&error, &mut attempt, &mut throttles);
        }
    }
}

/// Follow a redirect only to the origin of the request that started it (checked again at every hop), so
/// no header — `Authorization`, which reqwest strips, but also `X-Shopify-Access-Token`, which it does
/// not know is a credential — ever reaches another host. A stopped redirect comes back as the 3xx and
/// [`refuse_off_origin_redirect`] turns it into a clear error.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(Url::origin);
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if first.is_some_and(|o| o == attempt.url().origin()) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Whether a successful answer's body is meant to be JSON: it says so or looks so, and is not an HTML
/// page (which the connectors explain themselves) or empty.
fn json_expected(resp: &Response) -> bool {
    let content_type = resp.header("content-type").unwrap_or_default();
    let says_json = content_type.contains("json")
        && !content_type.contains("jsonl")
        && !content_type.contains("ndjson");
    let first = resp.body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let looks_json = matches!(first, Some(b'{') | Some(b'['));
    first.is_some() && !resp.is_html() && (says_json || looks_json)
}

/// A 3xx that points at another origin (the redirect policy stopped there) as [`Error::OffOrigin`].
fn refuse_off_origin_redirect(requested: &Url, resp: &Response) -> Result<()> {
    if !resp.status.is_redirection() {
        return Ok(());
    }
    let Some(target) = resp.header("location").and_then(|l| requested.join(l).ok()) else {
        return Ok(());
    };
    if target.origin() == requested.origin() {
        return Ok(());
    }
    Err(Error::OffOrigin {
        what: "a redirect",
        host: host_of(&target),
        allowed: requested.origin().ascii_serialization(),
    })
}

/// `host[:port]` of `url`: what an error may say about a URL (its path and query may hold tokens).
fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("(no host)");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Connection failures, timeouts and bodies cut short are transient; the URL (which may carry a token)
/// is stripped from the message.
fn transport_error(e: reqwest::Error) -> Error {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the connection dropped while reading the body"
    } else {
        "request failed"
    };
    let host = e.url().map_or_else(|| "the host".to_string(), host_of);
    let e = e.without_url();
    // reqwest's own text ("error sending request") hides the cause (DNS, refused, TLS); the chain says it.
    let mut message = format!("{what}: {e}");
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        message.push_str(&format!(": {c}"));
        cause = c.source();
    }
    classify_transport(message, &host)
}

/// A failure that asking again will not cure — the host name does not resolve, its certificate is not
/// valid for it, or it does not speak TLS — is final, with what to check; anything else on the way is
/// transient.
fn classify_transport(message: String, host: &str) -> Error {
    let chain = message.to_ascii_lowercase();
    let advice = if chain.contains("dns error") || chain.contains("failed to lookup address") {
        format!("could not resolve the host name {host}: check the source's url / base_url")
    } else if chain.contains("invalid peer certificate") {
        format!(
            "{host}'s TLS certificate was refused: check the source's url / base_url (and any proxy \
             in between)"
        )
    } else if chain.contains("received corrupt message")
        || chain.contains("peer is incompatible")
        || chain.contains("received fatal alert")
    {
        format!(
            "the TLS handshake with {host} failed: check the source's url / base_url (http or https)"
        )
    } else {
        return Error::Transient { message };
    };
    Error::Unreachable {
        message: format!("{advice}; not retried ({message})"),
    }
}

/// Query parameters that carry a credential, by name.
const SECRET_PARAMS: &[&str] = &[
    "access_token",
    "token",
    "api_key",
    "key",
    "consumer_key",
    "consumer_secret",
    "oauth_consumer_key",
    "oauth_signature",
    "oauth_token",
    "client_secret",
    "refresh_token",
    "password",
    "secret",
];

/// The credentials `req` carries: the value of each header marked sensitive (its last word, after a
/// scheme such as `Bearer`) and of each query parameter in [`SECRET_PARAMS`]. Short values are left
/// out: replacing them could blank ordinary words of an error message, and no real credential is
/// that short.
fn request_secrets(req: &reqwest::Request) -> Vec<String> {
    const SHORTEST: usize = 8;
    let mut secrets: Vec<String> = req
        .headers()
        .values()
        .filter(|v| v.is_sensitive())
        .filter_map(|v| {
            v.to_str()
                .ok()?
                .split_whitespace()
                .last()
                .map(str::to_string)
        })
        .filter(|s| s.len() >= SHORTEST)
        .collect();
    secrets.extend(
        req.url()
            .query_pairs()
            .filter(|(k, v)| SECRET_PARAMS.contains(&k.as_ref()) && v.len() >= SHORTEST)
            .map(|(_, v)| v.into_owned()),
    );
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_and_dns_failures_are_final_and_the_rest_transient() {
        let cert = classify_transport(
            "could not connect: error sending request: client error (Connect): invalid peer \
             certificate: UnknownIssuer"
                .into(),
            "shop.example",
        );
        assert!(!cert.is_retryable());
        assert!(
            cert.to_string()
                .starts_with("shop.example's TLS certificate was refused"),
            "{cert}"
        );
        let dns = classify_transport(
            "could not connect: error sending request: client error (Connect): dns error: failed \
             to lookup address information: Temporary failure in name resolution"
                .into(),
            "shop.example",
        );
        assert!(!dns.is_retryable());
        let refused = classify_transport(
            "could not connect: error sending request: client error (Connect): tcp connect error: \
             Connection refused (os error 111)"
                .into(),
            "shop.example",
        );
        assert!(refused.is_retryable());
    }
}
