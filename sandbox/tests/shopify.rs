//! The simulated Shopify GraphQL Admin API over real HTTP: auth, paging, filters, cost and throttling,
//! bulk operations.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use growthflow_core::http::{Clock, TestClock};
use growthflow_sandbox::{Sandbox, SandboxConfig, ShopData};
use serde_json::{json, Value};

const ORDERS_PAGE: &str =
    "query Page($first: Int!, $after: String, $query: String, $sortKey: OrderSortKeys) {
  orders(first: $first, after: $after, query: $query, sortKey: $sortKey) {
    pageInfo { hasNextPage endCursor }
    nodes { id createdAt updatedAt lineItems(first: 5) { nodes { id } } }
  }
}";

struct Shop {
    sandbox: Sandbox,
    clock: TestClock,
    http: reqwest::Client,
}

impl Shop {
    /// The shop on a test clock: its bucket refills only with the time a test lets pass on it.
    async fn start() -> Shop {
        let clock = TestClock::new();
        Shop {
            sandbox: Sandbox::start_with_clock(SandboxConfig::default(), Arc::new(clock.clone()))
                .await
                .unwrap(),
            clock,
            http: reqwest::Client::new(),
        }
    }

    fn data(&self) -> &ShopData {
        self.sandbox.shopify()
    }

    fn url(&self) -> String {
        format!(
            "{}/admin/api/2026-10/graphql.json",
            self.sandbox.shopify_url()
        )
    }

