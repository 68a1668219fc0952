//! What Klaviyo's answers mean.
//!
//! Klaviyo reports errors as JSON:API error documents,
//! `{"errors":[{"id","status","code","title","detail","source"}]}`: the `code` tells a missing scope
//! from a bad key, so it goes into every message together with `title: detail`. Cloudflare, in front of
//! Klaviyo, sometimes answers 403 with an HTML challenge page instead; that is reported as such rather
//! than as undecodable JSON or as a wrong key. Pacing follows the `RateLimit-*` headers Klaviyo puts on
//! every non-429 answer, because other apps on the same account spend the same per-account budget.

use std::time::Duration;

use reqwest::StatusCode;

use growthflow_core::http::{default_classify, generic_error_message, ApiPolicy, Response};
use growthflow_core::Error;

/// The scopes a read-only sync needs, named in every authorisation failure.
pub const REQUIRED_SCOPES: &str =
    "events:read, profiles:read, campaigns:read, flows:read, lists:read, metrics:read";

/// Klaviyo's error semantics, for one configured source (named in auth messages, since a user with two
/// accounts needs to know which key to fix).
#[derive(Debug, Clone)]
pub struct KlaviyoPolicy {
    source: String,
    oauth: bool,
}

impl KlaviyoPolicy {
    /// The policy for source `source` (`[sources.NAME]`) authenticating with a private API key.
    pub fn new(source: impl Into<String>) -> Self {
        KlaviyoPolicy {
            source: source.into(),
            oauth: false,
        }
    }

    /// The same for a source authenticating through OAuth, whose advice names the app's scopes instead.
    pub fn oauth(mut self, oauth: bool) -> Self {
        self.oauth = oauth;
        self
    }
}

impl ApiPolicy for KlaviyoPolicy {
    fn platform(&self) -> &'static str {
        "Klaviyo"
    }

    fn classify(&self, resp: &Response) -> Option<Error> {
        match default_classify(self, resp) {
            // A retired revision is a config fix, not a bug report: say which key to change.
            Some(Error::Api {
                platform,
                status: 410,
                code,
                message,
            }) => Some(Error::Api {
                platform,
                status: 410,
                code,
                message: format!(
                    "{message} (Klaviyo no longer serves this API revision: set sources.{}.revision to a \
                     current one)",
                    self.source
                ),
            }),
            // A key without one endpoint's scope (`lists:read`, say) is refused there only: the stream
            // fails with what to grant, and the source's other streams go on. As an auth failure it
            // stopped them all, so one missing scope synced nothing. A challenge page in front of
            // the API (HTML) is still one: it stops every request from this network alike.
            Some(Error::Auth { message })
                if resp.status == StatusCode::FORBIDDEN && !resp.is_html() =>
            {
                Some(Error::Api {
                    platform: "Klaviyo",
                    status: 403,
                    code: parse_error_body(&resp.body).and_then(|(code, _)| code),
                    message,
                })
            }
            other => other,
        }
    }

    fn error_message(&self, resp: &Response) -> (Option<String>, String) {
        match parse_error_body(&resp.body) {
            Some(parsed) => parsed,
            None => generic_error_message(resp),
        }
    }

    fn auth_message(&self, resp: &Response) -> String {
        let status = resp.status.as_u16();
        if resp.is_html() {
            let challenge = resp
                .header("cf-mitigated")
                .is_some_and(|v| v.contains("challenge"));
            return format!(
                "Klaviyo answered {status} for source \"{}\" with an HTML {} page instead of JSON:API: the \
                 request was stopped in front of the API (Cloudflare), not by the key; run again later, \
                 from another network, or without the proxy in between",
                self.source,
                if challenge || status == 403 {
                    "challenge"
                } else {
                    "error"
                }
            );
        }
        let what = match parse_error_body(&resp.body) {
            Some((Some(code), message)) => format!("{status} {code}: {message}"),
            Some((None, message)) => format!("{status}: {message}"),
            None => format!("{status}, no Klaviyo error body"),
        };
        let verb = if resp.status == StatusCode::FORBIDDEN {
            "refused access to"
        } else {
            "rejected the credentials of"
        };
        let advice = if self.oauth {
            format!(
                "check the OAuth app's client_id, client_secret and refresh_token and that the installation \
                 granted the scopes {REQUIRED_SCOPES}"
            )
        } else {
            format!(
                "check the private API key (pk_…) and its scopes: {REQUIRED_SCOPES} (Klaviyo › Settings › \
                 API keys)"
            )
        };
        format!(
            "Klaviyo {verb} source \"{}\" ({what}): {advice}",
            self.source
        )
    }

    fn pace(&self, resp: &Response) -> Option<Duration> {
        rate_limit_pause(resp)
    }
}

