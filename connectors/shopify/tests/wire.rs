//! The connector against a mock Shopify GraphQL Admin API (wiremock): what it sends and how it reacts.
//!
//! Every test mounts a catch-all mock last, at the lowest priority, answering 500 "unexpected request",
//! and ends with [`Harness::finish`], which fails if any request reached it — so a wrong path, header or
//! variable fails loudly instead of being retried into a pass. Waits are asserted on a `TestClock`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Match, Mock, MockGuard, MockServer, Request, ResponseTemplate};

use growthflow_core::connector::{Connector, Page, ReadRequest, Window};
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::DatasetWriter;
use growthflow_core::engine::{sync_stream, NoProgress, SyncOptions};
use growthflow_core::http::{ClientOptions, TestClock};
use growthflow_core::Error;
use growthflow_shopify::{streams, Shopify, ShopifyConfig};

const TOKEN: &str = "shpat_0123456789abcdef";
const VERSION: &str = "2026-10";

fn graphql_path() -> String {
    format!("/admin/api/{VERSION}/graphql.json")
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The reference order with another id and update time.
fn order(id: u64, updated_at: &str) -> Value {
    let mut o = fixture("order_1042.json");
    o["id"] = json!(format!("gid://shopify/Order/{id}"));
    o["legacyResourceId"] = json!(id.to_string());
    o["updatedAt"] = json!(updated_at);
    o
}

/// The reference customer with another id and update time.
fn customer(id: u64, updated_at: &str) -> Value {
    let mut c = fixture("customer_7391920570558.json");
    c["id"] = json!(format!("gid://shopify/Customer/{id}"));
    c["updatedAt"] = json!(updated_at);
    c
}

/// `extensions.cost` with `available` points left of 2000, restoring 100/s.
fn cost(requested: u32, available: u32) -> Value {
    json!({"cost": {"requestedQueryCost": requested, "actualQueryCost": requested / 8,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": available, "restoreRate": 100.0}}})
}

/// A page of `root` with `nodes`; `next` is the end cursor when there are more pages.
fn page(root: &str, nodes: Vec<Value>, next: Option<&str>, available: u32) -> ResponseTemplate {
    let end = next.map(str::to_string).or(Some("last".into()));
    ResponseTemplate::new(200).set_body_json(json!({
        "data": { root: { "pageInfo": {"hasNextPage": next.is_some(), "endCursor": end}, "nodes": nodes } },
        "extensions": cost(400, available),
    }))
}

/// Matches a GraphQL request whose `variables.{name}` equals `value`.
struct Var(&'static str, Value);

impl Match for Var {
    fn matches(&self, request: &Request) -> bool {
        serde_json::from_slice::<Value>(&request.body)
            .ok()
            .and_then(|b| b.pointer(&format!("/variables/{}", self.0)).cloned())
            == Some(self.1.clone())
    }
}

fn variables(req: &Request) -> Value {
    serde_json::from_slice::<Value>(&req.body).unwrap()["variables"].clone()
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

    fn config(&self) -> ShopifyConfig {
        let mut c = ShopifyConfig::new("acme", TOKEN);
        c.base_url = Some(self.server.uri());
        c
    }

    fn options(&self) -> ClientOptions {
        ClientOptions::with_clock(Arc::new(self.clock.clone()))
    }

    fn connector_with(&self, config: ShopifyConfig) -> Shopify {
        Shopify::new("shop", config, &self.options()).unwrap()
    }

    fn connector(&self) -> Shopify {
        self.connector_with(self.config())
    }

    /// The GraphQL route with the token header.
    fn graphql(&self) -> wiremock::MockBuilder {
        Mock::given(method("POST"))
            .and(path(graphql_path()))
            .and(header("x-shopify-access-token", TOKEN))
            .and(header("content-type", "application/json"))
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

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap()
}

fn read_request(stream: &str, state: Option<Value>) -> ReadRequest {
    ReadRequest {
        stream: stream.into(),
        state,
        start: start(),
        window: None,
    }
}

async fn read_all(c: &Shopify, req: ReadRequest) -> Result<Vec<Page>, Error> {
    growthflow_core::testing::read_pages(c, req).await
}

fn ids(pages: &[Page]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p.records.iter().map(|r| r.id.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Cost bucket: THROTTLED at 200, pacing, MAX_COST_EXCEEDED.

#[tokio::test]
async fn throttled_at_200_waits_exactly_what_the_bucket_needs_then_succeeds() {
    let h = Harness::start().await;
    h.graphql()
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("throttled.json")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&h.server)
        .await;
    h.graphql()
        .respond_with(page(
            "orders",
            vec![order(1, "2025-03-02T10:00:00Z")],
            None,
            1900,
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("orders", None))
        .await
        .unwrap();
    assert_eq!(ids(&pages), ["1"]);
    // (requestedQueryCost 612 − currentlyAvailable 58) / restoreRate 100 = 5.54 s, once.
    assert_eq!(h.clock.sleeps(), vec![Duration::from_millis(5540)]);
    assert_eq!(h.finish(guard).await.len(), 2);
}

#[tokio::test]
async fn a_falling_bucket_makes_the_client_pause_before_it_runs_dry() {
    let h = Harness::start().await;
    // Customers: the default page (100) fits the query cost limit from the start, so the size stays.
    // Each page costs 400; the bucket reports 1500, then 250 (too little for the next page), then 1000.
    h.graphql()
        .and(Var("after", Value::Null))
        .respond_with(page(
            "customers",
            vec![customer(1, "2025-03-02T10:00:00Z")],
            Some("c1"),
            1500,
        ))
        .mount(&h.server)
        .await;
    h.graphql()
        .and(Var("after", json!("c1")))
        .respond_with(page(
            "customers",
            vec![customer(2, "2025-03-03T10:00:00Z")],
            Some("c2"),
            250,
        ))
        .mount(&h.server)
        .await;
    h.graphql()
        .and(Var("after", json!("c2")))
        .respond_with(page(
            "customers",
            vec![customer(3, "2025-03-04T10:00:00Z")],
            None,
            1000,
        ))
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("customers", None))
        .await
        .unwrap();
    assert_eq!(ids(&pages), ["1", "2", "3"]);
    // After page 2 only 250 of the 400 points are left: wait (400 − 250) / 100 = 1.5 s, and only then.
    assert_eq!(h.clock.sleeps(), vec![Duration::from_millis(1500)]);
    assert_eq!(h.finish(guard).await.len(), 3);
}

#[tokio::test]
async fn max_cost_exceeded_halves_the_page_size_and_keeps_it() {
    // Customers start at the configured 100 (their estimated cost fits); Shopify still says no.
    let h = Harness::start().await;
    h.graphql()
        .and(Var("first", json!(100)))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("max_cost_exceeded.json")))
        .expect(1)
        .mount(&h.server)
        .await;
    h.graphql()
        .and(Var("first", json!(50)))
        .and(Var("after", Value::Null))
        .respond_with(page(
            "customers",
            vec![customer(1, "2025-03-02T10:00:00Z")],
            Some("c1"),
            1900,
        ))
        .mount(&h.server)
        .await;
    h.graphql()
        .and(Var("first", json!(50)))
        .and(Var("after", json!("c1")))
        .respond_with(page(
            "customers",
            vec![customer(2, "2025-03-03T10:00:00Z")],
            None,
            1900,
        ))
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("customers", None))
        .await
        .unwrap();
    assert_eq!(ids(&pages), ["1", "2"]);
    let requests = h.finish(guard).await;
    let firsts: Vec<Value> = requests
        .iter()
        .map(|r| variables(r)["first"].clone())
        .collect();
    assert_eq!(firsts, [json!(100), json!(50), json!(50)]);
    assert!(h.clock.sleeps().is_empty(), "not a throttle: no waiting");
}

// ---------------------------------------------------------------------------------------------------
// Paging and incremental filters.

#[tokio::test]
async fn cursor_pages_are_followed_until_has_next_page_is_false() {
    let h = Harness::start().await;
    h.graphql()
        .and(Var("after", Value::Null))
        .respond_with(page(
            "customers",
            vec![fixture("customer_7391920570558.json")],
            Some("eyJsYXN0X2lkIjoxfQ=="),
            1900,
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    let mut second = fixture("customer_7391920570558.json");
    second["id"] = json!("gid://shopify/Customer/42");
    second["updatedAt"] = json!("2025-03-13T08:00:00+01:00");
    h.graphql()
        .and(Var("after", json!("eyJsYXN0X2lkIjoxfQ==")))
        .respond_with(page("customers", vec![second], None, 1900))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("customers", None))
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(ids(&pages), ["7391920570558", "42"]);
    let r = &pages[1].records[0];
    assert_eq!(r.cursor.as_deref(), Some("2025-03-13T07:00:00Z"));
    assert_eq!(r.payload["id"], "gid://shopify/Customer/42");
    assert_eq!(r.payload["numberOfOrders"], "1");
    let requests = h.finish(guard).await;
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let query = body["query"].as_str().unwrap();
    assert!(
        query.contains("customers(first: $first, after: $after, query: $query, sortKey: $sortKey)"),
        "{query}"
    );
    assert!(query.contains("$sortKey: CustomerSortKeys"), "{query}");
    assert_eq!(
        variables(&requests[0]),
        json!({"first": 100, "after": null, "query": "updated_at:>='2025-03-01T00:00:00Z'", "sortKey": "UPDATED_AT"})
    );
}

#[tokio::test]
async fn the_second_sync_filters_from_saved_state_and_lookback_reaches_further() {
    let h = Harness::start().await;
    h.graphql()
        .respond_with(page(
            "orders",
            vec![
                order(1, "2025-03-02T10:00:00Z"),
                order(2, "2025-03-12T16:40:09Z"),
            ],
            None,
            1900,
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
    let first = sync_stream(&connector, &streams::ORDERS, &writer, &options, &NoProgress).await;
    assert_eq!(
        (first.status, first.records),
        ("ok", 2),
        "{:?}",
        first.error
    );
    assert_eq!(
        writer.load_state("shop", "orders").await.unwrap(),
        Some(json!({ "cursor": "2025-03-12T16:40:09Z" }))
    );
    let second = sync_stream(&connector, &streams::ORDERS, &writer, &options, &NoProgress).await;
    assert_eq!(second.status, "ok", "{:?}", second.error);

    let mut config = h.config();
    config.lookback_days = Some(2);
    let pages = read_all(
        &h.connector_with(config),
        read_request("orders", Some(json!({"cursor": "2025-03-12T16:40:09Z"}))),
    )
    .await
    .unwrap();
    assert_eq!(ids(&pages), ["1", "2"]);

    let requests = h.finish(guard).await;
    let filters: Vec<Value> = requests
        .iter()
        .map(|r| variables(r)["query"].clone())
        .collect();
    assert_eq!(
        filters,
        [
            json!("updated_at:>='2025-03-01T00:00:00Z'"),
            json!("updated_at:>='2025-03-12T16:40:08Z'"),
            json!("updated_at:>='2025-03-10T16:40:08Z'"),
        ],
        "start date, then saved cursor − 1 s, then also − lookback_days"
    );
    assert!(requests
        .iter()
        .all(|r| variables(r)["sortKey"] == "UPDATED_AT"));
}

#[tokio::test]
async fn a_backfill_reads_by_creation_time_in_the_window() {
    let h = Harness::start().await;
    h.graphql()
        .and(Var(
            "query",
            json!("created_at:>='2025-01-01T00:00:00Z' created_at:<'2025-01-31T00:00:00Z'"),
        ))
        .and(Var("sortKey", json!("CREATED_AT")))
        .respond_with(page(
            "orders",
            vec![order(7, "2025-01-05T00:00:00Z")],
            None,
            1900,
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", Some(json!({"cursor": "2025-03-12T16:40:09Z"})));
    req.window = Some(Window {
        since: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2025, 1, 31, 0, 0, 0).unwrap(),
    });
    // 30 days: not longer than bulk_threshold_days, so paged.
    let pages = read_all(&h.connector(), req).await.unwrap();
    assert_eq!(ids(&pages), ["7"]);
    h.finish(guard).await;
}

#[tokio::test]
async fn abandoned_checkouts_are_read_by_id_with_their_own_sort_keys() {
    let h = Harness::start().await;
    h.graphql()
        .and(body_string_contains("$sortKey: AbandonedCheckoutSortKeys"))
        .and(Var("sortKey", json!("ID")))
        .respond_with(page(
            "abandonedCheckouts",
            vec![fixture("abandoned_checkout_38720911245502.json")],
            None,
            1900,
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("abandoned_checkouts", None))
        .await
        .unwrap();
    assert_eq!(ids(&pages), ["38720911245502"]);
    assert_eq!(
        pages[0].records[0].cursor.as_deref(),
        Some("2025-03-04T21:19:02Z")
    );
    h.finish(guard).await;
}

// ---------------------------------------------------------------------------------------------------
// Errors.

#[tokio::test]
async fn a_401_is_an_auth_error_naming_the_source_and_not_retried() {
    let h = Harness::start().await;
    h.graphql()
        .respond_with(ResponseTemplate::new(401).set_body_json(fixture("error_401.json")))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None))
        .await
        .unwrap_err();
    match &err {
        Error::Auth { message } => {
            assert!(message.contains("source \"shop\""), "{message}");
            assert!(message.contains("access_token"), "{message}");
            assert!(message.contains("app is still installed"), "{message}");
            assert!(message.contains("Invalid API key"), "{message}");
            assert!(!message.contains(TOKEN), "{message}");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    assert!(h.clock.sleeps().is_empty(), "auth failures are not retried");
    h.finish(guard).await;
}

#[tokio::test]
async fn a_graphql_error_at_200_is_an_api_error_with_shopifys_message() {
    let h = Harness::start().await;
    h.graphql()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errors": [{"message": "Field 'nope' doesn't exist on type 'Order'",
                        "extensions": {"code": "undefinedField"}}]})))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Api { message, code: Some(code), .. }
            if message.contains("doesn't exist") && code == "undefinedField"),
        "{err:?}"
    );
    assert!(h.clock.sleeps().is_empty());
    h.finish(guard).await;
}

#[tokio::test]
async fn check_reads_the_shop_and_one_order() {
    let h = Harness::start().await;
    h.graphql()
        .and(body_string_contains("orders(first: 1)"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"shop": {"name": "NorthPeak"}, "orders": {"nodes": []}},
            "extensions": cost(3, 1997)})))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    h.connector().check().await.unwrap();
    h.finish(guard).await;
}

