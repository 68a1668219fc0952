//! The connector against a mock WooCommerce (wiremock): what it sends and how it reacts.
//!
//! Every test mounts a catch-all mock last, at the lowest priority, answering 500 "unexpected request",
//! and ends with [`Harness::finish`], which fails if any request reached it — so a wrong path or a
//! missing/extra query parameter fails loudly instead of being retried into a pass.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockGuard, MockServer, Request, ResponseTemplate};

use growthflow_core::connector::{Connector, Page, ReadRequest, Window};
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::DatasetWriter;
use growthflow_core::engine::{sync_stream, NoProgress, SyncOptions};
use growthflow_core::http::{ClientOptions, TestClock};
use growthflow_core::Error;
use growthflow_woocommerce::auth::oauth1_url;
use growthflow_woocommerce::{streams, WooAuth, WooCommerce, WooCommerceConfig};

const CK: &str = "ck_0123456789abcdef";
const CS: &str = "cs_fedcba9876543210";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The reference order with another id and modification time.
fn order(id: u64, modified_gmt: &str) -> Value {
    let mut o = fixture("order_48213.json");
    o["id"] = json!(id);
    o["number"] = json!(id.to_string());
    o["date_modified_gmt"] = json!(modified_gmt);
    o
}

fn list(items: Vec<Value>, total_pages: u32) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header(
            "X-WP-Total",
            (items.len() as u32 * total_pages).to_string().as_str(),
        )
        .insert_header("X-WP-TotalPages", total_pages.to_string().as_str())
        .set_body_json(Value::Array(items))
}

struct Harness {
    server: MockServer,
    clock: TestClock,
}

impl Harness {
    async fn start() -> Harness {
        Harness {
            server: MockServer::start().await,
            clock: TestClock::new(),
        }
    }

    fn config(&self) -> WooCommerceConfig {
        WooCommerceConfig::new(self.server.uri(), CK, CS)
    }

    fn connector_with(&self, config: WooCommerceConfig) -> WooCommerce {
        WooCommerce::new(
            "woo",
            config,
            &ClientOptions::with_clock(Arc::new(self.clock.clone())),
        )
        .unwrap()
    }

    fn connector(&self) -> WooCommerce {
        self.connector_with(self.config())
    }

    /// Mount the catch-all; call after the test's own mocks.
    async fn catch_all(&self) -> MockGuard {
        growthflow_core::testing::mount_catch_all(&self.server).await
    }

    /// Fail if any request fell through to the catch-all; return every request received.
    async fn finish(&self, catch_all: MockGuard) -> Vec<Request> {
        growthflow_core::testing::assert_no_unexpected(catch_all).await;
        self.server.received_requests().await.unwrap_or_default()
    }
}

fn read_request(stream: &str, state: Option<Value>, start: DateTime<Utc>) -> ReadRequest {
    ReadRequest {
        stream: stream.into(),
        state,
        start,
        window: None,
    }
}

async fn read_all(c: &WooCommerce, req: ReadRequest) -> Result<Vec<Page>, Error> {
    growthflow_core::testing::read_pages(c, req).await
}

fn query(req: &Request) -> BTreeMap<String, String> {
    growthflow_core::testing::query_map(req)
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap()
}

// ---------------------------------------------------------------------------------------------------
// 1. Basic over https only; OAuth over http.

#[tokio::test]
async fn basic_auth_is_sent_over_https_and_never_over_http() {
    use growthflow_core::auth::Authenticator;
    let auth = WooAuth::new(CK.to_string().into(), CS.to_string().into());

    let mut https = reqwest::Request::new(
        reqwest::Method::GET,
        "https://shop.example.co/wp-json/wc/v3/orders?page=1"
            .parse()
            .unwrap(),
    );
    auth.authorize(&mut https).await.unwrap();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CK}:{CS}"))
    );
    assert_eq!(
        https
            .headers()
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        expected
    );
    assert!(https.headers()["authorization"].is_sensitive());
    assert!(
        !https
            .url()
            .query_pairs()
            .any(|(k, _)| k.starts_with("oauth_")),
        "{}",
        https.url()
    );
    assert_eq!(https.url().query(), Some("page=1"));

    let mut http = reqwest::Request::new(
        reqwest::Method::GET,
        "http://shop.example.co/wp-json/wc/v3/orders?page=1"
            .parse()
            .unwrap(),
    );
    auth.authorize(&mut http).await.unwrap();
    assert!(http.headers().get("authorization").is_none());
    let q: BTreeMap<String, String> = http
        .url()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for k in [
        "oauth_consumer_key",
        "oauth_nonce",
        "oauth_signature_method",
        "oauth_timestamp",
        "oauth_signature",
    ] {
        assert!(q.contains_key(k), "{k} missing from {}", http.url());
    }
    assert_eq!(q["oauth_consumer_key"], CK);
    assert_eq!(q["page"], "1");
    assert!(
        !http.url().as_str().contains(CS),
        "the secret must never be sent over http"
    );
}

// ---------------------------------------------------------------------------------------------------
// 2. OAuth 1.0a signature, checked by an independent implementation.

