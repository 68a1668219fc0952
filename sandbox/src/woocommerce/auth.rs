//! One-legged OAuth 1.0a, as WooCommerce verifies it on plain-HTTP sites
//! (`WC_REST_Authentication::perform_oauth_authentication`).
//!
//! Rules implemented:
//! * Parameters come from the query string and/or an `Authorization: OAuth k="v", …` header (only its
//!   `oauth_*` entries; a header value overrides a query value with the same name). Required, non-empty:
//!   `oauth_consumer_key`, `oauth_timestamp`, `oauth_nonce`, `oauth_signature`,
//!   `oauth_signature_method`; `oauth_version` is optional. None of them present → the request is
//!   anonymous (not an error here); some missing → `woocommerce_rest_authentication_missing_parameter`.
//! * Checks in WooCommerce's order: consumer key → signature method (`HMAC-SHA1` | `HMAC-SHA256`) →
//!   signature → timestamp (±15 min of now) → nonce (single use per consumer key within 15 min).
//! * Signature: `base64(HMAC(consumer_secret + "&", base_string))` where
//!   `base_string = METHOD & pct(base_url) & pct(normalized_params)`,
//!   `base_url = "http://" + lower(Host header) + path` (the path as requested, no query; `:80` dropped),
//!   `normalized_params` = every parameter except `oauth_signature` (query pairs decoded with
//!   `application/x-www-form-urlencoded` rules, so `+` is a space), each as `pct(key)=pct(value)`, sorted
//!   by encoded key then encoded value, joined with `&`; `pct` is RFC 3986 percent-encoding with only
//!   `A-Z a-z 0-9 - . _ ~` left unescaped and uppercase hex digits.
//! * A space in the received `oauth_signature` is read back as `+` (an unescaped `+` in a query string
//!   decodes to a space), as WooCommerce does.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::rest::WpError;

/// RFC 3986 unreserved characters stay as they are; everything else is `%XX`.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The timestamp window and nonce lifetime, seconds.
const WINDOW_SECS: i64 = 15 * 60;

const REQUIRED: [&str; 5] = [
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
];

/// RFC 3986 percent-encoding.
pub(crate) fn pct(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// The result of authenticating one request.
#[derive(Debug)]
pub(crate) enum AuthOutcome {
    /// No OAuth parameters at all (HTTP Basic and `consumer_key` query params are ignored on http).
    Anonymous,
    /// Valid consumer key and signature.
    Authenticated,
    /// OAuth was attempted and failed.
    Failed(WpError),
}

/// Nonces seen per consumer key, with the time they were first used.
#[derive(Debug, Default)]
pub(crate) struct NonceCache {
    seen: Mutex<HashMap<(String, String), i64>>,
}

impl NonceCache {
    /// Record `nonce`; `false` if it was already used within the window.
    fn use_once(&self, key: &str, nonce: &str, now: i64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() > 100_000 {
            seen.retain(|_, &mut t| now - t < WINDOW_SECS);
        }
        let k = (key.to_owned(), nonce.to_owned());
        match seen.get(&k) {
            Some(&t) if now - t < WINDOW_SECS => false,
            _ => {
                seen.insert(k, now);
                true
            }
        }
    }
}

/// One request as the verifier needs it.
#[derive(Debug)]
pub(crate) struct SignedRequest<'a> {
    /// `GET`, …
    pub(crate) method: &'a str,
    /// `Host` header value (`127.0.0.1:PORT`).
    pub(crate) host: &'a str,
    /// Request path as sent, without the query.
    pub(crate) path: &'a str,
    /// Decoded query pairs in order.
    pub(crate) query: &'a [(String, String)],
    /// `Authorization` header, if any.
    pub(crate) authorization: Option<&'a str>,
}

