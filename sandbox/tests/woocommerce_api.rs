//! The simulated WooCommerce REST API over real HTTP: auth, paging, filters, errors.

mod common;

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use common::{header, links, oauth_params, pairs, with_query, Woo};
use growthflow_sandbox::WooStore;
use serde_json::{json, Value};

fn ts(v: &Value) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(v.as_str().unwrap(), "%Y-%m-%dT%H:%M:%S").unwrap()
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect()
}

fn auth_error(message: &str) -> Value {
    json!({ "code": "woocommerce_rest_authentication_error", "message": message, "data": { "status": 401 } })
}

#[tokio::test]
async fn signed_request_gets_first_page_with_headers() {
    let woo = Woo::start().await;
    let resp = woo.get(&woo.signed_url("orders", &[])).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/json; charset=UTF-8")
    );
    assert_eq!(header(&resp, "x-wp-total").as_deref(), Some("300"));
    assert_eq!(header(&resp, "x-wp-totalpages").as_deref(), Some("30"));
    let l = links(&resp);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].0, "next");
    assert!(l[0].1.contains("page=2"));
    let body: Value = resp.json().await.unwrap();

    // Default: 10 per page, newest first; records exactly as generated.
    let store = woo.sandbox.woocommerce();
    let mut expected: Vec<&Value> = store.orders.iter().collect();
    expected.sort_by(|a, b| {
        ts(&b["date_created_gmt"])
            .cmp(&ts(&a["date_created_gmt"]))
            .then(b["id"].as_u64().cmp(&a["id"].as_u64()))
    });
    let expected: Vec<Value> = expected.into_iter().take(10).cloned().collect();
    assert_eq!(body, Value::Array(expected));
    woo.sandbox.shutdown().await;
}

#[tokio::test]
async fn authorization_header_is_accepted() {
    let woo = Woo::start().await;
    let url = woo.endpoint("customers");
    let params = pairs(&[("per_page", "5"), ("role", "all")]);
    let store = woo.sandbox.woocommerce();
    let oauth = oauth_params(
        &url,
        &params,
        &store.consumer_key,
        &store.consumer_secret,
        &common::nonce(),
        chrono::Utc::now().timestamp(),
    );
    let header_value = format!(
        "OAuth {}",
        oauth
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", common::rfc3986(v)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let resp = woo
        .http
        .get(with_query(&url, &params))
        .header("Authorization", header_value)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-wp-total").as_deref(), Some("126"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn auth_failures_have_woocommerce_error_bodies() {
    let woo = Woo::start().await;

    // Bad signature: signed with the wrong secret.
    let url = woo.endpoint("orders");
    let store = woo.sandbox.woocommerce();
    let oauth = oauth_params(
        &url,
        &[],
        &store.consumer_key,
        "cs_wrong",
        &common::nonce(),
        chrono::Utc::now().timestamp(),
    );
    let resp = woo.get(&with_query(&url, &oauth)).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        auth_error("Invalid signature - provided signature does not match.")
    );

    // Replayed nonce: the same signed URL twice.
    let signed = woo.signed_url("orders", &[("per_page", "1")]);
    assert_eq!(woo.get(&signed).await.status(), 200);
    let resp = woo.get(&signed).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        auth_error("Invalid nonce - nonce has already been used.")
    );

    // Unknown consumer key.
    let oauth = oauth_params(
        &url,
        &[],
        "ck_nobody",
        "cs_x",
        &common::nonce(),
        chrono::Utc::now().timestamp(),
    );
    let resp = woo.get(&with_query(&url, &oauth)).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        auth_error("Consumer key is invalid.")
    );

    // Stale timestamp (correctly signed).
    let old = chrono::Utc::now().timestamp() - 3600;
    let oauth = oauth_params(
        &url,
        &[],
        &store.consumer_key,
        &store.consumer_secret,
        &common::nonce(),
        old,
    );
    let resp = woo.get(&with_query(&url, &oauth)).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        auth_error("Invalid timestamp.")
    );

    // Some OAuth parameters missing.
    let resp = woo
        .get(&with_query(
            &url,
            &pairs(&[
                ("oauth_consumer_key", &store.consumer_key),
                ("oauth_timestamp", "1"),
                ("oauth_signature_method", "HMAC-SHA256"),
                ("oauth_signature", "x"),
            ]),
        ))
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({ "code": "woocommerce_rest_authentication_missing_parameter", "message": "Missing OAuth parameter oauth_nonce", "data": { "status": 401 } })
    );

    // No credentials at all, HTTP Basic, or consumer_key/secret query params over http → anonymous.
    let cannot_list = json!({ "code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.", "data": { "status": 401 } });
    let resp = woo.get(&url).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap(), cannot_list);
    let resp = woo
        .http
        .get(&url)
        .basic_auth(&store.consumer_key, Some(&store.consumer_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap(), cannot_list);
    let resp = woo
        .get(&with_query(
            &url,
            &pairs(&[
                ("consumer_key", &store.consumer_key),
                ("consumer_secret", &store.consumer_secret),
            ]),
        ))
        .await;
    assert_eq!(resp.json::<Value>().await.unwrap(), cannot_list);

    // Single resource without credentials.
    let id = store.orders[0]["id"].as_u64().unwrap();
    let resp = woo.get(&woo.endpoint(&format!("orders/{id}"))).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({ "code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot view this resource.", "data": { "status": 401 } })
    );
}

