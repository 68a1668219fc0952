//! Locks in the dataset that keep two runs from syncing the same source at once, and from
//! rebuilding the journey model at the same time.
//!
//! A run opens one [`LockSession`]: a connection of its own to the dataset, on its own thread, apart
//! from the writer's. Locks therefore never queue behind commits, a writer that reconnects does not
//! drop them, and a lock is released by dropping its [`SourceLock`] guard, which works on every path
//! out of a run: the end, an error, a panic, or the run's future dropped half way.
//!
//! - **SQLite**: a row per lock in `growthflow_locks` (run id, host, pid, since, heartbeat, expiry).
//!   The session renews its rows every [`LockSettings::heartbeat`]; a row is taken over when it
//!   expired (its run stopped renewing it for [`LockSettings::ttl`]) or when its holder ran on this
//!   host and its process no longer exists. The takeover is one conditional upsert inside an
//!   immediate transaction, so of two runs racing for a stale lock exactly one wins.
//! - **PostgreSQL**: a session advisory lock on the session's connection (the server releases it
//!   when the connection ends, however it ends); the row only says who holds it and since when. If
//!   the connection is lost, the session reconnects and takes its locks again; one another run took
//!   in between is reported lost to its guard ([`SourceLock::lost`]) and the engine stops that
//!   source instead of syncing it without its lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{oneshot, watch};

use super::postgres::PostgresTarget;
use super::{LockHolder, RunOwner};
use crate::{Error, Result};

pub mod pg;
pub mod sqlite;

/// The lock a journey rebuild takes (not a valid source name, so never a source's).
pub const JOURNEY: &str = ":journey";

/// The first key of a PostgreSQL source lock (the second is the hash of schema and source), beside
/// the dataset's other advisory locks (`0x6766_0001`, `0x6766_0002`).
pub const PG_LOCK_KEY: i32 = 0x6766_0003;

/// The wall clock a SQLite lock's heartbeat and expiry are written on (shared by every run on the
/// file, so it is the system's, not the run's monotonic clock); a test moves it.
pub type WallClock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How long locks live and how often they are renewed.
#[derive(Clone)]
pub struct LockSettings {
    /// How long a lock outlives its holder's last heartbeat before another run may take it over
    /// (SQLite; PostgreSQL's locks end with the connection).
    pub ttl: Duration,
    /// How often the session renews its locks (SQLite) or checks its connection (PostgreSQL).
    pub heartbeat: Duration,
    /// The time written in SQLite's lock rows.
    pub wall_clock: WallClock,
}

impl Default for LockSettings {
    fn default() -> Self {
        LockSettings {
            ttl: Duration::from_secs(2 * 60),
            heartbeat: Duration::from_secs(10),
            wall_clock: Arc::new(Utc::now),
        }
    }
}

impl std::fmt::Debug for LockSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockSettings")
            .field("ttl", &self.ttl)
            .field("heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

/// Where the locks live: the dataset itself.
#[derive(Debug, Clone)]
pub enum LockTarget {
    /// A SQLite dataset file (already created and migrated).
    Sqlite(PathBuf),
    /// A PostgreSQL dataset (its schema already migrated).
    Postgres(Box<PostgresTarget>),
}

/// What [`LockSession::try_lock`] got.
#[derive(Debug)]
pub enum TryLock {
    /// The lock is this run's until the guard is dropped.
    Taken(SourceLock),
    /// Another live run holds it.
    Held(LockHolder),
}

enum Cmd {
    TryLock(String, oneshot::Sender<Result<TryLockReply>>),
    Release(String),
    Heartbeat(oneshot::Sender<Result<Vec<String>>>),
    Held(oneshot::Sender<Vec<String>>),
    Confirm(String, oneshot::Sender<()>),
}

enum TryLockReply {
    Taken(watch::Receiver<Option<String>>),
    Held(LockHolder),
}

/// One run's locks on one dataset: a connection and a thread of their own. Cheap to clone. Once
/// every clone and every guard is dropped, the drop that comes last releases whatever is still held
/// and closes the connection before it returns (it waits for the session's thread), so a run
/// started right after an abandoned one in the same process finds its locks free.
#[derive(Clone)]
pub struct LockSession {
    shared: Arc<Shared>,
    owner: RunOwner,
}

/// What a session's handles and guards share; dropped with the last of them.
struct Shared {
    tx: Option<mpsc::Sender<Cmd>>,
    thread: Option<std::thread::JoinHandle<()>>,
    run_id: String,
}

impl Shared {
    fn send(&self, cmd: Cmd) -> Result<()> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(cmd).ok())
            .ok_or_else(session_gone)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The thread sees its queue closed once it has done everything asked before (the guards'
        // releases), releases what is left, and ends.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut live = live_runs().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = live.get_mut(&self.run_id) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.run_id);
            }
        }
    }
}

