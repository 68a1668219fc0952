//! What Meta's answers mean.
//!
//! The Graph API reports almost everything as HTTP 400 with an `{"error":{…,"code":N}}` body, so the
//! status alone says little: throttling (codes 4, 17, 32, 613, 80000–80014) and an expired token (190)
//! both arrive as 400. [`MetaPolicy::classify`] dispatches on the code, so core retries throttles after
//! the wait Meta announces in its usage headers and stops on token errors with advice, and
//! [`MetaPolicy::pace`] slows down before Meta blocks the account at all.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use growthflow_core::http::{default_classify, generic_error_message, ApiPolicy, Response};
use growthflow_core::Error;

/// Wait after a throttle when no usage header says how long (Meta's ad-account score blocks for 60 s
/// at the standard tier, 300 s at development tier; 5 minutes covers both).
pub const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(300);

/// First wait after a throttle whose usage header says access is *not* blocked
/// (`estimated_time_to_regain_access: 0`): brief, doubling on each throttle in a row (see
/// [`not_blocked_wait`]).
pub const NOT_BLOCKED_FIRST_WAIT: Duration = Duration::from_secs(5);

/// Usage percentage above which requests are spaced out.
pub const PACE_FROM_PCT: f64 = 75.0;

/// Usage percentage at which the pause reaches [`MAX_PACE`].
pub const PACE_FULL_PCT: f64 = 95.0;

/// The longest pause taken from usage percentages alone (Airbyte pauses at least a minute above 95 %).
pub const MAX_PACE: Duration = Duration::from_secs(60);

/// Meta's throttling error codes: app (4), user (17), page (32), ad-account (613) and business use
/// case (80000–80014) limits.
pub fn is_throttle_code(code: i64) -> bool {
    matches!(code, 4 | 17 | 32 | 613 | 80000..=80014)
}

/// A Graph API error body's fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GraphError {
    /// `error.code`.
    pub code: Option<i64>,
    /// `error.error_subcode`.
    pub subcode: Option<i64>,
    /// `error.message`.
    pub message: String,
    /// `error.error_user_msg`, Meta's advice for people, when given.
    pub user_message: Option<String>,
    /// `error.is_transient`.
    pub is_transient: bool,
}

/// Parse `{"error":{"message","type","code","error_subcode","fbtrace_id","error_user_msg","is_transient"}}`.
pub fn parse_error_body(body: &[u8]) -> Option<GraphError> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let e = value.get("error")?;
    let int = |k: &str| {
        e.get(k).and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
    };
    let text = |k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Some(GraphError {
        code: int("code"),
        subcode: int("error_subcode"),
        message: text("message").unwrap_or_else(|| "no message".to_string()),
        user_message: text("error_user_msg"),
        is_transient: e.get("is_transient").and_then(Value::as_bool) == Some(true),
    })
}

/// Meta's policy for one source (named in messages so that a user with two accounts knows which token
/// to renew).
#[derive(Debug, Clone)]
pub struct MetaPolicy {
    source: String,
    /// Throttles in a row that Meta said were not blocking, shared by the source's streams (the limit
    /// is the account's); a success resets it.
    unblocked_throttles: Arc<AtomicU32>,
}

/// The wait after the `n`-th (0-based) throttle in a row that Meta said was not blocking:
/// [`NOT_BLOCKED_FIRST_WAIT`] doubled each time, up to [`DEFAULT_THROTTLE_WAIT`].
pub fn not_blocked_wait(n: u32) -> Duration {
    NOT_BLOCKED_FIRST_WAIT
        .saturating_mul(2u32.saturating_pow(n.min(16)))
        .min(DEFAULT_THROTTLE_WAIT)
}

/// What Meta's message says when a synchronous request asks for more than it will compute at once.
const REDUCE_DATA: &str = "reduce the amount of data";

/// Whether `e` is Meta asking for less data in one request (see [`MetaPolicy`]'s `classify`).
pub(crate) fn asks_for_less_data(e: &Error) -> bool {
    matches!(e, Error::Api { platform: "Meta", code: Some(c), message, .. }
        if c == "1" && message.contains(REDUCE_DATA))
}

impl MetaPolicy {
    /// The policy for source `source` (`[sources.NAME]`).
    pub fn new(source: impl Into<String>) -> Self {
        MetaPolicy {
            source: source.into(),
            unblocked_throttles: Arc::new(AtomicU32::new(0)),
        }
    }

