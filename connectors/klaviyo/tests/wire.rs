//! The connector against a mock Klaviyo (wiremock): what it sends and how it reacts.
//!
//! Every test mounts a catch-all mock last, at the lowest priority, answering 500 "unexpected request",
//! and ends with [`Harness::finish`], which fails if any request reached it — so a wrong path or a
//! missing/extra query parameter fails loudly instead of being retried into a pass.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use futures::FutureExt;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockGuard, MockServer, Request, ResponseTemplate};

use growthflow_core::connector::{Connector, Page, ReadRequest, Window};
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::DatasetWriter;
use growthflow_core::engine::{sync_stream, NoProgress, SyncOptions};
use growthflow_core::http::{ClientOptions, Quota, TestClock};
use growthflow_core::Error;
use growthflow_klaviyo::{limits, streams, Klaviyo, KlaviyoConfig};

const KEY: &str = "pk_3f0c5b3a9d6e4d2b8c1a7e9f0b2d4c6e8a";
const CURSOR: &str = "bmV4dDo6ZGF0ZXRpbWU6OjE3MTcyNTk0MDA6OjVRYlcya0xtTjdz";

/// A fixture, with `{{BASE}}` in its links replaced by the mock server's address.
fn fixture(name: &str, base: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text.replace("{{BASE}}", base)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn doc(items: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/vnd.api+json")
        .set_body_json(
            json!({ "data": items, "links": { "self": "x", "next": null, "prev": null } }),
        )
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

    fn uri(&self) -> String {
        self.server.uri()
    }

    fn config(&self) -> KlaviyoConfig {
        let mut c = KlaviyoConfig::with_api_key(KEY);
        c.base_url = Some(self.server.uri());
        c
    }

    fn options(&self) -> ClientOptions {
        ClientOptions::with_clock(Arc::new(self.clock.clone()))
    }

    fn connector_with(&self, config: KlaviyoConfig) -> Klaviyo {
        Klaviyo::new("email", config, &self.options()).unwrap()
    }

    fn connector(&self) -> Klaviyo {
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

fn read_request(stream: &str, state: Option<Value>) -> ReadRequest {
    ReadRequest {
        stream: stream.into(),
        state,
        start: start(),
        window: None,
    }
}

async fn read_all(c: &Klaviyo, req: ReadRequest) -> Result<Vec<Page>, Error> {
    growthflow_core::testing::read_pages(c, req).await
}

fn query(req: &Request) -> BTreeMap<String, String> {
    growthflow_core::testing::query_map(req)
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap()
}

// ---------------------------------------------------------------------------------------------------
// Headers, includes, cursor pages.

#[tokio::test]
async fn events_send_key_revision_accept_and_follow_links_next_verbatim() {
    let h = Harness::start().await;
    let base = h.uri();
    Mock::given(method("GET"))
        .and(path("/api/events"))
        .and(header(
            "authorization",
            format!("Klaviyo-API-Key {KEY}").as_str(),
        ))
        .and(header("revision", "2026-07-15"))
        .and(header("accept", "application/vnd.api+json"))
        .and(query_param(
            "filter",
            "greater-or-equal(datetime,2024-06-01T00:00:00Z)",
        ))
        .and(query_param("sort", "datetime"))
        .and(query_param("include", "metric,profile,attributions"))
        .and(query_param("fields[metric]", "name,integration"))
        .and(query_param("fields[profile]", "email"))
        .and(query_param("page[size]", "1000"))
        .and(query_param_is_missing("page[cursor]"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/vnd.api+json")
                .insert_header("RateLimit-Limit", "3500")
                .insert_header("RateLimit-Remaining", "3497")
                .insert_header("RateLimit-Reset", "41")
                .set_body_json(fixture("events_page1.json", &base)),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    // Page 2 is exactly `links.next`: Klaviyo's trailing-slash path and every parameter it carries.
    Mock::given(method("GET"))
        .and(path("/api/events/"))
        .and(header(
            "authorization",
            format!("Klaviyo-API-Key {KEY}").as_str(),
        ))
        .and(header("revision", "2026-07-15"))
        .and(header("accept", "application/vnd.api+json"))
        .and(query_param("page[cursor]", CURSOR))
        .and(query_param(
            "filter",
            "greater-or-equal(datetime,2024-06-01T00:00:00Z)",
        ))
        .and(query_param("page[size]", "1000"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/vnd.api+json")
                .set_body_json(fixture("events_page2.json", &base)),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("events", None))
        .await
        .unwrap();

    let ids: Vec<Vec<(&str, &str)>> = pages
        .iter()
        .map(|p| {
            p.records
                .iter()
                .map(|r| (r.id.as_str(), r.cursor.as_deref().unwrap()))
                .collect()
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            vec![
                ("5Q8rVYhTZpE", "2024-06-01T08:00:00Z"),
                ("5QbW2kLmN7s", "2024-06-01T16:30:00Z")
            ],
            vec![("5RcX3mNpQ8t", "2024-06-01T18:00:00Z")]
        ]
    );
    // The payload is the data item as sent, plus the resources its relationships point at.
    let order = &pages[0].records[1].payload;
    assert_eq!(
        order["attributes"]["event_properties"]["$value"],
        json!(129.9)
    );
    assert_eq!(
        order["included"]["metric"]["attributes"]["name"],
        "Placed Order"
    );
    assert_eq!(
        order["included"]["profile"]["attributes"]["email"],
        "sarah.mason@example.com"
    );
    assert_eq!(
        order["included"]["attributions"][0]["relationships"]["campaign"]["data"]["id"],
        "01HZ4K7Q3M2V8N5R6T9W0XYZAA"
    );
    let opened = &pages[0].records[0].payload;
    assert_eq!(
        opened["included"]["metric"]["attributes"]["name"],
        "Opened Email"
    );
    assert_eq!(opened["included"]["attributions"], json!([]));
    assert!(pages.iter().all(|p| p.checkpoint.is_none()));

    let requests = h.finish(guard).await;
    assert_eq!(requests.len(), 2);
    // wiremock reports the host as `localhost`; path and query are compared byte for byte.
    let next = url::Url::parse(
        fixture("events_page1.json", &base)["links"]["next"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (requests[1].url.path(), requests[1].url.query()),
        (next.path(), next.query()),
        "links.next is followed verbatim"
    );
    // Headers only on these two; the key never travels in the URL.
    assert!(requests.iter().all(|r| !r.url.as_str().contains(KEY)));
}

#[tokio::test]
async fn an_older_revision_sends_no_page_size_on_events() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/api/events"))
        .and(header("revision", "2025-10-15"))
        .and(query_param_is_missing("page[size]"))
        .respond_with(doc(vec![]))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = h.config();
    config.revision = "2025-10-15".into();
    let pages = read_all(&h.connector_with(config), read_request("events", None))
        .await
        .unwrap();
    assert_eq!(pages.len(), 1);
    assert!(pages[0].records.is_empty());
    h.finish(guard).await;
}

// ---------------------------------------------------------------------------------------------------
// Saved state drives the filters.

#[tokio::test]
async fn the_second_sync_filters_from_saved_state_minus_the_lookback() {
    let h = Harness::start().await;
    let base = h.uri();
    let mut page = fixture("events_page2.json", &base);
    page["data"][0]["attributes"]["datetime"] = json!("2024-06-10T12:00:00+00:00");
    Mock::given(method("GET"))
        .and(path("/api/events"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/vnd.api+json")
                .set_body_json(page),
        )
        .expect(2)
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
    let first = sync_stream(&connector, &streams::EVENTS, &writer, &options, &NoProgress).await;
    assert_eq!(
        (first.status, first.records),
        ("ok", 1),
        "{:?}",
        first.error
    );
    assert_eq!(
        writer.load_state("email", "events").await.unwrap(),
        Some(json!({ "cursor": "2024-06-10T12:00:00Z" }))
    );
    let second = sync_stream(&connector, &streams::EVENTS, &writer, &options, &NoProgress).await;
    assert_eq!(second.status, "ok", "{:?}", second.error);

    let requests = h.finish(guard).await;
    assert_eq!(requests.len(), 2);
    assert_eq!(
        query(&requests[0])["filter"],
        "greater-or-equal(datetime,2024-06-01T00:00:00Z)"
    );
    assert_eq!(
        query(&requests[1])["filter"],
        "greater-or-equal(datetime,2024-06-07T12:00:00Z)",
        "saved cursor minus lookback_days = 3"
    );
    assert_eq!(query(&requests[1])["sort"], "datetime");
}

#[tokio::test]
async fn profiles_use_greater_than_on_updated_one_second_back() {
    let h = Harness::start().await;
    let base = h.uri();
    Mock::given(method("GET"))
        .and(path("/api/profiles"))
        .and(query_param(
            "filter",
            "greater-than(updated,2024-06-01T16:30:04Z)",
        ))
        .and(query_param("sort", "updated"))
        .and(query_param("page[size]", "100"))
        .and(query_param_is_missing("include"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("profiles.json", &base)))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let state = json!({ "cursor": "2024-06-01T16:30:05Z" });
    let pages = read_all(&h.connector(), read_request("profiles", Some(state)))
        .await
        .unwrap();
    let r = &pages[0].records[0];
    assert_eq!(
        (r.id.as_str(), r.cursor.as_deref()),
        ("01HZ1A2B3C4D5E6F7G8H9J0KLM", Some("2024-06-01T16:30:05Z"))
    );
    assert!(r.payload.get("included").is_none());
    h.finish(guard).await;
}

#[tokio::test]
async fn campaigns_are_read_once_per_channel() {
    let h = Harness::start().await;
    let base = h.uri();
    Mock::given(method("GET"))
        .and(path("/api/campaigns"))
        .and(query_param(
            "filter",
            "equals(messages.channel,'email'),greater-or-equal(updated_at,2024-06-01T00:00:00Z)",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("campaign_email.json", &base)),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/campaigns"))
        .and(query_param(
            "filter",
            "equals(messages.channel,'sms'),greater-or-equal(updated_at,2024-06-01T00:00:00Z)",
        ))
        .respond_with(doc(vec![]))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let state = json!({ "cursor": "2024-06-01T00:00:00Z" });
    let pages = read_all(&h.connector(), read_request("campaigns", Some(state)))
        .await
        .unwrap();
    let records: Vec<(&str, &str)> = pages
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| (r.id.as_str(), r.cursor.as_deref().unwrap()))
        .collect();
    assert_eq!(
        records,
        [("01HZ4K7Q3M2V8N5R6T9W0XYZAA", "2024-06-01T08:05:12Z")]
    );
    assert_eq!(h.finish(guard).await.len(), 2);
}

#[tokio::test]
async fn flows_lists_and_metrics_queries() {
    let h = Harness::start().await;
    let base = h.uri();
    Mock::given(method("GET"))
        .and(path("/api/flows"))
        .and(query_param("filter", "greater-or-equal(updated,2024-06-01T00:00:00Z)"))
        .and(query_param("sort", "updated"))
        .and(query_param_is_missing("page[size]"))
        .respond_with(doc(vec![json!({"type":"flow","id":"XVTP5Q","attributes":{"name":"Abandoned Checkout","status":"live","archived":false,"created":"2022-05-31T06:48:46+00:00","updated":"2024-05-02T11:20:31+00:00","trigger_type":"Metric"}})]))
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/lists"))
        .and(query_param("filter", "greater-than(updated,2024-06-01T00:00:00Z)"))
        .and(query_param("sort", "updated"))
        .respond_with(doc(vec![json!({"type":"list","id":"Y6nRLr","attributes":{"name":"Newsletter","created":"2021-03-31T10:50:36+00:00","updated":"2024-05-20T09:00:00+00:00","opt_in_process":"double_opt_in"}})]))
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .and(query_param_is_missing("filter"))
        .and(query_param_is_missing("page[size]"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("metrics.json", &base)))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let c = h.connector();
    let flows = read_all(&c, read_request("flows", None)).await.unwrap();
    assert_eq!(
        flows[0].records[0].cursor.as_deref(),
        Some("2024-05-02T11:20:31Z")
    );
    let lists = read_all(&c, read_request("lists", None)).await.unwrap();
    assert_eq!(lists[0].records[0].id, "Y6nRLr");
    let metrics = read_all(
        &c,
        read_request("metrics", Some(json!({"cursor": "2030-01-01T00:00:00Z"}))),
    )
    .await
    .unwrap();
    assert_eq!(metrics[0].records.len(), 2, "metrics are a full refresh");
    assert_eq!(h.finish(guard).await.len(), 3);
}

#[tokio::test]
async fn a_backfill_filters_events_on_the_window() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/api/events"))
        .and(query_param(
            "filter",
            "greater-or-equal(datetime,2024-05-01T00:00:00Z),less-than(datetime,2024-06-01T00:00:00Z)",
        ))
        .respond_with(doc(vec![]))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let request = ReadRequest {
        stream: "events".into(),
        state: Some(json!({ "cursor": "2024-06-10T00:00:00Z" })),
        start: start(),
        window: Some(Window {
            since: Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap(),
            until: Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap(),
        }),
    };
    read_all(&h.connector(), request).await.unwrap();
    h.finish(guard).await;
}

// ---------------------------------------------------------------------------------------------------
// Throttles and errors.

#[tokio::test]
async fn a_429_with_retry_after_waits_that_long_then_succeeds() {
    let h = Harness::start().await;
    let base = h.uri();
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "31")
                .insert_header("content-type", "application/vnd.api+json")
                .set_body_json(fixture("error_429.json", &base)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("metrics.json", &base)))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("metrics", None))
        .await
        .unwrap();
    assert_eq!(pages[0].records.len(), 2);
    assert_eq!(h.clock.sleeps(), vec![Duration::from_secs(31)]);
    assert_eq!(h.finish(guard).await.len(), 2);
}

#[tokio::test]
async fn an_exhausted_steady_window_pauses_until_the_reset() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .respond_with(
            doc(vec![])
                .insert_header("RateLimit-Limit", "150")
                .insert_header("RateLimit-Remaining", "0")
                .insert_header("RateLimit-Reset", "17"),
        )
        .expect(2)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let c = h.connector();
    c.check().await.unwrap();
    assert!(h.clock.sleeps().is_empty());
    c.check().await.unwrap();
    assert_eq!(h.clock.sleeps(), vec![Duration::from_secs(17)]);
    h.finish(guard).await;
}

#[tokio::test]
async fn an_html_403_is_reported_as_a_challenge_page() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("content-type", "text/html; charset=UTF-8")
                .insert_header("cf-mitigated", "challenge")
                .set_body_string(
                    "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title></head><body></body></html>",
                ),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = h.connector().check().await.unwrap_err();
    let Error::Auth { message } = &err else {
        panic!("expected an auth error, got {err:?}");
    };
    assert!(message.contains("HTML challenge page"), "{message}");
    assert!(message.contains("source \"email\""), "{message}");
    assert!(!matches!(err, Error::Decode { .. }));
    assert!(h.clock.sleeps().is_empty(), "not retried");
    assert_eq!(h.finish(guard).await.len(), 1);
}

#[tokio::test]
async fn a_401_names_the_source_code_and_scopes() {
    let h = Harness::start().await;
    let base = h.uri();
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .respond_with(ResponseTemplate::new(401).set_body_json(fixture("error_401.json", &base)))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = h.connector().check().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "authentication failed: Klaviyo rejected the credentials of source \"email\" (401 not_authenticated: \
         Authentication credentials were not provided.: Missing or invalid private key.): check the private \
         API key (pk_…) and its scopes: events:read, profiles:read, campaigns:read, flows:read, lists:read, \
         metrics:read (Klaviyo › Settings › API keys)"
    );
    assert!(!err.to_string().contains(KEY));
    assert_eq!(h.finish(guard).await.len(), 1);
}