#[tokio::test]
async fn base_url_keeps_its_path_prefix_and_the_version_is_pinned() {
    let h = Harness::start().await;
    Mock::given(method("POST"))
        .and(path("/proxy/shopify/admin/api/2025-10/graphql.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"shop": {"name": "NorthPeak"}, "orders": {"nodes": []}}})))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = h.config();
    config.base_url = Some(format!("{}/proxy/shopify/", h.server.uri()));
    config.api_version = "2025-10".into();
    let c = h.connector_with(config);
    assert!(c
        .graphql_url()
        .as_str()
        .ends_with("/proxy/shopify/admin/api/2025-10/graphql.json"));
    c.check().await.unwrap();
    h.finish(guard).await;
}

#[tokio::test]
async fn an_unknown_stream_is_an_error_without_a_request() {
    let h = Harness::start().await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("refunds", None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("abandoned_checkouts"), "{err}");
    assert!(h.finish(guard).await.is_empty());
}

// ---------------------------------------------------------------------------------------------------
// Expiring offline tokens.

fn refresh_config(h: &Harness) -> ShopifyConfig {
    let mut c = ShopifyConfig::with_refresh_token("acme", "client-123", "secret-456", "shprt_old");
    c.base_url = Some(h.server.uri());
    c
}

async fn mount_token_endpoint(h: &Harness, body: Value) {
    Mock::given(method("POST"))
        .and(path("/admin/oauth/access_token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=shprt_old"))
        .and(body_string_contains("client_id=client-123"))
        .and(body_string_contains("client_secret=secret-456"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(&h.server)
        .await;
}

async fn sync_with_refreshed_token(h: &Harness) -> Vec<String> {
    Mock::given(method("POST"))
        .and(path(graphql_path()))
        .and(header("x-shopify-access-token", "shpat_fresh"))
        .respond_with(page(
            "orders",
            vec![order(1, "2025-03-02T10:00:00Z")],
            None,
            1900,
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let rotated: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = rotated.clone();
    let c = Shopify::with_rotation_hook(
        "shop",
        refresh_config(h),
        &h.options(),
        Arc::new(move |t| {
            seen.lock().unwrap().push(t.expose_secret().to_string());
            Ok(())
        }),
    )
    .unwrap();
    let pages = read_all(&c, read_request("orders", None)).await.unwrap();
    assert_eq!(ids(&pages), ["1"]);
    h.finish(guard).await;
    let out = rotated.lock().unwrap().clone();
    out
}

#[tokio::test]
async fn the_refresh_token_grant_rotates_and_the_hook_is_called() {
    let h = Harness::start().await;
    // With an explicit `token_type`; the test below sends Shopify's documented response, which has none.
    mount_token_endpoint(
        &h,
        json!({"access_token": "shpat_fresh", "token_type": "bearer", "expires_in": 3600,
               "refresh_token": "shprt_new", "refresh_token_expires_in": 7776000,
               "scope": "read_orders,read_customers"}),
    )
    .await;
    assert_eq!(sync_with_refreshed_token(&h).await, ["shprt_new"]);
}

#[tokio::test]
async fn the_refresh_token_grant_accepts_shopifys_exact_response() {
    let h = Harness::start().await;
    mount_token_endpoint(
        &h,
        json!({"access_token": "shpat_fresh", "expires_in": 3600, "refresh_token": "shprt_new",
               "refresh_token_expires_in": 7776000, "scope": "read_orders,read_customers"}),
    )
    .await;
    assert_eq!(sync_with_refreshed_token(&h).await, ["shprt_new"]);
}

// ---------------------------------------------------------------------------------------------------
// Bulk operations for long backfill windows.

fn bulk_window() -> Window {
    Window {
        since: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
    }
}

async fn mount_bulk_start(h: &Harness) {
    h.graphql()
        .and(body_string_contains("bulkOperationRunQuery"))
        .and(body_string_contains(
            r#"created_at:>='2024-01-01T00:00:00Z' created_at:<'2024-04-01T00:00:00Z'"#,
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"bulkOperationRunQuery": {
                "bulkOperation": {"id": "gid://shopify/BulkOperation/5732981489854", "status": "CREATED"},
                "userErrors": []}},
            "extensions": cost(10, 1990)})))
        .expect(1)
        .mount(&h.server)
        .await;
}

fn poll_answer(status: &str, error_code: Option<&str>, url: Option<String>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": {"node": {"id": "gid://shopify/BulkOperation/5732981489854", "status": status,
            "errorCode": error_code, "objectCount": "3", "url": url, "partialDataUrl": null}},
        "extensions": cost(1, 1999)}))
}

