//! Token providers against a mock OAuth2 token endpoint: the refresh-token grant's wire format, caching,
//! rotation, expiry, errors, and secrets kept out of `Debug`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use growthflow_core::auth::{
    ClientAuth, HeaderAuth, OAuth2ClientCredentials, OAuth2RefreshToken, QueryAuth, StaticToken,
    TokenProvider,
};
use growthflow_core::http::{DefaultPolicy, HttpClient, TestClock};
use growthflow_core::{Error, ErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use wiremock::matchers::{any, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(500).set_body_string("unexpected request"))
        .with_priority(u8::MAX)
        .expect(0)
        .named("catch-all: unexpected request")
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.expect("recording is on")
}

fn form(req: &wiremock::Request) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(&req.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn token_response(access: &str, expires_in: u64, refresh: Option<&str>) -> ResponseTemplate {
    let mut body =
        json!({"access_token": access, "token_type": "bearer", "expires_in": expires_in});
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    ResponseTemplate::new(200).set_body_json(body)
}

/// Answers the token endpoint with `template` once, ahead of anything mounted later.
async fn token_once(server: &MockServer, template: ResponseTemplate, priority: u8) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(template)
        .up_to_n_times(1)
        .expect(1)
        .with_priority(priority)
        .mount(server)
        .await;
}

fn grant(server: &MockServer, auth: ClientAuth) -> OAuth2RefreshToken {
    OAuth2RefreshToken::new(
        "cid",
        Some(SecretString::from("csecret")),
        SecretString::from("R1"),
        format!("{}/token", server.uri()),
        auth,
    )
    .unwrap()
}

#[tokio::test]
async fn refresh_with_basic_client_auth() {
    let server = server().await;
    token_once(&server, token_response("A1", 3600, None), 1).await;
    let provider = grant(&server, ClientAuth::BasicAuth);
    assert_eq!(provider.token().await.unwrap().expose_secret(), "A1");

    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        form(&reqs[0]),
        map(&[("grant_type", "refresh_token"), ("refresh_token", "R1")])
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("cid:csecret");
    assert_eq!(
        reqs[0]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        format!("Basic {basic}")
    );
    assert!(reqs[0]
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));
    server.verify().await;
}

#[tokio::test]
async fn refresh_with_client_credentials_in_the_body() {
    let server = server().await;
    token_once(&server, token_response("A1", 3600, None), 1).await;
    let provider = grant(&server, ClientAuth::RequestBody);
    assert_eq!(provider.token().await.unwrap().expose_secret(), "A1");

    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        form(&reqs[0]),
        map(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "R1"),
            ("client_id", "cid"),
            ("client_secret", "csecret"),
        ])
    );
    assert!(reqs[0].headers.get("authorization").is_none());
    server.verify().await;
}

#[tokio::test]
async fn access_token_is_cached_until_invalidated() {
    let server = server().await;
    token_once(&server, token_response("A1", 3600, None), 1).await;
    token_once(&server, token_response("A2", 3600, None), 2).await;
    let provider = grant(&server, ClientAuth::BasicAuth);

    assert_eq!(provider.token().await.unwrap().expose_secret(), "A1");
    assert_eq!(provider.token().await.unwrap().expose_secret(), "A1");
    assert_eq!(
        requests(&server).await.len(),
        1,
        "the second token() is cached"
    );

    assert!(provider.invalidate().await.unwrap());
    assert_eq!(provider.token().await.unwrap().expose_secret(), "A2");
    assert_eq!(requests(&server).await.len(), 2);
    server.verify().await;
}

#[tokio::test]
async fn rotated_refresh_token_is_handed_to_the_hook_and_used_next() {
    let server = server().await;
    token_once(&server, token_response("A1", 3600, Some("R2")), 1).await;
    // The second answer repeats R2: not a rotation, so the hook is not called again.
    token_once(&server, token_response("A2", 3600, Some("R2")), 2).await;
    let rotated: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = rotated.clone();
    let provider = grant(&server, ClientAuth::BasicAuth).on_rotate(Arc::new(move |t| {
        seen.lock().unwrap().push(t.expose_secret().to_string());
        Ok(())
    }));

    assert_eq!(provider.token().await.unwrap().expose_secret(), "A1");
    assert_eq!(*rotated.lock().unwrap(), vec!["R2"]);

    provider.invalidate().await.unwrap();
    assert_eq!(provider.token().await.unwrap().expose_secret(), "A2");
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 2);
    assert_eq!(form(&reqs[0])["refresh_token"], "R1");
    assert_eq!(form(&reqs[1])["refresh_token"], "R2");
    assert_eq!(*rotated.lock().unwrap(), vec!["R2"]);
    server.verify().await;
}

