//! # growthflow-sandbox
//!
//! Simulated platforms served over real HTTP on loopback, for `growthflow demo` and the end-to-end
//! tests. One server, one router; each platform lives under its own path prefix and in its own module:
//!
//! | prefix | platform | module |
//! | --- | --- | --- |
//! | `/woocommerce` | WooCommerce REST API v3 (`/woocommerce/wp-json/wc/v3/…`) | [`woocommerce`] |
//!
//! The data is generated deterministically from a seed ([`SandboxConfig`]): the same seed, scale and end
//! time always give byte-identical records, so tests can compute the values they expect from
//! [`Sandbox::woocommerce`]. Faults (rate limits, server errors, slowness, dropped connections) are
//! switched at run time through [`Sandbox::faults`].
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use growthflow_sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::default()).await?;
//! let store_url = sandbox.woocommerce_url(); // http://127.0.0.1:PORT/woocommerce
//! let key = &sandbox.woocommerce().consumer_key;
//! # let _ = (store_url, key);
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod clock;
pub mod faults;
pub mod ga4;
pub mod klaviyo;
pub mod meta;
mod rendered;
mod rng;
pub mod shopify;
pub mod woocommerce;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use growthflow_core::http::{Clock, TokioClock};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use faults::Faults;
pub use ga4::Property;
pub use klaviyo::KlaviyoAccount;
pub use meta::AdAccount;
pub use rendered::Rendered;
pub use shopify::{ShopData, ShopifyPlan};
pub use woocommerce::WooStore;

/// What to generate: the seed, the size and the simulated "now".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Seed of the deterministic generator. Same seed (and scale, end) → byte-identical data.
    pub seed: u64,
    /// Size multiplier: scale 1 is a small store (≈ 300 orders, 120 customers over 180 days); scale `n`
    /// has `n` times the orders, customers, products and coupons. 0 is treated as 1.
    pub scale: u32,
    /// The simulated "now": every generated timestamp is at or before it; orders span the 180 days
    /// before it.
    pub end: DateTime<Utc>,
    /// The WooCommerce store gets exactly this many orders (its customers, products and coupons sized
    /// like the scale that holds them) while the other platforms keep `scale`: a throughput benchmark
    /// asks for 100,000 orders without generating 300 times every other platform. `None`: `300 ×
    /// scale` orders.
    pub woocommerce_orders: Option<usize>,
    /// The Shopify shop's plan, which sets its GraphQL cost bucket (how fast a sync may query it).
    /// Standard by default, the plan the throttle tests are written for; `growthflow demo` runs a
    /// Shopify Plus shop.
    pub shopify_plan: ShopifyPlan,
    /// The WooCommerce site is HTTPS behind a proxy that ends TLS, as on many hosts: WooCommerce then
    /// authenticates by HTTP Basic (or the `consumer_key` and `consumer_secret` query parameters)
    /// and no longer by OAuth 1.0a, though the sandbox still speaks plain HTTP. It lets a client that
    /// only sends Basic read the store: `sync_bench --serve --behind-tls` serves the store Airbyte's
    /// source is measured on (docs/performance.md). Off by default: plain-HTTP WooCommerce.
    pub woocommerce_behind_tls: bool,
}

impl Default for SandboxConfig {
    /// Seed 42, scale 1, end 2025-06-30T23:59:59Z, WooCommerce orders by scale, a Standard-plan
    /// Shopify shop, a plain-HTTP WooCommerce site.
    fn default() -> Self {
        Self {
            seed: 42,
            scale: 1,
            end: Utc
                .with_ymd_and_hms(2025, 6, 30, 23, 59, 59)
                .single()
                .expect("valid constant date"),
            woocommerce_orders: None,
            shopify_plan: ShopifyPlan::Standard,
            woocommerce_behind_tls: false,
        }
    }
}

