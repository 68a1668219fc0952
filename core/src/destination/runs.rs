//! The run history's SQL (`sync_runs`, `sync_run_streams`; migration 5), once per dialect. Each
//! function takes the store's connection and does its work in one transaction, so `status` never sees
//! a run's end without its streams.

use chrono::SecondsFormat;

use crate::runs::{RunEnd, RunStart, RunStream, RunSummary};
use crate::Result;

/// Runs `growthflow status` lists when it is not told otherwise.
pub const RECENT_RUNS: usize = 10;

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// SQLite's dialect.
pub mod sqlite {
    use rusqlite::{params, Connection, TransactionBehavior};

    use super::{rfc3339, Result, RunEnd, RunStart, RunStream, RunSummary};

    /// Record `run` as running, with a running row per stream.
    pub fn record_start(conn: &mut Connection, run: &RunStart) -> Result<()> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO sync_runs (run_id, command, host, pid, started_at, status)
             VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
            params![
                run.run_id,
                run.command,
                run.host,
                run.pid,
                rfc3339(run.started_at)
            ],
        )?;
        {
            let mut stream = tx.prepare(
                "INSERT OR IGNORE INTO sync_run_streams (run_id, source, stream, status)
                 VALUES (?1, ?2, ?3, 'running')",
            )?;
            for (source, name) in &run.streams {
                stream.execute(params![run.run_id, source, name])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Record how the run ended: its status and each stream's result (replacing the running rows).
    pub fn record_end(conn: &mut Connection, end: &RunEnd) -> Result<()> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE sync_runs SET finished_at = ?2, status = ?3, records = ?4, error = ?5
             WHERE run_id = ?1",
            params![
                end.run_id,
                rfc3339(end.finished_at),
                end.status,
                end.records() as i64,
                end.error
            ],
        )?;
        tx.execute(
            "DELETE FROM sync_run_streams WHERE run_id = ?1",
            [&end.run_id],
        )?;
        {
            let mut insert = tx.prepare(
                "INSERT OR REPLACE INTO sync_run_streams (run_id, source, stream, records, status,
                   error_kind, error, cursor, requests, waited_seconds, seconds)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for s in &end.streams {
                insert.execute(params![
                    end.run_id,
                    s.source,
                    s.stream,
                    s.records as i64,
                    s.status,
                    s.kind,
                    s.error,
                    s.cursor,
                    s.requests as i64,
                    s.waited_seconds,
                    s.seconds
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The last `limit` runs, newest first, with their streams; only the runs that read one of
    /// `sources` when it is not empty.
    pub fn recent_runs(
        conn: &mut Connection,
        limit: usize,
        sources: &[String],
    ) -> Result<Vec<RunSummary>> {
        let tx = conn.transaction()?;
        let wanted = serde_json::to_string(sources)?;
        let mut runs: Vec<RunSummary> = {
            let mut stmt = tx.prepare(
                "SELECT run_id, command, host, pid, started_at, finished_at, status, records, error
                 FROM sync_runs r
                 WHERE ?1 = 0 OR EXISTS (
                     SELECT 1 FROM sync_run_streams s
                     WHERE s.run_id = r.run_id AND s.source IN (SELECT value FROM json_each(?2)))
                 ORDER BY started_at DESC, run_id DESC
                 LIMIT ?3",
            )?;
            let rows =
                stmt.query_map(params![sources.len() as i64, wanted, limit as i64], |r| {
                    Ok(RunSummary {
                        run_id: r.get(0)?,
                        command: r.get(1)?,
                        host: r.get(2)?,
                        pid: r.get(3)?,
                        started_at: r.get(4)?,
                        finished_at: r.get(5)?,
                        status: r.get(6)?,
                        records: r.get::<_, i64>(7)?.max(0) as u64,
                        error: r.get(8)?,
                        streams: Vec::new(),
                    })
                })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        {
            let mut stmt = tx.prepare(
                "SELECT source, stream, records, status, error_kind, error, cursor, requests,
                        waited_seconds, seconds
                 FROM sync_run_streams WHERE run_id = ?1 ORDER BY source, stream",
            )?;
            for run in &mut runs {
                let rows = stmt.query_map([&run.run_id], |r| {
                    Ok(RunStream {
                        source: r.get(0)?,
                        stream: r.get(1)?,
                        records: r.get::<_, i64>(2)?.max(0) as u64,
                        status: r.get(3)?,
                        kind: r.get(4)?,
                        error: r.get(5)?,
                        cursor: r.get(6)?,
                        requests: r.get::<_, i64>(7)?.max(0) as u64,
                        waited_seconds: r.get(8)?,
                        seconds: r.get(9)?,
                    })
                })?;
                run.streams = rows.collect::<rusqlite::Result<_>>()?;
            }
        }
        tx.commit()?;
        Ok(runs)
    }
}

/// PostgreSQL's dialect.
pub mod postgres {
    use ::postgres::{Client, IsolationLevel};

    use super::{Result, RunEnd, RunStart, RunStream, RunSummary};

    /// Record `run` as running, with a running row per stream.
    pub fn record_start(client: &mut Client, run: &RunStart) -> Result<()> {
        let mut tx = client.transaction()?;
        tx.execute(
            "INSERT INTO sync_runs (run_id, command, host, pid, started_at, status)
             VALUES ($1, $2, $3, $4, $5, 'running')",
            &[
                &run.run_id,
                &run.command,
                &run.host,
                &i64::from(run.pid),
                &run.started_at,
            ],
        )?;
        let stream = tx.prepare(
            "INSERT INTO sync_run_streams (run_id, source, stream, status)
             VALUES ($1, $2, $3, 'running') ON CONFLICT DO NOTHING",
        )?;
        for (source, name) in &run.streams {
            tx.execute(&stream, &[&run.run_id, source, name])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Record how the run ended: its status and each stream's result (replacing the running rows).
    pub fn record_end(client: &mut Client, end: &RunEnd) -> Result<()> {
        let mut tx = client.transaction()?;
        tx.execute(
            "UPDATE sync_runs SET finished_at = $2, status = $3, records = $4, error = $5
             WHERE run_id = $1",
            &[
                &end.run_id,
                &end.finished_at,
                &end.status,
                &(end.records() as i64),
                &end.error,
            ],
        )?;
        tx.execute(
            "DELETE FROM sync_run_streams WHERE run_id = $1",
            &[&end.run_id],
        )?;
        let insert = tx.prepare(
            "INSERT INTO sync_run_streams (run_id, source, stream, records, status, error_kind,
               error, cursor, requests, waited_seconds, seconds)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (run_id, source, stream) DO UPDATE SET records = excluded.records,
               status = excluded.status, error_kind = excluded.error_kind, error = excluded.error,
               cursor = excluded.cursor, requests = excluded.requests,
               waited_seconds = excluded.waited_seconds, seconds = excluded.seconds",
        )?;
        for s in &end.streams {
            tx.execute(
                &insert,
                &[
                    &end.run_id,
                    &s.source,
                    &s.stream,
                    &(s.records as i64),
                    &s.status,
                    &s.kind,
                    &s.error,
                    &s.cursor,
                    &(s.requests as i64),
                    &s.waited_seconds,
                    &s.seconds,
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The last `limit` runs, newest first, with their streams; only the runs that read one of
    /// `sources` when it is not empty.
    pub fn recent_runs(
        client: &mut Client,
        limit: usize,
        sources: &[String],
    ) -> Result<Vec<RunSummary>> {
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let wanted: Vec<String> = sources.to_vec();
        let time = |col: &str| {
            format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
        };
        let rows = tx.query(
            &format!(
                "SELECT run_id, command, host, pid, {}, {}, status, records, error
                 FROM sync_runs r
                 WHERE cardinality($1::TEXT[]) = 0 OR EXISTS (
                     SELECT 1 FROM sync_run_streams s
                     WHERE s.run_id = r.run_id AND s.source = ANY($1))
                 ORDER BY r.started_at DESC, r.run_id DESC
                 LIMIT $2",
                time("started_at"),
                time("finished_at")
            ),
            &[&wanted, &(limit as i64)],
        )?;
        let mut runs: Vec<RunSummary> = rows
            .iter()
            .map(|r| RunSummary {
                run_id: r.get(0),
                command: r.get(1),
                host: r.get(2),
                pid: r.get(3),
                started_at: r.get(4),
                finished_at: r.get(5),
                status: r.get(6),
                records: r.get::<_, i64>(7).max(0) as u64,
                error: r.get(8),
                streams: Vec::new(),
            })
            .collect();
        let streams = tx.prepare(
            "SELECT source, stream, records, status, error_kind, error, cursor, requests,
                    waited_seconds, seconds
             FROM sync_run_streams WHERE run_id = $1 ORDER BY source, stream",
        )?;
        for run in &mut runs {
            run.streams = tx
                .query(&streams, &[&run.run_id])?
                .iter()
                .map(|r| RunStream {
                    source: r.get(0),
                    stream: r.get(1),
                    records: r.get::<_, i64>(2).max(0) as u64,
                    status: r.get(3),
                    kind: r.get(4),
                    error: r.get(5),
                    cursor: r.get(6),
                    requests: r.get::<_, i64>(7).max(0) as u64,
                    waited_seconds: r.get(8),
                    seconds: r.get(9),
                })
                .collect();
        }
        tx.commit()?;
        Ok(runs)
    }
}
