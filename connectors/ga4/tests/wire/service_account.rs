//! The service account: its key checked, the signed JWT and cached token, a failing token endpoint.

use super::*;

fn b64_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn a_key_that_is_not_pkcs8_rsa_pem_is_a_config_error_that_quotes_none_of_it() {
    let server = MockServer::start().await;
    let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ";
    let cases = [
        (
            format!("-----BEGIN PRIVATE KEY-----\n{body}*\n-----END PRIVATE KEY-----\n"),
            "malformed PEM",
        ),
        (body.to_string(), "no \"BEGIN PRIVATE KEY\" section"),
        (
            format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
            "not a PKCS#8 RSA key",
        ),
    ];
    for (pem, says) in cases {
        let mut json = key_json(&server);
        json["private_key"] = pem.into();
        let key = ServiceAccountKey::from_json(json.to_string().as_bytes(), "k").unwrap();
        let err = ServiceAccountToken::new(&key, &ClientOptions::default(), "k").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Config { .. }), "{text}");
        assert!(text.contains(says), "{text}");
        assert!(!text.contains("MIIE") && !text.contains('*'), "{text}");
    }
}

#[tokio::test]
async fn jwt_is_signed_with_the_right_claims_and_the_token_is_cached() {
    let server = MockServer::start().await;
    mount_token(&server).await;
    let catch_all = mount_catch_all(&server).await;
    let key = ServiceAccountKey::from_json(key_json(&server).to_string().as_bytes(), "k").unwrap();
    let clock = TestClock::new();
    let provider =
        ServiceAccountToken::new(&key, &ClientOptions::with_clock(Arc::new(clock)), "k").unwrap();
    assert!(!format!("{provider:?}").contains("PRIVATE KEY"));

    use secrecy::ExposeSecret;
    assert_eq!(
        provider.token().await.unwrap().expose_secret(),
        "ya29.c.mock"
    );
    assert_eq!(
        provider.token().await.unwrap().expose_secret(),
        "ya29.c.mock"
    );
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1, "the token is cached");

    let form: Vec<(String, String)> = url::form_urlencoded::parse(&reqs[0].body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(
        form[0],
        (
            "grant_type".into(),
            "urn:ietf:params:oauth:grant-type:jwt-bearer".into()
        )
    );
    assert_eq!(form[1].0, "assertion");
    let jwt = &form[1].1;
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        b64_json(parts[0]),
        json!({"alg":"RS256","typ":"JWT","kid":"kid-1"})
    );
    let claims = b64_json(parts[1]);
    assert_eq!(
        claims["iss"],
        "sync@growthflow-test.iam.gserviceaccount.com"
    );
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/analytics.readonly"
    );
    assert_eq!(claims["aud"], format!("{}/token", server.uri()));
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert!(exp > iat && exp - iat <= 3600);
    assert!((Utc::now().timestamp() - iat).abs() < 120);

    let der = PrivatePkcs8KeyDer::from_pem_slice(PEM.as_bytes()).unwrap();
    let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let verifier = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref());
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    verifier
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("signature verifies with the public key");
    let mut tampered = sig.clone();
    tampered[10] ^= 1;
    assert!(
        verifier
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &tampered)
            .is_err(),
        "a changed signature does not verify"
    );

    assert!(provider.invalidate().await.unwrap());
    provider.token().await.unwrap();
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        2,
        "refetched after invalidate"
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_failing_token_endpoint_is_retried_by_one_layer_only() {
    // The token request runs inside each attempt at the API request. Were it retried inside too, a
    // token endpoint that keeps failing would be asked attempts × attempts times (49 by default).
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(503).set_body_string("unavailable"))
        .mount(&server)
        .await;
    let catch_all = mount_catch_all(&server).await;
    let clock = TestClock::at(Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap());
    let ga4 = connector(&server, "token_503", &clock);
    let err = read_pages(&ga4, one_day(1)).await.unwrap_err();
    assert!(err.is_retryable(), "a 503 stays a temporary failure: {err}");
    let token_requests = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/token")
        .count();
    let attempts = 1 + growthflow_core::http::RetryPolicy::default().max_retries as usize;
    assert_eq!(token_requests, attempts);
    assert_eq!(clock.sleeps().len(), attempts - 1, "{:?}", clock.sleeps());
    assert_no_unexpected(catch_all).await;
}
