//! Where records land.
//!
//! [`Destination`] is the storage interface: an embedded SQLite file ([`sqlite::SqliteDestination`], the
//! default) or a PostgreSQL warehouse ([`postgres::PostgresDestination`]); it is synchronous because the
//! stores' clients are. [`DatasetWriter`] puts one destination on its own thread and gives
//! the async sync engine a handle: every page is committed in a transaction *together with* the state
//! that covers it, so a sync killed at any point resumes from a state that never runs ahead of the data.
//! Pages arriving from several streams at once are committed in one transaction.

pub mod locks;
mod mapping;
pub mod postgres;
pub mod runs;
pub mod sqlite;

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::connector::Record;
use crate::model::JourneyMapper;
use crate::{Error, Result};

/// A dataset whose schema a newer growthflow wrote: opening it is refused rather than risking writing
/// rows the newer version would misread. Found inside [`Error::Destination`]; see [`schema_too_new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaTooNew {
    /// The dataset's schema version.
    pub found: i64,
    /// The newest version this build knows.
    pub supported: i64,
}

impl std::fmt::Display for SchemaTooNew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the dataset's schema is version {}, newer than this growthflow knows (up to {}): it was \
             written by a newer growthflow; upgrade growthflow to use it",
            self.found, self.supported
        )
    }
}

impl std::error::Error for SchemaTooNew {}

/// The [`SchemaTooNew`] inside `err`, if that is what it is (the CLI exits 2 for it).
pub fn schema_too_new(err: &Error) -> Option<&SchemaTooNew> {
    match err {
        Error::Destination(inner) => inner.downcast_ref::<SchemaTooNew>(),
        _ => None,
    }
}

/// The error [`Destination::register_source`] gives when the dataset already holds `source` as another
/// connector type: its saved cursors belong to the other platform, and resuming from them would
/// silently skip or misread data (a store moved from WooCommerce to Shopify under the same name).
pub fn source_type_changed(source: &str, was: &str, now: &str) -> Error {
    Error::config(
        format!("sources.{source}.type"),
        format!(
            "the dataset holds source `{source}` as type `{was}`, not `{now}`: its saved state \
             belongs to the {was} connector. Give the {now} source a new name, or forget the old \
             state with `growthflow state reset {source} --yes` (the records already read stay)"
        ),
    )
}

/// Records of one stream and the state to save once they are committed.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBatch {
    /// Source name.
    pub source: String,
    /// Stream name.
    pub stream: String,
    /// Records to upsert.
    pub records: Vec<Record>,
    /// State to save in the same transaction, if any.
    pub state: Option<Value>,
    /// Delete the stream's records with this cursor value before upserting `records` (see
    /// [`crate::connector::Page::replaces`]).
    pub replaces: Option<String>,
}

/// What a journey-model rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildStats {
    /// Raw records read.
    pub records: u64,
    /// Orders written.
    pub orders: u64,
    /// Journey events written.
    pub events: u64,
    /// Customers written.
    pub customers: u64,
    /// Records that failed to map (logged and skipped).
    pub failed: u64,
}

/// One stream's saved state, as `growthflow state show` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SavedState {
    /// Source name.
    pub source: String,
    /// The connector type the dataset remembers for the source (`None`: forgotten by a reset).
    #[serde(rename = "type")]
    pub source_type: Option<String>,
    /// Stream name.
    pub stream: String,
    /// The state the next run resumes from (the connector's own shape, usually a cursor).
    pub state: Value,
    /// When it was last saved, RFC 3339 UTC.
    pub updated_at: String,
}

/// Who a run is: what its source locks record (and what run history can name a run by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOwner {
    /// Unique per run, even for runs started in the same instant in one process.
    pub run_id: String,
    /// The machine (or pod) it runs on: a lock of a dead process on this host is taken over at once.
    pub host: String,
    /// Its process id.
    pub pid: u32,
}

impl RunOwner {
    /// This process, with a fresh run id: the time, the pid and a random part, so that two runs
    /// started together in one process (or in two containers whose pid is 1) never share one.
    pub fn this_process() -> RunOwner {
        RunOwner {
            run_id: crate::runs::new_run_id(),
            host: crate::runs::this_host(),
            pid: std::process::id(),
        }
    }
}

/// The run holding a lock another run asked for: who to look for when a source is reported locked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockHolder {
    /// Its run id.
    pub run_id: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: i64,
    /// Since when it holds the lock, RFC 3339 UTC.
    pub since: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} on {} (pid {}) since {}",
            self.run_id, self.host, self.pid, self.since
        )
    }
}