#[tokio::test]
async fn a_failing_rotation_hook_fails_the_refresh_loudly() {
    let server = server().await;
    token_once(&server, token_response("A1", 3600, Some("R2")), 1).await;
    let provider = grant(&server, ClientAuth::BasicAuth).on_rotate(Arc::new(|_| {
        Err(Error::Other(
            "disk full: could not save the refresh token".into(),
        ))
    }));
    let err = provider.token().await.unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    server.verify().await;
}

#[tokio::test]
async fn invalid_grant_is_an_auth_error_with_the_hint() {
    let server = server().await;
    token_once(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "Token has been expired or revoked."
        })),
        1,
    )
    .await;
    let provider = grant(&server, ClientAuth::RequestBody)
        .invalid_grant_hint("; apps in testing mode get 7-day refresh tokens");
    let err = provider.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err:?}");
    assert!(!err.is_retryable());
    let Error::Auth { message } = &err else {
        panic!("expected Auth, got {err:?}")
    };
    assert!(message.contains("invalid_grant"), "{message}");
    assert!(
        message.contains("Token has been expired or revoked."),
        "{message}"
    );
    assert!(
        message.contains("apps in testing mode get 7-day refresh tokens"),
        "{message}"
    );
    assert!(
        !message.contains("R1") && !message.contains("csecret"),
        "{message}"
    );
    server.verify().await;
}

#[tokio::test]
async fn other_token_endpoint_errors_are_auth_errors_naming_the_code() {
    let server = server().await;
    token_once(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})),
        1,
    )
    .await;
    let err = grant(&server, ClientAuth::BasicAuth)
        .token()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err:?}");
    assert!(err.to_string().contains("invalid_client"), "{err}");
    server.verify().await;
}

#[tokio::test]
async fn a_token_expiring_within_the_margin_is_refreshed_on_next_use() {
    let server = server().await;
    token_once(&server, token_response("A1", 30, None), 1).await;
    token_once(&server, token_response("A2", 3600, None), 2).await;
    let provider = grant(&server, ClientAuth::BasicAuth);
    assert_eq!(provider.token().await.unwrap().expose_secret(), "A1");
    // 30 s is inside the 60 s safety margin: already due.
    assert_eq!(provider.token().await.unwrap().expose_secret(), "A2");
    // 3600 s is not.
    assert_eq!(provider.token().await.unwrap().expose_secret(), "A2");
    assert_eq!(requests(&server).await.len(), 2);
    server.verify().await;
}

#[tokio::test]
async fn a_token_without_expiry_is_kept_until_invalidated() {
    let server = server().await;
    token_once(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": "A1", "token_type": "bearer"})),
        1,
    )
    .await;
    let provider = grant(&server, ClientAuth::BasicAuth);
    for _ in 0..3 {
        assert_eq!(provider.token().await.unwrap().expose_secret(), "A1");
    }
    assert_eq!(requests(&server).await.len(), 1);
    server.verify().await;
}

/// A 5xx (or 429) from the token endpoint is weather, like the same answer from any API: it must be
/// retryable. Today oauth2 hands the non-200 body to the error-response parser, and the result becomes
/// `Error::Decode` (HTML/plain body) or `Error::Other` (empty body) — neither retryable — so a token
/// endpoint hiccup fails the whole sync of a GA4/Klaviyo source.
#[tokio::test]
async fn token_endpoint_server_error_is_transient() {
    let server = server().await;
    token_once(
        &server,
        ResponseTemplate::new(503)
            .insert_header("content-type", "text/html")
            .set_body_string("<html><body>Service Unavailable</body></html>"),
        1,
    )
    .await;
    token_once(&server, ResponseTemplate::new(502), 2).await;
    let provider = grant(&server, ClientAuth::BasicAuth);
    let err = provider.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "HTML 503: {err:?}");
    let err = provider.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "empty 502: {err:?}");
    server.verify().await;
}