#[tokio::test]
async fn base_url_keeps_its_path_prefix() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/proxy/klaviyo/api/metrics"))
        .respond_with(doc(vec![]))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = h.config();
    config.base_url = Some(format!("{}/proxy/klaviyo/", h.uri()));
    let c = h.connector_with(config);
    assert_eq!(
        c.api_base().as_str(),
        format!("{}/proxy/klaviyo/api", h.uri())
    );
    c.check().await.unwrap();
    h.finish(guard).await;
}

#[tokio::test]
async fn an_unknown_stream_is_an_error_without_a_request() {
    let h = Harness::start().await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("segments", None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("segments"), "{err}");
    assert!(h.finish(guard).await.is_empty());
}

// ---------------------------------------------------------------------------------------------------
// OAuth.

#[tokio::test]
async fn oauth_refreshes_with_basic_client_auth_and_hands_over_the_rotated_token() {
    let h = Harness::start().await;
    let basic = base64::engine::general_purpose::STANDARD.encode("cid_123:cs_secret");
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at_first", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt_rotated", "scope": "events:read metrics:read"
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at_second", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt_rotated_again"
        })))
        .expect(1)
        .mount(&h.server)
        .await;
    // The first access token is refused (expired early), the refreshed one accepted.
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .and(header("authorization", "Bearer at_first"))
        .respond_with(ResponseTemplate::new(401).set_body_json(fixture("error_401.json", "")))
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .and(header("authorization", "Bearer at_second"))
        .and(header("revision", "2026-07-15"))
        .respond_with(doc(vec![]))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let rotated: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = rotated.clone();
    let mut config = KlaviyoConfig::with_oauth("cid_123", "cs_secret", "rt_original");
    config.base_url = Some(h.uri());
    let c = Klaviyo::with_rotation_hook(
        "email",
        config,
        &h.options(),
        Arc::new(move |t| {
            seen.lock().unwrap().push(t.expose_secret().to_string());
            Ok(())
        }),
    )
    .unwrap();
    c.check().await.unwrap();
    assert_eq!(
        *rotated.lock().unwrap(),
        vec!["rt_rotated", "rt_rotated_again"]
    );

    let requests = h.finish(guard).await;
    let forms: Vec<BTreeMap<String, String>> = requests
        .iter()
        .filter(|r| r.url.path() == "/oauth/token")
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .collect();
    assert_eq!(forms.len(), 2);
    assert_eq!(forms[0]["grant_type"], "refresh_token");
    assert_eq!(forms[0]["refresh_token"], "rt_original");
    assert_eq!(
        forms[1]["refresh_token"], "rt_rotated",
        "the rotated token is used next"
    );
    assert!(
        !forms[0].contains_key("client_secret"),
        "client auth is HTTP Basic only"
    );
}