/// The `oauth_*` entries of an `Authorization: OAuth …` header, decoded.
fn parse_oauth_header(header: &str) -> Vec<(String, String)> {
    let Some(rest) = header.trim().strip_prefix("OAuth ") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        let k = k.trim();
        if !k.starts_with("oauth_") {
            continue; // realm and anything else
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        let decoded: String = url::form_urlencoded::parse(format!("x={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        out.push((k.to_owned(), decoded));
    }
    out
}

/// The base URL part of the signature base string.
fn base_url(host: &str, path: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let host = host.strip_suffix(":80").unwrap_or(&host);
    format!("http://{host}{path}")
}

/// The OAuth signature base string for `params` (which must not contain `oauth_signature`).
pub(crate) fn base_string(method: &str, base_url: &str, params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params.iter().map(|(k, v)| (pct(k), pct(v))).collect();
    encoded.sort();
    let normalized = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        pct(base_url),
        pct(&normalized)
    )
}

/// `base64(HMAC-<alg>(secret + "&", base))`; `None` for an unsupported method.
pub(crate) fn sign(signature_method: &str, consumer_secret: &str, base: &str) -> Option<String> {
    let key = format!("{consumer_secret}&");
    let raw = match signature_method {
        "HMAC-SHA1" => {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).ok()?;
            mac.update(base.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        "HMAC-SHA256" => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).ok()?;
            mac.update(base.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        _ => return None,
    };
    Some(base64::engine::general_purpose::STANDARD.encode(raw))
}

/// PHP's `(int)` cast of a string: leading optional sign and digits, else 0.
fn php_int(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let n: i64 = digits[..end].parse().unwrap_or(0);
    if neg {
        -n
    } else {
        n
    }
}

/// Verify one request against the store's single key pair. `now` is the Unix time.
pub(crate) fn authenticate(
    req: &SignedRequest<'_>,
    consumer_key: &str,
    consumer_secret: &str,
    now: i64,
    nonces: &NonceCache,
) -> AuthOutcome {
    // Merge: header oauth_* params override query params of the same name.
    let header_params = req
        .authorization
        .map(parse_oauth_header)
        .unwrap_or_default();
    let mut params: Vec<(String, String)> = req
        .query
        .iter()
        .filter(|(k, _)| !header_params.iter().any(|(hk, _)| hk == k))
        .cloned()
        .collect();
    params.extend(header_params);

    let get = |name: &str| -> Option<&str> {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|n| get(n).is_none())
        .collect();
    if missing.len() == REQUIRED.len() {
        return AuthOutcome::Anonymous;
    }
    if !missing.is_empty() {
        let noun = if missing.len() == 1 {
            "parameter"
        } else {
            "parameters"
        };
        return AuthOutcome::Failed(WpError::new(
            401,
            "woocommerce_rest_authentication_missing_parameter",
            format!("Missing OAuth {noun} {}", missing.join(", ")),
        ));
    }
    let auth_error = |msg: &str| {
        AuthOutcome::Failed(WpError::new(
            401,
            "woocommerce_rest_authentication_error",
            msg,
        ))
    };

    let key = get("oauth_consumer_key").unwrap_or_default();
    if key != consumer_key {
        return auth_error("Consumer key is invalid.");
    }
    let method = get("oauth_signature_method").unwrap_or_default();
    if method != "HMAC-SHA1" && method != "HMAC-SHA256" {
        return auth_error("Invalid signature - signature method is invalid.");
    }
    let provided = get("oauth_signature").unwrap_or_default().replace(' ', "+");
    let unsigned: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "oauth_signature")
        .cloned()
        .collect();
    let base = base_string(req.method, &base_url(req.host, req.path), &unsigned);
    let expected = sign(method, consumer_secret, &base).unwrap_or_default();
    if !constant_time_eq(expected.as_bytes(), provided.as_bytes()) {
        tracing::debug!(%base, "woocommerce sandbox: OAuth signature mismatch");
        return auth_error("Invalid signature - provided signature does not match.");
    }
    let timestamp = php_int(get("oauth_timestamp").unwrap_or_default());
    if timestamp < now - WINDOW_SECS || timestamp > now + WINDOW_SECS {
        return auth_error("Invalid timestamp.");
    }
    let nonce = get("oauth_nonce").unwrap_or_default();
    if !nonces.use_once(key, nonce, now) {
        return auth_error("Invalid nonce - nonce has already been used.");
    }
    AuthOutcome::Authenticated
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The challenge WooCommerce adds to a response whose Basic credentials failed
/// (`send_unauthorized_headers`).
pub(crate) const BASIC_CHALLENGE: &str =
    "Basic realm=\"WooCommerce API. Use a consumer key in the \
     username field and a consumer secret in the password field.\"";

/// Verify one request as WooCommerce does on an HTTPS site (`perform_basic_authentication`): the
/// `consumer_key` and `consumer_secret` query parameters when both are given, else HTTP Basic with
/// the key as user name and the secret as password. An unknown key does not fail: the request goes
/// on anonymously, and the capability check refuses it. A known key with the wrong secret fails.
/// OAuth parameters are not read on HTTPS.
pub(crate) fn authenticate_basic(
    authorization: Option<&str>,
    query: &[(String, String)],
    consumer_key: &str,
    consumer_secret: &str,
) -> AuthOutcome {
    // Only when both are non-empty, as WooCommerce checks them; else the header is read.
    let from_query = |name: &str| {
        query
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let pair = match (from_query("consumer_key"), from_query("consumer_secret")) {
        (Some(k), Some(s)) => Some((k, s)),
        _ => authorization
            .and_then(|h| h.trim().strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|text| {
                let (k, s) = text.split_once(':')?;
                Some((k.to_owned(), s.to_owned()))
            }),
    };
    let Some((key, secret)) = pair else {
        return AuthOutcome::Anonymous;
    };
    if key != consumer_key {
        return AuthOutcome::Anonymous;
    }
    if !constant_time_eq(secret.as_bytes(), consumer_secret.as_bytes()) {
        return AuthOutcome::Failed(WpError::new(
            401,
            "woocommerce_rest_authentication_error",
            "Consumer secret is invalid.",
        ));
    }
    AuthOutcome::Authenticated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn rfc3986_encoding_leaves_only_unreserved() {
        assert_eq!(pct("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(
            pct(" !*'();:@&=+$,/?#[]%"),
            "%20%21%2A%27%28%29%3B%3A%40%26%3D%2B%24%2C%2F%3F%23%5B%5D%25"
        );
        assert_eq!(pct("é"), "%C3%A9");
    }

    /// The expected values were computed independently (Python `hmac`/`hashlib`/`base64`, by hand
    /// from the rules in the module docs), not with this module.
    #[test]
    fn base_string_and_signature_match_hand_computed_values() {
        let params = pairs(&[
            ("per_page", "100"),
            ("modified_after", "2025-03-01T00:00:00"),
            ("oauth_consumer_key", "ck_test"),
            ("oauth_nonce", "abc123"),
            ("oauth_signature_method", "HMAC-SHA256"),
            ("oauth_timestamp", "1735689600"),
            ("dates_are_gmt", "true"),
            ("search", "a b+c~"),
        ]);
        let base = base_string(
            "GET",
            &base_url("127.0.0.1:8080", "/woocommerce/wp-json/wc/v3/orders"),
            &params,
        );
        assert_eq!(
            base,
            "GET&http%3A%2F%2F127.0.0.1%3A8080%2Fwoocommerce%2Fwp-json%2Fwc%2Fv3%2Forders&\
             dates_are_gmt%3Dtrue%26modified_after%3D2025-03-01T00%253A00%253A00%26\
             oauth_consumer_key%3Dck_test%26oauth_nonce%3Dabc123%26oauth_signature_method%3DHMAC-SHA256%26\
             oauth_timestamp%3D1735689600%26per_page%3D100%26search%3Da%2520b%252Bc~"
        );
        assert_eq!(
            sign("HMAC-SHA256", "cs_secret", &base).unwrap(),
            "OJmFRjz5DHvXB7HN8/gOjUNFhPdflzSrw3+HeMwDhko="
        );
        assert_eq!(
            sign("HMAC-SHA1", "cs_secret", &base).unwrap(),
            "86WfG3kqW5icNDqJNyuzlqUeif8="
        );
    }

    fn request<'a>(query: &'a [(String, String)], auth: Option<&'a str>) -> SignedRequest<'a> {
        SignedRequest {
            method: "GET",
            host: "127.0.0.1:8080",
            path: "/woocommerce/wp-json/wc/v3/orders",
            query,
            authorization: auth,
        }
    }

    fn signed_query(nonce: &str, ts: i64, secret: &str) -> Vec<(String, String)> {
        let mut q = pairs(&[
            ("page", "2"),
            ("oauth_consumer_key", "ck_test"),
            ("oauth_nonce", nonce),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", &ts.to_string()),
        ]);
        let base = base_string(
            "GET",
            "http://127.0.0.1:8080/woocommerce/wp-json/wc/v3/orders",
            &q,
        );
        q.push((
            "oauth_signature".into(),
            sign("HMAC-SHA1", secret, &base).unwrap(),
        ));
        q
    }

    #[test]
    fn verifier_accepts_good_and_rejects_bad_requests() {
        let nonces = NonceCache::default();
        let now = 1_750_000_000;
        let ok = signed_query("n1", now, "cs_secret");
        assert!(matches!(
            authenticate(&request(&ok, None), "ck_test", "cs_secret", now, &nonces),
            AuthOutcome::Authenticated
        ));
        // Replay.
        match authenticate(&request(&ok, None), "ck_test", "cs_secret", now, &nonces) {
            AuthOutcome::Failed(e) => {
                assert_eq!(e.message, "Invalid nonce - nonce has already been used.")
            }
            other => panic!("{other:?}"),
        }
        // Wrong secret.
        let bad = signed_query("n2", now, "cs_wrong");
        match authenticate(&request(&bad, None), "ck_test", "cs_secret", now, &nonces) {
            AuthOutcome::Failed(e) => {
                assert_eq!(
                    e.message,
                    "Invalid signature - provided signature does not match."
                )
            }
            other => panic!("{other:?}"),
        }
        // Old timestamp (signed correctly).
        let old = signed_query("n3", now - 16 * 60, "cs_secret");
        match authenticate(&request(&old, None), "ck_test", "cs_secret", now, &nonces) {
            AuthOutcome::Failed(e) => assert_eq!(e.message, "Invalid timestamp."),
            other => panic!("{other:?}"),
        }
        // Missing parameters.
        let partial = pairs(&[("oauth_consumer_key", "ck_test"), ("oauth_timestamp", "1")]);
        match authenticate(
            &request(&partial, None),
            "ck_test",
            "cs_secret",
            now,
            &nonces,
        ) {
            AuthOutcome::Failed(e) => {
                assert_eq!(e.code, "woocommerce_rest_authentication_missing_parameter");
                assert_eq!(
                    e.message,
                    "Missing OAuth parameters oauth_nonce, oauth_signature, oauth_signature_method"
                );
            }
            other => panic!("{other:?}"),
        }
        // Unknown key.
        match authenticate(&request(&ok, None), "ck_other", "cs_secret", now, &nonces) {
            AuthOutcome::Failed(e) => assert_eq!(e.message, "Consumer key is invalid."),
            other => panic!("{other:?}"),
        }
        // Nothing at all.
        assert!(matches!(
            authenticate(
                &request(&[], Some("Basic Y2s6Y3M=")),
                "ck_test",
                "cs_secret",
                now,
                &nonces
            ),
            AuthOutcome::Anonymous
        ));
    }

    #[test]
    fn header_parameters_are_signed_too() {
        let nonces = NonceCache::default();
        let now = 1_750_000_000;
        let q = pairs(&[("page", "2")]);
        let mut all = q.clone();
        all.extend(pairs(&[
            ("oauth_consumer_key", "ck_test"),
            ("oauth_nonce", "h/1 2"),
            ("oauth_signature_method", "HMAC-SHA256"),
            ("oauth_timestamp", &now.to_string()),
            ("oauth_version", "1.0"),
        ]));
        let base = base_string(
            "GET",
            "http://127.0.0.1:8080/woocommerce/wp-json/wc/v3/orders",
            &all,
        );
        let sig = sign("HMAC-SHA256", "cs_secret", &base).unwrap();
        let header = format!(
            "OAuth realm=\"x\", oauth_consumer_key=\"ck_test\", oauth_nonce=\"{}\", oauth_signature=\"{}\", \
             oauth_signature_method=\"HMAC-SHA256\", oauth_timestamp=\"{now}\", oauth_version=\"1.0\"",
            pct("h/1 2"),
            pct(&sig)
        );
        assert!(matches!(
            authenticate(
                &request(&q, Some(&header)),
                "ck_test",
                "cs_secret",
                now,
                &nonces
            ),
            AuthOutcome::Authenticated
        ));
    }

    #[test]
    fn php_int_cast() {
        assert_eq!(php_int("1735689600"), 1_735_689_600);
        assert_eq!(php_int("12abc"), 12);
        assert_eq!(php_int("abc"), 0);
        assert_eq!(php_int("-5"), -5);
    }
    #[test]
    fn basic_auth_on_https_takes_the_query_pair_first_then_the_header() {
        let basic = |k: &str, s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{k}:{s}"))
            )
        };
        let ok = basic("ck_test", "cs_secret");
        assert!(matches!(
            authenticate_basic(Some(&ok), &[], "ck_test", "cs_secret"),
            AuthOutcome::Authenticated
        ));
        let query = pairs(&[
            ("consumer_key", "ck_test"),
            ("consumer_secret", "cs_secret"),
        ]);
        let wrong = basic("ck_test", "cs_wrong");
        // The query pair is read first: a wrong header beside it does not matter.
        assert!(matches!(
            authenticate_basic(Some(&wrong), &query, "ck_test", "cs_secret"),
            AuthOutcome::Authenticated
        ));
        match authenticate_basic(Some(&wrong), &[], "ck_test", "cs_secret") {
            AuthOutcome::Failed(e) => {
                assert_eq!(e.status, 401);
                assert_eq!(e.message, "Consumer secret is invalid.");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        // An empty query pair is not read: the header beside it is.
        let empty = pairs(&[("consumer_key", "ck_test"), ("consumer_secret", "")]);
        assert!(matches!(
            authenticate_basic(Some(&wrong), &empty, "ck_test", "cs_secret"),
            AuthOutcome::Failed(_)
        ));
        // An unknown key, no credentials, or OAuth parameters: anonymous, refused later.
        let other = basic("ck_other", "cs_secret");
        assert!(matches!(
            authenticate_basic(Some(&other), &[], "ck_test", "cs_secret"),
            AuthOutcome::Anonymous
        ));
        assert!(matches!(
            authenticate_basic(None, &[], "ck_test", "cs_secret"),
            AuthOutcome::Anonymous
        ));
        let oauth = pairs(&[("oauth_consumer_key", "ck_test")]);
        assert!(matches!(
            authenticate_basic(None, &oauth, "ck_test", "cs_secret"),
            AuthOutcome::Anonymous
        ));
    }
}