/// RFC 3986 unreserved-only encoding, written separately from the crate's.
fn rfc3986(s: &str) -> String {
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

/// What WooCommerce computes for a request to `base_url` with `params` (signature excluded).
fn expected_signature(
    method: &str,
    base_url: &str,
    params: &BTreeMap<String, String>,
    secret: &str,
) -> String {
    let mut pairs: Vec<String> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "oauth_signature")
        .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v)))
        .collect();
    pairs.sort();
    let base = format!(
        "{method}&{}&{}",
        rfc3986(base_url),
        rfc3986(&pairs.join("&"))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(format!("{secret}&").as_bytes()).unwrap();
    mac.update(base.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn oauth_signature_over_http_matches_an_independent_computation() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .and(query_param("oauth_signature_method", "HMAC-SHA256"))
        .and(query_param("oauth_consumer_key", CK))
        .respond_with(list(vec![order(1, "2025-03-02T10:00:00")], 1))
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("orders", None, start()))
        .await
        .unwrap();
    assert_eq!(pages.len(), 1);
    let requests = h.finish(guard).await;
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert!(req.headers.get("authorization").is_none());
    let q = query(req);
    // The base URL is the one the client signed (wiremock reports the host as `localhost`).
    let base_url = format!("{}{}", h.server.uri(), req.url.path());
    assert_eq!(
        q["oauth_signature"],
        expected_signature("GET", &base_url, &q, CS)
    );
    assert_eq!(q["modified_after"], "2025-03-01T00:00:00");
    let ts: i64 = q["oauth_timestamp"].parse().unwrap();
    assert!((Utc::now().timestamp() - ts).abs() < 300, "timestamp {ts}");
    assert!(q["oauth_nonce"].len() >= 16);
    assert!(!q.contains_key("oauth_version") && !q.contains_key("oauth_token"));

    // The wrong secret gives a different signature: the comparison above can fail.
    assert_ne!(
        q["oauth_signature"],
        expected_signature("GET", &base_url, &q, "cs_other")
    );
}

#[test]
fn oauth_known_answer_vector() {
    // Computed by hand with Python's hmac/hashlib and cross-checked with `openssl dgst -sha256 -hmac`.
    let url = url::Url::parse(
        "http://shop.example.co/wp-json/wc/v3/orders?per_page=100&page=1&orderby=modified&order=asc\
         &modified_after=2025-03-01T00%3A00%3A00&dates_are_gmt=true",
    )
    .unwrap();
    let signed = oauth1_url("GET", &url, "ck_test", "cs_secret", 1_741_185_751, "abc123");
    let q: BTreeMap<String, String> = signed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    const KNOWN: &str = "7k1MHuE/Zl97EfeAu3rZp/2jDde5Hnd6a/8Er0KpXs0=";
    assert_eq!(q["oauth_signature"], KNOWN);
    assert_eq!(
        expected_signature(
            "GET",
            "http://shop.example.co/wp-json/wc/v3/orders",
            &q,
            "cs_secret"
        ),
        KNOWN,
        "the test's own implementation agrees with the vector"
    );
    assert_eq!(q["oauth_timestamp"], "1741185751");
    assert_eq!(q["oauth_nonce"], "abc123");
}

// ---------------------------------------------------------------------------------------------------
// 3. Paging.

#[tokio::test]
async fn three_pages_yield_every_record_once_in_order() {
    let h = Harness::start().await;
    let pages_data = [
        vec![
            order(1, "2025-03-02T10:00:00"),
            order(2, "2025-03-02T11:00:00"),
        ],
        vec![
            order(3, "2025-03-03T10:00:00"),
            order(4, "2025-03-03T11:00:00"),
        ],
        vec![
            order(5, "2025-03-04T10:00:00"),
            order(6, "2025-03-04T11:00:00"),
        ],
    ];
    // Modification-ordered streams re-anchor each request on the newest time read (minus WooCommerce's
    // exclusive second) instead of asking for page N, so a record modified mid-sync cannot shift
    // another one out of reach; the last full page is followed by one that re-reads the newest second.
    let anchors = [
        "2025-03-01T00:00:00",
        "2025-03-02T10:59:59",
        "2025-03-03T10:59:59",
        "2025-03-04T10:59:59",
    ];
    let mut responses: Vec<Vec<Value>> = pages_data.to_vec();
    responses.push(vec![order(6, "2025-03-04T11:00:00")]);
    for (anchor, items) in anchors.iter().zip(responses) {
        Mock::given(method("GET"))
            .and(path("/wp-json/wc/v3/orders"))
            .and(query_param("page", "1"))
            .and(query_param("per_page", "2"))
            .and(query_param("orderby", "modified"))
            .and(query_param("order", "asc"))
            .and(query_param("modified_after", *anchor))
            .and(query_param("dates_are_gmt", "true"))
            .respond_with(list(items, 3))
            .expect(1)
            .mount(&h.server)
            .await;
    }
    let guard = h.catch_all().await;
    let mut config = h.config();
    config.per_page = 2;
    let pages = read_all(
        &h.connector_with(config),
        read_request("orders", None, start()),
    )
    .await
    .unwrap();
    let ids: Vec<Vec<&str>> = pages
        .iter()
        .map(|p| p.records.iter().map(|r| r.id.as_str()).collect())
        .collect();
    // The re-read of the newest second emits nothing already emitted.
    assert_eq!(
        ids,
        vec![vec!["1", "2"], vec!["3", "4"], vec!["5", "6"], vec![]]
    );
    let cursors: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.records.iter().map(|r| r.cursor.as_deref().unwrap()))
        .collect();
    assert_eq!(cursors[0], "2025-03-02T10:00:00Z");
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    assert!(pages.iter().all(|p| p.checkpoint.is_none()));
    // The payload is the record as received, unknown fields included.
    assert_eq!(pages[0].records[0].payload["currency_symbol"], json!("£"));

    let requests = h.finish(guard).await;
    let asked: Vec<String> = requests
        .iter()
        .map(|r| query(r)["modified_after"].clone())
        .collect();
    assert_eq!(asked, anchors);
}

