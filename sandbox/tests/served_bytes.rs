//! Same seed → same bytes, pinned: the digests of what the simulated WooCommerce store, Shopify shop
//! and Klaviyo account generate and serve for the default config (seed 42, scale 1). The platforms
//! keep their records compactly and render the JSON of a page when it is served; these digests were
//! recorded from the JSON values the platforms used to hold, so a change in how they are stored cannot
//! change a byte of what a connector receives. A deliberate change of the generated data updates them.

mod common;

use std::sync::Arc;

use growthflow_core::http::{Clock, TestClock};
use growthflow_sandbox::{Sandbox, SandboxConfig};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Collected response bodies, with the server's `host:port` replaced (links are built from `Host`).
struct Bodies {
    host: String,
    hash: Sha256,
    count: usize,
}

impl Bodies {
    fn new(sandbox: &Sandbox) -> Self {
        Bodies {
            host: sandbox.base_url().trim_start_matches("http://").to_string(),
            hash: Sha256::new(),
            count: 0,
        }
    }

    fn add(&mut self, label: &str, body: &[u8]) {
        let text = String::from_utf8_lossy(body).replace(&self.host, "HOST");
        self.hash.update(label.as_bytes());
        self.hash.update([0]);
        self.hash.update(text.as_bytes());
        self.hash.update([0]);
        self.count += 1;
    }

    fn digest(self) -> (String, usize) {
        let d = self.hash.finalize();
        (d.iter().map(|b| format!("{b:02x}")).collect(), self.count)
    }
}

fn digest_of(values: &[Value]) -> String {
    let d = Sha256::digest(serde_json::to_vec(values).unwrap());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

async fn start() -> (Sandbox, TestClock) {
    let clock = TestClock::new();
    let sandbox = Sandbox::start_with_clock(SandboxConfig::default(), Arc::new(clock.clone()))
        .await
        .unwrap();
    (sandbox, clock)
}

#[tokio::test]
async fn woocommerce_serves_the_pinned_bytes() {
    let woo = common::Woo::start().await;
    let store = woo.sandbox.woocommerce();
    let data = [
        digest_of(&store.orders),
        digest_of(&store.customers),
        digest_of(&store.products),
        digest_of(&store.coupons),
        digest_of(&store.refunds),
    ]
    .join(",");
    let mut bodies = Bodies::new(&woo.sandbox);
    let lists: &[(&str, &[(&str, &str)])] = &[
        ("orders", &[("per_page", "100")]),
        (
            "orders",
            &[
                ("per_page", "37"),
                ("orderby", "modified"),
                ("order", "asc"),
                ("modified_after", "2025-03-01T00:00:00"),
                ("dates_are_gmt", "true"),
            ],
        ),
        (
            "orders",
            &[("per_page", "50"), ("_fields", "id,total,line_items")],
        ),
        ("customers", &[("per_page", "100"), ("role", "all")]),
        ("products", &[("per_page", "10")]),
        ("coupons", &[("per_page", "100")]),
        ("refunds", &[("per_page", "100")]),
    ];
    for (route, params) in lists {
        let mut page = 1;
        loop {
            let p = page.to_string();
            let mut all = params.to_vec();
            all.push(("page", &p));
            let resp = woo.get(&woo.signed_url(route, &all)).await;
            assert_eq!(resp.status(), 200, "{route} {all:?}");
            let pages: u64 = common::header(&resp, "x-wp-totalpages")
                .unwrap()
                .parse()
                .unwrap();
            bodies.add(&format!("{route} {all:?}"), &resp.bytes().await.unwrap());
            if page >= pages {
                break;
            }
            page += 1;
        }
    }
    let order = store.orders[7]["id"].as_u64().unwrap();
    let refunded: Vec<u64> = store
        .refunds
        .iter()
        .take(3)
        .map(|r| r["parent_id"].as_u64().unwrap())
        .collect();
    let mut singles = vec![
        format!("orders/{order}"),
        format!("customers/{}", store.customers[3]["id"]),
        format!("products/{}", store.products[2]["id"]),
        format!("coupons/{}", store.coupons[1]["id"]),
    ];
    singles.extend(refunded.iter().map(|o| format!("orders/{o}/refunds")));
    for route in singles {
        let resp = woo.get(&woo.signed_url(&route, &[])).await;
        assert_eq!(resp.status(), 200, "{route}");
        bodies.add(&route, &resp.bytes().await.unwrap());
    }
    let (served, n) = bodies.digest();
    assert_eq!(
        (data.as_str(), served.as_str(), n),
        (WOO_DATA, WOO_SERVED, WOO_BODIES)
    );
    woo.sandbox.shutdown().await;
}

const SHOP_PAGE: &str = "query Page($first: Int!, $after: String, $query: String, $sortKey: OrderSortKeys, $reverse: Boolean) {
  ROOT(first: $first, after: $after, query: $query, sortKey: $sortKey, reverse: $reverse) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id } }
    nodes { id lineItems(first: 10) { nodes { id } } }
  }
}";

