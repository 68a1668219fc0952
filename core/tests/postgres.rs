//! What only the PostgreSQL destination has: connection and permission errors that name the setting and
//! never the password, migrations that two first runs cannot race, and a connection killed mid-sync.
//! The shared dataset behaviour is in `dataset.rs`, run against both stores. Skipped (with a visible
//! note) where no test server answers, unless `GROWTHFLOW_REQUIRE_POSTGRES=1`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use growthflow_core::connector::Record;
use growthflow_core::destination::postgres::testing::{server_url, TestSchema};
use growthflow_core::destination::postgres::{PostgresDestination, PostgresTarget};
use growthflow_core::destination::{Destination, WriteBatch};
use growthflow_core::ErrorKind;
use serde_json::json;

const PASSWORD: &str = "hunter2-not-to-be-printed";

/// The test server's URL with another user and a password.
fn url_as(user: &str) -> Option<String> {
    let mut url = url::Url::parse(&server_url()?).unwrap();
    url.set_username(user).unwrap();
    url.set_password(Some(PASSWORD)).unwrap();
    Some(url.to_string())
}

/// A login role of the test server, dropped (with its grants) at the end.
struct Role {
    name: String,
    admin: postgres::Client,
}

impl Role {
    fn new(label: &str, admin: &TestSchema) -> Role {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "gft_{label}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = admin.client();
        admin
            .batch_execute(&format!("CREATE ROLE {name} LOGIN"))
            .unwrap();
        Role { name, admin }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.admin.batch_execute(&format!(
            "DROP OWNED BY {0}; DROP ROLE IF EXISTS {0}",
            self.name
        ));
    }
}

fn batch(stream: &str, ids: &[&str], cursor: &str) -> WriteBatch {
    WriteBatch {
        source: "s".into(),
        stream: stream.into(),
        records: ids
            .iter()
            .map(|id| Record {
                id: id.to_string(),
                cursor: Some(cursor.into()),
                payload: json!({"id": id, "amount": "12.30"}).into(),
            })
            .collect(),
        state: Some(json!({"cursor": cursor})),
        replaces: None,
    }
}

fn assert_clear(err: &growthflow_core::Error, setting: &str) {
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Destination, "{text}");
    assert!(text.contains(setting), "names {setting}: {text}");
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    assert!(
        !format!("{err:?}").contains(PASSWORD),
        "the password leaked: {err:?}"
    );
}

#[test]
fn an_unreachable_server_names_the_url_not_the_password() {
    let url = format!("postgres://gf:{PASSWORD}@127.0.0.1:1/db?connect_timeout=5");
    let target = PostgresTarget::parse(&url, None).unwrap();
    assert!(!format!("{target:?}").contains(PASSWORD));
    let err = PostgresDestination::open(&target).unwrap_err();
    assert_clear(&err, "destination.url");
    assert!(err.to_string().contains("did not answer"), "{err}");
}

#[test]
fn a_refused_login_names_the_url_not_the_password() {
    let Some(url) = url_as("gft_nobody_at_all") else {
        return;
    };
    let err = PostgresDestination::connect(&url, Some("gft_unused")).unwrap_err();
    assert_clear(&err, "destination.url");
}

#[test]
fn a_schema_the_role_may_not_create_names_the_schema() {
    let Some(schema) = TestSchema::new("no_create") else {
        return;
    };
    let role = Role::new("nocreate", &schema);
    let url = url_as(&role.name).unwrap();
    let err = PostgresDestination::connect(&url, Some(schema.name())).unwrap_err();
    assert_clear(&err, "destination.schema");
    assert!(err.to_string().contains("lacks the privilege"), "{err}");
}

#[test]
fn a_read_only_role_is_refused_before_syncing() {
    let Some(schema) = TestSchema::new("read_only") else {
        return;
    };
    drop(schema.open());
    let role = Role::new("reader", &schema);
    schema
        .client()
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA \"{0}\" TO {1}; GRANT SELECT ON ALL TABLES IN SCHEMA \"{0}\" TO {1}",
            schema.name(),
            role.name
        ))
        .unwrap();
    let url = url_as(&role.name).unwrap();
    let err = PostgresDestination::connect(&url, Some(schema.name())).unwrap_err();
    assert_clear(&err, "destination.url");
    assert!(err.to_string().contains("may read but not write"), "{err}");
    // What it may do, it can: read the dataset.
    let mut reader = PostgresTarget::parse(&url, Some(schema.name()))
        .unwrap()
        .connect()
        .unwrap();
    let n: i64 = reader
        .query_one("SELECT COUNT(*) FROM raw_records", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[test]
fn two_first_runs_at_once_both_succeed() {
    let Some(schema) = TestSchema::new("race") else {
        return;
    };
    let target = schema.target();
    let barrier = std::sync::Barrier::new(4);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    PostgresDestination::open(&target).map(drop)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in results {
        r.unwrap();
    }
    let versions: Vec<i32> = schema
        .client()
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=11).collect::<Vec<i32>>());
}

