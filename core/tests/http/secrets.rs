//! Secrets.

use super::*;

#[tokio::test]
async fn query_string_never_appears_in_a_transport_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // closed again here: nothing listens on it
    let clock = TestClock::new();
    let client = default_client(&clock);
    let err = get(
        &client,
        "x",
        format!("http://127.0.0.1:{port}/x?access_token=SECRET&fields=a"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
    let display = err.to_string();
    let debug = format!("{err:?}");
    assert!(display.contains("could not connect"), "{display}");
    for text in [&display, &debug] {
        assert!(!text.contains("SECRET"), "{text}");
        assert!(!text.contains("access_token"), "{text}");
    }
    // Retried like any transient failure, on the virtual clock.
    assert_eq!(
        clock.sleeps().len() as u32,
        RetryPolicy::default().max_retries
    );
}

#[tokio::test]
async fn query_auth_puts_the_token_in_the_query_replacing_an_existing_value() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .and(query_param("access_token", "NEW"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let client = HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")))
        .auth(Arc::new(QueryAuth::new(
            "access_token",
            Arc::new(StaticToken::new(SecretString::from("NEW"))),
        )))
        .origin(&server.uri().parse().unwrap())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    get(
        &client,
        "x",
        format!("{}/x?a=1&access_token=OLD&b=two%20words", server.uri()),
    )
    .await
    .unwrap();
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    let mut pairs: Vec<(String, String)> = reqs[0]
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("a".to_string(), "1".to_string()),
            ("access_token".to_string(), "NEW".to_string()),
            ("b".to_string(), "two words".to_string()),
        ]
    );
    server.verify().await;
}

#[tokio::test]
async fn query_auth_adds_the_token_to_a_url_without_a_query() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .and(query_param("access_token", "NEW"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let client = HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")))
        .auth(Arc::new(QueryAuth::new(
            "access_token",
            Arc::new(StaticToken::new(SecretString::from("NEW"))),
        )))
        .origin(&server.uri().parse().unwrap())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    get(&client, "x", format!("{}/x", server.uri()))
        .await
        .unwrap();
    let reqs = requests(&server).await;
    assert_eq!(reqs[0].url.query(), Some("access_token=NEW"));
    server.verify().await;
}

#[test]
fn client_debug_shows_no_secret() {
    let clock = TestClock::new();
    let client = HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")))
        .auth(Arc::new(HeaderAuth::bearer(Arc::new(StaticToken::new(
            SecretString::from("sk_live_SECRET"),
        )))))
        .origin(&"https://api.example.com".parse().unwrap())
        .clock(Arc::new(clock))
        .build()
        .unwrap();
    let debug = format!("{client:?}");
    assert!(debug.contains("TestPlatform"), "{debug}");
    assert!(!debug.contains("sk_live_SECRET"), "{debug}");
}

/// A platform that echoes the credential it refused (Meta answers a malformed token with "Malformed
/// access token <token>") does not get it into the error, whose text reaches the logs and the
/// dataset's run history: in the query or in a header, whatever the error's kind.
#[tokio::test]
async fn a_credential_the_platform_echoes_is_redacted_from_the_error() {
    const TOKEN: &str = "EAAB-not-a-real-token-0123456789";
    for (status, by_header) in [(400, false), (401, false), (400, true), (503, true)] {
        let server = server().await;
        Mock::given(method("GET"))
            .and(path("/x"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "error": {"message": format!("Malformed access token {TOKEN}"), "code": 190}
            })))
            .mount(&server)
            .await;
        let clock = TestClock::new();
        let token: Arc<dyn TokenProvider> = Arc::new(StaticToken::new(SecretString::from(TOKEN)));
        let builder = HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")));
        let builder = if by_header {
            builder.auth(Arc::new(HeaderAuth::bearer(token)))
        } else {
            builder.auth(Arc::new(QueryAuth::new("access_token", token)))
        };
        let client = builder
            .origin(&server.uri().parse().unwrap())
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap();
        let err = get(&client, "x", format!("{}/x?fields=id", server.uri()))
            .await
            .unwrap_err();
        let (display, debug) = (err.to_string(), format!("{err:?}"));
        for text in [&display, &debug] {
            assert!(!text.contains(TOKEN), "{status} {by_header}: {text}");
        }
        assert!(
            display.contains("Malformed access token [redacted]"),
            "{status} {by_header}: {display}"
        );
    }
}
