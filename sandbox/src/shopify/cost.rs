//! Shopify's query cost bucket (leaky bucket: 2000 points restored at 100 points a second of the
//! sandbox's clock on the Standard plan; more on larger plans, see [`ShopifyPlan`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::clock::Time;

use serde_json::{json, Value};

/// Bucket size on the Standard plan.
pub const MAXIMUM_AVAILABLE: f64 = 2000.0;
/// Points restored per second on the Standard plan.
pub const RESTORE_RATE: f64 = 100.0;

/// The shop's Shopify plan, which sets its GraphQL Admin API rate limit: the points its cost bucket
/// restores a second (Shopify's documented limits per plan) and the bucket's size.
///
/// Shopify documents the restore rates (100, 200, 1,000 and 2,000 points a second); the bucket
/// holds 20 seconds of them, as the Standard plan's 2,000 points at 100 a second do. A sync on a
/// larger plan waits less for the same queries; the single-query limit (1,000 points) is the same
/// on every plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShopifyPlan {
    /// Basic, Shopify and other standard plans: 100 points a second (the sandbox's default).
    #[default]
    Standard,
    /// Advanced Shopify: 200 points a second.
    Advanced,
    /// Shopify Plus: 1,000 points a second.
    Plus,
    /// Shopify for enterprise (Commerce Components): 2,000 points a second.
    Enterprise,
}

impl ShopifyPlan {
    /// Points restored per second (`throttleStatus.restoreRate`).
    pub fn restore_rate(self) -> f64 {
        match self {
            ShopifyPlan::Standard => RESTORE_RATE,
            ShopifyPlan::Advanced => 200.0,
            ShopifyPlan::Plus => 1_000.0,
            ShopifyPlan::Enterprise => 2_000.0,
        }
    }

    /// The bucket's size (`throttleStatus.maximumAvailable`): 20 seconds of restore.
    pub fn maximum_available(self) -> f64 {
        self.restore_rate() * (MAXIMUM_AVAILABLE / RESTORE_RATE)
    }
}
/// The single-query cost limit.
pub const MAX_QUERY_COST: u64 = 1000;

#[derive(Debug)]
struct Bucket {
    available: f64,
    at: Instant,
    time: Time,
    plan: ShopifyPlan,
}

impl Bucket {
    fn restore(&mut self) {
        let now = self.time.now();
        let secs = now.duration_since(self.at).as_secs_f64();
        self.available =
            (self.available + secs * self.plan.restore_rate()).min(self.plan.maximum_available());
        self.at = now;
    }
}

/// One shop's bucket and throttle counter; clones share them.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    plan: ShopifyPlan,
    bucket: Arc<Mutex<Bucket>>,
    throttled: Arc<AtomicU64>,
    over_cost: Arc<AtomicU64>,
}

impl Default for Meter {
    /// A full Standard-plan bucket on real time.
    fn default() -> Self {
        Meter::new(Time::default(), ShopifyPlan::Standard)
    }
}

impl Meter {
    /// A full bucket of `plan`, restored as `time` passes.
    pub(crate) fn new(time: Time, plan: ShopifyPlan) -> Self {
        Meter {
            plan,
            bucket: Arc::new(Mutex::new(Bucket {
                available: plan.maximum_available(),
                at: time.now(),
                time,
                plan,
            })),
            throttled: Arc::new(AtomicU64::new(0)),
            over_cost: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// The outcome of charging a query.
pub(crate) enum Charge {
    /// Charged; the caller runs the query and settles with [`Meter::settle`].
    Ok,
    /// Not enough points: `currentlyAvailable`.
    Throttled(f64),
}

impl Meter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::SeqCst)
    }

    /// Count a query refused as `MAX_COST_EXCEEDED`.
    pub(crate) fn refuse_over_cost(&self) {
        self.over_cost.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn over_cost(&self) -> u64 {
        self.over_cost.load(Ordering::SeqCst)
    }

    pub(crate) fn available(&self) -> f64 {
        let mut b = self.lock();
        b.restore();
        b.available
    }

    pub(crate) fn set(&self, points: f64) {
        let mut b = self.lock();
        b.restore();
        b.available = points.clamp(0.0, self.plan.maximum_available());
    }

    /// Charge the requested cost up front.
    pub(crate) fn charge(&self, requested: u64) -> Charge {
        let mut b = self.lock();
        b.restore();
        if b.available < requested as f64 {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            return Charge::Throttled(b.available);
        }
        b.available -= requested as f64;
        Charge::Ok
    }

    /// Refund the difference between requested and actual cost; the points left after.
    pub(crate) fn settle(&self, requested: u64, actual: u64) -> f64 {
        let mut b = self.lock();
        b.restore();
        b.available = (b.available + requested.saturating_sub(actual) as f64)
            .min(self.plan.maximum_available());
        b.available
    }

    /// The shop's plan.
    pub(crate) fn plan(&self) -> ShopifyPlan {
        self.plan
    }

    /// `extensions.cost` of a response.
    pub(crate) fn extensions(&self, requested: u64, actual: Option<u64>, available: f64) -> Value {
        json!({
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": {
                    "maximumAvailable": self.plan.maximum_available(),
                    "currentlyAvailable": available.floor() as u64,
                    "restoreRate": self.plan.restore_rate(),
                }
            }
        })
    }
}
