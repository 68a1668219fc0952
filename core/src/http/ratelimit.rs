//! Client-side rate limits, declared by each connector as data.
//!
//! Platforms limit differently: Klaviyo per endpoint with a burst (per second) and a steady (per minute)
//! window, Meta and Shopify by a budget the response reports, WooCommerce not at all (its host does).
//! A [`Quota`] covers the fixed windows with governor limiters — every window must admit a request —
//! and the adaptive part lives in [`ApiPolicy::pace`](super::ApiPolicy::pace).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota as GQuota, RateLimiter};

/// The fixed windows of one endpoint (or of the whole platform).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Requests per second (the burst window).
    pub per_second: Option<u32>,
    /// Requests per minute (the steady window).
    pub per_minute: Option<u32>,
    /// Requests per hour.
    pub per_hour: Option<u32>,
}

impl Quota {
    /// No client-side limit.
    pub const UNLIMITED: Quota = Quota {
        per_second: None,
        per_minute: None,
        per_hour: None,
    };

    /// `n` requests a second.
    pub const fn per_second(n: u32) -> Quota {
        Quota {
            per_second: Some(n),
            per_minute: None,
            per_hour: None,
        }
    }

    /// A burst and a steady window, as Klaviyo's tiers are given.
    pub const fn burst_steady(per_second: u32, per_minute: u32) -> Quota {
        Quota {
            per_second: Some(per_second),
            per_minute: Some(per_minute),
            per_hour: None,
        }
    }

    /// One governor limiter per window, each spacing requests evenly at `window / limit` with no
    /// burst. Platforms count fixed wall-clock windows; a GCRA burst of `n` plus its refill can put up
    /// to `2n − 1` requests in one such window and earn a 429, while even spacing never exceeds `n` in
    /// any window and still sustains exactly the platform's rate.
    fn limiters(&self) -> Vec<Arc<DefaultDirectRateLimiter>> {
        let spaced = |limit: u32, window: Duration| {
            let period = window / limit.max(1);
            GQuota::with_period(period.max(Duration::from_nanos(1)))
                .map(|q| Arc::new(RateLimiter::direct(q)))
        };
        [
            self.per_second.map(|n| (n, Duration::from_secs(1))),
            self.per_minute.map(|n| (n, Duration::from_secs(60))),
            self.per_hour.map(|n| (n, Duration::from_secs(3600))),
        ]
        .into_iter()
        .flatten()
        .filter_map(|(n, w)| spaced(n, w))
        .collect()
    }
}

/// The limiters of one client: a default for every endpoint and overrides per endpoint name.
#[derive(Debug, Clone, Default)]
pub struct RateLimits {
    default: Vec<Arc<DefaultDirectRateLimiter>>,
    endpoints: HashMap<String, Vec<Arc<DefaultDirectRateLimiter>>>,
}

impl RateLimits {
    /// `default` for every endpoint not listed in `endpoints`.
    pub fn new(default: Quota, endpoints: &[(&str, Quota)]) -> Self {
        RateLimits {
            default: default.limiters(),
            endpoints: endpoints
                .iter()
                .map(|(name, q)| (name.to_string(), q.limiters()))
                .collect(),
        }
    }

    /// Wait until every window of `endpoint` admits one more request.
    pub async fn acquire(&self, endpoint: &str) {
        let limiters = self.endpoints.get(endpoint).unwrap_or(&self.default);
        for l in limiters {
            l.until_ready().await;
        }
    }
}
