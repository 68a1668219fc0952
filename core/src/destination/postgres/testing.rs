//! The PostgreSQL server of the test suites, shared by every test crate: the server named by
//! `GROWTHFLOW_TEST_DATABASE_URL`, else `postgres://root@127.0.0.1:5432/test`. Where none answers,
//! PostgreSQL tests print one visible line saying they are skipped and pass — unless
//! `GROWTHFLOW_REQUIRE_POSTGRES=1` (CI), where they fail. Each test gets its own fresh schema,
//! dropped when it ends, so tests run in parallel.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use super::{quote_ident, PostgresDestination, PostgresTarget};

/// The first key of the advisory lock commits and rebuilds take (the second is
/// `hashtext(schema)`), for tests that hold it.
pub const WRITE_LOCK: i32 = super::LOCK_WRITE;

/// The server used when `GROWTHFLOW_TEST_DATABASE_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://root@127.0.0.1:5432/test";

/// Run blocking PostgreSQL work on a plain thread: the blocking client cannot run inside an
/// async runtime (`#[tokio::test]`).
pub fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("PostgreSQL test thread panicked"))
}

/// The test server's URL, or `None` (after one visible line) when none answers and it is not
/// required.
pub fn server_url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        let url = std::env::var("GROWTHFLOW_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_URL.to_string());
        let probe =
            blocking(|| PostgresTarget::parse(&url, None).and_then(|t| t.connect().map(drop)));
        match probe {
            Ok(()) => Some(url),
            Err(e) if std::env::var("GROWTHFLOW_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
                panic!("GROWTHFLOW_REQUIRE_POSTGRES=1 but no PostgreSQL server answers: {e}")
            }
            Err(e) => {
                // Straight to stderr, past the test harness's capture, so the skip is seen.
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "PostgreSQL tests skipped: no server answers ({e}); set \
                     GROWTHFLOW_TEST_DATABASE_URL, or GROWTHFLOW_REQUIRE_POSTGRES=1 to fail instead"
                );
                None
            }
        }
    })
    .clone()
}

/// A fresh, uniquely named schema on the test server, dropped (with everything in it) on drop.
#[derive(Debug)]
pub struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    /// A new schema name for the test `label` (the schema itself is created by the first open),
    /// or `None` when PostgreSQL tests are skipped.
    pub fn new(label: &str) -> Option<TestSchema> {
        static N: AtomicU32 = AtomicU32::new(0);
        let url = server_url()?;
        let label: String = label
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(30)
            .collect();
        let name = format!(
            "gft_{}_{}_{}_{label}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..) % 10_000
        );
        Some(TestSchema { url, name })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dataset's target.
    pub fn target(&self) -> PostgresTarget {
        PostgresTarget::parse(&self.url, Some(&self.name)).expect("test URL parses")
    }

    /// Open the dataset (creating the schema). Blocking.
    pub fn open(&self) -> PostgresDestination {
        PostgresDestination::open(&self.target()).expect("open the test dataset")
    }

    /// Another connection, its `search_path` the schema. Blocking.
    pub fn client(&self) -> postgres::Client {
        self.target().connect().expect("connect to the test server")
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        blocking(move || {
            if let Ok(mut c) = PostgresTarget::parse(&url, None).and_then(|t| t.connect()) {
                let _ = c.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {} CASCADE",
                    quote_ident(&name)
                ));
            }
        });
    }
}
