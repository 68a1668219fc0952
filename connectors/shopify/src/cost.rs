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
//!
//! Before the first report nothing is known — another run may just have drained the bucket — so the
//! first query goes alone and the others wait for its answer (see [`CostBucket::reserve`]). A
//! reservation is a guard: a query cancelled before its answer (its future dropped) gives its points
//! back, instead of leaving them reserved for good.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use growthflow_core::http::Clock;
use tokio::sync::Notify;

use crate::policy::QueryCost;

/// The bucket as last reported, plus what queries in flight have reserved since.
#[derive(Debug, Default)]
struct Mirror {
    /// `(currentlyAvailable, restoreRate, maximumAvailable, when it was reported)`; `None` until the
    /// first response.
    reported: Option<(f64, f64, f64, Instant)>,
    /// Points reserved by queries sent and not yet answered.
    reserved: f64,
    /// A query is out to learn the bucket (no report yet); the others wait for its answer.
    probing: bool,
}

/// The shared bucket mirror. `Debug` shows the prediction.
#[derive(Debug, Default)]
pub struct CostBucket {
    mirror: Mutex<Mirror>,
    /// Woken when a probing query ends, answered or not.
    probed: Notify,
}

/// The points one query holds in the bucket until its answer settles them; dropped unsettled (the
/// query was cancelled or failed without a report), it releases them.
#[derive(Debug)]
#[must_use = "a reservation releases its points when dropped"]
pub struct Reservation<'a> {
    bucket: &'a CostBucket,
    points: f64,
    probe: bool,
    settled: bool,
}

impl Reservation<'_> {
    /// The points held.
    pub fn points(&self) -> f64 {
        self.points
    }

    /// The query was answered: drop the reservation and adopt Shopify's report, if the response had
    /// one (a THROTTLED answer has one too).
    pub fn settle(mut self, clock: &dyn Clock, cost: Option<&QueryCost>) {
        self.settled = true;
        let report = cost.map(|c| {
            let maximum = c.maximum.unwrap_or(f64::INFINITY);
            (c.available, c.restore_rate, maximum, clock.now())
        });
        self.bucket.release(self.points, self.probe, report);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.bucket.release(self.points, self.probe, None);
        }
    }
}