/// How long to wait before the next request, from the steady window's `RateLimit-*` headers: until
/// `RateLimit-Reset` when `RateLimit-Remaining` is 0, nothing otherwise. (429s carry `Retry-After`
/// instead, which core already honours.)
pub fn rate_limit_pause(resp: &Response) -> Option<Duration> {
    let number = |name: &str| {
        resp.header(name)
            .and_then(|v| v.split([',', ';']).next())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let remaining = number("ratelimit-remaining")?;
    if remaining > 0 {
        return None;
    }
    let reset = number("ratelimit-reset").unwrap_or(1).max(1);
    Some(Duration::from_secs(reset))
}

/// `(code, "title: detail")` of a JSON:API error document, or `None` when the body is not one. Several
/// errors are joined with "; ", keeping the first error's code.
pub fn parse_error_body(body: &[u8]) -> Option<(Option<String>, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let errors = value.get("errors")?.as_array()?;
    let first = errors.first()?;
    let text = |e: &serde_json::Value, k: &str| {
        e.get(k)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let messages: Vec<String> = errors
        .iter()
        .map(|e| match (text(e, "title"), text(e, "detail")) {
            (Some(t), Some(d)) => format!("{t}: {d}"),
            (Some(t), None) => t,
            (None, Some(d)) => d,
            (None, None) => "no detail".to_string(),
        })
        .collect();
    Some((text(first, "code"), messages.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use growthflow_core::testing::response as resp;

    const BAD_KEY: &str = r#"{"errors":[{"id":"e1","status":401,"code":"not_authenticated","title":"Authentication credentials were not provided.","detail":"Missing or invalid private key.","source":{"pointer":"/data/"}}]}"#;

    #[test]
    fn error_documents_give_code_and_title_detail() {
        let p = KlaviyoPolicy::new("email");
        let r = resp(
            400,
            &[],
            r#"{"errors":[{"id":"2c76","status":400,"code":"invalid","title":"Invalid input.","detail":"'profiless' is not an allowed include parameter for this resource.","source":{"parameter":"include"},"meta":{}}]}"#,
        );
        match p.classify(&r) {
            Some(Error::Api {
                status: 400,
                code: Some(code),
                message,
                ..
            }) => {
                assert_eq!(code, "invalid");
                assert_eq!(
                    message,
                    "Invalid input.: 'profiless' is not an allowed include parameter for this resource."
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn auth_errors_name_source_code_and_scopes() {
        let p = KlaviyoPolicy::new("email");
        match p.classify(&resp(401, &[], BAD_KEY)) {
            Some(Error::Auth { message }) => assert_eq!(
                message,
                "Klaviyo rejected the credentials of source \"email\" (401 not_authenticated: Authentication \
                 credentials were not provided.: Missing or invalid private key.): check the private API key \
                 (pk_…) and its scopes: events:read, profiles:read, campaigns:read, flows:read, lists:read, \
                 metrics:read (Klaviyo › Settings › API keys)"
            ),
            other => panic!("{other:?}"),
        }
        let forbidden = resp(
            403,
            &[],
            r#"{"errors":[{"id":"e2","status":403,"code":"permission_denied","title":"You do not have permission to perform this action.","detail":"This API key is missing required scopes.","source":{}}]}"#,
        );
        match KlaviyoPolicy::new("email").oauth(true).classify(&forbidden) {
            Some(Error::Api {
                status: 403,
                code: Some(code),
                message,
                ..
            }) => {
                assert_eq!(code, "permission_denied");
                assert!(
                    message.starts_with(
                        "Klaviyo refused access to source \"email\" (403 permission_denied"
                    ),
                    "{message}"
                );
                assert!(message.contains("OAuth app"), "{message}");
                assert!(message.contains("flows:read"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_html_403_is_a_challenge_page_not_a_decode_error() {
        let p = KlaviyoPolicy::new("email");
        let r = resp(
            403,
            &[
                ("content-type", "text/html; charset=UTF-8"),
                ("cf-mitigated", "challenge"),
            ],
            "<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>",
        );
        match p.classify(&r) {
            Some(Error::Auth { message }) => {
                assert!(message.contains("HTML challenge page"), "{message}");
                assert!(message.contains("source \"email\""), "{message}");
                assert!(!message.contains("Just a moment"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retired_revisions_name_the_key() {
        let r = resp(
            410,
            &[],
            r#"{"errors":[{"id":"x","status":410,"code":"gone","title":"Gone.","detail":"This revision is retired."}]}"#,
        );
        let e = KlaviyoPolicy::new("email").classify(&r).unwrap();
        assert!(e.to_string().contains("sources.email.revision"), "{e}");
    }

    #[test]
    fn pace_waits_for_the_reset_only_when_nothing_remains() {
        let p = KlaviyoPolicy::new("email");
        let ok = resp(
            200,
            &[
                ("RateLimit-Limit", "3500"),
                ("RateLimit-Remaining", "3497"),
                ("RateLimit-Reset", "41"),
            ],
            "{}",
        );
        assert_eq!(p.pace(&ok), None);
        let spent = resp(
            200,
            &[
                ("RateLimit-Limit", "3500"),
                ("RateLimit-Remaining", "0"),
                ("RateLimit-Reset", "41"),
            ],
            "{}",
        );
        assert_eq!(p.pace(&spent), Some(Duration::from_secs(41)));
        assert_eq!(p.pace(&resp(200, &[], "{}")), None);
    }

    #[test]
    fn a_429_uses_retry_after() {
        let r = resp(
            429,
            &[("Retry-After", "31")],
            r#"{"errors":[{"id":"8c8f","status":429,"code":"throttled","title":"Request was throttled.","detail":"Request was throttled. Expected available in 1 second."}]}"#,
        );
        let e = KlaviyoPolicy::new("email").classify(&r).unwrap();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(31)));
    }
}