#[test]
fn a_backend_terminated_mid_sync_fails_the_commit_and_a_rerun_completes() {
    let Some(schema) = TestSchema::new("terminated") else {
        return;
    };
    let Some(reference) = TestSchema::new("uninterrupted") else {
        return;
    };
    let pages = [
        batch("orders", &["1", "2"], "c1"),
        batch("orders", &["3"], "c2"),
        batch("orders", &["4", "5"], "c3"),
    ];
    // The uninterrupted run.
    let mut whole = reference.open();
    for p in &pages {
        whole.commit(std::slice::from_ref(p)).unwrap();
    }

    let mut dest = schema.open();
    dest.commit(std::slice::from_ref(&pages[0])).unwrap();
    let pid: i32 = dest
        .client()
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    schema
        .client()
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    let err = dest.commit(std::slice::from_ref(&pages[1])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Destination, "{err}");
    assert!(err.to_string().starts_with("dataset error: "), "{err}");
    assert!(
        err.to_string()
            .contains("connection to the server was lost"),
        "says why: {err}"
    );

    // The rerun (here: the same destination, which connects again) resumes from the saved state,
    // which never ran ahead of the data.
    assert_eq!(
        dest.load_state("s", "orders").unwrap(),
        Some(json!({"cursor": "c1"}))
    );
    for p in &pages[1..] {
        dest.commit(std::slice::from_ref(p)).unwrap();
    }
    let expected = dump(&mut whole);
    assert_eq!(expected.len(), 6);
    assert_eq!(dump(&mut dest), expected);
}

/// The test server's certificate when it serves TLS and this process can read the certificate (the
/// server is local), to hold the `sslmode` choices against; else `None` and the TLS test is a no-op.
fn server_certificate(schema: &TestSchema) -> Option<String> {
    let mut c = schema.client();
    let on: String = c.query_one("SHOW ssl", &[]).unwrap().get(0);
    let file: String = c.query_one("SHOW ssl_cert_file", &[]).unwrap().get(0);
    (on == "on" && std::fs::read(&file).is_ok()).then_some(file)
}

#[test]
fn sslmodes_encrypt_and_verify_as_libpq_does() {
    let Some(schema) = TestSchema::new("tls") else {
        return;
    };
    let Some(cert) = server_certificate(&schema) else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"sslmode test skipped: the test server does not serve TLS with a readable certificate\n",
        );
        return;
    };
    let base = url::Url::parse(schema.url()).unwrap();
    let with = |query: &str| {
        let mut u = base.clone();
        u.set_query(Some(query));
        PostgresTarget::parse(u.as_str(), Some(schema.name())).unwrap()
    };
    let encrypted = |t: &PostgresTarget| -> bool {
        t.connect()
            .unwrap()
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert!(!encrypted(&with("sslmode=disable")));
    assert!(encrypted(&with("sslmode=prefer")));
    assert!(encrypted(&with("sslmode=require")));
    // The server's certificate is its own (not a public CA's): verification fails without it…
    let err = with("sslmode=verify-full").connect().map(drop).unwrap_err();
    assert_clear(&err, "destination.url");
    let err = with("sslmode=verify-ca").connect().map(drop).unwrap_err();
    assert_clear(&err, "destination.url");
    // …and passes the chain with it. The certificate names the machine, not 127.0.0.1: verify-ca
    // accepts that, verify-full does not.
    let root = format!("sslrootcert={cert}");
    match with(&format!("sslmode=verify-ca&{root}")).connect() {
        Ok(mut c) => {
            let ssl: bool = c
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .unwrap()
                .get(0);
            assert!(ssl);
            let err = with(&format!("sslmode=verify-full&{root}"))
                .connect()
                .map(drop)
                .unwrap_err();
            assert!(err.to_string().contains("destination.url"), "{err}");
        }
        Err(e) => panic!("verify-ca with the server's own certificate as root: {e}"),
    }
}

