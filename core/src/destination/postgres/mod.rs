//! A PostgreSQL warehouse destination: the contract's tables in one schema of a PostgreSQL database, so
//! BI tools read the journey model where the rest of the warehouse lives.
//!
//! It mirrors [`super::sqlite`] statement for statement — same tables and columns, same bookkeeping,
//! same incremental journey rebuild — in PostgreSQL's dialect and types (`NUMERIC` money, `TIMESTAMPTZ`
//! times, `DATE` dates, `BOOLEAN` flags, `JSONB` payloads). What differs is how rows get there:
//! commits and the rebuild's orders/events are sent with binary `COPY` into temporary tables and
//! upserted from there, and the raw records are streamed through a cursor so a rebuild holds one page
//! of them in memory, never the dataset.
//!
//! Concurrency: migrations run in one transaction under an advisory lock (two first runs cannot race),
//! and commits and rebuilds take a second advisory lock before reading the server's clock, the
//! equivalent of SQLite's write lock: `synced_at` then orders commits and rebuilds correctly, which the
//! incremental rebuild's watermark relies on.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::error::SqlState;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, NoTls, Statement, Transaction};
use serde_json::Value;

use super::{source_type_changed, Destination, RebuildStats, SavedState, SchemaTooNew, WriteBatch};
use crate::connector::Payload;
use crate::model::{normalize_email, EventRow, JourneyMapper, Stage};
use crate::{Error, Result};

mod full;
mod rebuild;
mod stage;
mod target;
pub mod testing;
mod tls;

pub use target::{is_postgres_url, quote_ident, PostgresTarget, SslMode};

use rebuild::rebuild;

/// `[destination] schema` when the config does not set it.
pub const DEFAULT_SCHEMA: &str = "growthflow";

/// Numbered schema migrations, applied in order (the same numbers as SQLite's; SQLite's 11 is empty,
/// as it has no second connection to stage for).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../migrations/postgres/0002_incremental_journey.sql"),
    ),
    (
        3,
        include_str!("../migrations/postgres/0003_funnel_daily.sql"),
    ),
    (
        4,
        include_str!("../migrations/postgres/0004_source_locks.sql"),
    ),
    (5, include_str!("../migrations/postgres/0005_sync_runs.sql")),
    (
        6,
        include_str!("../migrations/postgres/0006_raw_records_rowid.sql"),
    ),
    (
        7,
        include_str!("../migrations/postgres/0007_report_indexes.sql"),
    ),
    (
        8,
        include_str!("../migrations/postgres/0008_report_rollups.sql"),
    ),
    (
        9,
        include_str!("../migrations/postgres/0009_report_covering.sql"),
    ),
    (
        10,
        include_str!("../migrations/postgres/0010_rollup_triggers_under_upserts.sql"),
    ),
    (
        11,
        include_str!("../migrations/postgres/0011_raw_stage.sql"),
    ),
];

/// The first key of growthflow's advisory locks (the second is the schema's hash), so they do not
/// collide with another application's.
const LOCK_MIGRATE: i32 = 0x6766_0001;
const LOCK_WRITE: i32 = 0x6766_0002;

/// Raw records read from the cursor at once during a rebuild.
const PAGE: i32 = 1_000;
/// Mapped rows staged before they are copied to the server.
const FLUSH_ROWS: usize = 5_000;

/// Per-connection temporary tables: what a rebuild stages and its bookkeeping (the `temp.*` tables of
/// SQLite's rebuild). They are emptied with `TRUNCATE`, never `DELETE`: nothing vacuums temporary
/// tables, and a rebuild is one transaction, so deleted rows would stay in the heap and every later
/// scan of the table would read them again (a full rebuild's flushes grew quadratically).
const TEMP_TABLES: &str = "
    CREATE TEMP TABLE gf_dirty (source TEXT, stream TEXT, record_id TEXT,
        PRIMARY KEY (source, stream, record_id));
    CREATE TEMP TABLE gf_affected (customer_id TEXT PRIMARY KEY);
    CREATE TEMP TABLE gf_order_index (source TEXT, order_id TEXT, idx BIGINT,
        PRIMARY KEY (source, order_id));
    CREATE TEMP TABLE gf_stage_orders (seq BIGINT, source TEXT, stream TEXT, record_id TEXT,
        order_id TEXT, customer_id TEXT,
        email TEXT, created_at TIMESTAMPTZ, currency TEXT, total_price NUMERIC, subtotal_price NUMERIC,
        total_discounts NUMERIC, total_refunded NUMERIC, financial_status TEXT, cancelled BOOLEAN,
        test BOOLEAN, utm_source TEXT, utm_medium TEXT, utm_campaign TEXT, channel TEXT,
        landing_page TEXT, referrer TEXT);
    CREATE TEMP TABLE gf_full_orders (LIKE gf_stage_orders);
    CREATE TEMP TABLE gf_stage_events (seq BIGINT, event_id TEXT, source TEXT, stream TEXT,
        occurred_at TIMESTAMPTZ, date DATE, stage TEXT, event_type TEXT, channel TEXT, campaign TEXT,
        customer_id TEXT, quantity NUMERIC, value NUMERIC, currency TEXT, attributes JSONB);
    CREATE TEMP TABLE gf_stage_people (source TEXT, stream TEXT, record_id TEXT, customer_id TEXT,
        seen_at TIMESTAMPTZ);
    CREATE TEMP TABLE gf_stage_derived (seq BIGINT, source TEXT, stream TEXT, record_id TEXT,
        events JSONB, orders JSONB);";

