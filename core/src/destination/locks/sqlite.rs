//! The SQLite side: rows in `growthflow_locks`.

use super::*;

/// A lock row as stored.
struct Row {
    run_id: String,
    host: String,
    pid: i64,
    since: String,
    expires: String,
}

impl Row {
    fn holder(self) -> LockHolder {
        LockHolder {
            run_id: self.run_id,
            host: self.host,
            pid: self.pid,
            since: self.since,
        }
    }

    /// Why the lock may be taken from its holder, if it may.
    fn stale(&self, owner: &RunOwner, now: DateTime<Utc>) -> Option<&'static str> {
        if self.run_id == owner.run_id {
            return Some("left by this run");
        }
        let expired = DateTime::parse_from_rfc3339(&self.expires)
            .map(|t| t.with_timezone(&Utc) <= now)
            .unwrap_or(true);
        if expired {
            return Some("its heartbeat stopped");
        }
        if self.host == owner.host && self.pid == i64::from(owner.pid) && !is_live(&self.run_id) {
            return Some("its run in this process is over");
        }
        if self.host == owner.host && self.pid != i64::from(owner.pid) && process_is_gone(self.pid)
        {
            return Some("its process is gone");
        }
        None
    }
}

/// The lock connection to a dataset file that exists already.
pub(super) fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(30))?;
    // Heartbeats commit a page or two; with SQLite's default automatic checkpoint, the one that
    // found the log past 1,000 pages (a sync writing beside it) copied the whole log into the file
    // on the heartbeat's thread. The dataset's own connection copies the log as it grows (its
    // checkpoint thread), and whichever connection closes last copies the rest.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

fn row(conn: &Connection, key: &str) -> Result<Option<Row>> {
    Ok(conn
        .query_row(
            "SELECT run_id, host, pid, since, expires FROM growthflow_locks WHERE source = ?1",
            [key],
            |r| {
                Ok(Row {
                    run_id: r.get(0)?,
                    host: r.get(1)?,
                    pid: r.get(2)?,
                    since: r.get(3)?,
                    expires: r.get(4)?,
                })
            },
        )
        .optional()?)
}

/// Take `key` for `owner` unless a live run holds it (see the module's documentation); the
/// holder when one does.
pub fn try_lock(
    conn: &mut Connection,
    key: &str,
    owner: &RunOwner,
    settings: &LockSettings,
) -> Result<Option<LockHolder>> {
    let now = (settings.wall_clock)();
    // Read first: a live holder is answered without waiting for the write lock, which another
    // run's journey rebuild may hold for a while.
    if let Some(r) = row(conn, key)? {
        if r.stale(owner, now).is_none() {
            return Ok(Some(r.holder()));
        }
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let seen = row(&tx, key)?;
    let replaces = match seen {
        Some(r) => match r.stale(owner, now) {
            None => return Ok(Some(r.holder())),
            Some(why) => {
                tracing::info!(%key, holder = %r.run_id, "taking over a stale lock: {why}");
                Some(r.run_id)
            }
        },
        None => None,
    };
    let expires = now + chrono::Duration::from_std(settings.ttl).unwrap_or(chrono::Duration::MAX);
    // One statement decides: a new row, or the stale row seen above and no other. Another run's
    // row written in between (impossible inside an immediate transaction, but never assumed)
    // is left alone, and this run is told it is held.
    let written = tx.execute(
        "INSERT INTO growthflow_locks (source, run_id, host, pid, since, heartbeat, expires)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
         ON CONFLICT(source) DO UPDATE SET run_id = excluded.run_id, host = excluded.host,
           pid = excluded.pid, since = excluded.since, heartbeat = excluded.heartbeat,
           expires = excluded.expires
         WHERE growthflow_locks.run_id = ?7",
        params![
            key,
            owner.run_id,
            owner.host,
            owner.pid,
            stamp(now),
            stamp(expires),
            replaces
        ],
    )?;
    if written == 0 {
        let holder = row(&tx, key)?.map(Row::holder);
        return Ok(Some(holder.unwrap_or_else(unknown_holder)));
    }
    tx.commit()?;
    Ok(None)
}

/// Move `owner`'s rows' heartbeat and expiry forward; the keys it still holds.
pub fn heartbeat(
    conn: &mut Connection,
    owner: &RunOwner,
    settings: &LockSettings,
) -> Result<Vec<String>> {
    let now = (settings.wall_clock)();
    let expires = now + chrono::Duration::from_std(settings.ttl).unwrap_or(chrono::Duration::MAX);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "UPDATE growthflow_locks SET heartbeat = ?2, expires = ?3 WHERE run_id = ?1",
        params![owner.run_id, stamp(now), stamp(expires)],
    )?;
    let keys = {
        let mut stmt = tx.prepare("SELECT source FROM growthflow_locks WHERE run_id = ?1")?;
        let keys = stmt
            .query_map([&owner.run_id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        keys
    };
    tx.commit()?;
    Ok(keys)
}

/// Remove `owner`'s row for `key` (a row another run took over stays).
pub fn release(conn: &mut Connection, key: &str, owner: &RunOwner) -> Result<()> {
    conn.execute(
        "DELETE FROM growthflow_locks WHERE source = ?1 AND run_id = ?2",
        params![key, owner.run_id],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock connection leaves checkpoints to the dataset's connection.
    #[test]
    fn the_lock_connection_does_not_checkpoint_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        drop(crate::destination::sqlite::SqliteDestination::open(&path).unwrap());
        let conn = connect(&path).unwrap();
        let pages: i64 = conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pages, 0);
    }
}