// ---------------------------------------------------------------------------------------------------
// 4. Saved state drives the next sync.

#[tokio::test]
async fn the_second_sync_sends_modified_after_from_saved_state() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .and(query_param("dates_are_gmt", "true"))
        .respond_with(list(
            vec![
                order(1, "2025-03-02T10:00:00"),
                order(2, "2025-03-07T16:02:48"),
            ],
            1,
        ))
        .expect(3)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let connector = h.connector();
    let writer = DatasetWriter::spawn(Box::new(SqliteDestination::in_memory().unwrap()));
    let options = SyncOptions {
        start: start(),
        streams: Vec::new(),
        full_refresh: false,
        window: None,
        concurrency: 1,
    };
    let def = streams::ORDERS;

    let first = sync_stream(&connector, &def, &writer, &options, &NoProgress).await;
    assert_eq!(
        (first.status, first.records),
        ("ok", 2),
        "{:?}",
        first.error
    );
    assert_eq!(
        writer.load_state("woo", "orders").await.unwrap(),
        Some(json!({ "cursor": "2025-03-07T16:02:48Z" }))
    );
    let second = sync_stream(&connector, &def, &writer, &options, &NoProgress).await;
    assert_eq!(second.status, "ok", "{:?}", second.error);

    // A first sync asks once how many orders the range holds (`per_page=1`, reading `X-WP-Total`):
    // two are not worth reading in windows. The second, incremental sync makes one request.
    let requests = h.finish(guard).await;
    assert_eq!(requests.len(), 3);
    let probe = query(&requests[0]);
    assert_eq!(probe["per_page"], "1");
    assert!(!probe.contains_key("modified_before"), "{probe:?}");
    let (q1, q2) = (query(&requests[1]), query(&requests[2]));
    assert_eq!(q1["modified_after"], "2025-03-01T00:00:00");
    assert_eq!(
        q2["modified_after"], "2025-03-07T16:02:47",
        "saved cursor minus 1 s"
    );
    assert_eq!(q2["dates_are_gmt"], "true");
    assert_eq!(
        (q2["orderby"].as_str(), q2["order"].as_str()),
        ("modified", "asc")
    );
}

#[tokio::test]
async fn lookback_days_reach_further_back_than_the_saved_cursor() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .and(query_param("modified_after", "2025-03-04T16:02:47"))
        .respond_with(list(vec![], 0))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = h.config();
    config.lookback_days = Some(3);
    let state = json!({ "cursor": "2025-03-07T16:02:48Z" });
    let pages = read_all(
        &h.connector_with(config),
        read_request("orders", Some(state), start()),
    )
    .await
    .unwrap();
    assert_eq!(pages.iter().map(|p| p.records.len()).sum::<usize>(), 0);
    h.finish(guard).await;
}

// ---------------------------------------------------------------------------------------------------
// Stream-specific queries: refunds, customers, backfill windows.