#[tokio::test]
async fn a_long_backfill_runs_a_bulk_operation_and_reattaches_children() {
    let h = Harness::start().await;
    mount_bulk_start(&h).await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .and(Var(
            "id",
            json!("gid://shopify/BulkOperation/5732981489854"),
        ))
        .respond_with(poll_answer("RUNNING", None, None))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&h.server)
        .await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer(
            "COMPLETED",
            None,
            Some(format!(
                "{}/bulk/bulk-5732981489854.jsonl?X-Goog-Signature=abc",
                h.server.uri()
            )),
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    // groupObjects false: the first line item arrives before its order.
    let jsonl = [
        json!({"__typename": "LineItem", "id": "gid://shopify/LineItem/15497838051518", "sku": "MCS-CHA-M", "quantity": 2,
               "__parentId": "gid://shopify/Order/6021883183294"}),
        json!({"__typename": "Order", "id": "gid://shopify/Order/6021883183294", "createdAt": "2024-03-05T16:47:22Z",
               "updatedAt": "2024-03-12T16:40:09Z", "totalPriceSet": {"shopMoney": {"amount": "167.33", "currencyCode": "USD"}}}),
        json!({"__typename": "LineItem", "id": "gid://shopify/LineItem/15497838084286", "sku": "TR2-SLT-10", "quantity": 1,
               "__parentId": "gid://shopify/Order/6021883183294"}),
        json!({"__typename": "Order", "id": "gid://shopify/Order/6021907759294", "createdAt": "2024-03-05T18:02:10Z",
               "updatedAt": "2024-03-05T18:02:14Z", "totalPriceSet": {"shopMoney": {"amount": "42.0", "currencyCode": "USD"}}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n")
        + "\n";
    Mock::given(method("GET"))
        .and(path("/bulk/bulk-5732981489854.jsonl"))
        .respond_with(ResponseTemplate::new(200).set_body_string(jsonl))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(bulk_window());
    let pages = read_all(&h.connector(), req).await.unwrap();
    assert_eq!(ids(&pages), ["6021883183294", "6021907759294"]);
    let first = &pages[0].records[0];
    assert_eq!(first.cursor.as_deref(), Some("2024-03-12T16:40:09Z"));
    let skus: Vec<&str> = first.payload["lineItems"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["MCS-CHA-M", "TR2-SLT-10"]);
    assert!(first.payload.get("__typename").is_none());
    assert!(first.payload["lineItems"]["nodes"][0]
        .get("__parentId")
        .is_none());
    // Polls wait on the injected clock: 1 s, then 2 s.
    assert_eq!(
        h.clock.sleeps(),
        vec![Duration::from_secs(1), Duration::from_secs(2)]
    );
    let requests = h.finish(guard).await;
    let download = requests
        .iter()
        .find(|r| r.url.path().ends_with(".jsonl"))
        .unwrap();
    assert!(
        download.headers.get("x-shopify-access-token").is_none(),
        "the Admin API token must not be sent to the storage URL"
    );
}

#[tokio::test]
async fn a_failed_bulk_operation_is_retried_in_halves() {
    let h = Harness::start().await;
    mount_bulk_start(&h).await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer("FAILED", Some("INTERNAL_SERVER_ERROR"), None))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&h.server)
        .await;
    // The two halves: 2024-01-01 .. 2024-02-15T12:00 and on to 2024-04-01; both complete empty.
    for (since, until) in [
        ("2024-01-01T00:00:00Z", "2024-02-15T12:00:00Z"),
        ("2024-02-15T12:00:00Z", "2024-04-01T00:00:00Z"),
    ] {
        h.graphql()
            .and(body_string_contains("bulkOperationRunQuery"))
            .and(body_string_contains(format!(
                "created_at:>='{since}' created_at:<'{until}'"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": {"bulkOperationRunQuery": {
                    "bulkOperation": {"id": "gid://shopify/BulkOperation/5732981489854", "status": "CREATED"},
                    "userErrors": []}},
                "extensions": cost(10, 1990)})))
            .expect(1)
            .mount(&h.server)
            .await;
    }
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer("COMPLETED", None, None))
        .with_priority(2)
        .expect(2)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(bulk_window());
    let pages = read_all(&h.connector(), req).await.unwrap();
    assert!(pages.is_empty());
    h.finish(guard).await;
}

