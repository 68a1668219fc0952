//! What the Data API's answers mean.
//!
//! Errors come as a `google.rpc.Status` envelope, `{"error":{"code","message","status","details"}}`.
//! A 429 `RESOURCE_EXHAUSTED` carries no `Retry-After`: the wait is chosen from the quota the message
//! names, and a spent *daily* token quota stops the sync ([`Error::QuotaExhausted`]) rather than
//! waiting for hours. Pacing follows `propertyQuota`, which every report asks for (inside each of a
//! batch's `reports`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use growthflow_core::http::{
    default_classify, generic_error_message, ApiPolicy, Clock, Response, TokioClock,
};
use growthflow_core::Error;

pub use crate::limits::{
    CONCURRENT_BACKOFF, HOURLY_BUDGETS, HOURLY_LOW_WATERMARK, HOURLY_PAUSE, HOURLY_REFILL_MARGIN,
};

/// The wait for a spent hourly (or thresholded / server-error) quota: until the next full hour, when the
/// hourly quotas refill, plus [`HOURLY_REFILL_MARGIN`]. Never more than an hour and the margin, which core's
/// default `max_wait` admits, so the stream waits as the README promises instead of failing.
pub fn hourly_backoff(now: DateTime<Utc>) -> Duration {
    let into_hour = u64::from(now.minute()) * 60 + u64::from(now.second());
    Duration::from_secs(3600 - into_hour) + HOURLY_REFILL_MARGIN
}

/// GA4's error semantics for one source and property.
#[derive(Debug, Clone)]
pub struct Ga4Policy {
    source: String,
    property: String,
    clock: Arc<dyn Clock>,
}

impl Ga4Policy {
    /// The policy for source `source` reading property `property` (digits), on real time.
    pub fn new(source: impl Into<String>, property: impl Into<String>) -> Self {
        Ga4Policy {
            source: source.into(),
            property: property.into(),
            clock: Arc::new(TokioClock),
        }
    }

    /// Read the time of day from `clock` (the HTTP client's): a spent hourly quota is waited out until
    /// the next hour by that clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// `(status, message)` of a google.rpc.Status body.
pub fn parse_status(body: &[u8]) -> Option<(Option<String>, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let message = e.get("message")?.as_str()?.trim().to_string();
    let status = e.get("status").and_then(|s| s.as_str()).map(str::to_string);
    Some((status, message))
}

impl ApiPolicy for Ga4Policy {
    fn platform(&self) -> &'static str {
        "Google Analytics"
    }

    fn classify(&self, resp: &Response) -> Option<Error> {
        if resp.status.as_u16() == 429 {
            let (_, message) = self.error_message(resp);
            let lower = message.to_ascii_lowercase();
            if lower.contains("per day")
                || lower.contains("tokensperday")
                || lower.contains("daily")
            {
                return Some(Error::QuotaExhausted {
                    message: format!(
                        "GA4 property {} has spent its daily token quota (\"{message}\"); the quota refills at \
                         midnight Pacific time; a sync resumes from its last saved day, a backfill from the day it reached",
                        self.property
                    ),
                });
            }
            let wait = if lower.contains("concurrent") {
                CONCURRENT_BACKOFF
            } else if lower.contains("hour")
                || lower.contains("thresholded")
                || lower.contains("server errors")
            {
                hourly_backoff(self.clock.utc_now())
            } else {
                CONCURRENT_BACKOFF
            };
            return Some(Error::Throttled {
                retry_after: Some(wait),
                message: format!("Google Analytics answered 429 RESOURCE_EXHAUSTED: {message}"),
            });
        }
        default_classify(self, resp)
    }

    fn error_message(&self, resp: &Response) -> (Option<String>, String) {
        parse_status(&resp.body).unwrap_or_else(|| generic_error_message(resp))
    }

    fn auth_message(&self, resp: &Response) -> String {
        let (status, message) = self.error_message(resp);
        let code = resp.status.as_u16();
        let what = format!(
            "{code}{}: {message}",
            status.map(|s| format!(" {s}")).unwrap_or_default()
        );
        if code == 403 {
            format!(
                "Google Analytics refused source \"{}\" ({what}): the account lacks access to property {}; \
                 add the service account's (or user's) email to the property as a Viewer (Admin › Property \
                 access management) and check sources.{}.property_id",
                self.source, self.property, self.source
            )
        } else {
            format!(
                "Google Analytics rejected the credentials of source \"{}\" ({what}): check \
                 sources.{}.credentials_file or the OAuth client_id/client_secret/refresh_token",
                self.source, self.source
            )
        }
    }

    // No `pace`: the hourly quota is in the body, which the connector parses once where it decodes a
    // report ([`quota_pause_in`]); reading it here parsed every report page once more, on the thread
    // that polls the sync.
}

/// A pause when `propertyQuota.tokensPerHour` (or the per-project hourly share) has under
/// [`HOURLY_LOW_WATERMARK`] of a standard property's hourly budget remaining (`consumed` is this request's
/// cost only, so the budget is Google's documented one). A runReport answer carries `propertyQuota` at
/// its top level; a batchRunReports answer carries one inside each of its `reports`, and the lowest
/// remaining of them counts.
pub fn quota_pause(resp: &Response) -> Option<Duration> {
    quota_pause_in(&serde_json::from_slice(&resp.body).ok()?)
}