#[tokio::test]
async fn refunds_use_the_global_endpoint_by_creation_date() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/refunds"))
        .and(query_param("after", "2025-03-01T00:00:00"))
        .and(query_param("dates_are_gmt", "true"))
        .and(query_param("orderby", "date"))
        .and(query_param("order", "asc"))
        .and(query_param_is_missing("modified_after"))
        .respond_with(list(vec![fixture("refund_48230.json")], 1))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("refunds", None, start()))
        .await
        .unwrap();
    let r = &pages[0].records[0];
    assert_eq!(
        (r.id.as_str(), r.cursor.as_deref()),
        ("48230", Some("2025-03-07T16:02:41Z"))
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn refunds_on_an_old_woocommerce_say_which_version_is_needed() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/refunds"))
        .respond_with(ResponseTemplate::new(404).set_body_json(fixture("error_404_no_route.json")))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("refunds", None, start()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("rest_no_route") && text.contains("WooCommerce 9.0"),
        "{text}"
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn customers_are_scanned_by_id_and_filtered_here() {
    let h = Harness::start().await;
    let mut old = fixture("customer_1187.json");
    old["id"] = json!(1);
    old["date_modified_gmt"] = json!("2025-02-01T00:00:00");
    let mut changed = fixture("customer_1187.json");
    changed["id"] = json!(2);
    changed["date_modified_gmt"] = json!("2025-03-06T09:00:00");
    let mut never_modified = fixture("customer_1187.json");
    never_modified["id"] = json!(3);
    never_modified["date_modified_gmt"] = Value::Null;
    never_modified["date_created_gmt"] = json!("2025-03-05T00:00:00");
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/customers"))
        .and(query_param("role", "all"))
        .and(query_param("orderby", "id"))
        .and(query_param("order", "asc"))
        .and(query_param_is_missing("modified_after"))
        .and(query_param_is_missing("after"))
        .respond_with(list(vec![old, changed, never_modified], 1))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let state = json!({ "cursor": "2025-03-05T00:00:01Z" });
    let pages = read_all(
        &h.connector(),
        read_request("customers", Some(state), start()),
    )
    .await
    .unwrap();
    let kept: Vec<(&str, &str)> = pages
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| (r.id.as_str(), r.cursor.as_deref().unwrap()))
        .collect();
    // Cursor − 1 s = 2025-03-05T00:00:00, inclusive.
    assert_eq!(
        kept,
        [("2", "2025-03-06T09:00:00Z"), ("3", "2025-03-05T00:00:00Z")]
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn a_backfill_reads_by_creation_time_in_the_window() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .and(query_param("after", "2025-01-31T23:59:59"))
        .and(query_param("before", "2025-03-01T00:00:00"))
        .and(query_param("dates_are_gmt", "true"))
        .and(query_param("orderby", "date"))
        .and(query_param("order", "asc"))
        .and(query_param_is_missing("modified_after"))
        .respond_with(list(vec![order(9, "2025-03-09T00:00:00")], 1))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let request = ReadRequest {
        stream: "orders".into(),
        state: Some(json!({ "cursor": "2025-03-07T16:02:48Z" })),
        start: start(),
        window: Some(Window {
            since: Utc.with_ymd_and_hms(2025, 2, 1, 0, 0, 0).unwrap(),
            until: Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap(),
        }),
    };
    let pages = read_all(&h.connector(), request).await.unwrap();
    assert_eq!(pages[0].records[0].id, "9");
    h.finish(guard).await;
}

// ---------------------------------------------------------------------------------------------------
// 5, 6. Throttles and server errors are retried on the injected clock.

#[tokio::test]
async fn a_429_with_retry_after_waits_that_long_then_succeeds() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .set_body_string("Too Many Requests"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(list(vec![order(1, "2025-03-02T10:00:00")], 1))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("orders", None, start()))
        .await
        .unwrap();
    assert_eq!(pages[0].records.len(), 1);
    assert_eq!(h.clock.sleeps(), vec![Duration::from_secs(7)]);
    assert_eq!(h.finish(guard).await.len(), 2);
}

#[tokio::test]
async fn html_503_pages_are_retried_with_backoff_then_succeed() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("content-type", "text/html; charset=UTF-8")
                .set_body_string(
                    "<!DOCTYPE html><html><body><h1>Service Unavailable</h1></body></html>",
                ),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(list(vec![order(1, "2025-03-02T10:00:00")], 1))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("orders", None, start()))
        .await
        .unwrap();
    assert_eq!(pages[0].records[0].id, "1");
    let sleeps = h.clock.sleeps();
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    // Core's exponential backoff with jitter: attempt 0 in [250, 500] ms, attempt 1 in [500, 1000] ms.
    assert!(
        sleeps[0] >= Duration::from_millis(250) && sleeps[0] <= Duration::from_millis(500),
        "{sleeps:?}"
    );
    assert!(
        sleeps[1] >= Duration::from_millis(500) && sleeps[1] <= Duration::from_secs(1),
        "{sleeps:?}"
    );
    let requests = h.finish(guard).await;
    assert_eq!(requests.len(), 3);
    // Each attempt is signed afresh: WooCommerce rejects a replayed nonce.
    let nonces: std::collections::BTreeSet<String> = requests
        .iter()
        .map(|r| query(r)["oauth_nonce"].clone())
        .collect();
    assert_eq!(nonces.len(), 3);
}

// ---------------------------------------------------------------------------------------------------
// 7, 8. Errors that must not be retried.

#[tokio::test]
async fn a_401_is_an_auth_error_naming_the_source_and_woocommerces_message() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header(
                    "WWW-Authenticate",
                    "Basic realm=\"WooCommerce API. Use a consumer key in the username field and a consumer secret in the password field.\"",
                )
                .set_body_json(fixture("error_401.json")),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None, start()))
        .await
        .unwrap_err();
    let Error::Auth { message } = &err else {
        panic!("expected an auth error, got {err:?}");
    };
    assert!(message.contains("source \"woo\""), "{message}");
    assert!(message.contains("Consumer secret is invalid."), "{message}");
    assert!(
        message.contains("woocommerce_rest_authentication_error"),
        "{message}"
    );
    assert!(
        message.contains("consumer_key and consumer_secret"),
        "{message}"
    );
    assert!(!message.contains(CS) && !message.contains(CK), "{message}");
    assert!(h.clock.sleeps().is_empty(), "auth failures are not retried");
    assert_eq!(h.finish(guard).await.len(), 1);
}

#[tokio::test]
async fn a_truncated_200_body_is_asked_for_once_more_then_is_a_decode_error() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-WP-TotalPages", "1")
                .insert_header("content-type", "application/json; charset=UTF-8")
                .set_body_string(
                    r#"[{"id":48213,"status":"processing","date_modified_gmt":"2025-03-07T16:0"#,
                ),
        )
        .expect(2)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None, start()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("orders"), "{err}");
    // Core asks once more for a page that is not valid JSON (a body cut in transit), then gives up.
    assert_eq!(h.clock.sleeps().len(), 1);
    assert_eq!(h.finish(guard).await.len(), 2);
}

#[tokio::test]
async fn an_html_page_with_200_points_at_the_permalink_setting() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html; charset=UTF-8")
                .set_body_string("<!DOCTYPE html><html><head><title>My Shop</title></head></html>"),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None, start()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("permalinks"), "{err}");
    h.finish(guard).await;
}

// ---------------------------------------------------------------------------------------------------
// 10. check().

#[tokio::test]
async fn check_reads_one_order() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .and(query_param("per_page", "1"))
        .and(query_param("page", "1"))
        .respond_with(list(vec![order(1, "2025-03-02T10:00:00")], 1287))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    h.connector().check().await.unwrap();
    assert_eq!(h.finish(guard).await.len(), 1);
}

