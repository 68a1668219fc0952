//! The writer thread hands a failed commit back to every stream waiting on it with its kind kept: a
//! dataset failure must read as `destination` in `--json`, not as a platform error.

use std::sync::Arc;

use growthflow_core::destination::{
    DatasetWriter, Destination, RebuildStats, SavedState, WriteBatch,
};
use growthflow_core::model::JourneyMapper;
use growthflow_core::{Error, ErrorKind, Result};
use serde_json::Value;

/// A store whose every commit fails the way a full disk or a cut connection does.
struct FailingCommits;

impl Destination for FailingCommits {
    fn register_source(&mut self, _: &str, _: &str) -> Result<()> {
        Ok(())
    }
    fn load_state(&mut self, _: &str, _: &str) -> Result<Option<Value>> {
        Ok(None)
    }
    fn commit(&mut self, _: &[WriteBatch]) -> Result<()> {
        Err(Error::destination("disk I/O error"))
    }
    fn rebuild_journey(&mut self, _: &[Arc<dyn JourneyMapper>]) -> Result<RebuildStats> {
        Ok(RebuildStats::default())
    }
    fn saved_states(&mut self, _: Option<&str>) -> Result<Vec<SavedState>> {
        Ok(Vec::new())
    }
    fn reset_state(&mut self, _: &str, _: Option<&str>) -> Result<u64> {
        Ok(0)
    }
}

#[tokio::test]
async fn a_failed_commit_reaches_the_stream_as_a_destination_error() {
    let writer = DatasetWriter::spawn(Box::new(FailingCommits));
    let err = writer
        .commit(WriteBatch {
            source: "woo".into(),
            stream: "orders".into(),
            records: Vec::new(),
            state: None,
            replaces: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Destination, "{err}");
    assert!(err.to_string().contains("disk I/O error"), "{err}");
}
