//! Safety of the dataset.

use super::*;

/// A source name stays with its connector type: a re-platformed store under the same name is refused
/// (kind `config`, saying how to proceed) instead of resuming from the other connector's cursors.
fn a_source_keeps_its_type(backend: Backend) {
    let Some(mut db) = Db::memory(backend, "keeps_type") else {
        return;
    };
    db.dest().register_source("shop", "woocommerce").unwrap();
    db.dest()
        .commit(&[batch(
            "shop",
            "orders",
            vec![],
            Some(json!({"cursor": "2025-01-02"})),
        )])
        .unwrap();
    // The same type again is fine.
    db.dest().register_source("shop", "woocommerce").unwrap();
    let err = db.dest().register_source("shop", "shopify").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("`shop` as type `woocommerce`, not `shopify`"),
        "{msg}"
    );
    assert!(msg.contains("growthflow state reset shop --yes"), "{msg}");
    assert!(msg.contains("new name"), "{msg}");
    assert_eq!(
        rows(&mut db, "SELECT source, type FROM growthflow_sources"),
        vec![vec![t("shop"), t("woocommerce")]]
    );
    assert_eq!(
        db.dest().load_state("shop", "orders").unwrap(),
        Some(json!({"cursor": "2025-01-02"}))
    );
    // Another name is another source.
    db.dest().register_source("shop2", "shopify").unwrap();
}

fn on_runtime<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The dataset holds customers' emails and orders: the file and its `-wal`/`-shm` are owner-only.
#[cfg(unix)]
#[test]
fn a_new_sqlite_dataset_and_its_log_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gf.db");
    let mut dest = SqliteDestination::open(&path).unwrap();
    dest.register_source("s", "teststore").unwrap();
    dest.commit(&[batch("s", "orders", vec![rec("1", None, json!({}))], None)])
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}: {:o}", file.display(), mode);
    }
}

/// Once the writer is closed, the `.db` file alone holds every commit: a copy of it without the
/// `-wal` has the records (a backup or a move between machines loses nothing).
#[test]
fn after_the_writer_closes_the_db_file_alone_holds_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gf.db");
    let dest = SqliteDestination::open(&path).unwrap();
    on_runtime(async {
        let writer = DatasetWriter::spawn(Box::new(dest));
        writer.register_source("s", "teststore").await.unwrap();
        writer
            .commit(batch(
                "s",
                "orders",
                vec![
                    rec("1", None, json!({"id": 1})),
                    rec("2", None, json!({"id": 2})),
                ],
                Some(json!({"cursor": "x"})),
            ))
            .await
            .unwrap();
        writer.close().await.unwrap();
        let err = writer.load_state("s", "orders").await.unwrap_err();
        assert!(err.to_string().contains("stopped"), "{err}");
    });
    let copy = tempfile::tempdir().unwrap();
    let copied = copy.path().join("copy.db");
    std::fs::copy(&path, &copied).unwrap();
    let conn = Connection::open(&copied).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM raw_records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    let state: String = conn
        .query_row("SELECT state FROM sync_state", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, r#"{"cursor":"x"}"#);
}

/// `state show` and `state reset`: a stream's reset keeps the source's type and the other streams; a
/// source's reset forgets its type too, so the same name can come back as another connector.
fn state_can_be_listed_and_reset_per_stream_or_per_source(backend: Backend) {
    let Some(mut db) = Db::memory(backend, "state_reset") else {
        return;
    };
    db.register_source("shop", "woocommerce").unwrap();
    db.register_source("ads", "meta_ads").unwrap();
    db.commit(&[
        batch(
            "shop",
            "orders",
            vec![rec("1", None, json!({}))],
            Some(json!({"c": 1})),
        ),
        batch("shop", "customers", vec![], Some(json!({"c": 2}))),
        batch("ads", "insights", vec![], Some(json!({"d": "2025-01-01"}))),
    ])
    .unwrap();
    let all = db.saved_states(None).unwrap();
    let listed: Vec<(&str, Option<&str>, &str, &Value)> = all
        .iter()
        .map(|s| {
            (
                s.source.as_str(),
                s.source_type.as_deref(),
                s.stream.as_str(),
                &s.state,
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (
                "ads",
                Some("meta_ads"),
                "insights",
                &json!({"d": "2025-01-01"})
            ),
            ("shop", Some("woocommerce"), "customers", &json!({"c": 2})),
            ("shop", Some("woocommerce"), "orders", &json!({"c": 1})),
        ]
    );
    for s in &all {
        assert!(
            DateTime::parse_from_rfc3339(&s.updated_at).is_ok(),
            "{}",
            s.updated_at
        );
    }
    assert_eq!(db.saved_states(Some("ads")).unwrap().len(), 1);

    assert_eq!(db.reset_state("shop", Some("orders")).unwrap(), 1);
    assert_eq!(db.load_state("shop", "orders").unwrap(), None);
    assert_eq!(
        db.load_state("shop", "customers").unwrap(),
        Some(json!({"c": 2}))
    );
    // The type is still remembered after a stream's reset.
    assert!(db.register_source("shop", "shopify").is_err());

    assert_eq!(db.reset_state("shop", None).unwrap(), 1);
    assert_eq!(db.saved_states(Some("shop")).unwrap(), vec![]);
    assert_eq!(
        db.load_state("ads", "insights").unwrap(),
        Some(json!({"d": "2025-01-01"}))
    );
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM raw_records"), 1);
    db.register_source("shop", "shopify").unwrap();
    assert_eq!(
        rows(
            &mut db,
            "SELECT type FROM growthflow_sources WHERE source = 'shop'"
        ),
        vec![vec![t("shopify")]]
    );
}

both_stores!(
    a_source_keeps_its_type,
    state_can_be_listed_and_reset_per_stream_or_per_source,
);