    /// How long to wait after a throttle: the minutes Meta announces when above 0; a brief, growing
    /// backoff when its header says access is not blocked (0 minutes); [`DEFAULT_THROTTLE_WAIT`] when no
    /// header says anything.
    fn throttle_wait(&self, resp: &Response) -> Duration {
        match regain_access_minutes(resp) {
            Some(m) if m > 0.0 => Duration::from_secs((m * 60.0).ceil() as u64),
            Some(_) => not_blocked_wait(self.unblocked_throttles.fetch_add(1, Ordering::Relaxed)),
            None => DEFAULT_THROTTLE_WAIT,
        }
    }

    fn token_message(&self, e: &GraphError) -> String {
        let why = match e.subcode {
            Some(463) => "the access token has expired",
            Some(460) => "the session was invalidated (the user changed their password)",
            Some(458) => "the user has not authorised the app",
            Some(467) => "the access token is invalid",
            _ => "the access token was rejected",
        };
        format!(
            "Meta rejected the access token of source \"{}\" (code 190{}: {why}: {}): renew the token (a \
             system-user token with ads_read from Business Manager does not expire) and set \
             sources.{}.access_token",
            self.source,
            e.subcode.map(|s| format!("/{s}")).unwrap_or_default(),
            e.message,
            self.source
        )
    }
}