#[tokio::test]
async fn a_bulk_operation_that_keeps_failing_is_an_error_with_its_code_at_one_day() {
    let h = Harness::start().await;
    // Every operation fails: 31 days → 15.5 → 7.75 → 3.9 → 1.9 → 0.97 days, where splitting stops.
    h.graphql()
        .and(body_string_contains("bulkOperationRunQuery"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"bulkOperationRunQuery": {
                "bulkOperation": {"id": "gid://shopify/BulkOperation/5732981489854", "status": "CREATED"},
                "userErrors": []}},
            "extensions": cost(10, 1990)})))
        .expect(6)
        .mount(&h.server)
        .await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer("FAILED", Some("INTERNAL_SERVER_ERROR"), None))
        .expect(6)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(Window {
        since: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        until: Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap(),
    });
    let err = read_all(&h.connector(), req).await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { code: Some(code), message, .. }
            if code == "BULK_FAILED" && message.contains("INTERNAL_SERVER_ERROR")),
        "{err:?}"
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn a_bulk_operation_denied_access_is_an_auth_error() {
    let h = Harness::start().await;
    mount_bulk_start(&h).await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer("FAILED", Some("ACCESS_DENIED"), None))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(bulk_window());
    let err = read_all(&h.connector(), req).await.unwrap_err();
    assert!(
        matches!(&err, Error::Auth { message } if message.contains("read_all_orders")),
        "{err:?}"
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn a_completed_bulk_operation_without_a_file_yields_nothing() {
    let h = Harness::start().await;
    mount_bulk_start(&h).await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer("COMPLETED", None, None))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(bulk_window());
    assert!(read_all(&h.connector(), req).await.unwrap().is_empty());
    h.finish(guard).await;
}