/// A dataset store.
pub trait Destination: Send {
    /// Remember that `source` is of `source_type`, so the model can be rebuilt without the config.
    /// A source the dataset already holds as another type is refused ([`source_type_changed`]),
    /// before anything is read.
    fn register_source(&mut self, source: &str, source_type: &str) -> Result<()>;
    /// The saved state of a stream.
    fn load_state(&mut self, source: &str, stream: &str) -> Result<Option<Value>>;
    /// Upsert every batch's records and save their states, all in one transaction.
    fn commit(&mut self, batches: &[WriteBatch]) -> Result<()>;
    /// Rebuild `customers`, `orders` and `journey_events` from `raw_records`.
    fn rebuild_journey(&mut self, mappers: &[Arc<dyn JourneyMapper>]) -> Result<RebuildStats>;
    /// Every saved stream state, of `source` only when given, ordered by source and stream.
    fn saved_states(&mut self, source: Option<&str>) -> Result<Vec<SavedState>>;
    /// Forget the saved state of `source`'s `stream`, or of all its streams; forgetting all of them
    /// also forgets the source's remembered type, so a re-platformed store can start over under its
    /// name. The records already read stay. Returns how many stream states were removed.
    fn reset_state(&mut self, source: &str, stream: Option<&str>) -> Result<u64>;
    /// Make everything committed durable in the store itself before the process exits (SQLite
    /// checkpoints its write-ahead log into the `.db` file, so the file alone holds the data).
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
    /// Record in the run history (`sync_runs`) that a run started, so that a run that never ends is
    /// seen too. A store without a run history records nothing.
    fn record_run_start(&mut self, run: &crate::runs::RunStart) -> Result<()> {
        let _ = run;
        Ok(())
    }
    /// Record how a run ended, with each stream's result.
    fn record_run_end(&mut self, end: &crate::runs::RunEnd) -> Result<()> {
        let _ = end;
        Ok(())
    }
    /// The last `limit` recorded runs, newest first; only those that read one of `sources` when it
    /// is not empty.
    fn recent_runs(
        &mut self,
        limit: usize,
        sources: &[String],
    ) -> Result<Vec<crate::runs::RunSummary>> {
        let _ = (limit, sources);
        Ok(Vec::new())
    }
}

/// A call run on the writer thread with the destination.
type OnDestination = Box<dyn FnOnce(&mut dyn Destination) + Send>;

enum Command {
    Register(String, String, oneshot::Sender<Result<()>>),
    LoadState(String, String, oneshot::Sender<Result<Option<Value>>>),
    Commit(WriteBatch, oneshot::Sender<Result<()>>),
    Rebuild(
        Vec<Arc<dyn JourneyMapper>>,
        oneshot::Sender<Result<RebuildStats>>,
    ),
    Close(oneshot::Sender<Result<()>>),
    /// Anything else on the destination; the closure answers through its own channel.
    With(OnDestination),
}

/// A commit handed to the writer thread by [`DatasetWriter::submit`], not yet known to be done.
#[derive(Debug)]
#[must_use = "a submitted commit must be waited for before its records count as committed"]
pub struct Committing(oneshot::Receiver<Result<()>>);

impl Committing {
    /// Wait until the commit is done (or failed).
    pub async fn done(self) -> Result<()> {
        self.0.await.map_err(|_| closed())?
    }

    /// True while the writer has not answered yet (a stream holds its next pages meanwhile, to
    /// commit them together).
    pub fn running(&self) -> bool {
        self.0.is_empty()
    }
}

/// An async handle to a destination running on its own thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DatasetWriter {
    tx: mpsc::Sender<Command>,
}

/// Most records committed in one transaction when several streams' pages queue up.
const MAX_RECORDS_PER_TRANSACTION: usize = 5_000;

fn closed() -> Error {
    Error::destination("the dataset writer has stopped")
}

