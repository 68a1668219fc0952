//! Bounded requests.

use super::*;

#[tokio::test]
async fn a_host_name_that_does_not_resolve_is_not_retried() {
    let clock = TestClock::new();
    let client = default_client(&clock);
    let err = get(
        &client,
        "x",
        "http://does-not-exist.invalid/x?token=abc".into(),
    )
    .await
    .unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unreachable, "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("could not resolve the host name does-not-exist.invalid"),
        "{text}"
    );
    assert!(!text.contains("token=abc"), "{text}");
    assert!(clock.sleeps().is_empty(), "{:?}", clock.sleeps());
}

#[tokio::test]
async fn tls_to_a_server_that_does_not_speak_it_is_not_retried() {
    let plain = MockServer::start().await;
    let clock = TestClock::new();
    let client = default_client(&clock);
    let err = get(&client, "x", format!("https://{}/x", plain.address()))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unreachable, "{err:?}");
    assert!(
        err.to_string().contains(&format!(
            "the TLS handshake with {} failed",
            plain.address()
        )),
        "{err}"
    );
    assert!(clock.sleeps().is_empty(), "{:?}", clock.sleeps());
}

#[tokio::test]
async fn retries_stop_when_the_total_wait_would_pass_its_budget() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "4"))
        .expect(3)
        .with_priority(1)
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let config = HttpConfig {
        retry: RetryPolicy {
            max_total_wait: Duration::from_secs(10),
            ..RetryPolicy::default()
        },
        ..HttpConfig::default()
    };
    let client = HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")))
        .config(config)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let err = get(&client, "x", format!("{}/x", server.uri()))
        .await
        .unwrap_err();
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(4); 2]);
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert!(
        err.to_string()
            .contains("10s this request may wait in total"),
        "{err}"
    );
    server.verify().await;
}
