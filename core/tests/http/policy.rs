//! A platform's own policy.

use super::*;

/// A GraphQL platform in the manner of Shopify: throttling inside a 200 body, and a pacing header.
#[derive(Debug)]
struct GraphQlPolicy;

impl ApiPolicy for GraphQlPolicy {
    fn platform(&self) -> &'static str {
        "TestQL"
    }

    fn classify(&self, resp: &Response) -> Option<Error> {
        if let Some(e) = default_classify(self, resp) {
            return Some(e);
        }
        let body: Value = resp.json().ok()?;
        let throttled = body["errors"].as_array().is_some_and(|errors| {
            errors
                .iter()
                .any(|e| e.pointer("/extensions/code") == Some(&json!("THROTTLED")))
        });
        throttled.then(|| Error::Throttled {
            retry_after: Some(Duration::from_secs(3)),
            message: "THROTTLED".into(),
        })
    }

    fn pace(&self, resp: &Response) -> Option<Duration> {
        resp.header("x-pace-ms")
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    }
}

#[tokio::test]
async fn throttle_signalled_inside_a_200_is_retried_after_the_policy_delay() {
    let server = server().await;
    once(
        &server,
        ResponseTemplate::new(200).set_body_json(
            json!({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}),
        ),
    )
    .await;
    ok_after(&server).await;
    let clock = TestClock::new();
    let client = client(Arc::new(GraphQlPolicy), &clock);
    let resp = get(&client, "graphql", format!("{}/x", server.uri()))
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().unwrap(), json!({"ok": true}));
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(3)]);
    assert_eq!(requests(&server).await.len(), 2);
    server.verify().await;
}

#[tokio::test]
async fn pace_delays_the_next_request_on_the_same_endpoint_only() {
    let server = server().await;
    once(
        &server,
        ResponseTemplate::new(200)
            .insert_header("x-pace-ms", "1500")
            .set_body_json(json!({"page": 1})),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .expect(2)
        .with_priority(2)
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let client = client(Arc::new(GraphQlPolicy), &clock);
    let url = format!("{}/x", server.uri());

    get(&client, "a", url.clone()).await.unwrap();
    assert!(
        clock.sleeps().is_empty(),
        "the paced response itself is not delayed"
    );

    get(&client, "b", url.clone()).await.unwrap();
    assert!(
        clock.sleeps().is_empty(),
        "another endpoint does not wait: {:?}",
        clock.sleeps()
    );

    get(&client, "a", url).await.unwrap();
    assert_eq!(clock.sleeps(), vec![Duration::from_millis(1500)]);
    assert_eq!(requests(&server).await.len(), 3);
    server.verify().await;
}

#[tokio::test]
async fn a_manual_pause_delays_that_endpoint() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .with_priority(1)
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let client = default_client(&clock);
    client.pause("a", Duration::from_secs(4));
    client.pause("a", Duration::from_secs(2)); // a shorter pause never shortens a longer one
    let url = format!("{}/x", server.uri());
    get(&client, "b", url.clone()).await.unwrap();
    assert!(clock.sleeps().is_empty());
    get(&client, "a", url).await.unwrap();
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(4)]);
    server.verify().await;
}
