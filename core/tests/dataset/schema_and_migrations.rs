//! Schema and migrations.

use super::*;

fn assert_contract_schema(db: &mut Db) {
    let expect: &[(&str, &[&str])] = &[
        (
            "raw_records",
            &[
                "source",
                "stream",
                "record_id",
                "cursor_value",
                "payload",
                "synced_at",
            ],
        ),
        ("sync_state", &["source", "stream", "state", "updated_at"]),
        (
            "customers",
            &[
                "customer_id",
                "email",
                "first_seen_at",
                "first_order_at",
                "orders_count",
                "total_spent",
            ],
        ),
        (
            "orders",
            &[
                "source",
                "order_id",
                "customer_id",
                "email",
                "created_at",
                "currency",
                "total_price",
                "subtotal_price",
                "total_discounts",
                "total_refunded",
                "financial_status",
                "cancelled",
                "test",
                "utm_source",
                "utm_medium",
                "utm_campaign",
                "channel",
                "landing_page",
                "referrer",
                "customer_order_index",
            ],
        ),
        (
            "journey_events",
            &[
                "event_id",
                "source",
                "stream",
                "occurred_at",
                "date",
                "stage",
                "event_type",
                "channel",
                "campaign",
                "customer_id",
                "quantity",
                "value",
                "currency",
                "attributes",
            ],
        ),
    ];
    for (table, cols) in expect {
        assert_eq!(&db.columns(table), cols, "columns of {table}");
    }
}

fn migrations_create_the_contract_tables_on_a_file(backend: Backend) {
    // A folder (SQLite) or a schema (PostgreSQL) that does not exist yet is created.
    let Some(mut dest) = Db::file(backend, "migrations_file") else {
        return;
    };
    assert!(dest.exists());
    assert_contract_schema(&mut dest);
    assert_eq!(
        rows(
            &mut dest,
            "SELECT version FROM schema_migrations ORDER BY version"
        ),
        vec![
            vec![i(1)],
            vec![i(2)],
            vec![i(3)],
            vec![i(4)],
            vec![i(5)],
            vec![i(6)],
            vec![i(7)],
            vec![i(8)],
            vec![i(9)],
            vec![i(10)],
            vec![i(11)]
        ]
    );
    // The BI view (0003) is there, empty.
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM funnel_daily"), 0);
}

fn migrations_create_the_contract_tables_in_memory(backend: Backend) {
    let Some(mut dest) = Db::memory(backend, "migrations_memory") else {
        return;
    };
    assert_contract_schema(&mut dest);
}

fn reopening_an_existing_dataset_does_not_rerun_migrations(backend: Backend) {
    let Some(mut dest) = Db::file(backend, "reopen") else {
        return;
    };
    dest.commit(&[batch(
        "s",
        "orders",
        vec![rec("1", None, json!({"id": 1}))],
        Some(json!({"cursor": "c"})),
    )])
    .unwrap();
    let before = rows(
        &mut dest,
        "SELECT version, applied_at FROM schema_migrations",
    );
    assert_eq!(before.len(), 11);
    dest.reopen();
    assert_eq!(
        rows(
            &mut dest,
            "SELECT version, applied_at FROM schema_migrations"
        ),
        before
    );
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM raw_records"), 1);
    assert_eq!(
        dest.load_state("s", "orders").unwrap(),
        Some(json!({"cursor": "c"}))
    );
    assert_contract_schema(&mut dest);
}

fn a_dataset_from_a_newer_growthflow_is_refused(backend: Backend) {
    let Some(mut dest) = Db::file(backend, "too_new") else {
        return;
    };
    let sql = match backend {
        Backend::Sqlite => "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 'x')",
        Backend::Postgres => {
            "INSERT INTO schema_migrations (version, applied_at) VALUES (999, clock_timestamp())"
        }
    };
    match (&dest.file, dest.reader.as_mut()) {
        (Some(path), _) => {
            Connection::open(path).unwrap().execute(sql, []).unwrap();
        }
        (_, Some(reader)) => {
            blocking(|| reader.execute(sql, &[]).unwrap());
        }
        _ => unreachable!(),
    }
    let err = match backend {
        Backend::Sqlite => SqliteDestination::open(dest.file.as_ref().unwrap()).map(drop),
        Backend::Postgres => {
            let target = dest.schema.as_ref().unwrap().target();
            blocking(|| PostgresDestination::open(&target).map(drop))
        }
    }
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Destination);
    let found = growthflow_core::destination::schema_too_new(&err).expect("SchemaTooNew");
    assert_eq!((found.found, found.supported), (999, 11));
    assert!(err.to_string().contains("newer growthflow"), "{err}");
    // Nothing was touched.
    assert_eq!(
        count(&mut dest, "SELECT COUNT(*) FROM schema_migrations"),
        12
    );
}

both_stores!(
    migrations_create_the_contract_tables_on_a_file,
    migrations_create_the_contract_tables_in_memory,
    reopening_an_existing_dataset_does_not_rerun_migrations,
    a_dataset_from_a_newer_growthflow_is_refused,
);
