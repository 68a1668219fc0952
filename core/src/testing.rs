//! Test support shared by every connector's wire tests (feature `testing`): the loud catch-all mock,
//! draining a stream into pages, and reading a request's query. One copy here instead of one per
//! connector, so all five connectors' tests fail the same way on an unexpected request.

use std::collections::BTreeMap;

use futures::StreamExt;
use wiremock::matchers::any;
use wiremock::{Mock, MockGuard, MockServer, Request, ResponseTemplate};

use crate::connector::{Connector, Page, ReadRequest};
use crate::Result;

/// Mount, at the lowest priority, a mock answering any request no other mock matched with a 500
/// "unexpected request". Mount it after the test's own mocks and hand the guard to
/// [`assert_no_unexpected`] at the end.
pub async fn mount_catch_all(server: &MockServer) -> MockGuard {
    Mock::given(any())
        .respond_with(ResponseTemplate::new(500).set_body_string("unexpected request"))
        .with_priority(u8::MAX)
        .named("catch-all")
        .mount_as_scoped(server)
        .await
}

/// Fail the test if any request fell through to the catch-all, naming the URLs.
pub async fn assert_no_unexpected(catch_all: MockGuard) {
    let unexpected = catch_all.received_requests().await;
    assert!(
        unexpected.is_empty(),
        "unexpected requests: {:?}",
        unexpected
            .iter()
            .map(|r| r.url.to_string())
            .collect::<Vec<_>>()
    );
}

/// Read a whole stream into its pages, stopping at the first error.
pub async fn read_pages(connector: &dyn Connector, request: ReadRequest) -> Result<Vec<Page>> {
    let mut pages = Vec::new();
    let mut stream = connector.read(request);
    while let Some(page) = stream.next().await {
        pages.push(page?);
    }
    Ok(pages)
}

/// A request's query parameters (the last value wins for repeated names).
pub fn query_map(req: &Request) -> BTreeMap<String, String> {
    req.url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
