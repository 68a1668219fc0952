//! Commits.

use super::*;

fn commit_upserts_on_the_record_key(backend: Backend) {
    let Some(mut dest) = Db::memory(backend, "t") else {
        return;
    };
    dest.commit(&[batch(
        "s",
        "orders",
        vec![
            rec(
                "1",
                Some("2025-01-01T00:00:00Z"),
                json!({"id": 1, "v": "old"}),
            ),
            rec("2", Some("2025-01-01T00:00:00Z"), json!({"id": 2})),
        ],
        None,
    )])
    .unwrap();
    dest.commit(&[batch(
        "s",
        "orders",
        vec![rec(
            "1",
            Some("2025-01-02T00:00:00Z"),
            json!({"id": 1, "v": "new"}),
        )],
        None,
    )])
    .unwrap();
    // The same id in another stream or source is another record.
    dest.commit(&[
        batch("s", "refunds", vec![rec("1", None, json!({"r": 1}))], None),
        batch("t", "orders", vec![rec("1", None, json!({"o": 1}))], None),
    ])
    .unwrap();
    assert_eq!(
        rows(
            &mut dest,
            "SELECT source, stream, record_id, cursor_value, payload FROM raw_records
             ORDER BY source, stream, record_id"
        ),
        vec![
            vec![
                t("s"),
                t("orders"),
                t("1"),
                t("2025-01-02T00:00:00Z"),
                t(r#"{"id":1,"v":"new"}"#)
            ],
            vec![
                t("s"),
                t("orders"),
                t("2"),
                t("2025-01-01T00:00:00Z"),
                t(r#"{"id":2}"#)
            ],
            vec![t("s"), t("refunds"), t("1"), NULL, t(r#"{"r":1}"#)],
            vec![t("t"), t("orders"), t("1"), NULL, t(r#"{"o":1}"#)],
        ]
    );
    let synced = match &rows(
        &mut dest,
        "SELECT synced_at FROM raw_records WHERE record_id = '2' AND stream = 'orders'",
    )[0][0]
    {
        Sql::Text(s) => s.clone(),
        other => panic!("{other:?}"),
    };
    assert!(
        DateTime::parse_from_rfc3339(&synced).is_ok() && synced.ends_with('Z'),
        "{synced}"
    );
}

fn a_replacing_batch_drops_the_partition_rows_it_no_longer_has(backend: Backend) {
    let Some(mut dest) = Db::memory(backend, "t") else {
        return;
    };
    let day = |id: &str, d: &str| rec(id, Some(d), json!({"id": id}));
    dest.commit(&[
        batch(
            "g",
            "traffic_daily",
            vec![
                day("a", "2025-06-01"),
                day("b", "2025-06-01"),
                day("c", "2025-06-02"),
            ],
            None,
        ),
        batch("g", "other", vec![day("x", "2025-06-01")], None),
        batch("h", "traffic_daily", vec![day("y", "2025-06-01")], None),
    ])
    .unwrap();
    // 2025-06-01 is read again and only `a` and a new `d` remain.
    let mut replacing = batch(
        "g",
        "traffic_daily",
        vec![day("a", "2025-06-01"), day("d", "2025-06-01")],
        Some(json!({"cursor": "2025-06-01"})),
    );
    replacing.replaces = Some("2025-06-01".into());
    dest.commit(&[replacing]).unwrap();
    assert_eq!(
        rows(
            &mut dest,
            "SELECT source, stream, record_id FROM raw_records ORDER BY source, stream, record_id"
        ),
        vec![
            vec![t("g"), t("other"), t("x")],
            vec![t("g"), t("traffic_daily"), t("a")],
            vec![t("g"), t("traffic_daily"), t("c")],
            vec![t("g"), t("traffic_daily"), t("d")],
            vec![t("h"), t("traffic_daily"), t("y")],
        ],
        "only the re-read day of that source and stream is replaced"
    );
}

fn commit_saves_state_with_its_records_and_replaces_older_state(backend: Backend) {
    let Some(mut dest) = Db::memory(backend, "t") else {
        return;
    };
    assert_eq!(dest.load_state("s", "orders").unwrap(), None);
    dest.commit(&[batch(
        "s",
        "orders",
        vec![rec("1", Some("a"), json!({}))],
        Some(json!({"cursor": "a"})),
    )])
    .unwrap();
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM raw_records"), 1);
    assert_eq!(
        dest.load_state("s", "orders").unwrap(),
        Some(json!({"cursor": "a"}))
    );
    // A batch without state leaves the saved state alone.
    dest.commit(&[batch(
        "s",
        "orders",
        vec![rec("2", Some("b"), json!({}))],
        None,
    )])
    .unwrap();
    assert_eq!(
        dest.load_state("s", "orders").unwrap(),
        Some(json!({"cursor": "a"}))
    );
    dest.commit(&[batch(
        "s",
        "orders",
        vec![],
        Some(json!({"cursor": "b", "extra": [1, 2]})),
    )])
    .unwrap();
    assert_eq!(
        dest.load_state("s", "orders").unwrap(),
        Some(json!({"cursor": "b", "extra": [1, 2]}))
    );
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM sync_state"), 1);
    assert_eq!(dest.load_state("s", "other").unwrap(), None);
    assert_eq!(dest.load_state("other", "orders").unwrap(), None);
}

fn a_failing_commit_leaves_neither_records_nor_state(backend: Backend) {
    let Some(mut dest) = Db::memory(backend, "t") else {
        return;
    };
    // No record can naturally fail to insert, so make one fail with a trigger.
    dest.poison();
    let err = dest
        .commit(&[
            batch(
                "s",
                "orders",
                vec![rec("1", Some("a"), json!({}))],
                Some(json!({"cursor": "a"})),
            ),
            batch(
                "s",
                "refunds",
                vec![
                    rec("ok", Some("b"), json!({})),
                    rec("poison", Some("c"), json!({})),
                ],
                Some(json!({"cursor": "c"})),
            ),
        ])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Destination, "{err:?}");
    assert!(err.to_string().contains("poisoned record"), "{err}");
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM raw_records"), 0);
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM sync_state"), 0);

    // The connection is usable afterwards.
    dest.commit(&[batch(
        "s",
        "orders",
        vec![rec("1", Some("a"), json!({}))],
        Some(json!({"cursor": "a"})),
    )])
    .unwrap();
    assert_eq!(count(&mut dest, "SELECT COUNT(*) FROM raw_records"), 1);
    assert_eq!(
        dest.load_state("s", "orders").unwrap(),
        Some(json!({"cursor": "a"}))
    );
}

fn dataset_writer_commits_records_and_state_together(backend: Backend) {
    let Some(mut db) = Db::file(backend, "writer") else {
        return;
    };
    db.poison();
    let dest = db.take();
    let reader = &mut db;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(writer_commits(dest, reader));
}

async fn writer_commits(dest: Box<dyn Destination>, reader: &mut Db) {
    let writer = DatasetWriter::spawn(dest);
    writer.register_source("s", "teststore").await.unwrap();
    writer
        .commit(batch(
            "s",
            "orders",
            vec![
                rec("1", Some("2025-01-01"), json!({"id": 1})),
                rec("2", Some("2025-01-02"), json!({"id": 2})),
            ],
            Some(json!({"cursor": "2025-01-02"})),
        ))
        .await
        .unwrap();

    assert_eq!(
        rows(
            reader,
            "SELECT record_id, payload FROM raw_records ORDER BY record_id"
        ),
        vec![
            vec![t("1"), t(r#"{"id":1}"#)],
            vec![t("2"), t(r#"{"id":2}"#)]
        ]
    );
    assert_eq!(
        rows(reader, "SELECT source, stream, state FROM sync_state"),
        vec![vec![t("s"), t("orders"), t(r#"{"cursor":"2025-01-02"}"#)]]
    );
    assert_eq!(
        writer.load_state("s", "orders").await.unwrap(),
        Some(json!({"cursor": "2025-01-02"}))
    );

    let err = writer
        .commit(batch(
            "s",
            "orders",
            vec![
                rec("3", Some("2025-01-03"), json!({"id": 3})),
                rec("poison", Some("2025-01-04"), json!({})),
            ],
            Some(json!({"cursor": "2025-01-04"})),
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("poisoned record"), "{err}");
    assert_eq!(count(reader, "SELECT COUNT(*) FROM raw_records"), 2);
    assert_eq!(
        writer.load_state("s", "orders").await.unwrap(),
        Some(json!({"cursor": "2025-01-02"}))
    );
    assert_eq!(
        rows(reader, "SELECT source, type FROM growthflow_sources"),
        vec![vec![t("s"), t("teststore")]]
    );
}

both_stores!(
    commit_upserts_on_the_record_key,
    a_replacing_batch_drops_the_partition_rows_it_no_longer_has,
    commit_saves_state_with_its_records_and_replaces_older_state,
    a_failing_commit_leaves_neither_records_nor_state,
    dataset_writer_commits_records_and_state_together,
);
