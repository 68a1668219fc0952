//! The rollups the report reads: kept up to date change by change, refreshed before reading.

use super::*;

/// Every row of the report's rollup tables, as text, sorted: what two ways of filling them are compared
/// by.
const ROLLUP_TABLES: [&str; 5] = [
    "growthflow_rollup_events",
    "growthflow_rollup_orders",
    "growthflow_rollup_refunds",
    "growthflow_rollup_customers",
    "growthflow_rollup_customer_currencies",
];

fn sqlite_rollups(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    for table in ROLLUP_TABLES {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let cols: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                    .collect();
                Ok(format!("{table}: {}", cols.join(", ")))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out.sort();
    out
}

fn postgres_rollups(client: &mut postgres::Client) -> Vec<String> {
    let mut out = Vec::new();
    for table in ROLLUP_TABLES {
        for r in client
            .query(&format!("SELECT t::text FROM {table} t"), &[])
            .unwrap()
        {
            out.push(format!("{table}: {}", r.get::<_, String>(0)));
        }
    }
    out.sort();
    out
}

/// Changes a sync could make, written in SQL both stores accept: an order moved to another day, into
/// another currency, cancelled and deleted; a refund's order made invalid; events moved, deleted,
/// re-attributed, re-valued and renamed; a repeat order renumbered; new rows on new days. (Numbers with
/// the scale SQLite's REAL copies into PostgreSQL have, so both PostgreSQL datasets hold the same
/// NUMERICs.)
const CHANGES: &[&str] = &[
    "UPDATE orders SET created_at = '2025-03-20T23:59:59Z' WHERE source = 'shop' AND order_id = '1002'",
    "UPDATE orders SET currency = 'EUR' WHERE source = 'woo' AND order_id = '2001'",
    "UPDATE orders SET cancelled = TRUE WHERE source = 'shop' AND order_id = '1001'",
    "DELETE FROM orders WHERE source = 'shop' AND order_id = '1005'",
    "UPDATE orders SET customer_order_index = 1 WHERE customer_id = 'alice@x.com'",
    "UPDATE journey_events SET date = '2025-03-29' WHERE event_type = 'sessions' AND date = '2025-03-01'",
    "DELETE FROM journey_events WHERE event_type = 'email_opened' AND date = '2025-03-10'",
    "UPDATE journey_events SET attributes = '{\"attributed\": false}' WHERE event_type = 'placed_order' AND value > 60",
    "UPDATE journey_events SET campaign = 'Renamed' WHERE event_type = 'ad_insights' AND date = '2025-03-05'",
    "UPDATE journey_events SET value = 12.34, quantity = 3.0 WHERE event_type = 'ad_insights' AND date = '2025-03-06'",
    "INSERT INTO orders (source, order_id, customer_id, email, created_at, currency, total_price, cancelled, test,
         utm_campaign, channel, customer_order_index)
     VALUES ('shop', '9001', 'zoe@x.com', 'zoe@x.com', '2025-05-01T10:00:00Z', 'usd ', 33.33, FALSE, FALSE,
         'New', 'email', 1),
            ('shop', '9002', 'alice@x.com', 'alice@x.com', '2025-05-02T10:00:00Z', 'USD', 1.01, FALSE, FALSE,
         NULL, 'direct', 3)",
    "INSERT INTO journey_events (event_id, source, stream, occurred_at, date, stage, event_type, channel,
         campaign, quantity, value, currency, attributes)
     VALUES ('new1', 'shop', 'refunds', '2025-05-03T00:00:00Z', '2025-05-03', 'feedback', 'refund', NULL,
         NULL, 1.0, 4.44, NULL, '{\"order_id\": \"9001\"}'),
            ('new2', 'ga4', 's', '2025-05-03T00:00:00Z', '2025-05-03', 'awareness', 'sessions', 'email',
         'New', 7.0, NULL, NULL, '{}')",
];