/// A PostgreSQL dataset: one connection, the tables in one schema.
pub struct PostgresDestination {
    client: Client,
    target: PostgresTarget,
    statements: Statements,
    /// The second connection that parses half of a larger page's payloads (see [`Stager`]); `None`
    /// until the first such page, and again after it failed, when commits go on without it.
    stager: Option<Stager>,
    /// The second connection could not be opened: commits write every record on the first.
    stager_refused: bool,
}

/// Pages with at least this many records have half of them parsed on the second connection.
const STAGE_MIN_RECORDS: usize = 64;

/// Rows of `growthflow_raw_stage` older than this are left by commits that failed.
const STAGE_STALE: &str = "1 day";

/// A second connection to the dataset that parses payloads into `JSONB` outside the write lock.
///
/// The server's work for a commit is mostly parsing each payload's text into `JSONB` (sorting each
/// object's keys, unescaping strings) and compressing it, and all of it ran under the write lock, on
/// the one backend that holds it: the sync's process used a fifth of a core while that backend was
/// busy (docs/performance.md, "PostgreSQL against the same yardstick"). So for a larger page this
/// connection parses half of the records into the unlogged `growthflow_raw_stage` while the first
/// connection, holding the lock, upserts the other half; the first then copies the staged half in,
/// which reuses the values as parsed and compressed (for 100,000 orders: 1.65 s against 5.6 s for
/// parsing and storing them). What a commit stores and when it is stamped are unchanged: the copy is
/// in the commit's transaction, under its lock, with its clock.
struct Stager {
    client: Client,
    next_batch: Statement,
    stage: Statement,
}

/// What a role needs to stage pages: a staged batch is numbered and inserted on the second
/// connection (`nextval` takes USAGE or UPDATE on the sequence), then read and deleted on the first. A role with only some of it (a partial `REVOKE`)
/// would have every large commit fail at the read, so it does not stage.
const STAGE_PRIVILEGES: &str = "SELECT has_table_privilege('growthflow_raw_stage', 'INSERT')
        AND has_table_privilege('growthflow_raw_stage', 'SELECT')
        AND has_table_privilege('growthflow_raw_stage', 'DELETE')
        AND has_sequence_privilege('growthflow_raw_stage_batches', 'USAGE, UPDATE')";

/// What a role lacking [`STAGE_PRIVILEGES`] is told to grant.
const STAGE_GRANT: &str = "grant it INSERT, SELECT and DELETE on growthflow_raw_stage and USAGE \
    on the sequence growthflow_raw_stage_batches";

impl Stager {
    /// The second connection, or `None` when the role may not use the staging table.
    fn open(target: &PostgresTarget) -> Result<Option<Self>> {
        let mut client = target.connect()?;
        let allowed: bool = client
            .query_one(STAGE_PRIVILEGES, &[])
            .map_err(|e| target.error("cannot check the staging table's privileges", &e))?
            .get(0);
        if !allowed {
            return Ok(None);
        }
        let prepared = (|| -> std::result::Result<Stager, postgres::Error> {
            // Named, so that an operator (or a test) can tell it from the writing connection.
            client.execute(
                "SELECT set_config('application_name', left('growthflow stager ' || $1, 63), false)",
                &[&target.schema],
            )?;
            client.batch_execute("SET synchronous_commit = off")?;
            if client
                .batch_execute("SET default_toast_compression = 'lz4'")
                .is_err()
            {
                tracing::debug!("the server has no lz4: staged payloads use its default");
            }
            let next_batch = client.prepare("SELECT nextval('growthflow_raw_stage_batches')")?;
            let stage = client.prepare(
                "INSERT INTO growthflow_raw_stage (batch, record_id, cursor_value, payload)
                 SELECT $1, r.record_id, r.cursor_value, r.payload
                 FROM unnest($2::TEXT[], $3::TEXT[], $4::JSONB[]) AS r(record_id, cursor_value, payload)",
            )?;
            Ok(Stager {
                client,
                next_batch,
                stage,
            })
        })();
        prepared
            .map(Some)
            .map_err(|e| target.error("cannot prepare the staging connection", &e))
    }

