//! The PostgreSQL side: session advisory locks, and rows that name their holders.

use super::*;

/// The lock connection, named apart from the writer's (`APP (locks)`) so that an operator
/// looking at `pg_stat_activity` tells them apart.
pub(super) fn connect(target: &PostgresTarget) -> Result<::postgres::Client> {
    let mut client = target.connect()?;
    client.batch_execute(
        "SELECT set_config('application_name', left(CASE current_setting('application_name')
             WHEN '' THEN 'growthflow' ELSE current_setting('application_name') END
             || ' (locks)', 63), false)",
    )?;
    Ok(client)
}

fn lock_name(schema: &str, key: &str) -> String {
    format!("{schema}/{key}")
}

/// Take `key` for `owner` unless another session holds it; the holder when one does.
pub fn try_lock(
    client: &mut ::postgres::Client,
    schema: &str,
    key: &str,
    owner: &RunOwner,
    ttl: Duration,
) -> Result<Option<LockHolder>> {
    let taken: bool = client
        .query_one(
            "SELECT pg_try_advisory_lock($1, hashtext($2))",
            &[&PG_LOCK_KEY, &lock_name(schema, key)],
        )?
        .get(0);
    if !taken {
        let row = client.query_opt(
            "SELECT run_id, host, pid,
                    to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM growthflow_locks WHERE source = $1",
            &[&key],
        )?;
        return Ok(Some(match row {
            Some(r) => LockHolder {
                run_id: r.get(0),
                host: r.get(1),
                pid: r.get(2),
                since: r.get(3),
            },
            // Taken a moment ago, its row not written yet.
            None => unknown_holder(),
        }));
    }
    client.execute(
        "INSERT INTO growthflow_locks (source, run_id, host, pid, since, heartbeat, expires)
         VALUES ($1, $2, $3, $4, now(), now(), now() + make_interval(secs => $5))
         ON CONFLICT (source) DO UPDATE SET run_id = excluded.run_id, host = excluded.host,
           pid = excluded.pid, since = excluded.since, heartbeat = excluded.heartbeat,
           expires = excluded.expires",
        &[
            &key,
            &owner.run_id,
            &owner.host,
            &i64::from(owner.pid),
            &ttl.as_secs_f64(),
        ],
    )?;
    Ok(None)
}

/// Note that `owner`'s run is alive; fails when the connection (and so the locks) is gone.
pub fn heartbeat(client: &mut ::postgres::Client, owner: &RunOwner, ttl: Duration) -> Result<()> {
    client.execute(
        "UPDATE growthflow_locks SET heartbeat = now(),
           expires = now() + make_interval(secs => $2) WHERE run_id = $1",
        &[&owner.run_id, &ttl.as_secs_f64()],
    )?;
    Ok(())
}

/// Release `key`: its row, then the advisory lock.
pub fn release(
    client: &mut ::postgres::Client,
    schema: &str,
    key: &str,
    owner: &RunOwner,
) -> Result<()> {
    client.execute(
        "DELETE FROM growthflow_locks WHERE source = $1 AND run_id = $2",
        &[&key, &owner.run_id],
    )?;
    client.query_one(
        "SELECT pg_advisory_unlock($1, hashtext($2))",
        &[&PG_LOCK_KEY, &lock_name(schema, key)],
    )?;
    Ok(())
}