/// Behind a proxy that ends TLS the site is HTTPS to WooCommerce: Basic auth and the query key pair
/// are read, OAuth is not.
#[tokio::test]
async fn a_store_behind_tls_takes_basic_auth_instead_of_oauth() {
    let sandbox = growthflow_sandbox::Sandbox::start(growthflow_sandbox::SandboxConfig {
        woocommerce_behind_tls: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let woo = Woo {
        sandbox,
        http: reqwest::Client::new(),
    };
    let url = woo.endpoint("orders");
    let (key, secret) = {
        let store = woo.sandbox.woocommerce();
        (store.consumer_key.clone(), store.consumer_secret.clone())
    };
    let basic = woo
        .http
        .get(format!("{url}?per_page=5"))
        .basic_auth(&key, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    assert_eq!(header(&basic, "x-wp-total").as_deref(), Some("300"));
    assert_eq!(
        basic
            .json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        5
    );

    let query = woo
        .get(&with_query(
            &url,
            &pairs(&[("consumer_key", &key), ("consumer_secret", &secret)]),
        ))
        .await;
    assert_eq!(query.status(), 200);

    let wrong = woo
        .http
        .get(&url)
        .basic_auth(&key, Some("cs_wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.headers()["www-authenticate"],
        "Basic realm=\"WooCommerce API. Use a consumer key in the username field and a consumer \
         secret in the password field.\""
    );
    assert_eq!(
        wrong.json::<Value>().await.unwrap(),
        auth_error("Consumer secret is invalid.")
    );

    // A correctly signed OAuth request is anonymous here, and refused by the capability check.
    let signed = woo.get(&woo.signed_url("orders", &[])).await;
    assert_eq!(signed.status(), 401);
    // Refused by the capability check, not by a failed Basic login: no challenge.
    assert!(signed.headers().get("www-authenticate").is_none());
    assert_eq!(
        signed.json::<Value>().await.unwrap()["code"],
        "woocommerce_rest_cannot_view"
    );
    woo.sandbox.shutdown().await;
}

#[tokio::test]
async fn paging_with_link_headers_returns_every_order_exactly_once() {
    let woo = Woo::start().await;
    let mut url = woo.signed_url(
        "orders",
        &[("per_page", "37"), ("orderby", "id"), ("order", "asc")],
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut total_pages: u64;
    loop {
        let resp = woo.get(&url).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "x-wp-total").as_deref(), Some("300"));
        total_pages = header(&resp, "x-wp-totalpages").unwrap().parse().unwrap();
        let l = links(&resp);
        assert!(
            l.iter().all(|(rel, _)| rel == "prev" || rel == "next"),
            "{l:?}"
        );
        assert_eq!(l.iter().any(|(rel, _)| rel == "prev"), pages > 0);
        let next = l
            .iter()
            .find(|(rel, _)| rel == "next")
            .map(|(_, u)| u.clone());
        let body: Value = resp.json().await.unwrap();
        seen.extend(ids(&body));
        pages += 1;
        match next {
            // WordPress repeats the OAuth parameters in Link: drop them and sign again.
            Some(n) => url = woo.resign_link(&n),
            None => break,
        }
        assert!(pages < 100);
    }
    assert_eq!(total_pages, 9);
    assert_eq!(pages, 9);
    let expected: Vec<u64> = woo
        .sandbox
        .woocommerce()
        .orders
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert_eq!(seen, expected, "ascending ids, each exactly once");

    // Past the last page: 200 [] with the headers, and a prev link.
    let resp = woo
        .get(&woo.signed_url("orders", &[("per_page", "37"), ("page", "12")]))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-wp-total").as_deref(), Some("300"));
    assert_eq!(header(&resp, "x-wp-totalpages").as_deref(), Some("9"));
    let l = links(&resp);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].0, "prev");
    assert!(l[0].1.contains("page=9"));
    assert_eq!(resp.json::<Value>().await.unwrap(), json!([]));

    // offset overrides page.
    let body = woo
        .get_json(
            "orders",
            &[
                ("per_page", "5"),
                ("offset", "298"),
                ("orderby", "id"),
                ("order", "asc"),
            ],
        )
        .await;
    assert_eq!(ids(&body), expected[298..].to_vec());
}

#[tokio::test]
async fn modified_after_honours_dates_are_gmt() {
    let woo = Woo::start().await;
    let store = woo.sandbox.woocommerce();
    // A cutoff one hour before some order's GMT modification time: that order is after the cutoff
    // in GMT but not in site-local time (5 h behind), so the two frames must give different sets.
    let mut by_modified: Vec<&Value> = store.orders.iter().collect();
    by_modified.sort_by_key(|o| ts(&o["date_modified_gmt"]));
    let pivot = by_modified[by_modified.len() * 5 / 6];
    let cutoff_t = ts(&pivot["date_modified_gmt"]) - chrono::TimeDelta::hours(1);
    let fmt = |t: NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let cutoff = fmt(cutoff_t);
    let expect = |field: &str| -> BTreeSet<u64> {
        store
            .orders
            .iter()
            .filter(|o| ts(&o[field]) > cutoff_t)
            .map(|o| o["id"].as_u64().unwrap())
            .collect()
    };
    let fetch = |cutoff: String, gmt: &'static str| {
        let woo = &woo;
        async move {
            let mut got = BTreeSet::new();
            let mut page = 1;
            loop {
                let p = page.to_string();
                let body = woo
                    .get_json(
                        "orders",
                        &[
                            ("modified_after", cutoff.as_str()),
                            ("dates_are_gmt", gmt),
                            ("per_page", "100"),
                            ("page", &p),
                        ],
                    )
                    .await;
                if body.as_array().unwrap().is_empty() {
                    break;
                }
                got.extend(ids(&body));
                page += 1;
            }
            got
        }
    };
    let gmt = fetch(cutoff.clone(), "true").await;
    let local = fetch(cutoff.clone(), "false").await;
    assert_eq!(gmt, expect("date_modified_gmt"));
    assert_eq!(local, expect("date_modified"));
    assert!(!local.is_empty());
    assert!(local.is_subset(&gmt));
    assert!(gmt.contains(&pivot["id"].as_u64().unwrap()));
    assert!(!local.contains(&pivot["id"].as_u64().unwrap()));

    // An explicit offset is converted into the compared frame.
    assert_eq!(fetch(format!("{cutoff}Z"), "true").await, gmt);
    assert_eq!(fetch(format!("{cutoff}Z"), "false").await, gmt);
    let as_local = fmt(cutoff_t - chrono::TimeDelta::hours(5));
    assert_eq!(fetch(format!("{as_local}-05:00"), "true").await, gmt);

    // after/before (created), exclusive.
    let body = woo
        .get_json(
            "orders",
            &[
                ("after", "2025-03-01T00:00:00"),
                ("before", "2025-03-08T00:00:00"),
                ("dates_are_gmt", "true"),
                ("per_page", "100"),
            ],
        )
        .await;
    let lo = NaiveDateTime::parse_from_str("2025-03-01T00:00:00", "%Y-%m-%dT%H:%M:%S").unwrap();
    let hi = NaiveDateTime::parse_from_str("2025-03-08T00:00:00", "%Y-%m-%dT%H:%M:%S").unwrap();
    let expected: BTreeSet<u64> = store
        .orders
        .iter()
        .filter(|o| {
            let t = ts(&o["date_created_gmt"]);
            t > lo && t < hi
        })
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(ids(&body).into_iter().collect::<BTreeSet<_>>(), expected);
}

