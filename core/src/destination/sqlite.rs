//! The embedded default destination: one SQLite file holding the contract's tables.
//!
//! Schema changes are numbered migrations applied in order and recorded in `schema_migrations`, so an
//! older dataset is upgraded in place. Writes are batched upserts in one transaction per commit; the
//! journey model is rebuilt inside one transaction, so readers (and `report`) never see half of it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value;

use super::{Destination, RebuildStats, WriteBatch};
use crate::model::{normalize_email, EventRow, JourneyMapper, Stage};
use crate::time::format_utc;
use crate::{Error, Result};

/// Numbered schema migrations, applied in order.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("migrations/0001_init.sql"))];

/// A SQLite dataset.
#[derive(Debug)]
pub struct SqliteDestination {
    conn: Connection,
}

impl SqliteDestination {
    /// Open (creating if needed) the dataset at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Other(format!(
                    "cannot create the dataset folder {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let conn = Connection::open(path)?;
        Self::from_connection(conn)
    }

    /// An in-memory dataset (tests, library experiments).
    pub fn in_memory() -> Result<Self> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let mut me = SqliteDestination { conn };
        me.migrate()?;
        Ok(me)
    }

    /// The connection, for reading (the report) and tests.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn migrate(&mut self) -> Result<()> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )?;
        let current: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
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

fn money(d: Decimal) -> f64 {
    d.round_dp(6).to_f64().unwrap_or(0.0)
}

