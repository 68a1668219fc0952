//! Reporting on PostgreSQL: a read-only role, a dataset from a newer growthflow, server errors.

use super::*;

/// A login role on the test server, dropped (with its privileges) on drop.
struct Role {
    url: String,
    name: String,
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Ok(mut c) = PostgresTarget::parse(&self.url, None).and_then(|t| t.connect()) {
            let _ = c.batch_execute(&format!(
                "DROP OWNED BY {0}; DROP ROLE IF EXISTS {0}",
                self.name
            ));
        }
    }
}

/// `url` with its user and password replaced.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.split_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{host}")
}

#[test]
fn a_read_only_role_can_report_on_postgres_and_a_newer_dataset_is_refused() {
    let Some(schema) = TestSchema::new("read_only") else {
        return;
    };
    let conn = fixture();
    let mut owner = copy_to_postgres(&conn, &schema);
    let role = Role {
        url: schema.url().to_string(),
        name: format!("{}_r", schema.name()),
    };
    if let Err(e) = owner.batch_execute(&format!(
        "CREATE ROLE {r} LOGIN PASSWORD 'reader';
         GRANT USAGE ON SCHEMA {s} TO {r};
         GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r};",
        r = role.name,
        s = schema.name()
    )) {
        eprintln!("skipped: the test server's role may not create roles ({e})");
        return;
    }
    let target = PostgresTarget::parse(
        &as_user(schema.url(), &role.name, "reader"),
        Some(schema.name()),
    )
    .unwrap();
    // The role may not write: opening the dataset for syncing refuses it …
    let err = PostgresDestination::open(&target).unwrap_err();
    assert!(err.to_string().contains("may read but not write"), "{err}");
    // … but it may report, and gets the report SQLite computes from the same rows.
    let opts = window("2025-03-01", "2025-03-30");
    let mut reader = PostgresDestination::open_for_reading(&target).unwrap();
    assert_eq!(
        build_report(&mut reader, &opts).unwrap(),
        build_report(&conn, &opts).unwrap()
    );
    // Rows changed by hand leave the report's rollups behind: this role may not bring them up to
    // date, and is told so (not the server's bare "permission denied") …
    owner
        .execute("UPDATE orders SET total_price = total_price + 1", &[])
        .unwrap();
    let err = build_report(&mut reader, &opts).unwrap_err();
    assert!(
        matches!(&err, ReportError::RollupsBehind { role: r } if *r == role.name)
            && err.to_string().contains("with a role that may write"),
        "{err}"
    );
    // … and once a role that may write has reported (or synced), it reads the new figures.
    let by_owner = build_report(&mut owner, &opts).unwrap();
    assert_eq!(build_report(&mut reader, &opts).unwrap(), by_owner);
    drop(reader);

    // A dataset from a newer growthflow is refused for reading too.
    owner
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (999, clock_timestamp())",
            &[],
        )
        .unwrap();
    let Err(err) = PostgresDestination::open_for_reading(&target) else {
        panic!("a dataset at version 999 opened for reading");
    };
    let found = growthflow_core::destination::schema_too_new(&err).expect("SchemaTooNew");
    assert_eq!(found.found, 999);
}

#[test]
fn a_postgres_read_error_says_what_the_server_said() {
    let Some(schema) = TestSchema::new("read_error") else {
        return;
    };
    let mut client = schema.client(); // The schema does not exist: no tables.
    let err = build_report(&mut client, &window("2025-03-01", "2025-03-30")).unwrap_err();
    assert!(
        matches!(err, ReportError::Postgres(_)) && err.to_string().contains("does not exist"),
        "{err}"
    );
}