#[tokio::test]
async fn check_fails_with_the_auth_message_on_401() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .respond_with(ResponseTemplate::new(401).set_body_json(fixture("error_401.json")))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = h.connector().check().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "authentication failed: WooCommerce rejected the credentials of source \"woo\" (401 \
         woocommerce_rest_authentication_error: Consumer secret is invalid.): check consumer_key and \
         consumer_secret (a REST API key with read access from WooCommerce › Settings › Advanced › REST API)"
    );
    assert_eq!(h.finish(guard).await.len(), 1);
}

#[tokio::test]
async fn base_url_replaces_url_and_keeps_its_path_prefix() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/proxy/woo/wp-json/wc/v3/orders"))
        .respond_with(list(vec![], 1))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = WooCommerceConfig::new("https://store.example.invalid", CK, CS);
    config.base_url = Some(format!("{}/proxy/woo", h.server.uri()));
    let c = h.connector_with(config);
    assert_eq!(
        c.api_base().as_str(),
        format!("{}/proxy/woo/wp-json/wc/v3", h.server.uri())
    );
    c.check().await.unwrap();
    h.finish(guard).await;
}

#[tokio::test]
async fn an_unknown_stream_is_an_error_without_a_request() {
    let h = Harness::start().await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("subscriptions", None, start()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("subscriptions"), "{err}");
    assert!(h.finish(guard).await.is_empty());
}

/// A live store: order 1 is modified while the sync reads page 1, jumps to the end of the
/// modification order and every later order shifts one place forward. Asking for "page 2" would now
/// skip order 3; re-anchoring on the newest modification time reads every order.
#[tokio::test]
async fn an_order_modified_mid_sync_does_not_hide_another() {
    let h = Harness::start().await;
    let live = [
        order(2, "2025-03-02T11:00:00"),
        order(3, "2025-03-03T10:00:00"),
        order(4, "2025-03-03T11:00:00"),
        order(1, "2025-03-09T09:00:00"),
    ];
    let answers: [(&str, Vec<Value>); 5] = [
        (
            "2025-03-01T00:00:00",
            vec![
                order(1, "2025-03-02T10:00:00"),
                order(2, "2025-03-02T11:00:00"),
            ],
        ),
        (
            "2025-03-02T10:59:59",
            vec![live[0].clone(), live[1].clone()],
        ),
        (
            "2025-03-03T09:59:59",
            vec![live[1].clone(), live[2].clone()],
        ),
        (
            "2025-03-03T10:59:59",
            vec![live[2].clone(), live[3].clone()],
        ),
        ("2025-03-09T08:59:59", vec![live[3].clone()]),
    ];
    for (anchor, items) in answers {
        Mock::given(method("GET"))
            .and(path("/wp-json/wc/v3/orders"))
            .and(query_param("page", "1"))
            .and(query_param("modified_after", anchor))
            .respond_with(list(items, 2))
            .expect(1)
            .mount(&h.server)
            .await;
    }
    let guard = h.catch_all().await;
    let mut config = h.config();
    config.per_page = 2;
    let pages = read_all(
        &h.connector_with(config),
        read_request("orders", None, start()),
    )
    .await
    .unwrap();
    let read: Vec<(String, String)> = pages
        .iter()
        .flat_map(|p| p.records.iter())
        .map(|r| (r.id.clone(), r.cursor.clone().unwrap()))
        .collect();
    assert_eq!(
        read,
        [
            ("1".into(), "2025-03-02T10:00:00Z".into()),
            ("2".into(), "2025-03-02T11:00:00Z".into()),
            ("3".into(), "2025-03-03T10:00:00Z".into()),
            ("4".into(), "2025-03-03T11:00:00Z".into()),
            ("1".into(), "2025-03-09T09:00:00Z".into()),
        ]
    );
    h.finish(guard).await;
}

/// A WooCommerce orders listing that filters by `modified_after` (exclusive, whole seconds), sorts by
/// modification time then id, and pages with `page`/`per_page` — the real server's behaviour, so a test
/// does not depend on the exact request sequence the connector chooses.
struct OrdersListing {
    orders: Vec<(u64, &'static str)>,
}

impl wiremock::Respond for OrdersListing {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let q = query(req);
        let after = q
            .get("modified_after")
            .map(|s| s.as_str())
            .unwrap_or("0000");
        let page: usize = q["page"].parse().unwrap();
        let per_page: usize = q["per_page"].parse().unwrap();
        let mut matching: Vec<&(u64, &str)> = self
            .orders
            .iter()
            .filter(|(_, modified)| *modified > after)
            .collect();
        matching.sort_by_key(|(id, modified)| (*modified, *id));
        let total_pages = matching.len().div_ceil(per_page).max(1);
        let items: Vec<Value> = matching
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|(id, modified)| order(*id, modified))
            .collect();
        ResponseTemplate::new(200)
            .insert_header("X-WP-Total", matching.len().to_string().as_str())
            .insert_header("X-WP-TotalPages", total_pages.to_string().as_str())
            .set_body_json(Value::Array(items))
    }
}

