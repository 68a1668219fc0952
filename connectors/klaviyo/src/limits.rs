//! Klaviyo's rate tiers, per endpoint, in one table.
//!
//! Klaviyo limits each endpoint per account with two fixed windows, a burst (1 s) and a steady (1 min)
//! one, sized by a named tier. The client-side limiter keeps a sync inside them so that 429s — and the
//! `Retry-After` waits they bring — are the exception; [`KlaviyoPolicy::pace`](crate::KlaviyoPolicy)
//! additionally follows the `RateLimit-*` headers for limits shared with other apps on the account.
//! The tiers are those of the pinned revision (2026-07-15; profiles and lists went from 700/m to
//! 750/m in that revision).
//!
//! A long first sync or backfill of events reads date windows side by side
//! ([`growthflow_core::window`]); how many requests are in flight is the source's adaptive limit
//! ([`concurrency`]): it starts at two, grows while Klaviyo's latency holds, halves on a 429 (whose
//! `Retry-After` core honours, pausing the endpoint for every window), and never passes
//! [`MAX_IN_FLIGHT`]. The fixed windows above still space every request, so side-by-side windows
//! stay within the burst and steady limits rather than running into 429s.

use std::sync::Arc;

use growthflow_core::adaptive::{AdaptiveConfig, AdaptiveLimiter};
use growthflow_core::http::{Clock, Quota, RateLimits};

/// The most requests in flight at once. Events (XL: 350/s, 3,500/m) are paced to the steady window
/// (one request per ~17 ms); a page of events with its includes takes Klaviyo a few hundred
/// milliseconds, so eight in flight use the steady budget without queueing behind the burst one,
/// and leave room for the stricter extra limits Klaviyo counts for `include`.
pub const MAX_IN_FLIGHT: usize = 8;

/// The account's adaptive concurrency limit, shared by all its streams (they share its quotas).
pub fn concurrency(clock: Arc<dyn Clock>) -> Arc<AdaptiveLimiter> {
    AdaptiveLimiter::new(AdaptiveConfig::with_cap(MAX_IN_FLIGHT), clock)
}

/// Klaviyo's named rate tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// 1/s, 15/m.
    XS,
    /// 3/s, 60/m.
    S,
    /// 10/s, 150/m.
    M,
    /// 75/s, 700/m.
    L,
    /// 350/s, 3500/m.
    XL,
}

impl Tier {
    /// The tier's burst and steady windows.
    pub const fn quota(self) -> Quota {
        match self {
            Tier::XS => Quota::burst_steady(1, 15),
            Tier::S => Quota::burst_steady(3, 60),
            Tier::M => Quota::burst_steady(10, 150),
            Tier::L => Quota::burst_steady(75, 700),
            Tier::XL => Quota::burst_steady(350, 3500),
        }
    }
}

/// One endpoint's limit: its tier and the windows actually applied (a tier's, or the endpoint's own
/// override where Klaviyo documents one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointLimit {
    /// The endpoint name requests are sent under (`HttpClient::send`'s first argument).
    pub endpoint: &'static str,
    /// The request it names.
    pub request: &'static str,
    /// Klaviyo's tier for it.
    pub tier: Tier,
    /// The windows enforced.
    pub quota: Quota,
}

const fn tier(endpoint: &'static str, request: &'static str, tier: Tier) -> EndpointLimit {
    EndpointLimit {
        endpoint,
        request,
        tier,
        quota: tier.quota(),
    }
}

/// Every endpoint this connector calls, with its limit at revision 2026-07-15.
pub const ENDPOINT_LIMITS: [EndpointLimit; 6] = [
    tier("events", "GET /api/events", Tier::XL),
    tier("metrics", "GET /api/metrics", Tier::M),
    EndpointLimit {
        quota: Quota::burst_steady(75, 750),
        ..tier("profiles", "GET /api/profiles", Tier::L)
    },
    tier("campaigns", "GET /api/campaigns", Tier::M),
    tier("flows", "GET /api/flows", Tier::S),
    EndpointLimit {
        quota: Quota::burst_steady(75, 750),
        ..tier("lists", "GET /api/lists", Tier::L)
    },
];

/// For any endpoint not in the table: the smallest tier, so that a new call can never overrun.
pub const DEFAULT_TIER: Tier = Tier::XS;

/// The limit of `endpoint`, if it is in the table.
pub fn limit_of(endpoint: &str) -> Option<&'static EndpointLimit> {
    ENDPOINT_LIMITS.iter().find(|l| l.endpoint == endpoint)
}

/// The table as the HTTP client's limiters.
pub fn rate_limits() -> RateLimits {
    let endpoints: Vec<(&str, Quota)> = ENDPOINT_LIMITS
        .iter()
        .map(|l| (l.endpoint, l.quota))
        .collect();
    RateLimits::new(DEFAULT_TIER.quota(), &endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_reference() {
        let got: Vec<(&str, Tier, Option<u32>, Option<u32>)> = ENDPOINT_LIMITS
            .iter()
            .map(|l| (l.endpoint, l.tier, l.quota.per_second, l.quota.per_minute))
            .collect();
        assert_eq!(
            got,
            vec![
                ("events", Tier::XL, Some(350), Some(3500)),
                ("metrics", Tier::M, Some(10), Some(150)),
                ("profiles", Tier::L, Some(75), Some(750)),
                ("campaigns", Tier::M, Some(10), Some(150)),
                ("flows", Tier::S, Some(3), Some(60)),
                ("lists", Tier::L, Some(75), Some(750)),
            ]
        );
        assert_eq!(limit_of("flows").unwrap().tier, Tier::S);
        // Every stream is read under an endpoint the table knows.
        for def in crate::streams::stream_defs() {
            assert!(limit_of(def.name).is_some(), "{} has no limit", def.name);
        }
        assert!(limit_of("accounts").is_none());
    }
}
