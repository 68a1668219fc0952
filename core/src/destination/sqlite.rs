//! The embedded default destination: one SQLite file holding the contract's tables.
//!
//! Schema changes are numbered migrations applied in order and recorded in `schema_migrations`, so an
//! older dataset is upgraded in place. Writes are batched upserts in one transaction per commit; the
//! journey model is rebuilt inside one transaction, so readers (and `report`) never see half of it.
//! After the first rebuild only the raw records committed or removed since the previous one are
//! mapped again (bookkeeping in the internal `growthflow_*` tables), so a scheduled sync of a large
//! dataset costs what it changed, not what the dataset holds.
//!
//! [`super::postgres`] does the same statement for statement in PostgreSQL's dialect: a change to the
//! migrations, `rebuild`, `unmap_dirty` or `settle_people` here has its twin there (`SETTLE_PEOPLE` is
//! the same list of statements in the same order). The full rebuilds load differently, each the way
//! its store bulk-loads best (`sqlite/full.rs` builds the indexes last, PostgreSQL numbers the orders
//! as it copies them in), and give the same rows: the tests compare the two stores' datasets.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde_json::Value;

use super::{source_type_changed, Destination, RebuildStats, SavedState, SchemaTooNew, WriteBatch};
use crate::model::JourneyMapper;
use crate::time::format_utc;
use crate::{Error, Result};

mod checkpoint;
mod full;
mod rows;
use checkpoint::Checkpoints;
use rows::{map_records, ReadOrder};

/// Numbered schema migrations, applied in order.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_incremental_journey.sql")),
    (3, include_str!("migrations/0003_funnel_daily.sql")),
    (4, include_str!("migrations/0004_source_locks.sql")),
    (5, include_str!("migrations/0005_sync_runs.sql")),
    (6, include_str!("migrations/0006_raw_records_rowid.sql")),
    (7, include_str!("migrations/0007_report_indexes.sql")),
    (8, include_str!("migrations/0008_report_rollups.sql")),
    (9, include_str!("migrations/0009_report_covering.sql")),
    (
        10,
        include_str!("migrations/0010_rollup_triggers_under_upserts.sql"),
    ),
    (11, include_str!("migrations/0011_raw_stage.sql")),
];

/// The page cache of a dataset's connection, in KiB (`PRAGMA cache_size` takes it negated).
const CACHE_KIB: i64 = 8192;

/// The page cache while the journey model is rebuilt (see `rebuild_journey`).
const REBUILD_CACHE_KIB: i64 = 4096;

/// A SQLite dataset.
#[derive(Debug)]
pub struct SqliteDestination {
    /// The log's checkpoints, for a dataset file (an in-memory one has no log). Declared before the
    /// connection so that it is dropped first: a run that ends without `close` stops the copier
    /// before the writing connection closes, and that connection, closing last, copies the rest of
    /// the log into the file as SQLite does.
    checkpoints: Option<Box<Checkpoints>>,
    conn: Connection,
}

