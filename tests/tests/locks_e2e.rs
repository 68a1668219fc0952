//! End to end: runs on one dataset at once never sync the same source. A second run skips what the
//! first holds (`"status":"locked"`, naming the holder, exit 0) or, with `--wait`, syncs it once the
//! holder is done; N workers started together on one dataset (PostgreSQL schema or SQLite file)
//! sync every source exactly once between them, and the dataset is a single run's.
//!
//! Runs are held in the middle by a gate: a TCP relay between the runs and the sandbox that lets
//! nothing through until the test opens it, so "while the first run holds its sources" is a state
//! the test waits for, never a guess about timing.
//!
//! The runs read the sandbox's last days ([`RecentSandbox`]), on its virtual clock unless a run
//! waits for another's lock: that wait is on real time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use growthflow_core::destination::postgres::testing::{blocking, TestSchema};
use growthflow_tests::{
    cli_at, neutral_snapshot, neutral_snapshot_pg, Gate, RecentSandbox, SandboxClock,
};
use serde_json::Value;
use tokio::task::JoinHandle;

const SOURCES: [&str; 5] = ["ads", "email", "shop", "web", "woo"];

/// Days of data the runs read: every platform has records in them (a lock is about sources, not
/// volume), and a PostgreSQL journey rebuild takes a fraction of a second.
const DAYS: u64 = 30;

/// Every platform's path prefix in a config.
const PLATFORMS: [&str; 5] = ["woocommerce", "shopify", "klaviyo", "ga4", "meta"];

/// [`RecentSandbox::config`], its platforms reached through `gate` when given.
fn config(env: &RecentSandbox, dir: &Path, destination: &str, gate: Option<&Gate>) -> PathBuf {
    let path = env.config(dir, destination);
    if let Some(g) = gate {
        g.route(&path, &PLATFORMS);
    }
    path
}

