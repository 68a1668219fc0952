//! Expiring offline tokens.

use super::*;

fn refresh_config(h: &Harness) -> ShopifyConfig {
    let mut c = ShopifyConfig::with_refresh_token("acme", "client-123", "secret-456", "shprt_old");
    c.base_url = Some(h.server.uri());
    c
}

async fn mount_token_endpoint(h: &Harness, body: Value) {
    Mock::given(method("POST"))
        .and(path("/admin/oauth/access_token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=shprt_old"))
        .and(body_string_contains("client_id=client-123"))
        .and(body_string_contains("client_secret=secret-456"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(&h.server)
        .await;
}

async fn sync_with_refreshed_token(h: &Harness) -> Vec<String> {
    Mock::given(method("POST"))
        .and(path(graphql_path()))
        .and(header("x-shopify-access-token", "shpat_fresh"))
        .respond_with(page(
            "orders",
            vec![order(1, "2025-03-02T10:00:00Z")],
            None,
            1900,
        ))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let rotated: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = rotated.clone();
    let c = Shopify::with_rotation_hook(
        "shop",
        refresh_config(h),
        &h.options(),
        Arc::new(move |t| {
            seen.lock().unwrap().push(t.expose_secret().to_string());
            Ok(())
        }),
    )
    .unwrap();
    let pages = read_all(&c, read_request("orders", None)).await.unwrap();
    assert_eq!(ids(&pages), ["1"]);
    h.finish(guard).await;
    let out = rotated.lock().unwrap().clone();
    out
}

#[tokio::test]
async fn the_refresh_token_grant_rotates_and_the_hook_is_called() {
    let h = Harness::start().await;
    // With an explicit `token_type`; the test below sends Shopify's documented response, which has none.
    mount_token_endpoint(
        &h,
        json!({"access_token": "shpat_fresh", "token_type": "bearer", "expires_in": 3600,
               "refresh_token": "shprt_new", "refresh_token_expires_in": 7776000,
               "scope": "read_orders,read_customers"}),
    )
    .await;
    assert_eq!(sync_with_refreshed_token(&h).await, ["shprt_new"]);
}

#[tokio::test]
async fn the_refresh_token_grant_accepts_shopifys_exact_response() {
    let h = Harness::start().await;
    mount_token_endpoint(
        &h,
        json!({"access_token": "shpat_fresh", "expires_in": 3600, "refresh_token": "shprt_new",
               "refresh_token_expires_in": 7776000, "scope": "read_orders,read_customers"}),
    )
    .await;
    assert_eq!(sync_with_refreshed_token(&h).await, ["shprt_new"]);
}