impl Destination for SqliteDestination {
    fn register_source(&mut self, source: &str, source_type: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO growthflow_sources (source, type) VALUES (?1, ?2)
             ON CONFLICT(source) DO UPDATE SET type = excluded.type",
            params![source, source_type],
        )?;
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
        let now = format_utc(Utc::now());
        let tx = self.conn.transaction()?;
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
            let mut replace = tx.prepare_cached(
                "DELETE FROM raw_records WHERE source = ?1 AND stream = ?2 AND cursor_value = ?3",
            )?;
            for b in batches {
                if let Some(partition) = &b.replaces {
                    replace.execute(params![b.source, b.stream, partition])?;
                }
                for r in &b.records {
                    upsert.execute(params![
                        b.source,
                        b.stream,
                        r.id,
                        r.cursor,
                        serde_json::to_string(&r.payload)?,
                        now
                    ])?;
                }
                if let Some(s) = &b.state {
                    state.execute(params![b.source, b.stream, serde_json::to_string(s)?, now])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn rebuild_journey(&mut self, mappers: &[Arc<dyn JourneyMapper>]) -> Result<RebuildStats> {
        let by_type: HashMap<&str, &Arc<dyn JourneyMapper>> =
            mappers.iter().map(|m| (m.source_type(), m)).collect();
        let tx = self.conn.transaction()?;
        let stats = rebuild(&tx, &by_type)?;
        tx.commit()?;
        Ok(stats)
    }
}

fn rebuild(
    tx: &Transaction<'_>,
    mappers: &HashMap<&str, &Arc<dyn JourneyMapper>>,
) -> Result<RebuildStats> {
    let mut stats = RebuildStats::default();
    tx.execute_batch(
        "DELETE FROM journey_events; DELETE FROM orders; DELETE FROM customers;
         CREATE TEMP TABLE IF NOT EXISTS people (customer_id TEXT NOT NULL, seen_at TEXT);
         DELETE FROM temp.people;",
    )?;
    let mut read = tx.prepare(
        "SELECT r.source, s.type, r.stream, r.record_id, r.payload
         FROM raw_records r JOIN growthflow_sources s ON s.source = r.source
         ORDER BY r.source, r.stream, r.record_id",
    )?;
    let mut insert_order = tx.prepare_cached(
        "INSERT INTO orders (source, order_id, customer_id, email, created_at, currency, total_price,
           subtotal_price, total_discounts, total_refunded, financial_status, cancelled, test,
           utm_source, utm_medium, utm_campaign, channel, landing_page, referrer)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)
         ON CONFLICT(source, order_id) DO UPDATE SET
           customer_id=excluded.customer_id, email=excluded.email, created_at=excluded.created_at,
           currency=excluded.currency, total_price=excluded.total_price,
           subtotal_price=excluded.subtotal_price, total_discounts=excluded.total_discounts,
           total_refunded=excluded.total_refunded, financial_status=excluded.financial_status,
           cancelled=excluded.cancelled, test=excluded.test, utm_source=excluded.utm_source,
           utm_medium=excluded.utm_medium, utm_campaign=excluded.utm_campaign, channel=excluded.channel,
           landing_page=excluded.landing_page, referrer=excluded.referrer",
    )?;
    let mut insert_event = tx.prepare_cached(
        "INSERT INTO journey_events (event_id, source, stream, occurred_at, date, stage, event_type,
           channel, campaign, customer_id, quantity, value, currency, attributes)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)
         ON CONFLICT(event_id) DO UPDATE SET
           occurred_at=excluded.occurred_at, date=excluded.date, stage=excluded.stage,
           event_type=excluded.event_type, channel=excluded.channel, campaign=excluded.campaign,
           customer_id=excluded.customer_id, quantity=excluded.quantity, value=excluded.value,
           currency=excluded.currency, attributes=excluded.attributes",
    )?;
    let mut insert_person =
        tx.prepare_cached("INSERT INTO temp.people (customer_id, seen_at) VALUES (?1, ?2)")?;

    let mut rows = read.query([])?;
    while let Some(row) = rows.next()? {
        let source: String = row.get(0)?;
        let source_type: String = row.get(1)?;
        let stream: String = row.get(2)?;
        let record_id: String = row.get(3)?;
        let payload: String = row.get(4)?;
        stats.records += 1;
        let Some(mapper) = mappers.get(source_type.as_str()) else {
            continue;
        };
        let mapped = serde_json::from_str::<Value>(&payload)
            .map_err(Error::from)
            .and_then(|v| mapper.map(&stream, &v));
        let journey = match mapped {
            Ok(j) => j,
            Err(e) => {
                stats.failed += 1;
                tracing::warn!(%source, %stream, %record_id, error = %e, "record skipped by the journey model");
                continue;
            }
        };
        let mut events: Vec<EventRow> = journey.events;
        for o in &journey.orders {
            let customer_id = o.email.as_deref().and_then(normalize_email);
            let created = format_utc(o.created_at);
            insert_order.execute(params![
                source,
                o.order_id,
                customer_id,
                o.email,
                created,
                o.currency,
                money(o.total_price),
                o.subtotal_price.map(money),
                o.total_discounts.map(money),
                money(o.total_refunded),
                o.financial_status,
                o.cancelled,
                o.test,
                o.utm_source,
                o.utm_medium,
                o.utm_campaign,
                o.channel.as_str(),
                o.landing_page,
                o.referrer,
            ])?;
            stats.orders += 1;
            if let Some(c) = &customer_id {
                insert_person.execute(params![c, created])?;
            }
            // Every order is also an event; its stage (first order or repeat) is settled below.
            let mut ev = EventRow::at(
                format!("order:{}", o.order_id),
                o.created_at,
                Stage::Conversion,
                "order",
            );
            ev.channel = Some(o.channel);
            ev.campaign = o.utm_campaign.clone();
            ev.email = o.email.clone();
            ev.value = Some(o.total_price);
            ev.currency = o.currency.clone();
            ev.attributes = serde_json::json!({
                "order_id": o.order_id,
                "valid": !o.cancelled && !o.test,
            });
            events.push(ev);
        }
        for e in &events {
            let customer_id = e.email.as_deref().and_then(normalize_email);
            let occurred = format_utc(e.occurred_at);
            insert_event.execute(params![
                format!("{source}:{stream}:{record_id}:{}", e.key),
                source,
                stream,
                occurred,
                e.date.format("%Y-%m-%d").to_string(),
                e.stage.as_str(),
                e.event_type,
                e.channel.map(|c| c.as_str()),
                e.campaign,
                customer_id,
                money(e.quantity),
                e.value.map(money),
                e.currency,
                e.attributes.to_string(),
            ])?;
            stats.events += 1;
            if let Some(c) = &customer_id {
                insert_person.execute(params![c, occurred])?;
            }
        }
        for c in &journey.customers {
            if let Some(id) = normalize_email(&c.email) {
                insert_person.execute(params![id, c.first_seen_at.map(format_utc)])?;
            }
        }
    }
    drop(rows);

    // Number each person's valid orders across every store by creation time.
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS order_index (source TEXT, order_id TEXT, idx INTEGER,
            PRIMARY KEY (source, order_id));
         DELETE FROM temp.order_index;
         INSERT INTO temp.order_index
           SELECT source, order_id,
                  ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY created_at, source, order_id)
           FROM orders WHERE cancelled = 0 AND test = 0 AND customer_id IS NOT NULL;
         UPDATE orders SET customer_order_index = (
           SELECT idx FROM temp.order_index i WHERE i.source = orders.source AND i.order_id = orders.order_id);
         UPDATE journey_events SET stage = 'retention'
           WHERE event_type = 'order' AND EXISTS (
             SELECT 1 FROM temp.order_index i
             WHERE i.source = journey_events.source
               AND i.order_id = json_extract(journey_events.attributes, '$.order_id')
               AND i.idx >= 2);
         INSERT INTO customers (customer_id, email, first_seen_at, first_order_at, orders_count, total_spent)
           SELECT p.customer_id, p.customer_id, MIN(p.seen_at), o.first_order_at,
                  COALESCE(o.cnt, 0), COALESCE(o.spent, 0)
           FROM temp.people p
           LEFT JOIN (SELECT customer_id, MIN(created_at) AS first_order_at, COUNT(*) AS cnt,
                             SUM(total_price) AS spent
                      FROM orders WHERE cancelled = 0 AND test = 0 AND customer_id IS NOT NULL
                      GROUP BY customer_id) o ON o.customer_id = p.customer_id
           GROUP BY p.customer_id;
         DELETE FROM temp.people; DELETE FROM temp.order_index;",
    )?;
    stats.customers = tx.query_row("SELECT COUNT(*) FROM customers", [], |r| r.get(0))?;
    Ok(stats)
}