impl ApiPolicy for MetaPolicy {
    fn platform(&self) -> &'static str {
        "Meta"
    }

    fn classify(&self, resp: &Response) -> Option<Error> {
        if resp.status.is_success() {
            self.unblocked_throttles.store(0, Ordering::Relaxed);
            return None;
        }
        let Some(e) = parse_error_body(&resp.body) else {
            return default_classify(self, resp);
        };
        let code = e.code.unwrap_or_default();
        if code == 190 {
            return Some(Error::Auth {
                message: self.token_message(&e),
            });
        }
        if is_throttle_code(code) {
            return Some(Error::Throttled {
                retry_after: Some(self.throttle_wait(resp)),
                message: format!(
                    "Meta answered {} (code {code}): {}",
                    resp.status.as_u16(),
                    e.message
                ),
            });
        }
        // "Please reduce the amount of data you're asking for" (code 1, HTTP 500): the same request
        // fails the same way, so it is not retried; the insights read asks again as an async job.
        if code == 1 && e.message.contains(REDUCE_DATA) {
            return Some(Error::Api {
                platform: "Meta",
                status: resp.status.as_u16(),
                code: Some("1".into()),
                message: e.message,
            });
        }
        // `is_transient`, unknown errors (1) and service unavailable (2) are worth a retry.
        if e.is_transient || matches!(code, 1 | 2) || resp.status.is_server_error() {
            return Some(Error::Transient {
                message: format!(
                    "Meta answered {} (code {code}): {}",
                    resp.status.as_u16(),
                    e.message
                ),
            });
        }
        default_classify(self, resp)
    }

    fn error_message(&self, resp: &Response) -> (Option<String>, String) {
        match parse_error_body(&resp.body) {
            Some(e) => (
                e.code.map(|c| match e.subcode {
                    Some(s) => format!("{c}/{s}"),
                    None => c.to_string(),
                }),
                match e.user_message {
                    Some(u) => format!("{} ({u})", e.message),
                    None => e.message,
                },
            ),
            None => generic_error_message(resp),
        }
    }

    fn auth_message(&self, resp: &Response) -> String {
        let (code, message) = self.error_message(resp);
        format!(
            "Meta refused source \"{}\" ({}{}: {message}): check that the token has ads_read on ad account \
             sources.{}.ad_account_id",
            self.source,
            resp.status.as_u16(),
            code.map(|c| format!(" code {c}")).unwrap_or_default(),
            self.source
        )
    }

    fn pace(&self, resp: &Response) -> Option<Duration> {
        // A throttle's wait is decided by `classify`; a usage pause on top would override a brief,
        // "not blocked" backoff with a minute.
        if !resp.status.is_success()
            && parse_error_body(&resp.body)
                .and_then(|e| e.code)
                .is_some_and(is_throttle_code)
        {
            return None;
        }
        let from_usage = usage_pct(resp).and_then(pause_for_pct);
        let regain = if resp.status.is_success() {
            regain_access_wait(resp)
        } else {
            None
        };
        match (from_usage, regain) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The pause for a usage percentage: nothing up to [`PACE_FROM_PCT`], then growing linearly to
/// [`MAX_PACE`] at [`PACE_FULL_PCT`] and beyond (90 % → 45 s).
pub fn pause_for_pct(pct: f64) -> Option<Duration> {
    if pct.is_nan() || pct <= PACE_FROM_PCT {
        return None;
    }
    let share = ((pct - PACE_FROM_PCT) / (PACE_FULL_PCT - PACE_FROM_PCT)).min(1.0);
    Some(Duration::from_secs(
        (MAX_PACE.as_secs_f64() * share).ceil() as u64
    ))
}

fn header_json(resp: &Response, name: &str) -> Option<Value> {
    serde_json::from_str(resp.header(name)?).ok()
}

fn number(v: Option<&Value>) -> Option<f64> {
    let v = v?;
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The business-use-case entries of `x-business-use-case-usage` (`{"<id>":[{…}, …]}`).
fn buc_entries(resp: &Response) -> Vec<Value> {
    let Some(Value::Object(map)) = header_json(resp, "x-business-use-case-usage") else {
        return Vec::new();
    };
    map.into_iter()
        .flat_map(|(_, v)| match v {
            Value::Array(a) => a,
            other => vec![other],
        })
        .collect()
}

/// The highest usage percentage any of Meta's usage headers reports: `call_count`, `total_cputime`,
/// `total_time` of each business use case and of `x-app-usage`, `acc_id_util_pct` of
/// `x-ad-account-usage`, and `app_id_util_pct`/`acc_id_util_pct` of `x-fb-ads-insights-throttle`.
pub fn usage_pct(resp: &Response) -> Option<f64> {
    let mut values = Vec::new();
    let mut entries = buc_entries(resp);
    entries.extend(header_json(resp, "x-app-usage"));
    for e in &entries {
        for k in ["call_count", "total_cputime", "total_time"] {
            values.extend(number(e.get(k)));
        }
    }
    if let Some(a) = header_json(resp, "x-ad-account-usage") {
        values.extend(number(a.get("acc_id_util_pct")));
    }
    if let Some(t) = header_json(resp, "x-fb-ads-insights-throttle") {
        values.extend(number(t.get("app_id_util_pct")));
        values.extend(number(t.get("acc_id_util_pct")));
    }
    values.into_iter().reduce(f64::max)
}

/// The insights throttle an insights answer reports: the higher of `app_id_util_pct` and
/// `acc_id_util_pct` in `x-fb-ads-insights-throttle` (Meta throttles insights calls at 100).
pub fn insights_throttle_pct(resp: &Response) -> Option<f64> {
    let t = header_json(resp, "x-fb-ads-insights-throttle")?;
    [
        number(t.get("app_id_util_pct")),
        number(t.get("acc_id_util_pct")),
    ]
    .into_iter()
    .flatten()
    .filter(|p| p.is_finite())
    .reduce(f64::max)
}

/// The longest `estimated_time_to_regain_access` (minutes) in `x-business-use-case-usage`, when the
/// header gives one (0 means access is not blocked).
pub fn regain_access_minutes(resp: &Response) -> Option<f64> {
    buc_entries(resp)
        .iter()
        .filter_map(|e| number(e.get("estimated_time_to_regain_access")))
        .filter(|m| m.is_finite() && *m >= 0.0)
        .reduce(f64::max)
}

/// The longest `estimated_time_to_regain_access` in `x-business-use-case-usage`, when above 0.
pub fn regain_access_wait(resp: &Response) -> Option<Duration> {
    regain_access_minutes(resp)
        .filter(|m| *m > 0.0)
        .map(|m| Duration::from_secs((m * 60.0).ceil() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use growthflow_core::testing::response as resp;

    #[test]
    fn throttle_codes_at_400_wait_the_announced_minutes() {
        let p = MetaPolicy::new("meta");
        let r = resp(
            400,
            &[(
                "x-business-use-case-usage",
                r#"{"123":[{"type":"ads_insights","call_count":100,"total_cputime":34,"total_time":41,"estimated_time_to_regain_access":5}]}"#,
            )],
            r#"{"error":{"message":"(#80000) There have been too many calls from this ad-account.","type":"OAuthException","code":80000,"error_subcode":2446079,"fbtrace_id":"A"}}"#,
        );
        let e = p.classify(&r).unwrap();
        assert!(matches!(e, Error::Throttled { .. }), "{e:?}");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(300)));
        for code in [4, 17, 32, 613, 80004, 80014] {
            let body = format!(r#"{{"error":{{"message":"limit","code":{code}}}}}"#);
            let e = p.classify(&resp(400, &[], &body)).unwrap();
            assert_eq!(e.retry_after(), Some(DEFAULT_THROTTLE_WAIT), "{code}");
        }
        let e = p
            .classify(&resp(403, &[], r#"{"error":{"message":"(#4) Application request limit reached","code":4,"is_transient":true}}"#))
            .unwrap();
        assert!(matches!(e, Error::Throttled { .. }), "{e:?}");
    }

    /// `estimated_time_to_regain_access: 0` says access is not blocked: a brief wait that doubles while
    /// throttles follow each other, back to the start after a success.
    #[test]
    fn not_blocked_throttles_back_off_briefly_and_grow() {
        let p = MetaPolicy::new("meta");
        let throttle = resp(
            400,
            &[(
                "x-business-use-case-usage",
                r#"{"1":[{"type":"ads_management","call_count":100,"total_cputime":10,"total_time":10,"estimated_time_to_regain_access":0}]}"#,
            )],
            r#"{"error":{"message":"(#17) User request limit reached","code":17,"is_transient":true}}"#,
        );
        let waits: Vec<u64> = (0..8)
            .map(|_| {
                p.classify(&throttle)
                    .unwrap()
                    .retry_after()
                    .unwrap()
                    .as_secs()
            })
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(p.pace(&throttle), None, "the throttle's wait is classify's");
        assert!(p.classify(&resp(200, &[], "{}")).is_none());
        assert_eq!(
            p.classify(&throttle).unwrap().retry_after(),
            Some(NOT_BLOCKED_FIRST_WAIT)
        );
    }

    #[test]
    fn token_errors_say_to_renew() {
        let p = MetaPolicy::new("meta");
        let r = resp(
            400,
            &[],
            r#"{"error":{"message":"Error validating access token: Session has expired on Saturday, 01-Jun-24 10:00:00 PDT.","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"Ey5"}}"#,
        );
        match p.classify(&r) {
            Some(Error::Auth { message }) => {
                assert!(message.contains("source \"meta\""), "{message}");
                assert!(message.contains("190/463"), "{message}");
                assert!(message.contains("expired"), "{message}");
                assert!(message.contains("renew the token"), "{message}");
                assert!(message.contains("sources.meta.access_token"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn transient_and_client_errors() {
        let p = MetaPolicy::new("meta");
        let e = p
            .classify(&resp(400, &[], r#"{"error":{"message":"(#2) Service temporarily unavailable","type":"OAuthException","is_transient":true,"code":2}}"#))
            .unwrap();
        assert!(matches!(e, Error::Transient { .. }), "{e:?}");
        let e = p
            .classify(&resp(
                500,
                &[],
                r#"{"error":{"code":1,"message":"An unknown error occurred","error_subcode":99}}"#,
            ))
            .unwrap();
        assert!(matches!(e, Error::Transient { .. }), "{e:?}");
        match p.classify(&resp(400, &[], r#"{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100,"error_user_msg":"Pick a valid window"}}"#)) {
            Some(Error::Api { status: 400, code, message, .. }) => {
                assert_eq!(code.as_deref(), Some("100"));
                assert_eq!(message, "(#100) Invalid parameter (Pick a valid window)");
            }
            other => panic!("{other:?}"),
        }
        assert!(p.classify(&resp(200, &[], "{}")).is_none());
    }

    #[test]
    fn pace_grows_with_usage_above_75_percent() {
        let p = MetaPolicy::new("meta");
        assert_eq!(pause_for_pct(75.0), None);
        assert_eq!(pause_for_pct(90.0), Some(Duration::from_secs(45)));
        assert_eq!(pause_for_pct(99.0), Some(MAX_PACE));
        let low = resp(
            200,
            &[
                (
                    "x-business-use-case-usage",
                    r#"{"1":[{"type":"ads_insights","call_count":3,"total_cputime":1,"total_time":2,"estimated_time_to_regain_access":0}]}"#,
                ),
                (
                    "x-fb-ads-insights-throttle",
                    r#"{"app_id_util_pct":0,"acc_id_util_pct":0.5}"#,
                ),
            ],
            "{}",
        );
        assert_eq!(p.pace(&low), None);
        let acc = resp(
            200,
            &[(
                "x-ad-account-usage",
                r#"{"acc_id_util_pct":90,"reset_time_duration":100}"#,
            )],
            "{}",
        );
        assert_eq!(p.pace(&acc), Some(Duration::from_secs(45)));
        let ins = resp(
            200,
            &[(
                "x-fb-ads-insights-throttle",
                r#"{"app_id_util_pct":96.5,"acc_id_util_pct":1}"#,
            )],
            "{}",
        );
        assert_eq!(p.pace(&ins), Some(MAX_PACE));
    }
}