impl SqliteDestination {
    /// Open (creating if needed) the dataset at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::destination(format!(
                    "cannot create the dataset folder {}: {e}",
                    dir.display()
                ))
            })?;
        }
        create_private(path)?;
        let conn = Connection::open(path)?;
        let mut me = Self::from_connection(conn)?;
        me.checkpoints = Some(Box::new(Checkpoints::install(&me.conn, path)));
        Ok(me)
    }

    /// An in-memory dataset (tests, library experiments).
    pub fn in_memory() -> Result<Self> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // 16 KiB pages, for a new file only (an existing one keeps its page size, and the setting
        // must come before WAL is switched on): raw records are 1-3 KB of JSON, so a 4 KiB page held
        // one of them and wasted the rest, and a sync wrote a page per record; now a page takes
        // several. Reports read fewer, larger pages too.
        conn.pragma_update(None, "page_size", 16384)?;
        // Write-ahead log: a commit appends its pages to the log instead of rewriting the file, and
        // readers (a `report` during a sync) are not blocked by the writer.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // In WAL mode NORMAL syncs the log at checkpoints, not at every commit: a commit survives the
        // process crashing or being killed (what resume relies on); only a power loss or OS crash
        // can take back the last commits, and never corrupts the file. The state committed with the
        // records is taken back with them, so a resumed sync reads them again.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // An 8 MiB page cache (the default is 2 MiB): the B-tree interior pages and the key indexes
        // of a large dataset stay in memory, so an upsert no longer reads its path from the file
        // each time. Bounded, so a sync's memory stays small whatever the dataset's size (the
        // operating system's file cache holds the rest).
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        // Sorts and DISTINCTs too big for the page cache (the report's over a large window, the
        // rebuild's) go to memory, not to temporary files: 3x faster in docs/performance.md.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let mut me = SqliteDestination {
            checkpoints: None,
            conn,
        };
        me.migrate()?;
        Ok(me)
    }

    /// After a write transaction: the log's checkpoint, if one is due (see `checkpoint`).
    fn after_commit(&mut self) -> Result<()> {
        match &mut self.checkpoints {
            Some(c) => c.after_commit(&self.conn),
            None => Ok(()),
        }
    }

    /// The connection, for reading (the report) and tests.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Apply every known migration the dataset has not recorded yet, in version order. A gap in the
    /// numbering is fine, and so is a dataset that got a later version before an earlier one (two
    /// branches each adding one): what is missing is applied, whatever came first.
    fn migrate(&mut self) -> Result<()> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )?;
        let applied: Vec<i64> = self
            .conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let current = applied.last().copied().unwrap_or(0);
        let known = MIGRATIONS.iter().map(|(v, _)| *v).max().unwrap_or(0);
        if current > known {
            return Err(Error::Destination(Box::new(SchemaTooNew {
                found: current,
                supported: known,
            })));
        }
        // Every known version not recorded yet, in order (not only those above the highest
        // recorded): migrations developed side by side may land in either order. Several runs may
        // open a new (or older) file at once (workers started together): the write lock first, then
        // the recorded versions again, so each migration is applied by one of them.
        let recorded: Vec<i64> = self
            .conn
            .prepare("SELECT version FROM schema_migrations")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| !recorded.contains(v)) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let applied: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [version],
                |r| r.get(0),
            )?;
            if applied {
                continue;
            }
            tx.execute_batch(sql)?;
            if *version == 8 {
                crate::report::rollup::refresh_sqlite(&tx)?; // Fills the rollups it added.
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, format_utc(Utc::now())],
            )?;
            tx.commit()?;
            tracing::info!(version, "dataset schema migrated");
        }
        Ok(())
    }
}

