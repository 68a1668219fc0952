//! Client-side request pacing for Meta.
//!
//! Meta publishes no per-second limits: its quotas are hourly business-use-case budgets and a decaying
//! ad-account score, reported back as usage percentages that [`MetaPolicy::pace`](crate::MetaPolicy)
//! follows. The limiter only keeps bursts modest so that one sync never spends the score all at once.

use growthflow_core::http::{Quota, RateLimits};

/// Requests per second on any endpoint.
pub const REQUESTS_PER_SECOND: u32 = 10;

/// The endpoints requests are sent under (`HttpClient::send`'s first argument).
pub const ENDPOINTS: [&str; 4] = ["insights", "campaigns", "adsets", "ads"];

/// The limiters: the same burst bound for every endpoint.
pub fn rate_limits() -> RateLimits {
    let q = Quota::per_second(REQUESTS_PER_SECOND);
    let endpoints: Vec<(&str, Quota)> = ENDPOINTS.iter().map(|e| (*e, q)).collect();
    RateLimits::new(q, &endpoints)
}
