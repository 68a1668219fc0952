//! Errors.

use super::*;

#[tokio::test]
async fn a_401_is_an_auth_error_naming_the_source_and_not_retried() {
    let h = Harness::start().await;
    h.graphql()
        .respond_with(ResponseTemplate::new(401).set_body_json(fixture("error_401.json")))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None))
        .await
        .unwrap_err();
    match &err {
        Error::Auth { message } => {
            assert!(message.contains("source \"shop\""), "{message}");
            assert!(message.contains("access_token"), "{message}");
            assert!(message.contains("app is still installed"), "{message}");
            assert!(message.contains("Invalid API key"), "{message}");
            assert!(!message.contains(TOKEN), "{message}");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    assert!(h.clock.sleeps().is_empty(), "auth failures are not retried");
    h.finish(guard).await;
}

#[tokio::test]
async fn a_graphql_error_at_200_is_an_api_error_with_shopifys_message() {
    let h = Harness::start().await;
    h.graphql()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errors": [{"message": "Field 'nope' doesn't exist on type 'Order'",
                        "extensions": {"code": "undefinedField"}}]})))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("orders", None))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Api { message, code: Some(code), .. }
            if message.contains("doesn't exist") && code == "undefinedField"),
        "{err:?}"
    );
    assert!(h.clock.sleeps().is_empty());
    h.finish(guard).await;
}

#[tokio::test]
async fn check_reads_the_shop_and_one_order() {
    let h = Harness::start().await;
    h.graphql()
        .and(body_string_contains("orders(first: 1)"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"shop": {"name": "NorthPeak"}, "orders": {"nodes": []}},
            "extensions": cost(3, 1997)})))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    h.connector().check().await.unwrap();
    h.finish(guard).await;
}

#[tokio::test]
async fn base_url_keeps_its_path_prefix_and_the_version_is_pinned() {
    let h = Harness::start().await;
    Mock::given(method("POST"))
        .and(path("/proxy/shopify/admin/api/2025-10/graphql.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"shop": {"name": "NorthPeak"}, "orders": {"nodes": []}}})))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = h.config();
    config.base_url = Some(format!("{}/proxy/shopify/", h.server.uri()));
    config.api_version = "2025-10".into();
    let c = h.connector_with(config);
    assert!(c
        .graphql_url()
        .as_str()
        .ends_with("/proxy/shopify/admin/api/2025-10/graphql.json"));
    c.check().await.unwrap();
    h.finish(guard).await;
}

#[tokio::test]
async fn an_unknown_stream_is_an_error_without_a_request() {
    let h = Harness::start().await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("refunds", None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("abandoned_checkouts"), "{err}");
    assert!(h.finish(guard).await.is_empty());
}