/// Create the dataset file readable by its owner only (0600) if it does not exist yet: it holds
/// customers' emails and orders. SQLite gives the `-wal` and `-shm` files the database file's
/// permissions, so they are owner-only too. An existing file keeps the permissions it has.
fn create_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Error::destination(format!(
                    "cannot create the dataset {}: {e}",
                    path.display()
                )))
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// `synced_at` and the rebuild watermark: RFC 3339 UTC with a fixed six-digit fraction, so that text
/// order is time order and a rebuild in the same second as a commit still tells them apart. (A
/// whole-second `synced_at` of an older dataset sorts after every fraction of its second, so at worst
/// such a record is mapped once more.)
fn stamp() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl Destination for SqliteDestination {
    fn register_source(&mut self, source: &str, source_type: &str) -> Result<()> {
        let known: Option<String> = self
            .conn
            .query_row(
                "SELECT type FROM growthflow_sources WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?;
        match known {
            Some(was) if was != source_type => Err(source_type_changed(source, &was, source_type)),
            Some(_) => Ok(()),
            None => {
                self.conn.execute(
                    "INSERT INTO growthflow_sources (source, type) VALUES (?1, ?2)
                     ON CONFLICT(source) DO NOTHING",
                    params![source, source_type],
                )?;
                Ok(())
            }
        }
    }

    fn saved_states(&mut self, source: Option<&str>) -> Result<Vec<SavedState>> {
        let mut stmt = self.conn.prepare(
            "SELECT s.source, g.type, s.stream, s.state, s.updated_at
             FROM sync_state s LEFT JOIN growthflow_sources g ON g.source = s.source
             WHERE ?1 IS NULL OR s.source = ?1
             ORDER BY s.source, s.stream",
        )?;
        let rows = stmt
            .query_map([source], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, String>(3)?,
                    r.get(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<(String, Option<String>, String, String, String)>>>()?;
        rows.into_iter()
            .map(|(source, source_type, stream, state, updated_at)| {
                Ok(SavedState {
                    source,
                    source_type,
                    stream,
                    state: serde_json::from_str(&state)?,
                    updated_at,
                })
            })
            .collect()
    }

    fn reset_state(&mut self, source: &str, stream: Option<&str>) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed = tx.execute(
            "DELETE FROM sync_state WHERE source = ?1 AND (?2 IS NULL OR stream = ?2)",
            params![source, stream],
        )?;
        if stream.is_none() {
            tx.execute("DELETE FROM growthflow_sources WHERE source = ?1", [source])?;
        }
        tx.commit()?;
        Ok(removed as u64)
    }

    fn close(&mut self) -> Result<()> {
        // TRUNCATE: every committed page is copied into the `.db` file and the log emptied, once the
        // copier's round is done.
        if let Some(c) = &mut self.checkpoints {
            c.stop();
        }
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn load_state(&mut self, source: &str, stream: &str) -> Result<Option<Value>> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT state FROM sync_state WHERE source = ?1 AND stream = ?2",
                params![source, stream],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match text {
            Some(t) => Some(serde_json::from_str(&t)?),
            None => None,
        })
    }

    fn commit(&mut self, batches: &[WriteBatch]) -> Result<()> {
        // The write lock first, then the time: `synced_at` then orders commits and rebuilds correctly
        // even across processes, which the incremental rebuild's watermark relies on.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = stamp();
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO raw_records (source, stream, record_id, cursor_value, payload, synced_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(source, stream, record_id) DO UPDATE SET
                   cursor_value = excluded.cursor_value,
                   payload = excluded.payload,
                   synced_at = excluded.synced_at",
            )?;
            let mut state = tx.prepare_cached(
                "INSERT INTO sync_state (source, stream, state, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(source, stream) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            )?;
            let mut removed = tx.prepare_cached(
                "INSERT OR IGNORE INTO growthflow_removed (source, stream, record_id)
                 SELECT source, stream, record_id FROM raw_records
                 WHERE source = ?1 AND stream = ?2 AND cursor_value = ?3",
            )?;
            let mut replace = tx.prepare_cached(
                "DELETE FROM raw_records WHERE source = ?1 AND stream = ?2 AND cursor_value = ?3",
            )?;
            for b in batches {
                if let Some(partition) = &b.replaces {
                    removed.execute(params![b.source, b.stream, partition])?;
                    replace.execute(params![b.source, b.stream, partition])?;
                }
                for r in &b.records {
                    // The record's text as the platform sent it: nothing to print.
                    upsert.execute(params![
                        b.source,
                        b.stream,
                        r.id,
                        r.cursor,
                        r.payload.as_str(),
                        now
                    ])?;
                }
                if let Some(s) = &b.state {
                    state.execute(params![b.source, b.stream, serde_json::to_string(s)?, now])?;
                }
            }
        }
        tx.commit()?;
        self.after_commit()
    }

    fn rebuild_journey(&mut self, mappers: &[Arc<dyn JourneyMapper>]) -> Result<RebuildStats> {
        let by_type: HashMap<&str, &Arc<dyn JourneyMapper>> =
            mappers.iter().map(|m| (m.source_type(), m)).collect();
        // Temporary storage on disk for the rebuild: with `temp_store = MEMORY` SQLite keeps each
        // statement's journal (the old content of every page a statement changes, for rolling it
        // back alone) in memory with no bound, and the rebuild's UPDATEs over every order and order
        // event of a full rebuild held tens of megabytes that way (docs/performance.md, "Memory").
        // As files, the journals and the large sorts spill past a small buffer to the operating
        // system's file cache. The setting can only change outside a transaction, and changing it
        // drops the temporary tables, which the rebuild creates as it needs them; the report keeps
        // its in-memory sorts.
        self.conn.pragma_update(None, "temp_store", "FILE")?;
        // A 4 MiB page cache for the rebuild, not the sync's 8 MiB: its statements now read their
        // tables in order (the full rebuild builds the indexes last), so a bigger cache saves little,
        // while each sort and index build keeps up to a cache's worth in memory before it spills. At
        // 100,000 orders: peak RSS 47-49 MiB → 43-45 MiB, the rebuild 0.1-0.3 s slower
        // (docs/performance.md, "The sync's memory").
        self.conn
            .pragma_update(None, "cache_size", -REBUILD_CACHE_KIB)?;
        let result = (|| -> Result<RebuildStats> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stats = rebuild(&tx, &by_type)?;
            tx.commit()?;
            Ok(stats)
        })();
        let cache = self.conn.pragma_update(None, "cache_size", -CACHE_KIB);
        let restored = self
            .conn
            .pragma_update(None, "temp_store", "MEMORY")
            .and(cache);
        let stats = result?;
        restored?;
        self.after_commit()?;
        Ok(stats)
    }

    fn record_run_start(&mut self, run: &crate::runs::RunStart) -> Result<()> {
        super::runs::sqlite::record_start(&mut self.conn, run)
    }

    fn record_run_end(&mut self, end: &crate::runs::RunEnd) -> Result<()> {
        super::runs::sqlite::record_end(&mut self.conn, end)
    }

    fn recent_runs(
        &mut self,
        limit: usize,
        sources: &[String],
    ) -> Result<Vec<crate::runs::RunSummary>> {
        super::runs::sqlite::recent_runs(&mut self.conn, limit, sources)
    }
}

