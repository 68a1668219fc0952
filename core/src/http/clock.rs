//! Time as the HTTP layer sees it, injectable so that tests can assert *how long* the client waited
//! (a `Retry-After: 7` must wait 7 s) without sleeping on wall time.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

/// Now and sleep.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;
    /// Wait `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
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
}

impl Default for TestClock {
    fn default() -> Self {
        TestClock {
            inner: Arc::new(Mutex::new(TestClockState {
                start: Instant::now(),
                elapsed: Duration::ZERO,
                sleeps: Vec::new(),
            })),
        }
    }
}

impl TestClock {
    /// A clock at virtual time zero.
    pub fn new() -> Self {
        Self::default()
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
}