/// The runs of this process whose lock session is open: a lock row naming this host and process
/// but none of them was left by a run that is over (or by an earlier process that had the same pid,
/// as a restarted container's pid 1), and is taken over at once.
/// (Counted: a caller may open two sessions under one run id.)
fn live_runs() -> &'static std::sync::Mutex<HashMap<String, usize>> {
    static LIVE: std::sync::OnceLock<std::sync::Mutex<HashMap<String, usize>>> =
        std::sync::OnceLock::new();
    LIVE.get_or_init(Default::default)
}

fn is_live(run_id: &str) -> bool {
    live_runs()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(run_id)
}

impl std::fmt::Debug for LockSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockSession")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// A lock this run holds; dropping it releases the lock (asynchronously, on the session's thread,
/// before anything asked of the session afterwards).
pub struct SourceLock {
    key: String,
    shared: Arc<Shared>,
    lost: watch::Receiver<Option<String>>,
}

impl std::fmt::Debug for SourceLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceLock")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl SourceLock {
    /// The source (or [`JOURNEY`]) locked.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Why this run no longer holds the lock, once it lost it (its PostgreSQL connection ended and
    /// another run took the lock, or a SQLite lock expired while this run was stalled).
    pub fn lost(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// Changes when the lock is lost, so a stream waiting on a request can stop at once.
    pub fn watch(&self) -> watch::Receiver<Option<String>> {
        self.lost.clone()
    }

    /// A handle that can [confirm](LockProbe::confirm) the lock is still held, for the tasks that
    /// commit under it.
    pub fn probe(&self) -> LockProbe {
        LockProbe {
            key: self.key.clone(),
            shared: self.shared.clone(),
            lost: self.lost.clone(),
        }
    }
}

/// See [`SourceLock::probe`].
#[derive(Clone)]
pub struct LockProbe {
    key: String,
    shared: Arc<Shared>,
    lost: watch::Receiver<Option<String>>,
}

impl std::fmt::Debug for LockProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockProbe")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl LockProbe {
    /// Why the lock is lost, once it is (see [`SourceLock::lost`]).
    pub fn lost(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// Changes when the lock is lost.
    pub fn watch(&self) -> watch::Receiver<Option<String>> {
        self.lost.clone()
    }

    /// Make sure the lock is still held right now, before a commit: a PostgreSQL lock connection is
    /// asked whether it is alive (and, if it died, reconnected and the lock taken again), so a run
    /// learns of a lost lock at its next commit rather than its next heartbeat. `Some(why)` when
    /// the lock is lost.
    pub async fn confirm(&self) -> Option<String> {
        let (ack, rx) = oneshot::channel();
        if self
            .shared
            .send(Cmd::Confirm(self.key.clone(), ack))
            .is_err()
            || rx.await.is_err()
        {
            return Some("the dataset's lock session has stopped".into());
        }
        self.lost()
    }
}

impl Drop for SourceLock {
    fn drop(&mut self) {
        // Never blocks; a session whose thread already ended released everything itself.
        let _ = self
            .shared
            .send(Cmd::Release(std::mem::take(&mut self.key)));
    }
}