/// What decides whether an incremental rebuild is valid: growthflow's version (mappers change with
/// it), the mapped connector types and every source's type. Any change rebuilds everything.
fn fingerprint(
    tx: &Transaction<'_>,
    mappers: &HashMap<&str, &Arc<dyn JourneyMapper>>,
) -> Result<String> {
    let mut types: Vec<&str> = mappers.keys().copied().collect();
    types.sort_unstable();
    let sources: Vec<String> = tx
        .prepare("SELECT source || '=' || type FROM growthflow_sources ORDER BY source")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(format!(
        "growthflow {}; mappers {}; sources {}",
        env!("CARGO_PKG_VERSION"),
        types.join(","),
        sources.join(",")
    ))
}

/// Rebuild the journey model. The first rebuild, and any after the sources or mappers changed, maps
/// every raw record; later ones map only the records committed (or removed) since the previous
/// rebuild — taking out what their earlier versions put in — and then recompute the cross-record
/// facts (order numbering, repeat-order stages, customers) for the people those records touch. Both
/// give the same rows; the tests hold one against the other.
fn rebuild(
    tx: &Transaction<'_>,
    mappers: &HashMap<&str, &Arc<dyn JourneyMapper>>,
) -> Result<RebuildStats> {
    let started = stamp();
    let fingerprint = fingerprint(tx, mappers)?;
    let previous: Option<(String, String)> = tx
        .query_row(
            "SELECT fingerprint, watermark FROM growthflow_journey WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS dirty (source TEXT, stream TEXT, record_id TEXT,
            PRIMARY KEY (source, stream, record_id)) WITHOUT ROWID;
         CREATE TEMP TABLE IF NOT EXISTS affected (customer_id TEXT PRIMARY KEY) WITHOUT ROWID;
         DELETE FROM temp.dirty; DELETE FROM temp.affected;",
    )?;
    let mut stats = RebuildStats::default();
    let mut set_aside = None;
    let full = !matches!(&previous, Some((fp, _)) if *fp == fingerprint);
    match previous {
        Some((fp, watermark)) if fp == fingerprint => {
            tx.execute_batch(
                "INSERT OR IGNORE INTO temp.dirty SELECT source, stream, record_id FROM growthflow_removed;",
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO temp.dirty
                 SELECT source, stream, record_id FROM raw_records WHERE synced_at >= ?1",
                [watermark],
            )?;
            unmap_dirty(tx)?;
            map_records(
                tx,
                mappers,
                "SELECT r.source, s.type, r.stream, r.record_id, r.payload
                 FROM temp.dirty d
                 JOIN raw_records r ON r.source = d.source AND r.stream = d.stream
                                   AND r.record_id = d.record_id
                 JOIN growthflow_sources s ON s.source = r.source
                 ORDER BY r.source, r.stream, r.record_id",
                ReadOrder::Key,
                &mut stats,
            )?;
        }
        _ => {
            let aside = full::empty_tables(tx)?;
            map_records(
                tx,
                mappers,
                "SELECT r.source, s.type, r.stream, r.record_id, r.payload
                 FROM raw_records r JOIN growthflow_sources s ON s.source = r.source
                 ORDER BY r.rowid",
                ReadOrder::Stored,
                &mut stats,
            )?;
            set_aside = Some(aside);
        }
    }
    name_klaviyo_campaigns(tx, full)?;
    settle_people(tx, full)?;
    // The report's rollups: of what changed, or all of them after a full rebuild, which then puts
    // back the indexes and triggers it set aside.
    if let Some(aside) = set_aside {
        crate::report::rollup::refresh_all_sqlite(tx)?;
        full::restore(tx, aside)?;
    } else {
        crate::report::rollup::refresh_sqlite(tx)?;
    }
    tx.execute("DELETE FROM growthflow_removed", [])?;
    tx.execute(
        "INSERT INTO growthflow_journey (id, fingerprint, watermark) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET fingerprint = excluded.fingerprint, watermark = excluded.watermark",
        params![fingerprint, started],
    )?;
    let total = |table: &str| -> Result<u64> {
        Ok(tx.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
    };
    stats.orders = total("orders")?;
    stats.events = total("journey_events")?;
    stats.customers = total("customers")?;
    Ok(stats)
}

