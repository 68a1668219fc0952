//! End to end: the `growthflow` commands against the sandbox's simulated Shopify shop (GraphQL Admin
//! API), checked against values computed independently from the shop's generated data.

use growthflow_tests::{
    cli_on, date_of, db, on_both_stores, per_stream, raw_payloads, snapshot, Store,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use growthflow_core::http::TestClock;
use growthflow_sandbox::{Sandbox, SandboxConfig, ShopData};
use rusqlite::Connection;
use rust_decimal::Decimal;
use serde_json::Value;

/// The shop and the commands run on one [`TestClock`]: the cost bucket refills with the time the
/// connector waits for points, so a throttled query is waited out at once.
struct Env {
    sandbox: Sandbox,
    clock: TestClock,
    dir: tempfile::TempDir,
    dataset: Store,
}

impl Env {
    async fn start() -> Env {
        Env::with(SandboxConfig::default()).await
    }

    async fn on(dataset: Store) -> Env {
        Env::with_on(SandboxConfig::default(), dataset).await
    }

    async fn with(config: SandboxConfig) -> Env {
        Env::with_on(config, Store::sqlite()).await
    }

    async fn with_on(config: SandboxConfig, dataset: Store) -> Env {
        let clock = TestClock::yielding();
        Env {
            sandbox: Sandbox::start_with_clock(config, Arc::new(clock.clone()))
                .await
                .unwrap(),
            clock,
            dir: tempfile::tempdir().unwrap(),
            dataset,
        }
    }

    /// Run a command on the shop's clock.
    async fn cli(&self, config: &Path, args: &[&str]) -> (i32, String) {
        cli_on(&self.clock, config, args).await
    }

    fn shop(&self) -> &ShopData {
        self.sandbox.shopify()
    }

    /// Write a config for the sandbox shop into `sub/` and return its path.
    fn config(&self, sub: &str, extra: &str) -> PathBuf {
        let dir = self.dir.path().join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            r#"
[destination]
{destination}

[sync]
start_date = "2015-01-01"

[sources.shop]
type = "shopify"
shop = "sandbox"
access_token = "{token}"
base_url = "{url}"
{extra}
"#,
            destination = self.dataset.destination_toml(&dir),
            token = self.shop().access_token,
            url = self.sandbox.shopify_url(),
        );
        let path = dir.join("growthflow.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap()).unwrap()
}

fn shop_money(v: &Value) -> Decimal {
    dec(&v["shopMoney"]["amount"])
}

fn is_valid(order: &Value) -> bool {
    order["cancelledAt"].is_null() && order["test"] == false
}

fn email_of(order: &Value) -> String {
    order["email"].as_str().unwrap().trim().to_lowercase()
}

fn tail(gid: &Value) -> String {
    gid.as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

/// raw_records as parsed JSON (key order ignored), with their cursors.
fn raw_values(conn: &Connection) -> BTreeMap<(String, String, String), (Option<String>, Value)> {
    let mut stmt = conn
        .prepare("SELECT source, stream, record_id, cursor_value, payload FROM raw_records")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            (r.get(0)?, r.get(1)?, r.get(2)?),
            (r.get(3)?, r.get::<_, String>(4)?),
        ))
    })
    .unwrap()
    .map(|r| {
        let (k, (c, p)) = r.unwrap();
        (k, (c, serde_json::from_str(&p).unwrap()))
    })
    .collect()
}

