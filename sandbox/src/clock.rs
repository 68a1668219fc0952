//! The time the simulated platforms' timers run on: Shopify's cost bucket refill, Meta's rate window
//! and report jobs, Klaviyo's rate windows. Real time by default; a test passes the
//! [`TestClock`](growthflow_core::http::TestClock) its connectors sleep on
//! ([`Sandbox::start_with_clock`](crate::Sandbox::start_with_clock)), so a wait the client sleeps is
//! time the platform sees pass, and throttles and jobs are waited out without waiting.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use growthflow_core::http::{Clock, TokioClock};

/// A clock and the Unix time of its first instant, shared by every platform of one sandbox.
#[derive(Debug, Clone)]
pub(crate) struct Time {
    clock: Arc<dyn Clock>,
    origin: Instant,
    origin_unix: Duration,
}

impl Time {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        let origin = clock.now();
        let origin_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Time {
            clock,
            origin,
            origin_unix,
        }
    }

    /// The current instant.
    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Unix milliseconds now: the real start time advanced by the clock's elapsed time.
    pub(crate) fn unix_ms(&self) -> u64 {
        let since = self.clock.now().saturating_duration_since(self.origin);
        u64::try_from((self.origin_unix + since).as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for Time {
    /// Real time.
    fn default() -> Self {
        Time::new(Arc::new(TokioClock))
    }
}