/// A running sandbox server on `127.0.0.1`. Stop it with [`Sandbox::shutdown`]; dropping it also asks
/// the server to stop.
pub struct Sandbox {
    addr: SocketAddr,
    woo: Arc<WooStore>,
    shop: Arc<ShopData>,
    klaviyo: Arc<KlaviyoAccount>,
    meta: Arc<AdAccount>,
    ga4: Arc<Property>,
    faults: Faults,
    requests: Arc<AtomicU64>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.addr)
            .field("requests", &self.request_count())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Generate the data and start serving on `127.0.0.1` at a free port; the platforms' timers run
    /// on real time.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        Self::start_with_clock(config, Arc::new(TokioClock)).await
    }

    /// [`Sandbox::start`] with the platforms' timers (Shopify's cost bucket refill, Meta's rate window
    /// and report jobs, Klaviyo's rate windows) on `clock`. A test gives the sandbox the
    /// [`TestClock`](growthflow_core::http::TestClock) its connectors sleep on: the time a client
    /// waits out is time the platform sees pass, so a throttle or a job is waited out in no time and
    /// the test still sees every throttle and every poll.
    pub async fn start_with_clock(
        config: SandboxConfig,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Sandbox> {
        let time = clock::Time::new(clock);
        let SandboxConfig {
            seed,
            scale,
            end,
            woocommerce_orders,
            shopify_plan,
            woocommerce_behind_tls,
        } = config;
        let woo = tokio::task::spawn_blocking(move || match woocommerce_orders {
            Some(n) => WooStore::generate_with_orders(seed, n, end),
            None => WooStore::generate(seed, scale, end),
        })
        .await
        .map_err(std::io::Error::other)?;
        let woo = Arc::new(woo);
        let mut shop = tokio::task::spawn_blocking(move || ShopData::generate(seed, scale, end))
            .await
            .map_err(std::io::Error::other)?;
        shop.set_meter(time.clone(), shopify_plan);
        let shop = Arc::new(shop);
        // Klaviyo's profiles are the store's customers, joined on the normalised email.
        let mut emails: Vec<String> = woo
            .order_emails()
            .iter()
            .filter(|e| e.contains('@'))
            .cloned()
            .collect();
        emails.sort();
        emails.dedup();
        let klaviyo = Arc::new(
            tokio::task::spawn_blocking(move || {
                KlaviyoAccount::generate(seed, scale, end, &emails)
            })
            .await
            .map_err(std::io::Error::other)?,
        );
        let meta = Arc::new(
            tokio::task::spawn_blocking(move || AdAccount::generate(seed, scale, end))
                .await
                .map_err(std::io::Error::other)?,
        );
        let ga4 = Arc::new(
            tokio::task::spawn_blocking(move || Property::generate(seed, scale, end))
                .await
                .map_err(std::io::Error::other)?,
        );
        let faults = Faults::new();
        let requests = Arc::new(AtomicU64::new(0));

        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;

        let app = Router::new()
            .route("/", axum::routing::get(index))
            .merge(woocommerce::router(
                woo.clone(),
                faults.clone(),
                addr.to_string(),
                woocommerce_behind_tls,
            ))
            .merge(shopify::router(shop.clone(), faults.clone()))
            .merge(klaviyo::router(
                klaviyo.clone(),
                faults.clone(),
                time.clone(),
            ))
            .merge(meta::router(meta.clone(), faults.clone(), time))
            .merge(ga4::router(ga4.clone(), format!("http://{addr}")))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                requests.clone(),
                count_requests,
            ));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            if let Err(e) = server.await {
                tracing::warn!(error = %e, "sandbox server stopped with an error");
            }
        });
        tracing::debug!(%addr, "sandbox listening");
        Ok(Sandbox {
            addr,
            woo,
            shop,
            klaviyo,
            meta,
            ga4,
            faults,
            requests,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The simulated WooCommerce store's URL, `http://127.0.0.1:PORT/woocommerce`; a client appends
    /// `/wp-json/wc/v3/…` to it.
    pub fn woocommerce_url(&self) -> String {
        format!("{}/{}", self.base_url(), woocommerce::PREFIX)
    }

    /// The generated WooCommerce data and credentials, exactly as the API serves them.
    pub fn woocommerce(&self) -> &WooStore {
        &self.woo
    }

    /// The simulated Shopify shop's `base_url` (`http://127.0.0.1:PORT/shopify`).
    pub fn shopify_url(&self) -> String {
        format!("{}/{}", self.base_url(), shopify::PREFIX)
    }

    /// The simulated Shopify shop's data and credentials.
    pub fn shopify(&self) -> &ShopData {
        &self.shop
    }

    /// The simulated Klaviyo account's `base_url` (`http://127.0.0.1:PORT/klaviyo`).
    pub fn klaviyo_url(&self) -> String {
        format!("{}/{}", self.base_url(), klaviyo::PREFIX)
    }

    /// The simulated Klaviyo account's data and key.
    pub fn klaviyo(&self) -> &KlaviyoAccount {
        &self.klaviyo
    }

    /// The simulated Meta ad account's `base_url` (`http://127.0.0.1:PORT/meta`); the connector appends
    /// `/{version}/act_{id}/…` to it.
    pub fn meta_url(&self) -> String {
        format!("{}/{}", self.base_url(), meta::PREFIX)
    }

    /// The simulated Meta ad account's data and access token.
    pub fn meta(&self) -> &AdAccount {
        &self.meta
    }

    /// The simulated GA4 property's `base_url` (`http://127.0.0.1:PORT/ga4`); the connector appends
    /// `/v1beta/properties/{id}…` to it, and the service account's `token_uri` is this plus `/token`.
    pub fn ga4_url(&self) -> String {
        format!("{}/{}", self.base_url(), ga4::PREFIX)
    }

    /// The simulated GA4 property's data and service account.
    pub fn ga4(&self) -> &Property {
        &self.ga4
    }

    /// The run-time faults (shared with the server: changes apply to the next request).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Requests received so far, on every path of every platform (faulted ones included).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Stop accepting connections, let in-flight requests finish (at most 5 s), then stop.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn count_requests(
    State(counter): State<Arc<AtomicU64>>,
    req: Request,
    next: Next,
) -> Response {
    counter.fetch_add(1, Ordering::SeqCst);
    next.run(req).await
}

async fn index() -> Response {
    axum::Json(serde_json::json!({
        "name": "growthflow sandbox",
        "platforms": { "woocommerce": format!("/{}", woocommerce::PREFIX) }
    }))
    .into_response()
}

async fn not_found() -> Response {
    (
        axum::http::StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "error": "not_found",
            "message": "No simulated platform at this path."
        })),
    )
        .into_response()
}