fn session_gone() -> Error {
    Error::destination("the dataset's lock session has stopped")
}

impl LockSession {
    /// Connect to `target` for `owner`'s locks. The connection is made on the session's thread, so
    /// this may be awaited on any runtime.
    pub async fn open(
        target: LockTarget,
        owner: RunOwner,
        settings: LockSettings,
    ) -> Result<LockSession> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready) = oneshot::channel();
        let thread_owner = owner.clone();
        *live_runs()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(owner.run_id.clone())
            .or_default() += 1;
        let thread = std::thread::Builder::new()
            .name("growthflow-locks".into())
            .spawn(move || {
                let store = match Store::open(&target) {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                Worker {
                    store,
                    owner: thread_owner,
                    settings,
                    held: HashMap::new(),
                    unreleased: Vec::new(),
                }
                .serve(rx);
            })
            .map_err(|e| Error::Other(format!("cannot start the lock thread: {e}")));
        // From here on, however this ends (an error, this future dropped), dropping `shared` ends the
        // thread and the run's liveness.
        let mut shared = Shared {
            tx: Some(tx),
            thread: None,
            run_id: owner.run_id.clone(),
        };
        shared.thread = Some(thread?);
        let shared = Arc::new(shared);
        ready.await.map_err(|_| session_gone())??;
        Ok(LockSession { shared, owner })
    }

    /// Who this session's locks say holds them.
    pub fn owner(&self) -> &RunOwner {
        &self.owner
    }

    /// Take `key` (a source name, or [`JOURNEY`]) unless another live run holds it; never waits for
    /// it. A key this session already holds is reported held by this run.
    pub async fn try_lock(&self, key: &str) -> Result<TryLock> {
        let (ack, rx) = oneshot::channel();
        self.shared.send(Cmd::TryLock(key.to_string(), ack))?;
        Ok(match rx.await.map_err(|_| session_gone())?? {
            TryLockReply::Taken(lost) => TryLock::Taken(SourceLock {
                key: key.to_string(),
                shared: self.shared.clone(),
                lost,
            }),
            TryLockReply::Held(h) => TryLock::Held(h),
        })
    }

    /// Renew the locks now (the session also does it every [`LockSettings::heartbeat`]); the keys
    /// this run found it had lost.
    pub async fn heartbeat(&self) -> Result<Vec<String>> {
        let (ack, rx) = oneshot::channel();
        self.shared.send(Cmd::Heartbeat(ack))?;
        rx.await.map_err(|_| session_gone())?
    }

    /// The keys this session holds, sorted (after every release asked before this call).
    pub async fn held(&self) -> Result<Vec<String>> {
        let (ack, rx) = oneshot::channel();
        self.shared.send(Cmd::Held(ack))?;
        rx.await.map_err(|_| session_gone())
    }
}

/// The session's thread: the connection and what it holds.
struct Worker {
    store: Store,
    owner: RunOwner,
    settings: LockSettings,
    /// Each held key and the sender that tells its guard the lock was lost.
    held: HashMap<String, watch::Sender<Option<String>>>,
    /// Keys whose release failed (the store was busy); retried until it works.
    unreleased: Vec<String>,
}

impl Worker {
    fn serve(mut self, rx: mpsc::Receiver<Cmd>) {
        let mut next_beat = Instant::now() + self.settings.heartbeat;
        loop {
            let wait = next_beat.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Cmd::TryLock(key, ack)) => {
                    let _ = ack.send(self.try_lock(&key));
                }
                Ok(Cmd::Release(key)) => self.release(key),
                Ok(Cmd::Heartbeat(ack)) => {
                    let _ = ack.send(self.heartbeat());
                }
                Ok(Cmd::Confirm(key, ack)) => {
                    self.confirm(&key);
                    let _ = ack.send(());
                }
                Ok(Cmd::Held(ack)) => {
                    let mut keys: Vec<String> = self.held.keys().cloned().collect();
                    keys.sort();
                    let _ = ack.send(keys);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.heartbeat() {
                        tracing::warn!("cannot renew this run's locks (trying again): {e}");
                    }
                    next_beat = Instant::now() + self.settings.heartbeat;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            self.retry_releases();
        }
        // Every guard and handle is gone: nothing may stay held.
        let keys: Vec<String> = self.held.keys().cloned().collect();
        for key in keys {
            self.release(key);
        }
        self.retry_releases();
    }

