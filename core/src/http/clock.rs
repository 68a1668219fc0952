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
}

impl Default for TestClock {
    fn default() -> Self {
        TestClock {
            inner: Arc::new(Mutex::new(TestClockState {
                start: Instant::now(),
                elapsed: Duration::ZERO,
                sleeps: Vec::new(),
                utc_start: None,
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
        {
            let mut s = self.inner.lock().expect("clock lock");
            s.elapsed += d;
            s.sleeps.push(d);
        }
        Box::pin(async {})
    }
    fn utc_now(&self) -> DateTime<Utc> {
        let s = self.inner.lock().expect("clock lock");
        match s.utc_start {
            Some(t) => t + chrono::Duration::from_std(s.elapsed).unwrap_or(chrono::TimeDelta::MAX),
            None => Utc::now(),
        }
    }
}