/// Three orders modified in one second with `per_page = 2` make the read page on within that second;
/// the newer orders after them must then be read from page 1 of the re-anchored listing, not from the
/// page number reached inside the second (which skipped `per_page` newer orders and saved a cursor past
/// them).
#[tokio::test]
async fn a_full_page_within_one_second_followed_by_newer_orders_loses_none() {
    let h = Harness::start().await;
    let orders = vec![
        (1, "2025-03-02T10:00:00"),
        (2, "2025-03-02T10:00:00"),
        (3, "2025-03-02T10:00:00"),
        (4, "2025-03-02T10:00:05"),
        (5, "2025-03-02T10:00:06"),
        (6, "2025-03-02T10:00:07"),
        (7, "2025-03-02T10:00:08"),
    ];
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/orders"))
        .and(query_param("orderby", "modified"))
        .and(query_param("order", "asc"))
        .and(query_param("dates_are_gmt", "true"))
        .respond_with(OrdersListing { orders })
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = h.config();
    config.per_page = 2;
    let connector = h.connector_with(config);
    let writer = DatasetWriter::spawn(Box::new(SqliteDestination::in_memory().unwrap()));
    let options = SyncOptions {
        start: start(),
        streams: Vec::new(),
        full_refresh: false,
        window: None,
        concurrency: 1,
    };
    let pages = read_all(&connector, read_request("orders", None, start()))
        .await
        .unwrap();
    let mut ids: Vec<u64> = pages
        .iter()
        .flat_map(|p| p.records.iter().map(|r| r.id.parse::<u64>().unwrap()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7], "every order is read");

    let outcome = sync_stream(&connector, &streams::ORDERS, &writer, &options, &NoProgress).await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    assert_eq!(outcome.records, 7);
    assert_eq!(
        writer.load_state("woo", "orders").await.unwrap(),
        Some(json!({ "cursor": "2025-03-02T10:00:08Z" }))
    );
    h.finish(guard).await;
}

// ---------------------------------------------------------------------------------------------------
// Long first syncs and backfills read in date windows side by side.

/// A store's orders as WooCommerce lists them: `after`/`before` on creation and
/// `modified_after`/`modified_before` on modification (all exclusive, whole seconds, `dates_are_gmt`),
/// ordered by `orderby` then id, paged with `page`/`per_page`, counted in `X-WP-Total`. Counts its
/// requests and says when the `kill_after`-th arrived.
struct Store {
    /// `(id, created, modified)`, naive GMT times as WooCommerce writes them.
    orders: Vec<(u64, String, String)>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    kill_after: usize,
    killed: Arc<tokio::sync::Notify>,
}

impl wiremock::Respond for Store {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if n == self.kill_after {
            self.killed.notify_one();
        }
        let q = query(req);
        if q.get("dates_are_gmt").map(String::as_str) != Some("true") {
            return ResponseTemplate::new(400).set_body_string("dates_are_gmt missing");
        }
        let bound = |k: &str| q.get(k).cloned();
        let (after, before) = (bound("after"), bound("before"));
        let (m_after, m_before) = (bound("modified_after"), bound("modified_before"));
        let mut matching: Vec<&(u64, String, String)> = self
            .orders
            .iter()
            .filter(|(_, c, m)| {
                after.as_ref().is_none_or(|a| c > a)
                    && before.as_ref().is_none_or(|b| c < b)
                    && m_after.as_ref().is_none_or(|a| m > a)
                    && m_before.as_ref().is_none_or(|b| m < b)
            })
            .collect();
        match q.get("orderby").map(String::as_str) {
            Some("modified") => matching.sort_by(|x, y| (&x.2, x.0).cmp(&(&y.2, y.0))),
            Some("date") => matching.sort_by(|x, y| (&x.1, x.0).cmp(&(&y.1, y.0))),
            _ => matching.sort_by_key(|x| x.0),
        }
        let page: usize = q["page"].parse().unwrap();
        let per_page: usize = q["per_page"].parse().unwrap();
        let items: Vec<Value> = matching
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|(id, created, modified)| {
                let mut o = order(*id, modified);
                o["date_created_gmt"] = json!(created);
                o
            })
            .collect();
        ResponseTemplate::new(200)
            .insert_header("X-WP-Total", matching.len().to_string().as_str())
            .insert_header(
                "X-WP-TotalPages",
                matching
                    .len()
                    .div_ceil(per_page)
                    .max(1)
                    .to_string()
                    .as_str(),
            )
            .set_body_json(Value::Array(items))
    }
}

/// 240 orders over 2025, one every 36 hours, each modified a few hours after its creation; every
/// twentieth shares its modification second with the one before (a keyset tie).
fn year_of_orders() -> Vec<(u64, String, String)> {
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let base = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let mut out: Vec<(u64, String, String)> = Vec::new();
    for id in 1..=240u64 {
        let created = base + chrono::Duration::hours(36 * id as i64);
        let modified = if id % 20 == 0 {
            out.last().unwrap().2.clone()
        } else {
            fmt(created + chrono::Duration::hours((id % 5) as i64))
        };
        out.push((id, fmt(created), modified));
    }
    out
}

/// Every batch committed — its record ids and the state saved with them — in commit order.
type Commit = (Vec<String>, Option<Value>);

#[derive(Clone, Default)]
struct CommitLog(Arc<std::sync::Mutex<Vec<Commit>>>);

struct Recording {
    inner: SqliteDestination,
    log: CommitLog,
}

impl growthflow_core::destination::Destination for Recording {
    fn register_source(&mut self, source: &str, source_type: &str) -> growthflow_core::Result<()> {
        self.inner.register_source(source, source_type)
    }
    fn load_state(&mut self, source: &str, stream: &str) -> growthflow_core::Result<Option<Value>> {
        self.inner.load_state(source, stream)
    }
    fn commit(
        &mut self,
        batches: &[growthflow_core::destination::WriteBatch],
    ) -> growthflow_core::Result<()> {
        self.inner.commit(batches)?;
        let mut log = self.log.0.lock().unwrap();
        for b in batches {
            log.push((
                b.records.iter().map(|r| r.id.clone()).collect(),
                b.state.clone(),
            ));
        }
        Ok(())
    }
    fn rebuild_journey(
        &mut self,
        mappers: &[Arc<dyn growthflow_core::model::JourneyMapper>],
    ) -> growthflow_core::Result<growthflow_core::destination::RebuildStats> {
        self.inner.rebuild_journey(mappers)
    }
    fn saved_states(
        &mut self,
        source: Option<&str>,
    ) -> growthflow_core::Result<Vec<growthflow_core::destination::SavedState>> {
        self.inner.saved_states(source)
    }
    fn reset_state(&mut self, source: &str, stream: Option<&str>) -> growthflow_core::Result<u64> {
        self.inner.reset_state(source, stream)
    }
}

