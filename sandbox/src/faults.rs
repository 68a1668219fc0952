//! Faults that tests and the demo switch on at run time: rate limiting, server errors, slowness and
//! connections dropped mid-body.
//!
//! The faults sit in front of every simulated platform (each platform's router is wrapped by the
//! fault middleware), like a host, CDN or WAF would, so they hit a request before the platform's own
//! authentication. [`Faults::only_platform`] narrows them to one platform's path prefix.
//!
//! [`Faults::host_capacity`] is different in kind: it makes the host slow the way a real shop's server
//! is (time grows with the records a page builds, and only so many pages are built at once), so that a
//! benchmark can show how a sync behaves against it. It sleeps on the wall clock: benchmarks only.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// Switchable faults, shared by every simulated platform of one [`Sandbox`](crate::Sandbox).
///
/// Cheap to clone (clones share state); every method takes `&self`. Counted faults are consumed by the
/// requests they hit, so `rate_limit(2, 1)` affects exactly the next two requests.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
}

#[derive(Debug, Default)]
struct FaultState {
    only_platform: Option<String>,
    rate_limited: u64,
    retry_after_secs: u64,
    server_errors: u64,
    server_errors_served: u64,
    server_error_status: Option<u16>,
    delay: Option<Duration>,
    /// `Some(n)`: after `n` more successful list pages, the next one is cut off mid-body.
    drop_after: Option<u64>,
    host: Option<Arc<HostCapacity>>,
}

/// A simulated host's capacity: see [`Faults::host_capacity`].
#[derive(Debug)]
struct HostCapacity {
    base: Duration,
    per_record: Duration,
    /// One permit per page the host builds at once; the others wait in line (fairly, first come
    /// first served, like a PHP-FPM pool's backlog).
    slots: tokio::sync::Semaphore,
}

impl HostCapacity {
    /// How long the host takes to build a response to a request with this query string: `base` plus
    /// `per_record` for every record the page holds, taken as its `per_page` (a request without one,
    /// like a single record's, counts as one record).
    fn page_time(&self, query: Option<&str>) -> Duration {
        let records = query
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("per_page="))
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1);
        self.base + self.per_record * records
    }
}

/// What the fault layer decided for one request.
#[derive(Debug)]
enum Verdict {
    Pass,
    RateLimited { retry_after_secs: u64 },
    ServerError { status: u16 },
}

impl Faults {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, FaultState> {
        // A poisoned lock only means a panicking test thread; the state is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `n_requests` requests get `429 Too Many Requests` with `Retry-After: {retry_after_secs}`
    /// and a JSON error body. Replaces any rate limit still pending.
    pub fn rate_limit(&self, n_requests: u64, retry_after_secs: u64) {
        let mut s = self.state();
        s.rate_limited = n_requests;
        s.retry_after_secs = retry_after_secs;
    }

    /// The next `n` requests fail like an overloaded host: the first, third, … get `503 Service
    /// Unavailable` with an HTML error page; the second, fourth, … get `500` with WordPress's JSON
    /// "critical error" body. Replaces any server errors still pending.
    pub fn server_errors(&self, n: u64) {
        let mut s = self.state();
        s.server_errors = n;
        s.server_errors_served = 0;
        s.server_error_status = None;
    }

    /// The next `n` requests all get `status` (500, 502, 503 or 504 get realistic bodies; any other
    /// status gets the HTML page). Replaces any server errors still pending.
    pub fn server_errors_with_status(&self, n: u64, status: u16) {
        let mut s = self.state();
        s.server_errors = n;
        s.server_errors_served = 0;
        s.server_error_status = Some(status);
    }

    /// Delay every response by `duration` (until [`clear`](Self::clear) or `slow(Duration::ZERO)`).
    pub fn slow(&self, duration: Duration) {
        self.state().delay = (!duration.is_zero()).then_some(duration);
    }

    /// One-shot: after `n` more successful list pages, the next list response sends its status, headers
    /// and about half of its JSON body, then the connection is aborted (the client sees a body error,
    /// not a clean end). `drop_connection_after(0)` cuts the very next list page.
    pub fn drop_connection_after(&self, n: u64) {
        self.state().drop_after = Some(n);
    }