// ---------------------------------------------------------------------------------------------------
// Rate tiers.

#[tokio::test]
async fn every_endpoint_has_its_own_evenly_spaced_windows() {
    // Klaviyo counts fixed windows, so the client spaces requests evenly (no burst): a request is
    // admitted at once, the next one of the same endpoint waits its slot, other endpoints do not.
    let limits = limits::rate_limits();
    assert!(limits.acquire("events").now_or_never().is_some());
    assert!(limits.acquire("events").now_or_never().is_none());
    assert!(limits.acquire("flows").now_or_never().is_some());
    assert!(limits.acquire("flows").now_or_never().is_none());
    // Anything not in the table gets the smallest tier, its own limiter too.
    assert!(limits.acquire("accounts").now_or_never().is_some());
    assert!(limits.acquire("accounts").now_or_never().is_none());
    // The table: events XL, flows S, the default XS.
    assert_eq!(
        limits::limit_of("events").unwrap().tier.quota(),
        Quota::burst_steady(350, 3500)
    );
    assert_eq!(
        limits::limit_of("flows").unwrap().tier.quota(),
        Quota::burst_steady(3, 60)
    );
}

#[tokio::test]
async fn a_rejected_refresh_token_says_to_authorise_again() {
    let h = Harness::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant", "error_description": "Refresh token is invalid."
        })))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = KlaviyoConfig::with_oauth("cid_123", "cs_secret", "rt_original");
    config.base_url = Some(h.uri());
    let err = h.connector_with(config).check().await.unwrap_err();
    let Error::Auth { message } = &err else {
        panic!("expected an auth error, got {err:?}");
    };
    assert!(message.contains("invalid_grant"), "{message}");
    assert!(message.contains("sources.email.refresh_token"), "{message}");
    assert!(!message.contains("rt_original") && !message.contains("cs_secret"));
    assert_eq!(
        h.finish(guard).await.len(),
        1,
        "no API request without a token"
    );
}

