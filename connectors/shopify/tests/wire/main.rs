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

mod bulk;
mod cost_bucket;
mod errors;
mod expiring_tokens;
mod paging;

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