#[tokio::test]
async fn invalid_parameters_give_rest_invalid_param() {
    let woo = Woo::start().await;
    let resp = woo
        .get(&woo.signed_url("orders", &[("per_page", "101")]))
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({
            "code": "rest_invalid_param",
            "message": "Invalid parameter(s): per_page",
            "data": {
                "status": 400,
                "params": { "per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)" },
                "details": { "per_page": { "code": "rest_out_of_bounds", "message": "per_page must be between 1 (inclusive) and 100 (inclusive)", "data": null } }
            }
        })
    );
    let resp = woo
        .get(&woo.signed_url("orders", &[("modified_after", "last tuesday")]))
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "rest_invalid_param");
    assert_eq!(body["data"]["params"]["modified_after"], "Invalid date.");
    let resp = woo
        .get(&woo.signed_url("orders", &[("orderby", "price")]))
        .await;
    assert_eq!(resp.status(), 400);
    // Customers have no date filter: the parameter is ignored, not rejected.
    let resp = woo
        .get(&woo.signed_url("customers", &[("modified_after", "nonsense")]))
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn unknown_routes_and_ids_are_404() {
    let woo = Woo::start().await;
    let no_route = json!({ "code": "rest_no_route", "message": "No route was found matching the URL and request method.", "data": { "status": 404 } });
    for route in ["webhooks", "orders/abc", "reports/sales"] {
        let resp = woo.get(&woo.signed_url(route, &[])).await;
        assert_eq!(resp.status(), 404, "{route}");
        assert_eq!(resp.json::<Value>().await.unwrap(), no_route);
    }
    // Read-only sandbox: other methods have no route.
    let resp = woo.http.post(woo.endpoint("orders")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap(), no_route);
    let resp = woo.get(&woo.signed_url("orders/1", &[])).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({ "code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID.", "data": { "status": 404 } })
    );
    let resp = woo.get(&format!("{}/nope", woo.sandbox.base_url())).await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn refunds_and_single_records() {
    let woo = Woo::start().await;
    let store = woo.sandbox.woocommerce();

    // Global refunds endpoint (WC ≥ 9.0) = the generated refunds, with parent_id.
    let body = woo
        .get_json(
            "refunds",
            &[("per_page", "100"), ("orderby", "id"), ("order", "asc")],
        )
        .await;
    assert_eq!(body, Value::Array(store.refunds.clone()));

    // Per-order refunds: same objects without parent_id.
    let r = &store.refunds[0];
    let order_id = r["parent_id"].as_u64().unwrap();
    let body = woo
        .get_json(&format!("orders/{order_id}/refunds"), &[])
        .await;
    let list = body.as_array().unwrap();
    assert_eq!(list.len(), store.refunds_of(order_id).count());
    assert!(list[0].get("parent_id").is_none());
    assert_eq!(list[0]["amount"], r["amount"]);

    // Single order = the generated one.
    let body = woo.get_json(&format!("orders/{order_id}"), &[]).await;
    assert_eq!(&body, store.order(order_id).unwrap());
    assert_eq!(
        body["refunds"][0]["total"],
        format!("-{}", r["amount"].as_str().unwrap())
    );

    // _fields projection.
    let body = woo
        .get_json(
            "orders",
            &[("_fields", "id,date_modified_gmt"), ("per_page", "2")],
        )
        .await;
    let first = body[0].as_object().unwrap();
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        vec!["id", "date_modified_gmt"]
    );
}

