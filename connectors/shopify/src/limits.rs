//! Client-side request pacing for Shopify.
//!
//! Shopify's GraphQL Admin API limits by *query cost*, not by request count: each shop has a leaky
//! bucket of cost points, and every answer reports what the query cost and what is left. So the
//! request-count limiter is unlimited here, and every query first reserves its cost in a client-side
//! mirror of the bucket ([`cost`](crate::cost)). What a single query may ask for is bounded by
//! [`MAX_QUERY_COST`](crate::streams::MAX_QUERY_COST).

use growthflow_core::http::{Quota, RateLimits};

/// The limiters: none on request count (the cost bucket paces).
pub fn rate_limits() -> RateLimits {
    RateLimits::new(Quota::UNLIMITED, &[])
}