fn recording_writer() -> (DatasetWriter, CommitLog) {
    let log = CommitLog::default();
    let dest = Recording {
        inner: SqliteDestination::in_memory().unwrap(),
        log: log.clone(),
    };
    (DatasetWriter::spawn(Box::new(dest)), log)
}

/// At every commit that saved a cursor, every order modified before it was already committed: a run
/// killed right after any commit resumes (from that cursor less a second) without losing an order.
fn assert_state_never_passes_an_uncommitted_order(
    log: &CommitLog,
    orders: &[(u64, String, String)],
) -> Option<String> {
    let mut committed = std::collections::HashSet::new();
    let mut last = None;
    for (ids, state) in log.0.lock().unwrap().iter() {
        committed.extend(ids.iter().cloned());
        let Some(cursor) = state.as_ref().and_then(|s| s["cursor"].as_str()) else {
            continue;
        };
        let saved = growthflow_core::time::parse_utc(cursor).unwrap();
        for (id, _, modified) in orders {
            if growthflow_core::time::parse_utc(modified).unwrap() < saved {
                assert!(
                    committed.contains(&id.to_string()),
                    "cursor {cursor} saved before order {id} (modified {modified}) was committed"
                );
            }
        }
        last = Some(cursor.to_string());
    }
    last
}

struct WindowedHarness {
    h: Harness,
    orders: Vec<(u64, String, String)>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    killed: Arc<tokio::sync::Notify>,
}

impl WindowedHarness {
    async fn start(kill_after: usize) -> WindowedHarness {
        let h = Harness {
            server: MockServer::start().await,
            // "Now" is pinned: the last window of an incremental read starts before it.
            clock: TestClock::at(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        };
        let orders = year_of_orders();
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let killed = Arc::new(tokio::sync::Notify::new());
        Mock::given(method("GET"))
            .and(path("/wp-json/wc/v3/orders"))
            .respond_with(Store {
                orders: orders.clone(),
                requests: requests.clone(),
                kill_after,
                killed: killed.clone(),
            })
            .mount(&h.server)
            .await;
        WindowedHarness {
            h,
            orders,
            requests,
            killed,
        }
    }

    fn connector(&self) -> WooCommerce {
        let mut config = self.h.config();
        config.per_page = 10;
        self.h.connector_with(config)
    }

    fn newest(&self) -> String {
        let newest = self.orders.iter().map(|o| o.2.clone()).max().unwrap();
        format!("{newest}Z")
    }
}

fn sync_options(window: Option<Window>) -> SyncOptions {
    SyncOptions {
        start: Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 0).unwrap(),
        streams: Vec::new(),
        full_refresh: false,
        window,
        concurrency: 1,
    }
}

#[tokio::test]
async fn a_long_first_sync_reads_windows_side_by_side_and_gets_every_order_once() {
    let w = WindowedHarness::start(0).await;
    let guard = w.h.catch_all().await;
    let connector = w.connector();
    let (writer, log) = recording_writer();
    let outcome = sync_stream(
        &connector,
        &streams::ORDERS,
        &writer,
        &sync_options(None),
        &NoProgress,
    )
    .await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    assert_eq!(outcome.records, 240, "every order exactly once");
    let mut ids: Vec<String> = log
        .0
        .lock()
        .unwrap()
        .iter()
        .flat_map(|c| c.0.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 240);
    assert_eq!(
        writer.load_state("woo", "orders").await.unwrap(),
        Some(json!({ "cursor": w.newest() })),
        "the newest modification time, as a sequential read saves"
    );
    assert_eq!(
        assert_state_never_passes_an_uncommitted_order(&log, &w.orders),
        Some(w.newest())
    );

    let requests = w.h.finish(guard).await;
    // One count (24 pages of 10 → 6 windows), then the windows: bounded on both sides but the last,
    // which reads on past "now".
    assert_eq!(query(&requests[0])["per_page"], "1");
    let mut windows: Vec<(String, Option<String>)> = requests[1..]
        .iter()
        .map(|r| {
            let q = query(r);
            (
                q["modified_after"].clone(),
                q.get("modified_before").cloned(),
            )
        })
        .collect();
    let mut ends: Vec<Option<String>> = windows.iter().map(|w| w.1.clone()).collect();
    ends.sort();
    ends.dedup();
    assert_eq!(ends.len(), 6, "{ends:?}");
    assert_eq!(ends[0], None, "the last window is open");
    windows.sort();
    assert_eq!(windows[0].0, "2024-11-30T23:59:59", "from start_date");
    assert!(
        connector.limiter().peak_in_flight() >= 2,
        "windows were read side by side"
    );

    // Nothing changed since: the next sync makes one request (no count, no windows) and keeps the
    // cursor.
    let before = requests.len();
    let again = sync_stream(
        &connector,
        &streams::ORDERS,
        &writer,
        &sync_options(None),
        &NoProgress,
    )
    .await;
    assert_eq!(again.status, "ok", "{:?}", again.error);
    let all = w.h.server.received_requests().await.unwrap();
    assert_eq!(
        all.len() - before,
        1,
        "one request for a sync with nothing new"
    );
    assert_eq!(
        writer.load_state("woo", "orders").await.unwrap(),
        Some(json!({ "cursor": w.newest() }))
    );
}