#[tokio::test]
async fn a_bulk_operation_waits_for_a_free_slot_when_the_shops_are_taken() {
    let h = Harness::start().await;
    // Two answers say every bulk slot is taken (e.g. by operations a killed backfill left running);
    // the third starts the operation.
    h.graphql()
        .and(body_string_contains("bulkOperationRunQuery"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"bulkOperationRunQuery": {"bulkOperation": null, "userErrors": [{
                "field": null, "code": "LIMIT_REACHED",
                "message": "A maximum of 5 bulk queries can run at a time for this app and shop."}]}},
            "extensions": cost(10, 1990)})))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&h.server)
        .await;
    mount_bulk_start(&h).await;
    h.graphql()
        .and(body_string_contains("PollBulk"))
        .respond_with(poll_answer("COMPLETED", None, None))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(bulk_window());
    assert!(read_all(&h.connector(), req).await.unwrap().is_empty());
    let slot = growthflow_shopify::bulk::SLOT_RETRY_INTERVAL;
    assert_eq!(
        h.clock.sleeps(),
        vec![slot, slot, growthflow_shopify::bulk::FIRST_POLL_INTERVAL],
        "two waits for a slot, then the first poll"
    );
    h.finish(guard).await;
}

#[tokio::test]
async fn other_bulk_user_errors_fail_at_once_with_their_code() {
    let h = Harness::start().await;
    h.graphql()
        .and(body_string_contains("bulkOperationRunQuery"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"bulkOperationRunQuery": {"bulkOperation": null, "userErrors": [{
                "field": ["query"], "code": "INVALID",
                "message": "Invalid bulk query: Field 'nope' doesn't exist on type 'Order'"}]}},
            "extensions": cost(10, 1990)})))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut req = read_request("orders", None);
    req.window = Some(bulk_window());
    let err = read_all(&h.connector(), req).await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { code: Some(code), message, .. }
            if code == "INVALID" && message.contains("Field 'nope'")),
        "{err:?}"
    );
    assert!(h.clock.sleeps().is_empty());
    h.finish(guard).await;
}