    fn try_lock(&mut self, key: &str) -> Result<TryLockReply> {
        if self.held.contains_key(key) {
            return Ok(TryLockReply::Held(
                self.store.holder_of_own(key, &self.owner),
            ));
        }
        match self.store.try_lock(key, &self.owner, &self.settings) {
            Ok(None) => {}
            Ok(Some(holder)) => return Ok(TryLockReply::Held(holder)),
            Err(e) => {
                // A PostgreSQL connection that died: reconnect (taking the held locks again) and ask
                // once more.
                if !self.store.is_closed() {
                    return Err(e);
                }
                self.reconnect();
                if let Some(holder) = self.store.try_lock(key, &self.owner, &self.settings)? {
                    return Ok(TryLockReply::Held(holder));
                }
            }
        }
        let (tx, rx) = watch::channel(None);
        self.held.insert(key.to_string(), tx);
        Ok(TryLockReply::Taken(rx))
    }

    fn release(&mut self, key: String) {
        if self.held.remove(&key).is_none() {
            return; // lost already, or never taken
        }
        if let Err(e) = self.store.release(&key, &self.owner) {
            tracing::warn!(%key, "cannot release the lock yet (trying again): {e}");
            self.unreleased.push(key);
        }
    }

    fn retry_releases(&mut self) {
        if self.unreleased.is_empty() {
            return;
        }
        let keys = std::mem::take(&mut self.unreleased);
        for key in keys {
            if self.held.contains_key(&key) {
                continue; // taken again meanwhile
            }
            if self.store.release(&key, &self.owner).is_err() && !self.store.is_closed() {
                self.unreleased.push(key);
            }
        }
    }

    fn heartbeat(&mut self) -> Result<Vec<String>> {
        if self.held.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = self.held.keys().cloned().collect();
        let still = match self.store.heartbeat(&keys, &self.owner, &self.settings) {
            Ok(still) => still,
            Err(e) if self.store.is_closed() => {
                tracing::warn!("the lock connection was lost ({e}); reconnecting");
                return Ok(self.reconnect());
            }
            Err(e) => return Err(e),
        };
        let lost: Vec<String> = keys.into_iter().filter(|k| !still.contains(k)).collect();
        for key in &lost {
            self.lose(
                key,
                "another run took it over (this run did not renew it in time)".into(),
            );
        }
        Ok(lost)
    }

    /// Check that the connection holding `key` is alive; a dead one is reconnected (and the locks
    /// taken again, or lost); `key`'s guard learns the outcome through its watch.
    fn confirm(&mut self, key: &str) {
        if !self.held.contains_key(key) {
            return;
        }
        if let Err(e) = self.store.check() {
            if self.store.is_closed() {
                tracing::warn!("the lock connection was lost ({e}); reconnecting");
                self.reconnect();
            } else {
                self.lose(
                    key,
                    format!("cannot tell whether this run still holds it: {e}"),
                );
            }
        }
    }

    /// Connect again and take every held lock again; those that cannot be are lost.
    fn reconnect(&mut self) -> Vec<String> {
        let keys: Vec<String> = self.held.keys().cloned().collect();
        if let Err(e) = self.store.reconnect() {
            for key in &keys {
                self.lose(
                    key,
                    format!(
                        "the lock's connection to the dataset ended and cannot be reopened: {e}"
                    ),
                );
            }
            return keys;
        }
        let mut lost = Vec::new();
        for key in keys {
            let reason = match self.store.try_lock(&key, &self.owner, &self.settings) {
                Ok(None) => continue,
                Ok(Some(holder)) => format!(
                    "the lock's connection to the dataset ended, and {holder} took the lock meanwhile"
                ),
                Err(e) => format!("the lock's connection to the dataset ended: {e}"),
            };
            self.lose(&key, reason);
            lost.push(key);
        }
        lost
    }