/// Each source's object in a `--json` summary.
fn sources(out: &str) -> BTreeMap<String, Value> {
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["source"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

fn status(s: &Value) -> &str {
    s["status"].as_str().unwrap()
}

/// Start `growthflow sync --json ARGS` in-process on a task of its own, on `clock`.
fn start(clock: &SandboxClock, config: &Path, args: &[&str]) -> JoinHandle<(i32, String)> {
    let (clock, config) = (clock.clone(), config.to_path_buf());
    let mut argv = vec!["sync".to_string(), "--json".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    tokio::spawn(async move {
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        cli_at(&clock, &config, &args).await
    })
}

/// Wait until `ready` holds (checked every 10 ms, at most a minute: a state the runs reach on their
/// own, not a delay the test hopes is long enough).
async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..6_000 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// The source locks held in a dataset: source → run id.
trait Locks {
    fn locks(&self) -> BTreeMap<String, String>;
    /// Every lock row, the journey rebuild's too.
    fn rows(&self) -> i64;
}

struct SqliteDataset(PathBuf);

impl Locks for SqliteDataset {
    fn locks(&self) -> BTreeMap<String, String> {
        let Ok(conn) = rusqlite::Connection::open(&self.0) else {
            return BTreeMap::new();
        };
        let Ok(mut st) =
            conn.prepare("SELECT source, run_id FROM growthflow_locks WHERE source NOT LIKE ':%'")
        else {
            return BTreeMap::new(); // not created yet
        };
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
    fn rows(&self) -> i64 {
        rusqlite::Connection::open(&self.0)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM growthflow_locks", [], |r| r.get(0))
            .unwrap()
    }
}

impl Locks for TestSchema {
    fn locks(&self) -> BTreeMap<String, String> {
        blocking(|| {
            let mut c = self.client();
            match c.query(
                "SELECT source, run_id FROM growthflow_locks WHERE source NOT LIKE ':%'",
                &[],
            ) {
                Ok(rows) => rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
                Err(_) => BTreeMap::new(), // not created yet
            }
        })
    }
    fn rows(&self) -> i64 {
        blocking(|| {
            self.client()
                .query_one("SELECT COUNT(*) FROM growthflow_locks", &[])
                .unwrap()
                .get(0)
        })
    }
}

fn sqlite_destination(path: &Path) -> String {
    format!("url = \"sqlite://{}\"", path.display())
}

fn pg_destination(schema: &TestSchema) -> String {
    format!("url = \"{}\"\nschema = \"{}\"", schema.url(), schema.name())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_skips_the_source_another_run_holds_and_exits_0() {
    // No run waits for another's lock here: the runs are on virtual time.
    let env = RecentSandbox::start_days(DAYS).await;
    let cli = |config, args| env.cli(config, args);
    let gate = Gate::to(&env.sandbox);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gf.db");
    let destination = sqlite_destination(&db);
    let held_up = config(&env, &dir.path().join("a"), &destination, Some(&gate));
    let free = config(&env, &dir.path().join("b"), &destination, None);
    let dataset = SqliteDataset(db.clone());

    let first = start(&env.clock, &held_up, &["shop"]);
    until("the first run holds shop", || {
        dataset.locks().contains_key("shop")
    })
    .await;
    let holder = dataset.locks()["shop"].clone();

    let (code, out) = cli(&free, &["sync", "--json"]).await;
    assert_eq!(code, 0, "a locked source is not a failure: {out}");
    let second = sources(&out);
    let shop = &second["shop"];
    assert_eq!(status(shop), "locked", "{out}");
    assert_eq!(shop["locked_by"]["run_id"], holder.as_str());
    assert_eq!(
        shop["locked_by"]["pid"].as_i64(),
        Some(i64::from(std::process::id()))
    );
    let streams = shop["streams"].as_array().unwrap();
    assert!(!streams.is_empty());
    for s in streams {
        assert_eq!(s["status"], "locked", "{s}");
        assert_eq!(s["records"], 0, "{s}");
        let error = s["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("another run holds source shop: run {holder} on ")),
            "{error}"
        );
    }
    for name in ["ads", "email", "web", "woo"] {
        assert_eq!(status(&second[name]), "ok", "{name}: {out}");
    }

    gate.open();
    let (code, out) = first.await.unwrap();
    assert_eq!(code, 0, "{out}");
    assert_eq!(status(&sources(&out)["shop"]), "ok", "{out}");
    // Every lock was released: a later run syncs everything, and leaves no lock behind.
    let (code, out) = cli(&free, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(sources(&out).values().all(|s| status(s) == "ok"), "{out}");
    assert_eq!(dataset.rows(), 0, "every lock released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_wait_a_run_syncs_the_held_source_once_its_holder_is_done() {
    // The second run waits for the first on real time (on virtual time its ten minutes would be over
    // before the first run is done); a week of data keeps Meta's insights one synchronous read.
    let env = RecentSandbox::start_on_real_time(7).await;
    let gate = Gate::to(&env.sandbox);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gf.db");
    let destination = sqlite_destination(&db);
    let held_up = config(&env, &dir.path().join("a"), &destination, Some(&gate));
    let free = config(&env, &dir.path().join("b"), &destination, None);
    let dataset = SqliteDataset(db.clone());

    let first = start(&env.clock, &held_up, &["shop"]);
    until("the first run holds shop", || {
        dataset.locks().contains_key("shop")
    })
    .await;
    let holder = dataset.locks()["shop"].clone();
    let second = start(&env.clock, &free, &["--wait", "10m"]);
    // The second run has found shop held (it asks in config order, shop second) once it holds the
    // sources after it; it keeps them until it is done, so this state lasts.
    until("the second run holds the other sources", || {
        let locks = dataset.locks();
        ["ads", "web", "email"]
            .iter()
            .all(|s| locks.get(*s).is_some_and(|r| *r != holder))
    })
    .await;
    assert!(!second.is_finished());
    gate.open();
    let (code, out) = first.await.unwrap();
    assert_eq!(code, 0, "{out}");
    assert_eq!(status(&sources(&out)["shop"]), "ok", "{out}");
    let (code, out) = second.await.unwrap();
    assert_eq!(code, 0, "{out}");
    let all = sources(&out);
    assert!(all.values().all(|s| status(s) == "ok"), "{out}");
    assert!(all["shop"].get("locked_by").is_none(), "{out}");
    assert_eq!(dataset.rows(), 0, "every lock released");
}

/// N workers with one config at once: each source is synced by exactly one of them; the others
/// report it locked; all exit 0. Returns the workers' summaries.
async fn n_workers_at_once(
    n: usize,
    env: &RecentSandbox,
    config: &Path,
    gate: &Gate,
    dataset: &dyn Locks,
) -> Vec<BTreeMap<String, Value>> {
    let workers: Vec<JoinHandle<(i32, String)>> =
        (0..n).map(|_| start(&env.clock, config, &[])).collect();
    // Held at the gate until every source is taken and every worker that took none is done: no
    // worker can then finish (and let go) before the others asked for its sources.
    until("every worker asked for every source", || {
        let locks = dataset.locks();
        let holders: BTreeSet<&String> = locks.values().collect();
        let finished = workers.iter().filter(|w| w.is_finished()).count();
        locks.len() == SOURCES.len() && finished + holders.len() == n
    })
    .await;
    gate.open();
    let mut summaries = Vec::new();
    for w in workers {
        let (code, out) = w.await.unwrap();
        assert_eq!(code, 0, "a locked source is not a failure: {out}");
        summaries.push(sources(&out));
    }
    for name in SOURCES {
        let statuses: Vec<&str> = summaries.iter().map(|s| status(&s[name])).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == "ok").count(),
            1,
            "{name}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == "locked").count(),
            n - 1,
            "{name}: {statuses:?}"
        );
    }
    summaries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn n_workers_on_one_postgres_schema_sync_every_source_exactly_once() {
    let (Some(schema), Some(single)) = (
        TestSchema::new("e2e_workers"),
        TestSchema::new("e2e_single"),
    ) else {
        return;
    };
    let env = RecentSandbox::start_days(DAYS).await;
    let gate = Gate::to(&env.sandbox);
    let dir = tempfile::tempdir().unwrap();
    let workers = config(
        &env,
        &dir.path().join("w"),
        &pg_destination(&schema),
        Some(&gate),
    );
    n_workers_at_once(3, &env, &workers, &gate, &schema).await;
    assert_eq!(schema.rows(), 0, "every worker released its locks");

    let alone = config(&env, &dir.path().join("s"), &pg_destination(&single), None);
    let (code, out) = env.cli(&alone, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let (together, by_one) = blocking(|| {
        (
            neutral_snapshot_pg(&mut schema.client()),
            neutral_snapshot_pg(&mut single.client()),
        )
    });
    assert!(!together["raw_records"].is_empty());
    assert!(!together["journey_events"].is_empty());
    assert_eq!(together, by_one, "the workers' dataset is a single run's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn n_workers_on_one_sqlite_file_sync_every_source_exactly_once() {
    let env = RecentSandbox::start_days(DAYS).await;
    let gate = Gate::to(&env.sandbox);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gf.db");
    let workers = config(
        &env,
        &dir.path().join("w"),
        &sqlite_destination(&db),
        Some(&gate),
    );
    let dataset = SqliteDataset(db.clone());
    n_workers_at_once(3, &env, &workers, &gate, &dataset).await;
    assert_eq!(dataset.rows(), 0, "every worker released its locks");

    let single = dir.path().join("single.db");
    let alone = config(
        &env,
        &dir.path().join("s"),
        &sqlite_destination(&single),
        None,
    );
    let (code, out) = env.cli(&alone, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let together = neutral_snapshot(&rusqlite::Connection::open(&db).unwrap());
    let by_one = neutral_snapshot(&rusqlite::Connection::open(&single).unwrap());
    assert!(!together["journey_events"].is_empty());
    assert_eq!(together, by_one, "the workers' dataset is a single run's");
}