#[tokio::test]
async fn a_307_to_another_host_is_not_followed_and_the_token_stays_home() {
    let h = Harness::start().await;
    let elsewhere = MockServer::start().await;
    h.graphql()
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("Location", format!("{}/steal", elsewhere.uri()).as_str()),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None))
        .await
        .unwrap_err();
    match &err {
        Error::OffOrigin { what, host, .. } => {
            assert_eq!(*what, "a redirect");
            assert_eq!(host, &elsewhere.address().to_string());
        }
        other => panic!("expected OffOrigin, got {other:?}"),
    }
    assert!(!err.to_string().contains(TOKEN), "{err}");
    let stolen = elsewhere.received_requests().await.unwrap();
    assert!(
        stolen.is_empty(),
        "the other host received {} request(s)",
        stolen.len()
    );
    assert!(h.clock.sleeps().is_empty(), "refusals are not retried");
    assert_eq!(h.finish(guard).await.len(), 1);
}

/// A new client knows nothing of the bucket another run may have drained. Streams started together
/// used to all go at once (and get `THROTTLED`); now the first query goes alone, and the others wait for
/// its answer and then for the points they need, on the client's clock.
#[tokio::test]
async fn streams_started_together_wait_for_the_first_answer_to_learn_the_bucket() {
    let h = Harness::start().await;
    // The bucket holds only 100 points; a page of customers costs 400.
    h.graphql()
        .respond_with(page(
            "customers",
            vec![customer(1, "2025-03-02T10:00:00Z")],
            None,
            100,
        ))
        .expect(2)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let shopify = h.connector();
    let (a, b) = futures::join!(
        read_all(&shopify, read_request("customers", None)),
        read_all(&shopify, read_request("customers", None)),
    );
    assert_eq!(ids(&a.unwrap()), ["1"]);
    assert_eq!(ids(&b.unwrap()), ["1"]);
    // The second query reserves its estimated cost (2 + 100 × 3 = 302 points) only after the first
    // answer said 100 are left: (302 − 100) / 100 per second = 2.02 s. Sent together, both would have gone
    // at once and nothing been waited for.
    assert_eq!(h.clock.sleeps(), vec![Duration::from_millis(2020)]);
    assert_eq!(h.finish(guard).await.len(), 2);
}