    fn lose(&mut self, key: &str, reason: String) {
        tracing::warn!(%key, "this run lost its lock: {reason}");
        if let Some(tx) = self.held.remove(key) {
            let _ = tx.send(Some(reason));
        }
    }
}

/// The connection the session keeps.
enum Store {
    Sqlite(Connection),
    Postgres {
        client: Box<::postgres::Client>,
        target: Box<PostgresTarget>,
    },
}

impl Store {
    fn open(target: &LockTarget) -> Result<Store> {
        Ok(match target {
            LockTarget::Sqlite(path) => Store::Sqlite(sqlite::connect(path)?),
            LockTarget::Postgres(t) => Store::Postgres {
                client: Box::new(pg::connect(t)?),
                target: t.clone(),
            },
        })
    }

    fn is_closed(&self) -> bool {
        match self {
            Store::Sqlite(_) => false,
            Store::Postgres { client, .. } => client.is_closed(),
        }
    }

    /// Fails when the connection (and so a PostgreSQL session's locks) is gone.
    fn check(&mut self) -> Result<()> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres { client, .. } => Ok(client.is_valid(Duration::from_secs(30))?),
        }
    }

    fn reconnect(&mut self) -> Result<()> {
        if let Store::Postgres { client, target } = self {
            **client = pg::connect(target)?;
        }
        Ok(())
    }

    fn try_lock(
        &mut self,
        key: &str,
        owner: &RunOwner,
        settings: &LockSettings,
    ) -> Result<Option<LockHolder>> {
        match self {
            Store::Sqlite(conn) => sqlite::try_lock(conn, key, owner, settings),
            Store::Postgres { client, target } => {
                pg::try_lock(client, target.schema(), key, owner, settings.ttl)
            }
        }
    }

    fn heartbeat(
        &mut self,
        keys: &[String],
        owner: &RunOwner,
        settings: &LockSettings,
    ) -> Result<Vec<String>> {
        match self {
            Store::Sqlite(conn) => sqlite::heartbeat(conn, owner, settings),
            Store::Postgres { client, .. } => {
                pg::heartbeat(client, owner, settings.ttl)?;
                // A live session still holds every lock it took.
                Ok(keys.to_vec())
            }
        }
    }

    fn release(&mut self, key: &str, owner: &RunOwner) -> Result<()> {
        match self {
            Store::Sqlite(conn) => sqlite::release(conn, key, owner),
            // A closed connection's locks were released by the server.
            Store::Postgres { client, .. } if client.is_closed() => Ok(()),
            Store::Postgres { client, target } => pg::release(client, target.schema(), key, owner),
        }
    }

    /// What to say when a run asks for a lock it holds already.
    fn holder_of_own(&self, _key: &str, owner: &RunOwner) -> LockHolder {
        LockHolder {
            run_id: owner.run_id.clone(),
            host: owner.host.clone(),
            pid: i64::from(owner.pid),
            since: "earlier in this run".into(),
        }
    }
}

/// RFC 3339 UTC with a fixed six-digit fraction: text order is time order.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// True when no process `pid` exists on this host. Only Linux can tell (through `/proc`); elsewhere
/// the holder is taken for alive and its lock ends by expiry.
fn process_is_gone(pid: i64) -> bool {
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        !Path::new(&format!("/proc/{pid}")).exists()
    } else {
        false
    }
}

fn unknown_holder() -> LockHolder {
    LockHolder {
        run_id: "?".into(),
        host: "?".into(),
        pid: 0,
        since: "just now".into(),
    }
}