/// Take out what the records in `temp.dirty` put into the model, noting the people it concerned.
///
/// Every join is a `CROSS JOIN`, which SQLite reads as "the left side is the outer loop": it has no
/// statistics for a temporary table, and planned the first statement as every order of the source
/// looked up in each dirty record's list, and three others as scans of every derived row. At 100,000
/// orders a sync with nothing new (28 records) rebuilt for 1.4 s that way, and 2,000 changed records
/// for 35 s; a few records' rows take milliseconds.
fn unmap_dirty(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(
        "INSERT OR IGNORE INTO temp.affected
           SELECT o.customer_id FROM temp.dirty t
           CROSS JOIN growthflow_derived d ON d.source = t.source AND d.stream = t.stream
                                          AND d.record_id = t.record_id
           CROSS JOIN json_each(d.orders) j
           CROSS JOIN orders o ON o.source = d.source AND o.order_id = j.value
           WHERE o.customer_id IS NOT NULL;
         INSERT OR IGNORE INTO temp.affected
           SELECT e.customer_id FROM temp.dirty t
           CROSS JOIN growthflow_derived d ON d.source = t.source AND d.stream = t.stream
                                          AND d.record_id = t.record_id
           CROSS JOIN json_each(d.events) j
           CROSS JOIN journey_events e ON e.event_id = j.value
           WHERE e.customer_id IS NOT NULL;
         INSERT OR IGNORE INTO temp.affected
           SELECT p.customer_id FROM temp.dirty t
           CROSS JOIN growthflow_people p ON p.source = t.source AND p.stream = t.stream
                                         AND p.record_id = t.record_id;
         DELETE FROM journey_events WHERE event_id IN (
           SELECT j.value FROM temp.dirty t
           CROSS JOIN growthflow_derived d ON d.source = t.source AND d.stream = t.stream
                                          AND d.record_id = t.record_id
           CROSS JOIN json_each(d.events) j);
         DELETE FROM orders WHERE (source, order_id) IN (
           SELECT d.source, j.value FROM temp.dirty t
           CROSS JOIN growthflow_derived d ON d.source = t.source AND d.stream = t.stream
                                          AND d.record_id = t.record_id
           CROSS JOIN json_each(d.orders) j);
         DELETE FROM growthflow_people WHERE (source, stream, record_id) IN (
           SELECT source, stream, record_id FROM temp.dirty);
         DELETE FROM growthflow_derived WHERE (source, stream, record_id) IN (
           SELECT source, stream, record_id FROM temp.dirty);",
    )?;
    Ok(())
}

