//! No secret of any platform reaches the logs, even at trace level: one sync of all five simulated
//! platforms (tokens in headers, in query strings, in Meta's `paging.next` URLs, in a GA4 key file and
//! the access token it is exchanged for), its logs captured and searched for every secret.

use std::sync::Arc;

use chrono::{Duration, Utc};
use growthflow_core::http::TestClock;
use growthflow_sandbox::ga4::TEST_PRIVATE_KEY_PEM;
use growthflow_sandbox::{Sandbox, SandboxConfig};
use growthflow_tests::{cli_on, Captured};

#[tokio::test]
async fn a_sync_of_every_platform_logs_no_secret_at_trace_level() {
    // The sandbox and the sync on one virtual clock: Shopify's cost bucket is waited for in no time.
    let clock = TestClock::yielding();
    let sandbox = Sandbox::start_with_clock(
        SandboxConfig {
            end: Utc::now(),
            ..Default::default()
        },
        Arc::new(clock.clone()),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ga4-key.json");
    std::fs::write(
        &key,
        sandbox
            .ga4()
            .service_account_json(&format!("{}/token", sandbox.ga4_url())),
    )
    .unwrap();
    let woo = sandbox.woocommerce();
    let shop = sandbox.shopify();
    let meta = sandbox.meta();
    let text = format!(
        r#"
[destination]
url = "sqlite://{db}"

[sync]
start_date = "{start}"

[sources.woo]
type = "woocommerce"
url = "{woo_url}"
consumer_key = "{ck}"
consumer_secret = "{cs}"

[sources.shop]
type = "shopify"
shop = "sandbox"
access_token = "{shop_token}"
base_url = "{shop_url}"

[sources.email]
type = "klaviyo"
api_key = "{klaviyo_key}"
base_url = "{klaviyo_url}"

[sources.web]
type = "ga4"
property_id = "{property}"
credentials_file = "{key}"
base_url = "{ga4_url}"

[sources.ads]
type = "meta_ads"
ad_account_id = "{account}"
access_token = "{meta_token}"
base_url = "{meta_url}"
"#,
        db = dir.path().join("gf.db").display(),
        // Three weeks: Meta's insights are then one synchronous, paged read (its `paging.next` URLs
        // carry the token), not an async job.
        start = (Utc::now() - Duration::days(20)).format("%Y-%m-%d"),
        woo_url = sandbox.woocommerce_url(),
        ck = woo.consumer_key,
        cs = woo.consumer_secret,
        shop_token = shop.access_token,
        shop_url = sandbox.shopify_url(),
        klaviyo_key = sandbox.klaviyo().api_key,
        klaviyo_url = sandbox.klaviyo_url(),
        property = sandbox.ga4().property_id,
        key = key.display(),
        ga4_url = sandbox.ga4_url(),
        account = meta.account_id,
        meta_token = meta.access_token,
        meta_url = sandbox.meta_url(),
    );
    let config = dir.path().join("growthflow.toml");
    std::fs::write(&config, text).unwrap();

    let sink = Captured::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded, so every task of the sync logs through this subscriber.
    let guard = tracing::subscriber::set_default(subscriber);
    let (code, out) = cli_on(&clock, &config, &["sync", "--json"]).await;
    drop(guard);
    assert_eq!(code, 0, "{out}");
    let logs = sink.text();
    for source in ["woo", "shop", "email", "web", "ads"] {
        assert!(
            logs.contains(&format!("source=\"{source}\"")),
            "{source} logged nothing: the capture is not working"
        );
    }
    assert!(sandbox.ga4().tokens_issued() >= 1, "the key was exchanged");
    let pem_body = TEST_PRIVATE_KEY_PEM
        .lines()
        .nth(1)
        .expect("a PEM body line")
        .to_string();
    let secrets = [
        ("WooCommerce consumer secret", woo.consumer_secret.clone()),
        ("Shopify access token", shop.access_token.clone()),
        ("Klaviyo API key", sandbox.klaviyo().api_key.clone()),
        ("Meta access token", meta.access_token.clone()),
        ("GA4 private key", pem_body),
        (
            "GA4 access token",
            format!("ya29.sandbox{}", sandbox.ga4().private_key_id),
        ),
    ];
    for (what, secret) in secrets {
        assert!(!secret.is_empty());
        assert!(!logs.contains(&secret), "the {what} reached the logs");
    }
    assert!(
        !logs.contains("access_token="),
        "a URL with its token reached the logs"
    );
}