#[tokio::test]
async fn a_windowed_sync_killed_midway_resumes_without_losing_an_order() {
    let w = WindowedHarness::start(12).await;
    let connector = w.connector();
    let (writer, log) = recording_writer();
    let options = sync_options(None);
    tokio::select! {
        o = sync_stream(&connector, &streams::ORDERS, &writer, &options, &NoProgress) => {
            panic!("the sync finished before the kill: {o:?}")
        }
        () = w.killed.notified() => {}
    }
    // Whatever the writer had been handed is committed before it answers this.
    let saved = writer.load_state("woo", "orders").await.unwrap();
    let killed_at = log.0.lock().unwrap().len();
    let partial: usize = log.0.lock().unwrap().iter().map(|c| c.0.len()).sum();
    assert!(partial > 0 && partial < 240, "killed midway ({partial})");
    let cursor = assert_state_never_passes_an_uncommitted_order(&log, &w.orders);
    assert_eq!(
        saved
            .as_ref()
            .map(|s| s["cursor"].as_str().unwrap().to_string()),
        cursor
    );

    // The next run resumes from the saved cursor (in sequence: it has state now) and the dataset ends
    // with every order and the newest cursor.
    let before = w.requests.load(std::sync::atomic::Ordering::SeqCst);
    let outcome = sync_stream(&connector, &streams::ORDERS, &writer, &options, &NoProgress).await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    let mut ids: Vec<String> = log
        .0
        .lock()
        .unwrap()
        .iter()
        .flat_map(|c| c.0.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 240, "no order lost");
    assert_eq!(
        writer.load_state("woo", "orders").await.unwrap(),
        Some(json!({ "cursor": w.newest() }))
    );
    assert_eq!(
        assert_state_never_passes_an_uncommitted_order(&log, &w.orders),
        Some(w.newest())
    );
    assert!(log.0.lock().unwrap().len() > killed_at);
    // Resuming re-reads from the saved cursor, not from start_date, in sequence (no count, no
    // windows). A request of the killed run may still reach the server after the kill, so the
    // resumed run's requests are told apart by their bounds rather than their position.
    let resumed = w.h.server.received_requests().await.unwrap();
    if let Some(cursor) = cursor {
        let expected =
            growthflow_core::time::parse_utc(&cursor).unwrap() - chrono::Duration::seconds(1);
        let expected = streams::wc_date(expected);
        assert!(
            resumed[before..].iter().any(|r| {
                let q = query(r);
                q["modified_after"] == expected && !q.contains_key("modified_before")
            }),
            "no request resumed from {expected}"
        );
    }
}

#[tokio::test]
async fn a_long_backfill_reads_creation_windows_and_saves_no_state() {
    let w = WindowedHarness::start(0).await;
    let guard = w.h.catch_all().await;
    let connector = w.connector();
    let (writer, log) = recording_writer();
    let window = Window {
        since: Utc.with_ymd_and_hms(2025, 2, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).unwrap(),
    };
    let outcome = sync_stream(
        &connector,
        &streams::ORDERS,
        &writer,
        &sync_options(Some(window)),
        &NoProgress,
    )
    .await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    let inside: Vec<String> = w
        .orders
        .iter()
        .filter(|(_, created, _)| {
            let c = growthflow_core::time::parse_utc(created).unwrap();
            c >= window.since && c < window.until
        })
        .map(|o| o.0.to_string())
        .collect();
    assert_eq!(
        outcome.records,
        inside.len() as u64,
        "each order of the window once"
    );
    let mut ids: Vec<String> = log
        .0
        .lock()
        .unwrap()
        .iter()
        .flat_map(|c| c.0.clone())
        .collect();
    ids.sort();
    let mut expected = inside.clone();
    expected.sort();
    assert_eq!(ids, expected);
    assert!(
        log.0.lock().unwrap().iter().all(|c| c.1.is_none()),
        "no state"
    );
    assert_eq!(writer.load_state("woo", "orders").await.unwrap(), None);
    let requests = w.h.finish(guard).await;
    assert!(requests.len() > 8, "read in windows");
    assert!(requests[1..].iter().all(|r| {
        let q = query(r);
        q["orderby"] == "date" && q.contains_key("before") && !q.contains_key("modified_after")
    }));
}

#[tokio::test]
async fn one_request_at_a_time_reads_in_sequence_without_a_count() {
    let w = WindowedHarness::start(0).await;
    let guard = w.h.catch_all().await;
    let mut config = w.h.config();
    config.per_page = 10;
    config.max_concurrent_requests = Some(1);
    let connector = w.h.connector_with(config);
    let (writer, _log) = recording_writer();
    let outcome = sync_stream(
        &connector,
        &streams::ORDERS,
        &writer,
        &sync_options(None),
        &NoProgress,
    )
    .await;
    assert_eq!((outcome.status, outcome.records), ("ok", 240));
    let requests = w.h.finish(guard).await;
    assert!(requests.iter().all(|r| {
        let q = query(r);
        q["per_page"] == "10" && !q.contains_key("modified_before")
    }));
    assert_eq!(connector.limiter().peak_in_flight(), 1);
}