    /// Simulate a host of limited capacity (benchmarks only: it sleeps on the wall clock): every
    /// request takes `base + per_record × per_page` (the `per_page` of its query, else one record), and
    /// at most `max_concurrent` requests are served at once, the others queue for a free slot. A real
    /// shop's server behaves so: its PHP workers are few and a page's time grows with its records.
    /// `max_concurrent` 0 is treated as 1. Replaces an earlier capacity; [`clear`](Self::clear)
    /// removes it.
    pub fn host_capacity(&self, base: Duration, per_record: Duration, max_concurrent: usize) {
        self.state().host = Some(Arc::new(HostCapacity {
            base,
            per_record,
            slots: tokio::sync::Semaphore::new(max_concurrent.max(1)),
        }));
    }

    fn host(&self, platform: &str) -> Option<Arc<HostCapacity>> {
        let s = self.state();
        if !Self::applies(&s, platform) {
            return None;
        }
        s.host.clone()
    }

    /// Apply faults only to requests under `/{platform}` (e.g. `"woocommerce"`); `None` (the default)
    /// applies them to every simulated platform.
    pub fn only_platform(&self, platform: Option<&str>) {
        self.state().only_platform = platform.map(str::to_owned);
    }

    /// Switch every fault off (including the platform filter).
    pub fn clear(&self) {
        *self.state() = FaultState::default();
    }

    /// Whether faults apply to `platform` at all.
    fn applies(s: &FaultState, platform: &str) -> bool {
        s.only_platform.as_deref().is_none_or(|p| p == platform)
    }

    /// Decide the fate of one incoming request to `platform`, consuming counted faults.
    fn on_request(&self, platform: &str) -> (Option<Duration>, Verdict) {
        let mut s = self.state();
        if !Self::applies(&s, platform) {
            return (None, Verdict::Pass);
        }
        let delay = s.delay;
        if s.rate_limited > 0 {
            s.rate_limited -= 1;
            return (
                delay,
                Verdict::RateLimited {
                    retry_after_secs: s.retry_after_secs,
                },
            );
        }
        if s.server_errors > 0 {
            s.server_errors -= 1;
            let served = s.server_errors_served;
            s.server_errors_served += 1;
            let status = s
                .server_error_status
                .unwrap_or(if served % 2 == 0 { 503 } else { 500 });
            return (delay, Verdict::ServerError { status });
        }
        (delay, Verdict::Pass)
    }

