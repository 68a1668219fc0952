//! The write-ahead log's checkpoints, copied on a thread of their own.
//!
//! In WAL mode a committed page is written twice: appended to the log by its commit, then copied
//! into the `.db` file by a checkpoint, which also syncs both files. SQLite's automatic checkpoint
//! runs inside the commit that crosses its threshold, on the thread that commits: during a
//! 100,000-order sync the writer spent about two of its five seconds copying 550 MB into new file
//! pages and waiting on `fsync`, while the other core was mostly idle (docs/performance.md, "The
//! checkpoints off the writer's thread").
//!
//! Here a second connection, on its own thread, copies the bulk of the log while the writer goes on
//! appending to it (a `PASSIVE` checkpoint takes no lock a writer needs). SQLite starts the log over
//! from its beginning only when every frame in it is in the file at the start of a write
//! transaction, so once the copier has caught up to within a few megabytes the writer copies that
//! remainder itself, cheaply, and its next transaction reuses the log from the start: the log stays
//! the size it was, and its pages stay in the operating system's cache rather than growing a new
//! file for every megabyte written.
//!
//! Durability is SQLite's own: the copier's checkpoints are ordinary checkpoints of the same file.

use std::cell::Cell;
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::hooks::Wal;
use rusqlite::Connection;

use crate::Result;

/// Frames in the log (16 KiB pages; 32 MiB) at which the copier is woken.
const WAKE_PAGES: i64 = 2048;

/// A copier's round that copied at most this many frames (16 MiB) was the last of its wake-up: the
/// writer appends during each round, so the rounds shrink only down to what it appends during a
/// round's two `fsync`s, and the writer copies that tail itself.
const TAIL_PAGES: i64 = 1024;

/// Rounds per wake-up at most.
const ROUNDS: usize = 3;

/// Frames past which the writer copies the log itself when the copier is still busy, as SQLite's
/// own automatic checkpoint would (128 MiB): a stalled copier (a slow disk, a reader holding an old
/// snapshot) can cost speed but not let the log grow without bound.
const WRITER_PAGES: i64 = 8192;

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const CAUGHT_UP: u8 = 2;

thread_local! {
    /// Frames in the log after this thread's last commit, set by [`note_wal_pages`]. SQLite calls
    /// the hook on the committing thread, inside the commit, so the writer reads it right after.
    static WAL_PAGES: Cell<i64> = const { Cell::new(0) };
}

/// The connection's log hook: takes the place of SQLite's automatic checkpoint, which is the same
/// hook (`wal_autocheckpoint` would replace this one).
fn note_wal_pages(_: &Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(i64::from(pages)));
    Ok(())
}

/// What the writer and the copier share.
#[derive(Debug, Default)]
struct Shared {
    /// `IDLE`, `RUNNING` or `CAUGHT_UP`.
    phase: AtomicU8,
    /// Frames of the log in the file after the copier's last round.
    copied: AtomicI64,
}

/// The copier's thread, started the first time the log needs copying.
#[derive(Debug)]
struct Copier {
    wake: SyncSender<()>,
    thread: JoinHandle<()>,
}

/// Checkpoints for one dataset file's writing connection.
#[derive(Debug)]
pub(super) struct Checkpoints {
    path: PathBuf,
    shared: Arc<Shared>,
    copier: Option<Copier>,
}

impl Checkpoints {
    /// Take over the checkpoints of `conn`, the writing connection of the dataset at `path`.
    pub(super) fn install(conn: &Connection, path: &Path) -> Self {
        conn.wal_hook(Some(note_wal_pages));
        Checkpoints {
            path: path.to_path_buf(),
            shared: Arc::default(),
            copier: None,
        }
    }

