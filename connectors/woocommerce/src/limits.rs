//! Client-side request pacing for WooCommerce.
//!
//! WooCommerce itself publishes no rate limit, but the shared hosts and firewalls in front of most stores
//! throttle or block bursts, and every request costs the store a PHP worker. So the client keeps itself
//! to a steady per-second rate (`max_requests_per_second`, default
//! [`default_max_requests_per_second`](crate::config::default_max_requests_per_second)) on every
//! endpoint; a 429 or 503 that still comes back is retried by core after its `Retry-After`.

use growthflow_core::http::{Quota, RateLimits};

/// The limiters: `per_second` requests a second on any endpoint.
pub fn rate_limits(per_second: u32) -> RateLimits {
    RateLimits::new(Quota::per_second(per_second), &[])
}