/// The rollups the rebuild keeps up to date change by change are the ones computed from scratch from
/// the final rows, in each store; and so is the report read from them.
#[test]
fn rollups_kept_up_to_date_equal_rollups_computed_from_scratch_in_each_store() {
    let conn = fixture();
    let schema = TestSchema::new("rollups");
    let mut pg = schema.as_ref().map(|s| copy_to_postgres(&conn, s));
    // Filled once before the changes (as by a first sync), so the changes are applied incrementally.
    let windows = [
        window("2025-03-01", "2025-03-30"),
        window("2025-02-01", "2025-05-31"),
        window("2025-03-06", "2025-03-20"),
        ReportOptions {
            currency: Some("EUR".into()),
            ..window("2025-01-01", "2025-12-31")
        },
    ];
    let before = build_report(&conn, &windows[1]).unwrap();
    assert_eq!(before.conversion.orders, 8, "{before:#?}");
    for sql in CHANGES {
        conn.execute_batch(sql).unwrap();
        if let Some(client) = pg.as_mut() {
            client.batch_execute(sql).unwrap();
        }
        // A refresh after each change, as each sync's rebuild does.
        growthflow_core::report::refresh_rollups_sqlite(&conn).unwrap();
        if let Some(client) = pg.as_mut() {
            let mut tx = client.transaction().unwrap();
            growthflow_core::report::refresh_rollups_postgres(&mut tx).unwrap();
            tx.commit().unwrap();
        }
    }
    let pending: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM growthflow_rollup_dirty_days)
                  + (SELECT COUNT(*) FROM growthflow_rollup_dirty_customers)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pending, 0, "the refresh empties the lists of changes");

    // The same final rows, written into a new dataset: its rollups are computed from scratch.
    let fresh = db();
    for table in ["orders", "journey_events", "growthflow_sources"] {
        let cols: Vec<String> = conn
            .prepare(&format!("SELECT * FROM {table}"))
            .unwrap()
            .column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let rows: Vec<Vec<rusqlite::types::Value>> = stmt
            .query_map([], |r| {
                (0..cols.len())
                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                    .collect()
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        for row in rows {
            fresh
                .execute(
                    &format!(
                        "INSERT INTO {table} ({}) VALUES ({})",
                        cols.join(", "),
                        marks.join(", ")
                    ),
                    rusqlite::params_from_iter(row),
                )
                .unwrap();
        }
    }
    growthflow_core::report::refresh_rollups_sqlite(&fresh).unwrap();
    let kept = sqlite_rollups(&conn);
    assert!(kept.len() > 40, "{kept:#?}");
    assert_eq!(kept, sqlite_rollups(&fresh), "sqlite");
    // Spot checks: the moved order is on its new day, the deleted one is gone, the cancelled order's
    // refund no longer counts.
    assert!(kept.iter().any(|r| r.starts_with(
        "growthflow_rollup_orders: Text(\"2025-03-20\"), Text(\"USD\"), Text(\"Spring Sale\")"
    )));
    assert!(!kept
        .iter()
        .any(|r| r.starts_with("growthflow_rollup_orders: Text(\"2025-03-31\")")));
    assert!(!kept
        .iter()
        .any(|r| r.starts_with("growthflow_rollup_refunds: Text(\"2025-03-02\")")));

    for opts in &windows {
        let got = build_report(&conn, opts).unwrap();
        assert_eq!(got, build_report(&fresh, opts).unwrap(), "{opts:?}");
        assert_ne!(got, build_report(&fixture(), opts).unwrap(), "{opts:?}");
    }

    if let (Some(client), Some(_)) = (pg.as_mut(), schema.as_ref()) {
        let fresh_schema = TestSchema::new("rollups_fresh").unwrap();
        let mut fresh_pg = copy_to_postgres(&conn, &fresh_schema);
        let kept = postgres_rollups(client);
        assert_eq!(kept.len(), sqlite_rollups(&conn).len());
        assert_eq!(kept, postgres_rollups(&mut fresh_pg), "postgres");
        for opts in &windows {
            assert_eq!(
                build_report(&mut *client, opts).unwrap(),
                build_report(&conn, opts).unwrap(),
                "postgres, {opts:?}"
            );
        }
    }
}

/// A report over rows written by hand (no rebuild, so nothing refreshed the rollups) refreshes them
/// first: it never reads stale days.
#[test]
fn a_report_over_rows_written_by_hand_refreshes_the_rollups_first() {
    let conn = fixture();
    let opts = window("2025-03-01", "2025-03-30");
    let first = build_report(&conn, &opts).unwrap();
    order(
        &conn,
        Order {
            id: "7777",
            customer: Some("new@x.com"),
            created_at: "2025-03-09T09:00:00Z",
            total: 1.5,
            index: Some(1),
            ..Default::default()
        },
    );
    let second = build_report(&conn, &opts).unwrap();
    assert_eq!(second.conversion.orders, first.conversion.orders + 1);
    assert_eq!(
        second.conversion.revenue,
        first.conversion.revenue + Decimal::from_str("1.5").unwrap()
    );
    assert_eq!(second.retention.customers, first.retention.customers + 1);
}
