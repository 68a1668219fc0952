//! SQLite's full rebuild, loaded like a bulk load: the journey tables are emptied and refilled from
//! every raw record, so keeping their secondary indexes and rollup triggers up to date row by row is
//! wasted work. They are set aside for the load and put back afterwards (an index built once from
//! sorted rows is far cheaper than one grown by random inserts), and what the triggers would have noted
//! (every day and customer of the old rows and of the new) is noted set-based instead.
//!
//! Their definitions are read from `sqlite_master` rather than written here, so the migrations stay
//! the only place that declares them; everything happens in the rebuild's transaction, so a failed
//! rebuild rolls the indexes and triggers back with the rows.

use rusqlite::Transaction;

use crate::Result;

/// The tables a full rebuild empties and refills.
const REFILLED: &str =
    "'journey_events', 'orders', 'customers', 'growthflow_people', 'growthflow_derived'";

/// Indexes and triggers taken off the refilled tables for the load, to be put back in this order.
pub(super) struct SetAside {
    indexes: Vec<String>,
    triggers: Vec<String>,
}

/// Note every day and customer the current rows touch (the delete triggers would have), take off the
/// secondary indexes and the rollup triggers, and empty the journey tables.
pub(super) fn empty_tables(tx: &Transaction<'_>) -> Result<SetAside> {
    note_every_day_and_customer(tx)?;
    let defs = |kind: &str, filter: &str| -> Result<Vec<(String, String)>> {
        let sql = format!(
            "SELECT name, sql FROM sqlite_master
             WHERE type = '{kind}' AND tbl_name IN ({REFILLED}) AND sql IS NOT NULL {filter}
             ORDER BY name"
        );
        let mut stmt = tx.prepare(&sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    };
    // Only the rollup triggers: their effect is what `note_every_day_and_customer` reproduces. A
    // trigger for anything else would stay, and keep its indexes usable.
    let triggers = defs("trigger", "AND name LIKE '%\\_rollup\\_%' ESCAPE '\\'")?;
    let indexes = defs("index", "")?;
    let mut drop = String::new();
    for (name, _) in &triggers {
        drop.push_str(&format!("DROP TRIGGER \"{name}\";\n"));
    }
    for (name, _) in &indexes {
        drop.push_str(&format!("DROP INDEX \"{name}\";\n"));
    }
    // Without triggers, a `DELETE` without `WHERE` truncates instead of deleting row by row.
    drop.push_str(
        "DELETE FROM journey_events; DELETE FROM orders; DELETE FROM customers;
         DELETE FROM growthflow_derived; DELETE FROM growthflow_people;",
    );
    tx.execute_batch(&drop)?;
    Ok(SetAside {
        indexes: indexes.into_iter().map(|(_, sql)| sql).collect(),
        triggers: triggers.into_iter().map(|(_, sql)| sql).collect(),
    })
}

/// Build the indexes again, from the loaded rows: before the settle step, whose statements use them.
pub(super) fn restore_indexes(tx: &Transaction<'_>, aside: &mut SetAside) -> Result<()> {
    for sql in aside.indexes.drain(..) {
        tx.execute_batch(&sql)?;
    }
    Ok(())
}

/// After the settle step: note every day and customer of the new rows and put the triggers back, so
/// that the rollup refresh that follows recomputes everything the rebuild changed and later writes are
/// noted row by row again.
pub(super) fn restore_triggers(tx: &Transaction<'_>, aside: SetAside) -> Result<()> {
    note_every_day_and_customer(tx)?;
    for sql in aside.triggers {
        tx.execute_batch(&sql)?;
    }
    Ok(())
}

/// What the rollup triggers note for each row of `journey_events` and `orders`, for all of them at
/// once: the event's day, the order's day and customer (an order's refunds are events, so their days
/// are among the events').
fn note_every_day_and_customer(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(
        "INSERT OR IGNORE INTO growthflow_rollup_dirty_days (date)
           SELECT date FROM journey_events WHERE date IS NOT NULL
           UNION SELECT substr(created_at, 1, 10) FROM orders WHERE created_at IS NOT NULL;
         INSERT OR IGNORE INTO growthflow_rollup_dirty_customers (customer_id)
           SELECT DISTINCT customer_id FROM orders WHERE customer_id IS NOT NULL;",
    )?;
    Ok(())
}