#[test]
fn construction_validates_and_debug_hides_secrets() {
    let options = ClientOptions::default();
    let err = Klaviyo::new("email", KlaviyoConfig::with_api_key(""), &options).unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "sources.email.api_key"),
        "{err:?}"
    );
    let c = Klaviyo::new("email", KlaviyoConfig::with_api_key(KEY), &options).unwrap();
    assert_eq!(c.api_base().as_str(), "https://a.klaviyo.com/api");
    assert_eq!(c.revision(), "2026-07-15");
    assert_eq!(c.source_type(), "klaviyo");
    let names: Vec<&str> = c.streams().iter().map(|d| d.name).collect();
    assert_eq!(
        names,
        [
            "events",
            "metrics",
            "profiles",
            "campaigns",
            "flows",
            "lists"
        ]
    );
    assert!(!format!("{c:?}").contains(KEY));
}

// ---------------------------------------------------------------------------------------------------
// Credentials stay on the configured origin.

#[tokio::test]
async fn a_links_next_on_another_host_is_refused_without_sending_the_key() {
    let h = Harness::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/events"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/vnd.api+json")
                .set_body_json(fixture("events_page1.json", &elsewhere.uri())),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    let catch_all = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("events", None))
        .await
        .unwrap_err();
    match &err {
        Error::OffOrigin { host, allowed, .. } => {
            assert_eq!(host, &elsewhere.address().to_string());
            assert_eq!(allowed, &h.uri());
        }
        other => panic!("expected OffOrigin, got {other:?}"),
    }
    assert!(!err.to_string().contains(KEY), "{err}");
    assert!(!err.to_string().contains(CURSOR), "{err}");
    assert!(
        elsewhere.received_requests().await.unwrap().is_empty(),
        "the other host was sent a request"
    );
    assert_eq!(h.finish(catch_all).await.len(), 1);
    assert!(h.clock.sleeps().is_empty(), "refusals are not retried");
}

