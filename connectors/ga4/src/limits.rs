//! GA4's quotas, and the client-side pacing that follows them.
//!
//! The Data API has no per-second request limit to pace by: it charges *tokens* per report against a
//! property's hourly and daily budgets (and a per-project share of them), and limits concurrent
//! requests. Every report asks for `returnPropertyQuota`; the connector pauses its report requests
//! when an hourly budget runs low ([`quota_pause`](crate::policy::quota_pause), read where a report
//! is decoded), and [`Ga4Policy`](crate::Ga4Policy) waits out a spent
//! hourly quota and stops the sync on a spent daily one. So the request-count limiter is unlimited.
//!
//! A long first sync or backfill reads windows of days side by side ([`growthflow_core::window`]).
//! How many requests are in flight is the property's adaptive limit ([`concurrency`]): it starts at
//! two, grows while GA4's latency holds, halves on a 429 (a spent concurrent-requests quota among
//! them, which also pauses every window for [`CONCURRENT_BACKOFF`]), and never passes
//! [`MAX_CONCURRENT_REQUESTS`], GA4's own limit per property. Windows spend the same tokens as a
//! sequential read (tokens are charged per report), only sooner; the hourly pauses above still pace
//! them.

use std::sync::Arc;
use std::time::Duration;

use growthflow_core::adaptive::{AdaptiveConfig, AdaptiveLimiter};
use growthflow_core::http::{Clock, Quota, RateLimits};

/// GA4's concurrent-requests quota of a standard property: more in flight is a 429.
pub const MAX_CONCURRENT_REQUESTS: usize = 10;

/// The property's adaptive concurrency limit, shared by all its streams (they share its quotas).
pub fn concurrency(clock: Arc<dyn Clock>) -> Arc<AdaptiveLimiter> {
    AdaptiveLimiter::new(AdaptiveConfig::with_cap(MAX_CONCURRENT_REQUESTS), clock)
}

/// Standard-property hourly budgets (tokens per property per hour, per project per property per hour).
pub const HOURLY_BUDGETS: [(&str, f64); 2] = [
    ("tokensPerHour", 40_000.0),
    ("tokensPerProjectPerHour", 14_000.0),
];

/// Below this share of the hourly token budget left, requests pause.
pub const HOURLY_LOW_WATERMARK: f64 = 0.10;
/// How long to pause when the hourly budget runs low.
pub const HOURLY_PAUSE: Duration = Duration::from_secs(300);
/// Backoff for a spent concurrent-requests quota.
pub const CONCURRENT_BACKOFF: Duration = Duration::from_secs(30);
/// Added to the wait until the next hour for a spent hourly quota, so that the retry lands after the
/// refill even when our clock and Google's differ by a few seconds.
pub const HOURLY_REFILL_MARGIN: Duration = Duration::from_secs(10);

/// The limiters: none on request count (the token quotas pace).
pub fn rate_limits() -> RateLimits {
    RateLimits::new(Quota::UNLIMITED, &[])
}
