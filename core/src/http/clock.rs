//! Time as the HTTP layer sees it, injectable so that tests can assert *how long* the client waited
//! (a `Retry-After: 7` must wait 7 s) without sleeping on wall time.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// Now and sleep.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;
    /// Wait `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
    /// The wall-clock time, for connectors that decide *which days* to read ("up to today"): a test
    /// clock pins it so date ranges do not depend on the day the tests run.
    fn utc_now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Real time, through tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Virtual time for tests: `sleep` returns at once, advances `now` and records the delay.
#[derive(Debug, Clone)]
pub struct TestClock {
    inner: Arc<Mutex<TestClockState>>,
}

#[derive(Debug)]
struct TestClockState {
    start: Instant,
    elapsed: Duration,
    sleeps: Vec<Duration>,
    utc_start: Option<DateTime<Utc>>,
    yielding: bool,
}

impl Default for TestClock {
    fn default() -> Self {
        TestClock {
            inner: Arc::new(Mutex::new(TestClockState {
                start: Instant::now(),
                elapsed: Duration::ZERO,
                sleeps: Vec::new(),
                utc_start: None,
                yielding: false,
            })),
        }
    }
}

impl TestClock {
    /// A clock at virtual time zero.
    pub fn new() -> Self {
        Self::default()
    }
    /// A clock whose wall time starts at `utc` (and advances with the virtual time slept); a
    /// clock made with [`TestClock::new`] reports the real wall time.
    pub fn at(utc: DateTime<Utc>) -> Self {
        let clock = Self::default();
        clock.inner.lock().expect("clock lock").utc_start = Some(utc);
        clock
    }
    /// A clock at virtual time zero whose `sleep` lets the runtime's other tasks run once before it
    /// returns. For a whole program on one runtime (the CLI beside the sandbox's platforms): a loop
    /// that waits for another task's request to end (Shopify's cost bucket waiting for the points in
    /// flight to be settled) would otherwise never give that task a turn, and spin for ever.
    pub fn yielding() -> Self {
        let clock = Self::default();
        clock.inner.lock().expect("clock lock").yielding = true;
        clock
    }
    /// Every delay slept so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.inner.lock().expect("clock lock").sleeps.clone()
    }
    /// Total virtual time slept.
    pub fn elapsed(&self) -> Duration {
        self.inner.lock().expect("clock lock").elapsed
    }
}

impl Clock for TestClock {
    fn now(&self) -> Instant {
        let s = self.inner.lock().expect("clock lock");
        s.start + s.elapsed
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        let yielding = {
            let mut s = self.inner.lock().expect("clock lock");
            s.elapsed += d;
            s.sleeps.push(d);
            s.yielding
        };
        if yielding {
            Box::pin(tokio::task::yield_now())
        } else {
            Box::pin(async {})
        }
    }
    fn utc_now(&self) -> DateTime<Utc> {
        let s = self.inner.lock().expect("clock lock");
        match s.utc_start {
            Some(t) => t + chrono::Duration::from_std(s.elapsed).unwrap_or(chrono::TimeDelta::MAX),
            None => Utc::now(),
        }
    }
}