impl CostBucket {
    /// An empty mirror: the first query goes ahead alone and its response tells the truth.
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
    /// Before the first report, the first caller goes at once and the others wait for its answer; if
    /// it ends without a report, the next waiter goes.
    pub async fn reserve(&self, clock: &dyn Clock, cost: f64) -> Reservation<'_> {
        loop {
            let probed = self.probed.notified();
            tokio::pin!(probed);
            // Registered before the state is read, so a probe ending in between still wakes us.
            probed.as_mut().enable();
            let wait = {
                let mut m = self.mirror.lock().expect("bucket lock");
                let missing = match m.reported {
                    None if m.probing => None,
                    None => {
                        m.probing = true;
                        m.reserved += cost;
                        return Reservation {
                            bucket: self,
                            points: cost,
                            probe: true,
                            settled: false,
                        };
                    }
                    Some((available, rate, maximum, at)) => {
                        let elapsed = clock.now().saturating_duration_since(at).as_secs_f64();
                        let free = (available + rate * elapsed).min(maximum) - m.reserved;
                        let need = cost.min(maximum);
                        if free >= need || rate <= 0.0 {
                            Some(0.0)
                        } else {
                            Some((need - free) / rate)
                        }
                    }
                };
                match missing {
                    Some(missing) if missing <= 0.0 => {
                        m.reserved += cost;
                        return Reservation {
                            bucket: self,
                            points: cost,
                            probe: false,
                            settled: false,
                        };
                    }
                    Some(missing) => Some(
                        Duration::try_from_secs_f64(missing).unwrap_or(Duration::from_secs(60)),
                    ),
                    None => None,
                }
            };
            match wait {
                Some(wait) => {
                    tracing::debug!(
                        wait_ms = wait.as_millis() as u64,
                        cost,
                        "waiting for Shopify's cost bucket"
                    );
                    clock.sleep(wait).await;
                }
                None => {
                    tracing::debug!("waiting for the first answer to learn Shopify's cost bucket");
                    probed.await;
                }
            }
        }
    }

    /// Give `points` back and adopt `report` (Shopify's bucket when answered) if there is one.
    fn release(&self, points: f64, probe: bool, report: Option<(f64, f64, f64, Instant)>) {
        {
            let mut m = self.mirror.lock().expect("bucket lock");
            m.reserved = (m.reserved - points).max(0.0);
            if report.is_some() {
                m.reported = report;
            }
            if probe {
                m.probing = false;
            }
        }
        if probe {
            self.probed.notify_waiters();
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
        assert_eq!(r.points(), 900.0);
        assert!(clock.sleeps().is_empty());
        assert_eq!(bucket.predicted(clock.now()), None);
    }

    #[tokio::test]
    async fn side_by_side_queries_wait_for_each_others_points() {
        let clock = TestClock::new();
        let bucket = CostBucket::new();
        let first = bucket.reserve(&clock, 600.0).await;
        first.settle(&clock, Some(&report(1000.0)));
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
        a.settle(&clock, Some(&report(300.0)));
        assert_eq!(bucket.predicted(clock.now()), Some(-300.0));
        b.settle(&clock, None);
        assert_eq!(bucket.predicted(clock.now()), Some(300.0));
    }

    #[tokio::test]
    async fn the_bucket_refills_only_to_its_maximum() {
        let clock = TestClock::new();
        let bucket = CostBucket::new();
        let r = bucket.reserve(&clock, 10.0).await;
        r.settle(&clock, Some(&report(1900.0)));
        clock.sleep(Duration::from_secs(60)).await;
        assert_eq!(bucket.predicted(clock.now()), Some(2000.0));
        // A query costing more than the bucket holds waits for a full bucket, not forever.
        let big = bucket.reserve(&clock, 5000.0).now_or_never();
        assert!(big.is_some());
    }

    /// A query cancelled between reserving and its answer (its future dropped) gives its points back:
    /// they used to stay reserved in the shared mirror for the rest of the process.
    #[tokio::test]
    async fn a_cancelled_query_releases_its_reservation() {
        let clock = TestClock::new();
        let bucket = CostBucket::new();
        let first = bucket.reserve(&clock, 10.0).await;
        first.settle(&clock, Some(&report(1000.0)));
        assert_eq!(bucket.predicted(clock.now()), Some(1000.0));
        {
            let query = async {
                let _r = bucket.reserve(&clock, 600.0).await;
                // The request would be sent here; the future is dropped before its answer.
                futures::future::pending::<()>().await;
            };
            assert!(query.now_or_never().is_none());
        }
        assert_eq!(bucket.predicted(clock.now()), Some(1000.0));
        // An unsettled reservation dropped directly releases too.
        drop(bucket.reserve(&clock, 300.0).await);
        assert_eq!(bucket.predicted(clock.now()), Some(1000.0));
    }

    /// A new process knows nothing of the bucket another run may have drained: the first query goes
    /// alone, the others wait for its answer and then pace on what it reported.
    #[tokio::test]
    async fn before_the_first_report_only_one_query_goes() {
        let clock = TestClock::new();
        let bucket = CostBucket::new();
        let probe = bucket.reserve(&clock, 600.0).await;
        let waiting = bucket.reserve(&clock, 600.0);
        tokio::pin!(waiting);
        assert!(
            (&mut waiting).now_or_never().is_none(),
            "waits for the first answer"
        );
        // The first answer says the bucket is nearly empty: the second query waits for its points.
        probe.settle(&clock, Some(&report(200.0)));
        let second = waiting.await;
        assert_eq!(
            clock.sleeps(),
            vec![Duration::from_secs(4)],
            "400 points at 100/s"
        );
        second.settle(&clock, None);

        // A first query that ends without a report lets the next waiter learn instead.
        let bucket = CostBucket::new();
        let probe = bucket.reserve(&clock, 1.0).await;
        let waiting = bucket.reserve(&clock, 1.0);
        tokio::pin!(waiting);
        assert!((&mut waiting).now_or_never().is_none());
        drop(probe);
        let next = waiting.now_or_never().expect("goes once the probe ended");
        assert_eq!(bucket.predicted(clock.now()), None);
        drop(next);
    }
}