#[tokio::test]
async fn shopify_serves_the_pinned_bytes() {
    let (sandbox, _clock) = start().await;
    let shop = sandbox.shopify();
    let data = [
        digest_of(&shop.orders),
        digest_of(&shop.customers),
        digest_of(&shop.products),
        digest_of(&shop.abandoned_checkouts),
    ]
    .join(",");
    let http = reqwest::Client::new();
    let url = format!("{}/admin/api/2026-10/graphql.json", sandbox.shopify_url());
    let mut bodies = Bodies::new(&sandbox);
    let runs: &[(&str, u64, &str, &str, bool)] = &[
        ("orders", 50, "", "CREATED_AT", false),
        (
            "orders",
            20,
            "updated_at:>='2025-05-01T00:00:00Z'",
            "UPDATED_AT",
            false,
        ),
        ("orders", 70, "created_at:<2025-04-01", "ID", true),
        ("customers", 60, "", "UPDATED_AT", false),
        ("products", 7, "", "ID", false),
        ("abandonedCheckouts", 25, "", "CREATED_AT", false),
    ];
    for (root, first, filter, sort, reverse) in runs {
        let query = SHOP_PAGE.replace("ROOT", root);
        let mut after: Option<String> = None;
        loop {
            // A full bucket before each page: the bodies carry what is left of it.
            shop.set_bucket_available(growthflow_sandbox::shopify::MAXIMUM_AVAILABLE);
            let resp = http
                .post(&url)
                .header("X-Shopify-Access-Token", &shop.access_token)
                .json(&json!({"query": query, "variables": {
                    "first": first, "after": after, "query": filter, "sortKey": sort, "reverse": reverse}}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let bytes = resp.bytes().await.unwrap();
            bodies.add(root, &bytes);
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            assert!(body.get("errors").is_none(), "{body}");
            let info = &body["data"][root]["pageInfo"];
            if info["hasNextPage"] != true {
                break;
            }
            after = info["endCursor"].as_str().map(str::to_string);
        }
    }
    let (served, n) = bodies.digest();
    assert_eq!(
        (data.as_str(), served.as_str(), n),
        (SHOP_DATA, SHOP_SERVED, SHOP_BODIES)
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn klaviyo_serves_the_pinned_bytes() {
    let (sandbox, clock) = start().await;
    let account = sandbox.klaviyo();
    let data = [
        digest_of(&account.events),
        digest_of(&account.metrics),
        digest_of(&account.profiles),
        digest_of(&account.campaigns),
        digest_of(&account.flows),
        digest_of(&account.lists),
        digest_of(&account.attributions),
    ]
    .join(",");
    let http = reqwest::Client::new();
    let mut bodies = Bodies::new(&sandbox);
    let base = format!("{}/api", sandbox.klaviyo_url());
    let firsts = [
        "events?include=metric,profile,attributions&page[size]=1000".to_string(),
        "events?sort=-datetime&include=attributions,profile&fields[profile]=email,updated&fields[event]=datetime,event_properties&page[size]=333".to_string(),
        "events?filter=greater-or-equal(datetime,2025-05-01T00:00:00Z),less-than(datetime,2025-06-01T00:00:00Z)&sort=datetime&page[size]=200".to_string(),
        format!(
            "events?filter=equals(metric_id,'{}')&sort=timestamp&include=metric",
            account.metrics[5]["id"].as_str().unwrap()
        ),
        format!(
            "events?filter=and(equals(profile_id,'{}'),greater-than(timestamp,1740000000))&page[size]=50",
            account.events[11]["relationships"]["profile"]["data"]["id"].as_str().unwrap()
        ),
        "metrics".to_string(),
        "profiles?page[size]=100".to_string(),
        "profiles?filter=greater-than(updated,2025-03-01T00:00:00Z)&sort=-updated&page[size]=100".to_string(),
        "campaigns?filter=equals(messages.channel,'email')".to_string(),
        "campaigns?filter=equals(messages.channel,'sms'),greater-or-equal(updated_at,2015-01-01T00:00:00Z)&sort=-scheduled_at".to_string(),
        "flows?sort=name".to_string(),
        "lists".to_string(),
    ];
    for first in firsts {
        let mut url = Some(format!("{base}/{first}"));
        while let Some(u) = url {
            // Past every rate window: the bodies do not depend on the tiers.
            clock.sleep(std::time::Duration::from_secs(61)).await;
            let resp = http
                .get(&u)
                .header(
                    "Authorization",
                    format!("Klaviyo-API-Key {}", account.api_key),
                )
                .header("revision", "2026-07-15")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{u}");
            let bytes = resp.bytes().await.unwrap();
            bodies.add(&first, &bytes);
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            url = body["links"]["next"].as_str().map(str::to_string);
        }
    }
    let (served, n) = bodies.digest();
    assert_eq!(
        (data.as_str(), served.as_str(), n),
        (KLAVIYO_DATA, KLAVIYO_SERVED, KLAVIYO_BODIES)
    );
    sandbox.shutdown().await;
}

const WOO_DATA: &str = "51db29ede5d356ec61ca532bcc586c9c214810e7437dec63c908c07cbbac7da3,2d6977a6d4c03e32a76d1377e8a4555e32290eb1a7ab2d18632e9d9637cd4b73,775dd140546092ab5e0e9e25d5573f9f5f2ad86ec7d79fe2af02f0daba7903a3,a2cfc9a3e15f6c4b1c7e2446a98fae801691cea298e742c2af3ff42f8f2cb6d0,709c71249b572b5fb436c19de27ebeb1ac006c62a5f272624b1f3d968c823ddd";
const WOO_SERVED: &str = "e13b1746b9569673b4cad59710535c6186577c651049c06fafc0aae74170f24f";
const WOO_BODIES: usize = 29;
// Customers as the connector selects them since 2026-12-07: `defaultEmailAddress { emailAddress }`.
const SHOP_DATA: &str = "dfdcb6c963656cf06d75dda28ffda8e47c3f4149d1836ea483c7094d7b49ede0,7369b30954b78469a9165bfe47a7f4c42a0a9a9f016faa77b1f232c74d14d442,1af8e9320571ae7bf96cd6a14bbc04decd5804a9bb0b65943e353ca4246527fc,1dee3695513b24bfe499817d372508fd0559e0bd4689d0f8c560bcdfd660b900";
const SHOP_SERVED: &str = "c3dc7d5eced420601dcc8d4fbc62d3665edad600fcef7688871dc8498a51aec5";
const SHOP_BODIES: usize = 17;
const KLAVIYO_DATA: &str = "ecd441ff11659d67e7591bd2364e1fda2142e970efc92413afda614e8cebd48c,9776fefbd71796ccbedfff5f34c31944e0f1da04ff91738fd6a5315abef10727,09654226a40e46242cf083777d9f4df7f638a3be7668a7dc8ecf8572071bda44,d24c96fc132b0a70b81e7f430eeb94a0ef26aa250ebf8fa4c68b509519fbdd75,25599919d2613abfd5b38fd6699e6e9eee24843c268985ab590f50de304db980,c6902da7f59aab8d400d3601ddca8b1c345498eccd423dc1d91720bbdfd3e625,93f0af9c7623eeabea3d504d36744e27e680d3766951fb34673f39e23e955b39";
const KLAVIYO_SERVED: &str = "f4f1d3b9811c7d723e99e47822ee911a82e86f04f3fa94a0f1b09725be1a3d47";
const KLAVIYO_BODIES: usize = 31;

/// Serving pages renders only those pages: the collections a test reads as values stay unrendered
/// while a client pages through them (the demo never holds every record as a JSON value).
#[tokio::test]
async fn serving_pages_renders_only_the_pages() {
    let woo = common::Woo::start().await;
    let body = woo.get_json("orders", &[("per_page", "100")]).await;
    assert_eq!(body.as_array().unwrap().len(), 100);
    let store = woo.sandbox.woocommerce();
    assert!(!store.orders.is_rendered());
    assert_eq!(store.orders.len(), 300, "counted without rendering");
    let account = woo.sandbox.klaviyo();
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/events?include=metric,profile&page[size]=1000",
            woo.sandbox.klaviyo_url()
        ))
        .header(
            "Authorization",
            format!("Klaviyo-API-Key {}", account.api_key),
        )
        .header("revision", "2026-07-15")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 1000);
    assert!(!account.events.is_rendered());
    // Read as values, they are what was served.
    assert_eq!(body["data"][999], account.events[999]);
    assert!(account.events.is_rendered());
    woo.sandbox.shutdown().await;
}
