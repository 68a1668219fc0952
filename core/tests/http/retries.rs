//! Throttling and retries.

use super::*;

#[tokio::test]
async fn retry_after_seconds_is_honoured_exactly() {
    let server = server().await;
    once(
        &server,
        ResponseTemplate::new(429).insert_header("Retry-After", "7"),
    )
    .await;
    ok_after(&server).await;
    let clock = TestClock::new();
    let resp = get(&default_client(&clock), "x", format!("{}/x", server.uri()))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(resp.json::<Value>().unwrap(), json!({"ok": true}));
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(7)]);
    assert_eq!(requests(&server).await.len(), 2);
    server.verify().await;
}

#[tokio::test]
async fn platform_paced_waits_have_their_own_budget_beyond_max_retries() {
    // Ten throttles in a row (more than max_retries = 6): the platform is pacing, not failing.
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(10)
        .expect(10)
        .with_priority(1)
        .mount(&server)
        .await;
    ok_after(&server).await;
    let clock = TestClock::new();
    let resp = get(&default_client(&clock), "x", format!("{}/x", server.uri()))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(1); 10]);
    server.verify().await;
}

#[tokio::test]
async fn retry_after_decimal_seconds() {
    let server = server().await;
    once(
        &server,
        ResponseTemplate::new(429).insert_header("Retry-After", "2.5"),
    )
    .await;
    ok_after(&server).await;
    let clock = TestClock::new();
    get(&default_client(&clock), "x", format!("{}/x", server.uri()))
        .await
        .unwrap();
    assert_eq!(clock.sleeps(), vec![Duration::from_millis(2500)]);
    server.verify().await;
}

#[tokio::test]
async fn retry_after_http_date() {
    let server = server().await;
    let when = (chrono::Utc::now() + chrono::Duration::seconds(30))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    once(
        &server,
        ResponseTemplate::new(429).insert_header("Retry-After", when.as_str()),
    )
    .await;
    ok_after(&server).await;
    let clock = TestClock::new();
    get(&default_client(&clock), "x", format!("{}/x", server.uri()))
        .await
        .unwrap();
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 1, "{sleeps:?}");
    // Whole seconds in the header and a little real time between building it and reading it.
    assert!(
        sleeps[0] >= Duration::from_secs(27) && sleeps[0] <= Duration::from_secs(30),
        "{sleeps:?} for Retry-After: {when}"
    );
    server.verify().await;
}

#[tokio::test]
async fn server_errors_back_off_within_jitter_bounds() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .up_to_n_times(2)
        .expect(2)
        .with_priority(1)
        .mount(&server)
        .await;
    ok_after(&server).await;
    let clock = TestClock::new();
    let resp = get(&default_client(&clock), "x", format!("{}/x", server.uri()))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(requests(&server).await.len(), 3);
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    let ms = Duration::from_millis;
    assert!(sleeps[0] >= ms(250) && sleeps[0] <= ms(500), "{sleeps:?}");
    assert!(sleeps[1] >= ms(500) && sleeps[1] <= ms(1000), "{sleeps:?}");
    server.verify().await;
}

#[tokio::test]
async fn persistent_server_error_gives_up_after_max_retries() {
    let server = server().await;
    let retry = RetryPolicy::default();
    let attempts = u64::from(retry.max_retries) + 1;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"message": "kaput"})))
        .expect(attempts)
        .with_priority(1)
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let err = get(&default_client(&clock), "x", format!("{}/x", server.uri()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transient { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(err.to_string().contains("kaput"), "{err}");
    assert_eq!(requests(&server).await.len() as u64, attempts);
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len() as u32, retry.max_retries);
    for (attempt, d) in sleeps.iter().enumerate() {
        let step = retry
            .base_delay
            .saturating_mul(1 << attempt)
            .min(retry.max_backoff);
        assert!(*d >= step / 2 && *d <= step, "attempt {attempt}: {d:?}");
    }
    server.verify().await;
}

#[tokio::test]
async fn retry_after_beyond_max_wait_fails_without_sleeping() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let config = HttpConfig {
        retry: RetryPolicy {
            max_wait: Duration::from_secs(60),
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
    match &err {
        Error::Throttled { retry_after, .. } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(120)))
        }
        other => panic!("expected Throttled, got {other:?}"),
    }
    assert!(clock.sleeps().is_empty(), "{:?}", clock.sleeps());
    assert_eq!(requests(&server).await.len(), 1);
    server.verify().await;
}
