//! What Shopify's GraphQL Admin API answers mean.
//!
//! Shopify reports most failures *inside* an HTTP 200: `{"errors": [{"message", "extensions": {"code"}}]}`.
//! The one that matters most is `THROTTLED` — the cost bucket is empty — which is a 200, not a 429, so
//! plain HTTP semantics would store an error body as a page. Every response also carries the bucket's
//! state (`extensions.cost.throttleStatus`), which [`ShopifyPolicy::pace`] reads so that the client
//! slows down *before* the bucket runs dry instead of after. HTTP-level errors (401 with a plain-string
//! `errors`, 402/423 for frozen or locked shops, 429/503) are handled here or by core's defaults.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use growthflow_core::http::{default_classify, generic_error_message, ApiPolicy, Response};
use growthflow_core::Error;

/// GraphQL error code of an empty cost bucket.
pub const THROTTLED: &str = "THROTTLED";
/// GraphQL error code of a query whose worst-case cost exceeds the single-query limit (1000 points).
pub const MAX_COST_EXCEEDED: &str = "MAX_COST_EXCEEDED";
/// GraphQL error code of a missing access scope.
pub const ACCESS_DENIED: &str = "ACCESS_DENIED";

/// The scopes a sync needs, named in every permission error because the fix is always the app's
/// configuration.
const SCOPES_ADVICE: &str = "the app needs read_orders, read_customers and read_products (and \
    read_all_orders to see orders older than 60 days)";

/// Shopify's error semantics for one configured source (named in auth messages, since a user with two
/// shops needs to know which token to fix).
#[derive(Debug, Clone)]
pub struct ShopifyPolicy {
    source: String,
}

/// The cost report Shopify attaches to every GraphQL response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryCost {
    /// The query's worst-case cost, charged up front.
    pub requested: f64,
    /// Points left in the bucket after this query.
    pub available: f64,
    /// Points restored per second.
    pub restore_rate: f64,
    /// The bucket's size (`maximumAvailable`), when reported.
    pub maximum: Option<f64>,
}

impl QueryCost {
    /// `extensions.cost` of a response body, when complete.
    pub fn from_body(body: &Value) -> Option<QueryCost> {
        QueryCost::from_extensions(body.get("extensions")?)
    }

    /// `cost` of a response's `extensions`, when complete (for a body read without its `data`).
    pub fn from_extensions(extensions: &Value) -> Option<QueryCost> {
        let cost = extensions.get("cost")?;
        let status = cost.get("throttleStatus")?;
        Some(QueryCost {
            requested: cost.get("requestedQueryCost")?.as_f64()?,
            available: status.get("currentlyAvailable")?.as_f64()?,
            restore_rate: status.get("restoreRate")?.as_f64()?,
            maximum: status.get("maximumAvailable").and_then(Value::as_f64),
        })
    }

    /// How long until the bucket holds another query of the same cost; `None` when it already does.
    pub fn wait_for_next(&self) -> Option<Duration> {
        if self.available >= self.requested || self.restore_rate <= 0.0 {
            return None;
        }
        Duration::try_from_secs_f64((self.requested - self.available) / self.restore_rate).ok()
    }
}

/// Whether one GraphQL error is the field-level ACCESS_DENIED of `customerJourneySummary`.
fn withheld_journey(error: &Value) -> bool {
    error.pointer("/extensions/code").and_then(Value::as_str) == Some(ACCESS_DENIED)
        && error
            .get("path")
            .and_then(Value::as_array)
            .and_then(|p| p.last())
            .and_then(Value::as_str)
            == Some("customerJourneySummary")
}

