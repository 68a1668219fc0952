//! Classification.

use super::*;

#[tokio::test]
async fn client_error_carries_platform_code_and_message_and_is_not_retried() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"code": "x", "message": "bad"})),
        )
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let err = get(&default_client(&clock), "x", format!("{}/x", server.uri()))
        .await
        .unwrap_err();
    match &err {
        Error::Api {
            platform,
            status,
            code,
            message,
        } => {
            assert_eq!(*platform, "TestPlatform");
            assert_eq!(*status, 400);
            assert_eq!(code.as_deref(), Some("x"));
            assert_eq!(message, "bad");
        }
        other => panic!("expected Api, got {other:?}"),
    }
    assert_eq!(err.to_string(), "TestPlatform API error 400 (x): bad");
    assert!(!err.is_retryable());
    assert_eq!(requests(&server).await.len(), 1);
    assert!(clock.sleeps().is_empty());
    server.verify().await;
}

#[tokio::test]
async fn unauthorized_without_refreshable_credentials_is_an_auth_error() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "expired"})))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let client = HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")))
        .auth(Arc::new(HeaderAuth::bearer(Arc::new(StaticToken::new(
            SecretString::from("static-key"),
        )))))
        .origin(&server.uri().parse().unwrap())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let err = get(&client, "x", format!("{}/x", server.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("401") && text.contains("expired") && text.contains("credentials"),
        "{text}"
    );
    assert!(!text.contains("static-key"), "{text}");
    assert_eq!(requests(&server).await.len(), 1);
    assert!(clock.sleeps().is_empty());
    server.verify().await;
}

/// Hands out `t1`, then `t2` after each invalidation; counts invalidations.
#[derive(Debug, Default)]
struct RotatingProvider {
    generation: AtomicUsize,
}

#[async_trait]
impl TokenProvider for RotatingProvider {
    async fn token(&self) -> Result<SecretString> {
        let n = self.generation.load(Ordering::SeqCst) + 1;
        Ok(SecretString::from(format!("t{n}")))
    }
    async fn invalidate(&self) -> Result<bool> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }
}

fn auth_headers(reqs: &[wiremock::Request]) -> Vec<String> {
    reqs.iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn unauthorized_refreshes_the_token_and_replays_once() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .and(header("authorization", "Bearer t1"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "expired"})))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .and(header("authorization", "Bearer t2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let provider = Arc::new(RotatingProvider::default());
    let clock = TestClock::new();
    let client = HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")))
        .auth(Arc::new(HeaderAuth::bearer(provider.clone())))
        .origin(&server.uri().parse().unwrap())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let resp = get(&client, "x", format!("{}/x", server.uri()))
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().unwrap(), json!({"ok": true}));
    assert_eq!(
        auth_headers(&requests(&server).await),
        vec!["Bearer t1", "Bearer t2"]
    );
    assert_eq!(provider.generation.load(Ordering::SeqCst), 1);
    assert!(clock.sleeps().is_empty(), "a refresh is not a backoff");
    server.verify().await;
}

#[tokio::test]
async fn a_second_unauthorized_after_refresh_is_final() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "revoked"})))
        .expect(2)
        .with_priority(1)
        .mount(&server)
        .await;
    let provider = Arc::new(RotatingProvider::default());
    let clock = TestClock::new();
    let client = HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")))
        .auth(Arc::new(HeaderAuth::bearer(provider.clone())))
        .origin(&server.uri().parse().unwrap())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let err = get(&client, "x", format!("{}/x", server.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err:?}");
    assert_eq!(
        auth_headers(&requests(&server).await),
        vec!["Bearer t1", "Bearer t2"]
    );
    assert_eq!(provider.generation.load(Ordering::SeqCst), 1);
    server.verify().await;
}

#[tokio::test]
async fn html_page_in_a_200_is_a_decode_error_quoting_the_body() {
    let server = server().await;
    let page = "<!DOCTYPE html><html><body>Site under maintenance</body></html>";
    Mock::given(method("GET"))
        .and(path("/x"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html; charset=utf-8")
                .set_body_string(page),
        )
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let clock = TestClock::new();
    let resp = get(&default_client(&clock), "x", format!("{}/x", server.uri()))
        .await
        .unwrap();
    assert!(resp.is_html());
    let err = resp.json::<Value>().unwrap_err();
    match &err {
        Error::Decode { message } => {
            assert!(message.contains("<!DOCTYPE html><html>"), "{message}");
            assert!(message.contains("Site under maintenance"), "{message}");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::Decode);
    server.verify().await;
}

#[test]
fn is_html_sniffs_the_body_without_a_content_type_and_json_is_not_html() {
    let resp = |body: &str, ct: Option<&str>| {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(ct) = ct {
            headers.insert("content-type", ct.parse().unwrap());
        }
        Response {
            status: reqwest::StatusCode::OK,
            headers,
            body: body.as_bytes().to_vec(),
        }
    };
    assert!(resp("  \n<html><body>x</body></html>", None).is_html());
    assert!(resp("<!doctype html>", Some("application/octet-stream")).is_html());
    assert!(!resp("{\"a\":1}", Some("application/json")).is_html());
    assert_eq!(
        resp("{\"a\":1}", None).json::<Value>().unwrap(),
        json!({"a": 1})
    );
}
