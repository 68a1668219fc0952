//! Use one connector on its own, as a library: read a WooCommerce store's orders page by page.
//!
//! With `WC_URL`, `WC_CONSUMER_KEY` and `WC_CONSUMER_SECRET` set it reads that store; without them it
//! starts the sandbox's simulated store so the example runs anywhere:
//!
//! ```sh
//! cargo run -p growthflow-tests --example woocommerce_library
//! ```

use chrono::{Duration, Utc};
use futures::StreamExt;
use growthflow_core::connector::{Connector, ReadRequest};
use growthflow_core::http::ClientOptions;
use growthflow_woocommerce::{WooCommerce, WooCommerceConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (config, _sandbox) = match (
        std::env::var("WC_URL"),
        std::env::var("WC_CONSUMER_KEY"),
        std::env::var("WC_CONSUMER_SECRET"),
    ) {
        (Ok(url), Ok(key), Ok(secret)) => (WooCommerceConfig::new(url, key, secret), None),
        _ => {
            let sandbox =
                growthflow_sandbox::Sandbox::start(growthflow_sandbox::SandboxConfig::default())
                    .await?;
            let store = sandbox.woocommerce();
            let config = WooCommerceConfig::new(
                sandbox.woocommerce_url(),
                store.consumer_key.clone(),
                store.consumer_secret.clone(),
            );
            (config, Some(sandbox))
        }
    };

    let woo = WooCommerce::new("woo", config, &ClientOptions::default())?;
    woo.check().await?;

    // Orders modified in the last two years, newest state last; one page in memory at a time.
    let mut pages = woo.read(ReadRequest {
        stream: "orders".into(),
        state: None,
        start: Utc::now() - Duration::days(730),
        window: None,
    });
    let (mut orders, mut pages_read, mut last_cursor) = (0usize, 0usize, None);
    while let Some(page) = pages.next().await {
        let page = page?;
        pages_read += 1;
        orders += page.records.len();
        last_cursor = page
            .records
            .last()
            .and_then(|r| r.cursor.clone())
            .or(last_cursor);
    }
    println!("{orders} orders in {pages_read} pages; newest modification {last_cursor:?}");
    Ok(())
}