    async fn post_with(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        let mut req = self
            .http
            .post(self.url())
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.header("X-Shopify-Access-Token", t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    async fn post(&self, query: &str, variables: Value) -> Value {
        let token = self.data().access_token.clone();
        let (status, body) = self.post_with(Some(&token), query, variables).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Restore the points `secs` seconds at `rate` points a second would, without waiting for them.
    fn let_time_pass(&self, secs: f64, rate: f64) {
        let data = self.data();
        data.set_bucket_available(data.bucket_available() + secs * rate);
    }

    /// Every order id returned by paging `filter` with `first`, in order, the number of pages, and how
    /// many queries were answered THROTTLED on the way.
    async fn page_all(&self, first: u64, filter: &str, sort: &str) -> (Vec<String>, usize, usize) {
        let mut after: Option<String> = None;
        let mut ids = Vec::new();
        let mut pages = 0;
        let mut throttled = 0;
        loop {
            let body = self
                .post(
                    ORDERS_PAGE,
                    json!({ "first": first, "after": after, "query": filter, "sortKey": sort }),
                )
                .await;
            if body["errors"][0]["extensions"]["code"] == "THROTTLED" {
                // A client waits for the missing points; this test is about paging, so it lets that
                // time pass in the bucket instead of on the wall clock.
                let cost = &body["extensions"]["cost"];
                let missing = cost["requestedQueryCost"].as_f64().unwrap()
                    - cost["throttleStatus"]["currentlyAvailable"]
                        .as_f64()
                        .unwrap();
                let rate = cost["throttleStatus"]["restoreRate"].as_f64().unwrap();
                self.let_time_pass(missing / rate + 0.05, rate);
                throttled += 1;
                continue;
            }
            assert!(body.get("errors").is_none(), "{body}");
            pages += 1;
            let conn = &body["data"]["orders"];
            for n in conn["nodes"].as_array().unwrap() {
                ids.push(n["id"].as_str().unwrap().to_string());
            }
            if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                break;
            }
            after = Some(conn["pageInfo"]["endCursor"].as_str().unwrap().to_string());
        }
        (ids, pages, throttled)
    }
}

#[tokio::test]
async fn a_bad_or_missing_token_is_a_401_with_a_string_error() {
    let shop = Shop::start().await;
    let expected = json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"});
    let (status, body) = shop
        .post_with(Some("shpat_wrong"), ORDERS_PAGE, json!({"first": 1}))
        .await;
    assert_eq!((status, body), (401, expected.clone()));
    let (status, body) = shop.post_with(None, ORDERS_PAGE, json!({"first": 1})).await;
    assert_eq!((status, body), (401, expected));
}

#[tokio::test]
async fn generated_data_has_the_promised_shape() {
    let shop = Shop::start().await;
    let d = shop.data();
    assert_eq!(d.orders.len(), 200);
    assert_eq!(d.abandoned_checkouts.len(), 60);
    let cancelled = d
        .orders
        .iter()
        .filter(|o| !o["cancelledAt"].is_null())
        .count();
    let test = d.orders.iter().filter(|o| o["test"] == true).count();
    let refunded = d
        .orders
        .iter()
        .filter(|o| !o["refunds"].as_array().unwrap().is_empty())
        .count();
    assert!(cancelled >= 3, "{cancelled}");
    assert!(test >= 1, "{test}");
    assert!((8..=30).contains(&refunded), "{refunded}");
    assert!(d
        .abandoned_checkouts
        .iter()
        .any(|c| !c["completedAt"].is_null()));
    let o = &d.orders[0];
    assert!(o["id"]
        .as_str()
        .unwrap()
        .starts_with("gid://shopify/Order/"));
    assert!(o["totalPriceSet"]["shopMoney"]["amount"].is_string());
    assert!(o["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(d.customers[0]["numberOfOrders"].is_string());
    // Deterministic.
    let again = ShopData::generate(42, 1, SandboxConfig::default().end);
    assert_eq!(again.orders, d.orders);
    assert_eq!(again.abandoned_checkouts, d.abandoned_checkouts);
}

#[tokio::test]
async fn pages_with_cursors_return_every_order_exactly_once() {
    let shop = Shop::start().await;
    let mut throttled = 0;
    for sort in ["UPDATED_AT", "CREATED_AT", "ID"] {
        let (ids, pages, t) = shop.page_all(17, "", sort).await;
        throttled += t;
        assert_eq!(pages, 200usize.div_ceil(17), "{sort}");
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), 200, "{sort}");
        let all: BTreeSet<String> = shop
            .data()
            .orders
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(unique.into_iter().cloned().collect::<BTreeSet<_>>(), all);
    }
    // The bucket ran dry on the way, and paging went on where it was throttled.
    assert!(throttled > 0, "some page was throttled");
    assert_eq!(shop.data().throttled_count(), throttled as u64);
    // Sorted by update time.
    let (ids, _, _) = shop.page_all(50, "", "UPDATED_AT").await;
    let updated_at = |gid: &String| {
        shop.data()
            .orders
            .iter()
            .find(|o| o["id"] == gid.as_str())
            .map(|o| o["updatedAt"].as_str().unwrap().to_string())
            .unwrap()
    };
    let times: Vec<String> = ids.iter().map(updated_at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[tokio::test]
async fn updated_at_and_created_at_filters() {
    let shop = Shop::start().await;
    let orders = &shop.data().orders;
    let mut updated: Vec<&str> = orders
        .iter()
        .map(|o| o["updatedAt"].as_str().unwrap())
        .collect();
    updated.sort();
    let pivot = updated[150];
    let expected = orders
        .iter()
        .filter(|o| o["updatedAt"].as_str().unwrap() >= pivot)
        .count();
    let (ids, _, _) = shop
        .page_all(25, &format!("updated_at:>='{pivot}'"), "UPDATED_AT")
        .await;
    assert_eq!(ids.len(), expected);
    assert!(expected >= 50);

    let (since, until) = ("2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z");
    let expected: Vec<String> = orders
        .iter()
        .filter(|o| {
            let c = o["createdAt"].as_str().unwrap();
            c >= since && c < until
        })
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    let (ids, _, _) = shop
        .page_all(
            100,
            &format!("created_at:>='{since}' created_at:<'{until}'"),
            "CREATED_AT",
        )
        .await;
    assert_eq!(ids, expected);
    assert!(!ids.is_empty());
}

#[tokio::test]
async fn cost_extensions_and_limits() {
    let shop = Shop::start().await;
    let body = shop.post(ORDERS_PAGE, json!({"first": 10})).await;
    let cost = &body["extensions"]["cost"];
    assert_eq!(cost["requestedQueryCost"], 2 + 10 * (1 + 2 + 5));
    assert!(cost["actualQueryCost"].as_u64().unwrap() <= 82);
    assert_eq!(cost["throttleStatus"]["maximumAvailable"], 2000.0);
    assert_eq!(cost["throttleStatus"]["restoreRate"], 100.0);
    assert!(
        cost["throttleStatus"]["currentlyAvailable"]
            .as_u64()
            .unwrap()
            <= 2000
    );

    // Over the single-query limit.
    let body = shop.post(ORDERS_PAGE, json!({"first": 200})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "MAX_COST_EXCEEDED");
    assert_eq!(body["errors"][0]["extensions"]["cost"], 2 + 200 * 8);
    assert!(body.get("data").is_none());
    // first over 250.
    let body = shop
        .post("{ customers(first: 251) { nodes { id } } }", json!({}))
        .await;
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("250"));
    // The check query: shop and one order.
    let body = shop
        .post(
            "query Check { shop { name } orders(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert!(body["data"]["shop"]["name"].is_string());
    assert_eq!(body["data"]["orders"]["nodes"].as_array().unwrap().len(), 1);
    assert!(body["extensions"]["cost"].is_object());
}

#[tokio::test]
async fn rapid_expensive_queries_drain_the_bucket_into_throttled() {
    let shop = Shop::start().await;
    let query = "{ orders(first: 15) { nodes { id lineItems(first: 60) { nodes { id } } } } }";
    let mut throttled = None;
    for i in 0..200 {
        let body = shop.post(query, json!({})).await;
        if body["errors"][0]["extensions"]["code"] == "THROTTLED" {
            throttled = Some((i, body));
            break;
        }
        assert_eq!(
            body["extensions"]["cost"]["requestedQueryCost"],
            2 + 15 * 63
        );
    }
    let (i, body) = throttled.expect("the bucket ran dry");
    assert!(i >= 5, "not before the bucket was drained ({i})");
    assert_eq!(body["errors"][0]["message"], "Throttled");
    assert!(body.get("data").is_none());
    let cost = &body["extensions"]["cost"];
    assert!(cost["actualQueryCost"].is_null());
    assert!(
        cost["throttleStatus"]["currentlyAvailable"]
            .as_u64()
            .unwrap()
            < 947
    );
    assert!(shop.data().throttled_count() >= 1);
    // The bucket refills with time (100 points a second).
    let before = shop.data().bucket_available();
    shop.clock.sleep(Duration::from_millis(300)).await;
    let refilled = shop.data().bucket_available() - before;
    assert!((refilled - 30.0).abs() < 1e-6, "{refilled} points in 0.3 s");
}

#[tokio::test]
async fn bulk_operation_runs_polls_and_serves_jsonl() {
    let shop = Shop::start().await;
    let inner = r#"{ orders(query: "created_at:>='2025-01-01T00:00:00Z' created_at:<'2025-07-01T00:00:00Z'", sortKey: CREATED_AT) { edges { node { __typename id lineItems { edges { node { __typename id } } } } } } }"#;
    let body = shop
        .post(
            "mutation RunBulk($query: String!) { bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message code } } }",
            json!({ "query": inner }),
        )
        .await;
    let run = &body["data"]["bulkOperationRunQuery"];
    assert_eq!(run["bulkOperation"]["status"], "CREATED", "{body}");
    assert_eq!(run["userErrors"], json!([]));
    let id = run["bulkOperation"]["id"].as_str().unwrap().to_string();
    let poll = "query PollBulk($id: ID!) { node(id: $id) { ... on BulkOperation { id status errorCode objectCount url partialDataUrl } } }";
    let b1 = shop.post(poll, json!({ "id": id })).await;
    assert_eq!(b1["data"]["node"]["status"], "RUNNING");
    let b2 = shop.post(poll, json!({ "id": id })).await;
    assert_eq!(b2["data"]["node"]["status"], "COMPLETED");
    let url = b2["data"]["node"]["url"].as_str().unwrap();
    // Pre-signed: no token.
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let orders: Vec<&Value> = lines
        .iter()
        .filter(|l| l["__typename"] == "Order")
        .collect();
    let in_window = shop
        .data()
        .orders
        .iter()
        .filter(|o| o["createdAt"].as_str().unwrap() >= "2025-01-01")
        .count();
    assert_eq!(orders.len(), in_window);
    assert!(orders.iter().all(|o| o.get("__parentId").is_none()));
    let items = shop
        .data()
        .orders
        .iter()
        .filter(|o| o["createdAt"].as_str().unwrap() >= "2025-01-01")
        .map(|o| o["lineItems"]["nodes"].as_array().unwrap().len())
        .sum::<usize>();
    let children: Vec<(usize, &Value)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l["__typename"] == "LineItem")
        .collect();
    assert_eq!(children.len(), items);
    // Some child comes before its parent.
    let position = |gid: &str| lines.iter().position(|l| l["id"] == gid).unwrap();
    assert!(children
        .iter()
        .any(|(i, c)| *i < position(c["__parentId"].as_str().unwrap())));
    // Refunds stay inline (a list, not a connection).
    assert!(orders.iter().all(|o| o["refunds"].is_array()));
}

/// A shop's plan sets its bucket: a Plus shop restores 1,000 points a second into 20,000 (Standard:
/// 100 into 2,000), reported in every `throttleStatus`, and a query it can cover is not throttled.
#[tokio::test]
async fn the_shops_plan_sets_its_cost_bucket() {
    use growthflow_sandbox::ShopifyPlan;
    assert_eq!(
        (
            ShopifyPlan::Standard.restore_rate(),
            ShopifyPlan::Standard.maximum_available()
        ),
        (
            growthflow_sandbox::shopify::RESTORE_RATE,
            growthflow_sandbox::shopify::MAXIMUM_AVAILABLE
        )
    );
    assert_eq!(ShopifyPlan::Advanced.restore_rate(), 200.0);
    assert_eq!(ShopifyPlan::Enterprise.maximum_available(), 40_000.0);
    let clock = TestClock::new();
    let sandbox = Sandbox::start_with_clock(
        SandboxConfig {
            shopify_plan: ShopifyPlan::Plus,
            ..Default::default()
        },
        Arc::new(clock.clone()),
    )
    .await
    .unwrap();
    let data = sandbox.shopify();
    assert_eq!(data.plan(), ShopifyPlan::Plus);
    assert_eq!(data.bucket_available(), 20_000.0, "a full Plus bucket");
    data.set_bucket_available(500.0);
    clock.sleep(Duration::from_millis(300)).await;
    assert!(
        (data.bucket_available() - 800.0).abs() < 1e-6,
        "1,000 points a second"
    );
    data.set_bucket_available(f64::MAX);
    assert_eq!(data.bucket_available(), 20_000.0);
    let body: Value = reqwest::Client::new()
        .post(format!(
            "{}/admin/api/2026-10/graphql.json",
            sandbox.shopify_url()
        ))
        .header("X-Shopify-Access-Token", &data.access_token)
        .json(&json!({ "query": ORDERS_PAGE, "variables": { "first": 50 } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    let status = &body["extensions"]["cost"]["throttleStatus"];
    assert_eq!(status["restoreRate"], 1_000.0);
    assert_eq!(status["maximumAvailable"], 20_000.0);
    assert_eq!(data.throttled_count(), 0);
    sandbox.shutdown().await;
}
