//! Shopify's query cost bucket (leaky bucket: 2000 points, restored at 100 points a second of the sandbox's clock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::clock::Time;

use serde_json::{json, Value};

/// Bucket size.
pub const MAXIMUM_AVAILABLE: f64 = 2000.0;
/// Points restored per second.
pub const RESTORE_RATE: f64 = 100.0;
/// The single-query cost limit.
pub const MAX_QUERY_COST: u64 = 1000;

#[derive(Debug)]
struct Bucket {
    available: f64,
    at: Instant,
    time: Time,
}

impl Bucket {
    fn restore(&mut self) {
        let now = self.time.now();
        let secs = now.duration_since(self.at).as_secs_f64();
        self.available = (self.available + secs * RESTORE_RATE).min(MAXIMUM_AVAILABLE);
        self.at = now;
    }
}

/// One shop's bucket and throttle counter; clones share them.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    bucket: Arc<Mutex<Bucket>>,
    throttled: Arc<AtomicU64>,
    over_cost: Arc<AtomicU64>,
}

impl Default for Meter {
    /// A full bucket on real time.
    fn default() -> Self {
        Meter::new(Time::default())
    }
}

impl Meter {
    /// A full bucket restored as `time` passes.
    pub(crate) fn new(time: Time) -> Self {
        Meter {
            bucket: Arc::new(Mutex::new(Bucket {
                available: MAXIMUM_AVAILABLE,
                at: time.now(),
                time,
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
        b.available = points.clamp(0.0, MAXIMUM_AVAILABLE);
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
        b.available =
            (b.available + requested.saturating_sub(actual) as f64).min(MAXIMUM_AVAILABLE);
        b.available
    }
}

/// `extensions.cost` of a response.
pub(crate) fn extensions(requested: u64, actual: Option<u64>, available: f64) -> Value {
    json!({
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": MAXIMUM_AVAILABLE,
                "currentlyAvailable": available.floor() as u64,
                "restoreRate": RESTORE_RATE,
            }
        }
    })
}
