//! Origin, redirects, body cap, bad JSON.

use super::*;

fn token_client(origin: &MockServer, clock: &TestClock, config: HttpConfig) -> HttpClient {
    HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")))
        .auth(Arc::new(HeaderAuth::new(
            reqwest::header::HeaderName::from_static("x-shopify-access-token"),
            "",
            Arc::new(StaticToken::new(SecretString::from("shpat_SECRET"))),
        )))
        .origin(&format!("{}/admin/api", origin.uri()).parse().unwrap())
        .config(config)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
}

fn host_port(server: &MockServer) -> String {
    server.address().to_string()
}

#[tokio::test]
async fn a_request_to_another_origin_is_refused_and_never_sent() {
    let home = server().await;
    let other = server().await;
    let clock = TestClock::new();
    let client = token_client(&home, &clock, HttpConfig::default());
    let err = get(&client, "x", format!("{}/x?page=2", other.uri()))
        .await
        .unwrap_err();
    match &err {
        Error::OffOrigin { host, allowed, .. } => {
            assert_eq!(host, &host_port(&other));
            assert_eq!(allowed, &home.uri());
        }
        other => panic!("expected OffOrigin, got {other:?}"),
    }
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains(&host_port(&other)), "{text}");
    assert!(
        !text.contains("shpat_SECRET") && !text.contains("page=2"),
        "{text}"
    );
    assert!(requests(&other).await.is_empty());
    assert!(requests(&home).await.is_empty());
    assert!(clock.sleeps().is_empty());
    // The same client still talks to its own origin, with the token.
    Mock::given(method("GET"))
        .and(path("/x"))
        .and(header("x-shopify-access-token", "shpat_SECRET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .expect(1)
        .mount(&home)
        .await;
    get(&client, "x", format!("{}/x", home.uri()))
        .await
        .unwrap();
}

#[test]
fn a_client_with_credentials_needs_an_origin() {
    let err = HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")))
        .auth(Arc::new(HeaderAuth::bearer(Arc::new(StaticToken::new(
            SecretString::from("k"),
        )))))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("origin"), "{err}");
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_and_the_token_stays_home() {
    let home = server().await;
    let other = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(
            ResponseTemplate::new(307).insert_header("Location", format!("{}/y", other.uri())),
        )
        .expect(1)
        .mount(&home)
        .await;
    let clock = TestClock::new();
    let client = token_client(&home, &clock, HttpConfig::default());
    let err = get(&client, "x", format!("{}/x", home.uri()))
        .await
        .unwrap_err();
    match &err {
        Error::OffOrigin { what, host, .. } => {
            assert_eq!(*what, "a redirect");
            assert_eq!(host, &host_port(&other));
        }
        other => panic!("expected OffOrigin, got {other:?}"),
    }
    assert!(!err.to_string().contains("shpat_SECRET"), "{err}");
    assert!(
        requests(&other).await.is_empty(),
        "the other host was called"
    );
    assert_eq!(requests(&home).await.len(), 1, "not retried");
    home.verify().await;
}

#[tokio::test]
async fn a_redirect_on_the_same_origin_is_followed() {
    let home = server().await;
    Mock::given(method("GET"))
        .and(path("/old"))
        .respond_with(ResponseTemplate::new(302).insert_header("Location", "/x"))
        .expect(1)
        .mount(&home)
        .await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .and(header("x-shopify-access-token", "shpat_SECRET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .expect(1)
        .mount(&home)
        .await;
    let clock = TestClock::new();
    let client = token_client(&home, &clock, HttpConfig::default());
    let resp = get(&client, "x", format!("{}/old", home.uri()))
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().unwrap(), json!({"ok": true}));
    home.verify().await;
}

fn capped(limit: u64) -> HttpConfig {
    HttpConfig {
        max_response_bytes: limit,
        ..HttpConfig::default()
    }
}

#[test]
fn the_default_body_cap_is_256_mib() {
    assert_eq!(HttpConfig::default().max_response_bytes, 256 * 1024 * 1024);
}

#[tokio::test]
async fn a_body_over_the_cap_fails_clearly_and_is_not_retried() {
    let home = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(vec![b' '; 2048], "application/json"))
        .expect(1)
        .mount(&home)
        .await;
    let clock = TestClock::new();
    let client = token_client(&home, &clock, capped(1024));
    let err = get(&client, "x", format!("{}/x", home.uri()))
        .await
        .unwrap_err();
    match &err {
        Error::ResponseTooLarge { limit, what } => {
            assert_eq!(*limit, 1024);
            assert_eq!(what, "TestPlatform /x");
        }
        other => panic!("expected ResponseTooLarge, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("1024 bytes"), "{err}");
    assert!(clock.sleeps().is_empty());
    home.verify().await;
    // A body of exactly the cap is read.
    Mock::given(method("GET"))
        .and(path("/exact"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(vec![b' '; 1024], "text/plain"))
        .expect(1)
        .mount(&home)
        .await;
    let resp = get(&client, "x", format!("{}/exact", home.uri()))
        .await
        .unwrap();
    assert_eq!(resp.body.len(), 1024);
}

#[tokio::test]
async fn a_chunked_body_without_content_length_is_cut_at_the_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // wiremock always sends Content-Length; a bare socket answers with chunked encoding instead.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            let _ = socket.write_all(head.as_bytes()).await;
            for _ in 0..8 {
                let chunk = format!("{:x}\r\n{}\r\n", 512, " ".repeat(512));
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
            }
            let _ = socket.write_all(b"0\r\n\r\n").await;
        }
    });
    let clock = TestClock::new();
    let client = HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")))
        .config(capped(1500))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let err = get(&client, "x", format!("http://{addr}/x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ResponseTooLarge { limit: 1500, .. }),
        "{err:?}"
    );
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

const TRUNCATED: &str = r#"{"data": [{"id": 1}, {"id": 2"#;

#[tokio::test]
async fn a_truncated_json_page_is_asked_for_once_more() {
    let home = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(TRUNCATED, "application/json"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&home)
        .await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": 1}]})))
        .expect(1)
        .with_priority(2)
        .mount(&home)
        .await;
    let clock = TestClock::new();
    let client = default_client(&clock);
    let resp = get(&client, "x", format!("{}/x", home.uri()))
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().unwrap(), json!({"data": [{"id": 1}]}));
    assert_eq!(requests(&home).await.len(), 2);
    assert_eq!(clock.sleeps().len(), 1);
    home.verify().await;
}

#[tokio::test]
async fn an_always_truncated_json_page_fails_after_exactly_two_requests() {
    let home = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        // No JSON content type: the body's `{` is enough to know it is meant as JSON.
        .respond_with(ResponseTemplate::new(200).set_body_string(TRUNCATED))
        .expect(2)
        .mount(&home)
        .await;
    let clock = TestClock::new();
    let client = default_client(&clock);
    let err = get(&client, "x", format!("{}/x", home.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err:?}");
    let text = err.to_string();
    assert!(text.contains("TestPlatform /x"), "{text}");
    assert!(!text.contains("\"id\""), "customer data quoted: {text}");
    assert_eq!(requests(&home).await.len(), 2);
    home.verify().await;
}

/// `send_decoded` on a multi-threaded runtime (the CLI's): a page that does not decode is asked for once more, and the value decoded comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_decoded_with_the_request_is_asked_for_once_more_when_truncated() {
    let home = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(TRUNCATED, "application/json"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&home)
        .await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": 7}]})))
        .expect(1)
        .with_priority(2)
        .mount(&home)
        .await;
    let clock = TestClock::new();
    let client = default_client(&clock);
    let (resp, ids) = client
        .send_decoded(
            "x",
            client.reqwest().get(format!("{}/x", home.uri())),
            |r| {
                let v: Value = r.json()?;
                Ok(v["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d["id"].as_i64())
                    .collect::<Vec<i64>>())
            },
        )
        .await
        .unwrap();
    assert_eq!(ids, vec![7]);
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(resp.json::<Value>().unwrap(), json!({"data": [{"id": 7}]}));
    assert_eq!(requests(&home).await.len(), 2);
    home.verify().await;
}

/// What `send_decoded`'s decoder refuses in a well-formed body (or an HTML page) is final at once:
/// asking again would fetch the same page. Only a body that is not well-formed JSON is asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decoder_refusing_a_well_formed_page_is_final_at_once() {
    let home = server().await;
    Mock::given(method("GET"))
        .and(path("/html"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw("<html><body>hi</body></html>", "text/html"),
        )
        .expect(1)
        .mount(&home)
        .await;
    Mock::given(method("GET"))
        .and(path("/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .expect(2)
        .mount(&home)
        .await;
    let clock = TestClock::new();
    let client = default_client(&clock);
    let refuse = |_: &Response| -> growthflow_core::Result<()> {
        Err(Error::Decode {
            message: "not what was expected".into(),
        })
    };
    for (p, asked) in [("html", 1), ("json", 2)] {
        let err = client
            .send_decoded(
                "x",
                client.reqwest().get(format!("{}/{p}", home.uri())),
                refuse,
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "could not decode the response: not what was expected",
            "{p}"
        );
        assert_eq!(requests(&home).await.len(), asked, "{p}");
    }
    let err = client
        .send_decoded(
            "x",
            client.reqwest().get(format!("{}/json", home.uri())),
            |_: &Response| -> growthflow_core::Result<()> { Err(Error::Internal("no".into())) },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err:?}");
    assert_eq!(requests(&home).await.len(), 3);
    assert!(clock.sleeps().is_empty(), "{:?}", clock.sleeps());
    home.verify().await;
}

/// A page that stays truncated fails after two requests with `send`'s own error, which names the
/// platform and the path, whatever the decoder said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_stays_truncated_fails_as_send_does_after_two_requests() {
    let home = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(200).set_body_string(TRUNCATED))
        .expect(2)
        .mount(&home)
        .await;
    let clock = TestClock::new();
    let client = default_client(&clock);
    let err = client
        .send_decoded(
            "x",
            client.reqwest().get(format!("{}/x", home.uri())),
            |r| r.json::<Value>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err:?}");
    assert!(err.to_string().contains("TestPlatform /x"), "{err}");
    assert_eq!(clock.sleeps().len(), 1);
    home.verify().await;
}
