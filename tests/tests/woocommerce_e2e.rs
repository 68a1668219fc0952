//! End to end: the `growthflow` commands against the sandbox's simulated WooCommerce store, checked
//! against values computed independently from the store's generated data.

use growthflow_tests::{
    cents, cli, date_of, db, dec, on_both_stores, per_stream, raw_payloads, snapshot, Captured,
    Store,
};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::str::FromStr;

use chrono::NaiveDate;
use growthflow_sandbox::{Sandbox, SandboxConfig, WooStore};
use rusqlite::Connection;
use rust_decimal::Decimal;
use serde_json::Value;

/// Statuses that are not sales (the WooCommerce connector's documented rule).
const NOT_SALES: [&str; 4] = ["cancelled", "failed", "trash", "checkout-draft"];

on_both_stores!(
    sync_fills_the_dataset_with_exactly_the_generated_store,
    a_second_sync_adds_nothing,
    a_sync_killed_mid_stream_and_run_again_ends_with_the_uninterrupted_dataset,
    faults_on_the_wire_still_give_the_exact_dataset,
    report_json_gives_the_values_of_the_generated_store,
    secrets_never_reach_the_dataset,
    backfill_rereads_a_window_without_moving_the_cursor,
);

struct Env {
    sandbox: Sandbox,
    dir: tempfile::TempDir,
    dataset: Store,
}

impl Env {
    async fn start() -> Env {
        Env::on(Store::sqlite()).await
    }

    async fn on(dataset: Store) -> Env {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
        Env {
            sandbox,
            dir: tempfile::tempdir().unwrap(),
            dataset,
        }
    }

    fn store(&self) -> &WooStore {
        self.sandbox.woocommerce()
    }