#[test]
fn a_nul_character_jsonb_cannot_hold_does_not_fail_the_commit() {
    let Some(schema) = TestSchema::new("nul") else {
        return;
    };
    let mut dest = schema.open();
    let mut page = batch("customers", &[], "c1");
    page.records.push(Record {
        id: "1".into(),
        cursor: None,
        payload: json!({"note": "a\u{0}b", "nested": [{"k\u{0}": "x"}]}).into(),
    });
    dest.commit(&[page]).unwrap();
    let stored: serde_json::Value = dest
        .client()
        .query_one("SELECT payload FROM raw_records WHERE record_id = '1'", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        stored,
        json!({"note": "a\u{FFFD}b", "nested": [{"k\u{FFFD}": "x"}]})
    );
}

/// A platform that cuts a string inside an emoji sends half a surrogate pair (`"\ud83d"`): JSON text
/// that names no character, which JSONB refuses. The record is kept with the replacement character,
/// and the rest of the commit with it.
#[test]
fn half_a_surrogate_pair_jsonb_cannot_hold_does_not_fail_the_commit() {
    use growthflow_core::connector::Payload;
    let Some(schema) = TestSchema::new("surrogate") else {
        return;
    };
    let mut dest = schema.open();
    let mut page = batch("customers", &["2"], "c1");
    page.records.push(Record {
        id: "1".into(),
        cursor: None,
        payload: Payload::from_text(r#"{"note":"Sale \ud83d","emoji":"\ud83d\ude00"}"#).unwrap(),
    });
    dest.commit(&[page]).unwrap();
    let stored: Vec<(String, serde_json::Value)> = dest
        .client()
        .query(
            "SELECT record_id, payload FROM raw_records ORDER BY record_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(
        stored[0].1,
        json!({"note": "Sale \u{FFFD}", "emoji": "\u{1F600}"})
    );
}

#[test]
fn a_commit_waiting_for_the_write_lock_is_stamped_after_it() {
    use chrono::{DateTime, Utc};
    use growthflow_core::destination::postgres::testing::WRITE_LOCK;
    let Some(schema) = TestSchema::new("stamp") else {
        return;
    };
    let mut dest = schema.open();
    let pid: i32 = dest
        .client()
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    // Another writer (a rebuild, say) holds the lock.
    let mut holder = schema.client();
    let mut tx = holder.transaction().unwrap();
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&WRITE_LOCK, &schema.name()],
    )
    .unwrap();
    let mut watcher = schema.client();
    let released: DateTime<Utc> = std::thread::scope(|s| {
        let commit = s.spawn(|| dest.commit(&[batch("orders", &["1"], "c1")]));
        // Until the commit waits for the lock…
        while watcher
            .query_one(
                "SELECT COUNT(*) FROM pg_locks WHERE pid = $1 AND NOT granted",
                &[&pid],
            )
            .unwrap()
            .get::<_, i64>(0)
            == 0
        {
            std::thread::yield_now();
        }
        let released: DateTime<Utc> = tx
            .query_one("SELECT clock_timestamp()", &[])
            .unwrap()
            .get(0);
        tx.commit().unwrap();
        commit.join().unwrap().unwrap();
        released
    });
    // …its records are stamped after the other writer let go: a rebuild's watermark taken under
    // the lock never passes over a commit that waited for it.
    let synced: DateTime<Utc> = watcher
        .query_one(
            "SELECT synced_at FROM raw_records WHERE record_id = '1'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(synced > released, "{synced} after {released}");
}

/// A page of `n` records `{prefix}{i}` with distinct payloads, all with cursor `cursor`.
fn large_batch(prefix: &str, n: usize, cursor: &str) -> WriteBatch {
    WriteBatch {
        source: "s".into(),
        stream: "orders".into(),
        records: (0..n)
            .map(|i| Record {
                id: format!("{prefix}{i}"),
                cursor: Some(cursor.into()),
                payload: json!({"id": i, "b": {"z": [1, "x\u{e9}"], "a": null}, "t": format!("{prefix}-{i}")})
                    .into(),
            })
            .collect(),
        state: Some(json!({"cursor": cursor})),
        replaces: None,
    }
}

