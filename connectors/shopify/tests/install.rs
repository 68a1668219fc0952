//! The install flow's code exchange against a mock token endpoint.

use growthflow_core::http::ClientOptions;
use growthflow_shopify::install::exchange_code;
use growthflow_shopify::ShopifyConfig;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn the_code_is_exchanged_for_an_expiring_offline_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/shopify/admin/oauth/access_token"))
        .and(body_json(json!({
            "client_id": "cid", "client_secret": "csecret", "code": "abc", "expiring": 1
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "shpat_new", "scope": "read_orders,read_customers",
            "expires_in": 3600, "refresh_token": "shprt_new", "refresh_token_expires_in": 7776000
        })))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = growthflow_core::testing::mount_catch_all(&server).await;
    let mut config = ShopifyConfig::new("acme", "unused");
    config.base_url = Some(format!("{}/shopify", server.uri()));
    let token = exchange_code(
        &config,
        "shop",
        "cid",
        &SecretString::from("csecret"),
        "abc",
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(token.access_token.expose_secret(), "shpat_new");
    assert_eq!(token.refresh_token.unwrap().expose_secret(), "shprt_new");
    assert_eq!(token.expires_in, Some(3600));
    assert_eq!(token.scope, "read_orders,read_customers");
    growthflow_core::testing::assert_no_unexpected(catch_all).await;
}