impl DatasetWriter {
    /// Start the writer thread. The queue is small on purpose: readers wait for commits instead of
    /// piling pages up in memory.
    pub fn spawn(mut dest: Box<dyn Destination>) -> DatasetWriter {
        let (tx, mut rx) = mpsc::channel::<Command>(16);
        std::thread::Builder::new()
            .name("growthflow-writer".into())
            .spawn(move || {
                while let Some(cmd) = rx.blocking_recv() {
                    match cmd {
                        Command::Close(ack) => {
                            let result = dest.close();
                            drop(dest);
                            let _ = ack.send(result);
                            return;
                        }
                        Command::With(f) => f(dest.as_mut()),
                        Command::Register(s, t, ack) => {
                            let _ = ack.send(dest.register_source(&s, &t));
                        }
                        Command::LoadState(s, st, ack) => {
                            let _ = ack.send(dest.load_state(&s, &st));
                        }
                        Command::Rebuild(m, ack) => {
                            let _ = ack.send(dest.rebuild_journey(&m));
                        }
                        Command::Commit(batch, ack) => {
                            let mut batches = vec![batch];
                            let mut acks = vec![ack];
                            let mut pending = None;
                            let mut count = batches[0].records.len();
                            while count < MAX_RECORDS_PER_TRANSACTION {
                                match rx.try_recv() {
                                    Ok(Command::Commit(b, a)) => {
                                        count += b.records.len();
                                        batches.push(b);
                                        acks.push(a);
                                    }
                                    Ok(other) => {
                                        pending = Some(other);
                                        break;
                                    }
                                    Err(_) => break,
                                }
                            }
                            let result = dest.commit(&batches);
                            // A record is its JSON text now, so freeing a transaction's records is
                            // cheap: no thread of its own, as the trees of values once needed.
                            drop(batches);
                            for a in acks {
                                let _ = a.send(match &result {
                                    Ok(()) => Ok(()),
                                    // Every waiting stream gets the failure, with its kind kept
                                    // (a dataset error stays `destination` in `--json`).
                                    Err(e) => {
                                        Err(Error::destination(format!("commit failed: {e}")))
                                    }
                                });
                            }
                            match pending {
                                Some(Command::Register(s, t, ack)) => {
                                    let _ = ack.send(dest.register_source(&s, &t));
                                }
                                Some(Command::LoadState(s, st, ack)) => {
                                    let _ = ack.send(dest.load_state(&s, &st));
                                }
                                Some(Command::Rebuild(m, ack)) => {
                                    let _ = ack.send(dest.rebuild_journey(&m));
                                }
                                Some(Command::Close(ack)) => {
                                    let result = dest.close();
                                    drop(dest);
                                    let _ = ack.send(result);
                                    return;
                                }
                                Some(Command::With(f)) => f(dest.as_mut()),
                                Some(Command::Commit(..)) | None => {}
                            }
                        }
                    }
                }
            })
            .expect("spawn the writer thread");
        DatasetWriter { tx }
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (ack, rx) = oneshot::channel();
        self.tx.send(make(ack)).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// See [`Destination::register_source`].
    pub async fn register_source(&self, source: &str, source_type: &str) -> Result<()> {
        let (s, t) = (source.to_string(), source_type.to_string());
        self.call(|a| Command::Register(s, t, a)).await
    }

    /// See [`Destination::load_state`].
    pub async fn load_state(&self, source: &str, stream: &str) -> Result<Option<Value>> {
        let (s, st) = (source.to_string(), stream.to_string());
        self.call(|a| Command::LoadState(s, st, a)).await
    }

    /// Commit a batch; returns once it is durable.
    pub async fn commit(&self, batch: WriteBatch) -> Result<()> {
        self.call(|a| Command::Commit(batch, a)).await
    }

    /// Hand `batch` to the writer thread and return at once: the commit runs while the caller reads
    /// its next page, and [`Committing::done`] waits for it. Commits are applied in the order they
    /// are handed over (several queued ones share a transaction), so a stream's state still never
    /// runs ahead of its records.
    pub async fn submit(&self, batch: WriteBatch) -> Result<Committing> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(Command::Commit(batch, ack))
            .await
            .map_err(|_| closed())?;
        Ok(Committing(rx))
    }

    /// See [`Destination::rebuild_journey`].
    pub async fn rebuild_journey(
        &self,
        mappers: Vec<Arc<dyn JourneyMapper>>,
    ) -> Result<RebuildStats> {
        self.call(|a| Command::Rebuild(mappers, a)).await
    }
}

impl DatasetWriter {
    /// Close the destination and stop the writer thread; returns once the store is closed (for
    /// SQLite: the write-ahead log checkpointed into the `.db` file), so the process may exit right
    /// after. Later calls on any clone of this writer fail with "the dataset writer has stopped".
    pub async fn close(&self) -> Result<()> {
        self.call(Command::Close).await
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Destination) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.call(|ack| {
            Command::With(Box::new(move |d: &mut dyn Destination| {
                let _ = ack.send(f(d));
            }))
        })
        .await
    }

    /// See [`Destination::record_run_start`].
    pub async fn record_run_start(&self, run: &crate::runs::RunStart) -> Result<()> {
        let run = run.clone();
        self.with(move |d| d.record_run_start(&run)).await
    }

    /// See [`Destination::record_run_end`].
    pub async fn record_run_end(&self, end: &crate::runs::RunEnd) -> Result<()> {
        let end = end.clone();
        self.with(move |d| d.record_run_end(&end)).await
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Register(..) => "Register",
            Command::LoadState(..) => "LoadState",
            Command::Commit(..) => "Commit",
            Command::Rebuild(..) => "Rebuild",
            Command::Close(..) => "Close",
            Command::With(..) => "With",
        })
    }
}
