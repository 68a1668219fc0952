//! A client's settings: timeouts, retries and limits, and what a connector's owner may override.

use std::sync::Arc;
use std::time::Duration;

use super::{Clock, RetryPolicy, TokioClock};

/// Timeouts, retries and limits of one client.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout, body included; also the longest wait for any one read of a response,
    /// so that a connection that stalls fails this soon whatever the request.
    pub request_timeout: Duration,
    /// Whole-download timeout of [`HttpClient::send_raw`](super::HttpClient::send_raw) (Shopify's bulk
    /// result files, which can be gigabytes and take longer than any page): a download that stalls
    /// still fails after `request_timeout` without a byte.
    pub download_timeout: Duration,
    /// Retry behaviour.
    pub retry: RetryPolicy,
    /// Sent as `User-Agent`.
    pub user_agent: String,
    /// The largest response body [`HttpClient::send`](super::HttpClient::send) reads into memory. A page is bounded by its page
    /// size, so a body past this is a misbehaving server or proxy, and reading on would exhaust memory.
    pub max_response_bytes: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            download_timeout: default_download_timeout(),
            retry: RetryPolicy::default(),
            user_agent: default_user_agent(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// 256 MiB: far above any page the five platforms send, far below what would exhaust a small machine.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

/// The most redirects followed for one request (all on the request's own origin).
pub(super) const MAX_REDIRECTS: usize = 10;

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_download_timeout() -> Duration {
    Duration::from_secs(6 * 3600)
}

fn default_user_agent() -> String {
    format!("growthflow/{}", env!("CARGO_PKG_VERSION"))
}

/// What a connector's owner may override when building it: the clock (tests pass a [`TestClock`](super::TestClock) to
/// assert waits without sleeping) and timeouts/retries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The clock the client waits on.
    pub clock: Arc<dyn Clock>,
    /// Timeouts and retries.
    pub config: HttpConfig,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            clock: Arc::new(TokioClock),
            config: HttpConfig::default(),
        }
    }
}

impl ClientOptions {
    /// Options with a test clock.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        ClientOptions {
            clock,
            ..Default::default()
        }
    }
}
