//! Test helpers: a tiny OAuth 1.0a signer written independently of the sandbox's verifier.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use growthflow_sandbox::{Sandbox, SandboxConfig};

/// RFC 3986 percent-encoding, by hand: only `A-Z a-z 0-9 - . _ ~` stay as they are.
pub fn rfc3986(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

static NONCE: AtomicU64 = AtomicU64::new(0);

/// A fresh nonce for this process.
pub fn nonce() -> String {
    format!(
        "t{}n{}",
        std::process::id(),
        NONCE.fetch_add(1, Ordering::SeqCst)
    )
}

/// The `oauth_*` parameters plus a HMAC-SHA256 signature for `GET url?params`.
pub fn oauth_params(
    url: &str,
    params: &[(String, String)],
    key: &str,
    secret: &str,
    nonce: &str,
    timestamp: i64,
) -> Vec<(String, String)> {
    let mut oauth = vec![
        ("oauth_consumer_key".to_owned(), key.to_owned()),
        ("oauth_nonce".to_owned(), nonce.to_owned()),
        (
            "oauth_signature_method".to_owned(),
            "HMAC-SHA256".to_owned(),
        ),
        ("oauth_timestamp".to_owned(), timestamp.to_string()),
    ];
    let mut all: Vec<(String, String)> = params
        .iter()
        .chain(oauth.iter())
        .map(|(k, v)| (rfc3986(k), rfc3986(v)))
        .collect();
    all.sort();
    let joined = all
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!("GET&{}&{}", rfc3986(url), rfc3986(&joined));
    let mut mac = Hmac::<Sha256>::new_from_slice(format!("{secret}&").as_bytes()).unwrap();
    mac.update(base.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    oauth.push(("oauth_signature".to_owned(), sig));
    oauth
}

/// `url?k=v&…` with every pair RFC 3986-encoded.
pub fn with_query(url: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return url.to_owned();
    }
    let q = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v)))
        .collect::<Vec<_>>()
        .join("&");
    format!("{url}?{q}")
}

pub fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A started sandbox and a client for its WooCommerce store.
pub struct Woo {
    pub sandbox: Sandbox,
    pub http: reqwest::Client,
}

impl Woo {
    pub async fn start() -> Self {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
        let http = reqwest::Client::builder().build().unwrap();
        Self { sandbox, http }
    }

    /// `http://127.0.0.1:PORT/woocommerce/wp-json/wc/v3/{route}`.
    pub fn endpoint(&self, route: &str) -> String {
        format!("{}/wp-json/wc/v3/{route}", self.sandbox.woocommerce_url())
    }

    /// A signed URL for `GET endpoint?params`.
    pub fn signed_url(&self, route: &str, params: &[(&str, &str)]) -> String {
        let url = self.endpoint(route);
        self.sign_full(&url, &pairs(params))
    }

    /// Sign an absolute endpoint URL (without query) with the given params.
    pub fn sign_full(&self, url: &str, params: &[(String, String)]) -> String {
        let store = self.sandbox.woocommerce();
        let oauth = oauth_params(
            url,
            params,
            &store.consumer_key,
            &store.consumer_secret,
            &nonce(),
            chrono::Utc::now().timestamp(),
        );
        let mut all = params.to_vec();
        all.extend(oauth);
        with_query(url, &all)
    }

    /// Re-sign a `Link` URL: drop the `oauth_*` parameters it repeats, keep the rest.
    pub fn resign_link(&self, link: &str) -> String {
        let parsed = url::Url::parse(link).unwrap();
        let params: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, _)| !k.starts_with("oauth_"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut base = parsed.clone();
        base.set_query(None);
        self.sign_full(base.as_str(), &params)
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    pub async fn get_json(&self, route: &str, params: &[(&str, &str)]) -> serde_json::Value {
        let resp = self.get(&self.signed_url(route, params)).await;
        assert_eq!(resp.status(), 200, "GET {route} {params:?}");
        resp.json().await.unwrap()
    }
}

/// The `rel` → URL map of a response's `Link` headers (one header per rel, or comma-joined).
pub fn links(resp: &reqwest::Response) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for h in resp.headers().get_all("link") {
        for part in h.to_str().unwrap().split(", <") {
            let part = part.trim_start_matches('<');
            let (url, rest) = part.split_once('>').unwrap();
            let rel = rest
                .split("rel=\"")
                .nth(1)
                .unwrap()
                .trim_end_matches('"')
                .to_owned();
            out.push((rel, url.to_owned()));
        }
    }
    out
}

pub fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}