    /// Parse and store `records` under a new batch number, committed at once (the first connection
    /// reads them in its own transaction); the number.
    fn stage(
        &mut self,
        ids: &[&str],
        cursors: &[Option<&str>],
        payloads: &[JsonText<'_>],
    ) -> std::result::Result<i64, postgres::Error> {
        let batch: i64 = self.client.query_one(&self.next_batch, &[])?.get(0);
        self.client
            .execute(&self.stage, &[&batch, &ids, &cursors, &payloads])?;
        Ok(batch)
    }
}

/// The statements of every commit, prepared once per connection: a commit is then a handful of
/// round trips, not twice as many.
struct Statements {
    /// Takes the write lock, then reads the server's clock (the subquery, volatile, runs first).
    lock_then_clock: Statement,
    note_removed: Statement,
    replace: Statement,
    /// A page's records into `raw_records`, sent as three arrays in one statement (ids, cursors,
    /// payloads). Staging them in a temporary table first cost a second copy of every payload (stored,
    /// compressed and read back) and, since nothing vacuums temporary tables, a table that grew with
    /// every page and was scanned whole by each commit.
    upsert_page: Statement,
    /// A batch staged by the second connection (see [`Stager`]) into `raw_records`, as
    /// `upsert_page` does it from the page's arrays.
    copy_staged: Statement,
    unstage: Statement,
    save_state: Statement,
}

impl Statements {
    fn prepare(client: &mut Client) -> std::result::Result<Self, postgres::Error> {
        Ok(Statements {
            lock_then_clock: client.prepare(
                "SELECT clock_timestamp() FROM (SELECT pg_advisory_xact_lock($1, hashtext($2))) l",
            )?,
            note_removed: client.prepare(
                "INSERT INTO growthflow_removed (source, stream, record_id)
                 SELECT source, stream, record_id FROM raw_records
                 WHERE source = $1 AND stream = $2 AND cursor_value = $3
                 ON CONFLICT DO NOTHING",
            )?,
            replace: client.prepare(
                "DELETE FROM raw_records WHERE source = $1 AND stream = $2 AND cursor_value = $3",
            )?,
            upsert_page: client.prepare(
                "INSERT INTO raw_records (source, stream, record_id, cursor_value, payload, synced_at)
                 SELECT $1::TEXT, $2::TEXT, r.record_id, r.cursor_value, r.payload, $3
                 FROM unnest($4::TEXT[], $5::TEXT[], $6::JSONB[]) AS r(record_id, cursor_value, payload)
                 ON CONFLICT (source, stream, record_id) DO UPDATE SET
                   cursor_value = excluded.cursor_value,
                   payload = excluded.payload,
                   synced_at = excluded.synced_at",
            )?,
            copy_staged: client.prepare(
                "INSERT INTO raw_records (source, stream, record_id, cursor_value, payload, synced_at)
                 SELECT $1::TEXT, $2::TEXT, s.record_id, s.cursor_value, s.payload, $3
                 FROM growthflow_raw_stage s WHERE s.batch = $4
                 ON CONFLICT (source, stream, record_id) DO UPDATE SET
                   cursor_value = excluded.cursor_value,
                   payload = excluded.payload,
                   synced_at = excluded.synced_at",
            )?,
            unstage: client.prepare("DELETE FROM growthflow_raw_stage WHERE batch = $1")?,
            save_state: client.prepare(
                "INSERT INTO sync_state (source, stream, state, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (source, stream) DO UPDATE SET state = excluded.state,
                   updated_at = excluded.updated_at",
            )?,
        })
    }
}

impl fmt::Debug for PostgresDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresDestination")
            .field("target", &self.target)
            .finish()
    }
}

