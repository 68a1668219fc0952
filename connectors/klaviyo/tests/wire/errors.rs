//! Throttles and errors.

use super::*;

#[tokio::test]
async fn a_429_with_retry_after_waits_that_long_then_succeeds() {
    let h = Harness::start().await;
    let base = h.uri();
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "31")
                .insert_header("content-type", "application/vnd.api+json")
                .set_body_json(fixture("error_429.json", &base)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("metrics.json", &base)))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let pages = read_all(&h.connector(), read_request("metrics", None))
        .await
        .unwrap();
    assert_eq!(pages[0].records.len(), 2);
    assert_eq!(h.clock.sleeps(), vec![Duration::from_secs(31)]);
    assert_eq!(h.finish(guard).await.len(), 2);
}

#[tokio::test]
async fn an_exhausted_steady_window_pauses_until_the_reset() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .respond_with(
            doc(vec![])
                .insert_header("RateLimit-Limit", "150")
                .insert_header("RateLimit-Remaining", "0")
                .insert_header("RateLimit-Reset", "17"),
        )
        .expect(2)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let c = h.connector();
    c.check().await.unwrap();
    assert!(h.clock.sleeps().is_empty());
    c.check().await.unwrap();
    assert_eq!(h.clock.sleeps(), vec![Duration::from_secs(17)]);
    h.finish(guard).await;
}

#[tokio::test]
async fn an_html_403_is_reported_as_a_challenge_page() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("content-type", "text/html; charset=UTF-8")
                .insert_header("cf-mitigated", "challenge")
                .set_body_string(
                    "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title></head><body></body></html>",
                ),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = h.connector().check().await.unwrap_err();
    let Error::Auth { message } = &err else {
        panic!("expected an auth error, got {err:?}");
    };
    assert!(message.contains("HTML challenge page"), "{message}");
    assert!(message.contains("source \"email\""), "{message}");
    assert!(!matches!(err, Error::Decode { .. }));
    assert!(h.clock.sleeps().is_empty(), "not retried");
    assert_eq!(h.finish(guard).await.len(), 1);
}

#[tokio::test]
async fn a_401_names_the_source_code_and_scopes() {
    let h = Harness::start().await;
    let base = h.uri();
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .respond_with(ResponseTemplate::new(401).set_body_json(fixture("error_401.json", &base)))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let err = h.connector().check().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "authentication failed: Klaviyo rejected the credentials of source \"email\" (401 not_authenticated: \
         Authentication credentials were not provided.: Missing or invalid private key.): check the private \
         API key (pk_…) and its scopes: events:read, profiles:read, campaigns:read, flows:read, lists:read, \
         metrics:read (Klaviyo › Settings › API keys)"
    );
    assert!(!err.to_string().contains(KEY));
    assert_eq!(h.finish(guard).await.len(), 1);
}

#[tokio::test]
async fn base_url_keeps_its_path_prefix() {
    let h = Harness::start().await;
    Mock::given(method("GET"))
        .and(path("/proxy/klaviyo/api/metrics"))
        .respond_with(doc(vec![]))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = h.config();
    config.base_url = Some(format!("{}/proxy/klaviyo/", h.uri()));
    let c = h.connector_with(config);
    assert_eq!(
        c.api_base().as_str(),
        format!("{}/proxy/klaviyo/api", h.uri())
    );
    c.check().await.unwrap();
    h.finish(guard).await;
}

#[tokio::test]
async fn an_unknown_stream_is_an_error_without_a_request() {
    let h = Harness::start().await;
    let guard = h.catch_all().await;
    let err = read_all(&h.connector(), read_request("segments", None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("segments"), "{err}");
    assert!(h.finish(guard).await.is_empty());
}