/// `raw_records` and `sync_state` as text, without the time stamps, in key order.
fn dump(d: &mut PostgresDestination) -> Vec<String> {
    d.client()
        .query(
            "SELECT record_id || '|' || cursor_value || '|' || payload::TEXT FROM raw_records
             UNION ALL SELECT stream || '|' || state::TEXT FROM sync_state ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// How many batches the second connection has staged in this schema so far.
fn batches_staged(d: &mut PostgresDestination) -> i64 {
    d.client()
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM growthflow_raw_stage_batches",
            &[],
        )
        .unwrap()
        .get(0)
}

/// `records` raw records stored, and the stream's state at `cursor`.
fn assert_stored(d: &mut PostgresDestination, records: i64, cursor: &str) {
    let n: i64 = d
        .client()
        .query_one("SELECT COUNT(*) FROM raw_records", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, records);
    assert_eq!(
        d.load_state("s", "orders").unwrap(),
        Some(json!({ "cursor": cursor }))
    );
}

/// A larger page is stored half from its own arrays and half from what the second connection staged:
/// the same rows as pages small enough for one connection, stamped with the commit's one time, and
/// nothing left in the staging table.
#[test]
fn a_large_page_parsed_half_on_a_second_connection_lands_whole() {
    let Some(schema) = TestSchema::new("staged") else {
        return;
    };
    let Some(reference) = TestSchema::new("unstaged") else {
        return;
    };
    let page = large_batch("o", 301, "c1");
    let mut dest = schema.open();
    dest.commit(std::slice::from_ref(&page)).unwrap();
    assert_eq!(batches_staged(&mut dest), 1, "the page was shared");

    // The same records in pages too small to share.
    let mut whole = reference.open();
    for chunk in page.records.chunks(50) {
        let small = WriteBatch {
            records: chunk.to_vec(),
            ..page.clone()
        };
        whole.commit(std::slice::from_ref(&small)).unwrap();
    }
    assert_eq!(
        batches_staged(&mut whole),
        0,
        "small pages stay on one connection"
    );
    let expected = dump(&mut whole);
    assert_eq!(expected.len(), 302);
    assert_eq!(dump(&mut dest), expected);

    let row = dest
        .client()
        .query_one(
            "SELECT COUNT(DISTINCT synced_at), (SELECT COUNT(*) FROM growthflow_raw_stage)
             FROM raw_records",
            &[],
        )
        .unwrap();
    let (stamps, left): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!((stamps, left), (1, 0));

    // Again, changed: the staged half updates the rows it names, as the direct half does.
    let again = large_batch("o", 301, "c2");
    dest.commit(std::slice::from_ref(&again)).unwrap();
    let cursors: Vec<String> = dest
        .client()
        .query("SELECT DISTINCT cursor_value FROM raw_records", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(cursors, vec!["c2".to_string()]);
    assert_eq!(batches_staged(&mut dest), 2);
}

/// When the second connection is gone, the commit stores the whole page on the first, and a later
/// page opens a new second connection.
#[test]
fn a_lost_staging_connection_leaves_the_page_to_the_first() {
    let Some(schema) = TestSchema::new("stager_lost") else {
        return;
    };
    let mut dest = schema.open();
    dest.commit(&[large_batch("a", 100, "c1")]).unwrap();
    assert_eq!(batches_staged(&mut dest), 1);
    let killed: i64 = schema
        .client()
        .query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = left('growthflow stager ' || $1, 63)",
            &[&schema.name()],
        )
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);

    dest.commit(&[large_batch("b", 100, "c2")]).unwrap();
    assert_eq!(batches_staged(&mut dest), 1, "nothing staged without it");
    dest.commit(&[large_batch("c", 100, "c3")]).unwrap();
    assert_eq!(batches_staged(&mut dest), 2, "a new second connection");

    assert_stored(&mut dest, 300, "c3");
}

/// A dataset created by the test server's user, opened as a role that may write all of its tables,
/// with `restrict` (run with `{0}` the schema and `{1}` the role) taking something back.
fn open_as_writer(schema: &TestSchema, label: &str, restrict: &str) -> (Role, PostgresDestination) {
    drop(schema.open());
    let role = Role::new(label, schema);
    let grants = "GRANT USAGE ON SCHEMA \"{0}\" TO {1};
         GRANT ALL ON ALL TABLES IN SCHEMA \"{0}\" TO {1};
         GRANT ALL ON ALL SEQUENCES IN SCHEMA \"{0}\" TO {1};";
    let sql = format!("{grants}\n{restrict}")
        .replace("{0}", schema.name())
        .replace("{1}", &role.name);
    schema.client().batch_execute(&sql).unwrap();
    let url = url_as(&role.name).unwrap();
    let dest = PostgresDestination::connect(&url, Some(schema.name())).unwrap();
    (role, dest)
}