// ---------------------------------------------------------------------------------------------------
// Long first syncs and backfills of events read in date windows side by side.

/// An account's events as `/api/events` lists them: `filter` takes `greater-or-equal(datetime,…)` and
/// `less-than(datetime,…)` (anything else is a 400, as Klaviyo answers an invalid filter), sorted by
/// `datetime` then id, paged by `page[cursor]` with `links.next` carrying every parameter. Pages hold
/// ten events whatever `page[size]` asks (a cursor-paged server may send fewer). Counts its requests,
/// says when the `kill_after`-th arrived, and answers the `throttle_at`-th with a 429.
struct Events {
    events: Vec<(String, DateTime<Utc>)>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    kill_after: usize,
    killed: Arc<tokio::sync::Notify>,
    throttle_at: usize,
    /// The server's address, as `links.next` names it.
    base: String,
}

const EVENTS_PER_PAGE: usize = 10;

/// How long the mock takes to build a page. The events tier spaces requests ~17 ms apart (3,500 a
/// minute), so requests overlap only when a page takes longer than that — as Klaviyo's pages with
/// their includes do (hundreds of milliseconds).
const PAGE_LATENCY: Duration = Duration::from_millis(100);

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    growthflow_core::time::parse_utc(s)
}

impl wiremock::Respond for Events {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if n == self.kill_after {
            self.killed.notify_one();
        }
        if n == self.throttle_at {
            return ResponseTemplate::new(429)
                .insert_header("Retry-After", "7")
                .insert_header("content-type", "application/vnd.api+json")
                .set_body_json(json!({"errors": [{"status": 429, "code": "throttled",
                    "title": "Request was throttled.", "detail": "Expected available in 7 seconds."}]}));
        }
        let q = query(req);
        if q.get("sort").map(String::as_str) != Some("datetime") {
            return ResponseTemplate::new(400).set_body_string("sort=datetime missing");
        }
        let (mut since, mut until) = (None, None);
        for expr in q
            .get("filter")
            .map(String::as_str)
            .unwrap_or("")
            .split("),")
        {
            let expr = expr.trim_end_matches(')');
            if let Some(t) = expr.strip_prefix("greater-or-equal(datetime,") {
                since = parse_time(t);
            } else if let Some(t) = expr.strip_prefix("less-than(datetime,") {
                until = parse_time(t);
            } else {
                return ResponseTemplate::new(400).set_body_string(format!("bad filter {expr}"));
            }
        }
        let matching: Vec<&(String, DateTime<Utc>)> = self
            .events
            .iter()
            .filter(|(_, t)| since.is_none_or(|s| *t >= s) && until.is_none_or(|u| *t < u))
            .collect();
        let offset: usize = q
            .get("page[cursor]")
            .map(|c| c.parse().unwrap())
            .unwrap_or(0);
        let data: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(EVENTS_PER_PAGE)
            .map(|(id, t)| {
                json!({"type": "event", "id": id,
                       "attributes": {"datetime": t.to_rfc3339(), "event_properties": {}}})
            })
            .collect();
        let next = (offset + EVENTS_PER_PAGE < matching.len()).then(|| {
            let mut url = url::Url::parse(&format!("{}{}", self.base, req.url.path())).unwrap();
            let kept: Vec<(String, String)> = q
                .iter()
                .filter(|(k, _)| *k != "page[cursor]")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(kept)
                .append_pair("page[cursor]", &(offset + EVENTS_PER_PAGE).to_string());
            url.to_string()
        });
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/vnd.api+json")
            .set_body_json(
                json!({"data": data, "links": {"self": req.url.to_string(), "next": next}}),
            )
            .set_delay(PAGE_LATENCY)
    }
}

