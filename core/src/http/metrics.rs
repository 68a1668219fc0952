//! What a stream's reads cost: HTTP requests sent and time spent waiting on rate limits, pauses the
//! platform asked for and backoff.
//!
//! Streams of one source share one [`HttpClient`](super::HttpClient), and several of them are read at
//! once on the same task, so a counter on the client would mix them. Instead a stream's read runs
//! inside [`metered`], which puts its [`RequestMeter`] in a tokio task-local for exactly the polls of
//! that future: every request the client sends while it is polled is counted there. Outside any
//! meter nothing is counted.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

tokio::task_local! {
    static METER: Arc<RequestMeter>;
}

/// Counters of one stream's HTTP use. Shared (`Arc`) between the stream's future and whoever reads
/// the totals after it.
#[derive(Debug, Default)]
pub struct RequestMeter {
    requests: AtomicU64,
    waited_micros: AtomicU64,
}

impl RequestMeter {
    /// Requests sent (every attempt, retries included: each one reached the platform).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Time spent waiting before requests: rate-limit windows, pauses and backoff.
    pub fn waited(&self) -> Duration {
        Duration::from_micros(self.waited_micros.load(Ordering::Relaxed))
    }
}

/// Run `fut` with every request made while it is polled counted in `meter`.
pub async fn metered<F: Future>(meter: Arc<RequestMeter>, fut: F) -> F::Output {
    METER.scope(meter, fut).await
}

/// One request is about to be sent.
pub(crate) fn count_request() {
    let _ = METER.try_with(|m| m.requests.fetch_add(1, Ordering::Relaxed));
}

/// `d` was spent waiting before a request.
pub(crate) fn count_wait(d: Duration) {
    if d.is_zero() {
        return;
    }
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let _ = METER.try_with(|m| m.waited_micros.fetch_add(micros, Ordering::Relaxed));
}