/// Recompute what depends on more than one record for the people in `temp.affected`: the numbering
/// of each person's valid orders across every store by creation time, which order events are repeat
/// orders (retention) rather than first ones, and the `customers` rows.
///
/// After a full rebuild every person is affected (the mapping does not list them), so `full`
/// reads every row that names a person instead of probing `temp.affected` for each, and the orders,
/// all written without a number, are numbered without comparing the old one.
fn settle_people(tx: &Transaction<'_>, full: bool) -> Result<()> {
    let affected = |col: &str| {
        if full {
            format!("{col} IS NOT NULL")
        } else {
            format!("{col} IN (SELECT customer_id FROM temp.affected)")
        }
    };
    restage_klaviyo_orders(tx, &affected("customer_id"))?;
    refund_currencies(tx)?;
    // The orders' numbering goes into a key-ordered table, written in key order: one B-tree appended
    // to instead of a row table and its key index filled at random (this step of a full rebuild of
    // 100,000 orders: 2.05 s → 1.64 s).
    tx.execute_batch(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS order_index (source TEXT, order_id TEXT, idx INTEGER,
            PRIMARY KEY (source, order_id)) WITHOUT ROWID;
         DELETE FROM temp.order_index;
         INSERT INTO temp.order_index
           SELECT source, order_id,
                  ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY created_at, source, order_id)
           FROM orders
           WHERE cancelled = 0 AND test = 0 AND {orders}
           ORDER BY source, order_id;",
        orders = affected("customer_id"),
    ))?;
    // Only the rows whose number or stage changes are written: an unchanged row rewritten costs its
    // page and, for an order, its entries in the indexes that hold the number.
    let number = if full {
        // Every order was written without a number: only the numbered ones change.
        "UPDATE orders SET customer_order_index = i.idx
         FROM temp.order_index i WHERE i.source = orders.source AND i.order_id = orders.order_id;"
            .to_string()
    } else {
        format!(
            "UPDATE orders SET customer_order_index = (
               SELECT idx FROM temp.order_index i
               WHERE i.source = orders.source AND i.order_id = orders.order_id)
             WHERE {orders} AND customer_order_index IS NOT (
               SELECT idx FROM temp.order_index i
               WHERE i.source = orders.source AND i.order_id = orders.order_id);",
            orders = affected("customer_id"),
        )
    };
    let stage = "CASE WHEN EXISTS (
             SELECT 1 FROM temp.order_index i
             WHERE i.source = journey_events.source
               AND i.order_id = json_extract(journey_events.attributes, '$.order_id')
               AND i.idx >= 2) THEN 'retention' ELSE 'conversion' END";
    tx.execute_batch(&number)?;
    // A row is written only if its stage is not the one computed, so a conversion becomes a
    // retention and the other way round: the new stage is the old one swapped, and only a stage of
    // neither kind needs the probe again (the repeat-order events of a full rebuild were probed
    // twice, once to find them and once to set them).
    tx.execute_batch(&format!(
        "UPDATE journey_events SET stage = CASE stage WHEN 'conversion' THEN 'retention'
                                                WHEN 'retention' THEN 'conversion' ELSE {stage} END
         WHERE event_type = 'order' AND {events} AND stage IS NOT {stage};",
        events = affected("customer_id"),
    ))?;
    // Each person's row from one sort of every row that names them: a person's first sighting is
    // the earliest time of all of them, their valid orders counted and summed from the order rows.
    // (Reduced per table first, then per person, the same rows took three sorts and a fourth of the
    // reduced rows, and a join: 0.85 s against 0.31 s at 100,000 orders.)
    tx.execute_batch(&format!(
        "DELETE FROM customers WHERE {customers};
         INSERT INTO customers (customer_id, email, first_seen_at, first_order_at, orders_count, total_spent)
           SELECT customer_id, customer_id, MIN(seen_at), MIN(first_order_at), SUM(valid),
                  COALESCE(SUM(spent), 0)
           FROM (SELECT customer_id, created_at AS seen_at,
                        CASE WHEN cancelled = 0 AND test = 0 THEN created_at END AS first_order_at,
                        cancelled = 0 AND test = 0 AS valid,
                        CASE WHEN cancelled = 0 AND test = 0 THEN total_price END AS spent
                 FROM orders WHERE {orders}
                 UNION ALL
                 SELECT customer_id, occurred_at, NULL, 0, NULL FROM journey_events WHERE {events}
                 UNION ALL
                 SELECT customer_id, seen_at, NULL, 0, NULL FROM growthflow_people WHERE {people})
           GROUP BY customer_id;
         DELETE FROM temp.order_index; DELETE FROM temp.affected; DELETE FROM temp.dirty;",
        customers = affected("customer_id"),
        orders = affected("customer_id"),
        events = affected("customer_id"),
        people = affected("customer_id"),
    ))?;
    Ok(())
}

/// A refund record that does not carry its currency (WooCommerce's global refunds) takes its order's:
/// a refund is money in the currency of the order it pays back. Only events still without one are
/// touched, so this costs what is missing, and a refund read before its order is filled in by the
/// rebuild that maps the order.
fn refund_currencies(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(
        "UPDATE journey_events SET currency = (
             SELECT o.currency FROM orders o
             WHERE o.source = journey_events.source
               AND o.order_id = CAST(json_extract(journey_events.attributes, '$.order_id') AS TEXT))
         WHERE event_type = 'refund' AND currency IS NULL;",
    )?;
    Ok(())
}

/// Klaviyo "Placed Order" events are staged like store orders: a person's first placed order in a
/// Klaviyo source is `conversion`, every later one `retention`. The ordinal counts that source's
/// `placed_order` events of the person by `occurred_at` (ties by `event_id`); events without a person
/// stay `conversion`. Recomputed for the people in `temp.affected` (every person named after a full
/// rebuild, see [`settle_people`]), like the store orders' stages: numbered in one pass rather than
/// probed per event (a full rebuild has no index to probe by yet), and only the events whose stage
/// changes are written.
fn restage_klaviyo_orders(tx: &Transaction<'_>, affected: &str) -> Result<()> {
    tx.execute_batch(&format!(
        "UPDATE journey_events SET stage = s.stage
         FROM (SELECT event_id,
                      CASE WHEN ROW_NUMBER() OVER (PARTITION BY source, customer_id
                                                   ORDER BY occurred_at, event_id) = 1
                           THEN 'conversion' ELSE 'retention' END AS stage
               FROM journey_events
               WHERE event_type = 'placed_order' AND {affected}) s
         WHERE journey_events.event_id = s.event_id AND journey_events.stage IS NOT s.stage;"
    ))?;
    Ok(())
}