    /// After each write transaction of `conn`: hand the log to the copier, copy the tail it left
    /// (so that the next transaction starts the log over), or (the copier being far behind) copy
    /// the log here.
    pub(super) fn after_commit(&mut self, conn: &Connection) -> Result<()> {
        let pages = WAL_PAGES.with(|p| p.replace(0));
        match self.shared.phase.load(Ordering::Acquire) {
            CAUGHT_UP => {
                self.shared.phase.store(IDLE, Ordering::Release);
                // The next transaction starts the log over: the copier counts from frame 0.
                self.shared.copied.store(0, Ordering::Release);
                checkpoint(conn)?;
            }
            IDLE if pages >= WAKE_PAGES => self.wake(),
            RUNNING if pages >= WRITER_PAGES => {
                checkpoint(conn)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn wake(&mut self) {
        if self.copier.is_none() {
            match spawn_copier(&self.path, Arc::clone(&self.shared)) {
                Ok(c) => self.copier = Some(c),
                Err(e) => {
                    // The writer's own checkpoints (WRITER_PAGES) still bound the log.
                    tracing::warn!("the dataset's checkpoints stay on the writer's thread: {e}");
                    self.shared.phase.store(RUNNING, Ordering::Release);
                    return;
                }
            }
        }
        self.shared.phase.store(RUNNING, Ordering::Release);
        if let Some(c) = &self.copier {
            // A full channel means a wake-up is already waiting.
            let _ = c.wake.try_send(());
        }
    }

    /// Whether the copier was ever started (tests).
    #[cfg(test)]
    pub(super) fn started(&self) -> bool {
        self.copier.is_some()
    }

    /// Stop the copier, once its round (if any) is done: the caller checkpoints alone from here.
    pub(super) fn stop(&mut self) {
        if let Some(c) = self.copier.take() {
            drop(c.wake);
            let _ = c.thread.join();
        }
        self.shared.phase.store(IDLE, Ordering::Release);
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A passive checkpoint: copies what no reader still needs from the log, blocking no one.
/// Returns the frames in the log and the frames now in the file, when no lock was in the way.
fn checkpoint(conn: &Connection) -> rusqlite::Result<Option<(i64, i64)>> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        let busy: i64 = r.get(0)?;
        Ok((busy == 0).then_some((r.get(1)?, r.get(2)?)))
    })
}

fn spawn_copier(path: &Path, shared: Arc<Shared>) -> std::io::Result<Copier> {
    let conn = Connection::open(path).map_err(std::io::Error::other)?;
    let (wake, woken) = sync_channel::<()>(1);
    let thread = std::thread::Builder::new()
        .name("growthflow-checkpoint".into())
        .spawn(move || {
            while woken.recv().is_ok() {
                let mut phase = IDLE;
                let mut copied = shared.copied.load(Ordering::Acquire);
                for _ in 0..ROUNDS {
                    match checkpoint(&conn) {
                        // Everything that was in the log when the round began is in the file.
                        Ok(Some((log, now))) if now == log => {
                            // A log started over since the last round counts from its beginning.
                            let round = if now >= copied { now - copied } else { now };
                            copied = now;
                            shared.copied.store(now, Ordering::Release);
                            phase = CAUGHT_UP;
                            if round <= TAIL_PAGES {
                                break;
                            }
                        }
                        // A reader's snapshot held frames back: the writer's next commit asks
                        // again once the log is long enough.
                        Ok(_) => {
                            phase = IDLE;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!("a background checkpoint of the dataset failed: {e}");
                            phase = IDLE;
                            break;
                        }
                    }
                }
                shared.phase.store(phase, Ordering::Release);
            }
        })?;
    Ok(Copier { wake, thread })
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Checkpoints {
        /// Let the copier finish the rounds it was asked for, keeping what it reported.
        fn join_copier(&mut self) {
            if let Some(c) = self.copier.take() {
                drop(c.wake);
                c.thread.join().unwrap();
            }
        }
    }

    fn dataset(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "page_size", 16384).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
        conn.execute_batch("CREATE TABLE t (b BLOB NOT NULL)")
            .unwrap();
        conn
    }

    /// One write transaction of `rows` rows of 16,000 bytes (about a log frame each); the frames in
    /// the log afterwards, as the hook saw them.
    fn write(conn: &Connection, rows: i64) -> i64 {
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO t (b) SELECT zeroblob(16000) FROM n",
            [rows],
        )
        .unwrap();
        WAL_PAGES.with(|p| p.get())
    }