/// [`quota_pause`] of a report answer already parsed: the connector reads it where it decodes the
/// answer and pauses its report requests with [`HttpClient::pause`](growthflow_core::http::HttpClient::pause).
pub fn quota_pause_in(v: &serde_json::Value) -> Option<Duration> {
    let batched = v
        .get("reports")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("propertyQuota"));
    let quotas: Vec<&serde_json::Value> =
        v.get("propertyQuota").into_iter().chain(batched).collect();
    for (name, budget) in HOURLY_BUDGETS {
        let remaining = quotas
            .iter()
            .filter_map(|q| {
                let x = q.get(name)?.get("remaining")?;
                x.as_f64().or_else(|| x.as_str()?.parse().ok())
            })
            .reduce(f64::min);
        if let Some(remaining) = remaining {
            if remaining < budget * HOURLY_LOW_WATERMARK {
                tracing::warn!(
                    quota = name,
                    remaining,
                    "GA4 hourly token quota running low; pausing"
                );
                return Some(HOURLY_PAUSE);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use reqwest::StatusCode;

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn status_envelopes_classify() {
        let p = Ga4Policy::new("web", "123");
        let e = p
            .classify(&resp(
                400,
                r#"{"error":{"code":400,"message":"Field sessionDefaultChannelGrouping is not a valid dimension.","status":"INVALID_ARGUMENT"}}"#,
            ))
            .unwrap();
        match e {
            Error::Api {
                status: 400,
                code: Some(code),
                message,
                ..
            } => {
                assert_eq!(code, "INVALID_ARGUMENT");
                assert!(message.contains("sessionDefaultChannelGrouping"));
            }
            other => panic!("{other:?}"),
        }
        let e = p
            .classify(&resp(
                401,
                r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#,
            ))
            .unwrap();
        assert!(
            matches!(&e, Error::Auth { message } if message.contains("source \"web\"")),
            "{e}"
        );
        let e = p
            .classify(&resp(
                429,
                r#"{"error":{"code":429,"message":"Exhausted property tokens for a project per hour.","status":"RESOURCE_EXHAUSTED"}}"#,
            ))
            .unwrap();
        let wait = e.retry_after().unwrap();
        assert!(
            wait > HOURLY_REFILL_MARGIN && wait <= Duration::from_secs(3610),
            "{wait:?}"
        );
        assert!(p.classify(&resp(200, "{}")).is_none());
    }

    #[test]
    fn hourly_quotas_wait_until_the_next_hour() {
        let at = |h, m, s| Utc.with_ymd_and_hms(2024, 7, 1, h, m, s).unwrap();
        assert_eq!(hourly_backoff(at(10, 0, 0)), Duration::from_secs(3610));
        assert_eq!(
            hourly_backoff(at(10, 45, 30)),
            Duration::from_secs(14 * 60 + 30 + 10)
        );
        assert_eq!(hourly_backoff(at(10, 59, 59)), Duration::from_secs(11));
        // Every hourly wait is one core's default max_wait admits.
        assert!(
            hourly_backoff(at(10, 0, 0)) <= growthflow_core::http::RetryPolicy::default().max_wait
        );

        let clock = growthflow_core::http::TestClock::at(at(9, 40, 0));
        let p = Ga4Policy::new("web", "123").with_clock(Arc::new(clock));
        for message in [
            "Exhausted property tokens for a project per hour.",
            "Exhausted potentially thresholded requests quota.",
            "Exhausted server errors quota.",
        ] {
            let body = format!(
                r#"{{"error":{{"code":429,"message":"{message}","status":"RESOURCE_EXHAUSTED"}}}}"#
            );
            let e = p.classify(&resp(429, &body)).unwrap();
            assert_eq!(
                e.retry_after(),
                Some(Duration::from_secs(20 * 60 + 10)),
                "{message}"
            );
        }
    }

    #[test]
    fn pace_only_when_hourly_tokens_run_low() {
        let ok = resp(
            200,
            r#"{"propertyQuota":{"tokensPerHour":{"consumed":5,"remaining":39000}}}"#,
        );
        assert_eq!(quota_pause(&ok), None);
        let low = resp(
            200,
            r#"{"propertyQuota":{"tokensPerHour":{"consumed":5,"remaining":39000},"tokensPerProjectPerHour":{"consumed":5,"remaining":1000}}}"#,
        );
        assert_eq!(quota_pause(&low), Some(HOURLY_PAUSE));
        assert_eq!(quota_pause(&resp(200, "{}")), None);
    }

    #[test]
    fn batched_reports_pace_on_their_own_quota() {
        let batch = |last: u32| {
            resp(
                200,
                &format!(
                    r#"{{"reports":[{{"propertyQuota":{{"tokensPerHour":{{"consumed":5,"remaining":39000}}}}}},
                    {{"propertyQuota":{{"tokensPerHour":{{"consumed":5,"remaining":{last}}}}}}}],
                    "kind":"analyticsData#batchRunReports"}}"#
                ),
            )
        };
        assert_eq!(quota_pause(&batch(38_990)), None);
        assert_eq!(quota_pause(&batch(3_000)), Some(HOURLY_PAUSE));
    }
}