/// 240 events over 2025, one every 36 hours; every twentieth shares its second with the one before.
fn year_of_events() -> Vec<(String, DateTime<Utc>)> {
    let base = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let mut out: Vec<(String, DateTime<Utc>)> = Vec::new();
    for i in 1..=240i64 {
        let t = if i % 20 == 0 {
            out.last().unwrap().1
        } else {
            base + chrono::Duration::hours(36 * i)
        };
        out.push((format!("ev{i:03}"), t));
    }
    out
}

/// Every batch committed — its record ids and the state saved with them — in commit order.
type Commit = (Vec<String>, Option<Value>);

#[derive(Clone, Default)]
struct CommitLog(Arc<Mutex<Vec<Commit>>>);

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

/// At every commit that saved a cursor, every event before it was already committed: a run killed
/// right after any commit resumes from that cursor (less the lookback) without losing an event.
fn assert_state_never_passes_an_uncommitted_event(
    log: &CommitLog,
    events: &[(String, DateTime<Utc>)],
) -> Option<String> {
    let mut committed = std::collections::HashSet::new();
    let mut last = None;
    for (ids, state) in log.0.lock().unwrap().iter() {
        committed.extend(ids.iter().cloned());
        let Some(cursor) = state.as_ref().and_then(|s| s["cursor"].as_str()) else {
            continue;
        };
        let saved = parse_time(cursor).unwrap();
        for (id, t) in events {
            if *t < saved {
                assert!(
                    committed.contains(id),
                    "cursor {cursor} saved before event {id} ({t}) was committed"
                );
            }
        }
        last = Some(cursor.to_string());
    }
    last
}

