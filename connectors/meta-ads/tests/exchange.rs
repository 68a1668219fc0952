//! The short-lived → long-lived token exchange against a mock Graph API.

use growthflow_core::http::ClientOptions;
use growthflow_meta_ads::auth::exchange_for_long_lived;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn a_short_lived_token_is_exchanged_for_a_long_lived_one() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v25.0/oauth/access_token"))
        .and(query_param("grant_type", "fb_exchange_token"))
        .and(query_param("client_id", "1234"))
        .and(query_param("client_secret", "app-secret"))
        .and(query_param("fb_exchange_token", "EAAshort"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "EAAlong", "token_type": "bearer", "expires_in": 5183944
        })))
        .expect(1)
        .mount(&server)
        .await;
    let catch_all = growthflow_core::testing::mount_catch_all(&server).await;
    let root = url::Url::parse(&format!("{}/v25.0", server.uri())).unwrap();
    let token = exchange_for_long_lived(
        &root,
        "1234",
        &SecretString::from("app-secret"),
        &SecretString::from("EAAshort"),
        &ClientOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(token.access_token.expose_secret(), "EAAlong");
    assert_eq!(token.expires_in, Some(5183944));
    assert!(!format!("{token:?}").contains("EAAlong"));
    growthflow_core::testing::assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn an_expired_short_lived_token_is_an_auth_error_saying_to_renew() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v25.0/oauth/access_token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "Error validating access token: Session has expired.",
            "type": "OAuthException", "code": 190, "error_subcode": 463, "fbtrace_id": "A1"
        }})))
        .expect(1)
        .mount(&server)
        .await;
    let root = url::Url::parse(&format!("{}/v25.0", server.uri())).unwrap();
    let err = exchange_for_long_lived(
        &root,
        "1234",
        &SecretString::from("app-secret"),
        &SecretString::from("EAAshort"),
        &ClientOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), growthflow_core::ErrorKind::Auth, "{err}");
    assert!(err.to_string().contains("renew"), "{err}");
    assert!(!err.to_string().contains("app-secret") && !err.to_string().contains("EAAshort"));
}
