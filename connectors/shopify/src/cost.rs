//! One client-side mirror of the shop's query-cost bucket, shared by every stream of a connector.
//!
//! Shopify charges a query's *requested* cost up front from a bucket per app and shop (2000 points
//! restored at 100/s on standard plans, more on Plus) and answers `THROTTLED` when the bucket cannot
//! cover it. Waiting after each response until the *same* query fits again is enough for one stream,
//! but streams read side by side see the same `currentlyAvailable` and all go ahead, draining the
//! bucket into throttles. So every query first reserves its expected cost here: the bucket is
//! predicted from Shopify's last `throttleStatus`, its restore rate and the reservations of queries
//! still in flight, and a query that would not fit waits (on the client's clock) for the points it
//! lacks. Each response then brings the mirror back to Shopify's own numbers.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use growthflow_core::http::Clock;

use crate::policy::QueryCost;

/// The bucket as last reported, plus what queries in flight have reserved since.
#[derive(Debug, Default)]
struct Mirror {
    /// `(currentlyAvailable, restoreRate, maximumAvailable, when it was reported)`; `None` until the
    /// first response, when nothing is known and nothing is waited for.
    reported: Option<(f64, f64, f64, Instant)>,
    /// Points reserved by queries sent and not yet answered.
    reserved: f64,
}

/// The shared bucket mirror. `Debug` shows the prediction.
#[derive(Debug, Default)]
pub struct CostBucket {
    mirror: Mutex<Mirror>,
}

/// What a reservation holds until its response settles it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reservation {
    points: f64,
}

impl CostBucket {
    /// An empty mirror: the first queries go ahead and the first response tells the truth.
    pub fn new() -> Self {
        Self::default()
    }

    /// Points predicted free now for a new query (after the in-flight reservations); `None` before the
    /// first report.
    pub fn predicted(&self, now: Instant) -> Option<f64> {
        let m = self.mirror.lock().expect("bucket lock");
        let (available, rate, maximum, at) = m.reported?;
        let restored = available + rate * now.saturating_duration_since(at).as_secs_f64();
        Some(restored.min(maximum) - m.reserved)
    }

    /// Wait until `cost` points are predicted free, then reserve them. A cost larger than the whole
    /// bucket only waits for a full bucket (Shopify rejects such a query as MAX_COST_EXCEEDED anyway).
    pub async fn reserve(&self, clock: &dyn Clock, cost: f64) -> Reservation {
        loop {
            let wait = {
                let mut m = self.mirror.lock().expect("bucket lock");
                let missing = match m.reported {
                    None => 0.0,
                    Some((available, rate, maximum, at)) => {
                        let elapsed = clock.now().saturating_duration_since(at).as_secs_f64();
                        let free = (available + rate * elapsed).min(maximum) - m.reserved;
                        let need = cost.min(maximum);
                        if free >= need || rate <= 0.0 {
                            0.0
                        } else {
                            (need - free) / rate
                        }
                    }
                };
                if missing <= 0.0 {
                    m.reserved += cost;
                    return Reservation { points: cost };
                }
                Duration::try_from_secs_f64(missing).unwrap_or(Duration::from_secs(60))
            };
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                cost,
                "waiting for Shopify's cost bucket"
            );
            clock.sleep(wait).await;
        }
    }

    /// The query of `reservation` was answered: drop its reservation and adopt Shopify's report, if
    /// the response had one (a THROTTLED answer has one too).
    pub fn settle(&self, clock: &dyn Clock, reservation: Reservation, cost: Option<&QueryCost>) {
        let mut m = self.mirror.lock().expect("bucket lock");
        m.reserved = (m.reserved - reservation.points).max(0.0);
        if let Some(c) = cost {
            let maximum = c.maximum.unwrap_or(f64::INFINITY);
            m.reported = Some((c.available, c.restore_rate, maximum, clock.now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use growthflow_core::http::TestClock;

    fn report(available: f64) -> QueryCost {
        QueryCost {
            requested: 600.0,
            available,
            restore_rate: 100.0,
            maximum: Some(2000.0),
        }
    }

    #[tokio::test]
    async fn nothing_is_waited_for_before_the_first_report() {
        let clock = TestClock::new();
        let bucket = CostBucket::new();
        let r = bucket.reserve(&clock, 900.0).await;
        assert_eq!(r.points, 900.0);
        assert!(clock.sleeps().is_empty());
        assert_eq!(bucket.predicted(clock.now()), None);
    }

    #[tokio::test]
    async fn side_by_side_queries_wait_for_each_others_points() {
        let clock = TestClock::new();
        let bucket = CostBucket::new();
        let first = bucket.reserve(&clock, 600.0).await;
        bucket.settle(&clock, first, Some(&report(1000.0)));
        // Two streams see 1000 points free: the first of them fits, the second would overdraw.
        let a = bucket
            .reserve(&clock, 600.0)
            .now_or_never()
            .expect("fits at once");
        assert_eq!(bucket.predicted(clock.now()), Some(400.0));
        let b = bucket.reserve(&clock, 600.0).await;
        assert_eq!(
            clock.sleeps(),
            vec![Duration::from_secs(2)],
            "200 points at 100/s"
        );
        assert_eq!(bucket.predicted(clock.now()), Some(0.0));
        // Shopify's report replaces the prediction; the other reservation still counts.
        bucket.settle(&clock, a, Some(&report(300.0)));
        assert_eq!(bucket.predicted(clock.now()), Some(-300.0));
        bucket.settle(&clock, b, None);
        assert_eq!(bucket.predicted(clock.now()), Some(300.0));
    }

    #[tokio::test]
    async fn the_bucket_refills_only_to_its_maximum() {
        let clock = TestClock::new();
        let bucket = CostBucket::new();
        let r = bucket.reserve(&clock, 10.0).await;
        bucket.settle(&clock, r, Some(&report(1900.0)));
        clock.sleep(Duration::from_secs(60)).await;
        assert_eq!(bucket.predicted(clock.now()), Some(2000.0));
        // A query costing more than the bucket holds waits for a full bucket, not forever.
        let big = bucket.reserve(&clock, 5000.0).now_or_never();
        assert!(big.is_some());
    }
}
