//! OAuth.

use super::*;

#[tokio::test]
async fn oauth_refreshes_with_basic_client_auth_and_hands_over_the_rotated_token() {
    let h = Harness::start().await;
    let basic = base64::engine::general_purpose::STANDARD.encode("cid_123:cs_secret");
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at_first", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt_rotated", "scope": "events:read metrics:read"
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at_second", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt_rotated_again"
        })))
        .expect(1)
        .mount(&h.server)
        .await;
    // The first access token is refused (expired early), the refreshed one accepted.
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .and(header("authorization", "Bearer at_first"))
        .respond_with(ResponseTemplate::new(401).set_body_json(fixture("error_401.json", "")))
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/metrics"))
        .and(header("authorization", "Bearer at_second"))
        .and(header("revision", "2026-07-15"))
        .respond_with(doc(vec![]))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let rotated: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = rotated.clone();
    let mut config = KlaviyoConfig::with_oauth("cid_123", "cs_secret", "rt_original");
    config.base_url = Some(h.uri());
    let c = Klaviyo::with_rotation_hook(
        "email",
        config,
        &h.options(),
        Arc::new(move |t| {
            seen.lock().unwrap().push(t.expose_secret().to_string());
            Ok(())
        }),
    )
    .unwrap();
    c.check().await.unwrap();
    assert_eq!(
        *rotated.lock().unwrap(),
        vec!["rt_rotated", "rt_rotated_again"]
    );

    let requests = h.finish(guard).await;
    let forms: Vec<BTreeMap<String, String>> = requests
        .iter()
        .filter(|r| r.url.path() == "/oauth/token")
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .collect();
    assert_eq!(forms.len(), 2);
    assert_eq!(forms[0]["grant_type"], "refresh_token");
    assert_eq!(forms[0]["refresh_token"], "rt_original");
    assert_eq!(
        forms[1]["refresh_token"], "rt_rotated",
        "the rotated token is used next"
    );
    assert!(
        !forms[0].contains_key("client_secret"),
        "client auth is HTTP Basic only"
    );
}
