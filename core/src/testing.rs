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

/// A response as an [`ApiPolicy`](crate::http::ApiPolicy) sees it, for the unit tests of a
/// connector's `classify`: one helper instead of the same few lines in each connector's policy tests.
/// `status` and the header values must be valid (a test's own constants); a bad one panics.
pub fn response(
    status: u16,
    headers: &[(&'static str, &str)],
    body: &str,
) -> crate::http::Response {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            *name,
            reqwest::header::HeaderValue::from_str(value).expect("a valid header value"),
        );
    }
    crate::http::Response {
        status: reqwest::StatusCode::from_u16(status).expect("a valid status"),
        headers: map,
        body: body.as_bytes().to_vec(),
    }
}

/// One batch a [`recording_writer`]'s destination committed, in commit order.
#[cfg(feature = "dataset")]
#[derive(Debug, Clone)]
pub struct Commit {
    /// The ids of the batch's records.
    pub ids: Vec<String>,
    /// The partition the batch replaced, if any.
    pub replaces: Option<String>,
    /// The state saved with the records.
    pub state: Option<serde_json::Value>,
}

/// What a [`recording_writer`] committed so far; clones share it.
#[cfg(feature = "dataset")]
#[derive(Debug, Clone, Default)]
pub struct CommitLog(std::sync::Arc<std::sync::Mutex<Vec<Commit>>>);

#[cfg(feature = "dataset")]
impl CommitLog {
    /// The batches committed so far.
    pub fn commits(&self) -> Vec<Commit> {
        self.0.lock().unwrap().clone()
    }

    /// Every committed record id, in commit order (a record committed twice is listed twice).
    pub fn ids(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|c| c.ids.clone())
            .collect()
    }
}

/// A SQLite dataset in memory that writes like any other and logs each committed batch, so that a
/// windowed read's test can check, at every commit, that the saved cursor never passes a record not
/// yet committed (what a run killed right after that commit would lose).
#[cfg(feature = "dataset")]
struct Recording {
    inner: crate::destination::sqlite::SqliteDestination,
    log: CommitLog,
}

#[cfg(feature = "dataset")]
impl crate::destination::Destination for Recording {
    fn register_source(&mut self, source: &str, source_type: &str) -> Result<()> {
        self.inner.register_source(source, source_type)
    }
    fn load_state(&mut self, source: &str, stream: &str) -> Result<Option<serde_json::Value>> {
        self.inner.load_state(source, stream)
    }
    fn commit(&mut self, batches: &[crate::destination::WriteBatch]) -> Result<()> {
        self.inner.commit(batches)?;
        let mut log = self.log.0.lock().unwrap();
        for b in batches {
            log.push(Commit {
                ids: b.records.iter().map(|r| r.id.clone()).collect(),
                replaces: b.replaces.clone(),
                state: b.state.clone(),
            });
        }
        Ok(())
    }
    fn rebuild_journey(
        &mut self,
        mappers: &[std::sync::Arc<dyn crate::model::JourneyMapper>],
    ) -> Result<crate::destination::RebuildStats> {
        self.inner.rebuild_journey(mappers)
    }
    fn saved_states(
        &mut self,
        source: Option<&str>,
    ) -> Result<Vec<crate::destination::SavedState>> {
        self.inner.saved_states(source)
    }
    fn reset_state(&mut self, source: &str, stream: Option<&str>) -> Result<u64> {
        self.inner.reset_state(source, stream)
    }
}

/// A dataset writer over an in-memory SQLite dataset, and the log of every batch it commits.
#[cfg(feature = "dataset")]
pub fn recording_writer() -> (crate::destination::DatasetWriter, CommitLog) {
    let log = CommitLog::default();
    let dest = Recording {
        inner: crate::destination::sqlite::SqliteDestination::in_memory()
            .expect("an in-memory SQLite dataset"),
        log: log.clone(),
    };
    (
        crate::destination::DatasetWriter::spawn(Box::new(dest)),
        log,
    )
}
