//! Rate tiers.

use super::*;

#[tokio::test]
async fn every_endpoint_has_its_own_evenly_spaced_windows() {
    // Klaviyo counts fixed windows, so the client spaces requests evenly (no burst): a request is
    // admitted at once, the next one of the same endpoint waits its slot, other endpoints do not.
    let limits = limits::rate_limits();
    assert!(limits.acquire("events").now_or_never().is_some());
    assert!(limits.acquire("events").now_or_never().is_none());
    assert!(limits.acquire("flows").now_or_never().is_some());
    assert!(limits.acquire("flows").now_or_never().is_none());
    // Anything not in the table gets the smallest tier, its own limiter too.
    assert!(limits.acquire("accounts").now_or_never().is_some());
    assert!(limits.acquire("accounts").now_or_never().is_none());
    // The table: events XL, flows S, the default XS.
    assert_eq!(
        limits::limit_of("events").unwrap().tier.quota(),
        Quota::burst_steady(350, 3500)
    );
    assert_eq!(
        limits::limit_of("flows").unwrap().tier.quota(),
        Quota::burst_steady(3, 60)
    );
}

#[tokio::test]
async fn a_rejected_refresh_token_says_to_authorise_again() {
    let h = Harness::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant", "error_description": "Refresh token is invalid."
        })))
        .expect(1)
        .mount(&h.server)
        .await;
    let guard = h.catch_all().await;
    let mut config = KlaviyoConfig::with_oauth("cid_123", "cs_secret", "rt_original");
    config.base_url = Some(h.uri());
    let err = h.connector_with(config).check().await.unwrap_err();
    let Error::Auth { message } = &err else {
        panic!("expected an auth error, got {err:?}");
    };
    assert!(message.contains("invalid_grant"), "{message}");
    assert!(message.contains("sources.email.refresh_token"), "{message}");
    assert!(!message.contains("rt_original") && !message.contains("cs_secret"));
    assert_eq!(
        h.finish(guard).await.len(),
        1,
        "no API request without a token"
    );
}

#[test]
fn construction_validates_and_debug_hides_secrets() {
    let options = ClientOptions::default();
    let err = Klaviyo::new("email", KlaviyoConfig::with_api_key(""), &options).unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "sources.email.api_key"),
        "{err:?}"
    );
    let c = Klaviyo::new("email", KlaviyoConfig::with_api_key(KEY), &options).unwrap();
    assert_eq!(c.api_base().as_str(), "https://a.klaviyo.com/api");
    assert_eq!(c.revision(), "2026-07-15");
    assert_eq!(c.source_type(), "klaviyo");
    let names: Vec<&str> = c.streams().iter().map(|d| d.name).collect();
    assert_eq!(
        names,
        [
            "events",
            "metrics",
            "profiles",
            "campaigns",
            "flows",
            "lists"
        ]
    );
    assert!(!format!("{c:?}").contains(KEY));
}
