//! 1. Basic over https only; OAuth over http.

use super::*;

#[tokio::test]
async fn basic_auth_is_sent_over_https_and_never_over_http() {
    use growthflow_core::auth::Authenticator;
    let auth = WooAuth::new(CK.to_string().into(), CS.to_string().into());

    let mut https = reqwest::Request::new(
        reqwest::Method::GET,
        "https://shop.example.co/wp-json/wc/v3/orders?page=1"
            .parse()
            .unwrap(),
    );
    auth.authorize(&mut https).await.unwrap();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CK}:{CS}"))
    );
    assert_eq!(
        https
            .headers()
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        expected
    );
    assert!(https.headers()["authorization"].is_sensitive());
    assert!(
        !https
            .url()
            .query_pairs()
            .any(|(k, _)| k.starts_with("oauth_")),
        "{}",
        https.url()
    );
    assert_eq!(https.url().query(), Some("page=1"));

    let mut http = reqwest::Request::new(
        reqwest::Method::GET,
        "http://shop.example.co/wp-json/wc/v3/orders?page=1"
            .parse()
            .unwrap(),
    );
    auth.authorize(&mut http).await.unwrap();
    assert!(http.headers().get("authorization").is_none());
    let q: BTreeMap<String, String> = http
        .url()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for k in [
        "oauth_consumer_key",
        "oauth_nonce",
        "oauth_signature_method",
        "oauth_timestamp",
        "oauth_signature",
    ] {
        assert!(q.contains_key(k), "{k} missing from {}", http.url());
    }
    assert_eq!(q["oauth_consumer_key"], CK);
    assert_eq!(q["page"], "1");
    assert!(
        !http.url().as_str().contains(CS),
        "the secret must never be sent over http"
    );
}