impl PostgresDestination {
    /// Connect, create the schema when missing, bring its tables up to date and check that this role
    /// may write them. Blocking: call it from a thread that is not running an async runtime.
    pub fn open(target: &PostgresTarget) -> Result<Self> {
        let mut client = target.connect()?;
        migrate(&mut client, target)?;
        check_writable(&mut client, target)?;
        // The writer's own session commits without waiting for the server to flush its log (the
        // twin of SQLite's `synchronous = NORMAL`): a sync commits a page at a time, and a disk
        // flush for each would be a cost per page however fast the rest is. A crash of the server itself can take back its
        // last commits (never half of one, and never corrupts anything); the state goes back with
        // the records it covers, so the next sync reads them again.
        client
            .batch_execute("SET synchronous_commit = off")
            .map_err(|e| target.error("cannot configure the session", &e))?;
        // Payloads of 2-3 KB are compressed as they are stored (TOAST), in the staging table and again
        // in raw_records: lz4 does it several times faster than PostgreSQL's default pglz, at about the
        // same size. Servers built without lz4 (or before 14) keep their default.
        if client
            .batch_execute("SET default_toast_compression = 'lz4'")
            .is_err()
        {
            tracing::debug!("the server has no lz4: payloads are compressed with its default");
        }
        client
            .batch_execute(TEMP_TABLES)
            .map_err(|e| target.error("cannot create temporary tables", &e))?;
        let statements = Statements::prepare(&mut client)
            .map_err(|e| target.error("cannot prepare statements", &e))?;
        // Rows of staged pages whose commits failed (see `Stager`); recent ones may be another
        // writer's page in flight. Housekeeping only: a role that may not do it still syncs.
        if let Err(e) = client.batch_execute(&format!(
            "DELETE FROM growthflow_raw_stage WHERE staged_at < now() - interval '{STAGE_STALE}'"
        )) {
            tracing::debug!(error = %e, "old staged rows left in growthflow_raw_stage");
        }
        Ok(PostgresDestination {
            client,
            target: target.clone(),
            statements,
            stager: None,
            stager_refused: false,
        })
    }

    /// A connection the server closed (restarted, failed over, terminated the backend) is opened
    /// again before the next call: the write that was cut fails, the ones after it go through.
    fn ensure_connected(&mut self) -> Result<()> {
        if self.client.is_closed() {
            tracing::warn!(dataset = %self.target.display, "the PostgreSQL connection was closed; reconnecting");
            *self = Self::open(&self.target)?;
        }
        Ok(())
    }

    /// True when the target's schema holds a growthflow dataset (its `schema_migrations` table).
    /// Commands that only read (`report`, `state`) ask first, so that they refuse a dataset that does
    /// not exist instead of creating an empty one and answering from it. Blocking.
    pub fn exists(target: &PostgresTarget) -> Result<bool> {
        let mut client = target.connect()?;
        let table = format!("{}.schema_migrations", quote_ident(&target.schema));
        let found: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .map_err(|e| target.error("cannot look for the dataset", &e))?
            .get(0);
        Ok(found)
    }

    /// A connection for reading the dataset (the report), which needs no write privilege when the
    /// dataset is up to date: a BI tool's read-only role can run `growthflow report`. A dataset that
    /// is missing or from an older growthflow is [`open`](Self::open)ed (created or migrated) first,
    /// which does need a role that may write; one from a newer growthflow is refused as `open` does.
    /// Blocking.
    pub fn open_for_reading(target: &PostgresTarget) -> Result<Client> {
        let mut client = target.connect()?;
        let quoted = quote_ident(&target.schema);
        let row = client
            .query_one(
                &format!(
                    "SELECT CASE WHEN to_regclass($1) IS NOT NULL THEN
                         (SELECT COALESCE(MAX(version), 0)::BIGINT FROM {quoted}.schema_migrations)
                     END,
                     CASE WHEN to_regclass($1) IS NOT NULL THEN
                         (SELECT COUNT(*)::BIGINT FROM {quoted}.schema_migrations)
                     END"
                ),
                &[&format!("{quoted}.schema_migrations")],
            )
            .map_err(|e| target.error("cannot read the schema version", &e))?;
        let (version, applied): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
        let known = MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0);
        match version {
            Some(v) if v > known => Err(Error::Destination(Box::new(SchemaTooNew {
                found: v,
                supported: known,
            }))),
            // Up to date only when no version below the newest is missing either.
            Some(v) if v == known && applied == Some(MIGRATIONS.len() as i64) => Ok(client),
            _ => Ok(Self::open(target)?.client),
        }
    }

    /// Parse `url` and `schema` and [`open`](Self::open) the dataset.
    pub fn connect(url: &str, schema: Option<&str>) -> Result<Self> {
        Self::open(&PostgresTarget::parse(url, schema)?)
    }

    /// The connection, for reading (tests, library use).
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Where this dataset lives.
    pub fn target(&self) -> &PostgresTarget {
        &self.target
    }
}

