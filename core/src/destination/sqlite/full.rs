//! SQLite's full rebuild, loaded like a bulk load: the journey tables and the report's rollups are
//! emptied and refilled from every raw record, so keeping their secondary indexes and rollup triggers
//! up to date row by row is wasted work. They are set aside for the whole rebuild and put back at its
//! end: an index built once from the final rows (sorted, then written page after page) is far cheaper
//! than one grown and rewritten by random inserts and updates, and the settle step and the rollups,
//! which read every row anyway, read the tables in order and sort instead of following an index to
//! rows all over the file. What the triggers would have noted is every day and customer, old and new,
//! so the rebuild recomputes every rollup instead (`refresh_all_sqlite`).
//!
//! Their definitions are read from `sqlite_master` rather than written here, so the migrations stay
//! the only place that declares them; everything happens in the rebuild's transaction, so a failed
//! rebuild rolls the indexes and triggers back with the rows.

use rusqlite::Transaction;

use crate::Result;

/// The tables a full rebuild empties and refills.
const REFILLED: &str = "'journey_events', 'orders', 'customers', 'growthflow_people',
    'growthflow_derived', 'growthflow_rollup_events', 'growthflow_rollup_orders',
    'growthflow_rollup_refunds', 'growthflow_rollup_customers',
    'growthflow_rollup_customer_currencies'";

/// Indexes and triggers taken off the refilled tables for the load, to be put back in this order.
pub(super) struct SetAside {
    indexes: Vec<String>,
    triggers: Vec<String>,
}

/// Take off the secondary indexes and the rollup triggers, and empty the journey and rollup tables.
pub(super) fn empty_tables(tx: &Transaction<'_>) -> Result<SetAside> {
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
    // Only the rollup triggers: the rebuild recomputes every rollup, which is all they would have
    // led to. A trigger for anything else would stay, and keep its indexes usable.
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
         DELETE FROM growthflow_derived; DELETE FROM growthflow_people;
         DELETE FROM growthflow_rollup_events; DELETE FROM growthflow_rollup_orders;
         DELETE FROM growthflow_rollup_refunds; DELETE FROM growthflow_rollup_customers;
         DELETE FROM growthflow_rollup_customer_currencies;",
    );
    tx.execute_batch(&drop)?;
    Ok(SetAside {
        indexes: indexes.into_iter().map(|(_, sql)| sql).collect(),
        triggers: triggers.into_iter().map(|(_, sql)| sql).collect(),
    })
}

/// Once every row is final (settled, rolled up): build the indexes again from them and put the
/// triggers back, so that later writes are noted row by row again.
pub(super) fn restore(tx: &Transaction<'_>, aside: SetAside) -> Result<()> {
    for sql in aside.indexes.into_iter().chain(aside.triggers) {
        tx.execute_batch(&sql)?;
    }
    Ok(())
}