#[tokio::test]
async fn customers_products_coupons_and_filters() {
    let woo = Woo::start().await;
    let store = woo.sandbox.woocommerce();

    // role defaults to customer; role=all lists every user.
    let resp = woo
        .get(&woo.signed_url("customers", &[("per_page", "100")]))
        .await;
    assert_eq!(header(&resp, "x-wp-total").as_deref(), Some("120"));
    let body: Value = resp.json().await.unwrap();
    assert!(body
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["role"] == "customer"));
    let resp = woo
        .get(&woo.signed_url("customers", &[("role", "all"), ("orderby", "id")]))
        .await;
    assert_eq!(
        header(&resp, "x-wp-total").as_deref(),
        Some(store.customers.len().to_string().as_str())
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body[0]["id"], 1,
        "orderby=id, customers default to ascending"
    );

    // Products and coupons are served as generated.
    let body = woo
        .get_json(
            "products",
            &[("per_page", "100"), ("orderby", "id"), ("order", "asc")],
        )
        .await;
    assert_eq!(body, Value::Array(store.products.clone()));
    let body = woo.get_json("coupons", &[("code", "SPRING15")]).await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["code"], "spring15");

    // status, customer, include/exclude filters on orders.
    let body = woo
        .get_json("orders", &[("status", "cancelled"), ("per_page", "100")])
        .await;
    let expected = store
        .orders
        .iter()
        .filter(|o| o["status"] == "cancelled")
        .count();
    assert_eq!(body.as_array().unwrap().len(), expected);
    assert!(body
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["status"] == "cancelled"));
    let registered = store
        .orders
        .iter()
        .find(|o| o["customer_id"].as_u64().unwrap() > 0)
        .unwrap();
    let cid = registered["customer_id"].to_string();
    let body = woo
        .get_json("orders", &[("customer", &cid), ("per_page", "100")])
        .await;
    assert!(body
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["customer_id"] == registered["customer_id"]));
    let (a, b) = (
        store.orders[3]["id"].to_string(),
        store.orders[7]["id"].to_string(),
    );
    let body = woo
        .get_json(
            "orders",
            &[("include", &format!("{b},{a}")), ("orderby", "include")],
        )
        .await;
    assert_eq!(
        ids(&body),
        vec![
            store.orders[7]["id"].as_u64().unwrap(),
            store.orders[3]["id"].as_u64().unwrap()
        ]
    );

    // Identity is on the trimmed, lower-cased email.
    assert_eq!(
        WooStore::normalize_email("  Jane.Doe@Example.com "),
        "jane.doe@example.com"
    );
}

#[tokio::test]
async fn request_count_counts_every_request() {
    let woo = Woo::start().await;
    let before = woo.sandbox.request_count();
    woo.get(&woo.signed_url("orders", &[])).await;
    woo.get(&woo.endpoint("orders")).await;
    woo.get(&format!("{}/", woo.sandbox.base_url())).await;
    assert_eq!(woo.sandbox.request_count(), before + 3);
}