fn migrate(client: &mut Client, target: &PostgresTarget) -> Result<()> {
    let schema = target.schema.clone();
    let quoted = quote_ident(&schema);
    let fail = |what: &str, e: postgres::Error| migrate_error(target, what, e);
    let mut tx = client
        .transaction()
        .map_err(|e| fail("cannot start a transaction", e))?;
    // Two first runs at once: the second waits here and then finds everything done.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&LOCK_MIGRATE, &schema],
    )
    .map_err(|e| fail("cannot take the migration lock", e))?;
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .map_err(|e| fail("cannot look up the schema", e))?
        .get(0);
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA {quoted}"))
            .map_err(|e| fail("cannot create the schema", e))?;
    }
    let has_versions: bool = tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{quoted}.schema_migrations")],
        )
        .map_err(|e| fail("cannot read the schema", e))?
        .get(0);
    if !has_versions {
        tx.batch_execute(&format!(
            "CREATE TABLE {quoted}.schema_migrations
                   (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
        ))
        .map_err(|e| fail("cannot create tables", e))?;
    }
    // Every known version not recorded yet is applied, in order: a gap in the numbering, or a later
    // version applied before an earlier one (two branches each adding one), leaves nothing out.
    let applied: Vec<i64> = tx
        .query(
            "SELECT version::BIGINT FROM schema_migrations ORDER BY version",
            &[],
        )
        .map_err(|e| fail("cannot read the schema version", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let current = applied.last().copied().unwrap_or(0);
    let known = MIGRATIONS.iter().map(|(v, _)| *v).max().unwrap_or(0);
    if current > known {
        return Err(Error::Destination(Box::new(SchemaTooNew {
            found: current,
            supported: known,
        })));
    }
    // Every known version not recorded yet, in order (not only those above the highest recorded):
    // migrations developed side by side may land in either order.
    let applied: Vec<i64> = tx
        .query("SELECT version::BIGINT FROM schema_migrations", &[])
        .map_err(|e| fail("cannot read the schema version", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| !applied.contains(v)) {
        tx.batch_execute(sql)
            .map_err(|e| fail("cannot create tables", e))?;
        if *version == 8 {
            crate::report::rollup::refresh_postgres(&mut tx)?; // Fills the rollups it added.
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, clock_timestamp())",
            &[&(*version as i32)],
        )
        .map_err(|e| fail("cannot record the schema version", e))?;
        tracing::info!(version, schema = %schema, "dataset schema migrated");
    }
    tx.commit()
        .map_err(|e| fail("cannot commit the schema", e))?;
    Ok(())
}

/// A read-only role (or a read-only server) would fail at the first commit after reading a whole
/// page from the platform: say so now, naming the setting.
fn check_writable(client: &mut Client, target: &PostgresTarget) -> Result<()> {
    let row = client
        .query_one(
            "SELECT current_setting('transaction_read_only') = 'on',
                        has_table_privilege('raw_records', 'INSERT')
                    AND has_table_privilege('raw_records', 'UPDATE')
                    AND has_table_privilege('raw_records', 'DELETE')
                    AND has_table_privilege('orders', 'INSERT')
                    AND has_table_privilege('orders', 'DELETE'),
                        current_user::TEXT",
            &[],
        )
        .map_err(|e| target.error("cannot check privileges", &e))?;
    let (read_only, writable, user): (bool, bool, String) = (row.get(0), row.get(1), row.get(2));
    if read_only {
        return Err(Error::destination(format!(
                "PostgreSQL {}: the server or the role's session is read-only (a standby, or \
                 default_transaction_read_only): growthflow writes the dataset; point destination.url \
                 at the primary with a role that may write",
                target.display
            )));
    }
    if !writable {
        return Err(Error::destination(format!(
            "PostgreSQL {}: the role {user} may read but not write the tables in schema {} \
                 (destination.url's user, destination.schema): sync with a role that owns them or \
                 has INSERT, UPDATE and DELETE on them",
            target.display, target.schema
        )));
    }
    Ok(())
}

fn migrate_error(target: &PostgresTarget, what: &str, e: postgres::Error) -> Error {
    let code = e.as_db_error().map(|d| d.code().clone());
    let user = target.config.get_user().unwrap_or_default();
    let hint = match code {
        Some(c) if c == SqlState::INSUFFICIENT_PRIVILEGE => format!(
            "{what} in schema {}: the role {user} lacks the privilege (destination.schema; create the \
             schema for it, e.g. CREATE SCHEMA {} AUTHORIZATION {user}, or choose another)",
            target.schema,
            quote_ident(&target.schema)
        ),
        Some(c) if c == SqlState::READ_ONLY_SQL_TRANSACTION => format!(
            "{what} in schema {}: the server or the role's session is read-only (destination.url)",
            target.schema
        ),
        _ => format!("{what} in schema {} (destination.schema)", target.schema),
    };
    target.error(&hint, &e)
}

/// The time as SQLite stores it (whole seconds), so both stores number same-second orders alike.
fn secs(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(0)
}

/// JSONB cannot hold `\u0000`; such a character (rare, but platforms send what users typed) becomes
/// U+FFFD instead of failing the whole commit.
fn jsonb_safe(v: &Value) -> std::borrow::Cow<'_, Value> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(a) => a.iter().any(has_nul),
            Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    fn clean(v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(s.replace('\0', "\u{FFFD}")),
            Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), clean(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    if has_nul(v) {
        std::borrow::Cow::Owned(clean(v))
    } else {
        std::borrow::Cow::Borrowed(v)
    }
}

/// A payload's text cleaned for JSONB, or `None` when it can go as it is. JSON text can only spell
/// a NUL as the escape `\u0000`, so a payload without that sequence needs nothing (the rare false
/// alarm, an escaped backslash before `u0000`, only costs a parse).
fn jsonb_safe_text(payload: &Payload) -> Option<String> {
    if !payload.as_str().contains("\\u0000") {
        return None;
    }
    match jsonb_safe(&payload.to_value()) {
        std::borrow::Cow::Owned(clean) => serde_json::to_string(&clean).ok(),
        std::borrow::Cow::Borrowed(_) => None,
    }
}

/// A `JSONB` (or `JSON`) parameter sent as the JSON text it already is: a payload's text was checked
/// when the payload was made, so it goes to the server without being parsed or printed again.
#[derive(Debug)]
struct JsonText<'a>(&'a str);

impl ToSql for JsonText<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // JSONB's binary form is a version byte, 1, then the text; JSON's is the text alone.
        if *ty == Type::JSONB {
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB)
    }

    to_sql_checked!();
}

