//! What a platform's answers mean: the [`Response`] a connector's [`ApiPolicy`] reads, and the plain
//! HTTP semantics every policy can fall back to.

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::parse_retry_after;
use crate::{Error, Result};

/// A response read whole, up to [`HttpConfig::max_response_bytes`](super::HttpConfig::max_response_bytes) (bulk downloads use
/// [`HttpClient::send_raw`](super::HttpClient::send_raw)).
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// Decode the body as JSON; an HTML error page or truncated body becomes a [`Error::Decode`] that
    /// quotes the start of the body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::decode(e, &self.body))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a header (e.g. several `Link` lines).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// True when the body looks like an HTML page rather than the API's JSON.
    pub fn is_html(&self) -> bool {
        let ct = self.header("content-type").unwrap_or_default();
        let start = self
            .body
            .iter()
            .skip_while(|b| b.is_ascii_whitespace())
            .take(15)
            .copied()
            .collect::<Vec<u8>>()
            .to_ascii_lowercase();
        ct.contains("text/html") || start.starts_with(b"<!doctype") || start.starts_with(b"<html")
    }
}

/// What a platform's answers mean. Each connector implements this once; the defaults cover plain HTTP
/// semantics and every method can fall back to [`default_classify`].
pub trait ApiPolicy: Send + Sync + fmt::Debug {
    /// Platform name used in messages (`WooCommerce`).
    fn platform(&self) -> &'static str;

    /// `None` when the response is a success; otherwise the classified error. Override for platforms
    /// that signal failures inside a 200 (Shopify's `THROTTLED`) or throttling inside a 400 (Meta).
    fn classify(&self, resp: &Response) -> Option<Error> {
        default_classify(self, resp)
    }

    /// The platform's own error code and message from an error body.
    fn error_message(&self, resp: &Response) -> (Option<String>, String) {
        generic_error_message(resp)
    }

    /// The message for a 401/403: what failed and what the user should do.
    fn auth_message(&self, resp: &Response) -> String {
        let (code, message) = self.error_message(resp);
        format!(
            "{} answered {}{}: {message}; check the source's credentials",
            self.platform(),
            resp.status.as_u16(),
            code.map(|c| format!(" ({c})")).unwrap_or_default()
        )
    }

    /// A pause to take before the next request on this endpoint, read from usage signals on any response
    /// (cost buckets, usage percentages, remaining-token headers). `None` when there is headroom.
    fn pace(&self, _resp: &Response) -> Option<Duration> {
        None
    }
}

/// Plain HTTP semantics: 2xx ok; 401/403 auth; 408, 5xx and non-JSON proxy pages transient; 429 throttled
/// with `Retry-After`; other 4xx a client error with the platform's message.
pub fn default_classify<P: ApiPolicy + ?Sized>(policy: &P, resp: &Response) -> Option<Error> {
    let status = resp.status;
    if status.is_success() {
        return None;
    }
    Some(match status.as_u16() {
        401 | 403 => Error::Auth {
            message: policy.auth_message(resp),
        },
        429 => Error::Throttled {
            retry_after: resp.header("retry-after").and_then(parse_retry_after),
            message: format!("{} answered 429 Too Many Requests", policy.platform()),
        },
        503 if resp.header("retry-after").is_some() => Error::Throttled {
            retry_after: resp.header("retry-after").and_then(parse_retry_after),
            message: format!(
                "{} answered 503 Service Unavailable with Retry-After",
                policy.platform()
            ),
        },
        408 | 500..=599 => Error::Transient {
            message: format!(
                "{} answered {}{}",
                policy.platform(),
                status,
                if resp.is_html() {
                    " (an HTML error page)".to_string()
                } else {
                    format!(": {}", policy.error_message(resp).1)
                }
            ),
        },
        code => {
            let (api_code, message) = policy.error_message(resp);
            Error::Api {
                platform: policy.platform(),
                status: code,
                code: api_code,
                message,
            }
        }
    })
}

/// A best effort at `{"message": …}`, `{"error": {"message": …}}` or `{"errors": …}`; the body's start
/// otherwise.
pub fn generic_error_message(resp: &Response) -> (Option<String>, String) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&resp.body) {
        let code = v
            .get("code")
            .or_else(|| v.pointer("/error/status"))
            .and_then(|c| c.as_str().map(str::to_string));
        let msg = v
            .get("message")
            .or_else(|| v.pointer("/error/message"))
            .or_else(|| v.get("errors"))
            .or_else(|| v.get("error"))
            .map(|m| {
                m.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| m.to_string())
            });
        if let Some(msg) = msg {
            return (code, msg);
        }
    }
    let text: String = resp.text().chars().take(200).collect();
    (
        None,
        if resp.is_html() {
            "an HTML page instead of the API's JSON".to_string()
        } else {
            text
        },
    )
}

/// A policy with plain HTTP semantics, for simple platforms and tests.
#[derive(Debug, Clone)]
pub struct DefaultPolicy(pub &'static str);

impl ApiPolicy for DefaultPolicy {
    fn platform(&self) -> &'static str {
        self.0
    }
}