/// Klaviyo events carry ids (campaign, campaign or flow message, flow); their `campaign` becomes the
/// name of the synced `campaigns` or `flows` record of the same source they point at: the campaign by
/// id, else the campaign whose messages include the message, else the flow by id; else the event's own
/// "Campaign Name", else the message id, else the campaign or flow id (the mapper's fallback, in the
/// same order). A full rebuild names every Klaviyo email and placed-order event; an incremental one
/// those of the records it mapped again, and all of a source's when its campaigns or flows changed.
fn name_klaviyo_campaigns(tx: &Transaction<'_>, full: bool) -> Result<()> {
    // Every statement below is about Klaviyo sources' rows: without one there is nothing to name,
    // and the scans of the raw records and events would cost a full rebuild of a store a third of a
    // second for nothing.
    let klaviyo: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM growthflow_sources WHERE type = 'klaviyo')",
        [],
        |r| r.get(0),
    )?;
    if !klaviyo {
        return Ok(());
    }
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS klaviyo_names (source TEXT, kind TEXT, id TEXT, name TEXT,
            PRIMARY KEY (source, kind, id)) WITHOUT ROWID;
         DELETE FROM temp.klaviyo_names;
         INSERT OR IGNORE INTO temp.klaviyo_names
           SELECT r.source, 'campaign', r.record_id, trim(json_extract(r.payload, '$.attributes.name'))
           FROM raw_records r JOIN growthflow_sources s ON s.source = r.source AND s.type = 'klaviyo'
           WHERE r.stream = 'campaigns';
         INSERT OR IGNORE INTO temp.klaviyo_names
           SELECT r.source, 'message', json_extract(m.value, '$.id'),
                  trim(json_extract(r.payload, '$.attributes.name'))
           FROM raw_records r JOIN growthflow_sources s ON s.source = r.source AND s.type = 'klaviyo'
           JOIN json_each(r.payload, '$.relationships.\"campaign-messages\".data') m
           WHERE r.stream = 'campaigns';
         INSERT OR IGNORE INTO temp.klaviyo_names
           SELECT r.source, 'flow', r.record_id, trim(json_extract(r.payload, '$.attributes.name'))
           FROM raw_records r JOIN growthflow_sources s ON s.source = r.source AND s.type = 'klaviyo'
           WHERE r.stream = 'flows';
         DELETE FROM temp.klaviyo_names WHERE id IS NULL OR name IS NULL OR name = '';",
    )?;
    // Only the events whose name changes are written (as PostgreSQL's twin does): an incremental
    // rebuild after a campaign or flow record was synced again renames every event of its source,
    // and most keep the name they have.
    tx.execute(
        "UPDATE journey_events SET campaign = s.campaign
         FROM (SELECT j.rowid AS rid, COALESCE(
                 (SELECT n.name FROM temp.klaviyo_names n WHERE n.source = j.source
                    AND n.kind = 'campaign' AND n.id = json_extract(j.attributes, '$.campaign')),
                 (SELECT n.name FROM temp.klaviyo_names n WHERE n.source = j.source
                    AND n.kind = 'message' AND n.id = json_extract(j.attributes, '$.message')),
                 (SELECT n.name FROM temp.klaviyo_names n WHERE n.source = j.source
                    AND n.kind = 'message' AND n.id = json_extract(j.attributes, '$.campaign')),
                 (SELECT n.name FROM temp.klaviyo_names n WHERE n.source = j.source
                    AND n.kind = 'flow' AND n.id = json_extract(j.attributes, '$.flow')),
                 json_extract(j.attributes, '$.campaign_name'),
                 json_extract(j.attributes, '$.message'),
                 json_extract(j.attributes, '$.campaign'),
                 json_extract(j.attributes, '$.flow')) AS campaign
               FROM journey_events j
               WHERE j.event_type IN ('email_received', 'email_opened', 'email_clicked', 'placed_order')
                 AND j.source IN (SELECT source FROM growthflow_sources WHERE type = 'klaviyo')
                 AND (?1
                      OR j.source IN (SELECT source FROM temp.dirty WHERE stream IN ('campaigns', 'flows'))
                      OR j.event_id IN (
                          SELECT v.value FROM temp.dirty t
                          JOIN growthflow_derived d ON d.source = t.source AND d.stream = t.stream
                                                   AND d.record_id = t.record_id
                          JOIN json_each(d.events) v))) s
         WHERE journey_events.rowid = s.rid AND journey_events.campaign IS NOT s.campaign",
        [full],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rebuild's smaller cache and file-backed temporary storage are its own: the connection
    /// keeps the sync's and the report's settings afterwards, whether the rebuild worked or not.
    #[test]
    fn a_dataset_file_is_opened_with_the_write_path_settings() {
        let dir = tempfile::tempdir().unwrap();
        let dest = SqliteDestination::open(&dir.path().join("d.db")).unwrap();
        let c = dest.connection();
        let pragma = |name: &str| -> String {
            c.query_row(&format!("PRAGMA {name}"), [], |r| {
                r.get::<_, rusqlite::types::Value>(0)
            })
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap()
        };
        assert_eq!(pragma("journal_mode"), "wal");
        assert_eq!(pragma("synchronous"), "1");
        assert_eq!(pragma("page_size"), "16384");
        // SQLite's automatic checkpoint gave way to the copier's hook (`checkpoint`).
        assert_eq!(pragma("wal_autocheckpoint"), "0");
    }

    /// A sync that writes more than the log holds before the copier is woken: every record is in the
    /// file after the run, the log is empty, and the next run finds them all.
    #[test]
    fn records_past_the_copiers_threshold_are_all_in_the_file_after_the_run() {
        past_the_copiers_threshold(true);
    }

    /// The same when the run ends without `close` (a library user who drops the destination).
    #[test]
    fn records_past_the_copiers_threshold_survive_a_drop_without_close() {
        past_the_copiers_threshold(false);
    }

    fn past_the_copiers_threshold(close: bool) {
        use crate::connector::Record;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let mut dest = SqliteDestination::open(&path).unwrap();
        dest.register_source("s", "shop").unwrap();
        let pad = "x".repeat(12_000);
        // 3,000 records of 12 KB in 30 commits: about 36 MB, past the 32 MiB that wakes the copier.
        for commit in 0..30 {
            let records = (0..100)
                .map(|i| Record {
                    id: format!("{commit:02}-{i:03}"),
                    cursor: None,
                    payload: serde_json::json!({"n": commit * 100 + i, "pad": pad}).into(),
                })
                .collect();
            dest.commit(&[WriteBatch {
                source: "s".into(),
                stream: "orders".into(),
                records,
                state: Some(serde_json::json!({"commit": commit})),
                replaces: None,
            }])
            .unwrap();
        }
        assert!(
            dest.checkpoints.as_ref().unwrap().started(),
            "the copier was never woken"
        );
        if close {
            dest.close().unwrap();
        }
        drop(dest);
        // Emptied by the run's last checkpoint (or the closing connection's), then removed by SQLite
        // as the last connection closed.
        let log = std::fs::metadata(dir.path().join("d.db-wal")).map_or(0, |m| m.len());
        assert_eq!(log, 0);
        assert!(std::fs::metadata(&path).unwrap().len() > 36_000_000);

        let mut again = SqliteDestination::open(&path).unwrap();
        let (count, sum): (i64, i64) = again
            .connection()
            .query_row(
                "SELECT count(*), sum(json_extract(payload, '$.n')) FROM raw_records",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((count, sum), (3000, (0..3000).sum::<i64>()));
        assert_eq!(
            again.load_state("s", "orders").unwrap(),
            Some(serde_json::json!({"commit": 29}))
        );
    }

    #[test]
    fn a_rebuild_puts_the_page_cache_and_temp_store_back() {
        let mut dest = SqliteDestination::in_memory().unwrap();
        let settings = |d: &SqliteDestination| -> (i64, i64) {
            let c = d.connection();
            (
                c.query_row("PRAGMA cache_size", [], |r| r.get(0)).unwrap(),
                c.query_row("PRAGMA temp_store", [], |r| r.get(0)).unwrap(),
            )
        };
        assert_eq!(settings(&dest), (-CACHE_KIB, 2));
        dest.rebuild_journey(&[]).unwrap();
        assert_eq!(settings(&dest), (-CACHE_KIB, 2));
        // A rebuild that fails (the dataset is read-only to it) puts them back too.
        dest.connection()
            .execute_batch("PRAGMA query_only = ON")
            .unwrap();
        assert!(dest.rebuild_journey(&[]).is_err());
        assert_eq!(settings(&dest), (-CACHE_KIB, 2));
    }
}
