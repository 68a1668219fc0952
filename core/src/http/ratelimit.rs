//! Client-side rate limits, declared by each connector as data.
//!
//! Platforms limit differently: Klaviyo per endpoint with a burst (per second) and a steady (per minute)
//! window, Meta and Shopify by a budget the response reports, WooCommerce not at all (its host does).
//! A [`Quota`] covers the fixed windows with governor limiters — every window must admit a request —
//! and the adaptive part lives in [`ApiPolicy::pace`](super::ApiPolicy::pace).
//!
//! The limiters read and wait on a [`Clock`]: the HTTP client's builder puts them on the client's
//! clock ([`RateLimits::with_clock`]), so that a test on a [`TestClock`](super::TestClock) sees the
//! waits the windows impose (on its virtual time) instead of sleeping through them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota as GQuota, RateLimiter};

use super::{Clock, TokioClock};

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
    fn limiters(&self, clock: &Arc<dyn Clock>) -> Vec<Arc<Limiter>> {
        let spaced = |limit: u32, window: Duration| {
            let period = window / limit.max(1);
            GQuota::with_period(period.max(Duration::from_nanos(1)))
                .map(|q| Arc::new(RateLimiter::direct_with_clock(q, OnClock(clock.clone()))))
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

/// A [`Clock`] as governor reads time.
#[derive(Debug, Clone)]
struct OnClock(Arc<dyn Clock>);

impl governor::clock::Clock for OnClock {
    type Instant = Instant;
    fn now(&self) -> Instant {
        self.0.now()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, OnClock, NoOpMiddleware<Instant>>;

/// The windows of one endpoint (or of the default), with the quota they were built from.
#[derive(Clone)]
struct Windows {
    quota: Quota,
    limiters: Vec<Arc<Limiter>>,
}

impl Windows {
    fn new(quota: Quota, clock: &Arc<dyn Clock>) -> Windows {
        Windows {
            quota,
            limiters: quota.limiters(clock),
        }
    }
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            quota: Quota::UNLIMITED,
            limiters: Vec::new(),
        }
    }
}

/// The limiters of one client: a default for every endpoint and overrides per endpoint name, on one
/// clock.
#[derive(Clone)]
pub struct RateLimits {
    clock: Arc<dyn Clock>,
    default: Windows,
    endpoints: HashMap<String, Windows>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::new(Quota::UNLIMITED, &[])
    }
}

impl fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoints: HashMap<&str, Quota> = self
            .endpoints
            .iter()
            .map(|(name, w)| (name.as_str(), w.quota))
            .collect();
        f.debug_struct("RateLimits")
            .field("clock", &self.clock)
            .field("default", &self.default.quota)
            .field("endpoints", &endpoints)
            .finish()
    }
}

impl RateLimits {
    /// `default` for every endpoint not listed in `endpoints`, on real time.
    pub fn new(default: Quota, endpoints: &[(&str, Quota)]) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock);
        RateLimits {
            default: Windows::new(default, &clock),
            endpoints: endpoints
                .iter()
                .map(|(name, q)| (name.to_string(), Windows::new(*q, &clock)))
                .collect(),
            clock,
        }
    }

    /// The same windows, fresh (no request counted yet), on `clock`. The client's builder does this
    /// with the client's clock ([`ClientOptions::clock`](super::ClientOptions)), so that the windows
    /// are kept, and waited for, on the time the rest of the client waits on.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        RateLimits {
            default: Windows::new(self.default.quota, &clock),
            endpoints: self
                .endpoints
                .into_iter()
                .map(|(name, w)| (name, Windows::new(w.quota, &clock)))
                .collect(),
            clock,
        }
    }

    /// Wait (on the clock) until every window of `endpoint` admits one more request.
    pub async fn acquire(&self, endpoint: &str) {
        let windows = self.endpoints.get(endpoint).unwrap_or(&self.default);
        for l in &windows.limiters {
            // governor's `until_ready`, with the wait taken on this clock.
            while let Err(not_until) = l.check() {
                let wait = not_until.wait_time_from(self.clock.now());
                // Never a zero wait: a test clock's time has to move for the window to open.
                self.clock.sleep(wait.max(Duration::from_nanos(1))).await;
            }
        }
    }
}