async fn sync_fills_the_dataset_with_exactly_the_generated_shop(store: Store) {
    let env = Env::on(store).await;
    let config = env.config("a", "");
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let shop = env.shop();
    let source = &summary["sources"][0];
    assert_eq!(source["source"], "shop");
    assert_eq!(source["type"], "shopify");
    assert_eq!(source["status"], "ok", "{out}");
    let records = per_stream(source, "records");
    assert_eq!(records["orders"], shop.orders.len() as u64);
    assert_eq!(records["customers"], shop.customers.len() as u64);
    assert_eq!(records["products"], shop.products.len() as u64);
    assert_eq!(
        records["abandoned_checkouts"],
        shop.abandoned_checkouts.len() as u64
    );

    let conn = db(&config);
    for (stream, expected) in [
        ("orders", &shop.orders),
        ("customers", &shop.customers),
        ("products", &shop.products),
        ("abandoned_checkouts", &shop.abandoned_checkouts),
    ] {
        let got: HashMap<String, Value> = raw_payloads(&conn, "shop", stream);
        assert_eq!(got.len(), expected.len(), "{stream}");
        for rec in expected.iter() {
            let id = tail(&rec["id"]);
            assert_eq!(got.get(&id), Some(rec), "{stream} {id} differs");
        }
    }

    // The orders table: every order, revenue of the valid ones as generated.
    assert_eq!(
        conn.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get::<_, i64>(0))
            .unwrap(),
        shop.orders.len() as i64
    );
    let revenue: Decimal = shop
        .orders
        .iter()
        .filter(|o| is_valid(o))
        .map(|o| shop_money(&o["totalPriceSet"]))
        .sum();
    let db_revenue: f64 = conn
        .query_row(
            "SELECT SUM(total_price) FROM orders WHERE cancelled = 0 AND test = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!((db_revenue - revenue.to_string().parse::<f64>().unwrap()).abs() < 0.005);
    let cancelled: i64 = conn
        .query_row("SELECT COUNT(*) FROM orders WHERE cancelled = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        cancelled,
        shop.orders
            .iter()
            .filter(|o| !o["cancelledAt"].is_null())
            .count() as i64
    );
    let refunded: Decimal = shop
        .orders
        .iter()
        .map(|o| shop_money(&o["totalRefundedSet"]))
        .sum();
    let db_refunded: f64 = conn
        .query_row("SELECT SUM(total_refunded) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert!((db_refunded - refunded.to_string().parse::<f64>().unwrap()).abs() < 0.005);
    // Attribution: utm_campaign from lastVisit (utmParameters, else the landing page).
    let with_campaign = shop
        .orders
        .iter()
        .filter(|o| {
            let v = &o["customerJourneySummary"]["lastVisit"];
            !v["utmParameters"]["campaign"].is_null()
                || v["landingPage"]
                    .as_str()
                    .is_some_and(|l| l.contains("utm_campaign="))
        })
        .count() as i64;
    let db_with_campaign: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM orders WHERE utm_campaign IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(db_with_campaign, with_campaign);
}

async fn a_second_sync_adds_nothing(store: Store) {
    let env = Env::on(store).await;
    let config = env.config("a", "");
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let first = snapshot(&db(&config));
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(snapshot(&db(&config)), first);
}

async fn report_json_gives_the_values_of_the_generated_shop(store: Store) {
    let env = Env::on(store).await;
    let config = env.config("a", "");
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let shop = env.shop();
    let since = NaiveDate::from_ymd_opt(2025, 4, 1).unwrap();
    let until = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
    let (code, out) = env
        .cli(
            &config,
            &[
                "report",
                "--since",
                "2025-04-01",
                "--until",
                "2025-06-30",
                "--format",
                "json",
            ],
        )
        .await;
    assert_eq!(code, 0, "{out}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();

    // Independent computation from the generated data, per the contract's definitions.
    let in_window = |d: NaiveDate| d >= since && d <= until;
    let valid: Vec<&Value> = shop.orders.iter().filter(|o| is_valid(o)).collect();
    let window: Vec<&Value> = valid
        .iter()
        .copied()
        .filter(|o| in_window(date_of(&o["createdAt"])))
        .collect();
    let orders = window.len() as i64;
    let revenue: Decimal = window.iter().map(|o| shop_money(&o["totalPriceSet"])).sum();
    let abandoned = shop
        .abandoned_checkouts
        .iter()
        .filter(|c| c["completedAt"].is_null() && in_window(date_of(&c["createdAt"])))
        .count() as i64;
    let mut sorted = valid.clone();
    sorted.sort_by_key(|o| (o["createdAt"].as_str().unwrap(), tail(&o["id"])));
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut index: HashMap<String, i64> = HashMap::new();
    for o in &sorted {
        let n = seen.entry(email_of(o)).or_default();
        *n += 1;
        index.insert(tail(&o["id"]), *n);
    }
    let customers: HashSet<String> = window.iter().map(|o| email_of(o)).collect();
    let repeat: HashSet<String> = window
        .iter()
        .filter(|o| index[&tail(&o["id"])] >= 2)
        .map(|o| email_of(o))
        .collect();
    let lifetime: Decimal = valid
        .iter()
        .filter(|o| date_of(&o["createdAt"]) <= until && customers.contains(&email_of(o)))
        .map(|o| shop_money(&o["totalPriceSet"]))
        .sum();
    let refunds: Vec<&Value> = valid
        .iter()
        .flat_map(|o| o["refunds"].as_array().unwrap())
        .filter(|f| in_window(date_of(&f["createdAt"])))
        .collect();
    let refunded: Decimal = refunds
        .iter()
        .map(|f| shop_money(&f["totalRefundedSet"]))
        .sum();

    // JSON numbers are never rounded: money is the exact sum, averages the exact quotient as a double.
    let money = |v: &Value| Decimal::from_str(&v.to_string()).unwrap();
    let exact = |d: Decimal| -> f64 { d.to_string().parse().unwrap() };
    assert_eq!(r["currency"], "USD");
    let c = &r["conversion"];
    assert!(orders > 50, "{orders}");
    assert_eq!(c["orders"], orders);
    assert_eq!(money(&c["revenue"]), revenue.normalize());
    assert_eq!(
        c["aov"].as_f64().unwrap(),
        exact(revenue / Decimal::from(orders))
    );
    assert!(abandoned > 10, "{abandoned}");
    assert_eq!(c["abandoned_checkouts"], abandoned);
    let rate = abandoned as f64 / (abandoned + orders) as f64;
    assert!((c["cart_abandonment_rate"].as_f64().unwrap() - rate).abs() < 1e-12);
    let t = &r["retention"];
    assert_eq!(t["customers"], customers.len() as i64);
    assert_eq!(t["repeat_customers"], repeat.len() as i64);
    assert!(!repeat.is_empty());
    assert_eq!(
        t["ltv"].as_f64().unwrap(),
        exact(lifetime / Decimal::from(customers.len()))
    );
    let f = &r["feedback"];
    assert!(!refunds.is_empty());
    assert_eq!(f["refunds"], refunds.len() as i64);
    assert_eq!(money(&f["refunded_amount"]), refunded.normalize());
    assert_eq!(f["reported_purchases"]["store"], orders);
}

async fn a_long_backfill_goes_through_a_bulk_operation_and_changes_nothing(store: Store) {
    let env = Env::on(store).await;
    let config = env.config("a", "");
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let before = snapshot(&db(&config));
    let raw_before = raw_values(&db(&config));
    let (code, out) = env
        .cli(
            &config,
            &[
                "backfill",
                "--since",
                "2025-01-01",
                "--until",
                "2025-06-30",
                "--json",
            ],
        )
        .await;
    assert_eq!(code, 0, "{out}");
    let s: Value = serde_json::from_str(out.trim()).unwrap();
    let orders = s["sources"][0]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["stream"] == "orders")
        .unwrap();
    let expected = env
        .shop()
        .orders
        .iter()
        .filter(|o| {
            let d = date_of(&o["createdAt"]);
            d >= NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
                && d <= NaiveDate::from_ymd_opt(2025, 6, 30).unwrap()
        })
        .count() as u64;
    assert_eq!(orders["records"].as_u64().unwrap(), expected, "{out}");
    // The bulk path re-assembles records from JSONL lines, so a payload's key order may differ from the
    // paged read's; the records themselves must not.
    let mut after = snapshot(&db(&config));
    let mut before = before;
    assert_eq!(raw_values(&db(&config)), raw_before);
    after.remove("raw_records");
    before.remove("raw_records");
    assert_eq!(after, before);
}

#[tokio::test]
async fn a_drained_cost_bucket_is_waited_out_and_the_dataset_is_exact() {
    let env = Env::start().await;
    let reference = env.config("reference", "");
    assert_eq!(env.cli(&reference, &["sync"]).await.0, 0);
    let expected = snapshot(&db(&reference));

    // Empty bucket: the first affordable page is answered THROTTLED (HTTP 200), and the connector has to
    // wait for the points (100/s) instead of storing the error or failing.
    let throttled_before = env.shop().throttled_count();
    env.shop().set_bucket_available(0.0);
    let drained = env.config("drained", "");
    let waited_before = env.clock.elapsed();
    let (code, out) = env.cli(&drained, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(env.shop().throttled_count() > throttled_before);
    let waited = env.clock.elapsed() - waited_before;
    assert!(
        waited >= Duration::from_secs(1),
        "the points were waited for on the clock ({waited:?})"
    );
    assert_eq!(snapshot(&db(&drained)), expected);
}

#[tokio::test]
async fn streams_read_side_by_side_share_the_bucket_without_being_throttled() {
    // A bigger shop: the four streams together want far more points than the bucket restores, so
    // each stream pacing only itself would drain it into THROTTLED answers.
    let env = Env::with(SandboxConfig {
        scale: 3,
        ..Default::default()
    })
    .await;
    let config = env.config("shared", "");
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        env.shop().throttled_count(),
        0,
        "every query waited for its points in the shared bucket"
    );
    let orders: i64 = db(&config)
        .query_row(
            "SELECT COUNT(*) FROM raw_records WHERE stream = 'orders'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orders as usize, env.shop().orders.len());
}

/// Issue 13: a sync with nothing new makes one request per stream. Each stream asks for records
/// updated since its saved cursor less one second (`updated_at:>=`; no lookback by default), which
/// one page holds — its first page, sized to fit the single-query cost limit, is enough — and
/// `hasNextPage` is false. Abandoned checkouts, read by id as Shopify cannot sort them by update
/// time, are filtered the same way. Bulk operations serve only long backfills, never a sync.
#[tokio::test]
async fn a_no_change_sync_makes_one_request_per_stream() {
    let env = Env::start().await;
    let config = env.config("no-change", "");
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let before = env.sandbox.request_count();
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let received = env.sandbox.request_count() - before;
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let requests = per_stream(&summary["sources"][0], "requests");
    let want: HashMap<String, u64> = ["orders", "customers", "products", "abandoned_checkouts"]
        .into_iter()
        .map(|k| (k.to_string(), 1))
        .collect();
    assert_eq!(requests, want);
    assert_eq!(
        received, 4,
        "the shop saw exactly the requests the streams counted"
    );
}

#[tokio::test]
async fn check_passes_and_a_wrong_token_fails_without_leaking() {
    let env = Env::start().await;
    let good = env.config("good", "");
    assert_eq!(
        env.cli(&good, &["check"]).await,
        (0, "shop: ok\n".to_string())
    );
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace(&env.shop().access_token, "shpat_wrong_token_value");
    std::fs::write(&good, text).unwrap();
    let (code, out) = env.cli(&good, &["check"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("shop: failed:"), "{out}");
    assert!(out.contains("Invalid API key"), "{out}");
    assert!(!out.contains("shpat_wrong_token_value"), "{out}");
    let (code, out) = env.cli(&good, &["sync", "--json"]).await;
    assert_eq!(code, 1, "{out}");
    let s: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(s["sources"][0]["status"], "failed");
}

#[tokio::test]
async fn a_back_to_back_sync_is_neither_throttled_nor_refused_for_cost() {
    // The second run starts in a new client right after the first drained the bucket: it must learn
    // the bucket from its first answer before the streams fan out, and every stream's default page
    // must fit Shopify's single-query cost limit (no MAX_COST_EXCEEDED round trip).
    let env = Env::start().await;
    let config = env.config("back-to-back", "");
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let throttled_after_first = env.shop().throttled_count();
    let (code, out) = env.cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        env.shop().throttled_count(),
        throttled_after_first,
        "the second sync was throttled"
    );
    assert_eq!(env.shop().max_cost_exceeded_count(), 0);
}

on_both_stores!(
    sync_fills_the_dataset_with_exactly_the_generated_shop,
    a_second_sync_adds_nothing,
    report_json_gives_the_values_of_the_generated_shop,
    a_long_backfill_goes_through_a_bulk_operation_and_changes_nothing,
);