    /// Write a config for the sandbox store into `sub/` and return its path.
    fn config(&self, sub: &str, extra: &str, secret: Option<&str>) -> PathBuf {
        let dir = self.dir.path().join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let store = self.store();
        let text = format!(
            r#"
[destination]
{destination}

[sync]
start_date = "2015-01-01"

[sources.woo]
type = "woocommerce"
url = "{url}"
consumer_key = "{ck}"
consumer_secret = "{cs}"
{extra}
"#,
            destination = self.dataset.destination_toml(&dir),
            url = self.sandbox.woocommerce_url(),
            ck = store.consumer_key,
            cs = secret.unwrap_or(&store.consumer_secret),
        );
        let path = dir.join("growthflow.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn email_of(order: &Value) -> Option<String> {
    let e = order["billing"]["email"].as_str()?.trim().to_lowercase();
    e.contains('@').then_some(e)
}

fn is_sale(order: &Value) -> bool {
    !NOT_SALES.contains(&order["status"].as_str().unwrap())
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

async fn sync_fills_the_dataset_with_exactly_the_generated_store(store: Store) {
    let env = Env::on(store).await;
    let config = env.config("a", "", None);
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let store = env.store();
    let source = &summary["sources"][0];
    assert_eq!(source["source"], "woo");
    assert_eq!(source["type"], "woocommerce");
    assert_eq!(source["status"], "ok");
    let records: HashMap<String, u64> = source["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["status"], "ok");
            assert!(s["error"].is_null());
            (
                s["stream"].as_str().unwrap().to_string(),
                s["records"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(records["orders"], store.orders.len() as u64);
    assert_eq!(records["refunds"], store.refunds.len() as u64);
    assert_eq!(records["customers"], store.customers.len() as u64);
    assert_eq!(records["products"], store.products.len() as u64);
    assert_eq!(records["coupons"], store.coupons.len() as u64);

    let conn = db(&config);
    for (stream, expected) in [
        ("orders", &store.orders),
        ("refunds", &store.refunds),
        ("customers", &store.customers),
        ("products", &store.products),
        ("coupons", &store.coupons),
    ] {
        // Every record lands exactly once, as the platform sent it.
        let got: HashMap<String, Value> = raw_payloads(&conn, "woo", stream);
        assert_eq!(got.len(), expected.len(), "{stream}");
        for rec in expected.iter() {
            let id = rec["id"].to_string();
            assert_eq!(
                got.get(&id),
                Some(rec),
                "{stream} {id} differs from what the store served"
            );
        }
    }

    // The orders table holds every order with its money as generated.
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM orders"),
        store.orders.len() as i64
    );
    let valid: Vec<&Value> = store.orders.iter().filter(|o| is_sale(o)).collect();
    let revenue: Decimal = valid.iter().map(|o| dec(&o["total"])).sum();
    let db_revenue: f64 = conn
        .query_row(
            "SELECT SUM(total_price) FROM orders WHERE cancelled = 0 AND test = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!((db_revenue - revenue.to_string().parse::<f64>().unwrap()).abs() < 0.005);
    let refunded: Decimal = store.refunds.iter().map(|r| dec(&r["amount"])).sum();
    let db_refunded: f64 = conn
        .query_row("SELECT SUM(total_refunded) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert!((db_refunded - refunded.to_string().parse::<f64>().unwrap()).abs() < 0.005);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM journey_events WHERE event_type = 'refund'"
        ),
        store.refunds.len() as i64
    );
    // A WooCommerce refund record has no currency of its own: its event carries its order's.
    let order_currency: HashMap<String, String> = store
        .orders
        .iter()
        .map(|o| {
            (
                o["id"].to_string(),
                o["currency"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut stmt = conn
        .prepare(
            "SELECT json_extract(attributes, '$.order_id'), currency FROM journey_events
             WHERE event_type = 'refund'",
        )
        .unwrap();
    let refund_currencies: Vec<(String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(refund_currencies.len(), store.refunds.len());
    for (order_id, currency) in &refund_currencies {
        assert_eq!(
            currency.as_deref(),
            Some(order_currency[order_id].as_str()),
            "refund of order {order_id}"
        );
    }

    // customer_order_index numbers each person's valid orders by creation time.
    let mut by_person: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for o in &valid {
        if let Some(e) = email_of(o) {
            by_person.entry(e).or_default().push((
                o["date_created_gmt"].as_str().unwrap().to_string(),
                o["id"].to_string(),
            ));
        }
    }
    let mut stmt = conn
        .prepare("SELECT order_id, customer_order_index FROM orders WHERE customer_order_index IS NOT NULL")
        .unwrap();
    let indexes: HashMap<String, i64> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut expected_indexes = HashMap::new();
    for orders in by_person.values_mut() {
        orders.sort();
        for (i, (_, id)) in orders.iter().enumerate() {
            expected_indexes.insert(id.clone(), i as i64 + 1);
        }
    }
    assert_eq!(indexes, expected_indexes);
    assert!(
        expected_indexes.values().any(|i| *i >= 2),
        "the store has repeat buyers"
    );
    let repeat_events = count(
        &conn,
        "SELECT COUNT(*) FROM journey_events WHERE event_type = 'order' AND stage = 'retention'",
    );
    assert_eq!(
        repeat_events,
        expected_indexes.values().filter(|i| **i >= 2).count() as i64
    );
}

async fn a_second_sync_adds_nothing(store: Store) {
    let env = Env::on(store).await;
    let config = env.config("a", "", None);
    assert_eq!(cli(&config, &["sync"]).await.0, 0);
    let first = snapshot(&db(&config));
    let (code, _) = cli(&config, &["sync"]).await;
    assert_eq!(code, 0);
    let second = snapshot(&db(&config));
    assert_eq!(first, second);
    // The saved cursor of orders is the newest modification time the store has.
    let newest = env
        .store()
        .orders
        .iter()
        .map(|o| o["date_modified_gmt"].as_str().unwrap().to_string())
        .max()
        .unwrap();
    let state: String = db(&config)
        .query_row(
            "SELECT state FROM sync_state WHERE source='woo' AND stream='orders'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, format!("{{\"cursor\":\"{newest}Z\"}}"));
}

/// Issue 13: a sync with nothing new makes one request per stream: the saved cursor less one second
/// (WooCommerce's `modified_after`/`after` are exclusive and whole-second) brings back one page holding
/// the newest records again. `customers` are the exception: the WooCommerce REST API has no modified
/// (or any date) filter for customers, so every sync reads all of them — the first page of 100, then
/// slices of 100 that each repeat the previous one's last customer (`offset` = k × 99, to prove no
/// customer slid between two slices), as many as reach the listing's end: 1 + ⌈(N − 100) / 99⌉
/// requests for N customers.
#[tokio::test]
async fn a_no_change_sync_makes_one_request_per_stream_and_reads_customers_whole() {
    let env = Env::start().await;
    let config = env.config("a", "", None);
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let before = env.sandbox.request_count();
    let (code, out) = cli(&config, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let received = env.sandbox.request_count() - before;
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let requests = per_stream(&summary["sources"][0], "requests");
    let customers = env.store().customers.len() as u64;
    assert!(customers > 100, "the store's customers fill several pages");
    let customer_requests = 1 + customers.saturating_sub(100).div_ceil(99);
    let want: HashMap<String, u64> = [
        ("orders", 1),
        ("refunds", 1),
        ("customers", customer_requests),
        ("products", 1),
        ("coupons", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(requests, want, "{customers} customers");
    assert_eq!(
        received,
        want.values().sum::<u64>(),
        "the store saw exactly the requests the streams counted"
    );
}

async fn a_sync_killed_mid_stream_and_run_again_ends_with_the_uninterrupted_dataset(store: Store) {
    let env = Env::on(store).await;
    // Small pages so that the kill lands in the middle of the orders stream.
    let reference = env.config("reference", "per_page = 10", None);
    assert_eq!(cli(&reference, &["sync"]).await.0, 0);
    let expected = snapshot(&db(&reference));

    let killed = env.config("killed", "per_page = 10", None);
    let start = env.sandbox.request_count();
    let run = tokio::spawn({
        let killed = killed.clone();
        async move { cli(&killed, &["sync", "--stream", "orders"]).await }
    });
    while env.sandbox.request_count() < start + 12 {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    run.abort();
    let _ = run.await;
    // Give the writer thread a moment to finish the commit it was in (it never leaves half a page).
    let conn = db(&killed);
    let partial = count(
        &conn,
        "SELECT COUNT(*) FROM raw_records WHERE stream = 'orders'",
    );
    assert!(
        partial < env.store().orders.len() as i64,
        "the kill happened mid-stream ({partial})"
    );
    // State never runs ahead of committed data.
    let state: Option<String> = conn
        .query_row(
            "SELECT state FROM sync_state WHERE stream = 'orders'",
            [],
            |r| r.get(0),
        )
        .ok();
    if let Some(state) = state {
        let cursor: Value = serde_json::from_str(&state).unwrap();
        let max: String = conn
            .query_row(
                "SELECT MAX(cursor_value) FROM raw_records WHERE stream = 'orders'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(cursor["cursor"].as_str().unwrap() <= max.as_str());
    }
    drop(conn);

    assert_eq!(cli(&killed, &["sync"]).await.0, 0);
    assert_eq!(snapshot(&db(&killed)), expected);
}

async fn faults_on_the_wire_still_give_the_exact_dataset(store: Store) {
    let env = Env::on(store).await;
    let reference = env.config("reference", "", None);
    assert_eq!(cli(&reference, &["sync"]).await.0, 0);
    let expected = snapshot(&db(&reference));

    let faulty = env.config("faulty", "", None);
    let faults = env.sandbox.faults();
    faults.rate_limit(2, 1);
    faults.server_errors(2);
    faults.drop_connection_after(3);
    let (code, out) = cli(&faulty, &["sync", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    faults.clear();
    assert_eq!(snapshot(&db(&faulty)), expected);
}

async fn report_json_gives_the_values_of_the_generated_store(store: Store) {
    let env = Env::on(store).await;
    let config = env.config("a", "", None);
    assert_eq!(cli(&config, &["sync"]).await.0, 0);
    let store = env.store();
    let since = NaiveDate::from_ymd_opt(2025, 4, 1).unwrap();
    let until = NaiveDate::from_ymd_opt(2025, 6, 30).unwrap();
    let (code, out) = cli(
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
    assert_eq!(code, 0);
    let r: Value = serde_json::from_str(out.trim()).unwrap();

    // Independent computation from the generated orders.
    let in_window = |d: NaiveDate| d >= since && d <= until;
    let valid: Vec<&Value> = store.orders.iter().filter(|o| is_sale(o)).collect();
    let window: Vec<&Value> = valid
        .iter()
        .copied()
        .filter(|o| in_window(date_of(&o["date_created_gmt"])))
        .collect();
    let orders = window.len() as i64;
    let revenue: Decimal = window.iter().map(|o| dec(&o["total"])).sum();
    let mut sorted: Vec<&Value> = valid.clone();
    sorted.sort_by_key(|o| {
        (
            o["date_created_gmt"].as_str().unwrap().to_string(),
            o["id"].to_string(),
        )
    });
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut index: HashMap<i64, i64> = HashMap::new();
    for o in &sorted {
        if let Some(e) = email_of(o) {
            let n = seen.entry(e).or_default();
            *n += 1;
            index.insert(o["id"].as_i64().unwrap(), *n);
        }
    }
    let customers: HashSet<String> = window.iter().filter_map(|o| email_of(o)).collect();
    let repeat: HashSet<String> = window
        .iter()
        .filter(|o| index.get(&o["id"].as_i64().unwrap()).copied().unwrap_or(0) >= 2)
        .filter_map(|o| email_of(o))
        .collect();
    let lifetime: Decimal = valid
        .iter()
        .filter(|o| date_of(&o["date_created_gmt"]) <= until)
        .filter(|o| email_of(o).is_some_and(|e| customers.contains(&e)))
        .map(|o| dec(&o["total"]))
        .sum();
    let valid_ids: HashSet<i64> = valid.iter().map(|o| o["id"].as_i64().unwrap()).collect();
    let refunds: Vec<&Value> = store
        .refunds
        .iter()
        .filter(|f| valid_ids.contains(&f["parent_id"].as_i64().unwrap()))
        .filter(|f| in_window(date_of(&f["date_created_gmt"])))
        .collect();
    let refunded: Decimal = refunds.iter().map(|f| dec(&f["amount"])).sum();

    // JSON numbers are never rounded: money is the exact sum, averages the exact quotient as a double.
    let money = |v: &Value| Decimal::from_str(&v.to_string()).unwrap();
    let exact = |d: Decimal| -> f64 { d.to_string().parse().unwrap() };
    assert_eq!(r["since"], "2025-04-01");
    assert_eq!(r["until"], "2025-06-30");
    assert_eq!(r["currency"], "USD");
    let c = &r["conversion"];
    assert_eq!(c["orders"], orders);
    assert_eq!(money(&c["revenue"]), revenue.normalize());
    assert_eq!(
        c["aov"].as_f64().unwrap(),
        exact(revenue / Decimal::from(orders))
    );
    assert!(c["conversion_rate"].is_null(), "no GA4: no sessions");
    assert_eq!(c["abandoned_checkouts"], 0);
    assert!(c["cart_abandonment_rate"].is_null(), "no Shopify source");
    let t = &r["retention"];
    assert_eq!(t["customers"], customers.len() as i64);
    assert_eq!(t["repeat_customers"], repeat.len() as i64);
    assert!(!repeat.is_empty());
    let rate = repeat.len() as f64 / customers.len() as f64;
    assert!((t["repeat_purchase_rate"].as_f64().unwrap() - rate).abs() < 1e-12);
    assert_eq!(
        t["ltv"].as_f64().unwrap(),
        exact(lifetime / Decimal::from(customers.len()))
    );
    assert_eq!(money(&t["email_attributed_revenue"]), Decimal::ZERO);
    let f = &r["feedback"];
    assert_eq!(f["refunds"], refunds.len() as i64);
    assert_eq!(money(&f["refunded_amount"]), refunded.normalize());
    let refund_rate: f64 = (refunded / revenue).to_string().parse().unwrap();
    assert_eq!(f["refund_rate"].as_f64().unwrap(), refund_rate);
    assert_eq!(f["reported_purchases"]["store"], orders);
    assert_eq!(f["reported_purchases"]["meta_ads"], 0);
    let a = &r["awareness"];
    assert_eq!(a["impressions"], 0);
    assert!(a["ctr"].is_null());

    // Campaigns: orders and revenue per utm_campaign of the window's valid orders.
    let mut by_campaign: HashMap<String, (i64, Decimal)> = HashMap::new();
    for o in &window {
        let campaign = o["meta_data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == "_wc_order_attribution_utm_campaign")
            .and_then(|m| m["value"].as_str())
            .map(|s| s.trim().to_lowercase());
        if let Some(c) = campaign.filter(|c| !c.is_empty()) {
            let e = by_campaign.entry(c).or_default();
            e.0 += 1;
            e.1 += dec(&o["total"]);
        }
    }
    let rows = r["campaigns"].as_array().unwrap();
    assert_eq!(rows.len(), by_campaign.len());
    for row in rows {
        let name = row["campaign"].as_str().unwrap().trim().to_lowercase();
        let (n, rev) = by_campaign[&name];
        assert_eq!(row["orders"], n, "{name}");
        assert_eq!(money(&row["revenue"]), rev.normalize(), "{name}");
        assert!(row["roas"].is_null(), "no spend without Meta");
    }
    assert!(r.get("other_currencies").is_none(), "one currency only");

    // In another currency: the store's USD money is listed apart, never added in.
    let (code, out) = cli(
        &config,
        &[
            "report",
            "--since",
            "2025-04-01",
            "--until",
            "2025-06-30",
            "--currency",
            "eur",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let e: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(e["currency"], "EUR");
    assert_eq!(e["conversion"]["orders"], orders);
    assert_eq!(e["conversion"]["revenue"], 0);
    assert!(e["conversion"]["aov"].is_null());
    assert_eq!(e["other_currencies"]["USD"]["orders"], orders);
    assert_eq!(
        money(&e["other_currencies"]["USD"]["revenue"]),
        revenue.normalize()
    );
    assert_eq!(
        money(&e["other_currencies"]["USD"]["refunded_amount"]),
        refunded.normalize()
    );

    // Without dates: the last 30 days of data.
    let (_, out) = cli(&config, &["report", "--format", "json"]).await;
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    let last = store
        .orders
        .iter()
        .map(|o| date_of(&o["date_created_gmt"]))
        .chain(
            store
                .refunds
                .iter()
                .map(|f| date_of(&f["date_created_gmt"])),
        )
        .max()
        .unwrap();
    assert_eq!(r["until"], last.format("%Y-%m-%d").to_string());
    assert_eq!(
        r["since"],
        (last - chrono::Days::new(29))
            .format("%Y-%m-%d")
            .to_string()
    );

    // csv and table carry the same numbers.
    let (_, csv) = cli(
        &config,
        &[
            "report",
            "--since",
            "2025-04-01",
            "--until",
            "2025-06-30",
            "--format",
            "csv",
        ],
    )
    .await;
    assert!(
        csv.contains(&format!("conversion,orders,{orders}")),
        "{csv}"
    );
    let (_, table) = cli(
        &config,
        &["report", "--since", "2025-04-01", "--until", "2025-06-30"],
    )
    .await;
    assert!(table.contains(&cents(revenue).to_string()), "{table}");
}

#[tokio::test]
async fn check_discover_and_a_failing_source() {
    let env = Env::start().await;
    let good = env.config("good", "", None);
    assert_eq!(cli(&good, &["check"]).await, (0, "woo: ok\n".to_string()));

    let (code, out) = cli(&good, &["discover", "--json"]).await;
    assert_eq!(code, 0);
    let d: Value = serde_json::from_str(out.trim()).unwrap();
    let streams: Vec<&str> = d["sources"][0]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream"].as_str().unwrap())
        .collect();
    assert_eq!(
        streams,
        ["orders", "refunds", "customers", "products", "coupons"]
    );
    assert_eq!(d["sources"][0]["streams"][0]["cursor"], "date_modified_gmt");

    let bad = env.config("bad", "", Some("cs_wrong_secret_value"));
    let (code, out) = cli(&bad, &["check"]).await;
    assert_eq!(code, 1);
    assert!(out.starts_with("woo: failed:"), "{out}");
    assert!(
        out.contains("\"woo\"") && out.contains("consumer_secret"),
        "{out}"
    );
    assert!(
        !out.contains("cs_wrong_secret_value"),
        "the secret leaked: {out}"
    );

    let (code, out) = cli(&bad, &["sync", "--json"]).await;
    assert_eq!(code, 1);
    let s: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(s["sources"][0]["status"], "failed");
    for stream in s["sources"][0]["streams"].as_array().unwrap() {
        assert_eq!(stream["status"], "failed");
        assert!(stream["error"].as_str().unwrap().contains("woo"));
    }
    assert!(!out.contains("cs_wrong_secret_value"));
}

#[tokio::test]
async fn usage_and_config_errors_exit_2_naming_the_key() {
    let env = Env::start().await;
    let config = env.config("a", "consumer_keyy = \"x\"", None);
    let (code, _) = cli(&config, &["sync"]).await;
    assert_eq!(code, 2);
    let good = env.config("b", "", None);
    assert_eq!(cli(&good, &["sync", "--stream", "nope"]).await.0, 2);
    assert_eq!(cli(&good, &["check", "unknown_source"]).await.0, 2);
}

async fn secrets_never_reach_the_dataset(store: Store) {
    let env = Env::on(store).await;
    let config = env.config("a", "", None);
    assert_eq!(cli(&config, &["sync"]).await.0, 0);
    let conn = db(&config);
    let secret = env.store().consumer_secret.clone();
    let key = env.store().consumer_key.clone();
    for table in [
        "raw_records",
        "sync_state",
        "orders",
        "customers",
        "journey_events",
        "growthflow_sources",
    ] {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..n {
                let v: rusqlite::types::Value = row.get(i).unwrap();
                let text = format!("{v:?}");
                assert!(
                    !text.contains(&secret) && !text.contains(&key),
                    "{table} holds a credential"
                );
            }
        }
    }
}

async fn backfill_rereads_a_window_without_moving_the_cursor(store: Store) {
    let env = Env::on(store).await;
    let config = env.config("a", "", None);
    assert_eq!(cli(&config, &["sync"]).await.0, 0);
    let before = snapshot(&db(&config));
    let (code, out) = cli(
        &config,
        &[
            "backfill",
            "--since",
            "2025-03-01",
            "--until",
            "2025-03-31",
            "--json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let s: Value = serde_json::from_str(out.trim()).unwrap();
    let orders_in_march = env
        .store()
        .orders
        .iter()
        .filter(|o| {
            let d = date_of(&o["date_created_gmt"]);
            d >= NaiveDate::from_ymd_opt(2025, 3, 1).unwrap()
                && d <= NaiveDate::from_ymd_opt(2025, 3, 31).unwrap()
        })
        .count() as u64;
    let orders = s["sources"][0]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["stream"] == "orders")
        .unwrap();
    assert_eq!(orders["records"].as_u64().unwrap(), orders_in_march);
    // Same data re-read: nothing changes, state included.
    assert_eq!(snapshot(&db(&config)), before);
}

#[tokio::test]
async fn secrets_never_reach_the_logs_even_at_trace_level() {
    let env = Env::start().await;
    let good = env.config("good", "", None);
    let bad = env.config("bad", "", Some("cs_wrong_secret_value"));
    let sink = Captured::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded, so every task of the sync logs through this subscriber.
    let guard = tracing::subscriber::set_default(subscriber);
    env.sandbox.faults().rate_limit(1, 0);
    assert_eq!(cli(&good, &["sync"]).await.0, 0);
    assert_eq!(cli(&bad, &["sync"]).await.0, 1);
    drop(guard);
    let logs = sink.text();
    assert!(
        logs.contains("retrying"),
        "the 429 retry was logged: {logs}"
    );
    assert!(logs.contains("request failed"), "the 401 was logged");
    for secret in [
        env.store().consumer_secret.as_str(),
        "cs_wrong_secret_value",
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    assert!(
        !logs.contains("oauth_signature="),
        "signed query strings reached the logs"
    );
}