/// The GraphQL error of a body that decides what it means: `(code, message, path)`.
fn first_error(body: &Value) -> Option<(Option<String>, String, Option<String>)> {
    let errors = body.get("errors")?.as_array()?;
    // A throttle anywhere decides the outcome, whatever else is listed; then any error but the
    // withheld journey summary, which alone keeps the page (see `classify_graphql`): listed first, it
    // hid a denied `customer` or `email` behind it, and the page was kept without them.
    let pick = errors
        .iter()
        .find(|e| e.pointer("/extensions/code").and_then(Value::as_str) == Some(THROTTLED))
        .or_else(|| errors.iter().find(|e| !withheld_journey(e)))
        .or_else(|| errors.first())?;
    let code = pick
        .pointer("/extensions/code")
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = pick
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)")
        .trim()
        .to_string();
    let path = pick.get("path").and_then(Value::as_array).map(|p| {
        p.iter()
            .map(|s| match s {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(".")
    });
    Some((code, message, path))
}

/// False when a 2xx body cannot hold a top-level `errors` member because the key's text appears
/// nowhere in it: nearly every page of data. Such a body needs no parse here, so that a page is
/// parsed once (where the connector decodes it) instead of once more here to look for errors it
/// does not have. Shopify writes keys as plain text, never as `\u` escapes; a page
/// that mentions `"errors"` elsewhere (a nested field of that name) is parsed and read as before.
fn may_hold_errors(body: &[u8]) -> bool {
    // `str::contains` searches a short needle with SIMD; a body that is not UTF-8 is no JSON, and
    // the parse below says so as it always did.
    match std::str::from_utf8(body) {
        Ok(text) => text.contains("\"errors\""),
        Err(_) => true,
    }
}

impl ShopifyPolicy {
    /// The policy for source `source` (`[sources.NAME]`).
    pub fn new(source: impl Into<String>) -> Self {
        ShopifyPolicy {
            source: source.into(),
        }
    }

    /// Classify the GraphQL `errors` of a 200 body.
    fn classify_graphql(&self, body: &Value) -> Option<Error> {
        let (code, message, path) = first_error(body)?;
        let source = &self.source;
        // Landing pages and referrers are protected customer data: an app without that approval gets the
        // orders with a null journey summary and a field-level ACCESS_DENIED. Syncing the orders without
        // attribution beats failing the stream; the warning says what is missing.
        if code.as_deref() == Some(ACCESS_DENIED)
            && body.get("data").is_some_and(|d| !d.is_null())
            && path
                .as_deref()
                .is_some_and(|p| p.ends_with("customerJourneySummary"))
        {
            tracing::warn!(
                source = %source,
                "Shopify withheld customerJourneySummary (protected customer data access is needed); \
                 orders sync without attribution"
            );
            return None;
        }
        Some(match code.as_deref() {
            Some(THROTTLED) => Error::Throttled {
                retry_after: QueryCost::from_body(body)
                    .map(|c| c.wait_for_next().unwrap_or(Duration::ZERO)),
                message: format!("Shopify's query cost bucket is empty for source \"{source}\""),
            },
            Some(ACCESS_DENIED) => {
                let about_orders = message.contains("read_all_orders")
                    || path.as_deref().is_some_and(|p| p.starts_with("orders"));
                let advice = if about_orders {
                    "orders older than 60 days need the read_all_orders scope (approved by Shopify for \
                     public apps) in addition to read_orders; check the app's access scopes"
                        .to_string()
                } else {
                    format!("check the app's access scopes: {SCOPES_ADVICE}")
                };
                Error::Auth {
                    message: format!(
                        "Shopify denied access for source \"{source}\" ({message}{}): {advice}",
                        path.map(|p| format!(" at {p}")).unwrap_or_default()
                    ),
                }
            }
            Some("INTERNAL_SERVER_ERROR") => Error::Transient {
                message: format!("Shopify reported an internal error: {message}"),
            },
            Some("SHOP_INACTIVE") => Error::Api {
                platform: "Shopify",
                status: 200,
                code,
                message: format!("{message} (the shop \"{source}\" reads is closed or inactive)"),
            },
            _ => Error::Api {
                platform: "Shopify",
                status: 200,
                code,
                message,
            },
        })
    }
}

impl ApiPolicy for ShopifyPolicy {
    fn platform(&self) -> &'static str {
        "Shopify"
    }

    fn classify(&self, resp: &Response) -> Option<Error> {
        match resp.status.as_u16() {
            200..=299 => {
                if !may_hold_errors(&resp.body) {
                    return None;
                }
                let body: Value = serde_json::from_slice(&resp.body).ok()?;
                self.classify_graphql(&body)
            }
            402 => Some(Error::Api {
                platform: "Shopify",
                status: 402,
                code: Some("PAYMENT_REQUIRED".into()),
                message: format!(
                    "{} — the shop of source \"{}\" is frozen (an unpaid Shopify bill) or its plan lacks \
                     this API; the store owner must settle the bill or change plan",
                    self.error_message(resp).1,
                    self.source
                ),
            }),
            423 => Some(Error::Api {
                platform: "Shopify",
                status: 423,
                code: Some("LOCKED".into()),
                message: format!(
                    "{} — the shop of source \"{}\" is locked by Shopify (fraud review or a terms \
                     violation); contact Shopify support",
                    self.error_message(resp).1,
                    self.source
                ),
            }),
            _ => default_classify(self, resp),
        }
    }

    fn error_message(&self, resp: &Response) -> (Option<String>, String) {
        // REST-style bodies carry a plain string (`{"errors": "[API] Invalid API key…"}`); GraphQL ones
        // an array of objects.
        if let Ok(body) = serde_json::from_slice::<Value>(&resp.body) {
            if let Some(s) = body.get("errors").and_then(Value::as_str) {
                return (None, s.to_string());
            }
            if let Some((code, message, _)) = first_error(&body) {
                return (code, message);
            }
        }
        generic_error_message(resp)
    }

    fn auth_message(&self, resp: &Response) -> String {
        let (_, message) = self.error_message(resp);
        let source = &self.source;
        if resp.status == StatusCode::FORBIDDEN {
            format!(
                "Shopify refused access for source \"{source}\" (403: {message}): {SCOPES_ADVICE}, and \
                 the shop must be active"
            )
        } else {
            format!(
                "Shopify rejected the credentials of source \"{source}\" ({}: {message}): check \
                 access_token (an Admin API token, shpat_…) and that the app is still installed on the shop",
                resp.status.as_u16()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;
    use serde_json::json;

    fn resp(status: u16, body: &Value) -> Response {
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: serde_json::to_vec(body).unwrap(),
        }
    }

    fn cost(requested: f64, available: f64) -> Value {
        json!({"cost": {"requestedQueryCost": requested, "actualQueryCost": null,
            "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": available, "restoreRate": 100.0}}})
    }

    #[test]
    fn throttled_at_200_waits_for_the_missing_points() {
        let p = ShopifyPolicy::new("shop");
        let body = json!({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
            "extensions": cost(612.0, 58.0)});
        let e = p.classify(&resp(200, &body)).unwrap();
        assert!(matches!(e, Error::Throttled { .. }), "{e:?}");
        assert_eq!(e.retry_after(), Some(Duration::from_millis(5540)));
    }

    #[test]
    fn max_cost_and_other_graphql_errors_keep_the_code() {
        let p = ShopifyPolicy::new("shop");
        let body = json!({"errors": [{"message": "Query cost is 1293", "extensions": {"code": "MAX_COST_EXCEEDED", "cost": 1293, "maxCost": 1000}}]});
        match p.classify(&resp(200, &body)) {
            Some(Error::Api { code, status, .. }) => {
                assert_eq!(code.as_deref(), Some(MAX_COST_EXCEEDED));
                assert_eq!(status, 200);
            }
            other => panic!("{other:?}"),
        }
        let body = json!({"errors": [{"message": "Field 'x' doesn't exist on type 'Order'"}]});
        match p.classify(&resp(200, &body)) {
            Some(Error::Api { code, message, .. }) => {
                assert_eq!(code, None);
                assert_eq!(message, "Field 'x' doesn't exist on type 'Order'");
            }
            other => panic!("{other:?}"),
        }
        assert!(p
            .classify(&resp(200, &json!({"data": {"orders": null}})))
            .is_none());
    }

    #[test]
    fn access_denied_on_orders_names_read_all_orders() {
        let p = ShopifyPolicy::new("shop");
        let body = json!({"errors": [{"message": "Access denied for orders field.", "path": ["orders"],
            "extensions": {"code": "ACCESS_DENIED"}}], "data": null});
        match p.classify(&resp(200, &body)) {
            Some(Error::Auth { message }) => {
                assert!(message.contains("read_all_orders"), "{message}");
                assert!(message.contains("source \"shop\""), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_withheld_journey_summary_keeps_the_page() {
        let p = ShopifyPolicy::new("shop");
        let body = json!({"errors": [{"message": "Access denied for customerJourneySummary field.",
            "path": ["orders", "edges", 0, "node", "customerJourneySummary"],
            "extensions": {"code": "ACCESS_DENIED"}}],
            "data": {"orders": {"edges": [{"node": {"id": "gid://shopify/Order/1", "customerJourneySummary": null}}]}}});
        assert!(p.classify(&resp(200, &body)).is_none());

        // Another denied field behind it is not kept quiet: the page fails, naming that field.
        let body = json!({"errors": [
            {"message": "Access denied for customerJourneySummary field.",
             "path": ["orders", "edges", 0, "node", "customerJourneySummary"],
             "extensions": {"code": "ACCESS_DENIED"}},
            {"message": "Access denied for customer field.",
             "path": ["orders", "edges", 0, "node", "customer"],
             "extensions": {"code": "ACCESS_DENIED"}}],
            "data": {"orders": {"edges": [{"node": {"id": "gid://shopify/Order/1",
                "customerJourneySummary": null, "customer": null}}]}}});
        match p.classify(&resp(200, &body)) {
            Some(Error::Auth { message }) => {
                assert!(
                    message.contains("Access denied for customer field"),
                    "{message}"
                );
                assert!(
                    message.contains("orders.edges.0.node.customer"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_errors() {
        let p = ShopifyPolicy::new("shop");
        let body = json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"});
        match p.classify(&resp(401, &body)) {
            Some(Error::Auth { message }) => {
                assert!(message.contains("source \"shop\""), "{message}");
                assert!(message.contains("access_token"), "{message}");
                assert!(message.contains("Invalid API key"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let frozen = json!({"errors": "This shop's plan does not have access to this feature"});
        assert!(
            matches!(p.classify(&resp(402, &frozen)), Some(Error::Api { status: 402, message, .. }) if message.contains("frozen"))
        );
        let locked = json!({"errors": "This shop is unavailable"});
        assert!(
            matches!(p.classify(&resp(423, &locked)), Some(Error::Api { status: 423, message, .. }) if message.contains("locked"))
        );
        assert!(matches!(
            p.classify(&resp(502, &json!({}))),
            Some(Error::Transient { .. })
        ));
    }

    /// A page of data is not parsed to look for errors it cannot hold; a body naming `errors`
    /// anywhere is, and its top-level errors classify as before, pretty-printed or not.
    #[test]
    fn only_a_body_naming_errors_is_parsed_for_them() {
        let p = ShopifyPolicy::new("shop");
        let note = json!({"data": {"orders": {"nodes": [{"id": "gid://shopify/Order/1",
            "note": "customer said \"errors\" twice"}]}}, "extensions": cost(50.0, 1000.0)});
        let text = serde_json::to_vec(&note).unwrap();
        assert!(!may_hold_errors(&text), "an escaped quote is no key");
        assert!(p.classify(&resp(200, &note)).is_none());
        let nested = json!({"data": {"x": {"errors": []}}});
        assert!(may_hold_errors(&serde_json::to_vec(&nested).unwrap()));
        assert!(p.classify(&resp(200, &nested)).is_none());
        let throttled = serde_json::to_vec_pretty(&json!({
            "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
            "extensions": cost(50.0, 10.0)}))
        .unwrap();
        assert!(may_hold_errors(&throttled));
        let answer = Response {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: throttled,
        };
        assert!(matches!(
            p.classify(&answer),
            Some(Error::Throttled { retry_after: Some(d), .. }) if d == Duration::from_millis(400)
        ));
        assert!(may_hold_errors(b"\xff{\"errors\""));
    }
}