impl Destination for PostgresDestination {
    fn register_source(&mut self, source: &str, source_type: &str) -> Result<()> {
        self.ensure_connected()?;
        self.client.execute(
            "INSERT INTO growthflow_sources (source, type) VALUES ($1, $2)
             ON CONFLICT (source) DO NOTHING",
            &[&source, &source_type],
        )?;
        let row = self.client.query_one(
            "SELECT type FROM growthflow_sources WHERE source = $1",
            &[&source],
        )?;
        let was: String = row.get(0);
        if was != source_type {
            return Err(source_type_changed(source, &was, source_type));
        }
        Ok(())
    }

    fn load_state(&mut self, source: &str, stream: &str) -> Result<Option<Value>> {
        self.ensure_connected()?;
        let row = self.client.query_opt(
            "SELECT state FROM sync_state WHERE source = $1 AND stream = $2",
            &[&source, &stream],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    fn saved_states(&mut self, source: Option<&str>) -> Result<Vec<SavedState>> {
        self.ensure_connected()?;
        let rows = self.client.query(
            "SELECT s.source, g.type, s.stream, s.state,
                    to_char(s.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
             FROM sync_state s LEFT JOIN growthflow_sources g ON g.source = s.source
             WHERE $1::TEXT IS NULL OR s.source = $1
             ORDER BY s.source, s.stream",
            &[&source],
        )?;
        Ok(rows
            .into_iter()
            .map(|r| SavedState {
                source: r.get(0),
                source_type: r.get(1),
                stream: r.get(2),
                state: r.get(3),
                updated_at: r.get(4),
            })
            .collect())
    }

    fn reset_state(&mut self, source: &str, stream: Option<&str>) -> Result<u64> {
        self.ensure_connected()?;
        let mut tx = self.client.transaction()?;
        let removed = tx.execute(
            "DELETE FROM sync_state WHERE source = $1 AND ($2::TEXT IS NULL OR stream = $2)",
            &[&source, &stream],
        )?;
        if stream.is_none() {
            tx.execute(
                "DELETE FROM growthflow_sources WHERE source = $1",
                &[&source],
            )?;
        }
        tx.commit()?;
        Ok(removed)
    }

    fn commit(&mut self, batches: &[WriteBatch]) -> Result<()> {
        self.ensure_connected()?;
        self.write(batches).map_err(|e| self.lost(e))
    }

    fn rebuild_journey(&mut self, mappers: &[Arc<dyn JourneyMapper>]) -> Result<RebuildStats> {
        self.ensure_connected()?;
        self.rebuild(mappers).map_err(|e| self.lost(e))
    }

    fn record_run_start(&mut self, run: &crate::runs::RunStart) -> Result<()> {
        self.ensure_connected()?;
        super::runs::postgres::record_start(&mut self.client, run)
    }

    fn record_run_end(&mut self, end: &crate::runs::RunEnd) -> Result<()> {
        self.ensure_connected()?;
        super::runs::postgres::record_end(&mut self.client, end)
    }

    fn recent_runs(
        &mut self,
        limit: usize,
        sources: &[String],
    ) -> Result<Vec<crate::runs::RunSummary>> {
        self.ensure_connected()?;
        super::runs::postgres::recent_runs(&mut self.client, limit, sources)
    }
}

impl PostgresDestination {
    /// An error that closed the connection says so: "connection closed" alone does not tell the
    /// user that nothing of the cut write was kept.
    fn lost(&self, e: Error) -> Error {
        if self.client.is_closed() {
            Error::destination(format!(
                "PostgreSQL {}: the connection to the server was lost; the transaction was rolled \
                 back (its state too: the next sync resumes before it): {e}",
                self.target.display
            ))
        } else {
            e
        }
    }

    /// The second connection, opened the first time a page is large enough to share (see [`Stager`]).
    /// One that cannot be opened is not asked for again by this destination: commits go on with the
    /// first connection alone, as before there was a second.
    fn ready_stager(&mut self) {
        if self.stager.as_ref().is_some_and(|s| s.client.is_closed()) {
            self.stager = None;
        }
        if self.stager.is_none() && !self.stager_refused {
            match Stager::open(&self.target) {
                Ok(Some(s)) => self.stager = Some(s),
                Ok(None) => {
                    tracing::warn!(
                        "PostgreSQL: this role may not use growthflow_raw_stage, where large pages are \
                         staged; this sync stores every record on one connection, which is slower. To \
                         stage them again, {STAGE_GRANT}"
                    );
                    self.stager_refused = true;
                }
                Err(e) => {
                    // Said once per destination: the sync goes on, only slower, and the fix is the
                    // server's (a role's connection limit, `max_connections`).
                    tracing::warn!(
                        error = %e,
                        "PostgreSQL: no second connection for staging large pages; this sync stores every \
                         record on one connection, which is slower. Allow the role one more connection \
                         to stage them again"
                    );
                    self.stager_refused = true;
                }
            }
        }
    }

    fn write(&mut self, batches: &[WriteBatch]) -> Result<()> {
        if batches.iter().any(|b| b.records.len() >= STAGE_MIN_RECORDS) {
            self.ready_stager();
        }
        let PostgresDestination {
            client,
            statements: st,
            stager,
            stager_refused,
            ..
        } = self;
        let mut tx = client.transaction()?;
        // The write lock first, then the time: `synced_at` then orders commits and rebuilds correctly
        // even across processes, which the incremental rebuild's watermark relies on.
        let now: DateTime<Utc> = tx
            .query_one(&st.lock_then_clock, &[&LOCK_WRITE, &self.target.schema])?
            .get(0);
        for b in batches {
            if let Some(partition) = &b.replaces {
                tx.execute(&st.note_removed, &[&b.source, &b.stream, partition])?;
                tx.execute(&st.replace, &[&b.source, &b.stream, partition])?;
            }
            if !b.records.is_empty() {
                // One statement may not upsert a row twice: a page that names a record twice keeps
                // its last version, as SQLite's upserts do.
                let mut last: HashMap<&str, usize> = HashMap::with_capacity(b.records.len());
                for (i, r) in b.records.iter().enumerate() {
                    last.insert(r.id.as_str(), i);
                }
                let kept: Vec<&crate::connector::Record> = b
                    .records
                    .iter()
                    .enumerate()
                    .filter(|(i, r)| last.get(r.id.as_str()) == Some(i))
                    .map(|(_, r)| r)
                    .collect();
                let ids: Vec<&str> = kept.iter().map(|r| r.id.as_str()).collect();
                let cursors: Vec<Option<&str>> = kept.iter().map(|r| r.cursor.as_deref()).collect();
                // The platform's text goes to the server as it is; only a payload that may hold
                // `\u0000`, which JSONB refuses, is parsed and cleaned first.
                let cleaned: Vec<Option<String>> =
                    kept.iter().map(|r| jsonb_safe_text(&r.payload)).collect();
                let payloads: Vec<JsonText> = kept
                    .iter()
                    .zip(&cleaned)
                    .map(|(r, c)| JsonText(c.as_deref().unwrap_or(r.payload.as_str())))
                    .collect();
                // A larger page: its second half is parsed on the second connection while this one
                // stores the first (see `Stager`).
                let half = match stager {
                    Some(_) if kept.len() >= STAGE_MIN_RECORDS => kept.len() / 2,
                    _ => kept.len(),
                };
                let (staged, direct) = std::thread::scope(|scope| {
                    let staging = stager.as_mut().filter(|_| half < kept.len()).map(|s| {
                        let (ids, cursors, payloads) =
                            (&ids[half..], &cursors[half..], &payloads[half..]);
                        scope.spawn(move || s.stage(ids, cursors, payloads))
                    });
                    let direct = tx.execute(
                        &st.upsert_page,
                        &[
                            &b.source,
                            &b.stream,
                            &now,
                            &&ids[..half],
                            &&cursors[..half],
                            &&payloads[..half],
                        ],
                    );
                    let staged = staging.map(|h| match h.join() {
                        Ok(result) => result.map_err(|e| e.to_string()),
                        Err(_) => Err("the staging thread panicked".to_string()),
                    });
                    (staged, direct)
                });
                direct?;
                match staged {
                    None => {}
                    Some(Ok(batch)) => {
                        let copied =
                            tx.execute(&st.copy_staged, &[&b.source, &b.stream, &now, &batch])?;
                        tx.execute(&st.unstage, &[&batch])?;
                        if copied != (kept.len() - half) as u64 {
                            return Err(Error::destination(format!(
                                "PostgreSQL: half of a page of {}/{}, parsed on the second connection, came back \
                                 with {copied} of its {} records; nothing of this commit was kept, and the next \
                                 sync reads the page again",
                                b.source,
                                b.stream,
                                kept.len() - half
                            )));
                        }
                    }
                    Some(Err(e)) => {
                        // The second connection failed: this commit stores that half itself. A
                        // connection the server closed is opened again for the next large page; one
                        // whose statement was refused (a role without rights on the staging table,
                        // say) is not asked again.
                        if stager.take().is_some_and(|s| !s.client.is_closed()) {
                            tracing::warn!(
                                error = %e,
                                "PostgreSQL: the server refused to stage a large page on the second \
                                 connection; this sync stores every record on one connection, which is slower. \
                                 Where the role lacks the rights, {STAGE_GRANT}"
                            );
                            *stager_refused = true;
                        } else {
                            tracing::debug!(error = %e, "the staging connection was closed; storing the page on the first");
                        }
                        tx.execute(
                            &st.upsert_page,
                            &[
                                &b.source,
                                &b.stream,
                                &now,
                                &&ids[half..],
                                &&cursors[half..],
                                &&payloads[half..],
                            ],
                        )?;
                    }
                }
            }
            if let Some(s) = &b.state {
                tx.execute(
                    &st.save_state,
                    &[&b.source, &b.stream, &jsonb_safe(s).as_ref(), &now],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn rebuild(&mut self, mappers: &[Arc<dyn JourneyMapper>]) -> Result<RebuildStats> {
        let by_type: HashMap<&str, &Arc<dyn JourneyMapper>> =
            mappers.iter().map(|m| (m.source_type(), m)).collect();
        let mut tx = self.client.transaction()?;
        let started: DateTime<Utc> = tx
            .query_one(
                &self.statements.lock_then_clock,
                &[&LOCK_WRITE, &self.target.schema],
            )?
            .get(0);
        let stats = rebuild(&mut tx, &self.target, &by_type, started)?;
        tx.commit()?;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_in_libpq_form_without_showing_the_password() {
        let t = PostgresTarget::parse(
            "postgresql://gf:s3cr%40t@db.internal:6543/analytics?sslmode=verify-full&application_name=x",
            Some("warehouse"),
        )
        .unwrap();
        assert_eq!(t.display(), "postgres://gf@db.internal:6543/analytics");
        assert_eq!(t.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(t.schema(), "warehouse");
        assert_eq!(t.config.get_password(), Some(&b"s3cr@t"[..]));
        assert!(!format!("{t:?}").contains("s3cr"));

        let t = PostgresTarget::parse("postgres://root@127.0.0.1/test", None).unwrap();
        assert_eq!(t.ssl_mode(), SslMode::Prefer);
        assert_eq!(t.schema(), DEFAULT_SCHEMA);
        assert_eq!(t.display(), "postgres://root@127.0.0.1:5432/test");

        let e = PostgresTarget::parse("postgres://u:hunter2@h/db?sslmode=always", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("destination.url") && e.contains("sslmode=always"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let e = PostgresTarget::parse("postgres://u:hunter2@h:notaport/db", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("destination.url"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn schema_names_are_quoted() {
        assert_eq!(quote_ident("growthflow"), "\"growthflow\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
