//! What WooCommerce's answers mean.
//!
//! WooCommerce (through the WordPress REST server) reports every error as
//! `{"code": "...", "message": "...", "data": {"status": N}}` with a matching HTTP status. The code is what
//! tells a bad secret from a missing permission, so it goes into every message. Hosts and firewalls in
//! front of WordPress answer with HTML pages instead; core's [`default_classify`] already treats those as
//! transient on 5xx, and the messages here say "an HTML page" rather than quoting markup.

use reqwest::StatusCode;

use growthflow_core::http::{
    default_classify, generic_error_message, parse_retry_after, ApiPolicy, Response,
};
use growthflow_core::Error;

/// The advice attached to every authentication failure, because the fix is always in the same screen.
const KEY_ADVICE: &str =
    "check consumer_key and consumer_secret (a REST API key with read access from \
     WooCommerce › Settings › Advanced › REST API)";

/// WooCommerce's error semantics, for one configured source (named in auth messages, since a user with
/// two stores needs to know which key to fix).
#[derive(Debug, Clone)]
pub struct WooPolicy {
    source: String,
}

impl WooPolicy {
    /// The policy for source `source` (`[sources.NAME]`).
    pub fn new(source: impl Into<String>) -> Self {
        WooPolicy {
            source: source.into(),
        }
    }
}

impl ApiPolicy for WooPolicy {
    fn platform(&self) -> &'static str {
        "WooCommerce"
    }

    fn classify(&self, resp: &Response) -> Option<Error> {
        // Hosts in maintenance mode or shedding load answer 503 with a Retry-After; honour it instead of
        // guessing a backoff (core's default only reads Retry-After on 429).
        if resp.status == StatusCode::SERVICE_UNAVAILABLE {
            if let Some(wait) = resp.header("retry-after").and_then(parse_retry_after) {
                return Some(Error::Throttled {
                    retry_after: Some(wait),
                    message: "WooCommerce's host answered 503 Service Unavailable".into(),
                });
            }
        }
        default_classify(self, resp)
    }

    fn error_message(&self, resp: &Response) -> (Option<String>, String) {
        match parse_error_body(&resp.body) {
            Some(parsed) => parsed,
            None => generic_error_message(resp),
        }
    }

    fn auth_message(&self, resp: &Response) -> String {
        let status = resp.status.as_u16();
        let what = if resp.is_html() || parse_error_body(&resp.body).is_none() {
            format!(
                "{status}, {}",
                if resp.is_html() {
                    "an HTML page: a firewall or the host's security layer may be blocking the request"
                } else {
                    "no WooCommerce error body"
                }
            )
        } else {
            let (code, message) = self.error_message(resp);
            match code {
                Some(code) => format!("{status} {code}: {message}"),
                None => format!("{status}: {message}"),
            }
        };
        let verb = if status == 403 {
            "refused access to"
        } else {
            "rejected the credentials of"
        };
        let advice = if status == 403 {
            format!("{KEY_ADVICE}; the key's user also needs permission to read orders")
        } else {
            KEY_ADVICE.to_string()
        };
        format!(
            "WooCommerce {verb} source \"{}\" ({what}): {advice}",
            self.source
        )
    }
}

/// `(code, message)` of a WordPress REST error body, or `None` when the body is not one.
pub fn parse_error_body(body: &[u8]) -> Option<(Option<String>, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = value.get("message")?.as_str()?.to_string();
    let code = value
        .get("code")
        .and_then(|c| c.as_str())
        .map(str::to_string);
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use growthflow_core::testing::response as resp;
    use std::time::Duration;

    #[test]
    fn auth_errors_name_source_code_and_fix() {
        let p = WooPolicy::new("woo");
        let r = resp(
            401,
            &[],
            r#"{"code":"woocommerce_rest_authentication_error","message":"Consumer secret is invalid.","data":{"status":401}}"#,
        );
        match p.classify(&r) {
            Some(Error::Auth { message }) => assert_eq!(
                message,
                "WooCommerce rejected the credentials of source \"woo\" (401 \
                 woocommerce_rest_authentication_error: Consumer secret is invalid.): check consumer_key \
                 and consumer_secret (a REST API key with read access from WooCommerce › Settings › \
                 Advanced › REST API)"
            ),
            other => panic!("{other:?}"),
        }
        let html = resp(
            403,
            &[("content-type", "text/html")],
            "<html>blocked</html>",
        );
        match p.classify(&html) {
            Some(Error::Auth { message }) => {
                assert!(message.contains("source \"woo\""), "{message}");
                assert!(message.contains("HTML page"), "{message}");
                assert!(!message.contains("blocked"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_errors_keep_woocommerce_code() {
        let p = WooPolicy::new("woo");
        let r = resp(
            400,
            &[],
            r#"{"code":"rest_invalid_param","message":"Invalid parameter(s): per_page","data":{"status":400}}"#,
        );
        match p.classify(&r) {
            Some(Error::Api {
                status: 400,
                code: Some(code),
                message,
                ..
            }) => {
                assert_eq!(code, "rest_invalid_param");
                assert_eq!(message, "Invalid parameter(s): per_page");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unavailable_with_retry_after_is_a_throttle() {
        let p = WooPolicy::new("woo");
        let r = resp(503, &[("retry-after", "30")], "<html>maintenance</html>");
        assert_eq!(
            p.classify(&r).and_then(|e| e.retry_after()),
            Some(Duration::from_secs(30))
        );
        let r = resp(503, &[("content-type", "text/html")], "<html>down</html>");
        assert!(matches!(p.classify(&r), Some(Error::Transient { .. })));
        assert!(p.classify(&resp(200, &[], "[]")).is_none());
    }
}
