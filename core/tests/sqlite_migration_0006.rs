//! Version 6 turns a SQLite dataset's `raw_records` into a rowid table: an existing dataset keeps every
//! record, its key and its state, and upserts still replace rather than duplicate.

use growthflow_core::connector::Record;
use growthflow_core::destination::sqlite::SqliteDestination;
use growthflow_core::destination::{Destination, WriteBatch};
use rusqlite::Connection;
use serde_json::json;

/// A dataset exactly as growthflow left it at version 3 (raw_records WITHOUT ROWID).
fn version_3_dataset(path: &std::path::Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .unwrap();
    for (v, sql) in [
        (
            1,
            include_str!("../src/destination/migrations/0001_init.sql"),
        ),
        (
            2,
            include_str!("../src/destination/migrations/0002_incremental_journey.sql"),
        ),
        (
            3,
            include_str!("../src/destination/migrations/0003_funnel_daily.sql"),
        ),
    ] {
        conn.execute_batch(sql).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, '2025-01-01T00:00:00Z')",
            [v],
        )
        .unwrap();
    }
    for i in 0..50 {
        conn.execute(
            "INSERT INTO raw_records (source, stream, record_id, cursor_value, payload, synced_at)
             VALUES ('woo', 'orders', ?1, ?2, ?3, '2025-01-01T00:00:00.000000Z')",
            rusqlite::params![
                i.to_string(),
                format!("2025-01-01T00:00:{:02}Z", i % 60),
                json!({"id": i, "note": "x".repeat(2000)}).to_string()
            ],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO sync_state (source, stream, state, updated_at)
         VALUES ('woo', 'orders', '{\"cursor\":\"2025-01-01T00:00:49Z\"}', '2025-01-01T00:00:00Z')",
        [],
    )
    .unwrap();
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'raw_records'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.contains("WITHOUT ROWID"), "{sql}");
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn a_version_3_dataset_keeps_every_record_in_a_rowid_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    version_3_dataset(&path);

    let mut dest = SqliteDestination::open(&path).unwrap();
    let conn = dest.connection();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, (1..=11).collect::<Vec<i64>>());
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'raw_records'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
    assert!(sql.contains("UNIQUE (source, stream, record_id)"), "{sql}");
    assert_eq!(count(conn, "SELECT COUNT(*) FROM raw_records"), 50);
    assert_eq!(
        count(
            conn,
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'raw_records_synced_at'"
        ),
        1
    );
    let payload: String = conn
        .query_row(
            "SELECT payload FROM raw_records WHERE record_id = '7'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&payload).unwrap()["id"],
        7
    );
    assert_eq!(
        dest.load_state("woo", "orders").unwrap(),
        Some(json!({"cursor": "2025-01-01T00:00:49Z"}))
    );

    // The key still holds: a record read again replaces its row.
    dest.commit(&[WriteBatch {
        source: "woo".into(),
        stream: "orders".into(),
        records: vec![Record {
            id: "7".into(),
            cursor: Some("2025-02-01T00:00:00Z".into()),
            payload: json!({"id": 7, "note": "changed"}).into(),
        }],
        state: Some(json!({"cursor": "2025-02-01T00:00:00Z"})),
        replaces: None,
    }])
    .unwrap();
    let conn = dest.connection();
    assert_eq!(count(conn, "SELECT COUNT(*) FROM raw_records"), 50);
    let payload: String = conn
        .query_row(
            "SELECT payload FROM raw_records WHERE record_id = '7'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(payload, r#"{"id":7,"note":"changed"}"#);
    let dup = conn.execute(
        "INSERT INTO raw_records (source, stream, record_id, payload, synced_at)
         VALUES ('woo', 'orders', '8', '{}', 'x')",
        [],
    );
    assert!(dup.is_err(), "the unique key must refuse a second row");
    drop(dest);

    // Opened again: nothing is migrated twice.
    let dest = SqliteDestination::open(&path).unwrap();
    assert_eq!(
        count(dest.connection(), "SELECT COUNT(*) FROM schema_migrations"),
        11
    );
    assert_eq!(
        count(dest.connection(), "SELECT COUNT(*) FROM raw_records"),
        50
    );
}

#[test]
fn a_new_dataset_uses_large_pages_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    let dest = SqliteDestination::open(&dir.path().join("new.db")).unwrap();
    let conn = dest.connection();
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(page_size, 16384);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}
