//! How long to wait between attempts.

use std::time::Duration;

/// Exponential backoff with jitter, capped; a delay the platform asks for (`Retry-After`, a usage header,
/// a cost bucket) replaces the computed one, up to `max_wait`.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries of failures without a platform-given delay (5xx, timeouts), after the first attempt.
    pub max_retries: u32,
    /// Waits the platform itself asked for (Retry-After, a cost bucket, a usage header). These are
    /// not failures but the platform's pacing — several streams sharing one bucket can be told to
    /// wait many times in a row — so they have their own, larger budget.
    pub max_throttle_waits: u32,
    /// First backoff; doubles each attempt.
    pub base_delay: Duration,
    /// Upper bound for computed backoff.
    pub max_backoff: Duration,
    /// Longest platform-requested delay we will honour; beyond it the error is returned instead. The
    /// default, [`DEFAULT_MAX_WAIT`], admits waiting out an hourly quota (GA4) but not a daily one.
    pub max_wait: Duration,
    /// The most one request may spend waiting between its attempts, all waits together: the counts
    /// above bound the attempts, this bounds the time, so a request never hangs a sync for hours.
    pub max_total_wait: Duration,
}

/// The default [`RetryPolicy::max_wait`]: an hour and five minutes, so that a quota refilled every hour
/// (GA4's hourly token, thresholded-request and server-error quotas, waited out until the next hour plus a
/// margin) is waited for, while anything longer — a daily cap — ends the stream with "run again later".
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(65 * 60);

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: default_max_retries(),
            max_throttle_waits: default_max_throttle_waits(),
            base_delay: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            max_wait: DEFAULT_MAX_WAIT,
            // Above `max_wait`, so that one platform-paced wait (an hourly quota) fits in it.
            max_total_wait: Duration::from_secs(90 * 60),
        }
    }
}

fn default_max_throttle_waits() -> u32 {
    60
}

fn default_max_retries() -> u32 {
    6
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (0-based): half the exponential step plus a random half,
    /// so that many clients retrying at once spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let step = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.min(20)))
            .min(self.max_backoff);
        let half = step / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Parse a `Retry-After` value: delta-seconds (integer or decimal, as Shopify sends `2.0`) or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs));
        }
        return None;
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 0..30 {
            let d = p.backoff(attempt);
            let step = (p.base_delay * 2u32.pow(attempt.min(20))).min(p.max_backoff);
            assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("2.0"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