    /// Called by a platform when it is about to send a successful list page: `true` means "cut this one
    /// off mid-body" (and disarms the fault).
    pub(crate) fn take_list_drop(&self, platform: &str) -> bool {
        let mut s = self.state();
        if !Self::applies(&s, platform) {
            return false;
        }
        match s.drop_after {
            Some(0) => {
                s.drop_after = None;
                true
            }
            Some(n) => {
                s.drop_after = Some(n - 1);
                false
            }
            None => false,
        }
    }
}

/// State for [`middleware`]: the shared faults and the platform (path prefix without slashes) guarded.
#[derive(Clone, Debug)]
pub(crate) struct FaultLayer {
    pub(crate) faults: Faults,
    pub(crate) platform: &'static str,
}

/// Axum middleware applying [`Faults`] to one platform's routes.
pub(crate) async fn middleware(
    State(layer): State<FaultLayer>,
    req: Request,
    next: Next,
) -> Response {
    let (delay, verdict) = layer.faults.on_request(layer.platform);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if let (Some(host), Verdict::Pass) = (layer.faults.host(layer.platform), &verdict) {
        let busy = host.page_time(req.uri().query());
        // The semaphore is never closed, so acquiring only fails in theory; then serve at once.
        let _slot = host.slots.acquire().await.ok();
        tokio::time::sleep(busy).await;
    }
    match verdict {
        Verdict::Pass => next.run(req).await,
        Verdict::RateLimited { retry_after_secs } => rate_limited_response(retry_after_secs),
        Verdict::ServerError { status } => server_error_response(status),
    }
}

fn rate_limited_response(retry_after_secs: u64) -> Response {
    let body = serde_json::json!({
        "code": "too_many_requests",
        "message": "Too many requests. Please slow down and retry later.",
        "data": { "status": 429, "retry_after": retry_after_secs }
    });
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

const WP_CRITICAL_ERROR: &str = "<p>There has been a critical error on this website.</p><p><a href=\"https://wordpress.org/documentation/article/faq-troubleshooting/\">Learn more about troubleshooting WordPress.</a></p>";

fn server_error_response(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let (content_type, body) = if code == StatusCode::INTERNAL_SERVER_ERROR {
        // What WordPress's fatal-error handler sends for a REST request.
        let body = serde_json::json!({
            "code": "internal_server_error",
            "message": WP_CRITICAL_ERROR,
            "data": { "status": 500 },
            "additional_errors": []
        });
        ("application/json; charset=UTF-8", body.to_string())
    } else {
        let reason = code.canonical_reason().unwrap_or("Error");
        let html = format!(
            "<!DOCTYPE html>\n<html>\n<head><title>{n} {reason}</title></head>\n<body>\n<center><h1>{n} {reason}</h1></center>\n<hr><center>nginx</center>\n<p>The server is temporarily unable to service your request. Please try again later.</p>\n</body>\n</html>\n",
            n = code.as_u16()
        );
        ("text/html; charset=UTF-8", html)
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A response body that yields about half of `bytes`, then fails, so that hyper aborts the connection
/// after the headers and part of the body went out. `Content-Length` announces the full length.
pub(crate) fn truncated_body(bytes: Vec<u8>) -> (Body, usize) {
    let full_len = bytes.len();
    let cut = (full_len / 2).max(1).min(full_len);
    let first = Bytes::from(bytes).slice(..cut);
    let stream = futures::stream::unfold(0u8, move |step| {
        let first = first.clone();
        async move {
            match step {
                0 => Some((Ok::<Bytes, std::io::Error>(first), 1)),
                1 => {
                    // Let hyper flush the headers and the first chunk before the failure.
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "sandbox fault: connection dropped mid-body",
                        )),
                        2,
                    ))
                }
                _ => None,
            }
        }
    });
    (Body::from_stream(stream), full_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_are_consumed_in_order() {
        let f = Faults::new();
        f.rate_limit(1, 7);
        f.server_errors(2);
        assert!(matches!(
            f.on_request("woocommerce").1,
            Verdict::RateLimited {
                retry_after_secs: 7
            }
        ));
        assert!(matches!(
            f.on_request("woocommerce").1,
            Verdict::ServerError { status: 503 }
        ));
        assert!(matches!(
            f.on_request("woocommerce").1,
            Verdict::ServerError { status: 500 }
        ));
        assert!(matches!(f.on_request("woocommerce").1, Verdict::Pass));
    }

    #[test]
    fn platform_filter_and_drop_countdown() {
        let f = Faults::new();
        f.only_platform(Some("shopify"));
        f.rate_limit(1, 1);
        assert!(matches!(f.on_request("woocommerce").1, Verdict::Pass));
        f.clear();
        f.drop_connection_after(1);
        assert!(!f.take_list_drop("woocommerce"));
        assert!(f.take_list_drop("woocommerce"));
        assert!(!f.take_list_drop("woocommerce"));
    }

    #[test]
    fn host_capacity_prices_a_page_by_its_records() {
        let f = Faults::new();
        assert!(f.host("woocommerce").is_none());
        f.host_capacity(Duration::from_millis(50), Duration::from_millis(2), 0);
        let host = f.host("woocommerce").unwrap();
        assert_eq!(host.slots.available_permits(), 1);
        assert_eq!(
            host.page_time(Some("page=3&per_page=100&orderby=id")),
            Duration::from_millis(250)
        );
        assert_eq!(host.page_time(None), Duration::from_millis(52));
        assert_eq!(
            host.page_time(Some("per_page=x")),
            Duration::from_millis(52)
        );
        f.only_platform(Some("shopify"));
        assert!(f.host("woocommerce").is_none());
        f.clear();
        assert!(f.host("shopify").is_none());
    }
}