#[tokio::test]
async fn http_client_refreshes_an_oauth_token_after_a_401() {
    let server = server().await;
    token_once(&server, token_response("A1", 3600, None), 1).await;
    token_once(&server, token_response("A2", 3600, None), 2).await;
    Mock::given(method("GET"))
        .and(path("/api"))
        .and(header("authorization", "Bearer A1"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "expired"})))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api"))
        .and(header("authorization", "Bearer A2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let provider = Arc::new(grant(&server, ClientAuth::BasicAuth));
    let clock = TestClock::new();
    let client = HttpClient::builder(Arc::new(DefaultPolicy("TestPlatform")))
        .auth(Arc::new(HeaderAuth::bearer(provider)))
        .origin(&server.uri().parse().unwrap())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let resp = client
        .send("api", client.reqwest().get(format!("{}/api", server.uri())))
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 200);
    let paths: Vec<String> = requests(&server)
        .await
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(paths, vec!["/token", "/api", "/token", "/api"]);
    assert!(clock.sleeps().is_empty());
    server.verify().await;
}

#[tokio::test]
async fn debug_output_never_shows_secrets() {
    let server = server().await;
    token_once(&server, token_response("ACCESS_SECRET", 3600, None), 1).await;

    let fixed = StaticToken::new(SecretString::from("sk_live_SECRET"));
    let debug = format!("{fixed:?}");
    assert!(!debug.contains("sk_live_SECRET"), "{debug}");
    assert!(debug.contains("REDACTED"), "{debug}");

    let header = HeaderAuth::bearer(Arc::new(fixed.clone()));
    let debug = format!("{header:?}");
    assert!(!debug.contains("sk_live_SECRET"), "{debug}");

    let query = QueryAuth::new("access_token", Arc::new(fixed));
    let debug = format!("{query:?}");
    assert!(!debug.contains("sk_live_SECRET"), "{debug}");

    let oauth = OAuth2RefreshToken::new(
        "my-client",
        Some(SecretString::from("CLIENT_SECRET")),
        SecretString::from("REFRESH_SECRET"),
        format!("{}/token", server.uri()),
        ClientAuth::BasicAuth,
    )
    .unwrap();
    // Also after a token is cached.
    oauth.token().await.unwrap();
    let debug = format!("{oauth:?}");
    assert!(debug.contains("my-client"), "{debug}");
    for secret in ["CLIENT_SECRET", "REFRESH_SECRET", "ACCESS_SECRET"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    let debug = format!("{:?}", HeaderAuth::bearer(Arc::new(oauth)));
    for secret in ["CLIENT_SECRET", "REFRESH_SECRET", "ACCESS_SECRET"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    server.verify().await;
}

#[tokio::test]
async fn client_credentials_grant_is_cached_and_fetched_again_after_invalidate() {
    let server = server().await;
    token_once(
        &server,
        ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "C1", "scope": "read_orders", "expires_in": 86399}),
        ),
        1,
    )
    .await;
    token_once(&server, token_response("C2", 86399, None), 2).await;
    let provider = OAuth2ClientCredentials::new(
        "cid",
        SecretString::from("csecret"),
        format!("{}/token", server.uri()),
        ClientAuth::RequestBody,
    )
    .unwrap();
    // No token_type in the first answer (Shopify omits it): read as bearer.
    assert_eq!(provider.token().await.unwrap().expose_secret(), "C1");
    assert_eq!(provider.token().await.unwrap().expose_secret(), "C1");
    assert!(provider.invalidate().await.unwrap());
    assert_eq!(provider.token().await.unwrap().expose_secret(), "C2");
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        form(&reqs[0]),
        map(&[
            ("grant_type", "client_credentials"),
            ("client_id", "cid"),
            ("client_secret", "csecret"),
        ])
    );
    assert!(!format!("{provider:?}").contains("csecret"));
    server.verify().await;
}