    /// A dataset file in a new folder, with the copier installed on its connection. Bound in this
    /// order, they drop the other way round: the copier stops before the connection closes.
    fn fixture() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        Connection,
        Checkpoints,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let conn = dataset(&path);
        let cp = Checkpoints::install(&conn, &path);
        (dir, path, conn, cp)
    }

    fn size(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn the_copier_copies_the_log_and_the_writer_starts_it_over() {
        let (dir, path, conn, mut cp) = fixture();
        let wal = dir.path().join("d.db-wal");
        // SQLite's own automatic checkpoint is off: the hook took its place.
        let auto: i64 = conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(auto, 0);

        let frames = write(&conn, WAKE_PAGES + 50);
        assert!(frames > WAKE_PAGES, "{frames} frames");
        let before = size(&path);
        cp.after_commit(&conn).unwrap();
        assert_eq!(cp.shared.phase.load(Ordering::Acquire), RUNNING);
        cp.join_copier();
        // The copier's round put every frame of the log into the file.
        assert_eq!(cp.shared.phase.load(Ordering::Acquire), CAUGHT_UP);
        assert_eq!(cp.shared.copied.load(Ordering::Acquire), frames);
        assert!(size(&path) >= before + (WAKE_PAGES as u64) * 16000);
        let log = size(&wal);

        // With every frame in the file, the next transaction starts the log over, and the writer
        // has next to nothing left to copy.
        let restarted = write(&conn, 10);
        assert!(restarted < 50, "the log went on at frame {restarted}");
        cp.after_commit(&conn).unwrap();
        assert_eq!(cp.shared.phase.load(Ordering::Acquire), IDLE);
        assert_eq!(size(&wal), log, "the log grew");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, WAKE_PAGES + 50 + 10);
    }

    /// Whatever tail the copier's rounds left, the writer copies it, so that its next transaction
    /// starts the log over.
    #[test]
    fn the_writer_copies_the_tail_of_the_copiers_rounds() {
        let (_dir, path, conn, mut cp) = fixture();
        let frames = write(&conn, 600);
        assert!(frames >= 600, "{frames} frames");
        // The copier reports it caught up with a log it saw earlier, shorter than this one.
        cp.shared.phase.store(CAUGHT_UP, Ordering::Release);
        cp.shared.copied.store(frames - 500, Ordering::Release);
        let before = size(&path);
        cp.after_commit(&conn).unwrap();
        assert_eq!(cp.shared.phase.load(Ordering::Acquire), IDLE);
        assert!(cp.copier.is_none());
        assert!(size(&path) >= before + 590 * 16000);
        assert!(write(&conn, 1) < 50);
    }

    /// A reader on an older snapshot (a `report` during the sync) holds frames back: the copier copies
    /// what it may and leaves the rest for a later round, once the reader has moved on.
    #[test]
    fn a_reader_holding_a_snapshot_keeps_its_frames_in_the_log() {
        let (_dir, path, conn, mut cp) = fixture();
        write(&conn, 10);
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let seen: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, 10);

        let frames = write(&conn, WAKE_PAGES + 50);
        cp.after_commit(&conn).unwrap();
        cp.join_copier();
        assert_eq!(cp.shared.phase.load(Ordering::Acquire), IDLE);
        // The reader still sees its snapshot, and nothing was lost for the writer either.
        let still: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(still, 10);
        reader.execute_batch("COMMIT").unwrap();

        // The next commit past the threshold wakes the copier again, and this time it catches up.
        let more = write(&conn, 1);
        assert!(more > frames, "{more} frames after {frames}");
        cp.after_commit(&conn).unwrap();
        cp.join_copier();
        assert_eq!(cp.shared.phase.load(Ordering::Acquire), CAUGHT_UP);
        assert_eq!(cp.shared.copied.load(Ordering::Acquire), more);
        let rows: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 10 + WAKE_PAGES + 50 + 1);
    }

    /// Far behind (here: no copier at all), the writer copies the log itself, as SQLite would.
    #[test]
    fn a_copier_far_behind_leaves_the_copy_to_the_writer() {
        let (_dir, path, conn, mut cp) = fixture();
        cp.shared.phase.store(RUNNING, Ordering::Release);
        let frames = write(&conn, WRITER_PAGES + 10);
        let before = size(&path);
        cp.after_commit(&conn).unwrap();
        assert!(cp.copier.is_none());
        assert!(size(&path) >= before + (frames as u64) * 15000);
        // Every frame is in the file now: the next transaction starts the log over.
        assert!(write(&conn, 1) < 50);
    }
}
