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

mod errors;
mod oauth;
mod origin;
mod pages;
mod rate_tiers;
mod saved_state;
mod windows;

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
