//! The shared HTTP layer against a local mock server: retries, throttles, classification, credential
//! refresh, pacing, rate limits and secret hygiene. Every wait goes through a `TestClock`, so nothing
//! sleeps on wall time; the recorded delays are what the assertions check.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use growthflow_core::auth::{HeaderAuth, QueryAuth, StaticToken, TokenProvider};
use growthflow_core::http::{
    default_classify, ApiPolicy, DefaultPolicy, HttpClient, HttpConfig, Quota, RateLimits,
    Response, RetryPolicy, TestClock,
};
use growthflow_core::{Error, ErrorKind, Result};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{any, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

mod bounded;
mod classification;
mod origin;
mod policy;
mod rate_limits;
mod raw_downloads;
mod retries;
mod secrets;

/// A mock server whose lowest-priority mock answers anything unplanned with a 500 and expects never
/// to be hit, so that `server.verify()` fails loudly on an unexpected request.
async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(500).set_body_string("unexpected request"))
        .with_priority(u8::MAX)
        .expect(0)
        .named("catch-all: unexpected request")
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.expect("recording is on")
}

fn client(policy: Arc<dyn ApiPolicy>, clock: &TestClock) -> HttpClient {
    HttpClient::builder(policy)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
}

fn default_client(clock: &TestClock) -> HttpClient {
    client(Arc::new(DefaultPolicy("TestPlatform")), clock)
}

async fn get(client: &HttpClient, endpoint: &str, url: String) -> Result<Response> {
    client.send(endpoint, client.reqwest().get(url)).await
}

/// `status` once (first in line), then whatever is mounted next.
async fn once(server: &MockServer, template: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(template)
        .up_to_n_times(1)
        .expect(1)
        .with_priority(1)
        .mount(server)
        .await;
}

async fn ok_after(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .expect(1)
        .with_priority(2)
        .mount(server)
        .await;
}
