//! Credentials stay on the configured origin.

use super::*;

#[tokio::test]
async fn a_links_next_on_another_host_is_refused_without_sending_the_key() {
    let h = Harness::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/events"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/vnd.api+json")
                .set_body_json(fixture("events_page1.json", &elsewhere.uri())),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    let catch_all = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("events", None))
        .await
        .unwrap_err();
    match &err {
        Error::OffOrigin { host, allowed, .. } => {
            assert_eq!(host, &elsewhere.address().to_string());
            assert_eq!(allowed, &h.uri());
        }
        other => panic!("expected OffOrigin, got {other:?}"),
    }
    assert!(!err.to_string().contains(KEY), "{err}");
    assert!(!err.to_string().contains(CURSOR), "{err}");
    assert!(
        elsewhere.received_requests().await.unwrap().is_empty(),
        "the other host was sent a request"
    );
    assert_eq!(h.finish(catch_all).await.len(), 1);
    assert!(h.clock.sleeps().is_empty(), "refusals are not retried");
}