struct WindowedHarness {
    h: Harness,
    events: Vec<(String, DateTime<Utc>)>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    killed: Arc<tokio::sync::Notify>,
}

impl WindowedHarness {
    async fn start(kill_after: usize, throttle_at: usize) -> WindowedHarness {
        let h = Harness {
            server: MockServer::start().await,
            // "Now" is pinned: the last window of an incremental read starts before it.
            clock: TestClock::at(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        };
        let events = year_of_events();
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let killed = Arc::new(tokio::sync::Notify::new());
        Mock::given(method("GET"))
            .and(path("/api/events"))
            .and(header("revision", "2026-07-15"))
            .and(query_param("page[size]", "1000"))
            .and(query_param("include", "metric,profile,attributions"))
            .respond_with(Events {
                events: events.clone(),
                requests: requests.clone(),
                kill_after,
                killed: killed.clone(),
                throttle_at,
                base: h.uri(),
            })
            .mount(&h.server)
            .await;
        WindowedHarness {
            h,
            events,
            requests,
            killed,
        }
    }

    fn newest(&self) -> String {
        growthflow_core::time::format_utc(self.events.iter().map(|e| e.1).max().unwrap())
    }

    fn ids(log: &CommitLog) -> Vec<String> {
        let mut ids: Vec<String> = log
            .0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|c| c.0.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
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
async fn a_long_first_sync_of_events_reads_windows_side_by_side_and_gets_every_event_once() {
    let w = WindowedHarness::start(0, 0).await;
    let guard = w.h.catch_all().await;
    let connector = w.h.connector();
    let (writer, log) = recording_writer();
    let outcome = sync_stream(
        &connector,
        &streams::EVENTS,
        &writer,
        &sync_options(None),
        &NoProgress,
    )
    .await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    assert_eq!(WindowedHarness::ids(&log).len(), 240, "every event");
    assert_eq!(
        writer.load_state("email", "events").await.unwrap(),
        Some(json!({ "cursor": w.newest() })),
        "the newest event time, as a sequential read saves"
    );
    assert_eq!(
        assert_state_never_passes_an_uncommitted_event(&log, &w.events),
        Some(w.newest())
    );

    let requests = w.h.finish(guard).await;
    // One measuring request (the first page of the whole range), then the windows: from the first
    // event, bounded on both sides but the last, which reads on past "now".
    assert_eq!(
        query(&requests[0])["filter"],
        "greater-or-equal(datetime,2024-12-01T00:00:00Z)"
    );
    let mut windows: Vec<String> = requests[1..]
        .iter()
        .filter(|r| !query(r).contains_key("page[cursor]"))
        .map(|r| query(r)["filter"].clone())
        .collect();
    windows.sort();
    // 24 pages of ten, measured from the first page's spread as 27: six windows.
    assert_eq!(windows.len(), 6, "{windows:?}");
    assert!(
        windows[0]
            .starts_with("greater-or-equal(datetime,2025-01-02T12:00:00Z),less-than(datetime,"),
        "{windows:?}"
    );
    let open: Vec<&String> = windows
        .iter()
        .filter(|f| !f.contains("less-than"))
        .collect();
    assert_eq!(open.len(), 1, "the last window is open: {windows:?}");
    // Adjacent windows share their bounds: no gap, no overlap.
    let bound = |f: &str, op: &str| {
        f.split(op)
            .nth(1)
            .map(|t| t.split(')').next().unwrap().to_string())
    };
    let mut starts: Vec<String> = windows
        .iter()
        .map(|f| bound(f, "greater-or-equal(datetime,").unwrap())
        .collect();
    let mut ends: Vec<String> = windows
        .iter()
        .filter_map(|f| bound(f, "less-than(datetime,"))
        .collect();
    starts.sort();
    ends.sort();
    assert_eq!(&starts[1..], &ends[..], "windows tile the range");
    assert!(
        connector.limiter().peak_in_flight() >= 2,
        "windows were read side by side"
    );
    assert!(
        connector.limiter().peak_in_flight() <= limits::MAX_IN_FLIGHT,
        "never above the cap"
    );

    // Nothing changed since: the next sync makes one request (no measuring, no windows), from the
    // saved cursor less the lookback, and keeps the cursor.
    let before = requests.len();
    let again = sync_stream(
        &connector,
        &streams::EVENTS,
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
        query(&all[before])["filter"],
        "greater-or-equal(datetime,2025-12-22T12:00:00Z)",
        "the newest event less lookback_days = 3"
    );
    assert_eq!(
        writer.load_state("email", "events").await.unwrap(),
        Some(json!({ "cursor": w.newest() }))
    );
}

#[tokio::test]
async fn a_windowed_events_sync_killed_midway_resumes_without_losing_an_event() {
    let w = WindowedHarness::start(12, 0).await;
    let connector = w.h.connector();
    let (writer, log) = recording_writer();
    let options = sync_options(None);
    tokio::select! {
        o = sync_stream(&connector, &streams::EVENTS, &writer, &options, &NoProgress) => {
            panic!("the sync finished before the kill: {o:?}")
        }
        () = w.killed.notified() => {}
    }
    let saved = writer.load_state("email", "events").await.unwrap();
    let partial = WindowedHarness::ids(&log).len();
    assert!(partial > 0 && partial < 240, "killed midway ({partial})");
    let cursor = assert_state_never_passes_an_uncommitted_event(&log, &w.events);
    assert_eq!(
        saved
            .as_ref()
            .map(|s| s["cursor"].as_str().unwrap().to_string()),
        cursor
    );

    // The next run resumes in sequence from the saved cursor less the lookback (or from start_date
    // when nothing was saved) and ends with every event and the newest cursor.
    let before = w.requests.load(std::sync::atomic::Ordering::SeqCst);
    let outcome = sync_stream(&connector, &streams::EVENTS, &writer, &options, &NoProgress).await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    assert_eq!(WindowedHarness::ids(&log).len(), 240, "no event lost");
    assert_eq!(
        writer.load_state("email", "events").await.unwrap(),
        Some(json!({ "cursor": w.newest() }))
    );
    assert_eq!(
        assert_state_never_passes_an_uncommitted_event(&log, &w.events),
        Some(w.newest())
    );
    if let Some(cursor) = cursor {
        let expected = growthflow_core::time::format_utc(
            parse_time(&cursor).unwrap() - chrono::Duration::days(3),
        );
        let resumed = w.h.server.received_requests().await.unwrap();
        assert!(
            resumed[before..].iter().any(|r| {
                query(r)["filter"] == format!("greater-or-equal(datetime,{expected})")
            }),
            "no request resumed from {expected}"
        );
    }
}

#[tokio::test]
async fn a_429_in_a_window_halves_the_limit_waits_its_retry_after_and_loses_nothing() {
    let w = WindowedHarness::start(0, 6).await;
    let guard = w.h.catch_all().await;
    let connector = w.h.connector();
    let (writer, log) = recording_writer();
    let outcome = sync_stream(
        &connector,
        &streams::EVENTS,
        &writer,
        &sync_options(None),
        &NoProgress,
    )
    .await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    assert_eq!(WindowedHarness::ids(&log).len(), 240, "every event");
    assert!(
        w.h.clock.sleeps().contains(&Duration::from_secs(7)),
        "Retry-After honoured: {:?}",
        w.h.clock.sleeps()
    );
    assert_eq!(
        writer.load_state("email", "events").await.unwrap(),
        Some(json!({ "cursor": w.newest() }))
    );
    w.h.finish(guard).await;
}

#[tokio::test]
async fn a_long_events_backfill_reads_windows_and_saves_no_state() {
    let w = WindowedHarness::start(0, 0).await;
    let guard = w.h.catch_all().await;
    let connector = w.h.connector();
    let (writer, log) = recording_writer();
    let window = Window {
        since: Utc.with_ymd_and_hms(2025, 2, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2025, 11, 1, 0, 0, 0).unwrap(),
    };
    let outcome = sync_stream(
        &connector,
        &streams::EVENTS,
        &writer,
        &sync_options(Some(window)),
        &NoProgress,
    )
    .await;
    assert_eq!(outcome.status, "ok", "{:?}", outcome.error);
    let expected: Vec<String> = w
        .events
        .iter()
        .filter(|(_, t)| *t >= window.since && *t < window.until)
        .map(|e| e.0.clone())
        .collect();
    assert_eq!(
        WindowedHarness::ids(&log),
        expected,
        "each event of the window once"
    );
    assert_eq!(writer.load_state("email", "events").await.unwrap(), None);
    let requests = w.h.finish(guard).await;
    assert!(
        requests
            .iter()
            .all(|r| query(r)["filter"].contains("less-than(datetime,")),
        "every window of a backfill is bounded"
    );
    assert!(requests.len() > 8, "read in windows: {}", requests.len());
}
