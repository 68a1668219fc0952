//! Waiting for a platform's long-running job (a Shopify bulk operation, a Meta insights report run):
//! ask again after a short first wait, doubling up to a ceiling, on the client's [`Clock`] so tests
//! decide how time passes, and give up after a budget instead of polling forever.
//!
//! Small jobs finish in seconds, so the first wait is short; long ones run for many minutes, so the
//! wait grows and polls (which cost quota) stay rare.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::http::Clock;

/// The doubling waits between two polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollBackoff {
    first: Duration,
    max: Duration,
    next: Duration,
    waited: Duration,
}

impl PollBackoff {
    /// Waits of `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> PollBackoff {
        PollBackoff {
            first,
            max,
            next: first,
            waited: Duration::ZERO,
        }
    }

    /// Back to the first, short wait (new work was started that may finish soon). The time waited
    /// so far is kept.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// The wait the next [`wait`](Self::wait) will take.
    pub fn next_delay(&self) -> Duration {
        self.next
    }

    /// Everything waited so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Sleep the next wait on `clock`, then double it (up to the ceiling).
    pub async fn wait(&mut self, clock: &dyn Clock) {
        let d = self.next;
        clock.sleep(d).await;
        self.waited += d;
        self.next = (self.next * 2).min(self.max);
    }
}

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled<T> {
    /// The job is done (or failed: `T` says which).
    Done(T),
    /// Still running: ask again later.
    Pending,
}

/// Poll a job until `poll` says it is done: a wait from `backoff` before each poll; after `budget`
/// of waiting, `on_timeout(waited)` is the error. An error from `poll` ends the wait at once (the
/// HTTP client has already retried what was worth retrying).
pub async fn poll_until<T, F, Fut>(
    clock: &dyn Clock,
    mut backoff: PollBackoff,
    budget: Duration,
    mut poll: F,
    on_timeout: impl FnOnce(Duration) -> Error,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Polled<T>>>,
{
    loop {
        backoff.wait(clock).await;
        if let Polled::Done(t) = poll().await? {
            return Ok(t);
        }
        if backoff.waited() >= budget {
            return Err(on_timeout(backoff.waited()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::TestClock;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn waits_double_up_to_the_ceiling_and_the_answer_comes_back() {
        let clock = TestClock::new();
        let polls = AtomicU32::new(0);
        let got = poll_until(
            &clock,
            PollBackoff::new(Duration::from_secs(1), Duration::from_secs(4)),
            Duration::from_secs(3600),
            || async {
                let n = polls.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(if n == 5 {
                    Polled::Done(n)
                } else {
                    Polled::Pending
                })
            },
            |_| Error::Internal("no timeout expected".into()),
        )
        .await
        .unwrap();
        assert_eq!(got, 5);
        let secs: Vec<u64> = clock.sleeps().iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 4, 4]);
    }

    #[tokio::test]
    async fn the_budget_ends_the_wait_with_the_callers_error() {
        let clock = TestClock::new();
        let err = poll_until(
            &clock,
            PollBackoff::new(Duration::from_secs(10), Duration::from_secs(30)),
            Duration::from_secs(60),
            || async { Ok(Polled::<()>::Pending) },
            |waited| Error::Transient {
                message: format!("still running after {} s", waited.as_secs()),
            },
        )
        .await
        .unwrap_err();
        // 10 + 20 + 30 = 60 s: the budget is reached after the third poll.
        assert_eq!(
            err.to_string(),
            "temporary failure: still running after 60 s"
        );
        assert_eq!(clock.sleeps().len(), 3);
    }

    #[tokio::test]
    async fn a_failed_poll_ends_the_wait_at_once() {
        let clock = TestClock::new();
        let err = poll_until(
            &clock,
            PollBackoff::new(Duration::from_secs(1), Duration::from_secs(30)),
            Duration::from_secs(3600),
            || async {
                Err::<Polled<()>, _>(Error::Auth {
                    message: "revoked".into(),
                })
            },
            |_| Error::Internal("no timeout expected".into()),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Auth);
        assert_eq!(clock.sleeps().len(), 1);
    }

    #[test]
    fn reset_goes_back_to_the_first_wait_and_keeps_the_total() {
        let mut b = PollBackoff::new(Duration::from_secs(1), Duration::from_secs(30));
        b.next = Duration::from_secs(16);
        b.waited = Duration::from_secs(15);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        assert_eq!(b.waited(), Duration::from_secs(15));
    }
}
