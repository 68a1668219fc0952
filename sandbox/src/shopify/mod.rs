//! A simulated Shopify shop speaking the GraphQL Admin API under `/shopify` (being written).

use std::sync::Arc;

use axum::Router;
use chrono::{DateTime, Utc};

use crate::faults::Faults;

/// Path prefix of the simulated shop: the client's `base_url` is `http://HOST:PORT/shopify`.
pub const PREFIX: &str = "shopify";

/// The generated shop: its data and the credentials it accepts.
#[derive(Debug, Clone)]
pub struct ShopData {
    /// The Admin API access token the shop accepts (`X-Shopify-Access-Token`).
    pub access_token: String,
}

impl ShopData {
    /// Generate the shop deterministically.
    pub fn generate(seed: u64, scale: u32, end: DateTime<Utc>) -> ShopData {
        let _ = (seed, scale, end);
        ShopData {
            access_token: "shpat_sandbox".into(),
        }
    }
}

/// The shop's routes, under `/shopify`.
pub(crate) fn router(shop: Arc<ShopData>, faults: Faults) -> Router {
    let _ = (shop, faults);
    Router::new()
}