/// A server that allows the role one connection only: the sync writes every record on it.
#[test]
fn a_second_connection_the_server_refuses_leaves_every_page_to_the_first() {
    let Some(schema) = TestSchema::new("one_connection") else {
        return;
    };
    let (_role, mut dest) = open_as_writer(&schema, "single", "ALTER ROLE {1} CONNECTION LIMIT 1");
    let warned = warnings_of(|| {
        dest.commit(&[large_batch("a", 100, "c1")]).unwrap();
        dest.commit(&[large_batch("b", 100, "c2")]).unwrap();
    });
    assert_eq!(batches_staged(&mut dest), 0, "nothing staged");
    assert_stored(&mut dest, 200, "c2");
    // Said once, with what to do; the role's password is in no PostgreSQL error.
    assert_eq!(warned.matches("WARN").count(), 1, "{warned}");
    assert!(
        warned.contains("no second connection for staging large pages")
            && warned.contains("Allow the role one more connection"),
        "{warned}"
    );
    assert!(!warned.contains(PASSWORD), "{warned}");
}

/// Three large pages (100 records each, cursors `c1`..`c3`) committed one by one; what they logged
/// at WARN and above.
fn three_large_commits(dest: &mut PostgresDestination) -> String {
    warnings_of(|| {
        for (prefix, cursor) in [("a", "c1"), ("b", "c2"), ("c", "c3")] {
            dest.commit(&[large_batch(prefix, 100, cursor)]).unwrap();
        }
    })
}

/// What `f` logs at WARN and above on this thread, as text.
fn warnings_of(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = sink.0.lock().unwrap().clone();
    String::from_utf8(text).unwrap()
}

/// A role without one of the rights staging needs (a partial `REVOKE`) does not stage: every page is
/// stored on the first connection, and the sync says once what to grant.
#[test]
fn a_staging_table_the_role_may_not_fully_use_is_not_used() {
    for (label, revoke) in [
        (
            "insert",
            "REVOKE INSERT ON \"{0}\".growthflow_raw_stage FROM {1}",
        ),
        (
            "select",
            "REVOKE SELECT ON \"{0}\".growthflow_raw_stage FROM {1}",
        ),
        (
            "delete",
            "REVOKE DELETE ON \"{0}\".growthflow_raw_stage FROM {1}",
        ),
        (
            "sequence",
            "REVOKE USAGE, UPDATE ON SEQUENCE \"{0}\".growthflow_raw_stage_batches FROM {1}",
        ),
    ] {
        let Some(schema) = TestSchema::new(&format!("no_stage_{label}")) else {
            return;
        };
        let (_role, mut dest) = open_as_writer(&schema, &format!("nostage{label}"), revoke);
        let warned = three_large_commits(&mut dest);
        assert_eq!(batches_staged(&mut dest), 0, "{label}: nothing staged");
        assert_stored(&mut dest, 300, "c3");
        assert_eq!(warned.matches("WARN").count(), 1, "{label}: {warned}");
        assert!(
            warned.contains("may not use growthflow_raw_stage")
                && warned.contains("grant it INSERT, SELECT and DELETE on growthflow_raw_stage"),
            "{label}: {warned}"
        );
    }
}

/// A staging insert the server refuses although the role has every right (here a constraint no row
/// meets): the first large page tries once and stores the whole page on the first connection; later
/// pages do not try again.
#[test]
fn a_staging_insert_the_server_refuses_is_tried_once() {
    let Some(schema) = TestSchema::new("stage_refused") else {
        return;
    };
    let (_role, mut dest) = open_as_writer(
        &schema,
        "stagerefused",
        "ALTER TABLE \"{0}\".growthflow_raw_stage ADD CONSTRAINT refuse_all CHECK (false) NOT VALID",
    );
    let warned = three_large_commits(&mut dest);
    // The one attempt took a batch number before its insert was refused.
    assert_eq!(batches_staged(&mut dest), 1, "tried once");
    assert_stored(&mut dest, 300, "c3");
    assert_eq!(warned.matches("WARN").count(), 1, "{warned}");
    assert!(
        warned.contains("refused to stage a large page") && warned.contains("grant it INSERT"),
        "{warned}"
    );
}
