//! How hard WooCommerce is asked.
//!
//! WooCommerce itself publishes no rate limit; what limits a store is its host — how many PHP workers
//! build pages at once, and the firewalls and caches in front of them. A fixed client-side pace is
//! wrong both ways (ten requests a second capped a store at 1,000 orders a second although its host
//! could serve more, and is still too much for a small shared host), so by default there is none.
//! Instead every request holds a permit of the source's adaptive concurrency limit
//! ([`growthflow_core::adaptive`]): it starts at [`INITIAL_IN_FLIGHT`] requests in flight, grows (doubling at first,
//! then by one) while the host's latency holds, and halves on a 429, a 503, a timeout or a latency well above the best seen,
//! never above `max_concurrent_requests` (default 16). Long first syncs and backfills read date
//! windows side by side ([`growthflow_core::window`]), so the host's spare workers are used; a 429 or
//! 503 that still comes back is retried by core after its `Retry-After`.
//!
//! `max_requests_per_second`, when configured, adds a fixed ceiling on every endpoint (for a
//! firewall known to block above a rate); the adaptive limit still applies under it.

use std::sync::Arc;

use growthflow_core::adaptive::{AdaptiveConfig, AdaptiveLimiter};
use growthflow_core::http::{Clock, Quota, RateLimits};

/// The fixed limiters: `per_second` requests a second on any endpoint when configured, else none.
pub fn rate_limits(per_second: Option<u32>) -> RateLimits {
    match per_second {
        Some(n) => RateLimits::new(Quota::per_second(n), &[]),
        None => RateLimits::new(Quota::UNLIMITED, &[]),
    }
}

/// Requests in flight at first: PHP-FPM's default pool has five workers (`pm.max_children = 5`), so
/// four side by side fit a host left at its defaults, and a long read does not spend its first
/// round trip at two.
pub const INITIAL_IN_FLIGHT: usize = 4;

/// The source's adaptive concurrency limit, at most `cap` requests in flight.
pub fn concurrency(cap: usize, clock: Arc<dyn Clock>) -> Arc<AdaptiveLimiter> {
    let config = AdaptiveConfig::with_cap(cap);
    let initial = INITIAL_IN_FLIGHT.min(config.cap);
    AdaptiveLimiter::new(AdaptiveConfig { initial, ..config }, clock)
}
