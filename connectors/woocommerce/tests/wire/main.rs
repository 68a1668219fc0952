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

mod basic_auth;
mod check;
mod customers;
mod final_errors;
mod oauth1_signature;
mod paging;
mod retries;
mod saved_state;
mod stream_queries;
mod windows;

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

/// A sync of the configured streams from [`start`], incremental, one stream at a time.
fn sync_options_from_start() -> SyncOptions {
    SyncOptions {
        start: start(),
        streams: Vec::new(),
        full_refresh: false,
        window: None,
        concurrency: 1,
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap()
}
